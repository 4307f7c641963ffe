"""Incidents: reports of one event grouped into one line, so ten messages about one attack
are one incident with ten alerts from, say, three sources.

An alert joins an open incident when all three hold:
- a related category: the same one, or one of the same family below. Sexual violence is
  a family of its own and never meets another, so that restricted reports can never show
  through another incident's counts (nor an attack's reporters through theirs);
- a nearby place: both places have coordinates and lie within INCIDENT_KM, or (when one
  is a territory or has no coordinates) both are in the same territory p-code. An alert
  or an incident without a place never matches: an unknown place is not "nearby";
- a close time: the alert's time (occurred_at, else submitted_at, else created_at) within
  INCIDENT_HOURS of the incident's span.
Otherwise it starts its own incident. Counts are recounted from the alerts at every
change: ``source_count`` is distinct reporters (a reporter who sends many reports is one
source; an alert without a reporter, e.g. typed by an operator, is one source of its own).
Operators merge and split; both are audited in the same transaction.
"""

from __future__ import annotations

from collections import Counter
from datetime import datetime, timedelta, timezone

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from bot.categories import BY_CODE
from service import audit, reporters
from service.models import Alert, Incident, Operator, Place, utcnow
from service.targeting import distance_km

INCIDENT_KM = 10.0
INCIDENT_HOURS = 24
DRAFT = "draft"  # a report still being written joins nothing yet

# Category families whose reports may describe one event: an attack often comes with
# looting, abductions and fighting with the army. Every other category groups only with
# itself. SEXUAL_VIOLENCE must stay out of every family (restricted).
FAMILIES: tuple[frozenset[str], ...] = (
    frozenset({"ATTACK", "CLASH", "ABDUCTION", "LOOTING"}),  # violence against people and property
)
_FAMILY = {code: family for family in FAMILIES for code in family}
assert not any(BY_CODE[c].restricted for family in FAMILIES for c in family), "restricted codes stand alone"


def related(code: str | None) -> frozenset[str]:
    """The categories an alert of `code` may share an incident with (none without a code)."""
    if not code:
        return frozenset()
    return _FAMILY.get(code, frozenset({code}))


def restricted(code: str | None) -> bool:
    category = BY_CODE.get(code or "")
    return bool(category and category.restricted)


def time_of(alert: Alert) -> datetime:
    """When the event happened as far as we know: the reporter's time, else the report's."""
    return _utc(alert.occurred_at or alert.submitted_at or alert.created_at or utcnow())


def territory(place: Place | None) -> str | None:
    if place is None:
        return None
    return place.key if place.level == "adm2" else place.admin2_pcode


def near(a: Place | None, b: Place | None, km: float = INCIDENT_KM) -> bool:
    """Two places close enough to be one event's (module docstring)."""
    if a is None or b is None:
        return False
    if a.id is not None and a.id == b.id:
        return True
    precise = all(p.level == "locality" and p.lat is not None and p.lon is not None for p in (a, b))
    if precise:
        return distance_km(a.lat, a.lon, b.lat, b.lon) <= km
    return territory(a) is not None and territory(a) == territory(b)


def assign(session: Session, alert: Alert, km: float = INCIDENT_KM, hours: float = INCIDENT_HOURS) -> Incident | None:
    """Put a submitted (or abandoned) alert in its incident: an open one it matches, or a
    new one. Idempotent: an alert that has an incident keeps it. Drafts get none."""
    if alert.status == DRAFT:
        return None
    if alert.incident_id is not None:
        return session.get(Incident, alert.incident_id)
    incident = _match(session, alert, km, hours)
    if incident is None:
        at = time_of(alert)
        incident = Incident(category=alert.category, place_id=alert.place_id, first_at=at, last_at=at,
                            alert_count=0, source_count=0, status="open", created_at=utcnow(), updated_at=utcnow())
        session.add(incident)
        session.flush()
    alert.incident_id = incident.id
    session.flush()
    recount(session, incident.id)
    return incident


