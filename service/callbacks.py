"""Call-backs of missed calls: who beeps (a call to a beep line, rejected unanswered, so
free for the caller) or hangs up before the menu is called back, and the call runs the IVR.

* **Stored first**: one row per request (`CallbackRequest`), never the number: the call
  goes to the reporter's own encrypted number, decrypted at dial time and only within its
  retention (service/reporters.number_for_sending).
* **One per reporter per CALLBACK_WINDOW**: a beep within it counts on the request
  already there. Two beeps at once are serialised on the reporter's row.
* **Paced per line**: CALLBACK_RATE calls a minute, one token bucket per line in Redis
  shared by every worker (service/bucket.py); a dial that must wait is not an attempt.
* **Bounded**: busy, unanswered or failed calls are tried again after CALLBACK_RETRY_DELAY,
  doubled each time, up to CALLBACK_MAX_ATTEMPTS calls; then the request is given up.
* **Never to an opted-out person**: opt-out is read again after the dial is claimed.
* **Dialled at most once per attempt**: a dial is claimed (queued -> dialing) by one
  conditional update. A dial whose outcome is unknown (a worker killed mid-dial, an
  answer lost after the request left) is never dialled again blindly: once it is older
  than CALLBACK_CLAIM_TIMEOUT (the provider's log has it by then) the sweep looks for it
  in the provider's call log. Found, it is that call; certainly absent, it is queued
  again; no log to ask, it fails "unknown_outcome" for an operator to see. Missing one
  call-back is better than ringing a reporter twice at night: a phone that rings again
  beside the wrong people can expose them, while a missed call-back shows in the queue
  (GET /api/v1/callbacks) and the person can beep again.
"""

from __future__ import annotations

import logging
import re
from datetime import datetime, timedelta

import redis
from flask import current_app
from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from service import bucket, outbox, queue, reporters
from service.channels import twilio_calls
from service.channels.twilio_calls import CallError, Dialer, LookupUnsupported
from service.models import CallbackRequest, Reporter, utcnow
from service.privacy import mask
from service.reporters import aware

log = logging.getLogger(__name__)
REASONS = ("beep", "hung_up")
STATUSES = ("queued", "dialing", "calling", "answered", "given_up", "suppressed", "failed")
OPEN = ("dialing", "calling")  # the provider may have a call for it
EARLY = 1.0  # s before its time a job may dial (the RQ scheduler's granularity)
LOOKUP_SLACK = timedelta(seconds=60)  # the provider's clock against ours


# --- lines ------------------------------------------------------------------------------

def _digits(number) -> str:
    return re.sub(r"\D", "", str(number or ""))


def _listed(value) -> list[str]:
    if not value:
        return []
    return [part.strip() for part in (value.split(",") if isinstance(value, str) else value) if str(part).strip()]


def voice_channels(channels) -> list:
    """The channels that can place calls (the Twilio API's: Twilio, Somleng)."""
    return [c for c in channels if twilio_calls.can_call(c)]


def is_beep_line(line: str, channels=None, config=None) -> bool:
    """Whether a call to `line` (our number, the call's To) is a beep: BEEP_NUMBERS, or a
    channel's `beep_numbers` in the channels file."""
    channels = channels if channels is not None else current_app.extensions["channels"]
    config = config if config is not None else current_app.config
    wanted = _digits(line)
    numbers = _listed(config.get("BEEP_NUMBERS")) + [
        n for c in channels for n in _listed(c.settings.get("beep_numbers"))]
    return bool(wanted) and any(_digits(n) == wanted for n in numbers)


def channel_for_line(channels, line: str):
    """The channel that calls back from `line`: the one that lists it as a beep line, else
    as one of its numbers, else the default channel, else the first that can call."""
    able = voice_channels(channels)
    wanted = _digits(line)
    for key in ("beep_numbers", "numbers"):
        for channel in able:
            if any(_digits(n) == wanted for n in _listed(channel.settings.get(key))):
                return channel
    return channels.default if channels.default in able else (able[0] if able else None)


def answer_url(channel, row: CallbackRequest) -> str:
    """The voice webhook's answer path; `callback` tells it the call is this call-back."""
    return f"{channel.public_base_url}/webhooks/{channel.name}/voice?callback={row.id}"


def status_path(channel) -> str:
    return f"/webhooks/{channel.name}/voice/callback-status"


def status_url(channel, row: CallbackRequest) -> str:
    """Where the provider reports this attempt's call: a late report of an earlier attempt
    names its attempt and changes nothing."""
    return f"{channel.public_base_url}{status_path(channel)}?callback={row.id}&attempt={row.attempts}"


