"""Who a broadcast reaches: its targets checked against the gazetteer, then subscribers.

Targets are a union: a subscriber is reached if any one of them matches (everyone;
a province or territory by p-code; a locality; a group; within a radius of a point or
of an alert's place). Only active subscribers whose reporter has not opted out are
counted here; opt-out is read again at send time (service/broadcast_sending.py).

A radius around an alert uses the alert's place (a village's coordinates, never
anything finer) and is refused for restricted categories (sexual violence): a circle
drawn around such a report would point to the people who made it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from sqlalchemy import and_, false, or_, select
from sqlalchemy.orm import Session

from bot.categories import BY_CODE
from bot.places import PlaceRecord, default_gazetteer
from service.models import Alert, Group, Reporter, Subscriber, subscriber_groups
from service.reporters import SIMULATOR

MAX_KM = 300.0
MAX_ITEMS = 500  # places or groups in one broadcast's targets
KINDS = ("all", "provinces", "territories", "localities", "groups", "radius")


class TargetError(ValueError):
    """The targets cannot be used; the message says which one and why."""


@dataclass
class Targets:
    """Targets checked and normalised (p-codes, gazetteer keys, group ids), with the
    names a CAP area needs."""

    everyone: bool = False
    provinces: list[str] = field(default_factory=list)
    territories: list[str] = field(default_factory=list)
    localities: list[str] = field(default_factory=list)
    groups: list[int] = field(default_factory=list)
    radius: dict | None = None  # {"lat", "lon", "km", "alert"?, "place"?}
    names: dict[str, str] = field(default_factory=dict)  # key or p-code -> name
    group_names: dict[int, str] = field(default_factory=dict)

    def as_json(self) -> dict:
        out: dict = {"all": True} if self.everyone else {}
        for kind in ("provinces", "territories", "localities", "groups"):
            if getattr(self, kind):
                out[kind] = list(getattr(self, kind))
        if self.radius:
            out["radius"] = dict(self.radius)
        out["names"] = dict(self.names)
        if self.group_names:
            out["group_names"] = {str(k): v for k, v in self.group_names.items()}
        return out

    @classmethod
    def from_json(cls, data: dict) -> "Targets":
        return cls(everyone=bool(data.get("all")), provinces=list(data.get("provinces") or []),
                   territories=list(data.get("territories") or []), localities=list(data.get("localities") or []),
                   groups=[int(g) for g in data.get("groups") or []], radius=data.get("radius"),
                   names=dict(data.get("names") or {}),
                   group_names={int(k): v for k, v in (data.get("group_names") or {}).items()})


def parse(raw, session: Session, gazetteer=None) -> Targets:
    """Check a request's `targets`; raises TargetError naming the problem."""
    gazetteer = gazetteer or default_gazetteer()
    if not isinstance(raw, dict) or not raw:
        raise TargetError('targets must be an object: {"all": true} or provinces, territories, localities, '
                          'groups, radius')
    unknown = sorted(set(raw) - set(KINDS))
    if unknown:
        raise TargetError(f"unknown target kind {', '.join(unknown)}; use {', '.join(KINDS)}")
    targets = Targets()
    if raw.get("all") is not None:
        if raw["all"] is not True:
            raise TargetError('targets.all must be true (or left out)')
        if len(raw) > 1:
            raise TargetError("targets.all reaches everyone: give no other target with it")
        targets.everyone = True
        return targets
    for kind, level in (("provinces", "adm1"), ("territories", "adm2")):
        for code in _items(raw, kind):
            record = _admin_unit(gazetteer, code, level, kind)
            getattr(targets, kind).append(record.key)
            targets.names[record.key] = record.name
    for value in _items(raw, "localities"):
        record = _locality(gazetteer, value)
        targets.localities.append(record.key)
        targets.names[record.key] = record.name
    for value in _items(raw, "groups"):
        group = _group(session, value)
        targets.groups.append(group.id)
        targets.group_names[group.id] = group.name
    if raw.get("radius") is not None:
        targets.radius = _radius(raw["radius"], session, gazetteer)
    if not (targets.provinces or targets.territories or targets.localities or targets.groups or targets.radius):
        raise TargetError("targets name nobody: give at least one place, group or radius")
    return targets


def _items(raw: dict, kind: str) -> list:
    value = raw.get(kind)
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(v, (str, int)) and not isinstance(v, bool) for v in value):
        raise TargetError(f"targets.{kind} must be a list of names or codes")
    if len(value) > MAX_ITEMS:
        raise TargetError(f"targets.{kind}: at most {MAX_ITEMS}")
    return value


def _admin_unit(gazetteer, code, level: str, kind: str) -> PlaceRecord:
    text = str(code).strip()
    record = gazetteer.get(text.upper())
    if record is None:  # a name is accepted when it names exactly one unit of that level
        matches = [r for r in gazetteer.lookup(text) if r.level == level]
        record = matches[0] if len(matches) == 1 else None
    if record is None or record.level != level:
        what = "province" if level == "adm1" else "territory"
        raise TargetError(f"targets.{kind}: {text!r} is not a {what} p-code of the gazetteer")
    return record


def _locality(gazetteer, value) -> PlaceRecord:
    text = str(value).strip()
    record = gazetteer.get(text)
    if record is not None:
        return record
    matches = [r for r in gazetteer.lookup(text) if r.level == "locality"]
    if not matches:
        raise TargetError(f"targets.localities: {text!r} is not a place of the gazetteer")
    if len(matches) > 1:
        options = "; ".join(f"{r.key} ({r.name}, {r.admin2_name or r.admin1_name})" for r in matches[:6])
        raise TargetError(f"targets.localities: {text!r} names {len(matches)} places; give the key of one: {options}")
    return matches[0]


