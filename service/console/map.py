"""The map: the inbox's alerts (and their incidents) drawn over the province and territory
outlines shipped in data/places, with Leaflet served from this console (no tiles, nothing
from the internet: it works offline).

Only a village or town with coordinates is a point: an alert placed in a territory or a
province, or nowhere, is counted "without a point", never drawn at an invented spot. The
GeoJSON carries no phone number and no reporter id; restricted categories are absent for
operators without see_restricted (inbox.visible). The colours of the categories are in
static/map.css (one palette for the markers and the legend).
"""

from __future__ import annotations

import csv
import json
import threading
from datetime import datetime, timezone

from flask import Response, abort, current_app, flash, render_template, request, url_for
from sqlalchemy import case, func, select

from bot.categories import CODES
from bot.places import DATA_DIR
from service import accounts, triage
from service.console import bp
from service.console.auth import current_operator, requires
from service.console.i18n import N_, STATUS_LABELS, _, category_label, label
from service.console.inbox import CHANNELS, LANGUAGES, Filters, filtered, visible
from service.db import get_session
from service.incidents import restricted
from service.models import Alert, Incident, Place

MAX_POINTS = 2000  # newest first; more would make a slow phone crawl (the count says how many)
TABLE_ROWS = 200  # the list under the map, also what a browser without JavaScript shows
AGES = (("day", 24), ("week", 24 * 7), ("older", None))  # hours; the markers fade with age
LEVELS = ("adm1", "adm2")
SIMPLIFY_ABOVE = 300_000  # bytes: a bigger outline file is rounded before it is served
BOUNDARY_CACHE = "private, max-age=604800"  # the outlines change with a release, not a day
CREDIT = "Référentiel Géographique Commun (RGC); geoBoundaries (Runfola et al. 2020, v2.0.1), ODbL 1.0"

LEGEND = {
    "alert": N_("Alert"), "incident": N_("Incident (several reports)"), "reference": N_("Reference"),
    "status": N_("Status"), "place": N_("Place"), "age": N_("Received"), "hours": N_("%(n)s h ago"),
    "days": N_("%(n)s days ago"), "open": N_("Open the alert"), "alerts": N_("Alerts of this incident"),
    "sources": N_("Sources"), "day": N_("last 24 hours"), "week": N_("last 7 days"), "older": N_("older"),
    "field": N_("%(name)s: "),
    "newest": N_("Only the %(n)s newest alerts are drawn; narrow the filters to see the others."),
    "failed": N_("The map could not load its data; the list below is complete."),
}

_boundaries: dict[str, bytes] = {}
_lock = threading.Lock()


def _utc(value: datetime) -> datetime:
    """SQLite gives naive datetimes back: they were stored in UTC."""
    return value.replace(tzinfo=timezone.utc) if value.tzinfo is None else value.astimezone(timezone.utc)


def age_hours(value: datetime | None, now: datetime) -> float | None:
    return None if value is None else round(max((now - _utc(value)).total_seconds(), 0) / 3600, 1)


def age_class(hours: float | None) -> str:
    for name, limit in AGES:
        if limit is None or (hours is not None and hours < limit):
            return name
    return AGES[-1][0]


# --- the outlines ------------------------------------------------------------------------

def simplify(coords, digits: int = 4):
    """Round a GeoJSON coordinate array and drop the points a rounding made repeats of."""
    if coords and isinstance(coords[0], (int, float)):
        return [round(c, digits) for c in coords]
    if coords and isinstance(coords[0][0], (int, float)):  # a ring or a line
        kept = []
        for point in (simplify(p, digits) for p in coords):
            if not kept or point != kept[-1]:
                kept.append(point)
        return kept
    return [simplify(part, digits) for part in coords]


def _label_points() -> dict[str, list[float]]:
    """Where each province's name is written: admin_units.csv's label point (lon, lat)."""
    with open(DATA_DIR / "admin_units.csv", newline="", encoding="utf-8") as f:
        return {row["pcode"]: [float(row["label_lon"]), float(row["label_lat"])]
                for row in csv.DictReader(f) if row["level"] == "1" and row["label_lat"] and row["label_lon"]}