# --- the request ------------------------------------------------------------------------

def request_callback(session: Session, redis_connection, reporter_or_number, line: str, reason: str, *,
                     identity=None, channels=None, config=None) -> CallbackRequest:
    """Store (committed) and schedule a call-back for a missed call on `line`; returns the
    request, the one already made in the window if there is one (its `beeps` counted).

    `reporter_or_number`: a Reporter, or the caller's number (then found or created, its
    number kept encrypted, as for a message). An opted-out caller's request is stored
    `suppressed` and never dialled; a caller whose number is not kept, `failed`.
    """
    if reason not in REASONS:
        raise ValueError(f"reason must be one of {', '.join(REASONS)}")
    if not str(line or "").strip():
        raise ValueError("the line (the number that was called) is required")
    identity = identity if identity is not None else current_app.extensions["identity"]
    channels = channels if channels is not None else current_app.extensions["channels"]
    config = config if config is not None else current_app.config
    reporter = reporter_or_number if isinstance(reporter_or_number, Reporter) \
        else reporters.seen(session, identity, reporter_or_number)
    session.flush()
    now = utcnow()
    # the reporter's row, written first, serialises two beeps at once: PostgreSQL locks the
    # row, SQLite takes its write lock; the later one then sees the earlier's request
    session.execute(update(Reporter).where(Reporter.id == reporter.id).values(last_seen_at=now)
                    .execution_options(synchronize_session=False))
    recent = session.scalar(select(CallbackRequest).where(
        CallbackRequest.reporter_id == reporter.id,
        CallbackRequest.created_at > now - timedelta(seconds=config["CALLBACK_WINDOW"]))
        .order_by(CallbackRequest.id.desc()).limit(1).execution_options(populate_existing=True))
    if recent is not None:
        session.execute(update(CallbackRequest).where(CallbackRequest.id == recent.id)
                        .values(beeps=CallbackRequest.beeps + 1).execution_options(synchronize_session=False))
        session.commit()
        session.refresh(recent)
        log.info("call-back %s: another missed call (%s) within the window", recent.id, reason)
        return recent
    person = outbox.current(session, reporter.id)
    channel = channel_for_line(channels, line)
    row = CallbackRequest(reporter_id=reporter.id, provider=channel.name if channel else "", line=str(line).strip(),
                          reason=reason, status="queued", attempts=0, beeps=1, created_at=now,
                          next_attempt_at=now + timedelta(seconds=config["CALLBACK_DELAY"]))
    if person.opted_out:
        row.status, row.outcome, row.finished_at = "suppressed", "opted_out", now
    elif channel is None:
        row.status, row.outcome, row.finished_at = "failed", "no_voice_channel", now
    elif reporters.number_for_sending(identity, person) is None:
        row.status, row.outcome, row.finished_at = "failed", "no_number", now
    session.add(row)
    session.commit()
    if row.status == "queued":
        queue.enqueue_callback(redis_connection, row.id, aware(row.next_attempt_at))
    log.info("call-back %s for reporter %s on line %s (%s): %s", row.id, reporter.id, row.line, reason, row.status)
    return row


def mark_answered(session: Session, request_id: int, call_sid: str | None = None) -> bool:
    """The voice webhook answered a call-back's call (its URL named the request): it is
    answered, whatever status report comes later. False if it was no longer open."""
    now = utcnow()
    done = session.execute(update(CallbackRequest).where(
        CallbackRequest.id == request_id, CallbackRequest.status.in_(OPEN))
        .values(status="answered", answered_at=now, finished_at=now, outcome="answered",
                call_sid=func.coalesce(CallbackRequest.call_sid, call_sid))
        .execution_options(synchronize_session=False)).rowcount
    session.commit()
    return bool(done)


# --- dialling (the job) -----------------------------------------------------------------

def line_bucket(connection, config, channel, line: str) -> bucket.Bucket:
    """One line's pace, shared by every process: `callback_rate` calls a minute (the
    channel's, else CALLBACK_RATE), evenly spaced (a bucket of one call)."""
    per_minute = float(channel.settings.get("callback_rate") or config["CALLBACK_RATE"] or 0)
    return bucket.Bucket(connection, f"callback:{channel.name}:{_digits(line)}", per_minute / 60 or None, 1.0)


