"""Sending a broadcast: fan-out to one delivery per recipient, then senders in chunks.

* **Fan-out** (one job per broadcast) writes the deliveries page by page, in subscriber
  id order, each page in one transaction with the cursor: a fan-out killed and run again
  goes on from the cursor, and the unique (broadcast, recipient) makes a page written
  twice write nothing new.
* **Senders** (a few per broadcast, `BROADCAST_SENDERS`) are chains of short RQ jobs:
  each claims a chunk of queued deliveries of one channel (one conditional UPDATE, so
  two senders never take the same row), re-reads opt-out and subscription, hands the
  chunk to the channel (`send_many`: Africa's Talking's bulk request, concurrent
  requests elsewhere), records every outcome, and after `BROADCAST_SLICE` seconds
  queues its own continuation at the back of its queue. The worker takes reporters'
  jobs first and urgent broadcasts before routine ones between two slices, so a reply
  waits at most one slice behind a broadcast (`alerte worker --queues replies` gives
  replies their own processes). Conversations go first for the CPU too
  (service/priority.py): while a reporter is answered a sender waits, at most
  BROADCAST_GIVE_WAY seconds per chunk, and a reporters' job waiting for this worker
  ends the slice at the next item (the rest of the chunk goes back, not an attempt).
* The channel's token bucket (service/bucket.py) holds the rate in segments per second
  across all processes; a throttling answer pauses the channel for everyone.
* Each sender holds a lease per slot in Redis; a sender killed with its worker leaves
  its lease to expire and the sweep starts the slot again. Deliveries it had claimed are
  settled by the sweep from the gateway's record (service/outbox.recover): sent, sent
  again, or failed "unknown_outcome", never sent twice.
"""

from __future__ import annotations

import logging
import time
from datetime import timedelta

from sqlalchemy import bindparam, func, select, text, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from bot.gsm7 import segments
from service import broadcasts, bucket, outbox, priority, queue, receipts, reporters, targeting
from service.broadcasts import ACTIVE, aware, expired
from service.channels.base import Outgoing, SendError
from service.models import Broadcast, Message, Reporter, Subscriber, utcnow

log = logging.getLogger(__name__)
RETRY = [5, 30, 120, 600]  # s before a delivery refused for a transient reason is tried again
THROTTLE_PAUSE = 2.0  # s when the provider throttles without saying how long
URGENT_FLAG = "alerte:broadcast:urgent-sending"  # routine senders give way while it is set
SENT, IDLE, GAVE_WAY = "sent", "idle", "gave-way"  # what a chunk did


def _lease(broadcast_id: int, slot: int | str) -> str:
    return f"alerte:broadcast:{broadcast_id}:{slot}"


# --- starting ---------------------------------------------------------------------------

def start(svc, broadcast: Broadcast) -> bool:
    """Queue the fan-out now or at send_at; False if Redis is down (the sweep starts it)."""
    return queue.enqueue_broadcast(svc.redis, broadcast.priority, queue.BROADCAST_FANOUT, broadcast.id,
                                   at=aware(broadcast.send_at), job_id=f"broadcast-fanout-{broadcast.id}")


def ensure_senders(svc, broadcast: Broadcast) -> int:
    """Start the sender slots that have no live lease; returns how many were started."""
    started = 0
    for slot in range(svc.config["BROADCAST_SENDERS"]):
        if svc.redis.set(_lease(broadcast.id, slot), 1, nx=True, ex=svc.config["BROADCAST_LEASE"]):
            if queue.enqueue_broadcast(svc.redis, broadcast.priority, queue.BROADCAST_SEND, broadcast.id, slot):
                started += 1
            else:
                svc.redis.delete(_lease(broadcast.id, slot))
    return started


# --- fan-out ----------------------------------------------------------------------------

def fanout(svc, broadcast_id: int) -> int:
    """Write the deliveries of a due broadcast; returns how many this run wrote."""
    session, config = svc.session, svc.config
    broadcast = session.get(Broadcast, broadcast_id)
    if broadcast is None or broadcast.state not in ACTIVE:
        return 0
    now = utcnow()
    if expired(broadcast, now):
        broadcasts.expire(session, broadcast, now)
        return 0
    if aware(broadcast.send_at) > now + timedelta(seconds=1):
        start(svc, broadcast)  # ran early (a sweep, a clock): wait for its time
        return 0
    lease = _lease(broadcast_id, "fanout")
    if not svc.redis.set(lease, 1, nx=True, ex=config["BROADCAST_LEASE"]):
        return 0  # another fan-out of this broadcast is running
    try:
        if broadcast.state == "scheduled":
            broadcast.state, broadcast.started_at = "sending", now
            session.commit()
        return _write_deliveries(svc, broadcast, lease)
    finally:
        svc.redis.delete(lease)


