"""Redis and the RQ queue: connections, and the only place jobs are enqueued.

Jobs are named by their dotted path, so the modules that enqueue them (the inbox, the
outbox, the sweep) never import the jobs module, and the jobs may import them.
Every job takes ids, never ORM objects.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta, timezone

import redis
from flask import current_app, has_app_context
from rq import Queue, Retry
from rq.job import Job, JobStatus
from sqlalchemy.exc import SQLAlchemyError

from service import embedded_redis
from service.db import get_session
from service.models import Message

log = logging.getLogger(__name__)
QUEUE = "alerte"
PROCESS_PENDING = "service.jobs.process_pending"
SEND_MESSAGE = "service.jobs.send_message"
SWEEP = "service.jobs.sweep"
BROADCAST_FANOUT = "service.jobs.broadcast_fanout"
BROADCAST_SEND = "service.jobs.broadcast_send"
PLACE_CALLBACK = "service.jobs.place_callback"
FETCH_RECORDING = "service.jobs.fetch_recording"
# Broadcasts have their own queues, after the reporters' one: a worker takes every job
# of QUEUE first, then urgent broadcasts, then routine ones (service/scheduler.py).
BROADCAST_QUEUES = {"urgent": "alerte-broadcast-urgent", "routine": "alerte-broadcast-routine"}
# Retraining the understanding (service/retraining.py) takes minutes: only a worker started
# for it (`alerte worker --queues training`) takes its jobs, so it never holds a reply back.
TRAINING_QUEUE = "alerte-training"
RETRAIN = "service.jobs.retrain"
# A send job in these states will still run. Not STARTED: the sweep only looks at rows
# still "queued" well after they were written, and a live worker claims its row within
# milliseconds of starting, so a started job over a queued row belongs to a worker that
# died first (found by tests/faults: an SMPP bind killed between the two); queueing it
# again is safe, since only one claim of the row (queued -> sending) can succeed.
WAITING = (JobStatus.QUEUED, JobStatus.SCHEDULED, JobStatus.DEFERRED)
SEND_RETRY = Retry(max=4, interval=[10, 60, 300, 900])  # bounded again by MAX_SEND_ATTEMPTS


# A worker's connections: longer than RQ's blocking dequeue (its worker_ttl 420 s - 15,
# plus 10). Set here, not left to RQ: RQ raises the timeout only for connections made
# after the worker is built, and redis-py's default of 5 s on one made before (the sweep
# thread's) cut every dequeue after 5 s, and RQ then waited up to a minute between
# listens (found by scripts/bench_broadcast.py: senders starting 7-9 s late).
BLOCKING_SOCKET_TIMEOUT = 420


def connect(url: str, blocking: bool = False) -> redis.Redis:
    """Short timeouts for the web (Redis down must not hang a webhook); for a worker's
    blocking reads, longer than they block (keepalive notices a dead peer meanwhile)."""
    if blocking:
        return redis.Redis.from_url(url, health_check_interval=30, socket_timeout=BLOCKING_SOCKET_TIMEOUT,
                                    socket_keepalive=True)
    return redis.Redis.from_url(url, socket_timeout=2, socket_connect_timeout=1)


def init_app(app) -> None:
    url = app.config.get("REDIS_URL") or embedded_redis.url()
    app.config["REDIS_URL"] = url
    app.extensions["redis"] = connect(url)
    app.extensions["queue"] = Queue(QUEUE, connection=app.extensions["redis"])


def _mark_key(reporter_id: int) -> str:
    return f"alerte:pending-job:{reporter_id}"


def schedule_pending(connection: redis.Redis, queue: Queue, reporter_id: int, *, delay: float = 0,
                     mark_ttl: int = 300, again: bool = False) -> bool:
    """Queue the processing of a reporter's pending messages once; False if Redis is down.

    A mark per reporter keeps jobs from piling up: while a job is queued, waiting or
    running, more messages of that reporter are simply found by it. `again` is for the
    job re-queueing itself (it holds the mark). The mark expires, so a worker killed
    mid-job blocks nothing for long: the sweep queues the reporter again.
    """
    try:
        key = _mark_key(reporter_id)
        if again:
            connection.set(key, 1, ex=int(delay + mark_ttl))
        elif not connection.set(key, 1, nx=True, ex=int(delay + mark_ttl)):
            return True  # a queued, running or waiting job will see this message too
        try:
            if delay > 0:
                queue.enqueue_in(timedelta(seconds=delay), PROCESS_PENDING, reporter_id, job_timeout=600)
            else:
                queue.enqueue(PROCESS_PENDING, reporter_id, job_timeout=600)
        except redis.RedisError:
            connection.delete(key)
            raise
        return True
    except redis.RedisError:
        log.warning("Redis down: reporter %s left pending for the sweep", reporter_id)
        return False


def clear_mark(connection: redis.Redis, reporter_id: int) -> None:
    try:
        connection.delete(_mark_key(reporter_id))
    except redis.RedisError:
        pass  # it expires by itself


def enqueue_send(queue: Queue, message_id: int, unless_waiting: bool = False,
                 queue_name: str | None = None, first: bool = False) -> bool:
    """Queue one send; False if Redis is down (the sweep will find the row queued).

    `unless_waiting` (the sweep): leave a job that is queued or waiting for its retry
    alone, so its retry count is not reset. The job goes on `queue_name`, else on the
    send queue of the message's channel where it names one (an SMPP bind sends only from
    its own process; its broadcast deliveries on the lower-priority `broadcast_queue`),
    else on `queue`. `first`: ahead of the jobs already waiting (the
    "received" notice goes before the answer that a job will give).
    """
    name = queue_name or _send_queue_of(message_id)
    if name and name != queue.name:
        queue = Queue(name, connection=queue.connection)
    try:
        if unless_waiting:
            job = Job.fetch(f"send-{message_id}", connection=queue.connection) \
                if queue.connection.exists(f"rq:job:send-{message_id}") else None
            if job is not None and job.get_status(refresh=False) in WAITING:
                return True
        queue.enqueue(SEND_MESSAGE, message_id, retry=SEND_RETRY, job_id=f"send-{message_id}",
                      job_timeout=120, at_front=first)
        return True
    except redis.RedisError:
        log.warning("Redis down: message %s left queued for the sweep", message_id)
        return False


def enqueue_broadcast(connection: redis.Redis, priority: str, function: str, *args, at=None,
                      delay: float = 0, job_id: str | None = None) -> bool:
    """Queue a broadcast's job on its priority's queue, now, after `delay` s or `at` a
    time; False if Redis is down (the sweep starts what is due)."""
    rq_queue = Queue(BROADCAST_QUEUES[priority], connection=connection)
    try:
        if at is not None and at > datetime.now(timezone.utc):
            rq_queue.enqueue_at(at, function, *args, job_id=job_id, job_timeout=600)
        elif delay > 0:
            rq_queue.enqueue_in(timedelta(seconds=delay), function, *args, job_timeout=600)
        else:
            rq_queue.enqueue(function, *args, job_id=job_id, job_timeout=600)
        return True
    except redis.RedisError:
        log.warning("Redis down: broadcast job %s%s left for the sweep", function.rsplit(".", 1)[-1], args)
        return False


def _callback_mark(request_id: int) -> str:
    return f"alerte:callback-job:{request_id}"


CALLBACK_MARK_TTL = 300  # s a call-back's "job waiting" mark outlives the job's due time


def enqueue_callback(connection: redis.Redis, request_id: int, at: datetime | None = None,
                     unless_waiting: bool = False) -> bool:
    """Queue the dial of a call-back (service/callbacks.py) for `at` (now if None or past);
    False if Redis is down (the sweep finds the request due).

    Each job has its own id and a mark per request says one waits: a job that queues its
    request again from inside itself cannot reuse a fixed id, since RQ expires a finished
    job's hash, and the waiting one's with it. `unless_waiting` (the sweep): a marked
    request is left alone. The mark expires, so a lost job delays its request at most
    CALLBACK_MARK_TTL after its time; two jobs for one request are harmless (the dial is
    claimed once).
    """
    delay = max(0.0, (at - datetime.now(timezone.utc)).total_seconds()) if at is not None else 0.0
    key = _callback_mark(request_id)
    try:
        if not connection.set(key, 1, ex=int(delay + CALLBACK_MARK_TTL), nx=unless_waiting):
            return True  # the sweep: a job is waiting for it
        rq_queue = Queue(QUEUE, connection=connection)
        if delay > 0:
            rq_queue.enqueue_in(timedelta(seconds=delay), PLACE_CALLBACK, request_id, job_timeout=120)
        else:
            rq_queue.enqueue(PLACE_CALLBACK, request_id, job_timeout=120)
        return True
    except redis.RedisError:
        log.warning("Redis down: call-back %s left for the sweep", request_id)
        return False


def callback_waiting(connection: redis.Redis, request_id: int) -> bool:
    """Whether a call-back's job is waiting (its mark is there); False if Redis cannot say."""
    try:
        return bool(connection.exists(_callback_mark(request_id)))
    except redis.RedisError:
        return False


