"""The broadcasts API: create, look at, cancel, count answers, and their CAP 1.2 form.

Same bearer token as the alerts API. Never a phone number or a reporter in an answer.
"""

from __future__ import annotations

from flask import Blueprint, Response, current_app, jsonify, request, url_for
from sqlalchemy import select

from service import api, broadcast_sending, broadcasts, cap_alerts
from service.db import get_session
from service.inbox import Services
from service.models import Broadcast

bp = Blueprint("broadcasts", __name__)
bp.before_request(api.require_token)


def _error(status: int, message: str):
    return jsonify({"error": message}), status


def _broadcast(broadcast_id: int) -> Broadcast | None:
    return get_session().get(Broadcast, broadcast_id)


@bp.post("/api/v1/broadcasts")
def create():
    body = request.get_json(silent=True)
    session = get_session()
    try:
        checked = broadcasts.parse(body, session, current_app.extensions["identity"])
    except broadcasts.Invalid as exc:
        return _error(exc.status, str(exc))
    per_language = broadcasts.audience(session, checked.targets, checked.texts, checked.fallback_language)
    warnings = list(checked.warnings)
    if not sum(per_language.values()):
        warnings.append("nobody is reached yet: no active subscriber matches the targets; the broadcast is kept "
                        "and goes to whoever matches at its send time")
    broadcast = broadcasts.create(session, checked)
    if not broadcast_sending.start(Services.current(), broadcast):
        warnings.append("the queue is unavailable: the broadcast starts within a minute (the sweep)")
    out = broadcasts.summary(broadcast, per_language, warnings)
    out["links"] = _links(broadcast)
    return jsonify(out), 201


@bp.get("/api/v1/broadcasts")
def index():
    rows = get_session().scalars(select(Broadcast).order_by(Broadcast.id.desc()).limit(100)).all()
    return jsonify({"broadcasts": [broadcasts.summary(b) for b in rows]})


@bp.get("/api/v1/broadcasts/<int:broadcast_id>")
def show(broadcast_id: int):
    broadcast = _broadcast(broadcast_id)
    if broadcast is None:
        return _error(404, "no such broadcast")
    by_status, by_language = broadcasts.delivery_counts(get_session(), broadcast.id)
    out = broadcasts.summary(broadcast, by_language if broadcast.fanout_done else None)
    out.update({"deliveries": by_status, "delivery_languages": by_language, "fanout_done": broadcast.fanout_done,
                "started_at": broadcasts.iso(broadcast.started_at),
                "finished_at": broadcasts.iso(broadcast.finished_at),
                "canceled_at": broadcasts.iso(broadcast.canceled_at), "links": _links(broadcast)})
    return jsonify(out)


@bp.post("/api/v1/broadcasts/<int:broadcast_id>/cancel")
def cancel(broadcast_id: int):
    broadcast = _broadcast(broadcast_id)
    if broadcast is None:
        return _error(404, "no such broadcast")
    if broadcast.state not in broadcasts.ACTIVE:
        return _error(409, f"the broadcast is {broadcast.state}: nothing left to cancel")
    withdrawn = broadcasts.cancel(get_session(), broadcast)
    return jsonify({"id": broadcast.id, "state": broadcast.state, "withdrawn": withdrawn})


@bp.get("/api/v1/broadcasts/<int:broadcast_id>/replies")
def replies(broadcast_id: int):
    broadcast = _broadcast(broadcast_id)
    if broadcast is None:
        return _error(404, "no such broadcast")
    if not broadcast.question:
        return _error(404, "this broadcast asks no question")
    return jsonify(broadcasts.reply_counts(get_session(), broadcast, cap_alerts.area_names()))


@bp.get("/api/v1/broadcasts/<int:broadcast_id>/cap.xml")
def cap(broadcast_id: int):
    broadcast = _broadcast(broadcast_id)
    if broadcast is None:
        return _error(404, "no such broadcast")
    document = cap_alerts.document(broadcast, current_app.config, url_for("broadcasts.show", broadcast_id=broadcast.id))
    return Response(document, mimetype="application/cap+xml")


@bp.get("/api/v1/cap/feed")
def feed():
    document = cap_alerts.feed(get_session(), current_app.config,
                               lambda b: url_for("broadcasts.cap", broadcast_id=b.id))
    return Response(document, mimetype="application/atom+xml")


def _links(broadcast: Broadcast) -> dict:
    return {"self": url_for("broadcasts.show", broadcast_id=broadcast.id),
            "cap": url_for("broadcasts.cap", broadcast_id=broadcast.id),
            "replies": url_for("broadcasts.replies", broadcast_id=broadcast.id) if broadcast.question else None}