def _write_deliveries(svc, broadcast: Broadcast, lease: str) -> int:
    session, channels = svc.session, svc.channels
    targets = targeting.Targets.from_json(broadcast.targets)
    texts = {lang: (text, segments(text)) for lang, text in broadcast.texts.items()}
    insert = (pg_insert if session.get_bind().dialect.name == "postgresql" else sqlite_insert)(Message.__table__)
    insert = insert.on_conflict_do_nothing(index_elements=["broadcast_id", "reporter_id"])
    written, senders_started = 0, False
    while True:
        state = session.scalar(select(Broadcast.state).where(Broadcast.id == broadcast.id))
        if state != "sending":  # canceled or expired meanwhile, perhaps while a page was written:
            _withdraw_left(session, broadcast, state)  # its rows must not stay queued
            return written
        page, last = targeting.recipients(session, targets, broadcast.fanout_cursor, svc.config["BROADCAST_PAGE"])
        if last == broadcast.fanout_cursor:
            break
        now, rows = utcnow(), []
        for recipient in page:
            lang = broadcasts.language_for(recipient.language, broadcast.texts, broadcast.fallback_language)
            if lang is None:
                continue
            body, parts = texts[lang]
            channel = channels.get(recipient.channel).name  # a channel removed since: the default
            rows.append({"direction": "out", "channel": "sms", "provider": channel, "reporter_id": recipient.reporter_id,
                         "broadcast_id": broadcast.id, "body": body, "language": lang, "status": "queued",
                         "attempts": 0, "segments": parts, "created_at": now})
        if rows:
            _insert_page(session, insert, rows)
        broadcast.fanout_cursor = last
        session.commit()  # the page and the cursor together
        written += len(rows)
        svc.redis.set(lease, 1, ex=svc.config["BROADCAST_LEASE"])
        if rows:
            _queue_own_process_sends(svc, broadcast.id, Message.reporter_id.in_([r["reporter_id"] for r in rows]))
        if not senders_started and rows:
            ensure_senders(svc, broadcast)
            senders_started = True
    broadcast.fanout_done = True
    broadcast.recipients = session.scalar(select(func.count()).where(Message.broadcast_id == broadcast.id))
    session.commit()
    ensure_senders(svc, broadcast)
    log.info("broadcast %s: %s deliveries written", broadcast.id, broadcast.recipients)
    return written


def _withdraw_left(session, broadcast: Broadcast, state: str) -> None:
    """Deliveries a fan-out page wrote after a cancel or an expiry had withdrawn the
    queued ones end as the others did."""
    session.refresh(broadcast)
    if state == "canceled":
        broadcasts.cancel(session, broadcast)
    elif state == "expired":
        broadcasts.expire(session, broadcast)


# One statement per page on PostgreSQL: the page's columns as arrays. psycopg's
# executemany sends one INSERT per row (pipelined): about twice the time for 100,000
# deliveries (scripts/bench_broadcast.py).
_PG_PAGE = text(
    "INSERT INTO messages (direction, channel, provider, reporter_id, broadcast_id, body, language, status, "
    "attempts, segments, created_at) "
    "SELECT 'out', 'sms', t.provider, t.reporter_id, :broadcast_id, t.body, t.language, 'queued', 0, t.segments, "
    ":created_at FROM unnest(CAST(:providers AS text[]), CAST(:reporter_ids AS integer[]), CAST(:bodies AS text[]), "
    "CAST(:languages AS text[]), CAST(:segments AS integer[])) AS t(provider, reporter_id, body, language, segments) "
    "ON CONFLICT (broadcast_id, reporter_id) DO NOTHING")


def _insert_page(session, insert, rows: list[dict]) -> None:
    """A fan-out page's deliveries (all of one broadcast, one time); a row already
    written (a page written twice) is skipped."""
    if session.get_bind().dialect.name != "postgresql":
        session.execute(insert, rows)
        return
    session.execute(_PG_PAGE, {"broadcast_id": rows[0]["broadcast_id"], "created_at": rows[0]["created_at"],
                               **{key: [r[column] for r in rows] for key, column in (
                                   ("providers", "provider"), ("reporter_ids", "reporter_id"), ("bodies", "body"),
                                   ("languages", "language"), ("segments", "segments"))}})