def place(svc, request_id: int) -> str:
    """Dial one due call-back; returns what happened. Safe to run twice or early."""
    session, config = svc.session, svc.config
    row = session.get(CallbackRequest, request_id, populate_existing=True)
    if row is None:
        return "missing"
    if row.status != "queued":
        return row.status
    now = utcnow()
    due = aware(row.next_attempt_at) or now
    if due > now + timedelta(seconds=EARLY):  # a job ahead of its time (the sweep, a clock)
        queue.enqueue_callback(svc.redis, row.id, due)
        return "waiting"
    if row.attempts >= config["CALLBACK_MAX_ATTEMPTS"]:
        return _finish(session, row.id, row.attempts, "given_up", row.outcome)
    channel = svc.channels.get(row.provider)
    if not twilio_calls.can_call(channel):  # its channel was removed since
        return _finish(session, row.id, row.attempts, "failed", "no_voice_channel")
    limit = line_bucket(svc.redis, config, channel, row.line)
    try:
        wait = limit.take(1)
    except redis.RedisError as exc:  # Redis down costs the pace, never the call-back
        log.info("call-back %s not paced: %s", row.id, exc)
        limit, wait = bucket.Bucket(None, limit.channel, None), 0.0
    if wait > 0:
        return _later(svc, row.id, now + timedelta(seconds=wait), "paced")
    claimed = session.execute(update(CallbackRequest).where(
        CallbackRequest.id == row.id, CallbackRequest.status == "queued")
        .values(status="dialing", claimed_at=now, attempts=CallbackRequest.attempts + 1, call_sid=None)
        .execution_options(synchronize_session=False)).rowcount
    session.commit()
    if claimed != 1:  # another job took it
        _refund(limit)
        return "taken"
    session.refresh(row)
    person = outbox.current(session, row.reporter_id)  # as committed now: a STOP a moment ago wins
    if person is None or person.opted_out:
        _refund(limit)
        return _finish(session, row.id, row.attempts, "suppressed", "opted_out")
    number = reporters.number_for_sending(svc.identity, person)
    if number is None:
        _refund(limit)
        return _finish(session, row.id, row.attempts, "failed", "no_number")
    try:
        sid = Dialer(channel).call(number, row.line, answer_url(channel, row), status_url(channel, row),
                                   config["CALLBACK_RING_TIMEOUT"])
    except CallError as exc:
        return _refused(svc, row, limit, exc)
    log.info("call-back %s: attempt %s to %s from %s as %s", row.id, row.attempts, mask(number), row.line, sid)
    placed = session.execute(update(CallbackRequest).where(
        CallbackRequest.id == row.id, CallbackRequest.attempts == row.attempts, CallbackRequest.status == "dialing")
        .values(status="calling", call_sid=sid).execution_options(synchronize_session=False)).rowcount
    if not placed:  # its status report came first and settled it
        session.execute(update(CallbackRequest).where(CallbackRequest.id == row.id, CallbackRequest.call_sid.is_(None),
                                                      CallbackRequest.attempts == row.attempts)
                        .values(call_sid=sid).execution_options(synchronize_session=False))
    session.commit()
    return "calling"


def _refund(limit: bucket.Bucket) -> None:
    """A token taken for a call not placed goes back (Redis down: the pace ends by itself)."""
    try:
        limit.refund(1)
    except redis.RedisError:
        pass


def _refused(svc, row: CallbackRequest, limit: bucket.Bucket, exc: CallError) -> str:
    session = svc.session
    if exc.unknown:  # the provider may have the call: its log decides, later (module docstring)
        session.execute(update(CallbackRequest).where(CallbackRequest.id == row.id, CallbackRequest.status == "dialing")
                        .values(outcome="unknown", failure_reason=str(exc)[:200])
                        .execution_options(synchronize_session=False))
        session.commit()
        log.warning("call-back %s: outcome unknown (%s); left for the provider's log", row.id, exc)
        return "dialing"
    if exc.throttled:  # not this call's fault: the line waits, the attempt is given back
        try:
            limit.pause(2.0)
        except redis.RedisError:
            pass
        session.execute(update(CallbackRequest).where(CallbackRequest.id == row.id, CallbackRequest.status == "dialing")
                        .values(status="queued", attempts=CallbackRequest.attempts - 1, outcome=exc.code)
                        .execution_options(synchronize_session=False))
        session.commit()
        return _later(svc, row.id, utcnow() + timedelta(seconds=2), "throttled")
    log.warning("call-back %s: call refused (%s)", row.id, exc)
    if exc.retryable:
        return _again_or_give_up(svc, row.id, row.attempts, exc.code or "error", str(exc))
    return _finish(session, row.id, row.attempts, "failed", exc.code, str(exc))


