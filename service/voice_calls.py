"""The voice line's calls: the keypad dialogue (bot/voice.py) kept per call, its answers
saved as a draft alert at every step, and the provider's webhooks made idempotent.

* **Stored before it is processed**: each webhook is a CallStep row, keyed by the call,
  the step and its turn (the URL names both), committed before the dialogue moves. A
  provider's retry of a step gets the TwiML given the first time; a retry arriving while
  the first is still being answered waits a second and asks again.
* **Nothing lost**: the call's draft alert (channel "voice", draft_key "voice:<provider>:
  <CallSid>") is saved at every step that captured something, with its recordings
  linked. A call that drops before the confirmation leaves that draft "incomplete"
  (the provider's status callback, or the sweep after VOICE_CALL_IDLE). A confirmed one
  becomes "new" with a reference the caller hears digit by digit.
* **When the dialogue cannot run** (the database down, an error, a step slower than
  VOICE_STEP_BUDGET) the caller is not left in silence: the answer is the fallback,
  recording the whole report, said in the caller's language when known. Its recording
  arrives at the step "fallback" and is kept as a report of its own.
* **Missed calls**: a call to a beep line is rejected unanswered (no charge to the caller)
  and a call-back is requested; so is a call that ends before any key was asked for.
* **Privacy**: no number in a row, a log or a URL; a caller is their reporter row.
"""

from __future__ import annotations

import concurrent.futures
import logging
import time
from datetime import datetime, timedelta, timezone

from flask import current_app
from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError, SQLAlchemyError
from sqlalchemy.orm import Session

from bot import voice
from bot.answers import menu_time
from bot.flow import alert_flow
from bot.places import default_gazetteer
from service import alerts, callbacks, prompts, reporters
from service.channels import twilio_voice
from service.channels.twilio_voice import CallEvent, Targets
from service.models import Alert, Call, CallStep, Recording, Reporter, utcnow

log = logging.getLogger(__name__)
ANSWER = "answer"
FALLBACK = "fallback"
ACTIVE = ("active", FALLBACK)
ENDED_STATUSES = ("completed", "busy", "no-answer", "failed", "canceled")
RETRY_WAIT = 2.0  # s a provider's retry waits for the first request of the same step
_pool = concurrent.futures.ThreadPoolExecutor(max_workers=8, thread_name_prefix="voice-step")


def draft_key(provider: str, call_sid: str) -> str:
    return f"voice:{provider}:{call_sid}"


def step_key(turn: int, name: str) -> str:
    return f"{turn}:{name}"[:64]


# --- where the provider posts --------------------------------------------------------------

def base_path(channel) -> str:
    return f"/webhooks/{channel.name}/voice"


def step_path(channel) -> str:
    return base_path(channel) + "/step/<name>"


def status_path(channel) -> str:
    return base_path(channel) + "/status"


def targets(channel, name: str, turn: int, language: str | None = None) -> Targets:
    """The step's URLs; the language rides along, so a fallback (when even the call's
    row cannot be read) still speaks the caller's language."""
    base = channel.public_base_url + base_path(channel)
    action = f"{base}/step/{name}?turn={turn}" + (f"&lang={language}" if language else "")
    kind = name if name in ("place-name", FALLBACK) else "message"  # what a recording made here is
    return Targets(action=action, silence=action + "&silence=1", recording_callback=f"{base}/recording?kind={kind}")


# --- the webhooks ---------------------------------------------------------------------------

def answer(svc, channel, event: CallEvent, callback_id: int | None = None) -> str:
    """The first webhook of a call: reject a beep, else the first menu."""
    if callback_id is None and event.line and callbacks.is_beep_line(event.line, svc.channels, svc.config):
        return _beep(svc, channel, event)
    try:
        return _within_budget(svc, _answer, channel, event, callback_id)
    except Exception as exc:  # noqa: BLE001 - the caller is never left in silence
        log.error("voice %s: answering call failed (%s): recording the report instead", channel.name,
                  type(exc).__name__)
        return _fallback(channel, None)


def step(svc, channel, name: str, turn: int, event: CallEvent, silence: bool, language: str | None = None) -> str:
    """A later webhook: the caller pressed keys, recorded, or said nothing."""
    try:
        return _within_budget(svc, _step, channel, name, turn, event, silence)
    except Exception as exc:  # noqa: BLE001
        log.error("voice %s: step %s failed (%s): recording the report instead", channel.name, name,
                  type(exc).__name__)
        if name == FALLBACK and event.recording_sid:  # not even the fallback's recording could be
            # stored: it stays at the provider, and its recording callback brings it in later
            thanks = voice.advance(alert_flow(), voice.fallback_record(language).state, voice.Recorded("-", 1))
            return twilio_voice.render(thanks, targets(channel, thanks.step, thanks.turn, language),
                                       _sound(svc.config, channel, None))
        return _fallback(channel, language)


