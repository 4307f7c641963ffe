"""The broadcast composer: write a warning in French, Swahili and Lingala, preview its
size, cost and reach, send it now or at a time, follow its progress, cancel it, and read
the tally of answers when it asks a question.

The form becomes the same body as POST /api/v1/broadcasts and goes through the same
service functions (broadcasts.parse, audience, summary, create; broadcast_sending.start):
what the console previews is what the API would accept and send. Sending needs a preview
of exactly that form first. Never a phone number on these pages.
"""

from __future__ import annotations

import hashlib
import json
import re
from datetime import datetime, timezone

from flask import abort, current_app, flash, redirect, render_template, request, url_for
from sqlalchemy import func, select

from bot.gsm7 import ALPHABET, EXTENSION_CODES
from bot.languages import LANGUAGES
from bot.parsing import EAST
from bot.places import default_gazetteer
from service import audit, broadcast_sending, broadcasts, cap_alerts
from service.console import bp
from service.console.auth import current_operator, requires
from service.console.i18n import LANGUAGE_LABELS, N_, _, label, local_time
from service.db import get_session
from service.inbox import Services
from service.models import Broadcast, Group, Message

LIST_SIZE = 100
ANSWERS = 4  # numbered answers the form offers (the API takes up to 9)
STATE_LABELS = {"scheduled": N_("Scheduled"), "sending": N_("Sending"), "sent": N_("Sent"),
                "canceled": N_("Canceled"), "expired": N_("Expired")}
PRIORITY_LABELS = {"urgent": N_("Urgent"), "routine": N_("Routine")}
CAP_STATUS_LABELS = {"Actual": N_("Actual"), "Exercise": N_("Exercise"), "Test": N_("Test")}
DELIVERY_LABELS = {"queued": N_("queued"), "sending": N_("sending"), "sent": N_("sent"), "handed": N_("handed over"),
                   "delivered": N_("delivered"), "undelivered": N_("undelivered"), "failed": N_("failed"),
                   "canceled": N_("canceled"), "expired": N_("expired"), "suppressed": N_("not sent (opted out)")}
REFRESH_SECONDS = 10


# --- the form ---------------------------------------------------------------------------

def _number(raw: str):
    """A number typed in the form; what is not one goes on as typed, for the service to name."""
    raw = (raw or "").strip().replace(",", ".")
    try:
        value = float(raw)
    except ValueError:
        return raw
    return int(value) if value.is_integer() else value


def _time(raw: str) -> str | None:
    """A datetime-local field, read on eastern DRC's clock (+02:00), as the API's ISO text
    in UTC (SQLite keeps no offset: a +02:00 time would be stored two hours off)."""
    raw = (raw or "").strip()
    if not raw:
        return None
    try:
        return datetime.fromisoformat(raw).replace(tzinfo=EAST).astimezone(timezone.utc).isoformat()
    except ValueError:
        return raw  # the service refuses it, naming the field


def body_of(form) -> dict:
    """The form as the body of POST /api/v1/broadcasts."""
    body: dict = {"texts": {lang: form.get(f"text_{lang}", "") for lang in LANGUAGES
                            if form.get(f"text_{lang}", "").strip()},
                  "priority": form.get("priority", "routine"), "status": form.get("status", "Actual"),
                  "transliterate": form.get("transliterate") == "1"}
    if form.get("fallback_language"):
        body["fallback_language"] = form["fallback_language"]
    for name in ("send_at", "expires_at"):
        if _time(form.get(name, "")):
            body[name] = _time(form[name])
    targets: dict = {}
    if form.get("target_all") == "1":
        targets["all"] = True
    for kind in ("provinces", "territories"):
        if form.getlist(kind):
            targets[kind] = form.getlist(kind)
    if form.getlist("groups"):
        targets["groups"] = [_number(g) for g in form.getlist("groups")]
    if form.get("radius_km", "").strip():
        radius = {"km": _number(form["radius_km"])}
        if form.get("radius_alert", "").strip():
            radius["alert"] = _number(form["radius_alert"])
        else:
            radius.update(lat=_number(form.get("radius_lat", "")), lon=_number(form.get("radius_lon", "")))
        targets["radius"] = radius
    body["targets"] = targets
    answers = {str(n): form.get(f"answer_{n}", "").strip() for n in range(1, ANSWERS + 1)
               if form.get(f"answer_{n}", "").strip()}
    if answers:
        body["question"] = {"answers": answers}
        if form.get("window_hours", "").strip():
            body["question"]["window_hours"] = _number(form["window_hours"])
    return body


def fingerprint(body: dict) -> str:
    """What was previewed: Send is refused for a form changed since."""
    return hashlib.sha256(json.dumps(body, sort_keys=True, ensure_ascii=False).encode()).hexdigest()


