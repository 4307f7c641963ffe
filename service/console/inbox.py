"""The alerts inbox, one alert's page, its triage steps, its transcript and recordings.

Never a phone number: a reporter is "reporter #<id>". Sexual-violence reports are not
shown, counted or reachable without accounts.can(op, "see_restricted"); opening one, and
listening to any recording, is written in the audit log.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta

from flask import Response, abort, current_app, flash, redirect, render_template, request, url_for
from sqlalchemy import case, func, or_, select
from sqlalchemy.exc import SQLAlchemyError

from bot.categories import CATEGORIES, CODES
from bot.parsing import EAST
from bot.places import default_gazetteer
from service import accounts, alerts, audit, notify, recordings, reporters, reveal, triage
from service.console import bp
from service.console.auth import current_operator, requires
from service.console.i18n import STATUS_LABELS, N_, _, label
from service.db import get_session
from service.inbox import Services
from service.models import Alert, Message, Place, Reporter

log = logging.getLogger(__name__)
PAGE = 50
CHANNELS = ("sms", "voice")
LANGUAGES = ("fr", "sw", "ln")
RESTRICTED = tuple(c.code for c in CATEGORIES if c.restricted)
URGENCY = case({c.code: triage.URGENCY[c.horizon] for c in CATEGORIES}, value=Alert.category,
               else_=triage.URGENCY["none"])


@dataclass
class Filters:
    """The inbox's filters as given in the query string; unknown values are dropped."""

    category: str = ""
    province: str = ""
    territory: str = ""
    status: str = ""
    channel: str = ""
    language: str = ""
    since: date | None = None
    until: date | None = None
    page: int = 1

    @classmethod
    def parse(cls, args) -> tuple["Filters", list[str]]:
        errors = []
        found = cls(
            category=args.get("category", "") if args.get("category") in CODES else "",
            province=args.get("province", "").strip().upper()[:16],
            territory=args.get("territory", "").strip().upper()[:16],
            status=args.get("status", "") if args.get("status") in triage.TRIAGE_STATUSES else "",
            channel=args.get("channel", "") if args.get("channel") in CHANNELS else "",
            language=args.get("language", "") if args.get("language") in LANGUAGES else "",
        )
        for name in ("since", "until"):
            raw = args.get(name, "").strip()
            if raw:
                try:
                    setattr(found, name, date.fromisoformat(raw))
                except ValueError:
                    errors.append(_("A date is written 2025-03-31 (year-month-day)."))
        try:
            found.page = max(int(args.get("page", 1)), 1)
        except ValueError:
            found.page = 1
        return found, errors

    def args(self, **changes) -> dict:
        """The query string of these filters (for the next and previous pages)."""
        values = {**self.__dict__, **changes}
        return {k: (v.isoformat() if isinstance(v, date) else v) for k, v in values.items()
                if v and not (k == "page" and v == 1)}


def _day_start(day: date) -> datetime:
    """Midnight in eastern DRC (operators think in local days), as an aware time."""
    return datetime.combine(day, time(0), tzinfo=EAST)


def visible(query, operator):
    """Drafts and the simulator's never; restricted categories only for those who may see them."""
    query = reporters.real_alerts(query.where(Alert.status != "draft"))  # never the simulator's
    if not accounts.can(operator, "see_restricted"):
        query = query.where(or_(Alert.category.is_(None), Alert.category.notin_(RESTRICTED)))
    return query


def filtered(query, f: Filters):
    if f.category:
        query = query.where(Alert.category == f.category)
    if f.province or f.territory:
        query = query.join(Place, Alert.place_id == Place.id)
        if f.province:
            query = query.where(or_(Place.admin1_pcode == f.province, Place.key == f.province))
        if f.territory:
            query = query.where(or_(Place.admin2_pcode == f.territory, Place.key == f.territory))
    if f.status:
        query = query.where(Alert.status == f.status)
    if f.channel:
        query = query.where(Alert.channel == f.channel)
    if f.language:
        query = query.where(Alert.language == f.language)
    if f.since:
        query = query.where(Alert.created_at >= _day_start(f.since))
    if f.until:
        query = query.where(Alert.created_at < _day_start(f.until + timedelta(days=1)))
    return query