def ended(svc, provider: str, call_sid: str, status: str | None) -> Call | None:
    """The provider says a call is over: a call not confirmed leaves its partial alert
    "incomplete"; a call with no key asked for is called back (if it came in)."""
    if status not in ENDED_STATUSES:
        return None
    session = svc.session
    call = session.scalar(select(Call).where(Call.provider == provider, Call.call_sid == call_sid)
                          .with_for_update().execution_options(populate_existing=True))
    if call is None or call.status not in ACTIVE:
        session.rollback()
        return call
    _close(session, call, "dropped")
    session.commit()
    if call.direction == "in" and call.turn == 0 and call.reporter_id and call.line:
        reporter = session.get(Reporter, call.reporter_id)
        callbacks.request_callback(session, svc.redis, reporter, call.line, "hung_up",
                                   identity=svc.identity, channels=svc.channels, config=svc.config)
    return call


def adopt_fallback(session: Session, recording: Recording) -> Alert:
    """A fallback recording is a report, even one the call's own webhooks could not store
    (the database was down): its call's alert (with what the keys captured before), or a
    new one, becomes "new" with the recording. Idempotent."""
    call = session.get(Call, recording.call_id) if recording.call_id else None
    key = call.draft_key if call is not None else f"voice:{recording.provider}:rec:{recording.recording_sid}"
    alert = session.get(Alert, recording.alert_id) if recording.alert_id else \
        session.scalar(select(Alert).where(Alert.draft_key == key))
    if alert is None:
        reporter_key = session.scalar(select(Reporter.key).where(Reporter.id == call.reporter_id)) \
            if call is not None and call.reporter_id else None
        alert = alerts.save_draft(session, key, reporter_key,
                                  alerts.DraftFields(language=call.language if call else None, channel="voice"))
    recording.alert_id = recording.alert_id or alert.id
    if call is not None:
        call.alert_id = call.alert_id or alert.id
        if call.status in ACTIVE or call.status == "dropped":
            call.status, call.ended_at = "submitted", call.ended_at or utcnow()
    if alert.status in ("draft", "incomplete"):
        alerts.submit(session, alert.draft_key)
    session.commit()
    return alert


def sweep(svc) -> int:
    """Calls no webhook has touched for VOICE_CALL_IDLE: dropped (the status callback was lost)."""
    session = svc.session
    cutoff = utcnow() - timedelta(seconds=svc.config["VOICE_CALL_IDLE"])
    stale = session.scalars(select(Call).where(Call.status.in_(ACTIVE), Call.updated_at < cutoff).limit(200)).all()
    for call in stale:
        _close(session, call, "dropped")
    session.commit()
    return len(stale)


# --- inside the budget -------------------------------------------------------------------

def _within_budget(svc, function, *args) -> str:
    """Run one webhook's work in a thread with its own session and app context; past
    VOICE_STEP_BUDGET the caller gets the fallback while the work finishes or fails."""
    app = current_app._get_current_object()
    budget = float(svc.config["VOICE_STEP_BUDGET"])

    def work():
        with app.app_context():
            from service.inbox import Services
            inner = Services.current()
            try:
                return function(inner, *args)
            except BaseException:
                inner.session.rollback()
                raise

    future = _pool.submit(work)
    try:
        return future.result(timeout=budget)
    except concurrent.futures.TimeoutError:
        raise TimeoutError(f"no answer within {budget:.1f} s") from None


def _answer(svc, channel, event: CallEvent, callback_id: int | None) -> str:
    session = svc.session
    call = _find(session, channel.name, event.call_sid)
    if call is None:
        reporter = reporters.seen(session, svc.identity, event.caller) if event.caller else None
        language = (reporter.language or reporter.detected_language) if reporter else None
        call = Call(provider=channel.name, call_sid=event.call_sid, reporter_id=reporter.id if reporter else None,
                    line=event.line, direction="callback" if callback_id else "in", callback_id=callback_id,
                    language=language, turn=0, status="active", draft_key=draft_key(channel.name, event.call_sid))
        session.add(call)
        try:
            with session.begin_nested():
                session.flush()
        except IntegrityError:  # the same call answered twice at once
            call = _find(session, channel.name, event.call_sid)
    key = step_key(0, ANSWER)
    done = _stored(session, call, key)
    if done is not None:
        session.rollback()
        return done
    if callback_id:
        session.commit()
        callbacks.mark_answered(session, callback_id, event.call_sid)
    first = voice.start(alert_flow(), call.language, default_gazetteer())
    return _save(svc, channel, call, key, {"answer": True}, first)