def _own_process_channels(channels) -> list[str]:
    """Channels that send only from their own process (an SMPP bind)."""
    return [c.name for c in channels if c.send_queue]


def _queue_own_process_sends(svc, broadcast_id: int, *where, unless_waiting: bool = False) -> None:
    """Deliveries on a channel that sends only from its own process go there one job
    each, through the outbox, at the bind's own throughput."""
    own = _own_process_channels(svc.channels)
    if not own:
        return
    for message_id in svc.session.scalars(select(Message.id).where(
            Message.broadcast_id == broadcast_id, Message.provider.in_(own), Message.status == "queued", *where)):
        queue.enqueue_send(svc.queue, message_id, unless_waiting=unless_waiting)


# --- senders ----------------------------------------------------------------------------

def send_slice(svc, broadcast_id: int, slot: int) -> str:
    """Send for about BROADCAST_SLICE seconds, then queue the continuation; returns
    what happened ("continued", "waiting", "done", or the broadcast's state)."""
    session, config, redis = svc.session, svc.config, svc.redis
    lease = _lease(broadcast_id, slot)
    redis.set(lease, 1, ex=config["BROADCAST_LEASE"])
    broadcast = session.get(Broadcast, broadcast_id)
    if broadcast is None or broadcast.state != "sending":
        redis.delete(lease)
        return broadcast.state if broadcast else "missing"
    until = time.monotonic() + config["BROADCAST_SLICE"]
    names = _channels_with_work(session, svc.channels, broadcast_id)
    while time.monotonic() < until:
        state = session.scalar(select(Broadcast.state).where(Broadcast.id == broadcast_id))
        if state != "sending":
            redis.delete(lease)
            return state
        if expired(broadcast):
            broadcasts.expire(session, broadcast)
            redis.delete(lease)
            return "expired"
        if broadcast.priority == "urgent":
            redis.set(URGENT_FLAG, broadcast_id, ex=5)
        elif redis.exists(URGENT_FLAG):
            break  # an urgent broadcast is sending: give way for a slice
        outcomes = {_send_chunk(svc, broadcast, svc.channels.get(name), until) for name in names}
        if GAVE_WAY in outcomes or SENT not in outcomes:
            break  # a reply needs this worker, or nothing was ready
    return _next(svc, broadcast, slot, lease)


def _channels_with_work(session, channels, broadcast_id: int) -> list[str]:
    names = session.scalars(select(Message.provider).distinct().where(
        Message.broadcast_id == broadcast_id, Message.status == "queued")).all()
    return [n for n in names if not channels.get(n).send_queue]