def boundaries(level: str) -> bytes:
    """One level's outlines as served: read once per process, simplified if big, provinces
    with their label point; kept in memory (the files change only with a release)."""
    with _lock:
        if level not in _boundaries:
            path = DATA_DIR / f"boundaries_{level}.geojson"
            data = json.loads(path.read_bytes())
            if path.stat().st_size > SIMPLIFY_ABOVE:
                for feature in data["features"]:
                    feature["geometry"]["coordinates"] = simplify(feature["geometry"]["coordinates"])
            if level == "adm1":
                labels = _label_points()
                for feature in data["features"]:
                    point = labels.get(feature["properties"].get("ADM1_PCODE"))
                    if point:
                        feature["properties"]["label"] = point
            _boundaries[level] = json.dumps(data, ensure_ascii=False, separators=(",", ":")).encode()
        return _boundaries[level]


@bp.get("/map/boundaries/<level>.geojson")
@requires("triage")
def map_boundaries(level: str):
    if level not in LEVELS:
        abort(404)
    answer = Response(boundaries(level), mimetype="application/geo+json")
    answer.headers["Cache-Control"] = BOUNDARY_CACHE
    answer.add_etag()
    return answer.make_conditional(request)


# --- the alerts --------------------------------------------------------------------------

def _pointed():
    """Places that are a point: a village or town with coordinates (not a territory's label)."""
    return select(Place.id).where(Place.level == "locality", Place.lat.is_not(None), Place.lon.is_not(None))


def counts(db, base) -> dict:
    """How many alerts the filters give, how many are drawn, and why the others are not: one
    scan (conditional counts), not one per figure. A place_id that is not a point (a territory,
    a province) is "area_only"; no place at all is "no_place"."""
    pointed = Alert.place_id.in_(_pointed())
    row = db.execute(base.with_only_columns(
        func.count(Alert.id), func.count(case((pointed, 1))), func.count(case((Alert.place_id.is_(None), 1))),
    ).order_by(None)).one()
    total, drawn, no_place = (int(n or 0) for n in row)
    return {"total": total, "drawn": drawn, "no_place": no_place, "area_only": total - drawn - no_place}


def _places(db, ids) -> dict[int, Place]:
    ids = {i for i in ids if i}
    return {p.id: p for p in db.scalars(select(Place).where(Place.id.in_(ids)))} if ids else {}


def _point(place) -> dict:
    return {"type": "Point", "coordinates": [round(place.lon, 5), round(place.lat, 5)]}


def _is_point(place) -> bool:
    return place is not None and place.level == "locality" and place.lat is not None and place.lon is not None


def _path_template() -> tuple[str, str]:
    """An alert's link as url_for writes it, split around the id: url_for once per response,
    not once per point (it was a third of the time with 2,000 points)."""
    marker = 987654321
    head, found, tail = url_for("console.alert_detail", alert_id=marker).rpartition(str(marker))
    if not found:
        raise RuntimeError("the alert's URL does not carry its id")
    return head, tail


