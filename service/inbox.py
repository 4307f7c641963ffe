"""An inbound message from arrival to reply: stored first, once; then one sender at a time.

The webhook stores the message (or, with the database down, spools it to disk) and
answers within its budget whatever happens: with the reply when the engine answered in
time, else with "received" while the message waits, pending, for a job. Jobs process a
reporter's waiting messages in arrival order under the reporter's lock, a few at a time
and at a bounded pace, so one busy phone never holds up the others. A message whose
turn keeps failing is marked failed after MAX_ATTEMPTS, and the reporter's later
messages go on; a failure caused by an outage (Rasa or the action server down) is not
counted against the message.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from datetime import timedelta

import redis
from flask import current_app
from sqlalchemy import case, func, select, update
from sqlalchemy.exc import IntegrityError, InterfaceError, OperationalError, SQLAlchemyError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from sqlalchemy.orm import Session

from bot import keywords, messages
from bot.engine import EngineUnavailable, forced_intent
from bot.language import choose as choose_language
from bot.languages import DEFAULT_LANGUAGE
from bot.understanding import for_nlu
from service import broadcasts, bucket, health, locks, outbox, priority, queue, rate, reporters, signup, spool
from service.channels.base import InboundMessage, SendError
from service.db import get_session
from service.models import Message, Reporter, utcnow

log = logging.getLogger(__name__)
MAX_PROCESSED = 1600  # Twilio's longest concatenated SMS; longer bodies are stored whole
WAITING = ("received", "pending")
UNPROCESSED = WAITING + ("processing",)  # "processing": a turn claimed it (claimed_at)
DATABASE_DOWN = (OperationalError, InterfaceError, PoolTimeout)
MARGIN = 1.0  # s of the webhook's budget kept for storing and answering after the turn
BATCH = 3  # messages a job processes for one reporter before letting others' jobs run
BACKOFF = [5, 15, 30, 60, 120, 300]  # s before the next try of a failing message


class Taken(Exception):
    """Another process claimed this message's turn first."""


@dataclass
class Services:
    """What processing needs, explicit so that web requests and jobs build the same thing."""

    session: Session
    engine: object
    channels: object  # service.channels.Channels
    identity: object
    redis: object
    queue: object
    config: dict

    @classmethod
    def current(cls) -> "Services":
        ext = current_app.extensions
        return cls(get_session(), ext["engine"], ext["channels"], ext["identity"], ext.get("redis"),
                   ext.get("queue"), current_app.config)

    def send(self, message_id: int) -> str:
        """Hand one stored outbound message to its channel (see service/outbox.py)."""
        return outbox.send(self.session, message_id, self.channels, self.identity,
                           self.config["MAX_SEND_ATTEMPTS"], connection=self.redis)

    def mark_ttl(self) -> int:
        """How long a reporter's "job queued" mark lives: a few sweeps."""
        return int(3 * self.config["SWEEP_INTERVAL"] + 10)


@dataclass
class Outcome:
    """What a job's pass over one reporter left: more to do now, or after `wait` seconds."""

    processed: int = 0
    more: bool = False
    wait: float = 0.0


class Deadline:
    def __init__(self, seconds: float):
        self.end = time.monotonic() + seconds

    def left(self) -> float:
        return max(0.0, self.end - time.monotonic())


# --- the webhook ---------------------------------------------------------------------

def store(svc: Services, provider: str, inbound: InboundMessage) -> tuple[Reporter, Message] | None:
    """Commit the message before anything else; None if this provider id was seen already
    on this channel (`provider`, the channel's name).

    The pre-check saves work; the unique constraint settles two simultaneous deliveries.
    """
    session = svc.session
    if session.scalar(select(Message.id).where(Message.provider == provider,
                                               Message.provider_id == inbound.provider_id)):
        return None
    reporter = reporters.seen(session, svc.identity, inbound.sender)
    message = Message(direction="in", channel="sms", provider=provider, provider_id=inbound.provider_id,
                      reporter_id=reporter.id, body=inbound.body, status="received", attempts=0,
                      created_at=inbound.received_at, reply_context=inbound.reply_context or None)
    session.add(message)
    try:
        session.commit()
    except IntegrityError:
        session.rollback()
        return None
    return reporter, message