def _later(svc, request_id: int, when: datetime, outcome: str) -> str:
    svc.session.execute(update(CallbackRequest).where(CallbackRequest.id == request_id,
                                                      CallbackRequest.status == "queued")
                        .values(next_attempt_at=when).execution_options(synchronize_session=False))
    svc.session.commit()
    queue.enqueue_callback(svc.redis, request_id, when)
    return outcome


def backoff(config, attempts: int) -> float:
    """Seconds before the call after `attempts` calls: CALLBACK_RETRY_DELAY, doubled each time."""
    return float(config["CALLBACK_RETRY_DELAY"]) * 2 ** max(0, attempts - 1)


def _again_or_give_up(svc, request_id: int, attempt: int, outcome: str, reason: str | None = None) -> str:
    """After an unanswered attempt: queued again after the backoff, or given up."""
    session, config = svc.session, svc.config
    if attempt >= config["CALLBACK_MAX_ATTEMPTS"]:
        return _finish(session, request_id, attempt, "given_up", outcome, reason)
    when = utcnow() + timedelta(seconds=backoff(config, attempt))
    moved = session.execute(update(CallbackRequest).where(
        CallbackRequest.id == request_id, CallbackRequest.attempts == attempt, CallbackRequest.status.in_(OPEN))
        .values(status="queued", next_attempt_at=when, outcome=outcome, failure_reason=(reason or "")[:200] or None)
        .execution_options(synchronize_session=False)).rowcount
    session.commit()
    if not moved:
        return "ignored"
    queue.enqueue_callback(svc.redis, request_id, when)
    return "queued"


def _finish(session: Session, request_id: int, attempt: int, status: str, outcome: str | None,
            reason: str | None = None) -> str:
    """End a request still at this attempt, queued or open; the status it now has."""
    now = utcnow()
    values = {"status": status, "outcome": outcome, "finished_at": now}
    if reason:
        values["failure_reason"] = reason[:200]
    if status == "answered":
        values["answered_at"] = now
    session.execute(update(CallbackRequest).where(
        CallbackRequest.id == request_id, CallbackRequest.attempts == attempt,
        CallbackRequest.status.in_(("queued",) + OPEN)).values(**values)
        .execution_options(synchronize_session=False))
    session.commit()
    return session.scalar(select(CallbackRequest.status).where(CallbackRequest.id == request_id))


# --- what the provider says -------------------------------------------------------------

def record_status(svc, request_id: int, attempt: int, call_sid: str | None, status: str,
                  provider: str | None = None) -> str:
    """Apply the provider's report on one attempt's call (its status callback, or its log
    read by the sweep). Reports repeat and come out of order: one for an earlier attempt,
    another call or a settled request changes nothing ("ignored")."""
    session = svc.session
    row = session.get(CallbackRequest, request_id, populate_existing=True)
    if row is None or (provider is not None and row.provider != provider):
        return "missing"
    if row.attempts != attempt or row.status not in OPEN or (row.call_sid and call_sid and row.call_sid != call_sid):
        return "ignored"
    ours = twilio_calls.ours(status)
    if ours == "progress":
        if row.status == "dialing" and call_sid:  # heard before the dial recorded its sid
            session.execute(update(CallbackRequest).where(CallbackRequest.id == row.id,
                                                          CallbackRequest.status == "dialing",
                                                          CallbackRequest.attempts == attempt)
                            .values(status="calling", call_sid=call_sid).execution_options(synchronize_session=False))
            session.commit()
        return "calling"
    if call_sid and not row.call_sid:
        session.execute(update(CallbackRequest).where(CallbackRequest.id == row.id, CallbackRequest.call_sid.is_(None))
                        .values(call_sid=call_sid).execution_options(synchronize_session=False))
    status = (status or "").lower()[:32]
    if ours == "answered":
        return _finish(session, row.id, attempt, "answered", "answered")
    if ours == "unanswered":
        return _again_or_give_up(svc, row.id, attempt, status)
    if ours == "canceled":  # someone canceled it at the provider: not ours to ring again
        return _finish(session, row.id, attempt, "given_up", status)
    log.warning("call-back %s: unknown call status %r", row.id, status)
    return "ignored"


# --- the sweep --------------------------------------------------------------------------

