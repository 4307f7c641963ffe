"""Work done later: pending messages once the engine is back, sends, retries, the sweep."""

from __future__ import annotations

from datetime import timedelta

import pytest
import redis
from rq import Queue
from sqlalchemy import select

from bot import messages
from service import jobs, outbox, scheduler
from service import queue as queue_module
from service.channels.base import SendError
from service.models import Message, Reporter, utcnow
from tests.conftest import OTHER_REPORTER, REPORTER, replies


def _queue(redis_url) -> Queue:
    return Queue(queue_module.QUEUE, connection=redis.Redis.from_url(redis_url))


def _messages(db, direction):
    db.rollback()
    return db.scalars(select(Message).where(Message.direction == direction).order_by(Message.id)).all()


def test_messages_kept_while_the_engine_was_down_are_answered_by_sms_when_it_is_back(
        app, text_in, db, engine, twilio_standin, redis_url):
    engine.down = True
    assert replies(text_in("wanamgambo wameingia kasindi")) == [messages.render("received", "sw")]
    assert replies(text_in("wako na bunduki")) == [messages.render("received", "sw")]
    engine.down = False

    scheduler.work(app, burst=True)

    assert engine.texts == ["wanamgambo wameingia kasindi", "wako na bunduki"]  # as Rasa reads them
    assert [m.status for m in _messages(db, "in")] == ["processed", "processed"]
    assert [(s.to, s.body) for s in twilio_standin.sent] == [
        (REPORTER, "Recu: wanamgambo wameingia kasindi"), (REPORTER, "Recu: wako na bunduki")]
    assert twilio_standin.sent[0].status_callback == "https://alerte.example.org/webhooks/twilio/status"
    out = _messages(db, "out")
    assert [(o.status, o.provider_id) for o in out] == [("sent", s.sid) for s in twilio_standin.sent]

    # the job runs again (a retry, the sweep): nothing is processed or sent twice
    _queue(redis_url).enqueue(jobs.process_pending, out[0].reporter_id)
    scheduler.work(app, burst=True)
    assert len(engine.calls) == 2 and len(twilio_standin.sent) == 2 and len(_messages(db, "out")) == 2


def test_a_job_finding_the_engine_still_down_fails_for_a_later_retry(app, text_in, db, engine, redis_url):
    engine.down = True
    text_in("Kuna vita")
    scheduler.work(app, burst=True)
    [message] = _messages(db, "in")
    assert message.status == "pending"
    from rq.registry import ScheduledJobRegistry
    assert len(ScheduledJobRegistry(queue=_queue(redis_url))) == 1  # retried in 10 s


def _queued_reply(db, number=REPORTER, body="Alerte: route Beni-Butembo dangereuse"):
    from flask import current_app

    from service.reporters import seen

    reporter = seen(db, current_app.extensions["identity"], number)
    db.flush()
    message = outbox.record(db, reporter, body, provider="twilio")
    db.commit()
    return reporter, message


def test_send_message_hands_the_sms_to_twilio_once(app, db, twilio_standin):
    reporter, message = _queued_reply(db)
    assert jobs.send_message(message.id) == "sent"
    assert jobs.send_message(message.id) == "sent"  # repeated job: no second SMS
    assert [(s.to, s.body) for s in twilio_standin.sent] == [(REPORTER, message.body)]


def test_sending_is_refused_for_an_opted_out_reporter(app, db, twilio_standin):
    reporter, message = _queued_reply(db)
    reporter.opted_out, reporter.opted_out_at = True, utcnow()
    db.commit()
    assert jobs.send_message(message.id) == "suppressed"
    assert twilio_standin.sent == []


def test_a_number_opted_out_at_the_carrier_is_opted_out_here_and_not_retried(app, db, twilio_standin):
    twilio_standin.fail_for(REPORTER, 21610)
    reporter, message = _queued_reply(db)
    assert jobs.send_message(message.id) == "failed"
    db.rollback()
    assert db.get(Message, message.id).error_code == "21610"
    assert db.get(Reporter, reporter.id).opted_out


