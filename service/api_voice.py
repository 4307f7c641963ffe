"""The voice line's webhooks, per channel that speaks Twilio's voice API (Twilio, Somleng):

* ``POST /webhooks/<channel>/voice``: a call comes in (or a call-back is answered:
  ``?callback=<id>``); a beep line's call is rejected.
* ``POST /webhooks/<channel>/voice/step/<step>?turn=<n>``: the caller pressed keys or
  recorded (``&silence=1``: nothing came).
* ``POST /webhooks/<channel>/voice/status``: the call is over (set it as the number's
  status callback at the provider).

Each is signature-checked like the SMS webhook: 403 and nothing stored otherwise.
"""

from __future__ import annotations

import logging

from flask import Blueprint, Response, request

from bot.languages import LANGUAGES
from service import callbacks, voice_calls
from service.channels import twilio_voice
from service.channels.base import BadRequest
from service.inbox import DATABASE_DOWN, Services
from service.webhooks import verified_channel

log = logging.getLogger(__name__)
bp = Blueprint("voice", __name__)


def _parsed():
    try:
        return twilio_voice.parse(request), None
    except BadRequest as exc:
        return None, Response(f"{exc}\n", status=400, mimetype="text/plain")


def _twiml(document: str) -> Response:
    return Response(document, mimetype="text/xml")


def answer(name: str):
    channel = verified_channel(name)
    event, bad = _parsed()
    if bad:
        return bad
    callback = request.args.get("callback")
    callback_id = int(callback) if callback and callback.isdigit() else None
    return _twiml(voice_calls.answer(Services.current(), channel, event, callback_id))


def step(name: str, step_name: str):
    channel = verified_channel(name)
    event, bad = _parsed()
    if bad:
        return bad
    turn = request.args.get("turn", "")
    if not turn.isdigit() or len(step_name) > 40:
        return Response("turn is required\n", status=400, mimetype="text/plain")
    svc = Services.current()
    language = request.args.get("lang")
    document = voice_calls.step(svc, channel, step_name, int(turn), event, request.args.get("silence") == "1",
                                language if language in LANGUAGES else None)
    if document == "":  # the same step is still being answered: ask again in a second
        document = twilio_voice.wait_and_retry(channel.public_base_url + request.full_path)
    return _twiml(document)


def status(name: str):
    verified_channel(name)
    event, bad = _parsed()
    if bad:
        return bad
    svc = Services.current()
    try:
        voice_calls.ended(svc, name, event.call_sid, event.status)
    except DATABASE_DOWN as exc:  # the sweep closes the call after VOICE_CALL_IDLE; its draft is kept
        svc.session.rollback()
        log.error("voice %s: call status not recorded, the database is down (%s)", name, type(exc).__name__)
    return Response(status=204)


@bp.record
def _routes(state) -> None:
    for channel in callbacks.voice_channels(state.app.extensions["channels"]):
        defaults = {"name": channel.name}
        state.add_url_rule(voice_calls.base_path(channel), f"answer_{channel.name}", answer,
                           methods=["POST"], defaults=defaults)
        state.add_url_rule(voice_calls.base_path(channel) + "/step/<step_name>", f"step_{channel.name}", step,
                           methods=["POST"], defaults=defaults)
        state.add_url_rule(voice_calls.status_path(channel), f"status_{channel.name}", status,
                           methods=["POST"], defaults=defaults)