def _recording_mark(recording_id: int) -> str:
    return f"alerte:recording-job:{recording_id}"


def enqueue_recording(connection: redis.Redis, recording_id: int, delay: float = 0,
                      unless_waiting: bool = False) -> bool:
    """Queue the fetch of a caller's recording (service/recordings.py) after `delay` s;
    False if Redis is down (the sweep finds the recording available).

    Marked per recording like a call-back (enqueue_callback): `unless_waiting` (the
    sweep, a repeated callback) leaves a marked recording alone; the mark expires, so a
    job lost with its worker delays the fetch at most CALLBACK_MARK_TTL.
    """
    key = _recording_mark(recording_id)
    try:
        if not connection.set(key, 1, ex=int(delay + CALLBACK_MARK_TTL), nx=unless_waiting):
            return True  # a job is waiting for it
        rq_queue = Queue(QUEUE, connection=connection)
        if delay > 0:
            rq_queue.enqueue_in(timedelta(seconds=delay), FETCH_RECORDING, recording_id, job_timeout=300)
        else:
            rq_queue.enqueue(FETCH_RECORDING, recording_id, job_timeout=300)
        return True
    except redis.RedisError:
        log.warning("Redis down: recording %s left for the sweep", recording_id)
        return False


def recording_waiting(connection: redis.Redis, recording_id: int) -> bool:
    """Whether a recording's fetch job is waiting (its mark is there); False if Redis cannot say."""
    try:
        return bool(connection.exists(_recording_mark(recording_id)))
    except redis.RedisError:
        return False


def _send_queue_of(message_id: int) -> str | None:
    """The send queue of the message's channel (inside an app context), if any channel
    has one: a row this session already holds, else one look-up by primary key."""
    if not has_app_context():
        return None
    channels = current_app.extensions.get("channels")
    if channels is None or not any(c.send_queue for c in channels):
        return None
    try:
        message = get_session().get(Message, message_id)
    except SQLAlchemyError:
        log.warning("message %s: its channel unknown (database error); default send queue", message_id)
        return None
    if message is None:
        return None
    channel = channels.get(message.provider)
    return channel.broadcast_queue if message.broadcast_id is not None else channel.send_queue
