"""Incidents: the reports of one event on one line (service/incidents.py groups them),
an incident's alerts, and the operators' corrections, merge and split, each with a reason
(audited by incidents.merge/split, in the same transaction). Also the alerts' CSV export
with the inbox's filters (service/export.py), for those who may export.

Sexual-violence incidents are not listed, counted or reachable without
accounts.can(op, "see_restricted"), as in the inbox; opening one is audited.
"""

from __future__ import annotations

import re
from datetime import date, datetime, timedelta

from flask import Response, abort, flash, redirect, render_template, request, stream_with_context, url_for
from sqlalchemy import select

from bot.categories import CODES
from bot.parsing import EAST
from service import accounts, audit, export, incidents
from service.console import bp
from service.console.auth import current_operator, requires
from service.console.i18n import N_, _, label
from service.console.inbox import visible
from service.db import get_session
from service.models import Alert, Incident, Place

PAGE = 100
STATUSES = ("open", "closed")
NEARBY_KM = 2 * incidents.INCIDENT_KM  # merge candidates: wider than the automatic grouping
NEARBY_HOURS = 72
NEARBY_MAX = 20
REASON_MAX = 2000
STATUS_LABELS = {"open": N_("Open to new reports"), "closed": N_("Closed to new reports")}  # an incident's, not an alert's


def _status_label(value: str | None) -> str:
    return label(STATUS_LABELS, value)


def _may_see_restricted() -> bool:
    return accounts.can(current_operator(), "see_restricted")


def _with_places(db, rows: list[Incident]) -> None:
    """Load the page's places in one query (the rows' `place` then reads them from the session)."""
    ids = {i.place_id for i in rows if i.place_id}
    if ids:
        db.scalars(select(Place).where(Place.id.in_(ids))).all()


@bp.get("/incidents", endpoint="incidents")
@requires("triage")
def incident_list():
    db = get_session()
    category = request.args.get("category", "") if request.args.get("category") in CODES else ""
    status = request.args.get("status", "open")
    status = status if status in STATUSES else ""
    if not _may_see_restricted() and incidents.restricted(category):
        category = ""
    rows = incidents.listing(db, status=status or None, category=category or None,
                             include_restricted=_may_see_restricted(), limit=PAGE + 1)
    _with_places(db, rows)
    codes = [c for c in CODES if _may_see_restricted() or not incidents.restricted(c)]
    return render_template("console/incidents.html", incidents=rows[:PAGE], more=len(rows) > PAGE,
                           category=category, status=status, categories=codes, statuses=STATUSES,
                           incident_status=_status_label)


def _incident_or_404(incident_id: int) -> Incident:
    """The incident if this operator may see it; a restricted one is 404, as if it did not exist."""
    incident = get_session().get(Incident, incident_id, populate_existing=True)
    if incident is None or (incidents.restricted(incident.category) and not _may_see_restricted()):
        abort(404)
    return incident


def _nearby(db, incident: Incident) -> list[Incident]:
    """Open incidents of the same kind (restricted or not) near in place and time: the ones
    an operator is likely to want to merge into this one."""
    if incident.place is None:
        return []
    window = timedelta(hours=NEARBY_HOURS)
    query = (select(Incident).where(Incident.id != incident.id, Incident.status == "open",
                                    Incident.merged_into_id.is_(None), Incident.place_id.is_not(None),
                                    Incident.last_at >= incident.first_at - window,
                                    Incident.first_at <= incident.last_at + window)
             .order_by(Incident.last_at.desc(), Incident.id.desc()).limit(200))
    candidates = [i for i in db.scalars(query)
                  if incidents.restricted(i.category) == incidents.restricted(incident.category)]
    _with_places(db, candidates)
    return [i for i in candidates if incidents.near(incident.place, i.place, NEARBY_KM)][:NEARBY_MAX]


def _detail(incident: Incident, status: int = 200, form: dict | None = None):
    db = get_session()
    alerts = db.scalars(visible(select(Alert).where(Alert.incident_id == incident.id), current_operator())
                        .order_by(Alert.created_at, Alert.id)).all()
    places = {p.id: p for p in db.scalars(select(Place).where(Place.id.in_({a.place_id for a in alerts
                                                                               if a.place_id})))}
    nearby = _nearby(db, incident) if incident.merged_into_id is None else []
    return render_template("console/incidents_detail.html", incident=incident, alerts=alerts, places=places,
                           nearby=nearby, form=form or {}, restricted=incidents.restricted(incident.category),
                           incident_status=_status_label), status


@bp.get("/incidents/<int:incident_id>")
@requires("triage")
def incident_detail(incident_id: int):
    incident = _incident_or_404(incident_id)
    if incidents.restricted(incident.category):
        db = get_session()
        audit.record(db, current_operator(), "incident.view_restricted", "incident", incident.id)
        db.commit()
    return _detail(incident)


def _reason() -> str:
    return request.form.get("reason", "").strip()[:REASON_MAX]


def _refused(incident_id: int, status: int, message: str, form: dict):
    """The form again with what was typed, and why nothing was changed."""
    db = get_session()
    db.rollback()
    flash(message, "error")
    return _detail(_incident_or_404(incident_id), status, form)