def sweep(svc) -> dict:
    """Call-backs that fell through: due with no job waiting (Redis restarted, the job was
    lost), dials never settled (a worker killed mid-dial, an answer lost), calls whose
    end was never reported."""
    session, config = svc.session, svc.config
    now, counts = utcnow(), {"queued": 0, "recovered": 0, "checked": 0}
    due = session.scalars(select(CallbackRequest.id).where(
        CallbackRequest.status == "queued", CallbackRequest.next_attempt_at <= now - timedelta(seconds=5))).all()
    for request_id in due:
        if not queue.callback_waiting(svc.redis, request_id):
            counts["queued"] += queue.enqueue_callback(svc.redis, request_id, unless_waiting=True)
    claimed_before = now - timedelta(seconds=config["CALLBACK_CLAIM_TIMEOUT"])
    for row in session.scalars(select(CallbackRequest).where(
            CallbackRequest.status == "dialing", CallbackRequest.claimed_at < claimed_before)
            .execution_options(populate_existing=True)).all():
        log.info("call-back %s: unsettled dial recovered as %s", row.id, recover(svc, row))
        counts["recovered"] += 1
    rang_before = claimed_before - timedelta(seconds=config["CALLBACK_RING_TIMEOUT"])
    for row in session.scalars(select(CallbackRequest).where(
            CallbackRequest.status == "calling", CallbackRequest.claimed_at < rang_before)
            .execution_options(populate_existing=True)).all():
        counts["checked"] += _check(svc, row) != "calling"
    return counts


def recover(svc, row: CallbackRequest) -> str:
    """Settle a dial claimed long ago from the provider's call log (module docstring)."""
    session = svc.session
    channel = svc.channels.get(row.provider)
    person = outbox.current(session, row.reporter_id)
    number = reporters.number_for_sending(svc.identity, person) if person else None
    if not twilio_calls.can_call(channel) or number is None:
        return _finish(session, row.id, row.attempts, "failed", "unknown_outcome",
                       "the dial's outcome cannot be looked up (no channel or no number)")
    try:
        found = Dialer(channel).find(number, row.line, aware(row.claimed_at) - LOOKUP_SLACK)
    except LookupUnsupported:
        return _finish(session, row.id, row.attempts, "failed", "unknown_outcome",
                       "the provider may have placed the call and keeps no log to ask")
    except CallError as exc:
        log.warning("call-back %s: call log unavailable (%s); next sweep", row.id, exc)
        return "dialing"
    if found is None:  # certainly never placed: dial again (bounded by the attempts)
        return _again_or_give_up(svc, row.id, row.attempts, "not_placed")
    sid, status = found
    session.execute(update(CallbackRequest).where(CallbackRequest.id == row.id, CallbackRequest.status == "dialing")
                    .values(status="calling", call_sid=sid).execution_options(synchronize_session=False))
    session.commit()
    return record_status(svc, row.id, row.attempts, sid, status)


def _check(svc, row: CallbackRequest) -> str:
    """A call whose end was never reported: ask the provider how it went."""
    channel = svc.channels.get(row.provider)
    if not twilio_calls.can_call(channel) or not row.call_sid:
        return "calling"
    try:
        status = Dialer(channel).status(row.call_sid)
    except CallError as exc:
        log.warning("call-back %s: call %s not fetched (%s)", row.id, row.call_sid, exc)
        return "calling"
    return record_status(svc, row.id, row.attempts, row.call_sid, status)


# --- the operators' view ----------------------------------------------------------------

def counts(session: Session) -> dict:
    """Requests per status, and per line and status."""
    by_status, by_line = {}, {}
    for line, status, n in session.execute(select(CallbackRequest.line, CallbackRequest.status, func.count())
                                           .group_by(CallbackRequest.line, CallbackRequest.status)):
        by_status[status] = by_status.get(status, 0) + n
        by_line.setdefault(line, {})[status] = n
    return {"total": sum(by_status.values()), "by_status": by_status, "by_line": by_line}


def as_json(row: CallbackRequest) -> dict:
    """A request for operators: never a number, nor the provider's call id (which opens
    the number in the provider's console)."""
    return {"id": row.id, "line": row.line, "channel": row.provider, "reason": row.reason, "status": row.status,
            "attempts": row.attempts, "beeps": row.beeps, "outcome": row.outcome,
            "failure_reason": row.failure_reason, "reporter_id": row.reporter_id,
            "created_at": _iso(row.created_at), "next_attempt_at": _iso(row.next_attempt_at),
            "last_attempt_at": _iso(row.claimed_at), "answered_at": _iso(row.answered_at),
            "finished_at": _iso(row.finished_at)}


def _iso(value):
    return aware(value).isoformat() if value is not None else None