def receive(svc: Services, channel, inbound: InboundMessage) -> list[str] | None:
    """Store and answer one webhook from `channel`: the texts the webhook's own answer
    carries (a channel without inline replies gets them sent instead, and an empty list),
    or None for a duplicate."""
    deadline = Deadline(svc.config["WEBHOOK_BUDGET"])
    try:
        import_spool(svc, limit=10)  # what waited on disk goes in first
        stored = store(svc, channel.name, inbound)
    except DATABASE_DOWN as exc:
        notice = _spool(svc, channel, inbound, exc)
        return [notice] if channel.inline_replies else []  # nothing can be sent unrecorded
    if stored is None:
        log.info("duplicate delivery of %s ignored", inbound.provider_id)
        return None
    reporter, message = stored
    with priority.serving(svc.redis):  # broadcasts give way meanwhile
        texts = _receive_stored(svc, channel, reporter, message, deadline)
    if channel.inline_replies or not texts:
        return texts
    return _send_notice(svc, channel, reporter.id, message.id, texts)


def _send_notice(svc: Services, channel, reporter_id: int, message_id: int, texts: list[str]) -> list[str]:
    """A channel that cannot answer inline: the "received" notice is recorded and sent."""
    try:
        reporter, message = svc.session.get(Reporter, reporter_id), svc.session.get(Message, message_id)
        notice = outbox.record(svc.session, reporter, "\n".join(texts), reply_to=message,
                               provider=channel.name, language=message.language)
        svc.session.commit()
        if notice.status == "queued":  # before the job that will answer the message
            queue.enqueue_send(svc.queue, notice.id, first=True)
    except (SQLAlchemyError, redis.RedisError):
        log.exception("message %s: the received notice was not sent", message_id)
        svc.session.rollback()
    return []


def _receive_stored(svc: Services, channel, reporter: Reporter, message: Message, deadline) -> list[str]:
    try:
        return _answer(svc, channel, reporter.id, message.id, deadline)
    except (locks.Busy, locks.Unavailable, EngineUnavailable, Taken, redis.RedisError) as exc:
        log.info("message %s kept for later: %s", message.id, type(exc).__name__)
        reason = exc
    except Exception as exc:  # noqa: BLE001 - stored and committed: whatever broke, it is retried, not lost
        log.exception("message %s kept for later after an error", message.id)
        reason = exc
    # after Taken the message is another process's; otherwise a claim of ours is released
    return [postpone(svc, reporter.id, message.id, None if isinstance(reason, Taken) else reason,
                     release=not isinstance(reason, Taken))]


def _answer(svc: Services, channel, reporter_id: int, message_id: int, deadline: Deadline) -> list[str]:
    session, config = svc.session, svc.config
    message, reporter = session.get(Message, message_id), session.get(Reporter, reporter_id)
    command = keywords.match(message.body)
    if command is not None and command.intent in (keywords.OPT_OUT, keywords.OPT_IN):
        # no lock, no engine: an opt-out must work when Redis and Rasa are down
        return _hand_over(svc, channel, turn(svc, reporter, message, timeout=min(2.0, deadline.left())))
    if not rate.allow(svc.redis, reporter_id, config["SENDER_RATE"]):
        postpone(svc, reporter_id, message_id)
        return []  # a flood: everything is kept, answered at the sender's pace
    wait = min(config["LOCK_WAIT"], deadline.left())
    with locks.holding(svc.redis, reporter_id, config["LOCK_TIMEOUT"], wait):
        # under the lock nobody else serves this reporter: older messages still waiting
        # are a job's to answer first, in order
        _keep_turn_order(session, reporter_id, message_id)
        earlier = _earlier_waiting(session, reporter_id, message_id)
        reply = None if earlier else turn(svc, reporter, message, timeout=deadline.left() - MARGIN)
    return [postpone(svc, reporter_id, message_id)] if earlier else _hand_over(svc, channel, reply)


