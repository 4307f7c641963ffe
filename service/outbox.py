"""Every message we send passes here, and here alone we refuse to write to an opted-out person.

Opt-out stops what *we* initiate. Still allowed after STOP: the confirmation of the STOP
itself, and the answers to messages the person writes to us afterwards. The decision is
taken on the reporter as the database has it at the moment of sending, never on a copy
read earlier: a STOP committed a millisecond before wins.

A send happens at most once. A row is claimed (queued -> sending) by one conditional
update; a send whose outcome is unknown (the gateway may have taken it) stays "sending"
until the provider's own record says whether it left; a claim left by a killed worker
is recovered the same way. Where the gateway keeps no searchable record the message is
failed with reason "unknown_outcome" for an operator, rather than sent twice.
"""

from __future__ import annotations

import logging
import time
from datetime import datetime, timedelta

import redis
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from bot import keywords
from bot.gsm7 import segments
from service import bucket
from service.channels import Channels
from service.channels.base import Channel, LookupUnsupported, SendError
from service.models import Broadcast, Message, Reporter, Subscriber, utcnow
from service.privacy import Identity, mask
from service.reporters import SIMULATOR, aware, number_for_sending, opt_out

log = logging.getLogger(__name__)


def allowed(reporter: Reporter, reply_to: Message | None) -> bool:
    """Whether a message may go to this reporter (see module docstring)."""
    if not reporter.opted_out:
        return True
    if reply_to is None:
        return False
    if reply_to.id is not None and reply_to.id == reporter.opted_out_message_id:
        return True  # the confirmation of this very STOP, however it was worded
    command = keywords.match(reply_to.body)
    if command is not None and command.intent == keywords.OPT_OUT:
        return True
    opted_out_at = aware(reporter.opted_out_at)
    return opted_out_at is not None and aware(reply_to.created_at) > opted_out_at


def current(session: Session, reporter_id: int) -> Reporter | None:
    """The reporter as committed now (not the copy this session may hold)."""
    return session.scalar(select(Reporter).where(Reporter.id == reporter_id)
                          .execution_options(populate_existing=True))


def record(session: Session, reporter: Reporter, body: str, *, reply_to: Message | None = None,
           language: str | None = None, conversation_id: int | None = None, status: str = "queued",
           provider: str) -> Message:
    """Store an outbound message; it is "suppressed" if the reporter may not receive it."""
    message = Message(direction="out", channel="sms", provider=provider, reporter_id=reporter.id,
                      conversation_id=conversation_id, reply_to_id=reply_to.id if reply_to else None,
                      body=body, language=language, segments=segments(body), attempts=0,
                      status=status if allowed(reporter, reply_to) else "suppressed")
    session.add(message)
    session.flush()
    return message


def hand_over(session: Session, message_id: int, limit: bucket.Bucket | None = None) -> bool:
    """Mark a queued reply as given in the webhook's own answer; False: send it later.

    Checked and claimed like a send, so a STOP that won the race suppresses it here. The
    gateway still sends it: it counts against the channel's rate (`limit`, see _count).
    """
    message = session.get(Message, message_id)
    reporter = current(session, message.reporter_id) if message and message.reporter_id else None
    if message is None or reporter is None or message.status != "queued":
        return False
    reply_to = session.get(Message, message.reply_to_id) if message.reply_to_id else None
    if not allowed(reporter, reply_to):
        _finish(session, message, "suppressed")
        return False
    claimed = session.execute(update(Message).where(Message.id == message_id, Message.status == "queued")
                              .values(status="handed", attempts=Message.attempts + 1, processed_at=utcnow()))
    session.commit()
    if claimed.rowcount == 1:
        _count(limit, message)
    return claimed.rowcount == 1


def send(session: Session, message_id: int, channels: Channels, identity: Identity,
         max_attempts: int = 6, connection: redis.Redis | None = None) -> str:
    """Hand one queued message to its channel (the one named on the row: a reply leaves
    by the channel its message came in on); returns its new status. Safe to repeat.

    A retryable refusal puts it back to "queued" and re-raises for the job's retry. With
    `connection`, the send counts against the channel's rate (see _count).
    """
    message = session.get(Message, message_id)
    if message is None or message.direction != "out":
        return "missing"
    if message.status != "queued":
        return message.status
    if message.provider == SIMULATOR:  # the console's simulator: never to a phone, whatever path led here
        return _finish(session, message, "suppressed")
    reporter = current(session, message.reporter_id) if message.reporter_id else None
    reply_to = session.get(Message, message.reply_to_id) if message.reply_to_id else None
    if reporter is None or not allowed(reporter, reply_to):
        return _finish(session, message, "suppressed")
    if message.broadcast_id is not None:
        withdrawn = _broadcast_withdrawn(session, message)
        if withdrawn:
            return _finish(session, message, withdrawn)
    if message.attempts >= max_attempts:
        return _finish(session, message, "failed", "attempts", f"not sent after {message.attempts} attempts")
    number = number_of(session, identity, message, reporter)
    if number is None:
        return _finish(session, message, "failed", "no_number", "no phone number kept (expired or purged)")
    channel = channels.get(message.provider)
    claimed_at = utcnow()
    claimed = session.execute(update(Message).where(Message.id == message.id, Message.status == "queued")
                              .values(status="sending", attempts=Message.attempts + 1, claimed_at=claimed_at))
    session.commit()
    if claimed.rowcount != 1:
        return "sending"
    _count(bucket.for_channel(connection, channel), message)  # no connection: no limit (bucket.py)
    try:
        provider_id = channel.send(number, message.body, (reply_to.reply_context if reply_to else None) or None,
                                   idempotency_key=f"alerte-{message.id}")
    except SendError as exc:
        if exc.unknown:
            return _unknown(session, message, channel, number, claimed_at, exc)
        return _failed(session, message, reporter, exc)
    return _sent(session, message, channel, provider_id, number)