def _match(session: Session, alert: Alert, km: float, hours: float) -> Incident | None:
    family = related(alert.category)
    place = alert.place
    if not family or place is None:
        return None
    at, window = time_of(alert), timedelta(hours=hours)
    candidates = session.execute(
        select(Incident, Place).join(Place, Incident.place_id == Place.id)
        .where(Incident.status == "open", Incident.category.in_(family),
               Incident.last_at >= at - window, Incident.first_at <= at + window)
        .order_by(Incident.id)).all()
    found = [(abs((at - _clamp(at, inc)).total_seconds()), inc.id, inc)
             for inc, inc_place in candidates if near(place, inc_place, km)]
    return min(found)[2] if found else None


def _clamp(at: datetime, incident: Incident) -> datetime:
    first, last = _utc(incident.first_at), _utc(incident.last_at)
    return min(max(at, first), last)


def recount(session: Session, incident_id: int) -> Incident:
    """Counts, span, category and place from the incident's alerts (locked on PostgreSQL,
    so two workers recounting one incident do it one after the other)."""
    incident = session.scalars(select(Incident).where(Incident.id == incident_id).with_for_update()
                               .execution_options(populate_existing=True)).one()
    rows = session.execute(
        select(Alert.id, Alert.reporter_id, Alert.category, Alert.occurred_at, Alert.submitted_at,
               Alert.created_at, Place.id, Place.level, Place.lat)
        .outerjoin(Place, Alert.place_id == Place.id)
        .where(Alert.incident_id == incident_id).order_by(Alert.id)).all()
    incident.alert_count = len(rows)
    incident.source_count = len({r.reporter_id for r in rows if r.reporter_id is not None}) + \
        sum(1 for r in rows if r.reporter_id is None)
    if rows:
        times = [_utc(r.occurred_at or r.submitted_at or r.created_at) for r in rows]
        incident.first_at, incident.last_at = min(times), max(times)
        categories = Counter(r.category for r in rows if r.category)
        if categories:  # the most frequent; a tie goes to the earliest report's
            first_seen = {c: i for i, c in reversed(list(enumerate(r.category for r in rows)))}
            incident.category = min(categories, key=lambda c: (-categories[c], first_seen[c]))
        placed = [r for r in rows if r[6] is not None]
        if placed:  # a village with coordinates says more than a territory
            best = min(placed, key=lambda r: (r.level != "locality" or r.lat is None, r.level != "adm2"))
            incident.place_id = best[6]
    incident.updated_at = utcnow()
    session.flush()
    return incident


def _snapshot(incident: Incident) -> dict:
    return {"id": incident.id, "category": incident.category, "alert_count": incident.alert_count,
            "source_count": incident.source_count, "status": incident.status}


def merge(session: Session, target_id: int, other_ids, operator: Operator | None, reason: str | None = None) -> Incident:
    """Move the alerts of `other_ids` into `target_id`; the others are closed, pointing to
    the target. Restricted and other incidents are never merged (module docstring)."""
    others = sorted({int(i) for i in other_ids} - {int(target_id)})
    if not others:
        raise ValueError("name at least one other incident to merge")
    incidents = {i.id: i for i in session.scalars(select(Incident).where(Incident.id.in_([target_id, *others]))
                                                  .execution_options(populate_existing=True))}
    missing = [i for i in [target_id, *others] if i not in incidents]
    if missing:
        raise LookupError(f"no incident {', '.join(map(str, missing))}")
    target = incidents[target_id]
    for other in others:
        if incidents[other].merged_into_id is not None:
            raise ValueError(f"incident {other} was already merged into {incidents[other].merged_into_id}")
        if restricted(incidents[other].category) != restricted(target.category):
            raise ValueError("a restricted incident is never merged with another kind")
    before = {"target": _snapshot(target), "merged": [_snapshot(incidents[o]) for o in others]}
    session.execute(update(Alert).where(Alert.incident_id.in_(others)).values(incident_id=target_id)
                    .execution_options(synchronize_session=False))
    for other in others:
        incidents[other].status, incidents[other].merged_into_id = "closed", target_id
        recount(session, other)
    if target.status != "open":
        target.status = "open"
    target = recount(session, target_id)
    audit.record(session, operator, "incident.merge", "incident", target_id, before=before,
                 after={"target": _snapshot(target), "merged": others}, reason=reason)
    session.flush()
    return target


