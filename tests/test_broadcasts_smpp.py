"""A broadcast on an SMPP bind (which sends only from its own process): its deliveries
wait on the bind's lower-priority queue, at the channel's rate, and a reporter's reply
on the same bind goes ahead of them. The bind's loop runs in a thread against the SMPP
stand-in (tests/smpp_standin.py); real Redis, SQLite and PostgreSQL. (That the bind
keeps the channel's rate is an upper bound on its sends over time: tests/faults.)"""

from __future__ import annotations

import json

import pytest

from service import broadcast_sending, broadcasts
from service.inbox import Services
from tests.broadcast_factories import API_HEADERS, BENI, request, subscriber
from tests.test_smpp import SOURCE, link, smpp_entry, smsc  # noqa: F401 (fixtures)

pytestmark = pytest.mark.usefixtures("app")
NUMBERS = [f"+2439900030{n:02d}" for n in range(16)]
RATE = 4  # segments per second: 16 deliveries take about 3 s (a full bucket holds 4)


@pytest.fixture
def app_config(app_config, smsc):
    return {**app_config, "CHANNELS": json.dumps([smpp_entry(smsc.port, send_rate=RATE)])}


def test_a_reply_on_the_bind_goes_ahead_of_the_broadcast(app, client, db, smsc, link):
    identity = app.extensions["identity"]
    for number in NUMBERS:
        subscriber(db, identity, number, "sw", BENI, channel="smpp")
    bid = client.post("/api/v1/broadcasts", json=request(), headers=API_HEADERS).json["id"]
    with app.app_context():
        broadcast_sending.fanout(Services.current(), bid)  # queues each delivery for the bind
    wanted = {n.lstrip("+") for n in NUMBERS}
    assert smsc.wait_for(lambda: len([s for s in smsc.accepted() if s.destination in wanted]) >= 2)
    smsc.deliver(SOURCE, "watu wenye silaha wako kasindi")  # a reporter, mid-broadcast
    assert smsc.wait_for(lambda: smsc.accepted(SOURCE) and
                         wanted <= {s.destination for s in smsc.accepted()}, timeout=30)
    order = [s.destination for s in smsc.accepted()]
    reply_at = order.index(SOURCE)
    broadcast = [i for i, d in enumerate(order) if d in wanted]
    assert reply_at < broadcast[-1]  # the reply did not wait for the broadcast to end
    assert sorted(order[i] for i in broadcast) == sorted(wanted)  # each subscriber once

    def all_sent():
        db.rollback()
        return broadcasts.delivery_counts(db, bid)[0].get("sent", 0) == len(NUMBERS)
    assert smsc.wait_for(all_sent)
