"""JSON API for operators and other tools: alerts, understanding a message, health.

Never returns a phone number or a reporter key: alerts are shown as data about events.
"""

from __future__ import annotations

import hmac
from datetime import datetime, timezone

from flask import Blueprint, current_app, jsonify, request
from sqlalchemy import select

from bot.categories import BY_CODE
from bot.engine import EngineUnavailable
from bot.understanding import understand
from service import alerts, health
from service.db import get_session
from service.models import Alert, Message, Place

bp = Blueprint("api", __name__)
MAX_TEXT = 2000
PAGE_MAX = 500


def _error(status: int, message: str):
    return jsonify({"error": message}), status


def require_token():
    """Every API blueprint's before_request: the operators' bearer token."""
    if request.path in ("/healthz", "/livez"):
        return None
    expected = current_app.config["API_TOKEN"]
    header = request.headers.get("Authorization", "")
    token = header[7:] if header.startswith("Bearer ") else ""
    if not token or not hmac.compare_digest(token.encode(), expected.encode()):
        return _error(401, "missing or wrong bearer token")
    return None


bp.before_request(require_token)


def _since(raw: str) -> datetime:
    value = datetime.fromisoformat(raw.replace("Z", "+00:00"))
    return value if value.tzinfo else value.replace(tzinfo=timezone.utc)


@bp.get("/api/v1/alerts")
def list_alerts():
    query = select(Alert).where(Alert.status != "draft")
    args = request.args
    if args.get("since"):
        try:
            query = query.where(Alert.created_at >= _since(args["since"]))
        except ValueError:
            return _error(400, "since must be an ISO 8601 date or time")
    if args.get("category"):
        code = args["category"].upper()
        if code not in BY_CODE:
            return _error(400, f"unknown category; one of {', '.join(BY_CODE)}")
        query = query.where(Alert.category == code)
    if args.get("admin2"):
        wanted = args["admin2"]
        query = query.join(Place, Alert.place_id == Place.id).where(
            (Place.admin2_pcode == wanted.upper()) | (Place.key == wanted.upper())
            | (Place.admin2_name.ilike(wanted)))
    if args.get("status"):
        query = query.where(Alert.status == args["status"])
    try:
        limit = min(max(int(args.get("limit", 100)), 1), PAGE_MAX)
    except ValueError:
        return _error(400, "limit must be a number")
    query = query.order_by(Alert.created_at.desc(), Alert.id.desc()).limit(limit)
    session = get_session()
    rows = session.scalars(query).all()
    heard = alerts.recordings_of(session, [a.id for a in rows if a.channel == "voice"])  # one query a page
    return jsonify({"alerts": [alerts.as_json(a, heard.get(a.id, [])) for a in rows]})


@bp.post("/api/v1/understand")
def understand_text():
    body = request.get_json(silent=True)
    if not isinstance(body, dict) or not isinstance(body.get("text"), str):
        return _error(400, 'send JSON {"text": "..."}')
    if len(body["text"]) > MAX_TEXT:
        return _error(413, f"text longer than {MAX_TEXT} characters")
    language = body.get("language") if body.get("language") in ("fr", "sw", "ln") else None
    try:
        result = understand(body["text"], current_app.extensions["engine"], stated_language=language)
    except EngineUnavailable:
        return _error(503, "the language model is not available; try again shortly")
    return jsonify(result.as_json())


@bp.get("/livez")
def livez():
    """The process answers: for the container's restart check. Touches no database, Redis
    or Rasa, so a dependency down never restarts the web processes that still store
    messages and answer "received"; /healthz is for monitoring."""
    return jsonify({"status": "ok"})


@bp.get("/healthz")
def healthz():
    checks = {"database": health.database(get_session()), "redis": health.redis_state(current_app.extensions["redis"]),
              "rasa": "ok" if current_app.extensions["engine"].ready() else "down",
              "actions": health.actions(current_app.config.get("ACTIONS_URL"))}
    healthy = all(v in ("ok", "unchecked") for v in checks.values())
    return jsonify({"status": "ok" if healthy else "degraded", **checks}), 200 if healthy else 503


MESSAGE_STATUSES = ("received", "pending", "processing", "processed", "failed")


@bp.get("/api/v1/messages")
def list_messages():
    """Inbound messages by status (operators look at `failed` ones): never a number."""
    status = request.args.get("status", "failed")
    if status not in MESSAGE_STATUSES:
        return _error(400, f"status must be one of {', '.join(MESSAGE_STATUSES)}")
    try:
        limit = min(max(int(request.args.get("limit", 100)), 1), PAGE_MAX)
    except ValueError:
        return _error(400, "limit must be a number")
    rows = get_session().scalars(select(Message).where(Message.direction == "in", Message.status == status)
                                 .order_by(Message.id.desc()).limit(limit)).all()
    return jsonify({"messages": [{
        "id": m.id, "status": m.status, "body": m.body, "received_at": _iso(m.created_at),
        "failure_reason": m.failure_reason, "attempts": m.attempts, "language": m.language,
        "channel": m.channel} for m in rows]})


def _iso(value):
    if value is None:
        return None
    return (value if value.tzinfo else value.replace(tzinfo=timezone.utc)).isoformat()