@bp.get("/alerts", endpoint="alerts")
@requires("triage")
def inbox():
    db = get_session()
    f, errors = Filters.parse(request.args)
    for error in errors:
        flash(error, "error")
    query = filtered(visible(select(Alert), current_operator()), f)
    total = db.scalar(query.with_only_columns(func.count(Alert.id)).order_by(None))
    rows = db.scalars(query.order_by(URGENCY, Alert.created_at.desc(), Alert.id.desc())
                      .offset((f.page - 1) * PAGE).limit(PAGE + 1)).all()
    places = {p.id: p for p in db.scalars(select(Place).where(Place.id.in_({a.place_id for a in rows if a.place_id})))}
    return render_template("console/alerts.html", alerts=rows[:PAGE], places=places, f=f, total=total,
                           more=len(rows) > PAGE, categories=CODES, statuses=triage.TRIAGE_STATUSES,
                           channels=CHANNELS, languages=LANGUAGES, urgency=triage.urgency)


def _alert_or_404(alert_id: int) -> Alert:
    """The alert if this operator may see it; a restricted one is 404, as if it did not exist."""
    alert = get_session().scalar(visible(select(Alert).where(Alert.id == alert_id), current_operator()))
    if alert is None:
        abort(404)
    return alert


def _detail(alert: Alert, status: int = 200, note: str = "", home_choices=(), home_name: str = ""):
    db = get_session()
    reporter = db.get(Reporter, alert.reporter_id) if alert.reporter_id else None
    home = default_gazetteer().get(reporter.home_place_key) if reporter and reporter.home_place_key else None
    transcript = []
    if alert.conversation_id is not None:
        transcript = db.scalars(select(Message).where(Message.conversation_id == alert.conversation_id)
                                .order_by(Message.created_at, Message.id)).all()
    heard = alerts.recordings_of(db, [alert.id]).get(alert.id, [])
    return render_template("console/alert.html", alert=alert, place=alert.place, history=triage.history(db, alert.id),
                           allowed=triage.allowed(alert.status), transcript=transcript, recordings=heard,
                           restricted=triage.restricted(alert), urgency=triage.urgency(alert),
                           note=note, note_required=triage.NOTE_REQUIRED, tell_events=tuple(notify.EVENTS),
                           can_reveal=accounts.can(current_operator(), "reveal_number"),
                           home=home, home_choices=home_choices, home_name=home_name), status


@bp.get("/alerts/<int:alert_id>")
@requires("triage")
def alert_detail(alert_id: int):
    alert = _alert_or_404(alert_id)
    if triage.restricted(alert):
        db = get_session()
        audit.record(db, current_operator(), "alert.view_restricted", "alert", alert.id)
        db.commit()
    return _detail(alert)


@bp.post("/alerts/<int:alert_id>/transition")
@requires("triage")
def alert_transition(alert_id: int):
    alert = _alert_or_404(alert_id)
    db = get_session()
    to, note = request.form.get("to", ""), request.form.get("note", "")[:2000]
    try:
        triage.transition(db, alert.id, to, current_operator(), note)
    except triage.InvalidTransition as exc:
        db.rollback()
        flash(_("This alert is “%(current)s” now and cannot become “%(wanted)s”: nothing was changed.",
                current=label(STATUS_LABELS, exc.current), wanted=label(STATUS_LABELS, exc.wanted)), "error")
        return _detail(db.get(Alert, alert.id, populate_existing=True), 409, note)
    except ValueError:  # the note a report set aside needs
        db.rollback()
        flash(_("Say why the report is “%(status)s”: write it in the note.", status=label(STATUS_LABELS, to)), "error")
        return _detail(db.get(Alert, alert.id, populate_existing=True), 400, note)
    db.commit()
    flash(_("The alert is now “%(status)s”.", status=label(STATUS_LABELS, to)))
    if to in notify.EVENTS and request.form.get("tell") == "1":
        _tell(alert.id, to)
    return redirect(url_for("console.alert_detail", alert_id=alert.id))


TOLD = {notify.QUEUED: N_("The reporter will get an SMS."),
        notify.ALREADY: N_("The reporter was already told."),
        notify.OPTED_OUT: N_("The reporter said STOP: no SMS."),
        notify.NO_NUMBER: N_("The reporter's number is no longer kept: no SMS."),
        notify.NO_REPORTER: N_("No reporter to tell."),
        notify.NO_REFERENCE: N_("The report was never confirmed: no reference to tell.")}