def split(session: Session, incident_id: int, alert_ids, operator: Operator | None, reason: str | None = None) -> Incident:
    """Take `alert_ids` out of an incident into a new one of their own (returned)."""
    wanted = sorted({int(i) for i in alert_ids})
    incident = session.get(Incident, incident_id, populate_existing=True)
    if incident is None:
        raise LookupError(f"no incident {incident_id}")
    members = set(session.scalars(select(Alert.id).where(Alert.incident_id == incident_id)))
    if not wanted or not set(wanted) <= members:
        raise ValueError(f"name alerts of incident {incident_id}: {', '.join(map(str, sorted(members)))}")
    if set(wanted) == members:
        raise ValueError("leave at least one alert in the incident")
    before = _snapshot(incident)
    now = utcnow()
    new = Incident(category=incident.category, place_id=None, first_at=incident.first_at, last_at=incident.last_at,
                   alert_count=0, source_count=0, status="open", created_at=now, updated_at=now)
    session.add(new)
    session.flush()
    session.execute(update(Alert).where(Alert.id.in_(wanted)).values(incident_id=new.id)
                    .execution_options(synchronize_session=False))
    recount(session, incident_id)
    recount(session, new.id)
    audit.record(session, operator, "incident.split", "incident", incident_id, before=before,
                 after={"incident": _snapshot(incident), "new": _snapshot(new), "alerts": wanted}, reason=reason)
    session.flush()
    return new


def backfill(session: Session, limit: int = 500) -> int:
    """Assign alerts that left draft without an incident, oldest first; returns how many.
    For a sweep: it commits nothing, the caller commits (a page at a time)."""
    done = 0
    for alert in session.scalars(reporters.real_alerts(select(Alert).where(Alert.incident_id.is_(None), Alert.status != DRAFT))
                                 .order_by(Alert.id).limit(limit)).all():
        assign(session, alert)
        done += 1
    return done


def listing(session: Session, *, status: str | None = "open", category: str | None = None,
            include_restricted: bool = False, before_id: int | None = None, limit: int = 100) -> list[Incident]:
    """Incidents, newest activity first; restricted ones only when the caller may see them."""
    query = select(Incident).where(Incident.merged_into_id.is_(None))
    if status:
        query = query.where(Incident.status == status)
    if category:
        query = query.where(Incident.category == category)
    if not include_restricted:
        hidden = [c.code for c in BY_CODE.values() if c.restricted]
        query = query.where((Incident.category.is_(None)) | Incident.category.not_in(hidden))
    if before_id is not None:
        query = query.where(Incident.id < before_id)
    return list(session.scalars(query.order_by(Incident.last_at.desc(), Incident.id.desc()).limit(limit)))


def alert_ids_of(session: Session, incident_ids) -> dict[int, list[int]]:
    """The alert ids of each incident, in one query for a page."""
    found: dict[int, list[int]] = {}
    ids = list(incident_ids)
    if ids:
        for alert_id, incident_id in session.execute(select(Alert.id, Alert.incident_id)
                                                     .where(Alert.incident_id.in_(ids)).order_by(Alert.id)):
            found.setdefault(incident_id, []).append(alert_id)
    return found


def as_json(incident: Incident, alert_ids: list[int] | None = None) -> dict:
    """An incident as the API and console show it: counts and place, never who reported."""
    place = incident.place
    shown = {
        "id": incident.id, "category": incident.category, "status": incident.status,
        "location": None if place is None else {
            "name": place.name, "admin1": place.admin1_name, "admin2": place.admin2_name,
            "pcode": territory(place) if place.level == "locality" else place.key},
        "first_at": _iso(incident.first_at), "last_at": _iso(incident.last_at),
        "alert_count": incident.alert_count, "source_count": incident.source_count,
        "merged_into": incident.merged_into_id,
    }
    if alert_ids is not None:
        shown["alerts"] = alert_ids
    return shown


def _utc(value: datetime) -> datetime:
    """SQLite gives naive datetimes back: they were stored in UTC."""
    return value.replace(tzinfo=timezone.utc) if value.tzinfo is None else value.astimezone(timezone.utc)


def _iso(value: datetime | None) -> str | None:
    return None if value is None else _utc(value).isoformat()