def _choices() -> dict:
    """Provinces and territories of the gazetteer, groups: the target picker's lists."""
    units = sorted((r for r in default_gazetteer()._by_key.values() if r.level in ("adm1", "adm2")),
                   key=lambda r: (r.admin1_name or "", r.level != "adm1", r.name))
    groups = get_session().scalars(select(Group).order_by(Group.name)).all()
    return {"provinces": [u for u in units if u.level == "adm1"],
            "territories": [u for u in units if u.level == "adm2"], "groups": groups}


def _preview(request_: broadcasts.Request, per_language: dict[str, int]) -> dict:
    """The API's own summary of the broadcast this form would create (nothing stored)."""
    draft = Broadcast(id=None, identifier="", texts=request_.texts, original_texts=request_.original_texts,
                      fallback_language=request_.fallback_language, targets=request_.targets.as_json(),
                      priority=request_.priority, cap_status=request_.cap_status, question=request_.question,
                      replies_until=request_.replies_until, state="preview", send_at=request_.send_at,
                      expires_at=request_.expires_at)
    warnings = list(request_.warnings)
    if not sum(per_language.values()):
        warnings.append(_("Nobody is reached yet: no active subscriber matches the targets. The broadcast "
                          "would go to whoever matches at its send time."))
    return broadcasts.summary(draft, per_language, warnings)


def _refusal(exc: broadcasts.Invalid, body: dict) -> list[str]:
    """The service's refusal, with the console's own words where it helps."""
    errors = []
    missing = [lang for lang in LANGUAGES if lang not in body["texts"]]
    if missing and body["texts"] and not body.get("fallback_language") and str(exc).startswith("texts has no"):
        errors.append(_("No text in %(languages)s: write it, or choose a fallback language for the subscribers "
                        "who read it.", languages=", ".join(label(LANGUAGE_LABELS, m) for m in missing)))
    elif not body["texts"]:
        errors.append(_("Write the warning in at least one language."))
    elif exc.status == 422:
        errors.append(_("A text holds the phone number of a reporter or subscriber: who reported must never "
                        "be in a broadcast. The numbers were taken out of the texts below."))
    else:
        errors.append(_("The broadcast cannot be sent as it is:"))
    errors.append(str(exc))
    return errors


def _masked(form) -> dict:
    """The form's values, numbers taken out of the texts (after a reporter's number was found)."""
    values = form.to_dict(flat=False)
    for lang in LANGUAGES:
        if f"text_{lang}" in values:
            values[f"text_{lang}"] = [broadcasts.NUMBER_LIKE.sub("[…]", v) for v in values[f"text_{lang}"]]
    return values


DEFAULT_RADIUS_KM = 10  # a warning "around this alert" from the map or the alert's page


class Values:
    """The form's values for the template (a fresh form has none)."""

    def __init__(self, values: dict[str, list[str]] | None = None):
        self._values = values or {}

    def get(self, name: str, default: str = "") -> str:
        found = self._values.get(name)
        return found[0] if found else default

    def getlist(self, name: str) -> list[str]:
        return self._values.get(name, [])


def _form(values: Values, preview=None, errors=(), previewed: str = "", status: int = 200):
    return render_template("console/broadcast_new.html", v=values, preview=preview, errors=list(errors),
                           previewed=previewed, languages=LANGUAGES, answers=range(1, ANSWERS + 1),
                           priorities=broadcasts.PRIORITIES, cap_statuses=broadcasts.CAP_STATUSES,
                           gsm7_basic=ALPHABET.replace("\x1b", ""), gsm7_extension="".join(EXTENSION_CODES.values()),
                           **_choices()), status


# --- the pages --------------------------------------------------------------------------

@bp.get("/broadcasts", endpoint="broadcasts")
@requires("broadcast")
def index():
    db = get_session()
    rows = db.scalars(select(Broadcast).order_by(Broadcast.id.desc()).limit(LIST_SIZE)).all()
    counts: dict[int, dict[str, int]] = {}
    if rows:
        for broadcast_id, status, n in db.execute(
                select(Message.broadcast_id, Message.status, func.count())
                .where(Message.broadcast_id.in_([b.id for b in rows]))
                .group_by(Message.broadcast_id, Message.status)).all():
            counts.setdefault(broadcast_id, {})[status] = n
    return render_template("console/broadcasts.html", broadcasts=rows, counts=counts)


@bp.get("/broadcasts/new", endpoint="broadcast_new")
@requires("broadcast")
def new():
    values = {"priority": ["routine"], "status": ["Actual"], "fallback_language": ["fr"], "transliterate": ["1"]}
    # from an alert (its page, its popup on the map): a radius around it, to check and send
    alert, km = request.args.get("radius_alert", ""), request.args.get("radius_km", "")
    if alert.isdigit() and len(alert) <= 12:
        values["radius_alert"] = [alert]
        values["radius_km"] = [km if re.fullmatch(r"\d{1,3}(\.\d{1,2})?", km) else str(DEFAULT_RADIUS_KM)]
    return _form(Values(values))