def _step(svc, channel, name: str, turn: int, event: CallEvent, silence: bool) -> str:
    session = svc.session
    call = _find(session, channel.name, event.call_sid, lock=True)
    if call is None:
        if name != FALLBACK:
            raise LookupError("a step of a call we never answered")
        call = Call(provider=channel.name, call_sid=event.call_sid, line=event.line, direction="in", turn=0,
                    status=FALLBACK, state=voice.fallback_record(None).state,
                    draft_key=draft_key(channel.name, event.call_sid))
        if event.caller:
            call.reporter_id = reporters.seen(session, svc.identity, event.caller).id
        session.add(call)
        session.flush()
    key = step_key(turn, name)
    done = _stored(session, call, key)
    if done is not None:
        session.rollback()
        return done
    happened = {"digits": (event.digits or "")[:16], "silence": silence,
                "recording": event.recording_sid, "seconds": event.recording_seconds}
    state = call.state
    if name == FALLBACK and (call.status != FALLBACK or (call.state or {}).get("step") != FALLBACK):
        # the fallback was answered while the dialogue was away: its recording is the report
        state = voice.fallback_record(call.language, (call.state or {}).get("captured")).state
        call.status = FALLBACK
    elif state is None or (state["step"], state["turn"]) != (name, turn):
        # a late webhook of an earlier step: say the current step again
        last = _last_response(session, call)
        if last is not None:
            session.rollback()
            return last
        raise LookupError("a step that is neither the current one nor answered")
    happened_event = _event(svc, channel, call, state, event, silence)
    following = voice.advance(alert_flow(), state, happened_event, default_gazetteer())
    return _save(svc, channel, call, key, happened, following)


def _event(svc, channel, call: Call, state: dict, event: CallEvent, silence: bool):
    if silence:
        return voice.Silence()
    if event.recording_sid:
        from service import recordings
        kind = state["step"] if state["step"] in ("place-name", FALLBACK) else "message"
        row = recordings.noted(svc.session, channel.name, event.recording_sid, event.recording_url,
                               event.recording_seconds, kind, call_id=call.id, alert_id=call.alert_id)
        return voice.Recorded(str(row.id), event.recording_seconds or 0)
    return voice.Pressed(event.digits or "")


def _save(svc, channel, call: Call, key: str, happened: dict, following: voice.Step) -> str:
    """Store the step and its answer with the call's new state and draft, in one commit:
    the step row first, so a retry of the same webhook finds it."""
    session = svc.session
    row = CallStep(call_id=call.id, key=key, event=happened)
    session.add(row)
    session.flush()
    if following.submit:
        alert = _draft(svc, call, following)
        alert = alerts.submit(session, call.draft_key) or alert
        call.alert_id, call.status = alert.id, "submitted"
        following = voice.submitted(following.state, alert.reference)
    elif following.captured and set(following.captured) - {"language"}:
        call.alert_id = _draft(svc, call, following).id
    if following.end and following.step == "fallback-done":  # the recording is the report
        if call.alert_id:
            alerts.submit(session, call.draft_key)
        call.status, call.ended_at = "submitted", utcnow()
    elif following.end and following.step != "done":  # hung up, or silent where it cannot go on
        _close(session, call, "dropped" if following.step == "hangup" else "ended")
    if following.language and not call.language and call.reporter_id:  # chosen on the keypad: stated,
        reporter = session.get(Reporter, call.reporter_id)          # so the next call skips the menu
        if reporter is not None and not reporter.language:
            reporters.set_language(session, reporter, following.language)
    call.state, call.step, call.turn = following.state, following.step, following.turn
    call.language = following.language or call.language
    call.updated_at = utcnow()
    row.response = twilio_voice.render(following, targets(channel, following.step, following.turn, following.language),
                                       _sound(svc.config, channel, call))
    session.commit()
    return row.response