def as_geojson(db, base, see_restricted: bool, now: datetime, limit: int = MAX_POINTS) -> dict:
    """The drawn alerts (newest first) and their incidents as a FeatureCollection of
    points; the counts as foreign members (RFC 7946 allows them). Only the columns drawn are
    read (no description, no reporter)."""
    rows = db.execute(base.where(Alert.place_id.in_(_pointed()))
                      .with_only_columns(Alert.id, Alert.reference, Alert.category, Alert.status,
                                         Alert.created_at, Alert.place_id, Alert.incident_id)
                      .order_by(Alert.created_at.desc(), Alert.id.desc()).limit(limit)).all()
    incident_ids = {a.incident_id for a in rows if a.incident_id}
    # a ring says "several reports of one event": one report is its own dot
    incidents = db.execute(select(Incident.id, Incident.category, Incident.status, Incident.last_at,
                                  Incident.alert_count, Incident.source_count, Incident.place_id)
                           .where(Incident.id.in_(incident_ids), Incident.alert_count >= 2)
                           .order_by(Incident.id)).all() if incident_ids else []
    ids = {a.place_id for a in rows} | {i.place_id for i in incidents if i.place_id}
    places = {p.id: p for p in db.execute(select(Place.id, Place.name, Place.level, Place.lat, Place.lon)
                                          .where(Place.id.in_(ids)))} if ids else {}
    head, tail = _path_template()
    points = {pid: _point(p) for pid, p in places.items() if _is_point(p)}
    features, members = [], {}
    for alert in rows:
        place, hours = places[alert.place_id], age_hours(alert.created_at, now)
        members.setdefault(alert.incident_id, []).append(alert.id)
        features.append({"type": "Feature", "geometry": points[alert.place_id], "properties": {
            "kind": "alert", "id": alert.id, "reference": alert.reference, "category": alert.category,
            "status": alert.status, "age_hours": hours, "age": age_class(hours), "place": place.name,
            "incident": alert.incident_id, "path": f"{head}{alert.id}{tail}"}})
    for incident in incidents:
        place = places.get(incident.place_id)
        if not _is_point(place):
            continue
        if restricted(incident.category) and not see_restricted:
            continue
        hours = age_hours(incident.last_at, now)
        features.append({"type": "Feature", "geometry": points[incident.place_id], "properties": {
            "kind": "incident", "id": incident.id, "category": incident.category, "status": incident.status,
            "age_hours": hours, "age": age_class(hours), "place": place.name,
            "alert_count": incident.alert_count, "source_count": incident.source_count,
            "alerts": [{"id": a, "path": f"{head}{a}{tail}"} for a in members.get(incident.id, [])]}})
    return {"type": "FeatureCollection", "features": features, "shown": len(rows), **counts(db, base)}


def _base(f: Filters, operator):
    return filtered(visible(select(Alert), operator), f)


@bp.get("/map/alerts.geojson")
@requires("triage")
def map_alerts():
    f, _errors = Filters.parse(request.args)  # the page shows the errors; the data just drops them
    operator, db = current_operator(), get_session()
    body = as_geojson(db, _base(f, operator), accounts.can(operator, "see_restricted"), datetime.now(timezone.utc))
    return Response(json.dumps(body, ensure_ascii=False, separators=(",", ":")), mimetype="application/geo+json")


# --- the page ----------------------------------------------------------------------------

def _labels() -> dict:
    """What map.js writes, translated here (it gets them through a data- attribute)."""
    compose = None
    if accounts.can(current_operator(), "broadcast") and "console.broadcast_new" in current_app.view_functions:
        compose = url_for("console.broadcast_new")
    return {"text": {k: _(v) for k, v in LEGEND.items()} | {"broadcast": _("Warn the people around it")},
            "compose": compose, "restricted": [code for code in CODES if restricted(code)],
            "categories": {code: category_label(code) for code in CODES} | {"": category_label(None)},
            "statuses": {code: label(STATUS_LABELS, code) for code in STATUS_LABELS}}


@bp.get("/map", endpoint="map")
@requires("triage")
def map_page():
    f, errors = Filters.parse(request.args)
    for error in errors:
        flash(error, "error")
    db, query = get_session(), f.args(page=1)
    base = _base(f, current_operator())
    rows = db.scalars(base.order_by(Alert.created_at.desc(), Alert.id.desc()).limit(TABLE_ROWS)).all()
    return render_template(
        "console/map.html", f=f, rows=rows, places=_places(db, {a.place_id for a in rows}), counts=counts(db, base),
        now=datetime.now(timezone.utc), age_hours=age_hours, age_class=age_class, is_point=_is_point,
        table_rows=TABLE_ROWS, categories=CODES, statuses=triage.TRIAGE_STATUSES, channels=CHANNELS,
        languages=LANGUAGES, ages=[name for name, _limit in AGES], legend=LEGEND, credit=CREDIT,
        labels=_labels(), alerts_url=url_for("console.map_alerts", **query),
        adm1_url=url_for("console.map_boundaries", level="adm1"),
        adm2_url=url_for("console.map_boundaries", level="adm2"), inbox_url=url_for("console.alerts", **query))