def _group(session: Session, value) -> Group:
    if isinstance(value, int):
        group = session.get(Group, value)
    else:
        wanted = str(value).strip().lower()
        group = next((g for g in session.scalars(select(Group)) if g.name.strip().lower() == wanted), None)
    if group is None:
        raise TargetError(f"targets.groups: no group {value!r}")
    return group


def _radius(raw, session: Session, gazetteer) -> dict:
    if not isinstance(raw, dict):
        raise TargetError('targets.radius must be {"lat", "lon", "km"} or {"alert", "km"}')
    km = _number(raw.get("km"), "targets.radius.km")
    if not 0 < km <= MAX_KM:
        raise TargetError(f"targets.radius.km must be above 0 and at most {MAX_KM:g}")
    if raw.get("alert") is not None:
        alert = session.get(Alert, raw["alert"]) if isinstance(raw["alert"], int) else None
        if alert is None or alert.status == "draft":
            raise TargetError(f"targets.radius.alert: no alert {raw['alert']!r}")
        category = BY_CODE.get(alert.category or "")
        if category is not None and category.restricted:
            raise TargetError("targets.radius.alert: this alert's category is restricted and is never "
                              "used in a broadcast")
        place = gazetteer.get(alert.place.key) if alert.place is not None else None
        if place is None or place.lat is None or place.lon is None:
            raise TargetError("targets.radius.alert: the alert's place has no known coordinates; "
                              "give lat and lon, or a territory")
        return {"lat": round(place.lat, 4), "lon": round(place.lon, 4), "km": km, "alert": alert.id,
                "place": place.name}
    lat, lon = _number(raw.get("lat"), "targets.radius.lat"), _number(raw.get("lon"), "targets.radius.lon")
    if not (-90 <= lat <= 90 and -180 <= lon <= 180):
        raise TargetError("targets.radius: lat must be within -90..90 and lon within -180..180")
    return {"lat": round(lat, 4), "lon": round(lon, 4), "km": km}


def _number(value, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise TargetError(f"{name} must be a number")
    return float(value)


# --- subscribers ------------------------------------------------------------------------

@dataclass(frozen=True)
class Recipient:
    subscriber_id: int
    reporter_id: int
    language: str | None
    channel: str | None


def recipients(session: Session, targets: Targets, after: int = 0, limit: int = 5000) -> tuple[list[Recipient], int]:
    """One page of the reached subscribers, by id after `after`; and the last id read
    (the cursor to go on from, even when the page's rows were all outside the radius)."""
    radius = targets.radius
    matched_elsewhere = _area_condition(targets)
    condition = matched_elsewhere
    if radius:
        condition = or_(condition, _box(radius))
    query = (select(Subscriber.id, Subscriber.reporter_id, Subscriber.language, Subscriber.channel,
                    Subscriber.lat, Subscriber.lon, matched_elsewhere.label("elsewhere"))
             .join(Reporter, Reporter.id == Subscriber.reporter_id)
             .where(Subscriber.status == "active", Reporter.opted_out.is_(False), Subscriber.id > after, condition,
                    or_(Subscriber.channel.is_(None), Subscriber.channel != SIMULATOR))
             .order_by(Subscriber.id).limit(limit))
    rows = session.execute(query).all()
    page = [Recipient(r.id, r.reporter_id, r.language, r.channel) for r in rows
            if r.elsewhere or (radius and _within(radius, r.lat, r.lon))]
    return page, rows[-1].id if rows else after


def each(session: Session, targets: Targets, page: int = 5000):
    """Every reached subscriber, page by page."""
    after = 0
    while True:
        rows, last = recipients(session, targets, after, page)
        yield from rows
        if last == after:
            return
        after = last


def _area_condition(targets: Targets):
    if targets.everyone:
        return Subscriber.id.is_not(None)
    parts = []
    if targets.provinces:
        parts.append(Subscriber.admin1_pcode.in_(targets.provinces))
    if targets.territories:
        parts.append(Subscriber.admin2_pcode.in_(targets.territories))
    if targets.localities:
        parts.append(Subscriber.place_key.in_(targets.localities))
    if targets.groups:
        parts.append(Subscriber.id.in_(select(subscriber_groups.c.subscriber_id)
                                       .where(subscriber_groups.c.group_id.in_(targets.groups))))
    return or_(*parts) if parts else false()


def _box(radius: dict):
    """The bounding box of the circle, for the index; the exact distance is checked after."""
    lat, lon, km = radius["lat"], radius["lon"], radius["km"]
    dlat = km / 111.0
    dlon = km / max(1e-6, 111.0 * math.cos(math.radians(lat)))
    return and_(Subscriber.lat.between(lat - dlat, lat + dlat), Subscriber.lon.between(lon - dlon, lon + dlon))


def _within(radius: dict, lat: float | None, lon: float | None) -> bool:
    return lat is not None and lon is not None and distance_km(radius["lat"], radius["lon"], lat, lon) <= radius["km"]


def distance_km(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    """Great-circle distance (haversine, Earth radius 6,371 km)."""
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dp, dl = p2 - p1, math.radians(lon2 - lon1)
    a = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * 6371.0 * math.asin(math.sqrt(min(1.0, a)))
