"""Stored first, one at a time, kept when the engine or Redis is down, STOP honoured."""

from __future__ import annotations

import threading

from bot.understanding import for_nlu

import pytest
from rq import Queue
import redis
from sqlalchemy import select

from bot import messages
from service import inbox, outbox, scheduler
from service.models import Message, Reporter
from tests.conftest import REPORTER, replies


def _inbound(db):
    db.rollback()
    return db.scalars(select(Message).where(Message.direction == "in").order_by(Message.id)).all()


def _reporter(db) -> Reporter:
    db.rollback()
    return db.scalar(select(Reporter))


def test_two_messages_at_once_from_one_sender_reach_the_engine_in_order_never_together(app, text_in, db, engine,
                                                                                      twilio_standin):
    engine.delay = 0.4
    barrier = threading.Barrier(2)
    results = {}

    def send(body):
        barrier.wait()
        results[body] = replies(text_in(body))

    threads = [threading.Thread(target=send, args=(body,)) for body in ("Wameshambulia Kasindi", "Watu watatu wamekufa")]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    # the later one, if it got the lock first, leaves the turn to a job: order is kept
    scheduler.work(app, burst=True)
    assert engine.max_active == 1
    stored = [m.body for m in sorted(_inbound(db), key=lambda m: (m.created_at, m.id))]
    assert engine.texts == [for_nlu(body) for body in stored]  # arrival order
    assert all(m.status == "processed" for m in _inbound(db))
    # each is answered once: in its own TwiML (handed), or later through the channel
    outbound = db.scalars(select(Message).where(Message.direction == "out")).all()
    assert sorted(o.reply_to_id for o in outbound) == [m.id for m in _inbound(db)]
    in_twiml = [text for texts in results.values() for text in texts if not text.startswith("Tume")]
    assert sorted(in_twiml) == sorted(o.body for o in outbound if o.status == "handed")
    assert sorted(s.body for s in twilio_standin.sent) == sorted(o.body for o in outbound if o.status == "sent")
    assert sorted(o.body for o in outbound) == sorted(f"Recu: {for_nlu(body)}" for body in stored)


def test_the_message_is_committed_before_the_engine_is_asked(app, text_in, engine):
    seen = []

    def reply(text, metadata):
        with app.app_context():  # another session: only committed rows are visible
            session = app.extensions["db"].sessions.session_factory()
            seen.append(session.get(Message, metadata["message_id"]).status)
            session.close()
        return []

    engine.reply = reply
    text_in("Kuna risasi")
    assert seen == ["processing"]  # stored, and claimed for this turn, before the engine is asked


def test_an_empty_answer_is_a_failure_the_message_waits_and_the_reporter_hears_received(app, text_in, db, engine):
    """Rasa answers [] when an action failed or the action server is down."""
    engine.reply = lambda text, metadata: []
    assert replies(text_in("Kuna risasi Kasindi")) == [messages.render("received", "sw")]
    [message] = _inbound(db)
    assert message.status == "pending" and message.attempts == 1
    assert "empty answer" in message.failure_reason
    assert db.scalars(select(Message).where(Message.direction == "out")).all() == []


def test_engine_down_the_reporter_hears_received_in_their_language_and_a_job_waits(app, text_in, db, engine, redis_url):
    text_in("SW")  # states Swahili while the engine is up
    engine.down = True
    response = text_in("Wameteka watoto watatu Lubero")
    assert response.status_code == 200
    assert replies(response) == [messages.render("received", "sw")]
    message = _inbound(db)[-1]
    assert message.status == "pending"
    jobs = Queue("alerte", connection=redis.Redis.from_url(redis_url)).jobs
    assert [(j.func_name, j.args) for j in jobs] == [("service.jobs.process_pending", (message.reporter_id,))]
    engine.down = False


