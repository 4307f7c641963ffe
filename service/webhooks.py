"""The SMS webhooks: verify, parse, hand to the inbox or the outbox, answer.

Bodies: the request is capped (MAX_CONTENT_LENGTH, 64 KB -> 413); the body is stored
whole, and only its first 1,600 characters (the longest SMS) go to the engine.
"""

from __future__ import annotations

import logging

from flask import Blueprint, Response, abort, current_app, request
from sqlalchemy import select

from service import inbox, reporters
from service.channels.base import BadRequest, moves_forward
from service.db import get_session
from service.models import Message, Reporter

log = logging.getLogger(__name__)
bp = Blueprint("sms", __name__)


def _channel():
    return current_app.extensions["channel"]


def _verified(channel) -> None:
    """Forged or unsigned requests get 403 before anything is read or stored."""
    if not channel.verify(request):
        log.warning("rejected unsigned webhook on %s", request.path)
        abort(403)


def _bad_request(message: str) -> Response:
    return Response(message + "\n", status=400, mimetype="text/plain")


@bp.post("/webhooks/twilio/sms")
def receive():
    channel = _channel()
    _verified(channel)
    try:
        inbound = channel.parse_inbound(request)
    except BadRequest as exc:
        return _bad_request(str(exc))
    texts = inbox.receive(inbox.Services.current(), inbound)
    return channel.reply(texts or [])


@bp.post("/webhooks/twilio/status")
def status():
    channel = _channel()
    _verified(channel)
    try:
        update = channel.parse_status(request)
    except BadRequest as exc:
        return _bad_request(str(exc))
    session = get_session()
    message = session.scalar(select(Message).where(Message.provider == channel.name,
                                                   Message.provider_id == update.provider_id))
    if message is None:  # not ours, or sent before the row was written: nothing to move
        return Response(status=204)
    if moves_forward(message.status, update.status):
        message.status = update.status
        message.error_code = update.error_code or message.error_code
    if update.error_code == "21610" and message.reporter_id:
        reporters.opt_out(session, session.get(Reporter, message.reporter_id))
    session.commit()
    return Response(status=204)


def init_app(app) -> None:
    app.register_blueprint(bp)