def _send_chunk(svc, broadcast: Broadcast, channel, until: float) -> str:
    """Claim, check and send one chunk on one channel: SENT, IDLE (nothing was ready) or
    GAVE_WAY (a reply job waits for this worker: the rest of the chunk was put back)."""
    session = svc.session
    replies = queue.QUEUE if svc.config.get("WORKER_TAKES_REPLIES") else None  # set by the worker
    give_way = priority.GiveWay(svc.redis, replies, svc.config["BROADCAST_GIVE_WAY"], poll=priority.POLL)
    if not give_way():
        return GAVE_WAY
    limit = bucket.for_channel(svc.redis, channel)
    cost_each = max(segments(text) for text in broadcast.texts.values())
    size = min(channel.batch_size, limit.capacity(cost_each))
    if not limit.wait_for(size * cost_each, until):
        return IDLE
    rows = _claim(session, broadcast.id, channel.name, size)
    limit.refund(size * cost_each - sum(r.segments or 1 for r in rows))
    if not rows:
        return IDLE
    read_at = reporters.redis_now(svc.redis)  # a STOP after this is caught item by item
    people = {r.id: r for r in session.execute(
        select(Reporter.id, Reporter.opted_out, Reporter.phone_encrypted, Subscriber.status)
        .outerjoin(Subscriber, Subscriber.reporter_id == Reporter.id)
        .where(Reporter.id.in_({r.reporter_id for r in rows})))}  # read after the claim: a STOP before it counts
    now, outcomes, ready = utcnow(), [], []
    for row in rows:
        person = people.get(row.reporter_id)
        if person is None or person.opted_out or person.status != "active":
            outcomes.append(_outcome(row, "suppressed", now))
            continue
        number = svc.identity.decrypt(person.phone_encrypted)
        if number is None:
            outcomes.append(_outcome(row, "failed", now, "no_number", "no phone number kept"))
            continue
        ready.append((row, number))
    results = channel.send_many([Outgoing(number, row.body, f"alerte-{row.id}", _wanted(svc.redis, row, read_at),
                                          go=give_way) for row, number in ready]) if ready else []
    unknown, put_back = [], 0
    for (row, number), result in zip(ready, results):
        if isinstance(result, SendError):
            if result.deferred:  # back to the queue as it was: not an attempt
                outcomes.append(_outcome(row, "queued", now, attempts=max(0, row.attempts - 1)))
                put_back += row.segments or 1
                continue
            if result.withdrawn:
                outcomes.append(_outcome(row, "suppressed", now))
                continue
            if result.unknown:
                unknown.append((row, number))
                continue
            outcomes.append(_refused(svc, channel, limit, row, result, now))
        else:
            outcomes.append(_outcome(row, "sent", now, provider_id=result))
    _record(session, outcomes)
    receipts.apply_early(session, svc.redis, channel.name,
                         {o["_pid"]: o["_id"] for o in outcomes if o["_pid"]})
    for row, number in unknown:  # the gateway may have them: its record decides, one by one
        outbox.recover(session, row.id, channel, number, now - timedelta(seconds=5))
    limit.refund(put_back)
    if give_way.waited:
        log.debug("broadcast %s gave way %.2f s to conversations", broadcast.id, give_way.waited)
    return GAVE_WAY if give_way.stopped else SENT


def _wanted(connection, row, read_at: float | None):
    """Asked by the channel just before it sends this delivery: not after a STOP that came
    while its chunk was going out (service/reporters.mark_stopped)."""
    return lambda: not reporters.stopped(connection, row.reporter_id, read_at)


def _claim(session, broadcast_id: int, provider: str, size: int):
    now = utcnow()
    ready = (select(Message.id).where(
        Message.broadcast_id == broadcast_id, Message.status == "queued", Message.provider == provider,
        (Message.next_attempt_at.is_(None)) | (Message.next_attempt_at <= now))
        .order_by(Message.id).limit(size))
    if session.get_bind().dialect.name == "postgresql":
        # Chosen and locked first, then updated. Inside one UPDATE ... WHERE id IN (SELECT
        # ... LIMIT n FOR UPDATE SKIP LOCKED) the planner may run the subquery again for
        # each row (a nested loop semi join, e.g. before the table has statistics), each
        # run skipping the rows the statement has just changed: the whole broadcast was
        # claimed as one chunk, past the rate limit (found by tests/faults).
        chosen = Message.id.in_(session.scalars(ready.with_for_update(skip_locked=True)).all())
    else:
        chosen = Message.id.in_(ready.scalar_subquery())
    rows = session.execute(update(Message).where(chosen, Message.status == "queued")
                           .values(status="sending", claimed_at=now, attempts=Message.attempts + 1)
                           .returning(Message.id, Message.reporter_id, Message.body, Message.segments,
                                      Message.attempts)
                           .execution_options(synchronize_session=False)).all()
    session.commit()
    return rows


def _outcome(row, status: str, now, code=None, reason=None, provider_id=None, next_at=None, attempts=None) -> dict:
    return {"_id": row.id, "_status": status, "_pid": provider_id, "_code": code,
            "_reason": (reason or "")[:200] or None, "_at": now if status != "queued" else None,
            "_next": next_at, "_attempts": row.attempts if attempts is None else attempts}


def _refused(svc, channel, limit, row, exc: SendError, now) -> dict:
    """The outcome of a refusal: back off and queue again, or fail for good."""
    if exc.throttled:  # not the message's fault: the attempt is not counted
        pause = exc.retry_after or THROTTLE_PAUSE
        limit.pause(pause)
        return _outcome(row, "queued", now, exc.code, str(exc), next_at=now + timedelta(seconds=pause),
                        attempts=max(0, row.attempts - 1))
    if exc.opted_out:  # stopped at the carrier: every send stops
        reporter = svc.session.get(Reporter, row.reporter_id)
        if reporter is not None:
            reporters.opt_out(svc.session, reporter)
    if exc.retryable and row.attempts < svc.config["MAX_SEND_ATTEMPTS"]:
        wait = exc.retry_after or RETRY[min(row.attempts - 1, len(RETRY) - 1)]
        return _outcome(row, "queued", now, exc.code, str(exc), next_at=now + timedelta(seconds=wait))
    return _outcome(row, "failed", now, exc.code, str(exc))