def test_a_second_message_while_the_engine_is_down_does_not_pile_up_jobs(app, text_in, engine, redis_url):
    engine.down = True
    text_in("Wanamgambo wamefika")
    text_in("Wako wengi")
    assert len(Queue("alerte", connection=redis.Redis.from_url(redis_url)).jobs) == 1


def test_redis_down_the_message_is_still_stored_and_answered(app_config, db_closed_redis):
    app, client_send, session = db_closed_redis
    response = client_send("Bato ya mandoki bazali awa")
    assert response.status_code == 200
    [reply] = replies(response)
    assert reply in {messages.render("received", lang) for lang in ("fr", "sw", "ln")}
    [message] = session.scalars(select(Message).where(Message.direction == "in")).all()
    assert message.status == "pending" and message.body == "Bato ya mandoki bazali awa"


@pytest.fixture
def db_closed_redis(app_config, sign):
    """The app with REDIS_URL on a port where nothing listens."""
    from service.app import create_app
    from service.db import get_session
    from service.stack import free_port
    from tests.conftest import _empty_tables, new_sid, PUBLIC_BASE_URL, ACCOUNT_SID

    app = create_app({**app_config, "REDIS_URL": f"redis://127.0.0.1:{free_port()}/0"})
    _empty_tables(app)
    client = app.test_client()

    def send(body):
        params = {"MessageSid": new_sid(), "AccountSid": ACCOUNT_SID, "From": REPORTER, "Body": body}
        path = "/webhooks/twilio/sms"
        return client.post(path, data=params, headers={"X-Twilio-Signature": sign(PUBLIC_BASE_URL + path, params)})

    with app.app_context():
        yield app, send, get_session()
    app.extensions["db"].engine.dispose()


def test_stop_opts_out_answers_in_their_language_and_suppresses_later_sends(app, text_in, db, engine):
    text_in("KOTIKA")  # Lingala opt-out word, first contact
    reporter = _reporter(db)
    assert reporter.opted_out and reporter.opted_out_at is not None
    assert engine.texts == ["/restart"]  # the conversation is reset, best effort
    # anything we initiate afterwards is stored as suppressed and never handed to Twilio
    later = outbox.record(db, reporter, "Alerte: route dangereuse", provider="twilio")
    db.commit()
    assert later.status == "suppressed"


def test_the_opt_out_confirmation_is_in_the_reporters_language(text_in, db):
    text_in("SW")
    response = text_in("STOP")
    assert replies(response) == [messages.render("opted_out", "sw")]


def test_stop_works_while_the_engine_and_redis_are_down(db_closed_redis, engine):
    app, send, session = db_closed_redis
    engine.down = True
    response = send("ARRET")
    assert response.status_code == 200
    assert replies(response) == [messages.render("opted_out", "fr")]
    assert session.scalar(select(Reporter)).opted_out


def test_start_brings_the_reporter_back(text_in, db):
    text_in("STOP")
    response = text_in("START")
    assert replies(response) == [messages.render("opted_in", "fr")]
    assert not _reporter(db).opted_out
    assert outbox.record(db, _reporter(db), "Alerte", provider="twilio").status == "queued"


def test_an_opted_out_reporter_can_still_report_and_is_answered(text_in, db, engine):
    text_in("STOP")
    response = text_in("wameua watu wawili beni")
    assert replies(response) == ["Recu: wameua watu wawili beni"]
    assert _reporter(db).opted_out  # writing to us is not opting back in


def test_a_turn_that_ran_but_timed_out_is_not_run_twice(app, text_in, db, engine):
    engine.slow = True  # the engine processes the turn but answers after our timeout
    text_in("Kuna vita Rutshuru")
    message = _inbound(db)[-1]
    assert message.status == "pending" and message.attempts == 1
    engine.slow = False
    with app.app_context():
        svc = inbox.Services.current()
        inbox.process(svc, message.reporter_id)
    assert engine.texts == ["kuna vita rutshuru"]  # replayed from the engine's record
    assert _inbound(db)[-1].status == "processed"