BROADCAST_WAIT = 5.0  # s a broadcast delivery sent here waits for its tokens before going all the same


def _count(limit: bucket.Bucket | None, message: Message) -> None:
    """A send outside the broadcast senders takes its segments from the channel's bucket.
    A reply does not wait: it never waits for a broadcast, and the broadcast senders,
    who wait, leave it room (service/bucket.py). A broadcast's delivery sent here (by an
    SMPP bind, from its own lower-priority queue) waits for its tokens, up to
    BROADCAST_WAIT, so the channel keeps its rate. Redis down costs the count, never the
    send."""
    if limit is None:
        return
    cost = message.segments or segments(message.body or "")
    try:
        if message.broadcast_id is None or not limit.wait_for(cost, time.monotonic() + BROADCAST_WAIT):
            limit.take(cost, force=True)
    except redis.RedisError as exc:
        log.info("message %s not counted against %s's rate: %s", message.id, limit.channel, exc)


def _broadcast_withdrawn(session: Session, message: Message) -> str | None:
    """A broadcast's delivery sent on its own (an SMPP bind's): the status it ends with
    instead when the broadcast was canceled or has expired, or the person left."""
    state, expires_at = session.execute(select(Broadcast.state, Broadcast.expires_at)
                                        .where(Broadcast.id == message.broadcast_id)).one()
    if state == "canceled":
        return "canceled"
    if state == "expired" or aware(expires_at) <= utcnow():
        return "expired"
    subscribed = session.scalar(select(Subscriber.status).where(Subscriber.reporter_id == message.reporter_id))
    return None if subscribed == "active" else "suppressed"


def number_of(session: Session, identity: Identity, message: Message, reporter: Reporter) -> str | None:
    """The number to send to: a reply's within the reporter's retention; a broadcast's
    delivery to an active subscriber, whose consent keeps the number."""
    if message.broadcast_id is not None:
        subscribed = session.scalar(select(Subscriber.status).where(Subscriber.reporter_id == reporter.id))
        return identity.decrypt(reporter.phone_encrypted) if subscribed == "active" else None
    return number_for_sending(identity, reporter)


def _sent(session: Session, message: Message, channel: Channel, provider_id: str, number: str) -> str:
    session.execute(update(Message).where(Message.id == message.id, Message.status == "sending")
                    .values(status="sent", provider=channel.name, provider_id=provider_id,
                            processed_at=utcnow(), error_code=None))
    session.commit()
    session.refresh(message)
    log.info("message %s sent to %s as %s", message.id, mask(number), provider_id)
    return message.status


def _unknown(session, message, channel, number, since: datetime, exc: SendError) -> str:
    """The gateway may have the message: ask it now; if it cannot say, the sweep asks later."""
    message.error_code, message.failure_reason = "unknown", str(exc)[:200]
    session.commit()
    log.warning("message %s: outcome unknown (%s); checking the provider's record", message.id, exc)
    return recover(session, message.id, channel, number, since)


def recover(session: Session, message_id: int, channel: Channel, number: str | None, since: datetime) -> str:
    """Settle a claimed send from the provider's record: sent, queued again, or failed."""
    message = session.get(Message, message_id)
    if message is None or message.status != "sending":
        return message.status if message else "missing"
    if number is None:
        return _finish(session, message, "failed", "no_number", "no phone number kept (expired or purged)")
    try:
        provider_id = channel.find_sent(number, message.body, since - timedelta(minutes=2))
    except LookupUnsupported:
        return _finish(session, message, "failed", "unknown", "unknown_outcome: the gateway may have sent it")
    except SendError as exc:
        log.warning("message %s: provider's record unavailable (%s); left for the sweep", message.id, exc)
        return "sending"
    if provider_id is not None:
        return _sent(session, message, channel, provider_id, number)
    session.execute(update(Message).where(Message.id == message.id, Message.status == "sending")
                    .values(status="queued"))  # never reached the provider: send again (bounded)
    session.commit()
    session.refresh(message)
    return message.status


def _failed(session: Session, message: Message, reporter: Reporter, exc: SendError) -> str:
    if exc.opted_out:  # honour the carrier's STOP here too (the channel maps its codes)
        opt_out(session, reporter)
    if exc.retryable:
        message.status, message.error_code, message.failure_reason = "queued", exc.code, str(exc)[:200]
        session.commit()
        raise exc
    log.warning("message %s not sent: %s", message.id, exc)
    return _finish(session, message, "failed", exc.code, str(exc))


def _finish(session: Session, message: Message, status: str, error_code: str | None = None,
            reason: str | None = None) -> str:
    message.status, message.error_code, message.processed_at = status, error_code, utcnow()
    if reason:
        message.failure_reason = reason[:200]
    session.commit()
    return status


def queued_ids(session: Session, older_than) -> list[int]:
    """Outbound messages still waiting for a send job (a lost job, Redis was down); a
    broadcast's deliveries are its senders' (service/broadcast_sending.py)."""
    return list(session.scalars(select(Message.id).where(
        Message.direction == "out", Message.status == "queued", Message.created_at < older_than,
        Message.broadcast_id.is_(None))))


def stale_claims(session: Session, claimed_before) -> list[Message]:
    """Sends claimed long ago and never settled: the worker died, or the outcome is unknown."""
    return list(session.scalars(select(Message).where(
        Message.direction == "out", Message.status == "sending", Message.claimed_at < claimed_before)))
