"""The message core's guarantees at the unit layer (fake engine; real Redis, real SQLite
and PostgreSQL, the real twilio client against the stand-in). The same guarantees are
proved against the real processes, killed and restarted, in tests/faults."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select

from bot import messages
from bot.engine import EngineUnavailable
from service import inbox, jobs, outbox, scheduler, spool
from service.models import Message, Reporter, utcnow
from tests.conftest import OTHER_REPORTER, REPORTER, replies


def _rows(db, direction):
    db.rollback()
    return db.scalars(select(Message).where(Message.direction == direction).order_by(Message.id)
                      .execution_options(populate_existing=True)).all()


def _fresh(db, message_id):
    db.rollback()
    db.expire_all()
    return db.get(Message, message_id)


def test_a_message_that_always_breaks_the_turn_fails_after_its_attempts_and_the_next_one_goes_on(
        app, text_in, db, engine, twilio_standin):
    def reply(text, metadata):
        if "poison" in text:
            raise ValueError("a bug this message triggers")
        return [{"text": f"Recu: {text}"}]

    engine.reply = reply
    app.config["MAX_ATTEMPTS"] = 3
    assert replies(text_in("poison Kasindi")) == [messages.render("received", "fr")]
    text_in("wanamgambo wamefika Beni")
    for _ in range(4):  # each pass is one more attempt; the back-off is skipped here
        with app.app_context():
            svc = inbox.Services.current()
            rid = _rows(db, "in")[0].reporter_id
            inbox.process(svc, rid)
    first, second = _rows(db, "in")
    assert first.status == "failed" and first.attempts == 3
    assert "ValueError" in first.failure_reason and "after 3 attempts" in first.failure_reason
    assert second.status == "processed"
    assert [s.body for s in twilio_standin.sent] == ["Recu: wanamgambo wamefika beni"]


def test_failed_messages_are_listed_for_operators_without_the_number(app, client, text_in, db, engine):
    engine.reply = lambda text, metadata: (_ for _ in ()).throw(ValueError("boom"))
    app.config["MAX_ATTEMPTS"] = 1
    text_in("Watu wamekufa Kamango")
    with app.app_context():
        inbox.process(inbox.Services.current(), _rows(db, "in")[0].reporter_id)
    response = client.get("/api/v1/messages?status=failed", headers={"Authorization": "Bearer test-api-token"})
    assert response.status_code == 200
    [listed] = response.get_json()["messages"]
    assert listed["body"] == "Watu wamekufa Kamango" and listed["status"] == "failed"
    assert "ValueError" in listed["failure_reason"] and listed["received_at"]
    assert REPORTER not in response.get_data(as_text=True) and REPORTER[1:] not in response.get_data(as_text=True)
    assert client.get("/api/v1/messages?status=failed").status_code == 401
    assert client.get("/api/v1/messages?status=nope",
                      headers={"Authorization": "Bearer test-api-token"}).status_code == 400


def test_an_outage_does_not_use_up_a_messages_attempts(app, text_in, db, engine):
    engine.down = True
    app.config["MAX_ATTEMPTS"] = 2
    text_in("Kuna vita Rutshuru")
    for _ in range(4):
        with app.app_context():
            inbox.process(inbox.Services.current(), _rows(db, "in")[0].reporter_id)
    [message] = _rows(db, "in")
    assert message.status == "pending"  # still waiting, not failed
    assert message.attempts <= 1  # at most the webhook's own try counts


def test_the_webhook_answers_received_within_its_budget_when_the_engine_is_slow(app, text_in, db, engine):
    app.config["WEBHOOK_BUDGET"] = 1.5
    seen = []
    engine.converse_timeouts = seen

    def reply(text, metadata):
        return [{"text": "late"}]

    original = engine.converse

    def converse(sender, text, metadata=None, timeout=None):
        seen.append(timeout)
        if timeout is not None and timeout < 5:
            raise EngineUnavailable("timed out")  # what requests does past the timeout
        return original(sender, text, metadata, timeout)

    engine.converse = converse
    response = text_in("Bato ya mandoki bayei na Rugari")
    assert replies(response) == [messages.render("received", "ln")]
    assert seen and seen[0] <= 0.5  # the engine got what was left of 1.5 s minus the margin
    assert _rows(db, "in")[0].status == "pending"


def test_stop_committed_while_a_job_holds_an_old_copy_of_the_reporter_stops_its_sends(
        app, text_in, db, engine, twilio_standin):
    engine.down = True
    text_in("Wanamgambo wamefika Kasindi")  # pending: the job will answer it
    engine.down = False
    stop_sent, busy = [], []

    def reply(text, metadata):  # STOP arrives while the job is in the middle of this turn
        if not busy:
            busy.append(True)
            stop_sent.append(replies(text_in("ACHA")))
        return [{"text": f"Recu: {text}"}]

    engine.reply = reply
    with app.app_context():
        svc = inbox.Services.current()
        svc.session.get(Reporter, _rows(db, "in")[0].reporter_id)  # the job's copy: not opted out
        inbox.process(svc, _rows(db, "in")[0].reporter_id)
    assert stop_sent == [[messages.render("opted_out", "sw")]]
    assert twilio_standin.sent == []  # the old message's reply was never handed over
    statuses = {m.body: m.status for m in _rows(db, "out")}
    assert statuses["Recu: wanamgambo wamefika kasindi"] == "suppressed"


def test_database_down_the_message_is_spooled_answered_and_imported_once(app_config, sign, db_down_app, app, db,
                                                                          engine, spool_dir):
    down_client = db_down_app.test_client()
    response = _post(down_client, sign, "Watu wenye silaha wameteka watoto Lubero", sid="SMspooled1")
    assert response.status_code == 200
    assert replies(response) == [messages.render("received", "sw")]
    [path] = spool.pending(spool_dir)
    assert REPORTER not in path.read_text() and REPORTER[1:] not in path.read_text()  # encrypted
    _post(down_client, sign, "Watu wenye silaha wameteka watoto Lubero", sid="SMspooled1")  # a repeat
    assert len(spool.pending(spool_dir)) == 1
    # the database is back: the sweep imports it, once, even if asked twice
    with app.app_context():
        assert jobs.sweep()["spooled"] == 1
        assert jobs.sweep()["spooled"] == 0
    [message] = _rows(db, "in")
    assert message.body == "Watu wenye silaha wameteka watoto Lubero" and message.provider_id == "SMspooled1"
    scheduler.work(app, burst=True)
    assert _rows(db, "in")[0].status == "processed"
    assert spool.pending(spool_dir) == []


def test_a_send_whose_answer_was_cut_is_found_in_the_providers_record_not_sent_twice(app, db, twilio_standin):
    message = _queued(db)
    twilio_standin.cut(1)  # Twilio takes it, the connection drops before the answer
    assert jobs.send_message(message.id) == "sent"
    assert len(twilio_standin.sent) == 1 and twilio_standin.lookups == 1
    assert _rows(db, "out")[0].provider_id == twilio_standin.sent[0].sid


def test_a_send_left_claimed_by_a_dead_worker_is_recovered_once(app, db, twilio_standin):
    message = _queued(db)
    assert jobs.send_message(message.id) == "sent"
    claimed = _queued(db, body="Alerte: restez a l'abri")
    # a worker claimed this one, then died before (or after) handing it over
    claimed.status, claimed.claimed_at, claimed.attempts = "sending", utcnow() - timedelta(minutes=10), 1
    db.commit()
    with app.app_context():
        assert jobs.sweep()["recovered"] == 1
    assert _rows(db, "out")[1].status == "queued"  # the provider never had it: queued again
    assert jobs.send_message(claimed.id) == "sent"
    assert [s.body for s in twilio_standin.sent] == [message.body, claimed.body]
    # the same, when the provider did take it before the worker died
    taken = _queued(db, body="Alerte: route fermee")
    assert jobs.send_message(taken.id) == "sent"
    row = db.get(Message, taken.id)
    row.status, row.provider_id, row.claimed_at = "sending", None, utcnow() - timedelta(minutes=10)
    db.commit()
    with app.app_context():
        jobs.sweep()
    assert _fresh(db, taken.id).status == "sent" and len(twilio_standin.sent) == 3


def test_sends_are_bounded(app, db, twilio_standin):
    twilio_standin.fail_for(REPORTER, 20500, status=503)
    message = _queued(db)
    for _ in range(app.config["MAX_SEND_ATTEMPTS"]):
        with pytest.raises(Exception):
            jobs.send_message(message.id)
    assert jobs.send_message(message.id) == "failed"
    assert _fresh(db, message.id).error_code == "attempts"


def test_no_send_decrypts_an_expired_number(app, db, twilio_standin):
    message = _queued(db)
    reporter = db.get(Reporter, message.reporter_id)
    reporter.phone_expires_at = utcnow() - timedelta(days=1)
    db.commit()
    assert jobs.send_message(message.id) == "failed"
    assert twilio_standin.sent == [] and _fresh(db, message.id).error_code == "no_number"


def test_the_sweep_purges_expired_numbers(app, db):
    message = _queued(db)
    reporter = db.get(Reporter, message.reporter_id)
    reporter.phone_expires_at = utcnow() - timedelta(days=1)
    db.commit()
    with app.app_context():
        assert jobs.sweep()["purged"] == 1
    db.rollback()
    db.expire_all()
    assert db.get(Reporter, reporter.id).phone_encrypted is None


def test_a_flood_from_one_phone_is_stored_whole_and_processed_at_its_pace(app, text_in, db, engine, twilio_standin):
    app.config["SENDER_RATE"] = 3
    answered = [replies(text_in(f"ujumbe {i} Kasindi")) for i in range(8)]
    other = replies(text_in("Kuna vita Beni", sender=OTHER_REPORTER))
    assert other == ["Recu: kuna vita beni"]  # the other sender is not held up
    assert sum(1 for a in answered if a) == 3 and all(a == [] for a in answered[3:])
    flood = [m for m in _rows(db, "in") if m.body.startswith("ujumbe")]
    assert len(flood) == 8 and [m.status for m in flood].count("processed") == 3
    with app.app_context():  # a job in the same minute goes no faster
        outcome = inbox.process(inbox.Services.current(), flood[0].reporter_id)
    assert outcome.processed == 0 and outcome.more and outcome.wait > 0


def _queued(db, number=REPORTER, body="Alerte: route Beni-Butembo dangereuse"):
    from flask import current_app

    from service.reporters import seen

    reporter = seen(db, current_app.extensions["identity"], number)
    db.flush()
    message = outbox.record(db, reporter, body, provider="twilio")
    db.commit()
    return message


def _post(client, sign, body, sid):
    from tests.conftest import ACCOUNT_SID, PUBLIC_BASE_URL

    params = {"MessageSid": sid, "AccountSid": ACCOUNT_SID, "From": REPORTER, "To": "+243990000000", "Body": body}
    path = "/webhooks/twilio/sms"
    return client.post(path, data=params, headers={"X-Twilio-Signature": sign(PUBLIC_BASE_URL + path, params)})


@pytest.fixture
def db_down_app(app_config):
    """The app with its database on a port where nothing listens (same spool, Redis)."""
    from service.app import create_app
    from service.stack import free_port

    down = create_app({**app_config, "DATABASE_URL": f"postgresql://postgres@127.0.0.1:{free_port()}/none"})
    yield down
    down.extensions["db"].engine.dispose()


def test_a_message_another_process_is_answering_is_not_answered_twice_even_without_the_lock(
        app, text_in, db, engine, twilio_standin):
    engine.down = True
    text_in("Wanamgambo wako Kamango")
    engine.down = False
    [message] = _rows(db, "in")
    # another process claimed this turn a moment ago (its lock expired, or Redis lost it)
    message.status, message.claimed_at = "processing", utcnow()
    db.commit()
    with app.app_context():
        outcome = inbox.process(inbox.Services.current(), message.reporter_id)
    assert engine.calls == [] and outcome.more  # not played twice; looked at again later
    # that process died: once its claim is older than the lease, the turn is taken over
    message = _fresh(db, message.id)
    message.claimed_at = utcnow() - timedelta(seconds=app.config["LOCK_TIMEOUT"] + 1)
    db.commit()
    with app.app_context():
        inbox.process(inbox.Services.current(), message.reporter_id)
    assert len(engine.calls) == 1 and _fresh(db, message.id).status == "processed"
    assert len(twilio_standin.sent) == 1


def test_messages_spooled_during_an_outage_are_answered_in_the_order_they_were_written(
        app_config, sign, db_down_app, app, db, engine, twilio_standin, spool_dir):
    down_client = db_down_app.test_client()
    _post(down_client, sign, "Wanamgambo wameingia Kasindi", sid="SMfirst")  # spooled
    _post(app.test_client(), sign, "Wako wengi sana", sid="SMsecond")  # the database is back
    with app.app_context():
        jobs.sweep()
    scheduler.work(app, burst=True)
    assert [c["text"] for c in engine.calls] == ["wanamgambo wameingia kasindi", "wako wengi sana"]


def test_a_spooled_message_keeps_what_its_reply_must_carry_back(tmp_path):
    """Africa's Talking's link id survives a database outage, so the premium reply to a
    spooled message still carries it; the number is encrypted on disk."""
    from datetime import datetime, timezone

    from service.channels.base import InboundMessage
    from service.privacy import Identity

    identity = Identity("spool-test-secret")
    inbound = InboundMessage(provider_id="ATXid_1", sender=REPORTER, recipient="12345", body="bjr",
                             received_at=datetime.now(timezone.utc), reply_context={"link_id": "link-42"})
    path = spool.write(tmp_path, identity, "africastalking", inbound)
    assert REPORTER not in path.read_text(encoding="utf-8")
    provider, back = spool.read(path, identity)
    assert provider == "africastalking" and back.reply_context == {"link_id": "link-42"}
    assert back.sender == REPORTER and back.provider_id == "ATXid_1"