def test_a_landline_fails_without_retry(app, db, twilio_standin):
    twilio_standin.fail_for(OTHER_REPORTER, 21614)
    reporter, message = _queued_reply(db, OTHER_REPORTER)
    assert jobs.send_message(message.id) == "failed"
    db.rollback()
    assert not db.get(Reporter, reporter.id).opted_out


def test_a_twilio_outage_is_retried(app, db, twilio_standin):
    twilio_standin.fail_for(REPORTER, 20500, status=503)
    reporter, message = _queued_reply(db)
    with pytest.raises(SendError) as raised:
        jobs.send_message(message.id)
    assert raised.value.retryable
    db.rollback()
    assert db.get(Message, message.id).status == "queued"  # the retry will send it
    del twilio_standin.errors[REPORTER]
    assert jobs.send_message(message.id) == "sent"


def test_the_sweep_picks_up_what_redis_being_down_left_behind(app, text_in, db, engine, redis_url):
    engine.down = True
    text_in("Watu wamekimbia")
    redis.Redis.from_url(redis_url).flushdb()  # as if the job had been lost
    [message] = _messages(db, "in")
    message.created_at = utcnow() - timedelta(minutes=5)
    reporter, late = _queued_reply(db, OTHER_REPORTER)
    late.created_at = utcnow() - timedelta(minutes=5)
    db.commit()
    assert jobs.sweep() == {"spooled": 0, "reporters": 1, "sends": 1, "recovered": 0, "abandoned": 0,
                            "purged": 0, "broadcasts": {"started": 0, "senders": 0, "expired": 0, "finished": 0}}
    assert sorted(j.func_name for j in _queue(redis_url).jobs) == [
        "service.jobs.process_pending", "service.jobs.send_message"]


def test_a_send_job_left_started_by_a_dead_worker_is_queued_again_by_the_sweep(app, db, redis_url, twilio_standin):
    """The worker (or an SMPP bind) died after starting the job and before claiming the
    row: the row stays queued and its job stays "started" forever unless the sweep takes
    it back. Sent once, afterwards."""
    from rq.job import Job, JobStatus

    reporter, message = _queued_reply(db)
    message.created_at = utcnow() - timedelta(minutes=5)
    db.commit()
    with app.app_context():
        assert queue_module.enqueue_send(app.extensions["queue"], message.id)
    job = Job.fetch(f"send-{message.id}", connection=redis.Redis.from_url(redis_url))
    job.set_status(JobStatus.STARTED)  # as the dead worker left it
    _queue(redis_url).remove(job)
    assert jobs.sweep()["sends"] == 1
    assert [j.id for j in _queue(redis_url).jobs] == [f"send-{message.id}"]
    scheduler.work(app, burst=True)
    assert [s.body for s in twilio_standin.sent] == [message.body]
    db.rollback()
    assert db.get(Message, message.id).status == "sent"


def test_a_workers_connections_outlast_rqs_blocking_dequeue(redis_url):
    """Every pooled connection of a worker (also one made before RQ's worker is built, as
    the sweep thread's is) waits longer than RQ blocks on a dequeue: redis-py's default
    of 5 s made every idle listen fail and RQ back off for up to a minute."""
    from rq import SimpleWorker

    from service import queue as queues

    connection = queues.connect(redis_url, blocking=True)
    early = connection.connection_pool.get_connection()  # made before the worker, like the sweep's
    try:
        worker = SimpleWorker([queues.Queue(queues.QUEUE, connection=connection)], connection=connection)
        assert early.socket_timeout is not None and early.socket_timeout > worker.connection_timeout
        assert connection.connection_pool.connection_kwargs["socket_timeout"] > worker.dequeue_timeout
    finally:
        connection.connection_pool.release(early)
