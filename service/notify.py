"""Telling the reporter how their report goes: one short SMS at acknowledgement and at
response. A network that hears nothing back dies.

The SMS carries the alert's reference and reassurance only (bot/messages.py,
``triage.*``), never what was reported: a phone may be seen by the wrong people. It is
something *we* start, so it is not a reply (no ``reply_to``): outbox.allowed refuses it
to an opted-out reporter, here and again at send time (a STOP in between wins).

* **Language**: the reporter's stated choice, else the detected one (the reporter's,
  else the language the alert's conversation went on in), else the alert's, else French.
* **Channel**: the one the reporter's latest inbound SMS of the alert's conversation came
  in on, as a reply would. A voice alert has no such SMS, and a call cannot be answered
  by SMS on the voice line, so it takes the channel for messages that start from us,
  ``Channels.for_recipient`` (by mobile network where configured, else the default), as
  broadcasts and call-backs do; so does an SMS alert whose channel was removed since.
* **Once per (alert, event)**: the outbound row carries ``reply_context`` =
  ``{"alert": id, "event": ...}`` (an inbound row's field, unused on outbound rows: the
  send reads the replied-to message's), looked for before inserting. Two operators at
  once are serialised by a no-op UPDATE of the alert row taken first (a row lock on
  PostgreSQL, the write lock on SQLite), so the second finds the first's row. No schema
  change; a provider_id marker would not do, the send overwrites it with the gateway's.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from sqlalchemy import select, update

from bot.languages import DEFAULT_LANGUAGE, LANGUAGES
from service import audit, outbox, queue
from service.inbox import Services
from service.models import Alert, Conversation, Message, Operator
from service.reporters import number_for_sending

log = logging.getLogger(__name__)

EVENTS = {"acknowledged": "triage.acknowledged", "dispatched": "triage.dispatched"}  # event -> message id

# What tell_reporter did; only QUEUED stored a message.
QUEUED = "queued"  # stored and its send queued (Redis down: the sweep sends it)
ALREADY = "already_told"  # this event was told before: nothing new
OPTED_OUT = "opted_out"  # the reporter said STOP: nothing is stored
NO_NUMBER = "no_number"  # the kept number expired or was purged: nothing can be sent
NO_REPORTER = "no_reporter"  # the alert has no reporter (entered by an operator)
NO_REFERENCE = "no_reference"  # never confirmed: the reporter was given no reference to recognise


@dataclass(frozen=True)
class Told:
    outcome: str
    message_id: int | None = None  # the SMS stored now, or the one stored before (ALREADY)

    @property
    def queued(self) -> bool:
        return self.outcome == QUEUED


def tell_reporter(svc: Services, alert: Alert | int, event: str, operator: Operator | None) -> Told:
    """Store (committed) and queue the SMS telling the alert's reporter of `event`
    ("acknowledged" or "dispatched"); safe to repeat. Commits the session, with what the
    caller had pending in it: call it after the triage step is committed.

    Raises ValueError for an unknown event, LookupError for an unknown alert.
    """
    if event not in EVENTS:
        raise ValueError(f"unknown event {event!r}; one of {', '.join(EVENTS)}")
    session = svc.session
    alert_id = alert.id if isinstance(alert, Alert) else int(alert)
    locked = session.execute(update(Alert).where(Alert.id == alert_id).values(updated_at=Alert.updated_at)
                             .execution_options(synchronize_session=False))  # serialises tellers (docstring)
    if not locked.rowcount:
        session.rollback()
        raise LookupError(f"no alert {alert_id}")
    told = _tell(svc, session.get(Alert, alert_id, populate_existing=True), event, operator)
    session.commit()
    if told.queued:
        queue.enqueue_send(svc.queue, told.message_id)
    log.info("alert %s, %s: reporter %s", alert_id, event, told.outcome)
    return told


def _tell(svc: Services, alert: Alert, event: str, operator: Operator | None) -> Told:
    session = svc.session
    if alert.reporter_id is None:
        return Told(NO_REPORTER)
    earlier = told_before(session, alert, event)
    if earlier is not None:
        return Told(ALREADY, earlier)
    if not alert.reference:
        return Told(NO_REFERENCE)
    reporter = outbox.current(session, alert.reporter_id)  # as committed now: a STOP just made counts
    if not outbox.allowed(reporter, None):
        return Told(OPTED_OUT)
    number = number_for_sending(svc.identity, reporter)
    if number is None:
        return Told(NO_NUMBER)
    language = language_for(session, alert, reporter)
    channel = channel_for(session, svc.channels, alert, number)
    body = channel.render([{"msg": EVENTS[event], "lang": language, "args": {"reference": alert.reference}}],
                          language)
    message = outbox.record(session, reporter, body, language=language, provider=channel.name,
                            conversation_id=alert.conversation_id if alert.channel != "voice" else None)
    message.reply_context = {"alert": alert.id, "event": event}
    session.flush()
    audit.record(session, operator, "alert.reporter_told", "alert", alert.id,
                 after={"event": event, "message": message.id, "language": language, "channel": channel.name})
    return Told(QUEUED, message.id)


def told_before(session, alert: Alert, event: str) -> int | None:
    """The id of the SMS that already told this alert's reporter of `event`, if any."""
    return session.scalar(select(Message.id).where(
        Message.reporter_id == alert.reporter_id, Message.direction == "out",
        Message.reply_context["alert"].as_integer() == alert.id,
        Message.reply_context["event"].as_string() == event).order_by(Message.id).limit(1))


def language_for(session, alert: Alert, reporter) -> str:
    """Stated, else detected (the reporter's, else their conversation's), else the alert's, else French."""
    conversation = session.scalar(select(Conversation.language).where(Conversation.id == alert.conversation_id)) \
        if alert.conversation_id is not None else None
    for candidate in (reporter.language, reporter.detected_language, conversation, alert.language):
        if candidate in LANGUAGES:
            return candidate
    return DEFAULT_LANGUAGE


def channel_for(session, channels, alert: Alert, number: str):
    """The channel of the reporter's latest inbound SMS in the alert's conversation, else
    (a voice alert, a channel removed since) the one for messages that start from us."""
    if alert.channel != "voice" and alert.conversation_id is not None:
        provider = session.scalar(select(Message.provider).where(
            Message.conversation_id == alert.conversation_id, Message.reporter_id == alert.reporter_id,
            Message.direction == "in").order_by(Message.created_at.desc(), Message.id.desc()).limit(1))
        if provider is not None and provider in channels:
            return channels.get(provider)
    return channels.for_recipient(number)
