"""A broadcast through Africa's Talking: bulk requests of the real SDK to the local
stand-in (one request per text for up to a chunk of recipients), per-recipient refusals
mapped to permanent or transient outcomes, HTTP 429 backing off, and delivery reports
posted to the callback in any order; SQLite and PostgreSQL, real Redis."""

from __future__ import annotations

import json
import time

import pytest
from sqlalchemy import select

from service import broadcast_sending
from service.inbox import Services
from service.models import Message, Reporter
from tests.broadcast_factories import API_HEADERS, BENI, GOMA, KAMANGO, TEXTS, request, subscriber
from tests.conftest import ACCOUNT_SID, AUTH_TOKEN
from tests.test_africastalking import AT_PASSWORD, AT_USER, DELIVERY, at_entry, at_standin, basic  # noqa: F401

pytestmark = pytest.mark.usefixtures("app")
NUMBERS = [f"+2439900020{n:02d}" for n in range(12)]


@pytest.fixture
def app_config(app_config, twilio_standin, at_standin):
    channels = [{"name": "twilio", "kind": "twilio", "account_sid": ACCOUNT_SID, "auth_token": AUTH_TOKEN,
                 "from": "+243990000000", "api_base": twilio_standin.url, "default": True},
                at_entry(at_standin.url, batch_size=5)]
    return {**app_config, "CHANNELS": json.dumps(channels)}


@pytest.fixture
def people(app, db):
    identity = app.extensions["identity"]
    places = [BENI, GOMA, KAMANGO]
    langs = ["fr", "sw", "ln"]
    return [subscriber(db, identity, number, langs[i % 3], places[i % 3], channel="africastalking")
            for i, number in enumerate(NUMBERS)]


def run(app, broadcast_id: int, deadline: float = 60) -> str:
    """Fan out and send to the end as the worker's chain would, waiting out back-offs."""
    with app.app_context():
        svc = Services.current()
        broadcast_sending.fanout(svc, broadcast_id)
        outcome, end = "continued", time.monotonic() + deadline
        while time.monotonic() < end:
            outcome = broadcast_sending.send_slice(svc, broadcast_id, 0)
            if outcome == "waiting":  # retries not due yet: the chain would come back later
                time.sleep(0.5)
            elif outcome != "continued":
                break
        svc.session.close()
        return outcome


def deliveries(db, broadcast_id: int) -> dict[str, Message]:
    db.expire_all()
    rows = db.scalars(select(Message).where(Message.broadcast_id == broadcast_id).order_by(Message.id)).all()
    return {row.id: row for row in rows}


def test_bulk_requests_one_text_many_recipients_each_once(app, client, db, people, at_standin):
    bid = client.post("/api/v1/broadcasts", json=request(), headers=API_HEADERS).json["id"]
    assert run(app, bid) == "done"
    by_number = {}
    for sms in at_standin.sent:
        by_number.setdefault(sms.to, []).append(sms.message)
    assert sorted(by_number) == sorted(NUMBERS)
    assert all(len(texts) == 1 for texts in by_number.values())  # nobody twice
    for i, number in enumerate(NUMBERS):
        assert by_number[number] == [TEXTS[["fr", "sw", "ln"][i % 3]]]
    bulk = [r for r in at_standin.requests if r.get("to")]
    assert all(r["bulkSMSMode"] == "1" for r in bulk)
    assert max(len(r["to"].split(",")) for r in bulk) > 1  # recipients share a request
    assert all(len(r["to"].split(",")) <= 5 for r in bulk)  # never more than the channel's batch
    rows = deliveries(db, bid)
    assert {m.status for m in rows.values()} == {"sent"} and all(m.provider_id for m in rows.values())


def test_refusals_are_permanent_or_retried_and_429_backs_off(app, client, db, people, at_standin):
    blacklisted, invalid = NUMBERS[0], NUMBERS[1]
    at_standin.refuse(blacklisted, 406, "UserInBlacklist")
    at_standin.refuse(invalid, 403, "InvalidPhoneNumber")
    at_standin.http_error(429, count=1, retry_after=0)
    bid = client.post("/api/v1/broadcasts", json=request(), headers=API_HEADERS).json["id"]
    outcome = run(app, bid)
    assert outcome == "done"
    rows = list(deliveries(db, bid).values())
    identity = app.extensions["identity"]
    by_number = {}
    for row in rows:
        reporter = db.get(Reporter, row.reporter_id)
        by_number[identity.decrypt(reporter.phone_encrypted)] = (row, reporter)
    row, reporter = by_number[blacklisted]
    assert row.status == "failed" and reporter.opted_out  # the gateway's blacklist is an opt-out
    row, _ = by_number[invalid]
    assert row.status == "failed" and row.attempts == 1  # permanent: tried once
    others = [by_number[n][0] for n in NUMBERS[2:]]
    assert {r.status for r in others} == {"sent"}
    assert sorted(s.to for s in at_standin.sent) == sorted(NUMBERS[2:])  # the 429 sent nothing twice


def test_delivery_reports_update_each_delivery_in_any_order(app, client, db, people, at_standin):
    bid = client.post("/api/v1/broadcasts", json=request(), headers=API_HEADERS).json["id"]
    assert run(app, bid) == "done"
    sent = {s.to: s.message_id for s in at_standin.sent}
    first, second = sent[NUMBERS[0]], sent[NUMBERS[1]]

    def report(provider_id: str, status: str, reason: str | None = None) -> int:
        form = {"id": provider_id, "status": status, "phoneNumber": NUMBERS[0], "networkCode": "63002",
                "retryCount": "0", **({"failureReason": reason} if reason else {})}
        return client.post(DELIVERY, data=form, headers=basic(AT_USER, AT_PASSWORD)).status_code

    assert report(first, "Success") in (200, 204)
    assert report(first, "Sent") in (200, 204)  # late and older: does not undo "delivered"
    assert report(second, "Failed", "DeliveryFailure") in (200, 204)
    assert report(second, "Failed", "DeliveryFailure") in (200, 204)  # twice: the same
    db.expire_all()
    status = {m.provider_id: m.status for m in db.scalars(select(Message).where(Message.broadcast_id == bid))}
    assert status[first] == "delivered" and status[second] == "undelivered"
    shown = client.get(f"/api/v1/broadcasts/{bid}", headers=API_HEADERS).json["deliveries"]
    assert shown["delivered"] == 1 and shown["undelivered"] == 1 and shown["sent"] == len(NUMBERS) - 2