def _draft(svc, call: Call, current: voice.Step) -> Alert:
    """The call's alert from what it captured (the same columns as an SMS report)."""
    session = svc.session
    captured = current.captured
    when = captured.get("occurred_at")
    if isinstance(when, dict) and when.get("option") and not when.get("at") and when["option"] != "earlier":
        when.update(menu_time(when["option"], datetime.now(timezone.utc)))  # kept in the state: stable
    fields = alerts.DraftFields(language=current.language, channel="voice")
    fields.category = captured.get("category")
    if captured.get("place"):
        fields.place = default_gazetteer().get(captured["place"])
    if isinstance(when, dict):
        fields.occurred_at = datetime.fromisoformat(when["at"]) if when.get("at") else None
        fields.occurred_text = when.get("option")
    people = captured.get("people_affected")
    if isinstance(people, dict):
        fields.people_affected, fields.people_many = people.get("n"), bool(people.get("many"))
    reporter_key = session.scalar(select(Reporter.key).where(Reporter.id == call.reporter_id)) \
        if call.reporter_id else None
    alert = alerts.save_draft(session, call.draft_key, reporter_key, fields)
    refs = [int(v) for k, v in captured.items() if k.endswith("_recording") and str(v).isdigit()]
    if refs:
        session.execute(update(Recording).where(Recording.id.in_(refs), Recording.alert_id.is_(None))
                        .values(alert_id=alert.id).execution_options(synchronize_session=False))
    return alert


def _close(session: Session, call: Call, status: str) -> None:
    """A call is over before its end: its draft is kept as an incomplete alert."""
    call.status, call.ended_at, call.updated_at = status, utcnow(), utcnow()
    if call.alert_id:
        session.execute(update(Alert).where(Alert.id == call.alert_id, Alert.status == "draft")
                        .values(status="incomplete", updated_at=utcnow()))


def _beep(svc, channel, event: CallEvent) -> str:
    """A missed call on a beep line: refused unanswered, then called back."""
    if event.caller:
        try:
            callbacks.request_callback(svc.session, svc.redis, event.caller, event.line, "beep",
                                       identity=svc.identity, channels=svc.channels, config=svc.config)
        except (SQLAlchemyError, OSError) as exc:
            svc.session.rollback()
            log.error("voice %s: a beep could not be queued for a call-back (%s)", channel.name, type(exc).__name__)
    return twilio_voice.reject()


def _fallback(channel, language: str | None) -> str:
    """Record the report: the dialogue cannot run (nothing read from storage for it)."""
    first = voice.fallback_record(language)
    return twilio_voice.render(first, targets(channel, FALLBACK, first.turn, first.language),
                               _sound(current_app.config, channel, None))


# --- storage helpers ----------------------------------------------------------------------

def _find(session: Session, provider: str, call_sid: str, lock: bool = False) -> Call | None:
    query = select(Call).where(Call.provider == provider, Call.call_sid == call_sid)
    if lock:
        query = query.with_for_update()
    return session.scalar(query.execution_options(populate_existing=True))


def _stored(session: Session, call: Call, key: str) -> str | None:
    """The answer already given to this step, or a "wait and ask again" while the first
    request of it is still being answered; None if this is the first."""
    row = session.scalar(select(CallStep).where(CallStep.call_id == call.id, CallStep.key == key))
    if row is None:
        return None
    deadline = time.monotonic() + RETRY_WAIT
    while row.response is None and time.monotonic() < deadline:
        session.rollback()
        time.sleep(0.2)
        row = session.scalar(select(CallStep).where(CallStep.id == row.id).execution_options(populate_existing=True))
    return row.response if row.response is not None else ""


def _last_response(session: Session, call: Call) -> str | None:
    return session.scalar(select(CallStep.response).where(CallStep.call_id == call.id, CallStep.response.is_not(None))
                          .order_by(CallStep.id.desc()).limit(1))


# --- sounds ---------------------------------------------------------------------------------

def _sound(config, channel, call: Call | None):
    """How each piece is heard: a prompt's signed URL; a caller's recording's URL; <Say>
    for a prompt with no audio in a language the channel's provider speaks."""
    say_languages = channel.settings.get("say_languages") or {}

    def sound(piece: voice.Piece):
        if piece.recording is not None:
            from service import recordings
            from service.db import get_session
            row = get_session().get(Recording, int(piece.recording)) if str(piece.recording).isdigit() else None
            url = recordings.play_url(row, config) if row is not None else None
            return ("play", url) if url else None
        url = prompts.signed_url(piece.prompt, piece.lang, config)
        if url:
            return ("play", url)
        locale = say_languages.get(piece.lang) if isinstance(say_languages, dict) else None
        if locale:
            try:
                return (f"say:{locale}", voice.prompt_text(piece.prompt, piece.lang))
            except KeyError:
                return None
        log.warning("voice: prompt %s/%s has no audio", piece.lang, piece.prompt)
        return None

    return sound