def _hand_over(svc: Services, channel, reply: Message | None) -> list[str]:
    """Give the reply in the webhook's answer (recorded as handed, not delivered), or,
    where the channel cannot answer inline, queue it for sending at once."""
    if reply is None or reply.status != "queued":
        return []
    if not channel.inline_replies:
        queue.enqueue_send(svc.queue, reply.id)  # a lost job: the sweep sends it
        return []
    return [reply.body] if outbox.hand_over(svc.session, reply.id, bucket.for_channel(svc.redis, channel)) else []


def _spool(svc: Services, channel, inbound: InboundMessage, exc: Exception) -> str:
    log.error("database down (%s): message %s spooled to disk", type(exc).__name__, inbound.provider_id)
    try:
        svc.session.rollback()
    except SQLAlchemyError:
        pass  # the connection is gone; the session is discarded at teardown
    spool.write(svc.config["SPOOL_DIR"], svc.identity, channel.name, inbound)
    return messages.render("received", _guess_language(inbound.body))


def import_spool(svc: Services, limit: int | None = None) -> int:
    """Store what was spooled during a database outage; returns how many were stored."""
    stored = 0
    for path in spool.pending(svc.config["SPOOL_DIR"], limit):
        record = spool.read(path, svc.identity)
        if record is None:
            continue
        provider, inbound = record
        try:
            result = store(svc, provider, inbound)
        except DATABASE_DOWN:
            svc.session.rollback()
            return stored  # still down: keep the files
        spool.remove(path)
        if result is not None:
            stored += 1
            queue.schedule_pending(svc.redis, svc.queue, result[0].id, mark_ttl=svc.mark_ttl())
    if stored:
        log.info("imported %s spooled messages", stored)
    return stored


def postpone(svc: Services, reporter_id: int, message_id: int, reason: Exception | None = None,
             release: bool = True) -> str:
    """Keep a message pending, queue its processing, and say "received" in their language.

    Best effort past the commit: if this fails too, the row is still stored as received
    and the sweep finds it.
    """
    session = svc.session
    try:
        session.rollback()
        # decided in SQL, not on this session's copy: another process may have answered it
        releasable = Message.status.in_(WAITING + (("processing",) if release else ()))
        values = {"status": "pending"}
        if reason is not None:
            values["failure_reason"] = f"{type(reason).__name__}: {reason}"[:200]
        session.execute(update(Message).where(Message.id == message_id, releasable).values(**values)
                        .execution_options(synchronize_session=False))
        session.commit()
        message = session.scalar(select(Message).where(Message.id == message_id)
                                 .execution_options(populate_existing=True))
        reporter = session.get(Reporter, reporter_id)
        for reply in _queued_replies(session, message_id):  # processed, but its answer never left
            queue.enqueue_send(svc.queue, reply)
        queue.schedule_pending(svc.redis, svc.queue, reporter_id, mark_ttl=svc.mark_ttl())
        return messages.render("received", reply_language(session, reporter, message.body))
    except SQLAlchemyError:
        log.exception("message %s: could not mark it pending; the sweep will", message_id)
        session.rollback()
        return messages.render("received", DEFAULT_LANGUAGE)


def _keep_turn_order(session: Session, reporter_id: int, message_id: int) -> None:
    """Hold the reporter's lock. Two webhooks at once: the one stamped later may commit,
    take the lock and be answered before the other is even stored. The conversation then
    went on in that order, so the message stored late takes its place after the one
    already answered: arrival order stays the order of the turns (the transcript reads
    as the engine heard it). Only turns start under the lock, so this cannot race."""
    message = session.get(Message, message_id)
    latest = session.scalar(select(func.max(Message.created_at)).where(
        Message.reporter_id == reporter_id, Message.direction == "in", Message.id != message_id,
        Message.status.not_in(WAITING)))
    if latest is not None and reporters.aware(latest) >= reporters.aware(message.created_at):
        message.created_at = reporters.aware(latest) + timedelta(milliseconds=1)
        session.commit()


