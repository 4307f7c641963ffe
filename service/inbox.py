"""An inbound SMS from storage to reply: store first, once; then one sender at a time.

The web request and the retry job share ``process``: under the reporter's lock, it takes
that reporter's unprocessed messages in arrival order and gives each one engine turn.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

from flask import current_app
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from bot import keywords, messages
from bot.engine import EngineUnavailable, forced_intent
from bot.languages import DEFAULT_LANGUAGE
from bot.understanding import for_nlu
from service import jobs, locks, outbox, reporters
from service.channels.base import InboundMessage
from service.db import get_session
from service.models import Message, Reporter, utcnow

try:  # written alongside this module; French until it exists
    from bot.language import choose as choose_language
except ImportError:  # pragma: no cover
    choose_language = None

log = logging.getLogger(__name__)
MAX_PROCESSED = 1600  # Twilio's longest concatenated SMS; longer bodies are stored whole
UNPROCESSED = ("received", "pending")


@dataclass
class Services:
    """What processing needs, explicit so that web requests and jobs build the same thing."""

    session: Session
    engine: object
    channel: object
    identity: object
    redis: object
    queue: object
    config: dict

    @classmethod
    def current(cls) -> "Services":
        ext = current_app.extensions
        return cls(get_session(), ext["engine"], ext["channel"], ext["identity"], ext.get("redis"),
                   ext.get("queue"), current_app.config)

    def status_callback_url(self) -> str:
        return self.config["PUBLIC_BASE_URL"].rstrip("/") + "/webhooks/twilio/status"


def store(svc: Services, inbound: InboundMessage) -> tuple[Reporter, Message] | None:
    """Commit the message before anything else; None if this provider id was seen already.

    The pre-check saves work; the unique constraint settles two simultaneous deliveries.
    """
    session, provider = svc.session, svc.channel.name
    if session.scalar(select(Message.id).where(Message.provider == provider,
                                               Message.provider_id == inbound.provider_id)):
        return None
    reporter = reporters.seen(session, svc.identity, inbound.sender)
    message = Message(direction="in", channel="sms", provider=provider, provider_id=inbound.provider_id,
                      reporter_id=reporter.id, body=inbound.body, status="received", attempts=0,
                      created_at=inbound.received_at)
    session.add(message)
    try:
        session.commit()
    except IntegrityError:
        session.rollback()
        return None
    return reporter, message


def receive(svc: Services, inbound: InboundMessage) -> list[str] | None:
    """Store and answer one webhook: the texts of the reply, or None for a duplicate."""
    stored = store(svc, inbound)
    if stored is None:
        log.info("duplicate delivery of %s ignored", inbound.provider_id)
        return None
    reporter, message = stored
    command = keywords.match(message.body)
    if command is not None and command.intent in (keywords.OPT_OUT, keywords.OPT_IN):
        # no lock, no engine: an opt-out must work when Redis and Rasa are down
        reply = turn(svc, reporter, message, via_twiml=True)
        return [reply.body] if reply is not None and reply.status == "sent" else []
    try:
        with locks.holding(svc.redis, reporter.id, svc.config["LOCK_TIMEOUT"], svc.config["LOCK_WAIT"]) as lock:
            return process(svc, reporter.id, current=message.id, lock=lock) or []  # a job answered it
    except (locks.Busy, locks.Unavailable, EngineUnavailable) as exc:
        log.info("message %s kept for later: %s", message.id, type(exc).__name__)
        return [postpone(svc, reporter.id, message.id)]


def postpone(svc: Services, reporter_id: int, message_id: int) -> str:
    """Mark a message pending, queue its processing, and say "received" in their language."""
    session = svc.session
    session.rollback()
    message, reporter = session.get(Message, message_id), session.get(Reporter, reporter_id)
    if message.status in UNPROCESSED:
        message.status = "pending"
    session.commit()
    jobs.enqueue_pending(svc, reporter_id)
    return messages.render("received", reply_language(session, reporter, message.body))


def process(svc: Services, reporter_id: int, current: int | None = None, lock=None) -> list[str] | None:
    """Give each unprocessed message of a reporter its turn, oldest first (hold the lock).

    Replies to older messages are sent through the channel; the current message's reply
    is returned for the webhook's answer (None: there was nothing to process).
    EngineUnavailable propagates and leaves the rest pending.
    """
    session = svc.session
    reporter = session.get(Reporter, reporter_id)
    query = select(Message).where(Message.reporter_id == reporter_id, Message.direction == "in",
                                  Message.status.in_(UNPROCESSED))
    if current is not None:
        query = query.where(Message.id <= current)
    texts, later = [], []
    rows = session.scalars(query.order_by(Message.id)).all()
    if not rows:
        return None
    for message in rows:
        reply = turn(svc, reporter, message, via_twiml=message.id == current)
        if reply is not None and message.id == current and reply.status == "sent":
            texts.append(reply.body)
        elif reply is not None and reply.status == "queued":
            later.append(reply.id)
        if lock is not None:
            lock.reacquire()
    for message_id in later:
        jobs.dispatch(svc, message_id, inline=current is None)
    return texts


def turn(svc: Services, reporter: Reporter, message: Message, via_twiml: bool) -> Message | None:
    """One message, one engine turn, one stored reply (None when the engine says nothing)."""
    session, config = svc.session, svc.config
    conversation = reporters.conversation(session, reporter, config["CONVERSATION_TIMEOUT"])
    message.conversation_id = conversation.id
    text = (message.body or "")[:MAX_PROCESSED]
    payloads = _command(svc, reporter, message, text)
    if payloads is None:
        payloads = _converse(svc, reporter, message, conversation, text)
    default = reply_language(session, reporter, text, conversation)
    body = "\n".join(t for t in (messages.render_payload(p, default) for p in payloads) if t)
    langs = [p.get("lang") for p in payloads if p.get("lang")]
    conversation.language = langs[-1] if langs else conversation.language or default
    conversation.last_activity_at = message.processed_at = utcnow()
    message.status, message.language = "processed", conversation.language
    reply = None
    if body:
        reply = outbox.record(session, reporter, body, reply_to=message, language=conversation.language,
                              conversation_id=conversation.id, status="sent" if via_twiml else "queued",
                              provider=svc.channel.name)
    session.commit()
    return reply


def _command(svc: Services, reporter: Reporter, message: Message, text: str) -> list[dict] | None:
    """Payloads for STOP/START (answered here), or None to ask the engine."""
    command = keywords.match(text)
    if command is None:
        return [{"msg": "help"}] if not text.strip() else None
    lang = reply_language(svc.session, reporter, text)
    if command.intent == keywords.OPT_OUT:
        reporters.opt_out(svc.session, reporter)
        try:
            svc.engine.converse(reporter.key, "/restart", {"message_id": message.id, "channel": "sms"})
        except EngineUnavailable:
            log.info("engine down: conversation of reporter %s not restarted", reporter.id)
        return [{"msg": "opted_out", "lang": lang}]
    if command.intent == keywords.OPT_IN:
        reporters.opt_in(svc.session, reporter)
        return [{"msg": "opted_in", "lang": lang}]
    return None


def _converse(svc: Services, reporter: Reporter, message: Message, conversation, text: str) -> list[dict]:
    """Ask the engine, counting the attempt first: a timed-out turn may still have run."""
    command = keywords.match(text)
    if command is not None and command.intent == keywords.HELP:
        text = forced_intent("help")
    elif command is not None and command.intent == keywords.LANGUAGE:
        reporters.set_language(svc.session, reporter, command.language)
        text = forced_intent("choose_language", {"language": command.language})
    else:  # what Rasa reads: no accents, no forced "/intent" from a reporter, bounded
        text = for_nlu(text)
    retry = message.attempts > 0
    message.attempts += 1
    svc.session.commit()
    if retry and hasattr(svc.engine, "replies_for"):
        earlier = _earlier_replies(svc.engine, reporter.key, message.id)
        if earlier is not None:
            return earlier
    metadata = {"message_id": message.id, "channel": "sms", "received_at": reporters.aware(message.created_at)
                .isoformat(), "language": reporter.language, "conversation_id": conversation.id}
    return svc.engine.converse(reporter.key, text, metadata)


def _earlier_replies(engine, sender: str, message_id: int, checks: int = 3, pause: float = 1.0):
    """A turn that timed out here may still be queued in a slow Rasa: look a few times
    before concluding it never ran, so it is not played twice."""
    for attempt in range(checks):
        earlier = engine.replies_for(sender, message_id)
        if earlier is not None or attempt == checks - 1:
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
    if choose_language is not None:
        try:
            return choose_language(text or "")
        except Exception:  # detection must never cost a reply
            log.exception("language detection failed")
    return DEFAULT_LANGUAGE