@bp.post("/broadcasts/new")
@requires("broadcast")
def compose():
    """Preview (the form again, with sizes, cost and reach) or, after a preview of this very
    form, Send."""
    db = get_session()
    body = body_of(request.form)
    try:
        checked = broadcasts.parse(body, db, current_app.extensions["identity"])
    except broadcasts.Invalid as exc:
        db.rollback()
        values = _masked(request.form) if exc.status == 422 else request.form.to_dict(flat=False)
        return _form(Values(values), errors=_refusal(exc, body), status=exc.status)
    per_language = broadcasts.audience(db, checked.targets, checked.texts, checked.fallback_language)
    preview = _preview(checked, per_language)
    if request.form.get("action") != "send":
        return _form(Values(request.form.to_dict(flat=False)), preview, previewed=fingerprint(body))
    if request.form.get("previewed") != fingerprint(body):
        return _form(Values(request.form.to_dict(flat=False)), preview, previewed=fingerprint(body),
                     errors=[_("The form changed since its preview: check this preview, then send.")], status=409)
    return _send(checked, preview)


def _send(checked: broadcasts.Request, preview: dict):
    db = get_session()
    # the entry is added before create() commits: the broadcast never exists without it
    entry = audit.record(db, current_operator(), "broadcast.create", "broadcast", None, after={
        "priority": preview["priority"], "status": preview["status"], "targets": preview["targets"],
        "languages": sorted(preview["languages"]), "recipients": preview["recipients"],
        "segments": preview["segments"], "send_at": preview["send_at"], "question": bool(preview["question"])})
    broadcast = broadcasts.create(db, checked)
    entry.target_id = str(broadcast.id)
    entry.after = {**entry.after, "identifier": broadcast.identifier}
    db.commit()
    if broadcast_sending.start(Services.current(), broadcast):
        flash(_("The broadcast is created."))
    else:
        flash(_("The broadcast is created; the queue is unavailable, so it starts within a minute."), "error")
    return redirect(url_for("console.broadcast_detail", broadcast_id=broadcast.id))


def _broadcast_or_404(broadcast_id: int) -> Broadcast:
    broadcast = get_session().get(Broadcast, broadcast_id)
    if broadcast is None:
        abort(404)
    return broadcast


@bp.get("/broadcasts/<int:broadcast_id>")
@requires("broadcast")
def broadcast_detail(broadcast_id: int):
    db = get_session()
    broadcast = _broadcast_or_404(broadcast_id)
    by_status, by_language = broadcasts.delivery_counts(db, broadcast.id)
    summary = broadcasts.summary(broadcast, by_language if broadcast.fanout_done else None)
    tally = broadcasts.reply_counts(db, broadcast, cap_alerts.area_names()) if broadcast.question else None
    return render_template("console/broadcast.html", b=broadcast, summary=summary, by_status=by_status,
                           total=sum(by_status.values()), tally=tally, active=broadcast.state in broadcasts.ACTIVE,
                           refresh=REFRESH_SECONDS, targets=broadcast.targets or {})


@bp.post("/broadcasts/<int:broadcast_id>/cancel")
@requires("broadcast")
def broadcast_cancel(broadcast_id: int):
    db = get_session()
    broadcast = _broadcast_or_404(broadcast_id)
    if broadcast.state not in broadcasts.ACTIVE:
        flash(_("The broadcast is “%(state)s”: nothing left to cancel.",
                state=label(STATE_LABELS, broadcast.state)), "error")
        return redirect(url_for("console.broadcast_detail", broadcast_id=broadcast.id))
    entry = audit.record(db, current_operator(), "broadcast.cancel", "broadcast", broadcast.id,
                         before={"state": broadcast.state}, after={"state": "canceled"})
    withdrawn = broadcasts.cancel(db, broadcast)  # commits the entry with the state
    entry.after = {"state": broadcast.state, "withdrawn": withdrawn}
    db.commit()
    flash(_("The broadcast is canceled: %(n)s messages not yet sent were withdrawn.", n=withdrawn))
    return redirect(url_for("console.broadcast_detail", broadcast_id=broadcast.id))


def _local_time_iso(value: str | None) -> str:
    return local_time(datetime.fromisoformat(value)) if value else "—"


def init_globals(app) -> None:
    app.jinja_env.filters["local_time_iso"] = _local_time_iso
    app.jinja_env.globals.update(
        broadcast_state_label=lambda v: label(STATE_LABELS, v), priority_label=lambda v: label(PRIORITY_LABELS, v),
        cap_status_label=lambda v: label(CAP_STATUS_LABELS, v), delivery_label=lambda v: label(DELIVERY_LABELS, v))


bp.record_once(lambda state: init_globals(state.app))