def _earlier_waiting(session: Session, reporter_id: int, message_id: int) -> bool:
    """Messages of this reporter that arrived before this one and still wait (by arrival
    time: one spooled during a database outage gets its row later than it arrived)."""
    arrived = select(Message.created_at).where(Message.id == message_id).scalar_subquery()
    return session.scalar(select(Message.id).where(
        Message.reporter_id == reporter_id, Message.direction == "in", Message.status.in_(UNPROCESSED),
        Message.id != message_id, Message.created_at <= arrived).limit(1)) is not None


def _queued_replies(session: Session, message_id: int) -> list[int]:
    return list(session.scalars(select(Message.id).where(Message.reply_to_id == message_id,
                                                         Message.status == "queued")))


# --- jobs ----------------------------------------------------------------------------

def process(svc: Services, reporter_id: int, lock=None, batch: int = BATCH) -> Outcome:
    """Give a reporter's waiting messages their turns, oldest first (hold the lock).

    Replies are sent through the channel. Stops after `batch` messages (more=True), at
    the sender's rate limit, or at a failure (wait=the back-off before the next try).
    """
    session, config = svc.session, svc.config
    rows = session.scalars(select(Message).where(
        Message.reporter_id == reporter_id, Message.direction == "in", Message.status.in_(UNPROCESSED))
        .order_by(Message.created_at, Message.id).limit(batch + 1)).all()  # arrival order
    outcome = Outcome(more=len(rows) > batch)
    for message in rows[:batch]:
        if message.attempts >= config["MAX_ATTEMPTS"] and not _claimed_elsewhere(message, config):
            if health.engine_outage(svc.engine, config.get("ACTIONS_URL")):
                return Outcome(outcome.processed, True, BACKOFF[-1])  # not its fault: wait
            _give_up(session, message)
            continue
        if not rate.allow(svc.redis, reporter_id, config["SENDER_RATE"]):
            return Outcome(outcome.processed, True, rate.until_next_window())
        _keep_turn_order(session, reporter_id, message.id)
        try:
            reply = turn(svc, session.get(Reporter, reporter_id), message, timeout=config["RASA_TIMEOUT"])
        except Taken:  # another process has it now: look again shortly (it may die)
            return Outcome(outcome.processed, True, 5.0)
        except Exception as exc:  # noqa: BLE001 - recorded on the message and retried, bounded
            rate.give_back(svc.redis, reporter_id)
            return Outcome(outcome.processed, True, _failed_turn(svc, message.id, exc))
        outcome.processed += 1
        if reply is not None and reply.status == "queued":
            _send_now(svc, reply.id)
        if lock is not None:
            lock.reacquire()  # raises if it expired: another process may now hold it
    return outcome


def _failed_turn(svc: Services, message_id: int, exc: Exception) -> float:
    """Record why a turn failed; an outage is not the message's fault and is not counted."""
    session = svc.session
    session.rollback()
    outage = isinstance(exc, (EngineUnavailable, redis.RedisError)) and \
        health.engine_outage(svc.engine, svc.config.get("ACTIONS_URL"))
    if isinstance(exc, EngineUnavailable):
        log.info("message %s not answered yet: %s", message_id, exc)
    else:
        log.exception("message %s: turn failed", message_id)
    values = {"status": "pending", "failure_reason": f"{type(exc).__name__}: {exc}"[:200]}
    if outage:
        values["attempts"] = case((Message.attempts > 0, Message.attempts - 1), else_=0)
    # only our own claim: a commit that raised may have been applied all the same
    session.execute(update(Message).where(Message.id == message_id, Message.status.in_(("processing",) + WAITING))
                    .values(**values).execution_options(synchronize_session=False))
    session.commit()
    attempts = session.scalar(select(Message.attempts).where(Message.id == message_id)) or 0
    return BACKOFF[min(attempts, len(BACKOFF) - 1)]


def _claimed_elsewhere(message: Message, config) -> bool:
    claimed = reporters.aware(message.claimed_at)
    return message.status == "processing" and claimed is not None and \
        claimed >= utcnow() - timedelta(seconds=config["LOCK_TIMEOUT"])


