"""Callers' recordings: the provider's recording callback (POST
/webhooks/<channel>/voice/recording, signed: 403 otherwise), an alert's recordings for
operators (GET /api/v1/alerts/<id>/recordings[/<recording id>], bearer token), and the
signed URL the provider's <Play> fetches (GET /voice/recordings/<id>). Never a phone
number, never the provider's URL (service/recordings.py).
"""

from __future__ import annotations

import logging

from flask import Blueprint, Response, abort, current_app, jsonify, request

from service import alerts, recordings
from service.api import require_token
from service.callbacks import voice_channels
from service.db import get_session
from service.inbox import DATABASE_DOWN
from service.models import Alert, Recording
from service.webhooks import verified_channel

log = logging.getLogger(__name__)
bp = Blueprint("recordings", __name__)
api = Blueprint("api", __name__)
hooks = Blueprint("hooks", __name__)
play = Blueprint("play", __name__)
api.before_request(require_token)


def status_path(channel) -> str:
    return f"/webhooks/{channel.name}/voice/recording"


def status_url(channel, kind: str) -> str:
    """The <Record recordingStatusCallback> of a recording of this kind."""
    return f"{channel.public_base_url}{status_path(channel)}?kind={kind}"


def _error(status: int, message: str):
    return jsonify({"error": message}), status


def _audio(row: Recording, audio: bytes) -> Response:
    answer = Response(audio, mimetype=row.content_type or "application/octet-stream")
    answer.headers["Cache-Control"] = "private, no-store"  # a caller's voice: no copy on the way
    return answer


def recording_status(name: str):
    """The provider's recording callback: the recording is complete (fetch it) or lost."""
    verified_channel(name)
    form = request.form
    if not form.get("RecordingSid") or not form.get("RecordingStatus"):
        return Response("RecordingSid and RecordingStatus are required\n", status=400, mimetype="text/plain")
    session = get_session()
    try:
        recordings.completed(session, current_app.extensions["redis"], name, form["RecordingSid"],
                             form.get("RecordingUrl"), form["RecordingStatus"], form.get("RecordingDuration"),
                             form.get("CallSid"), request.args.get("kind"))
    except ValueError as exc:
        return Response(f"{exc}\n", status=400, mimetype="text/plain")
    except DATABASE_DOWN as exc:  # kept on disk; the sweep applies it once the database is back
        session.rollback()
        log.error("recording callback spooled: the database is down (%s)", type(exc).__name__)
        recordings.spool_callback(current_app.config, name, form, request.args.get("kind"))
    return Response(status=204)


@hooks.record
def _status_routes(state) -> None:
    """One static route per channel that takes calls (a variable voice step cannot shadow it)."""
    for channel in voice_channels(state.app.extensions["channels"]):
        state.add_url_rule(status_path(channel), f"recording_{channel.name}", recording_status,
                           methods=["POST"], defaults={"name": channel.name})


@api.get("/api/v1/alerts/<int:alert_id>/recordings")
def list_recordings(alert_id: int):
    session = get_session()
    if session.get(Alert, alert_id) is None:
        return _error(404, "no such alert")
    found = alerts.recordings_of(session, [alert_id]).get(alert_id, [])
    return jsonify({"recordings": [alerts.recording_json(alert_id, r) for r in found]})


@api.get("/api/v1/alerts/<int:alert_id>/recordings/<int:recording_id>")
def alert_recording(alert_id: int, recording_id: int):
    """The decrypted audio, to an operator holding the token."""
    found = {r.id: r for r in alerts.recordings_of(get_session(), [alert_id]).get(alert_id, [])}
    row = found.get(recording_id)
    if row is None or row.status != "stored":
        return _error(404, "no stored recording of that alert")
    try:
        audio = recordings.read_audio(current_app.config, row)
    except recordings.RecordingUnavailable as exc:
        log.error("%s", exc)
        return _error(404, "the recording cannot be read")
    log.info("recording %s of alert %s read through the API", row.id, alert_id)
    return _audio(row, audio)


@play.get("/voice/recordings/<int:recording_id>")
def play_recording(recording_id: int):
    """The provider's <Play> of a caller's recording (the summary reads back a place name)."""
    args = request.args
    if not recordings.check_signature(recording_id, args.get("expires"), args.get("signature"), current_app.config):
        abort(403)
    row = get_session().get(Recording, recording_id)
    if row is None or row.status != "stored":
        abort(404)
    try:
        return _audio(row, recordings.read_audio(current_app.config, row))
    except recordings.RecordingUnavailable as exc:
        log.error("%s", exc)
        abort(404)


bp.register_blueprint(api)
bp.register_blueprint(hooks)
bp.register_blueprint(play)