@bp.post("/incidents/<int:incident_id>/merge")
@requires("triage")
def incident_merge(incident_id: int):
    target = _incident_or_404(incident_id)
    db = get_session()
    typed = request.form.get("others", "")[:500]
    form = {"merge_reason": _reason(), "others": typed, "chosen": request.form.getlist("other")}
    words = [w for w in re.split(r"[\s,;]+", typed.replace("#", " ")) if w]
    if any(not w.isdigit() for w in words + form["chosen"]):
        return _refused(target.id, 400, _("Write incident numbers only, separated by commas."), form)
    others = sorted({int(w) for w in words + form["chosen"]} - {target.id})
    if not others:
        return _refused(target.id, 400, _("Choose or write at least one other incident to merge into this one."),
                        form)
    if not form["merge_reason"]:
        return _refused(target.id, 400, _("Say why these incidents are one event: the reason is required."), form)
    if target.merged_into_id is not None:
        return _refused(target.id, 409, _("This incident was merged into incident #%(id)s: merge into that one.",
                                          id=target.merged_into_id), form)
    for other in others:
        found = db.get(Incident, other)
        if found is None or (incidents.restricted(found.category) and not _may_see_restricted()):
            return _refused(target.id, 400, _("There is no incident #%(id)s.", id=other), form)
        if found.merged_into_id is not None:
            return _refused(target.id, 409, _("Incident #%(id)s was already merged into incident #%(into)s.",
                                              id=other, into=found.merged_into_id), form)
        if incidents.restricted(found.category) != incidents.restricted(target.category):
            return _refused(target.id, 409, _("A restricted incident is never merged with another kind."), form)
    try:
        merged = incidents.merge(db, target.id, others, current_operator(), form["merge_reason"])
    except (LookupError, ValueError):  # changed by someone else since the checks above
        return _refused(target.id, 409, _("These incidents changed meanwhile: nothing was merged. Check and try again."),
                        form)
    db.commit()
    flash(_("Merged into this incident: %(ids)s. It now has %(alerts)s alerts from %(sources)s sources.",
            ids=", ".join(f"#{i}" for i in others), alerts=merged.alert_count, sources=merged.source_count))
    return redirect(url_for("console.incident_detail", incident_id=target.id))


@bp.post("/incidents/<int:incident_id>/split")
@requires("triage")
def incident_split(incident_id: int):
    incident = _incident_or_404(incident_id)
    db = get_session()
    chosen = request.form.getlist("alert")
    form = {"split_reason": _reason(), "alerts": chosen}
    if not chosen or not all(c.isdigit() for c in chosen):
        return _refused(incident.id, 400, _("Tick the alerts that describe another event."), form)
    if not form["split_reason"]:
        return _refused(incident.id, 400, _("Say why these alerts are another event: the reason is required."), form)
    members = set(db.scalars(select(Alert.id).where(Alert.incident_id == incident.id)))
    if {int(c) for c in chosen} >= members:
        return _refused(incident.id, 400, _("Leave at least one alert in this incident."), form)
    try:
        new = incidents.split(db, incident.id, chosen, current_operator(), form["split_reason"])
    except (LookupError, ValueError):  # the alerts moved meanwhile
        return _refused(incident.id, 409, _("These alerts changed meanwhile: nothing was split. Check and try again."),
                        form)
    db.commit()
    flash(_("The chosen alerts are now incident #%(id)s.", id=new.id))
    return redirect(url_for("console.incident_detail", incident_id=new.id))


# --- the alerts' CSV export ---------------------------------------------------------------

def _export_args(args) -> dict:
    """The inbox's query string for export.Filters: its dates are local days, `until`
    included (the inbox's meaning), so a plain date becomes eastern DRC midnight."""
    found = {k: v for k, v in args.items() if k != "page" and v.strip()}
    for name, shift in (("since", 0), ("until", 1)):
        raw = found.get(name, "").strip()
        if re.fullmatch(r"\d{4}-\d{2}-\d{2}", raw):
            day = date.fromisoformat(raw) + timedelta(days=shift)
            found[name] = datetime(day.year, day.month, day.day, tzinfo=EAST).isoformat()
    return found


@bp.get("/export.csv", endpoint="export_csv")
@requires("export")
def export_csv():
    db = get_session()
    args = _export_args(request.args)
    try:
        filters = export.Filters.from_args(args)
    except ValueError as exc:
        return render_template("console/error.html", title=_("These filters cannot be exported"),
                               text=str(exc)), 400
    include_restricted = _may_see_restricted()
    audit.record(db, current_operator(), "alerts.export", "alert", None,
                 after={"filters": {k: v for k, v in request.args.items() if v.strip() and k != "page"},
                        "restricted": include_restricted})
    db.commit()
    name = f"alerts-{datetime.now(EAST).strftime('%Y%m%d-%H%M')}.csv"
    lines = export.lines(db, filters=filters, include_restricted=include_restricted)
    return Response(stream_with_context(lines), mimetype="text/csv",
                    headers={"Content-Disposition": f'attachment; filename="{name}"'})
