"""The simulator (issue 12): type a message as a reporter, in any language, and read the
bot's replies and what it understood so far, through the real conversation path.

Each message goes through service.inbox.receive, the webhook's own path, on a
SimulatorChannel: its replies come back inline (`reply(texts)` returns them) and its
`send` raises, so nothing can leave for a phone. The sender is the operator's test
identity, a number in a range no phone has (TEST_PREFIX: +243 10..., a block DR Congo
never allocated; `phonenumbers` holds it not valid, no network), and the rows it leaves
are real ones, told apart by their provider "simulator" (`Message.provider`), and for
reporters and alerts by `simulator_reporters()`.

Guards so that nothing stored here is ever sent later by a job: receive runs with
`NullQueue` (no job is queued for the test reporter) and with the channels resolving
"simulator" to the SimulatorChannel (a reply renders and is handed over inline, never
sent); a message the engine could not answer is marked failed at once, its queued
replies suppressed, before the sweep's cutoff (WEBHOOK_BUDGET + 5 s) could see them.
"""

from __future__ import annotations

import dataclasses
import logging
import uuid
from datetime import timedelta

from flask import abort, flash, redirect, render_template, request, session, url_for
from flask_login import login_required
from sqlalchemy import select, update

from bot.engine import EngineUnavailable
from service import accounts, inbox, queue, reporters
from service.channels.base import Channel, InboundMessage, SendError
from service.console import bp
from service.console.auth import current_operator
from service.console.i18n import _
from service.db import get_session
from service.models import Alert, Message, Reporter, utcnow

log = logging.getLogger(__name__)
PROVIDER = "simulator"
TEST_PREFIX = "+2431099"  # + five digits: the operator's id; +243 1x is no mobile range
MAX_BODY = inbox.MAX_PROCESSED
SHOWN = 100  # messages of the conversation shown
SESSION_KEY = "console_simulator"  # where this operator's conversation starts (ids)


def test_number(operator_id: int) -> str:
    """The operator's test identity: fixed, E.164, never a subscriber's number."""
    return f"{TEST_PREFIX}{operator_id % 100000:05d}"


def is_test_number(number: str | None) -> bool:
    return bool(number) and number.startswith(TEST_PREFIX) and len(number) == len(TEST_PREFIX) + 5


def simulator_reporters():
    """The ids of reporters who wrote through the simulator (a subquery): inbox, exports
    and metrics leave them out with `Alert.reporter_id.not_in(simulator_reporters())`."""
    return select(Message.reporter_id).where(Message.provider == PROVIDER, Message.reporter_id.is_not(None)) \
        .distinct().scalar_subquery()


class SimulatorChannel(Channel):
    """Answers inline, never sends: whatever path reaches `send` is refused."""

    kind = "simulator"
    inline_replies = True

    def __init__(self, app_config: dict):
        super().__init__({"name": PROVIDER}, app_config)

    def verify(self, request) -> bool:  # no webhook: the console is the only way in
        return False

    def parse_inbound(self, request) -> InboundMessage:
        raise NotImplementedError("the simulator has no webhook")

    def parse_status(self, request):
        raise NotImplementedError("the simulator has no webhook")

    def status_path(self) -> str | None:
        return None

    def reply(self, texts: list[str]) -> list[str]:
        return list(texts)

    def send(self, to, body, reply_context=None, *, idempotency_key=None) -> str:
        raise SendError(None, False, "the simulator never sends to a phone")

    def send_many(self, items):
        return [SendError(None, False, "the simulator never sends to a phone") for _item in items]


class SimulatorChannels:
    """The configured channels, with "simulator" resolving to the SimulatorChannel."""

    def __init__(self, channels, channel: SimulatorChannel):
        self._channels, self._channel = channels, channel
        self.default = channels.default

    def get(self, name: str | None):
        return self._channel if name == PROVIDER else self._channels.get(name)

    def __iter__(self):
        return iter(self._channels)

    def __contains__(self, name: str) -> bool:
        return name == PROVIDER or name in self._channels

    def for_recipient(self, number: str):
        return self._channel if is_test_number(number) else self._channels.for_recipient(number)


class NullQueue:
    """Takes no job: a simulator message is answered now or not at all."""

    name = "simulator-none"

    def __init__(self, connection=None):
        self.connection = connection

    def enqueue(self, *args, **kwargs):
        return None

    def enqueue_in(self, *args, **kwargs):
        return None

    def enqueue_at(self, *args, **kwargs):
        return None


def services(channel: SimulatorChannel) -> inbox.Services:
    svc = inbox.Services.current()
    return dataclasses.replace(svc, channels=SimulatorChannels(svc.channels, channel),
                               queue=NullQueue(getattr(svc.queue, "connection", None)))


def _allowed_operator():
    operator = current_operator()
    if not (accounts.can(operator, "translate") or accounts.can(operator, "triage")):
        abort(403)
    return operator


def _marks() -> dict:
    marks = session.get(SESSION_KEY)
    return marks if isinstance(marks, dict) else {}


def _test_reporter(db, operator) -> Reporter | None:
    from flask import current_app
    return reporters.find(db, current_app.extensions["identity"], test_number(operator.id))


