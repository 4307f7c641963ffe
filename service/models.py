"""Storage: SQLAlchemy 2 models. Plain SQLAlchemy (no Flask) so the Rasa action server
and the worker share them. Schema changes go through Alembic (service/migrations).

Privacy: a reporter is known by ``key``, an HMAC of the E.164 number; the number itself
is only in ``phone_encrypted`` (see service/privacy.py). No other column holds it.
"""

from __future__ import annotations

from datetime import datetime, timezone

from sqlalchemy import (
    JSON, Boolean, Column, DateTime, Float, ForeignKey, Index, Integer, String, Table, Text, UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


class Base(DeclarativeBase):
    type_annotation_map = {datetime: DateTime(timezone=True)}


class Reporter(Base):
    """A person who writes or calls, known only by a keyed hash of their number."""

    __tablename__ = "reporters"

    id: Mapped[int] = mapped_column(primary_key=True)
    key: Mapped[str] = mapped_column(String(64), unique=True)  # HMAC-SHA256 hex of E.164
    phone_encrypted: Mapped[str | None] = mapped_column(Text)  # Fernet token; for replies only
    phone_expires_at: Mapped[datetime | None]
    language: Mapped[str | None] = mapped_column(String(8))  # stated choice, wins over detection
    detected_language: Mapped[str | None] = mapped_column(String(8))
    opted_out: Mapped[bool] = mapped_column(Boolean, default=False)
    opted_out_at: Mapped[datetime | None]
    opted_out_message_id: Mapped[int | None] = mapped_column(Integer)  # the message that said STOP
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_seen_at: Mapped[datetime | None]
    # a focal point's village, registered by an operator (never from the number): the
    # understanding prefers namesake places near it (service/actions/common.home_area)
    home_place_key: Mapped[str | None] = mapped_column(String(32))  # a gazetteer key


class Conversation(Base):
    """One exchange on one channel; a new one starts after a quiet period."""

    __tablename__ = "conversations"

    id: Mapped[int] = mapped_column(primary_key=True)
    reporter_id: Mapped[int] = mapped_column(ForeignKey("reporters.id"), index=True)
    channel: Mapped[str] = mapped_column(String(16))  # sms | voice
    language: Mapped[str | None] = mapped_column(String(8))
    started_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_activity_at: Mapped[datetime] = mapped_column(default=utcnow)

    reporter: Mapped[Reporter] = relationship()


class Message(Base):
    """Every SMS in or out. Inbound rows are committed before anything else happens."""

    __tablename__ = "messages"
    __table_args__ = (
        UniqueConstraint("provider", "provider_id", name="uq_messages_provider_id"),
        # one delivery per (broadcast, recipient): a fan-out run twice writes nothing new
        UniqueConstraint("broadcast_id", "reporter_id", name="uq_messages_broadcast_recipient"),
        Index("ix_messages_pending", "direction", "status", "reporter_id", "id"),
        Index("ix_messages_broadcast_status", "broadcast_id", "status", "id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    direction: Mapped[str] = mapped_column(String(3))  # in | out
    channel: Mapped[str] = mapped_column(String(16))  # sms | voice
    provider: Mapped[str] = mapped_column(String(32))  # the channel's name (service/channels)
    provider_id: Mapped[str | None] = mapped_column(String(64))  # the gateway's id for this message
    # in: what a reply must carry back to the gateway (Africa's Talking's link id); no number
    reply_context: Mapped[dict | None] = mapped_column(JSON)
    reporter_id: Mapped[int | None] = mapped_column(ForeignKey("reporters.id"), index=True)
    conversation_id: Mapped[int | None] = mapped_column(ForeignKey("conversations.id"), index=True)
    reply_to_id: Mapped[int | None] = mapped_column(ForeignKey("messages.id"), index=True)
    body: Mapped[str] = mapped_column(Text, default="")
    language: Mapped[str | None] = mapped_column(String(8))
    # in: received -> processing (a turn claimed it) -> processed | pending (kept for a retry)
    #     | failed (attempts used up)
    # out: queued -> sending (claimed) -> sent (the provider took it) -> delivered | undelivered
    #      | failed; handed (given in the webhook's own answer); suppressed (opted out)
    status: Mapped[str] = mapped_column(String(16))
    error_code: Mapped[str | None] = mapped_column(String(64))  # the provider's code or reason
    failure_reason: Mapped[str | None] = mapped_column(String(200))  # the last error, for operators
    claimed_at: Mapped[datetime | None]  # when a turn or a send was claimed: a stale claim is recovered
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    segments: Mapped[int | None] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    processed_at: Mapped[datetime | None]
    # out, a broadcast's delivery to one subscriber (service/broadcasts.py)
    broadcast_id: Mapped[int | None] = mapped_column(ForeignKey("broadcasts.id"))
    next_attempt_at: Mapped[datetime | None]  # a retried delivery waits until then


class Place(Base):
    """A place of the gazetteer that an alert points to (provinces, territories, localities)."""

    __tablename__ = "places"

    id: Mapped[int] = mapped_column(primary_key=True)
    key: Mapped[str] = mapped_column(String(32), unique=True)  # p-code, or "gn:<geonameid>"
    name: Mapped[str] = mapped_column(String(128))
    level: Mapped[str] = mapped_column(String(16))  # adm1 | adm2 | locality
    admin1_pcode: Mapped[str | None] = mapped_column(String(16))
    admin1_name: Mapped[str | None] = mapped_column(String(128))
    admin2_pcode: Mapped[str | None] = mapped_column(String(16), index=True)
    admin2_name: Mapped[str | None] = mapped_column(String(128))
    lat: Mapped[float | None] = mapped_column(Float)
    lon: Mapped[float | None] = mapped_column(Float)
    source: Mapped[str | None] = mapped_column(String(1000))  # a URL or a dataset's name


class Alert(Base):
    """A structured report. Drafts are saved at every answer, so nothing is lost."""

    __tablename__ = "alerts"

    id: Mapped[int] = mapped_column(primary_key=True)
    reference: Mapped[str | None] = mapped_column(String(16), unique=True)
    draft_key: Mapped[str | None] = mapped_column(String(96), unique=True)
    reporter_id: Mapped[int | None] = mapped_column(ForeignKey("reporters.id"), index=True)
    conversation_id: Mapped[int | None] = mapped_column(ForeignKey("conversations.id"))
    category: Mapped[str | None] = mapped_column(String(32), index=True)
    place_id: Mapped[int | None] = mapped_column(ForeignKey("places.id"))
    place_text: Mapped[str | None] = mapped_column(String(160))  # as the reporter wrote it
    occurred_at: Mapped[datetime | None]
    occurred_text: Mapped[str | None] = mapped_column(String(160))
    people_affected: Mapped[int | None] = mapped_column(Integer)
    people_many: Mapped[bool] = mapped_column(Boolean, default=False)
    perpetrator: Mapped[str | None] = mapped_column(String(160))
    description: Mapped[str | None] = mapped_column(Text)
    language: Mapped[str | None] = mapped_column(String(8))
    channel: Mapped[str] = mapped_column(String(16), default="sms")
    # draft -> new (confirmed by the reporter) | incomplete (abandoned); later: verified, ...
    status: Mapped[str] = mapped_column(String(16), default="draft", index=True)
    details: Mapped[dict | None] = mapped_column(JSON)  # extra fields of the flow
    created_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)
    submitted_at: Mapped[datetime | None]
    # the event this report is about (service/incidents.py); set once the report leaves draft
    incident_id: Mapped[int | None] = mapped_column(ForeignKey("incidents.id"), index=True)

    place: Mapped[Place | None] = relationship()


subscriber_groups = Table(
    "subscriber_groups", Base.metadata,
    Column("subscriber_id", ForeignKey("subscribers.id", ondelete="CASCADE"), primary_key=True),
    Column("group_id", ForeignKey("groups.id", ondelete="CASCADE"), primary_key=True),
    Index("ix_subscriber_groups_group", "group_id"),
)


class Group(Base):
    """A named set of subscribers (focal points, a protection committee...)."""

    __tablename__ = "groups"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    description: Mapped[str | None] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Subscriber(Base):
    """Someone who chose to receive safety broadcasts; a reporter is not one unless they
    chose it. The number is the reporter's (encrypted); the place is copied from the
    gazetteer so that targeting is one query."""

    __tablename__ = "subscribers"

    id: Mapped[int] = mapped_column(primary_key=True)
    reporter_id: Mapped[int] = mapped_column(ForeignKey("reporters.id"), unique=True)
    # pending (the SMS sign-up is under way) -> active; left (refused consent or removed)
    status: Mapped[str] = mapped_column(String(16), default="pending", index=True)
    signup: Mapped[dict | None] = mapped_column(JSON)  # the SMS sign-up's state while pending
    language: Mapped[str | None] = mapped_column(String(8))
    place_key: Mapped[str | None] = mapped_column(String(32))  # the gazetteer's key
    place_name: Mapped[str | None] = mapped_column(String(128))
    admin1_pcode: Mapped[str | None] = mapped_column(String(16), index=True)
    admin2_pcode: Mapped[str | None] = mapped_column(String(16), index=True)
    lat: Mapped[float | None] = mapped_column(Float)
    lon: Mapped[float | None] = mapped_column(Float)
    channel: Mapped[str | None] = mapped_column(String(32))  # the channel that reaches them
    consent_at: Mapped[datetime | None]
    consent_method: Mapped[str | None] = mapped_column(String(16))  # sms | import | api
    consent_note: Mapped[str | None] = mapped_column(String(200))  # which message, or who collected it
    source: Mapped[str | None] = mapped_column(String(64))  # sms | csv:<file> | api
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)

    reporter: Mapped[Reporter] = relationship()
    groups: Mapped[list[Group]] = relationship(secondary=subscriber_groups)


class Broadcast(Base):
    """A safety warning sent to subscribers, one text per language; also a CAP 1.2 alert."""

    __tablename__ = "broadcasts"

    id: Mapped[int] = mapped_column(primary_key=True)
    identifier: Mapped[str] = mapped_column(String(64), unique=True)  # CAP identifier
    texts: Mapped[dict] = mapped_column(JSON)  # language -> the text sent (transliterated if asked)
    original_texts: Mapped[dict | None] = mapped_column(JSON)  # as written, when transliterated
    fallback_language: Mapped[str | None] = mapped_column(String(8))
    targets: Mapped[dict] = mapped_column(JSON)
    priority: Mapped[str] = mapped_column(String(8))  # urgent | routine
    cap_status: Mapped[str] = mapped_column(String(16))  # Actual | Exercise | Test
    cap: Mapped[dict | None] = mapped_column(JSON)  # event, headline, severity... given or defaults
    question: Mapped[dict | None] = mapped_column(JSON)  # {"answers": {"1": label, ...}}
    replies_until: Mapped[datetime | None]
    # scheduled -> sending -> sent; canceled; expired (its time ran out before all was sent)
    state: Mapped[str] = mapped_column(String(16), default="scheduled", index=True)
    send_at: Mapped[datetime]
    expires_at: Mapped[datetime]
    fanout_cursor: Mapped[int] = mapped_column(Integer, default=0)  # last subscriber id written
    fanout_done: Mapped[bool] = mapped_column(Boolean, default=False)
    recipients: Mapped[int | None] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    started_at: Mapped[datetime | None]
    finished_at: Mapped[datetime | None]
    canceled_at: Mapped[datetime | None]


class BroadcastReply(Base):
    """A subscriber's answer to a broadcast's question: the latest one counts."""

    __tablename__ = "broadcast_replies"
    __table_args__ = (UniqueConstraint("broadcast_id", "reporter_id", name="uq_broadcast_replies_recipient"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    broadcast_id: Mapped[int] = mapped_column(ForeignKey("broadcasts.id"), index=True)
    reporter_id: Mapped[int] = mapped_column(ForeignKey("reporters.id"))
    message_id: Mapped[int | None] = mapped_column(ForeignKey("messages.id"), index=True)  # the latest answer
    answer: Mapped[str] = mapped_column(String(8))
    admin1_pcode: Mapped[str | None] = mapped_column(String(16))
    admin2_pcode: Mapped[str | None] = mapped_column(String(16))
    changes: Mapped[int] = mapped_column(Integer, default=0)  # answers given after the first
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)


class CallbackRequest(Base):
    """A missed call (a beep, or a hang-up before the menu) to be called back on its line.

    No number here: the call goes to the reporter's own encrypted number, read at dial
    time (service/callbacks.py). One request per reporter per CALLBACK_WINDOW; more beeps
    in the window only count on it (`beeps`).
    """

    __tablename__ = "callbacks"
    __table_args__ = (
        Index("ix_callbacks_reporter_created", "reporter_id", "created_at"),
        Index("ix_callbacks_status_due", "status", "next_attempt_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    reporter_id: Mapped[int] = mapped_column(ForeignKey("reporters.id"))
    provider: Mapped[str] = mapped_column(String(32))  # the channel that places the call
    line: Mapped[str] = mapped_column(String(32))  # our number that was called, and calls back
    reason: Mapped[str] = mapped_column(String(16))  # beep | hung_up
    # queued (waiting for next_attempt_at) -> dialing (claimed, asking the provider) ->
    # calling (the provider has the call) -> answered | queued (busy, no answer: again) |
    # given_up (attempts used up); suppressed (opted out); failed (no number kept, refused
    # by the provider, outcome unknown)
    status: Mapped[str] = mapped_column(String(16))
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    beeps: Mapped[int] = mapped_column(Integer, default=1)
    call_sid: Mapped[str | None] = mapped_column(String(64))  # the provider's id of the latest call
    outcome: Mapped[str | None] = mapped_column(String(32))  # the latest: busy, no-answer, a code...
    failure_reason: Mapped[str | None] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    next_attempt_at: Mapped[datetime | None]  # when it may be dialled (again)
    claimed_at: Mapped[datetime | None]  # when the latest dial was claimed
    answered_at: Mapped[datetime | None]
    finished_at: Mapped[datetime | None]


class Call(Base):
    """One phone call on the voice line, incoming or a call-back (service/voice_calls.py).

    ``state`` is the keypad dialogue's (bot/voice.py): JSON, no number in it. The call's
    draft alert is saved at every answer, so a call that drops leaves what it captured.
    """

    __tablename__ = "calls"
    __table_args__ = (
        UniqueConstraint("provider", "call_sid", name="uq_calls_provider_sid"),
        Index("ix_calls_status_updated", "status", "updated_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    provider: Mapped[str] = mapped_column(String(32))  # the channel's name
    call_sid: Mapped[str] = mapped_column(String(64))  # the provider's id of the call
    reporter_id: Mapped[int | None] = mapped_column(ForeignKey("reporters.id"), index=True)
    line: Mapped[str | None] = mapped_column(String(32))  # our number that was called (or calls back)
    direction: Mapped[str] = mapped_column(String(8))  # in | callback
    callback_id: Mapped[int | None] = mapped_column(ForeignKey("callbacks.id"))
    language: Mapped[str | None] = mapped_column(String(8))
    step: Mapped[str | None] = mapped_column(String(40))  # the dialogue's current step
    turn: Mapped[int] = mapped_column(Integer, default=0)
    state: Mapped[dict | None] = mapped_column(JSON)
    # active (in the dialogue) -> submitted (confirmed: the alert is "new") | dropped (hung
    # up before confirming: a partial alert if anything was captured) | ended (ended
    # without a report: no key pressed, a silence at the language menu); rejected (a
    # beep line); fallback (the dialogue could not run: the report is a recording)
    status: Mapped[str] = mapped_column(String(16))
    alert_id: Mapped[int | None] = mapped_column(ForeignKey("alerts.id"), index=True)
    draft_key: Mapped[str | None] = mapped_column(String(96))  # the alert's draft_key
    started_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)
    ended_at: Mapped[datetime | None]


class CallStep(Base):
    """One webhook of a call, stored before it is processed: the event (keys pressed, a
    recording's id and length; never a number) and the TwiML answered, so that the
    provider's retry of the same step (CallSid + step + turn) gets the same answer."""

    __tablename__ = "call_steps"
    __table_args__ = (UniqueConstraint("call_id", "key", name="uq_call_steps_key"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    call_id: Mapped[int] = mapped_column(ForeignKey("calls.id"))
    key: Mapped[str] = mapped_column(String(64))  # "<turn>:<step>"
    event: Mapped[dict | None] = mapped_column(JSON)
    response: Mapped[str | None] = mapped_column(Text)  # the TwiML answered
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Recording(Base):
    """A caller's recording (a place name, the message, a fallback report). Fetched from
    the provider once its recording callback says it is complete, stored encrypted under
    RECORDINGS_DIR, then deleted at the provider (service/recordings.py)."""

    __tablename__ = "recordings"
    __table_args__ = (UniqueConstraint("provider", "recording_sid", name="uq_recordings_provider_sid"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    provider: Mapped[str] = mapped_column(String(32))
    recording_sid: Mapped[str] = mapped_column(String(64))
    call_id: Mapped[int | None] = mapped_column(ForeignKey("calls.id"), index=True)
    alert_id: Mapped[int | None] = mapped_column(ForeignKey("alerts.id"), index=True)
    kind: Mapped[str] = mapped_column(String(16))  # place-name | message | fallback
    provider_url: Mapped[str | None] = mapped_column(Text)  # the provider's RecordingUrl, until deleted there
    seconds: Mapped[int | None] = mapped_column(Integer)
    # pending (the call told us of it) -> available (the provider's callback: complete) ->
    # stored (fetched and encrypted here; deleted at the provider: provider_deleted_at) |
    # failed (attempts used up: still at the provider)
    status: Mapped[str] = mapped_column(String(16), default="pending")
    path: Mapped[str | None] = mapped_column(String(200))  # file name under RECORDINGS_DIR
    content_type: Mapped[str | None] = mapped_column(String(32))
    size: Mapped[int | None] = mapped_column(Integer)
    sha256: Mapped[str | None] = mapped_column(String(64))  # of the audio, before encryption
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    failure_reason: Mapped[str | None] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    stored_at: Mapped[datetime | None]
    provider_deleted_at: Mapped[datetime | None]


class Operator(Base):
    """A person working in the console (service/accounts.py): never a reporter."""

    __tablename__ = "operators"

    id: Mapped[int] = mapped_column(primary_key=True)
    username: Mapped[str] = mapped_column(String(64), unique=True)
    display_name: Mapped[str | None] = mapped_column(String(128))
    password_hash: Mapped[str] = mapped_column(Text)  # argon2id
    roles: Mapped[list] = mapped_column(JSON, default=list)  # administrator, analyst, broadcaster, translator
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    failed_logins: Mapped[int] = mapped_column(Integer, default=0)  # in a row
    locked_until: Mapped[datetime | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_login_at: Mapped[datetime | None]
    password_changed_at: Mapped[datetime | None]
    session_generation: Mapped[int] = mapped_column(Integer, default=0, server_default="0")  # raised to end its sessions


class AuditEntry(Base):
    """One operator action (service/audit.py): who, what, on what, when, before and after.
    Written in the same transaction as the action; never a reporter's number."""

    __tablename__ = "audit_log"
    __table_args__ = (Index("ix_audit_log_target", "target_type", "target_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
    operator_id: Mapped[int | None] = mapped_column(ForeignKey("operators.id"), index=True)
    action: Mapped[str] = mapped_column(String(64))
    target_type: Mapped[str | None] = mapped_column(String(32))
    target_id: Mapped[str | None] = mapped_column(String(64))
    before: Mapped[dict | None] = mapped_column(JSON)
    after: Mapped[dict | None] = mapped_column(JSON)
    reason: Mapped[str | None] = mapped_column(Text)


class AlertEvent(Base):
    """One step of an alert's triage (service/triage.py), with its operator and note."""

    __tablename__ = "alert_events"

    id: Mapped[int] = mapped_column(primary_key=True)
    alert_id: Mapped[int] = mapped_column(ForeignKey("alerts.id"), index=True)
    from_status: Mapped[str | None] = mapped_column(String(16))
    to_status: Mapped[str] = mapped_column(String(16))
    operator_id: Mapped[int | None] = mapped_column(ForeignKey("operators.id"))
    note: Mapped[str | None] = mapped_column(Text)
    at: Mapped[datetime] = mapped_column(default=utcnow)


class Incident(Base):
    """One event that several reports describe (service/incidents.py): ten messages about
    one attack are one line. The counts are recounted from the alerts at every change;
    ``source_count`` is distinct reporters, so one reporter sending many is one source."""

    __tablename__ = "incidents"
    __table_args__ = (Index("ix_incidents_status_last_at", "status", "last_at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    category: Mapped[str | None] = mapped_column(String(32), index=True)  # its alerts' most frequent
    place_id: Mapped[int | None] = mapped_column(ForeignKey("places.id"), index=True)  # its most precise
    first_at: Mapped[datetime]  # the earliest of its alerts' times (occurred, else submitted)
    last_at: Mapped[datetime]
    alert_count: Mapped[int] = mapped_column(Integer, default=0)
    source_count: Mapped[int] = mapped_column(Integer, default=0)
    # open (reports may still join) | closed (no more joins; merged ones: merged_into_id)
    status: Mapped[str] = mapped_column(String(16), default="open")
    merged_into_id: Mapped[int | None] = mapped_column(ForeignKey("incidents.id"), index=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)

    place: Mapped[Place | None] = relationship()


class TrainingRun(Base):
    """One retraining of the understanding from the console (service/retraining.py): the
    candidate model is trained in the background, scored on the held-out files beside the
    model serving now, and the Rasa server switches to it only if no language lost more
    than the margin. ``scores`` holds both models' accuracy per language; ``reason`` says
    why a candidate was refused or why the run failed."""

    __tablename__ = "training_runs"

    id: Mapped[int] = mapped_column(primary_key=True)
    # queued | training | evaluating | accepted | refused | failed
    status: Mapped[str] = mapped_column(String(16), default="queued", index=True)
    step: Mapped[str | None] = mapped_column(String(64))  # what it is doing now, for the page
    progress: Mapped[int] = mapped_column(Integer, default=0)  # percent
    operator_id: Mapped[int | None] = mapped_column(ForeignKey("operators.id"), index=True)
    fingerprint: Mapped[str | None] = mapped_column(String(32))  # of the inputs trained on
    model_name: Mapped[str | None] = mapped_column(String(128))  # the candidate's file name
    serving_before: Mapped[str | None] = mapped_column(String(128))  # the model it was weighed against
    margin: Mapped[float] = mapped_column(Float, default=2.0)  # percentage points
    scores: Mapped[dict | None] = mapped_column(JSON)
    reason: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    started_at: Mapped[datetime | None]
    finished_at: Mapped[datetime | None]
