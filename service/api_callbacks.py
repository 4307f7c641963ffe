"""The call-back queue for operators (GET /api/v1/callbacks, bearer token) and the
provider's reports on call-back calls (POST /webhooks/<channel>/voice/callback-status,
signed like every webhook: 403 otherwise). Never a phone number (service/callbacks.py).
"""

from __future__ import annotations

from flask import Blueprint, Response, jsonify, request
from sqlalchemy import select

from service import callbacks, voice_calls
from service.api import PAGE_MAX, require_token
from service.channels import twilio_calls
from service.channels.base import BadRequest
from service.db import get_session
from service.inbox import Services
from service.models import CallbackRequest
from service.webhooks import verified_channel

bp = Blueprint("callbacks", __name__)
api = Blueprint("api", __name__)
hooks = Blueprint("hooks", __name__)
api.before_request(require_token)


def _error(status: int, message: str):
    return jsonify({"error": message}), status


@api.get("/api/v1/callbacks")
def list_callbacks():
    """Counts per status and per line, then the requests, newest first (`status`, `line`,
    `before` an id, `limit`)."""
    args = request.args
    query = select(CallbackRequest)
    if args.get("status"):
        if args["status"] not in callbacks.STATUSES:
            return _error(400, f"status must be one of {', '.join(callbacks.STATUSES)}")
        query = query.where(CallbackRequest.status == args["status"])
    if args.get("line"):
        query = query.where(CallbackRequest.line == args["line"].strip())
    try:
        limit = min(max(int(args.get("limit", 100)), 1), PAGE_MAX)
        if args.get("before"):
            query = query.where(CallbackRequest.id < int(args["before"]))
    except ValueError:
        return _error(400, "limit and before must be numbers")
    session = get_session()
    rows = session.scalars(query.order_by(CallbackRequest.id.desc()).limit(limit)
                           .execution_options(populate_existing=True)).all()  # as committed, not as last seen
    return jsonify({"counts": callbacks.counts(session), "callbacks": [callbacks.as_json(r) for r in rows]})


def callback_status(name: str):
    """The provider's report on one attempt's call: applied once, in any order."""
    verified_channel(name)
    try:
        request_id, attempt = int(request.args["callback"]), int(request.args["attempt"])
    except (KeyError, ValueError):
        return Response("callback and attempt are required\n", status=400, mimetype="text/plain")
    try:
        call_sid, status = twilio_calls.parse_status(request)
    except BadRequest as exc:
        return Response(f"{exc}\n", status=400, mimetype="text/plain")
    svc = Services.current()
    callbacks.record_status(svc, request_id, attempt, call_sid, status, provider=name)
    voice_calls.ended(svc, name, call_sid, status)  # a call-back's call is over: its partial alert is kept
    return Response(status=204)


@hooks.record
def _status_routes(state) -> None:
    """One static route per channel that places calls, so that no voice route with a
    variable step under the same prefix can shadow it."""
    for channel in callbacks.voice_channels(state.app.extensions["channels"]):
        state.add_url_rule(callbacks.status_path(channel), f"status_{channel.name}", callback_status,
                           methods=["POST"], defaults={"name": channel.name})


bp.register_blueprint(api)
bp.register_blueprint(hooks)
