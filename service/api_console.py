"""The console's data for other tools, behind the operators' bearer token: incidents (list,
merge, split), response times, silent areas, and the HXL CSV of alerts. Never a phone
number or a reporter key. The console's pages call the same domain functions directly.
"""

from __future__ import annotations

from flask import Blueprint, Response, jsonify, request, stream_with_context

from bot.categories import BY_CODE
from service import export, incidents, metrics
from service.api import PAGE_MAX, require_token
from service.db import get_session

bp = Blueprint("api_console", __name__)
bp.before_request(require_token)
INCIDENT_STATUSES = ("open", "closed", "all")


def _error(status: int, message: str):
    return jsonify({"error": message}), status


def _flag(name: str) -> bool:
    return request.args.get(name, "").lower() in ("1", "true", "yes")


def _number(name: str, default, low, high, kind=int):
    """A bounded number from the query, or ValueError."""
    raw = request.args.get(name)
    value = default if raw in (None, "") else kind(raw)
    return min(max(value, low), high)


@bp.get("/api/v1/incidents")
def list_incidents():
    """Incidents, latest activity first (`status` open|closed|all, `category`, `before` an
    id, `limit`, `include_restricted=1`): counts and place, never who reported."""
    args = request.args
    status = args.get("status", "open")
    if status not in INCIDENT_STATUSES:
        return _error(400, f"status must be one of {', '.join(INCIDENT_STATUSES)}")
    category = (args.get("category") or "").upper() or None
    if category and category not in BY_CODE:
        return _error(400, f"unknown category; one of {', '.join(BY_CODE)}")
    try:
        limit = _number("limit", 100, 1, PAGE_MAX)
        before = int(args["before"]) if args.get("before") else None
    except ValueError:
        return _error(400, "limit and before must be numbers")
    session = get_session()
    rows = incidents.listing(session, status=None if status == "all" else status, category=category,
                             include_restricted=_flag("include_restricted"), before_id=before, limit=limit)
    members = incidents.alert_ids_of(session, [i.id for i in rows])
    return jsonify({"incidents": [incidents.as_json(i, members.get(i.id, [])) for i in rows]})


def _body_ids(body, name: str) -> list[int]:
    ids = body.get(name) if isinstance(body, dict) else None
    if not isinstance(ids, list) or not ids or not all(isinstance(i, int) and not isinstance(i, bool) for i in ids):
        raise ValueError(f'send JSON {{"{name}": [ids...], "reason": "..."}}')
    return ids


def _reason(body) -> str | None:
    reason = body.get("reason") if isinstance(body, dict) else None
    return reason.strip() or None if isinstance(reason, str) else None


@bp.post("/api/v1/incidents/<int:incident_id>/merge")
def merge_incidents(incident_id: int):
    """Body {"incidents": [ids to merge into this one], "reason": "..."}; audited with no
    operator (the API)."""
    body = request.get_json(silent=True)
    session = get_session()
    try:
        target = incidents.merge(session, incident_id, _body_ids(body, "incidents"), None, _reason(body))
    except LookupError as exc:
        session.rollback()
        return _error(404, str(exc))
    except ValueError as exc:
        session.rollback()
        return _error(400, str(exc))
    session.commit()
    return jsonify(incidents.as_json(target, incidents.alert_ids_of(session, [target.id]).get(target.id, [])))


@bp.post("/api/v1/incidents/<int:incident_id>/split")
def split_incident(incident_id: int):
    """Body {"alerts": [ids to take out into a new incident], "reason": "..."}."""
    body = request.get_json(silent=True)
    session = get_session()
    try:
        new = incidents.split(session, incident_id, _body_ids(body, "alerts"), None, _reason(body))
    except LookupError as exc:
        session.rollback()
        return _error(404, str(exc))
    except ValueError as exc:
        session.rollback()
        return _error(400, str(exc))
    session.commit()
    members = incidents.alert_ids_of(session, [incident_id, new.id])
    old = session.get(incidents.Incident, incident_id)
    return jsonify({"incident": incidents.as_json(old, members.get(incident_id, [])),
                    "new": incidents.as_json(new, members.get(new.id, []))}), 201


@bp.get("/api/v1/metrics/response-times")
def response_times():
    try:
        weeks = _number("weeks", metrics.WEEKS, 1, 52)
    except ValueError:
        return _error(400, "weeks must be a number")
    rows = metrics.response_times(get_session(), weeks=weeks, include_restricted=_flag("include_restricted"))
    return jsonify({"weeks": weeks, "areas": rows})


@bp.get("/api/v1/metrics/silent-areas")
def silent_areas():
    """`weeks` of baseline, `min_weekly` average to count as usually reporting, `days` quiet."""
    try:
        weeks = _number("weeks", metrics.SILENT_BASELINE_WEEKS, 1, 52)
        min_weekly = _number("min_weekly", metrics.SILENT_MIN_WEEKLY, 0.0, 1000.0, float)
        days = _number("days", metrics.SILENT_DAYS, 1, 90)
    except ValueError:
        return _error(400, "weeks, min_weekly and days must be numbers")
    rows = metrics.silent_areas(get_session(), weeks=weeks, min_weekly=min_weekly, quiet_days=days,
                                include_restricted=_flag("include_restricted"))
    return jsonify({"weeks": weeks, "min_weekly": min_weekly, "days": days, "areas": rows})


@bp.get("/api/v1/alerts.csv")
def alerts_csv():
    """HXL CSV; the alerts API's filters; `include_restricted=1` adds sexual violence,
    `include_descriptions=1` the descriptions (phone numbers masked)."""
    try:
        filters = export.Filters.from_args(request.args)
    except ValueError as exc:
        return _error(400, str(exc))
    lines = export.lines(get_session(), filters=filters, include_restricted=_flag("include_restricted"),
                         include_descriptions=_flag("include_descriptions"))
    return Response(stream_with_context(lines), mimetype="text/csv",
                    headers={"Content-Disposition": 'attachment; filename="alerts-hxl.csv"'})