def _tell(alert_id: int, event: str) -> None:
    """The step is committed already: a failure to tell must not look like a failed step."""
    try:
        told = notify.tell_reporter(Services.current(), alert_id, event, current_operator())
    except SQLAlchemyError as exc:
        get_session().rollback()
        log.error("telling the reporter of alert %s failed: %s", alert_id, type(exc).__name__)
        flash(_("The reporter could not be told now; try again."), "error")
        return
    flash(_(TOLD.get(told.outcome, told.outcome)))


@bp.get("/alerts/<int:alert_id>/recordings/<int:recording_id>")
@requires("triage")
def alert_recording(alert_id: int, recording_id: int):
    """A caller's recording, decrypted, to a signed-in operator; every listen is audited."""
    alert = _alert_or_404(alert_id)
    db = get_session()
    row = {r.id: r for r in alerts.recordings_of(db, [alert.id]).get(alert.id, [])}.get(recording_id)
    if row is None or row.status != "stored":
        abort(404)
    try:
        audio = recordings.read_audio(current_app.config, row)
    except recordings.RecordingUnavailable as exc:
        log.error("%s", exc)
        abort(404)
    if request.range is None or request.range.ranges[0][0] == 0:  # a player's later ranges are the same listen
        audit.record(db, current_operator(), "recording.listen", "recording", row.id, after={"alert": alert.id})
        db.commit()
    answer = Response(audio, mimetype=row.content_type or "application/octet-stream")
    answer.headers["Cache-Control"] = "private, no-store"  # a caller's voice: no copy on the way
    return answer.make_conditional(request, accept_ranges=True, complete_length=len(audio))  # players seek


@bp.post("/alerts/<int:alert_id>/reveal")
@requires("reveal_number")
def reveal_number(alert_id: int):
    """The reporter's number, once, to call them back: a reason is required and audited
    (service/reveal.py); the number is in this answer only, never in a flash, a URL or a log."""
    alert = _alert_or_404(alert_id)
    if alert.reporter_id is None:
        abort(404)
    try:
        number = reveal.number(get_session(), current_app.extensions["identity"], current_operator(),
                               alert.reporter_id, request.form.get("reason", ""))
    except reveal.NumberUnavailable:
        get_session().rollback()
        flash(_("The reporter's number is no longer kept."), "error")
        return redirect(url_for("console.alert_detail", alert_id=alert.id))
    except ValueError:
        get_session().rollback()
        flash(_("Say why you need the number (at least 10 characters)."), "error")
        return redirect(url_for("console.alert_detail", alert_id=alert.id))
    return render_template("console/number.html", alert=alert, number=number)


@bp.post("/alerts/<int:alert_id>/home")
@requires("triage")
def home_village(alert_id: int):
    """Register the reporter's home village (a focal point), by name or by a gazetteer key
    chosen among namesakes; the understanding then prefers places near it. Audited."""
    alert = _alert_or_404(alert_id)
    if alert.reporter_id is None:
        abort(404)
    db = get_session()
    gazetteer = default_gazetteer()
    key, name = request.form.get("key", "").strip(), request.form.get("place", "").strip()[:120]
    record = gazetteer.get(key) if key else None
    if record is None and name:
        found = gazetteer.resolve(name)
        if found.status == "found":
            record = found.place
        elif found.status == "ambiguous":
            return _detail(alert, 200, home_choices=found.candidates[:8], home_name=name)
    if record is None:
        flash(_("No place of that name in the gazetteer: nothing was changed."), "error")
        return redirect(url_for("console.alert_detail", alert_id=alert.id))
    reporter = db.get(Reporter, alert.reporter_id)
    before = reporter.home_place_key
    reporter.home_place_key = record.key
    audit.record(db, current_operator(), "reporter.home_place", "reporter", reporter.id,
                 before={"home_place": before}, after={"home_place": record.key})
    db.commit()
    flash(_("Home village registered: %(place)s.", place=record.name))
    return redirect(url_for("console.alert_detail", alert_id=alert.id))
