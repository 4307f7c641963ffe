"""The gateways' webhooks: verify, parse, hand to the inbox or record a delivery report.

Every configured channel gets its own routes (`Channel.inbound_path()`, `status_path()`:
/webhooks/<name>/sms and /status by default; Africa's Talking and the generic HTTP
gateway name theirs). The views know no provider: what a request means is the channel's.

Bodies: the request is capped (MAX_CONTENT_LENGTH, 64 KB -> 413); the body is stored
whole, and only its first 1,600 characters (the longest SMS) go to the engine.
"""

from __future__ import annotations

import logging

from flask import Blueprint, Response, abort, current_app, has_app_context, request

from service import inbox, receipts
from service.channels.base import BadRequest
from service.db import get_session
from service.models import Message

log = logging.getLogger(__name__)


def _channel(name: str):
    return current_app.extensions["channels"].by_name[name]


def _verified(channel) -> None:
    """Forged or unsigned requests get 403 before anything is read or stored."""
    if not channel.verify(request):
        log.warning("rejected unverified webhook on %s", request.path)
        abort(403)


def verified_channel(name: str):
    """The channel `name` of a provider's webhook, once its signature checks (403 otherwise):
    for every webhook route, SMS, voice, call-backs and recordings alike."""
    channel = _channel(name)
    _verified(channel)
    return channel


def _bad_request(message: str) -> Response:
    return Response(message + "\n", status=400, mimetype="text/plain")


def receive(name: str):
    channel = _channel(name)
    _verified(channel)
    try:
        inbound = channel.parse_inbound(request)
    except BadRequest as exc:
        return _bad_request(str(exc))
    texts = inbox.receive(inbox.Services.current(), channel, inbound)
    return channel.reply(texts or []) if channel.inline_replies else channel.ack()


def status(name: str):
    channel = _channel(name)
    _verified(channel)
    try:
        update = channel.parse_status(request)
    except BadRequest as exc:
        return _bad_request(str(exc))
    record_status(get_session(), channel, update)
    return Response(status=204)


def record_status(session, channel, update) -> Message | None:
    """Apply a delivery report (a webhook's, or an SMPP receipt); the message, or None if
    no message of this channel has that provider id yet (service/receipts.py)."""
    connection = current_app.extensions.get("redis") if has_app_context() else None
    return receipts.record(session, channel.name, update, connection)


def init_app(app) -> None:
    """One inbound and one status route per configured channel."""
    bp = Blueprint("webhooks", __name__)
    for channel in app.extensions["channels"]:
        if channel.inbound_path() is None:  # no webhooks (an SMPP bind)
            continue
        bp.add_url_rule(channel.inbound_path(), f"receive_{channel.name}", receive,
                        methods=["POST"], defaults={"name": channel.name})
        if channel.status_path():
            bp.add_url_rule(channel.status_path(), f"status_{channel.name}", status,
                            methods=["POST"], defaults={"name": channel.name})
    app.register_blueprint(bp)