def say(operator, body: str) -> tuple[list[str], Message | None]:
    """One message from the operator's test identity through inbox.receive: the texts of
    the inline answer, and the stored message (None for a duplicate)."""
    from flask import current_app
    channel = SimulatorChannel(current_app.config)
    svc = services(channel)
    inbound = InboundMessage(provider_id=f"sim-{uuid.uuid4().hex}", sender=test_number(operator.id),
                             recipient=None, body=body, received_at=utcnow())
    texts = inbox.receive(svc, channel, inbound)
    db = svc.session
    db.rollback()  # a new transaction: what receive committed
    message = db.scalar(select(Message).where(Message.provider == PROVIDER,
                                              Message.provider_id == inbound.provider_id))
    if message is not None and message.status != "processed":
        _not_answered(svc, message)
    return channel.reply(texts or []), message


def _not_answered(svc: inbox.Services, message: Message) -> None:
    """The engine did not answer in time: never retried later, nothing of it sent."""
    db = svc.session
    db.execute(update(Message).where(Message.id == message.id, Message.status.in_(inbox.UNPROCESSED))
               .values(status="failed", processed_at=utcnow(),
                       failure_reason=(f"simulator: not answered ({message.failure_reason or 'no answer'})")[:200])
               .execution_options(synchronize_session=False))
    db.execute(update(Message).where(Message.reply_to_id == message.id, Message.status == "queued")
               .values(status="suppressed").execution_options(synchronize_session=False))
    db.commit()
    try:
        queue.clear_mark(svc.redis, message.reporter_id)
    except Exception:  # noqa: BLE001 - a mark left behind only expires
        log.info("simulator: the job mark of reporter %s was left to expire", message.reporter_id)


def _transcript(db, reporter: Reporter | None, after: int) -> list[Message]:
    if reporter is None:
        return []
    rows = db.scalars(select(Message).where(Message.reporter_id == reporter.id, Message.id > after,
                                            Message.provider == PROVIDER, Message.broadcast_id.is_(None))
                      .order_by(Message.id.desc()).limit(SHOWN)).all()
    return sorted(rows, key=lambda m: (m.created_at, m.id))


def _understood(db, reporter: Reporter | None, after: int) -> Alert | None:
    """The draft (or confirmed) alert of the test reporter's current conversation."""
    if reporter is None:
        return None
    return db.scalar(select(Alert).where(Alert.reporter_id == reporter.id, Alert.id > after)
                     .order_by(Alert.updated_at.desc(), Alert.id.desc()).limit(1))


@bp.route("/simulator", methods=["GET", "POST"], endpoint="simulator")
@login_required
def simulator():
    operator = _allowed_operator()
    db = get_session()
    if request.method == "POST":
        body = (request.form.get("body") or "").strip()
        if not body:
            flash(_("Type a message first."), "error")
        elif len(body) > MAX_BODY:
            flash(_("A message is at most %(n)s characters.", n=MAX_BODY), "error")
        else:
            texts, message = say(operator, body)
            if message is not None and message.status != "processed":
                flash(_("The bot did not answer: the conversation engine is not available just now. "
                        "A reporter would have read: “%(notice)s”. Try again in a moment.",
                        notice=" ".join(texts)), "error")
            elif message is not None and not texts:
                flash(_("The bot had nothing to say to this message."))
        return redirect(url_for("console.simulator"))
    marks = _marks()
    reporter = _test_reporter(db, operator)
    transcript = _transcript(db, reporter, int(marks.get("message") or 0))
    alert = _understood(db, reporter, int(marks.get("alert") or 0))
    return render_template("console/simulator.html", transcript=transcript, alert=alert,
                           number=test_number(operator.id), max_body=MAX_BODY)


@bp.post("/simulator/new", endpoint="simulator_new")
@login_required
def simulator_new():
    """A new conversation: the bot forgets (/restart), the test reporter starts afresh."""
    operator = _allowed_operator()
    db = get_session()
    from flask import current_app
    reporter = _test_reporter(db, operator)
    marks = {"message": 0, "alert": 0}
    if reporter is not None:
        try:
            current_app.extensions["engine"].converse(reporter.key, "/restart", {"channel": "sms"},
                                                      timeout=current_app.config.get("RASA_TIMEOUT") or None)
        except EngineUnavailable:
            flash(_("The conversation engine is not available: the bot may remember the last conversation."),
                  "error")
        timeout = int(current_app.config["CONVERSATION_TIMEOUT"])
        ended = utcnow() - timedelta(minutes=timeout + 1)
        conversation = reporters.latest_conversation(db, reporter)
        if conversation is not None:
            conversation.last_activity_at = ended
        reporters.opt_in(db, reporter)
        reporter.language = reporter.detected_language = None
        db.commit()
        marks = {"message": db.scalar(select(Message.id).where(Message.reporter_id == reporter.id)
                                      .order_by(Message.id.desc()).limit(1)) or 0,
                 "alert": db.scalar(select(Alert.id).where(Alert.reporter_id == reporter.id)
                                    .order_by(Alert.id.desc()).limit(1)) or 0}
    session[SESSION_KEY] = marks
    flash(_("New conversation: the bot starts from the beginning."))
    return redirect(url_for("console.simulator"))
