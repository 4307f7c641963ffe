"""Alerts: drafts saved at every answer, confirmation with a reference, abandonment.

Plain SQLAlchemy on a session passed in: the Rasa action server, the worker and the
API all call these, and none of them needs Flask.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

from sqlalchemy import and_, func, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, object_session

from bot.categories import BY_CODE
from bot.places import PlaceRecord
from service.models import Alert, Call, Place, Recording, Reporter, utcnow

STATUSES = ("draft", "new", "incomplete")


@dataclass
class DraftFields:
    """What the conversation knows so far; None means not asked or not known yet."""

    category: str | None = None
    place: PlaceRecord | None = None
    place_text: str | None = None
    occurred_at: datetime | None = None
    occurred_text: str | None = None
    people_affected: int | None = None
    people_many: bool = False
    perpetrator: str | None = None
    description: str | None = None
    language: str | None = None
    channel: str = "sms"


def ensure_place(session: Session, record: PlaceRecord) -> Place:
    """The stored row of a gazetteer place, created on first use."""
    place = session.scalar(select(Place).where(Place.key == record.key))
    if place is None:
        place = Place(key=record.key, name=record.name, level=record.level,
                      admin1_pcode=record.admin1_pcode, admin1_name=record.admin1_name,
                      admin2_pcode=record.admin2_pcode, admin2_name=record.admin2_name,
                      lat=record.lat, lon=record.lon, source=record.source)
        try:
            with session.begin_nested():  # the add inside: a lost race leaves the session usable
                session.add(place)
                session.flush()
        except IntegrityError:
            place = session.scalar(select(Place).where(Place.key == record.key))
    return place


def save_draft(session: Session, draft_key: str, reporter_key: str | None, fields: DraftFields,
               conversation_id: int | None = None) -> Alert:
    """Create or update the draft alert of one conversation (idempotent on draft_key)."""
    alert = session.scalar(select(Alert).where(Alert.draft_key == draft_key))
    if alert is None:
        reporter = session.scalar(select(Reporter).where(Reporter.key == reporter_key)) if reporter_key else None
        alert = Alert(draft_key=draft_key, reporter_id=reporter.id if reporter else None,
                      conversation_id=conversation_id, status="draft", channel=fields.channel)
        session.add(alert)
    if fields.category is not None and fields.category not in BY_CODE:
        raise ValueError(f"unknown category {fields.category}")
    alert.category = fields.category
    alert.place = ensure_place(session, fields.place) if fields.place else None
    alert.place_text = (fields.place_text or None) and fields.place_text[:160]
    # stored in UTC: SQLite keeps no offset, and a Lubumbashi time read back as UTC is 2 h off
    alert.occurred_at = fields.occurred_at.astimezone(timezone.utc) if fields.occurred_at else None
    alert.occurred_text = (fields.occurred_text or None) and fields.occurred_text[:160]
    alert.people_affected = fields.people_affected
    alert.people_many = fields.people_many
    alert.perpetrator = (fields.perpetrator or None) and fields.perpetrator[:160]
    if fields.description and not alert.description:
        alert.description = fields.description
    alert.language = fields.language or alert.language
    if alert.status == "incomplete":  # the reporter came back before the session ended
        alert.status = "draft"
    alert.updated_at = utcnow()
    session.flush()
    return alert


def submit(session: Session, draft_key: str) -> Alert | None:
    """Confirm a draft: it gets a reference and becomes "new". Idempotent."""
    alert = session.scalar(select(Alert).where(Alert.draft_key == draft_key))
    if alert is None:
        return None
    if alert.reference is None:
        alert.reference = _new_reference(session)
    if alert.status in ("draft", "incomplete"):
        alert.status = "new"
        alert.submitted_at = utcnow()
    session.flush()
    return alert


def _new_reference(session: Session) -> str:
    """Six digits: easy to read back on a basic phone or to key in on a voice menu."""
    while True:
        reference = f"{secrets.randbelow(900000) + 100000}"
        if session.scalar(select(Alert.id).where(Alert.reference == reference)) is None:
            return reference


def mark_abandoned(session: Session, older_than: timedelta) -> int:
    """Drafts untouched for `older_than` become "incomplete"; nothing is deleted."""
    cutoff = datetime.now(timezone.utc) - older_than
    result = session.execute(
        update(Alert).where(Alert.status == "draft", Alert.updated_at < cutoff)
        .values(status="incomplete", updated_at=utcnow())
    )
    return result.rowcount or 0


def location_of(alert: Alert) -> dict | None:
    place = alert.place
    if place is None:
        return None
    pcode = place.key if place.level in ("adm1", "adm2") else place.admin2_pcode
    return {"name": place.name, "admin1": place.admin1_name, "admin2": place.admin2_name, "pcode": pcode}


def _iso(value):
    if value is None:
        return None
    return (value if value.tzinfo else value.replace(tzinfo=timezone.utc)).isoformat()


def recordings_of(session: Session, alert_ids) -> dict[int, list[Recording]]:
    """The callers' recordings of these alerts, oldest first, in one query: linked to the
    alert, or to the call that made it (a recording can be noted before its alert is)."""
    ids = list(dict.fromkeys(alert_ids))
    if not ids:
        return {}
    owner = func.coalesce(Recording.alert_id, Call.alert_id)
    found: dict[int, list[Recording]] = {}
    for row, alert_id in session.execute(
            select(Recording, owner).outerjoin(Call, Recording.call_id == Call.id)
            .where(or_(Recording.alert_id.in_(ids), and_(Recording.alert_id.is_(None), Call.alert_id.in_(ids))))
            .order_by(Recording.id)):
        found.setdefault(alert_id, []).append(row)
    return found


def recording_json(alert_id: int, row: Recording) -> dict:
    """A recording as the alerts API shows it: its own URL behind the API token once it is
    stored here; never the provider's URL (it plays the caller's voice to anyone)."""
    stored = row.status == "stored"
    return {"id": row.id, "kind": row.kind, "seconds": row.seconds, "status": row.status,
            "created_at": _iso(row.created_at), "stored_at": _iso(row.stored_at),
            "url": f"/api/v1/alerts/{alert_id}/recordings/{row.id}" if stored else None}


def as_json(alert: Alert, recordings: list[Recording] | None = None) -> dict:
    """The public shape of an alert (GET /api/v1/alerts): never who reported it.

    `recordings`: the alert's, when a list fetched them for a whole page
    (`recordings_of`); otherwise a voice alert's are looked up, an SMS alert has none."""
    if recordings is None and alert.channel == "voice" and object_session(alert) is not None:
        recordings = recordings_of(object_session(alert), [alert.id]).get(alert.id, [])
    shown = {
        "id": alert.id,
        "reference": alert.reference,
        "category": alert.category,
        "location": location_of(alert),
        "place_text": alert.place_text,
        "occurred_at": _iso(alert.occurred_at),
        "people_affected": alert.people_affected,
        "perpetrator": alert.perpetrator,
        "description": alert.description,
        "language": alert.language,
        "channel": alert.channel,
        "status": alert.status,
        "created_at": _iso(alert.created_at),
    }
    if recordings:
        shown["recordings"] = [recording_json(alert.id, r) for r in recordings]
    return shown
