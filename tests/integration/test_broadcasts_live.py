"""Safety broadcasts end to end: people sign up by SMS in their language (the real app,
with Rasa and the action server up for everything else they write), a broadcast is
posted to the API, real RQ workers take its jobs off the real Redis queues and send
through the real twilio client to the stand-in, answers come back by SMS and are
counted; SQLite and PostgreSQL.

The workers here run in this process (burst mode, RQ's own scheduler for the delayed
continuations); tests/faults runs them as processes and kills them.
"""

from __future__ import annotations

import time

import pytest
from rq import SimpleWorker
from sqlalchemy import select

from service import queue
from service.db import get_session
from service.models import Broadcast, Subscriber
from tests.integration.phone import says

API = {"Authorization": "Bearer integration-api-token"}
TEXTS = {"fr": "Etes-vous en securite ? 1 Oui 2 Non 3 Nous partons",
         "sw": "Muko salama? 1 Ndiyo 2 Hapana 3 Tunaondoka",
         "ln": "Bozali malamu? 1 Iyo 2 Te 3 Tozali kokende"}
QUESTION = {"answers": {"1": "safe", "2": "not safe", "3": "leaving"}}
SIGN_UPS = {  # join word, consent, place, language (1 fr, 2 sw, 3 ln)
    "fr": ["INSCRIPTION", "oui", "Goma", "1"],
    "sw": ["JIUNGE", "1", "Beni", "2"],
    "ln": ["KOTA", "1", "Bunia", "3"],
}


@pytest.fixture
def send_broadcasts(app):
    """Run the app's queued jobs (replies and both broadcast queues) until `broadcast_id`
    is sent, with the sweep in between as the scheduler runs it."""
    from service import broadcast_sending
    from service.inbox import Services

    def run(broadcast_id: int, deadline: float = 90) -> str:
        with app.app_context():
            svc = Services.current()
            queues = [app.extensions["queue"]] + [
                queue.Queue(name, connection=svc.redis) for name in queue.BROADCAST_QUEUES.values()]
            end = time.monotonic() + deadline
            while time.monotonic() < end:
                SimpleWorker(queues, connection=svc.redis).work(burst=True, with_scheduler=True)
                svc.session.expire_all()
                state = svc.session.get(Broadcast, broadcast_id).state
                if state not in ("scheduled", "sending"):
                    return state
                broadcast_sending.sweep(svc)
                time.sleep(0.5)
            return svc.session.get(Broadcast, broadcast_id).state
    return run


def sign_up(phone, lang: str):
    person = phone()
    replies = [person.send(text) for text in SIGN_UPS[lang]]
    assert says(replies[0], "subscribe_consent", lang), replies[0]
    assert says(replies[1], "subscribe_place", lang), replies[1]
    assert says(replies[-1], "subscribed", lang), replies[-1]
    return person


def test_sign_up_by_sms_then_a_broadcast_in_each_language_and_its_answers(app, client, phone, twilio_standin,
                                                                          send_broadcasts):
    people = {lang: sign_up(phone, lang) for lang in SIGN_UPS}
    reporter = phone()
    assert reporter.send("bonjour")  # a reporter, not a subscriber: never reached by a broadcast
    with app.app_context():
        subs = get_session().scalars(select(Subscriber)).all()
        assert sorted((s.language, s.place_name, s.status) for s in subs) == [
            ("fr", "Goma", "active"), ("ln", "Bunia", "active"), ("sw", "Beni", "active")]

    created = client.post("/api/v1/broadcasts", headers=API,
                          json={"texts": TEXTS, "targets": {"all": True}, "priority": "urgent",
                                "status": "Exercise", "question": QUESTION})
    assert created.status_code == 201, created.json
    assert {lang: v["recipients"] for lang, v in created.json["languages"].items()} == {"fr": 1, "sw": 1, "ln": 1}
    before = len(twilio_standin.sent)
    assert send_broadcasts(created.json["id"]) == "sent"
    sent = {m.to: m.body for m in twilio_standin.sent[before:]}
    assert sent == {people[lang].number: TEXTS[lang] for lang in SIGN_UPS}  # each once, in their language
    shown = client.get(f"/api/v1/broadcasts/{created.json['id']}", headers=API).json
    assert shown["deliveries"].get("sent", 0) + shown["deliveries"].get("delivered", 0) == 3

    assert says(people["sw"].send("1"), "broadcast_answer_thanks", "sw")
    assert says(people["fr"].send("2"), "broadcast_answer_thanks", "fr")
    # an answer followed by a report: counted, and the report goes to the conversation
    reply = people["ln"].send("3 kasi bato ya mandoki bayei na Bunia")
    assert not says(reply, "broadcast_answer_thanks", "ln"), reply
    tally = client.get(f"/api/v1/broadcasts/{created.json['id']}/replies", headers=API).json
    assert {n: a["count"] for n, a in tally["answers"].items()} == {"1": 1, "2": 1, "3": 1}

    # STOP stops the next broadcast at once
    assert says(people["fr"].send("STOP"), "opted_out", "fr")
    second = client.post("/api/v1/broadcasts", headers=API,
                         json={"texts": TEXTS, "targets": {"all": True}, "priority": "routine", "status": "Exercise"})
    assert second.status_code == 201
    before = len(twilio_standin.sent)
    assert send_broadcasts(second.json["id"]) == "sent"
    assert sorted(m.to for m in twilio_standin.sent[before:]) == sorted(
        [people["sw"].number, people["ln"].number])
    cap = client.get(f"/api/v1/broadcasts/{second.json['id']}/cap.xml", headers=API)
    from service import cap as cap_module
    assert cap.status_code == 200 and cap_module.validate(cap.data) == []