def _give_up(session: Session, message: Message) -> None:
    message.status, message.processed_at = "failed", utcnow()
    message.failure_reason = (message.failure_reason or "no answer")[:160] + \
        f" (after {message.attempts} attempts)"
    session.commit()
    log.warning("message %s failed after %s attempts", message.id, message.attempts)


def _send_now(svc: Services, message_id: int) -> None:
    message = svc.session.get(Message, message_id)
    if message is not None and svc.channels.get(message.provider).send_queue:  # only its own process sends
        queue.enqueue_send(svc.queue, message_id)
        return
    try:
        svc.send(message_id)
    except SendError as exc:  # left queued: its own job retries it
        log.warning("message %s not sent yet: %s", message_id, exc)
        queue.enqueue_send(svc.queue, message_id)


def waiting(session: Session, reporter_id: int) -> bool:
    return session.scalar(select(Message.id).where(
        Message.reporter_id == reporter_id, Message.direction == "in",
        Message.status.in_(UNPROCESSED)).limit(1)) is not None


# --- one turn ------------------------------------------------------------------------

def turn(svc: Services, reporter: Reporter, message: Message, timeout: float | None = None) -> Message | None:
    """One message, one engine turn, one stored reply, queued (None: nothing to say)."""
    session, config = svc.session, svc.config
    retry = _claim(session, message, config["LOCK_TIMEOUT"])
    reporter = outbox.current(session, reporter.id)  # a STOP committed meanwhile counts
    conversation = reporters.conversation(session, reporter, config["CONVERSATION_TIMEOUT"])
    message.conversation_id = conversation.id
    text = (message.body or "")[:MAX_PROCESSED]
    payloads = signup.handle(session, reporter, message, text, config["CONVERSATION_TIMEOUT"])
    if payloads is None:
        payloads = _command(svc, reporter, message, text, timeout)
    if payloads is None:
        payloads, text = _broadcast_answer(svc, reporter, message, text)
    if payloads is None:
        payloads = _converse(svc, reporter, message, conversation, text, timeout, retry)
    default = reply_language(session, reporter, text, conversation)
    body = svc.channels.get(message.provider).render(payloads, default)  # the reply leaves by this channel
    langs = [p.get("lang") for p in payloads if p.get("lang")]
    conversation.language = langs[-1] if langs else conversation.language or default
    conversation.last_activity_at = message.processed_at = utcnow()
    message.status, message.language, message.failure_reason = "processed", conversation.language, None
    reply = None
    if body:
        reply = outbox.record(session, reporter, body, reply_to=message, language=conversation.language,
                              conversation_id=conversation.id, provider=message.provider)
    session.commit()
    return reply


def _command(svc: Services, reporter: Reporter, message: Message, text: str, timeout) -> list[dict] | None:
    """Payloads for STOP/START (answered here), or None to ask the engine."""
    command = keywords.match(text)
    if command is None:
        return [{"msg": "help"}] if not text.strip() else None
    lang = reply_language(svc.session, reporter, text)
    if command.intent == keywords.OPT_OUT:
        reporters.opt_out(svc.session, reporter, message.id)
        svc.session.commit()  # at once: sends decided from now on see it
        reporters.mark_stopped(svc.redis, reporter.id)  # and a batch already going out
        try:
            svc.engine.converse(reporter.key, "/restart", {"message_id": message.id, "channel": "sms"},
                                timeout=timeout or None)
        except EngineUnavailable:
            log.info("engine down: conversation of reporter %s not restarted", reporter.id)
        return [{"msg": "opted_out", "lang": lang}]
    if command.intent == keywords.OPT_IN:
        reporters.opt_in(svc.session, reporter)
        return [{"msg": "opted_in", "lang": lang}]
    return None


