"""Every SMS we send passes here, and here alone we refuse to write to an opted-out person.

Opt-out stops what *we* initiate. Still allowed after STOP: the confirmation of the STOP
itself, and the answers to messages the person writes to us afterwards.
"""

from __future__ import annotations

import logging

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from bot import keywords
from bot.gsm7 import segments
from service.channels.base import Channel, SendError
from service.models import Message, Reporter, utcnow
from service.privacy import Identity, mask
from service.reporters import aware, opt_out

log = logging.getLogger(__name__)


def allowed(reporter: Reporter, reply_to: Message | None) -> bool:
    """Whether a message may go to this reporter (see module docstring)."""
    if not reporter.opted_out:
        return True
    if reply_to is None:
        return False
    command = keywords.match(reply_to.body)
    if command is not None and command.intent == keywords.OPT_OUT:
        return True
    opted_out_at = aware(reporter.opted_out_at)
    return opted_out_at is not None and aware(reply_to.created_at) > opted_out_at


def record(session: Session, reporter: Reporter, body: str, *, reply_to: Message | None = None,
           language: str | None = None, conversation_id: int | None = None, status: str = "queued",
           provider: str = "twilio") -> Message:
    """Store an outbound message; it is "suppressed" if the reporter may not receive it."""
    message = Message(direction="out", channel="sms", provider=provider, reporter_id=reporter.id,
                      conversation_id=conversation_id, reply_to_id=reply_to.id if reply_to else None,
                      body=body, language=language, segments=segments(body), attempts=0,
                      status=status if allowed(reporter, reply_to) else "suppressed")
    session.add(message)
    session.flush()
    return message


def send(session: Session, message_id: int, channel: Channel, identity: Identity,
         status_callback_url: str | None) -> str:
    """Hand one queued message to the gateway; returns its new status. Safe to repeat.

    The row is claimed with a conditional update so two workers never send it twice;
    a retryable failure puts it back to "queued" and re-raises for the job's retry.
    """
    message = session.get(Message, message_id)
    if message is None or message.direction != "out":
        return "missing"
    reporter = session.get(Reporter, message.reporter_id) if message.reporter_id else None
    reply_to = session.get(Message, message.reply_to_id) if message.reply_to_id else None
    if message.status != "queued":
        return message.status
    if reporter is None or not allowed(reporter, reply_to):
        return _finish(session, message, "suppressed")
    number = identity.decrypt(reporter.phone_encrypted)
    if number is None:
        return _finish(session, message, "failed", "no_number")
    claimed = session.execute(update(Message).where(Message.id == message.id, Message.status == "queued")
                              .values(status="sending", attempts=Message.attempts + 1))
    session.commit()
    if claimed.rowcount != 1:
        return "sending"
    try:
        provider_id = channel.send(number, message.body, status_callback_url)
    except SendError as exc:
        return _failed(session, message, reporter, exc)
    message.provider, message.provider_id = channel.name, provider_id
    message.processed_at = utcnow()
    session.commit()
    log.info("message %s sent to %s as %s", message.id, mask(number), provider_id)
    return message.status


def _failed(session: Session, message: Message, reporter: Reporter, exc: SendError) -> str:
    if exc.code == "21610":  # the person sent STOP to the carrier: honour it here too
        opt_out(session, reporter)
    if exc.retryable:
        message.status, message.error_code = "queued", exc.code
        session.commit()
        raise exc
    log.warning("message %s not sent: %s", message.id, exc)
    return _finish(session, message, "failed", exc.code)


def _finish(session: Session, message: Message, status: str, error_code: str | None = None) -> str:
    message.status, message.error_code, message.processed_at = status, error_code, utcnow()
    session.commit()
    return status


def queued_ids(session: Session, older_than) -> list[int]:
    """Outbound messages still waiting for a send job (a lost job, Redis was down)."""
    return list(session.scalars(select(Message.id).where(
        Message.direction == "out", Message.status == "queued", Message.created_at < older_than)))