def _record(session, outcomes: list[dict]) -> None:
    if not outcomes:
        return
    table = Message.__table__
    session.execute(update(table).where(table.c.id == bindparam("_id"), table.c.status == "sending").values(
        status=bindparam("_status"), provider_id=bindparam("_pid"), error_code=bindparam("_code"),
        failure_reason=bindparam("_reason"), processed_at=bindparam("_at"), next_attempt_at=bindparam("_next"),
        attempts=bindparam("_attempts")), outcomes)
    session.commit()


def _next(svc, broadcast: Broadcast, slot: int, lease: str) -> str:
    """After a slice: go on now, later (retries waiting), or end the slot."""
    session, redis = svc.session, svc.redis
    own = _own_process_channels(svc.channels)
    mine = (Message.broadcast_id == broadcast.id) & Message.provider.not_in(own) if own else \
        (Message.broadcast_id == broadcast.id)
    now = utcnow()
    ready = session.scalar(select(Message.id).where(mine, Message.status == "queued",
                                                    (Message.next_attempt_at.is_(None)) | (Message.next_attempt_at <= now))
                           .limit(1))
    session.refresh(broadcast)
    if ready is not None or not broadcast.fanout_done:
        delay = 0 if ready is not None else 0.5
        if redis.exists(URGENT_FLAG) and broadcast.priority == "routine":
            delay = 0.5
        redis.set(lease, 1, ex=svc.config["BROADCAST_LEASE"])
        queue.enqueue_broadcast(redis, broadcast.priority, queue.BROADCAST_SEND, broadcast.id, slot,
                                delay=delay)
        return "continued"
    retry_at = session.scalar(select(func.min(Message.next_attempt_at)).where(mine, Message.status == "queued"))
    if retry_at is not None:
        wait = max(0.5, (aware(retry_at) - now).total_seconds())
        redis.set(lease, 1, ex=int(wait + svc.config["BROADCAST_LEASE"]))
        queue.enqueue_broadcast(redis, broadcast.priority, queue.BROADCAST_SEND, broadcast.id, slot, delay=wait)
        return "waiting"
    redis.delete(lease)
    finish(session, broadcast)
    return "done"


def finish(session, broadcast: Broadcast) -> bool:
    """Mark the broadcast sent once everything is written and nothing waits or is in flight."""
    pending = session.scalar(select(Message.id).where(Message.broadcast_id == broadcast.id,
                                                      Message.status.in_(("queued", "sending"))).limit(1))
    if pending is not None or not broadcast.fanout_done:
        return False
    done = session.execute(update(Broadcast).where(Broadcast.id == broadcast.id, Broadcast.state == "sending")
                           .values(state="sent", finished_at=utcnow())
                           .execution_options(synchronize_session=False)).rowcount
    session.commit()
    if done:
        log.info("broadcast %s sent", broadcast.id)
    return bool(done)


# --- the sweep --------------------------------------------------------------------------

def sweep(svc) -> dict:
    """Broadcasts that fell through: due and never started, a fan-out or a sender that
    died, past their expiry, finished but not marked."""
    session, redis = svc.session, svc.redis
    now, counts = utcnow(), {"started": 0, "senders": 0, "expired": 0, "finished": 0}
    for broadcast in session.scalars(select(Broadcast).where(Broadcast.state.in_(ACTIVE))).all():
        if expired(broadcast, now):
            broadcasts.expire(session, broadcast, now)
            counts["expired"] += 1
            continue
        due = aware(broadcast.send_at) <= now
        if due and not broadcast.fanout_done and not redis.exists(_lease(broadcast.id, "fanout")):
            queue.enqueue_broadcast(redis, broadcast.priority, queue.BROADCAST_FANOUT, broadcast.id)
            counts["started"] += 1
        if broadcast.state == "sending":
            counts["senders"] += ensure_senders(svc, broadcast)
            counts["finished"] += finish(session, broadcast)
            cutoff = now - timedelta(seconds=svc.config["WEBHOOK_BUDGET"] + 5)
            _queue_own_process_sends(svc, broadcast.id, Message.created_at < cutoff, unless_waiting=True)
    return counts