def _broadcast_answer(svc: Services, reporter: Reporter, message: Message, text: str):
    """An answer to a broadcast's question is counted and thanked, not taken as a report
    or a form answer; what follows a number ("1 but armed men are here") still goes to
    the conversation. Returns (payloads or None, the text left for the engine)."""
    reply = broadcasts.match_reply(svc.session, reporter.id, text)
    if reply is None:
        return None, text
    broadcasts.record_reply(svc.session, reply, reporter.id, message.id)
    if reply.remainder:
        return None, reply.remainder
    return [{"msg": "broadcast_answer_thanks", "lang": reply_language(svc.session, reporter, text)}], text


def _claim(session: Session, message: Message, lease: float) -> bool:
    """Take the turn and count the attempt, committed before the engine is asked (a
    timed-out turn may still have run): one process per message at a time, even if a
    lock was lost. A claim older than `lease` is a dead process's and may be taken over.
    Returns whether the message was tried before; raises Taken if another process has it."""
    now = utcnow()
    claimed = session.execute(update(Message).where(
        Message.id == message.id,
        Message.status.in_(WAITING) | ((Message.status == "processing")
                                       & (Message.claimed_at < now - timedelta(seconds=lease))))
        .values(status="processing", claimed_at=now, attempts=Message.attempts + 1)
        .execution_options(synchronize_session=False))  # SQLite reads back naive times
    session.commit()
    if claimed.rowcount != 1:
        raise Taken(message.id)
    session.refresh(message)
    return message.attempts > 1


def _converse(svc: Services, reporter: Reporter, message: Message, conversation, text: str,
              timeout: float | None, retry: bool) -> list[dict]:
    """Ask the engine; on a retry, first look for the answer it may already have given."""
    command = keywords.match(text)
    if command is not None and command.intent == keywords.HELP:
        text = forced_intent("help")
    elif command is not None and command.intent == keywords.LANGUAGE:
        reporters.set_language(svc.session, reporter, command.language)
        text = forced_intent("choose_language", {"language": command.language})
    else:  # what Rasa reads: no accents, no forced "/intent" from a reporter, bounded
        text = for_nlu(text)
    if retry and hasattr(svc.engine, "replies_for"):
        earlier = _earlier_replies(svc.engine, reporter.key, message.id,
                                   checks=3 if _may_still_run(message.failure_reason) else 1)
        if earlier:
            return earlier
    metadata = {"message_id": message.id, "channel": "sms", "received_at": reporters.aware(message.created_at)
                .isoformat(), "language": reporter.language, "conversation_id": conversation.id}
    if timeout is not None and timeout <= 0:
        raise EngineUnavailable("no time left in the webhook's budget")
    svc.session.commit()  # the action server reads the conversation (and any language choice)
    payloads = svc.engine.converse(reporter.key, text, metadata, timeout=timeout)
    if not payloads:  # every turn of this bot answers: nothing means an action failed
        raise EngineUnavailable("empty answer (an action failed or the action server is down)")
    return payloads


def _may_still_run(reason: str | None) -> bool:
    """Whether the last try may still be running in Rasa: it timed out on our side, or
    its process died (no reason recorded). A refused connection or an empty answer ended."""
    return reason is None or "Timeout" in reason or "too late" in reason


def _earlier_replies(engine, sender: str, message_id: int, checks: int = 3, pause: float = 1.0):
    """A turn that timed out here may still be queued in a slow Rasa: look a few times
    before concluding it never ran, so it is not played twice."""
    for attempt in range(checks):
        earlier = engine.replies_for(sender, message_id)
        if earlier or attempt == checks - 1:
            return earlier
        time.sleep(pause)
    return None


def reply_language(session: Session, reporter: Reporter, text: str = "", conversation=None) -> str:
    """Stated choice, else the conversation's language, else a guess from the text."""
    if reporter.language:
        return reporter.language
    conversation = conversation or reporters.latest_conversation(session, reporter)
    if conversation is not None and conversation.language:
        return conversation.language
    return _guess_language(text)


def _guess_language(text: str) -> str:
    try:
        return choose_language(text or "")
    except Exception:  # noqa: BLE001 - detection must never cost a reply
        log.exception("language detection failed")
        return DEFAULT_LANGUAGE
