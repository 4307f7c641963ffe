"""Voice prompts for operators (same bearer token as the alerts API), and for the provider.

Operators upload a recording per language and prompt id, list what is recorded, only a
placeholder or missing, and listen to what the line plays. The provider's <Play> cannot
send our token: it fetches ``/voice/prompts/...`` by a URL signed with ``prompts.signed_url``.
"""

from __future__ import annotations

from flask import Blueprint, abort, current_app, jsonify, request, send_file

from service import api, prompts

bp = Blueprint("prompts", __name__)
PLAY = "prompts.play"  # the provider's route: signed, no bearer token


def _error(status: int, message: str):
    return jsonify({"error": message}), status


@bp.before_request
def _operators_only():
    return None if request.endpoint == PLAY else api.require_token()


def _checked(language: str, prompt_id: str):
    """An error answer for an id or language that cannot be a prompt, else None."""
    try:
        prompts.check_id(prompt_id, language)
    except prompts.PromptError as exc:
        return _error(404 if language not in prompts.LANGUAGES else 400, str(exc))
    return None


def _audio(found: prompts.Resolved, max_age: int | None = None):
    answer = send_file(found.path, mimetype=found.mimetype, conditional=True, max_age=max_age)
    answer.headers["X-Prompt-Source"] = "placeholder" if found.placeholder else "recording"
    return answer


@bp.get("/api/v1/prompts")
def list_prompts():
    store = prompts.store()
    return jsonify({"languages": {lang: prompts.inventory(lang, store).as_json() for lang in prompts.LANGUAGES}})


@bp.get("/api/v1/prompts/<language>/<path:prompt_id>")
def listen(language: str, prompt_id: str):
    problem = _checked(language, prompt_id)
    if problem:
        return problem
    found = prompts.resolve(prompt_id, language)
    if found is None:
        return _error(404, "no recording and no placeholder for this prompt")
    return _audio(found, max_age=0)


@bp.put("/api/v1/prompts/<language>/<path:prompt_id>")
def upload(language: str, prompt_id: str):
    """The body is the audio itself (WAV PCM or MP3), whatever its Content-Type says."""
    problem = _checked(language, prompt_id)
    if problem:
        return problem
    if prompt_id not in prompts.prompt_ids():
        return _error(404, "the voice line has no prompt with this id (GET /api/v1/prompts lists them)")
    limit = current_app.config["PROMPT_UPLOAD_MAX"]
    request.max_content_length = limit  # before the body is read; above it Flask answers 413
    data = request.get_data(cache=False)
    store = prompts.store()
    replaced = store.recording(prompt_id, language) is not None
    try:
        ext, seconds = store.save(prompt_id, language, data, limit)
    except prompts.PromptError as exc:
        return _error(413 if len(data) > limit else 400, str(exc))
    current_app.logger.info("prompt recording %s %s uploaded (%s, %.1f s)", language, prompt_id, ext, seconds)
    return jsonify({"language": language, "prompt_id": prompt_id, "format": ext, "seconds": seconds,
                    "bytes": len(data), "replaced": replaced}), 200 if replaced else 201


@bp.delete("/api/v1/prompts/<language>/<path:prompt_id>")
def remove(language: str, prompt_id: str):
    """Delete a recording: the placeholder plays again."""
    problem = _checked(language, prompt_id)
    if problem:
        return problem
    if not prompts.store().delete(prompt_id, language):
        return _error(404, "no recording for this prompt")
    return "", 204


@bp.get("/voice/prompts/<language>/<path:prompt_id>")
def play(language: str, prompt_id: str):
    """The audio for the provider's <Play>, by a signed URL that expires."""
    if _checked(language, prompt_id):
        abort(404)
    if not prompts.check_signature(prompt_id, language, request.args.get("expires"),
                                   request.args.get("signature"), current_app.config):
        return _error(403, "missing, wrong or expired signature")
    found = prompts.resolve(prompt_id, language)
    if found is None:
        abort(404)
    return _audio(found, max_age=current_app.config["PROMPT_URL_TTL"])
