"""Twilio's voice webhooks (and Somleng's, the same TwiML and signatures at its own base
URL): what a call's request says, and a dialogue step (bot/voice.py) as TwiML.

Nothing outside this module knows TwiML or the voice webhooks' field names:
service/voice_calls.py hands over a Step and three URLs and gets a document back.

* A menu or a number is a ``<Gather>`` around what it says (a key interrupts the
  prompt), then a ``<Redirect>`` to the same step marked as a silence: a Gather that
  hears nothing falls through to the next verb, and Somleng has no actionOnEmptyResult.
* A recording is a ``<Record>`` (the provider's beep, ``#`` ends it, a silence ends it)
  with the recording callback, then the same silence ``<Redirect>``: an empty recording
  does not call the action either.
* Every piece is a ``<Play>`` of an absolute URL (a prompt's signed URL, a caller's
  recording); ``<Say>`` only for a language the channel lists in ``say_languages`` and
  only when the prompt has no audio at all.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from flask import Request
from twilio.twiml.voice_response import VoiceResponse

from bot.gsm7 import safe_text
from bot.voice import Gather, Piece, Record, Step
from service.channels.base import BadRequest
from service.privacy import InvalidNumber, normalise

RECORDING_EVENTS = "completed absent"
SILENCE_PAUSE = 1  # s of quiet before a silence is reported (the provider's own timeout ran already)


@dataclass(frozen=True)
class CallEvent:
    """One voice webhook: who called which line (the number normalised, or None when it
    is withheld), the call's status, and what the caller did at this step."""

    call_sid: str
    caller: str | None
    line: str | None
    status: str | None
    direction: str | None
    digits: str | None = None
    recording_sid: str | None = None
    recording_url: str | None = None
    recording_seconds: int | None = None
    duration: int | None = None


def parse(request: Request) -> CallEvent:
    """The call's fields; raises BadRequest without a CallSid. A call-back's From is our
    line and its To the reporter: the caller is always the other end."""
    form = request.form
    sid = form.get("CallSid")
    if not sid or len(sid) > 64:
        raise BadRequest("CallSid is required")
    outbound = (form.get("Direction") or "").startswith("outbound")
    caller, line = (form.get("To"), form.get("From")) if outbound else (form.get("From"), form.get("To"))
    try:
        caller = normalise(caller) if caller else None
    except InvalidNumber:  # withheld ("anonymous", "+266696687"), a SIP address: no call-back
        caller = None
    recording_sid = form.get("RecordingSid") or None
    if recording_sid and len(recording_sid) > 64:
        raise BadRequest("RecordingSid is too long")
    return CallEvent(call_sid=sid, caller=caller, line=(line or "")[:32] or None,
                     status=(form.get("CallStatus") or "").lower() or None, direction=form.get("Direction"),
                     digits=form.get("Digits"), recording_sid=recording_sid,
                     recording_url=form.get("RecordingUrl") or None,
                     recording_seconds=_int(form.get("RecordingDuration")), duration=_int(form.get("CallDuration")))


def _int(value) -> int | None:
    try:
        return max(0, int(value))
    except (TypeError, ValueError):
        return None


# --- TwiML ------------------------------------------------------------------------------

Sound = Callable[[Piece], "tuple[str, str] | None"]  # ("play", url) | ("say:<locale>", text) | None


@dataclass(frozen=True)
class Targets:
    """Where the provider posts after this step: its action, the same step as a
    silence, and the recording callback."""

    action: str
    silence: str
    recording_callback: str


def render(step: Step, targets: Targets, sound: Sound) -> str:
    """The TwiML of one step."""
    twiml = VoiceResponse()
    if step.end or step.collect is None:
        _say(twiml, step.say, sound)
        twiml.hangup()
    elif isinstance(step.collect, Gather):
        collect = step.collect
        gather = twiml.gather(action=targets.action, method="POST", timeout=collect.timeout,
                              num_digits=collect.max_digits if not collect.finish_on_hash else None,
                              finish_on_key="#" if collect.finish_on_hash else "")
        _say(gather, step.say, sound)
        twiml.pause(length=SILENCE_PAUSE)
        twiml.redirect(targets.silence, method="POST")
    elif isinstance(step.collect, Record):
        _say(twiml, step.say, sound)
        twiml.record(action=targets.action, method="POST", max_length=step.collect.max_seconds,
                     timeout=step.collect.silence_timeout, finish_on_key="#", play_beep=True, trim="trim-silence",
                     recording_status_callback=targets.recording_callback, recording_status_callback_method="POST",
                     recording_status_callback_event=RECORDING_EVENTS)
        twiml.redirect(targets.silence, method="POST")
    else:
        raise TypeError(f"cannot render {step.collect!r}")
    return str(twiml)


def _say(verb, pieces, sound: Sound) -> None:
    for piece in pieces:
        found = sound(piece)
        if found is None:
            continue
        how, what = found
        if how == "play":
            verb.play(what)
        else:
            verb.say(safe_text(what), language=how.split(":", 1)[1])


def reject() -> str:
    """Refuse the call unanswered: the caller pays nothing (a beep line)."""
    twiml = VoiceResponse()
    twiml.reject()
    return str(twiml)


def wait_and_retry(url: str) -> str:
    """The same step is still being answered (a provider's retry): a second's quiet, then again."""
    twiml = VoiceResponse()
    twiml.pause(length=1)
    twiml.redirect(url, method="POST")
    return str(twiml)


def hang_up() -> str:
    twiml = VoiceResponse()
    twiml.hangup()
    return str(twiml)
