"""The SMS sign-up for safety broadcasts, kept between messages (bot/subscription.py
holds the dialogue; this keeps its state on the person's subscription and files the
result).

Where it sits in a turn (service/inbox.turn): before STOP/START, since the consent
question's "1"/"yes" words are also opt-in words and must answer the question; after
it, a message the sign-up hands back goes on as any other message.

- A join word (keywords.JOIN) starts it: someone who texts a join word asks to receive
  messages, so an earlier STOP is lifted (as START does). A reporter is not a
  subscriber until they agree, name a place and a language: until then their row is
  ``pending`` and carries the dialogue's state.
- A sign-up that is interrupted (a report, HELP, STOP) or left for longer than a
  conversation's quiet period ends: a later "1" is an answer to whatever was asked last,
  never a consent given by accident. A pending row that never consented is removed.
- Refusing consent ends it too; an active subscriber who starts again and refuses has
  left (no more broadcasts).
"""

from __future__ import annotations

import logging
from datetime import timedelta

from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from bot import keywords, subscription
from bot.places import default_gazetteer
from service import reporters, subscribers
from service.models import Message, Reporter, Subscriber, utcnow

log = logging.getLogger(__name__)


def handle(session: Session, reporter: Reporter, message: Message, text: str,
           timeout_minutes: int) -> list[dict] | None:
    """The sign-up's answer to this message, or None when the message is not for it."""
    row = subscribers.subscription(session, reporter)
    if row is not None and row.signup and _stale(row, timeout_minutes):
        _end(session, row)
        row = subscribers.subscription(session, reporter)
    if row is not None and row.signup:
        return _answer(session, reporter, row, message, text)
    command = keywords.match(text)
    if command is None or command.intent != keywords.JOIN:
        return None
    step = subscription.start(command.language or reporter.language)
    if reporter.opted_out:  # asking to join is asking to receive messages again
        reporters.opt_in(session, reporter)
    row = row or _pending(session, reporter)
    row.signup = step.state
    row.updated_at = utcnow()  # a state change alone may not count as a change of the row
    log.info("reporter %s: sign-up started", reporter.id)
    return step.payloads


def _answer(session: Session, reporter: Reporter, row: Subscriber, message: Message, text: str):
    before = row.signup.get("step")
    step = subscription.answer(row.signup, text, default_gazetteer())
    if step.passthrough:  # not an answer: the sign-up ends and the message goes on
        _end(session, row)
        return None
    if step.refused:
        _end(session, row, refused=True)
        return step.payloads
    if step.result is not None:
        place = default_gazetteer().get(step.result["place_key"])
        consent = row.consent_note if row.consent_method == "sms" else None
        subscribers.subscribe(session, reporter, language=step.result["language"], place=place,
                              channel=message.provider, consent_method="sms",
                              consent_note=consent or f"sms, message {message.id}", source="sms")
        reporters.set_language(session, reporter, step.result["language"])  # a stated choice
        row.signup = None
        log.info("reporter %s: subscribed", reporter.id)
        return step.payloads
    if before == subscription.CONSENT and step.state and step.state.get("step") == subscription.PLACE:
        # which message gave consent; the consent itself counts once the sign-up ends well
        row.consent_method, row.consent_note = "sms", f"sms, message {message.id}"
    if step.state is None:  # ended (tries ran out)
        _end(session, row)
    else:
        row.signup = step.state
        row.updated_at = utcnow()
    return step.payloads


def _pending(session: Session, reporter: Reporter) -> Subscriber:
    row = Subscriber(reporter_id=reporter.id, status="pending")
    try:
        with session.begin_nested():
            session.add(row)
            session.flush()
    except IntegrityError:  # another process wrote it meanwhile (the reporter lock makes this rare)
        row = subscribers.subscription(session, reporter)
    return row


def _end(session: Session, row: Subscriber, refused: bool = False) -> None:
    row.signup = None
    if row.status == "pending" and row.consent_at is None:
        session.delete(row)  # never a subscriber: nothing of the attempt is kept
    elif refused and row.status == "active":
        subscribers.leave(session, row)
    session.flush()


def _stale(row: Subscriber, timeout_minutes: int) -> bool:
    updated = reporters.aware(row.updated_at)
    return updated is not None and updated < utcnow() - timedelta(minutes=timeout_minutes)
