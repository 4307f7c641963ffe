"""The voice line's webhooks on real SQLite and PostgreSQL and real Redis: signed
requests as Twilio posts them, and every answer parsed as a TwiML document and followed
the way the provider would (the Gather's action with the keys, the Redirect on a
silence, the Record's action with the recording).

What a step says is read from its <Play> URLs (the prompts' signed URLs name the prompt
and the language), so a call is checked against the prompt ids of bot/voice.py.
"""

from __future__ import annotations

import uuid
import wave
import xml.etree.ElementTree as ET
from io import BytesIO
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
from sqlalchemy import func, select

from bot import voice
from bot.flow import alert_flow
from bot.places import default_gazetteer
from service import voice_calls
from service.models import Alert, Call, CallbackRequest, CallStep, Recording, Reporter
from tests.conftest import ACCOUNT_SID, PUBLIC_BASE_URL, REPORTER

LINE = "+243970000100"  # the toll-free line
BEEP_LINE = "+243970000300"
PROMPT_PATH = "/voice/prompts/"


def _silent_wav() -> bytes:
    out = BytesIO()
    with wave.open(out, "wb") as w:
        w.setnchannels(1), w.setsampwidth(2), w.setframerate(8000)
        w.writeframes(b"\0\0" * 800)
    return out.getvalue()


@pytest.fixture(scope="session")
def prompt_cache(tmp_path_factory):
    """A placeholder for every prompt the flow can play, in each language (no espeak-ng)."""
    folder = tmp_path_factory.mktemp("prompts")
    audio = _silent_wav()
    ids = voice.prompt_ids(alert_flow(), default_gazetteer())
    for lang in ("fr", "sw", "ln"):
        (folder / lang).mkdir()
        for prompt_id in ids:
            (folder / lang / f"{prompt_id}.wav").write_bytes(audio)
    return folder


@pytest.fixture
def app_config(app_config, prompt_cache, tmp_path):
    return {**app_config, "PROMPT_CACHE_DIR": str(prompt_cache), "PROMPT_RECORDINGS_DIR": str(tmp_path / "none"),
            "BEEP_NUMBERS": BEEP_LINE, "CALLBACK_RATE": 0, "RECORDINGS_DIR": str(tmp_path / "recordings")}


def document(response) -> ET.Element:
    assert response.status_code == 200, response.data
    assert response.mimetype == "text/xml"
    root = ET.fromstring(response.data)
    assert root.tag == "Response"
    return root


class Phone:
    """One caller's phone on the line, as Twilio drives the webhooks."""

    def __init__(self, client, sign, number: str | None = REPORTER, line: str = LINE, outbound: bool = False):
        self.client, self.sign, self.number, self.line, self.outbound = client, sign, number, line, outbound
        self.sid = f"CA{uuid.uuid4().hex}"
        self.doc: ET.Element | None = None
        self.responses = []

    def post(self, url: str, **fields):
        ends = {"From": self.number or "anonymous", "To": self.line, "Direction": "inbound"}
        if self.outbound:  # a call-back: from our line to the reporter
            ends = {"From": self.line, "To": self.number, "Direction": "outbound-api"}
        params = {"CallSid": self.sid, "AccountSid": ACCOUNT_SID, "CallStatus": "in-progress", **ends, **fields}
        assert url.startswith(PUBLIC_BASE_URL)
        response = self.client.post(url[len(PUBLIC_BASE_URL):], data=params,
                                    headers={"X-Twilio-Signature": self.sign(url, params)})
        self.responses.append(response)
        return response

    def dial(self, query: str = ""):
        response = self.post(f"{PUBLIC_BASE_URL}/webhooks/twilio/voice{query}", CallStatus="ringing")
        self.doc = document(response)
        return self.doc

    def press(self, keys: str):
        gather = self.doc.find("Gather")
        assert gather is not None, ET.tostring(self.doc)
        self.doc = document(self.post(gather.get("action"), Digits=keys))
        return self.doc

    def silence(self):
        redirect = self.doc.find("Redirect")
        assert redirect is not None and redirect.get("method") == "POST"
        self.doc = document(self.post(redirect.text))
        return self.doc

    def record(self, seconds: int = 6) -> str:
        record = self.doc.find("Record")
        assert record is not None, ET.tostring(self.doc)
        assert record.get("recordingStatusCallback").startswith(f"{PUBLIC_BASE_URL}/webhooks/twilio/voice/recording?kind=")
        sid = f"RE{uuid.uuid4().hex}"
        url = f"https://api.twilio.com/2010-04-01/Accounts/{ACCOUNT_SID}/Recordings/{sid}"
        self.doc = document(self.post(record.get("action"), RecordingSid=sid, RecordingUrl=url,
                                      RecordingDuration=str(seconds), Digits="#"))
        return sid

    def hang_up(self, status: str = "completed"):
        return self.post(f"{PUBLIC_BASE_URL}/webhooks/twilio/voice/status", CallStatus=status, CallDuration="40")

    def heard(self, doc: ET.Element | None = None) -> list[str]:
        """The prompt ids played, in order; a caller's own recording as "rec"."""
        doc = self.doc if doc is None else doc
        out = []
        for play in doc.iter("Play"):
            path = urlsplit(play.text).path
            out.append(path[len(PROMPT_PATH):].split("/", 1)[1] if path.startswith(PROMPT_PATH) else "rec")
        return out

    def languages(self) -> set[str]:
        return {urlsplit(p.text).path[len(PROMPT_PATH):].split("/", 1)[0]
                for p in self.doc.iter("Play") if urlsplit(p.text).path.startswith(PROMPT_PATH)}

    @property
    def ended(self) -> bool:
        return self.doc.find("Hangup") is not None and self.doc.find("Gather") is None


@pytest.fixture
def phone(client, sign):
    return lambda number=REPORTER, line=LINE, outbound=False: Phone(client, sign, number, line, outbound)


def call_row(db, phone_) -> Call:
    return db.scalar(select(Call).where(Call.call_sid == phone_.sid).execution_options(populate_existing=True))


def alert_of(db, phone_) -> Alert | None:
    call = call_row(db, phone_)
    return db.get(Alert, call.alert_id, populate_existing=True) if call and call.alert_id else None


# --- whole calls ---------------------------------------------------------------------------

CALLS = {  # language key, then the form: attack, North Kivu, Beni, place name, yesterday, 12 hurt, message
    "fr": "1", "sw": "2", "ln": "3",
}


@pytest.mark.parametrize("lang", ["fr", "sw", "ln"])
def test_a_complete_call_in_each_language(db, phone, lang):
    p = phone()
    doc = p.dial()
    gather = doc.find("Gather")
    assert gather.get("numDigits") == "1" and gather.get("finishOnKey") == ""
    assert p.heard()[:3] == ["voice.language", "voice.press", "voice.digit.1"]
    assert p.languages() == {"fr", "sw", "ln"}
    p.press(CALLS[lang])
    assert p.heard()[:2] == ["voice.welcome", "voice.keys_help"] and p.languages() == {lang}
    assert "voice.ask_category" in p.heard()
    p.press("1")  # attack
    assert p.heard()[0] == "voice.ask_province"
    p.press("2")  # North Kivu (CD61)
    assert p.heard()[0] == "voice.ask_territory"
    p.press("3")  # Beni (CD6103)
    assert p.heard() == ["voice.record_place"]
    assert p.doc.find("Record").get("maxLength") == "15"
    place_sid = p.record(4)
    assert p.heard()[0] == "voice.ask_when"
    p.press("4")  # yesterday
    assert p.heard()[0] == "voice.ask_people_hurt"
    gather = p.doc.find("Gather")
    assert gather.get("finishOnKey") == "#" and gather.get("numDigits") is None
    p.press("12#")
    assert p.heard() == ["voice.record_message"]
    message_sid = p.record(30)
    summary = p.heard()
    assert summary[:3] == ["voice.summary", "field.category", "category.ATTACK"]
    assert "place.CD6103" in summary and "rec" in summary  # the recorded place name is played back
    assert ["field.people_affected", "voice.digit.1", "voice.digit.2"] == \
        summary[summary.index("field.people_affected"):summary.index("field.people_affected") + 3]
    p.press("1")  # yes
    assert p.ended
    heard = p.heard()
    assert heard[0] == "voice.thanks" and heard[1] == "voice.reference_is"

    alert = alert_of(db, p)
    assert alert.status == "new" and alert.channel == "voice" and alert.language == lang
    assert alert.category == "ATTACK" and alert.place.key == "CD6103" and alert.people_affected == 12
    assert alert.occurred_text == "yesterday" and alert.occurred_at is not None
    digits = [h[len("voice.digit."):] for h in heard[2:2 + len(alert.reference)]]
    assert "".join(digits) == alert.reference  # read out digit by digit
    recordings = db.scalars(select(Recording).where(Recording.alert_id == alert.id)).all()
    assert {(r.recording_sid, r.kind) for r in recordings} == {(place_sid, "place-name"), (message_sid, "message")}
    call = call_row(db, p)
    assert call.status == "submitted" and call.reporter_id == alert.reporter_id
    reporter = db.get(Reporter, call.reporter_id)
    assert REPORTER not in (reporter.phone_encrypted or "")
    # every webhook was stored, with the answer it got
    steps = db.scalars(select(CallStep).where(CallStep.call_id == call.id).order_by(CallStep.id)).all()
    assert len(steps) == len(p.responses) and all(s.response for s in steps)
    assert [s.event.get("digits") for s in steps[1:4]] == [CALLS[lang], "1", "2"]


def test_a_known_caller_skips_the_language_menu(db, phone, app):
    with app.app_context():
        from service.inbox import Services
        from service import reporters
        svc = Services.current()
        reporter = reporters.seen(svc.session, svc.identity, REPORTER)
        reporter.language = "sw"
        svc.session.commit()
    p = phone()
    p.dial()
    assert p.heard()[:2] == ["voice.welcome", "voice.keys_help"] and p.languages() == {"sw"}


def test_unsigned_or_forged_requests_are_refused_and_store_nothing(db, client, sign):
    params = {"CallSid": "CA" + "1" * 32, "From": REPORTER, "To": LINE, "CallStatus": "ringing"}
    for headers in ({}, {"X-Twilio-Signature": "forged"},
                    {"X-Twilio-Signature": sign(f"{PUBLIC_BASE_URL}/webhooks/twilio/voice", {**params, "To": "x"})}):
        assert client.post("/webhooks/twilio/voice", data=params, headers=headers).status_code == 403
        assert client.post("/webhooks/twilio/voice/step/category-1?turn=1", data={**params, "Digits": "1"},
                           headers=headers).status_code == 403
        assert client.post("/webhooks/twilio/voice/status", data=params, headers=headers).status_code == 403
    assert db.scalar(select(func.count()).select_from(Call)) == 0
    assert db.scalar(select(func.count()).select_from(Reporter)) == 0


def test_a_request_without_a_call_sid_is_a_bad_request(client, sign):
    params = {"From": REPORTER, "To": LINE}
    url = f"{PUBLIC_BASE_URL}/webhooks/twilio/voice"
    response = client.post("/webhooks/twilio/voice", data=params, headers={"X-Twilio-Signature": sign(url, params)})
    assert response.status_code == 400


# --- idempotency ----------------------------------------------------------------------------

def test_a_retried_step_gets_the_same_answer_and_moves_nothing(db, phone):
    p = phone()
    p.dial()
    gather = p.doc.find("Gather")
    first = p.post(gather.get("action"), Digits="1")
    again = p.post(gather.get("action"), Digits="1")
    assert first.data == again.data
    call = call_row(db, p)
    assert call.step == "category-1" and call.turn == 1
    assert db.scalar(select(func.count()).select_from(CallStep).where(CallStep.call_id == call.id)) == 2
    retried_answer = p.post(f"{PUBLIC_BASE_URL}/webhooks/twilio/voice", CallStatus="ringing")
    assert retried_answer.data == p.responses[0].data


def test_a_late_webhook_of_an_earlier_step_repeats_the_current_one(db, phone):
    p = phone()
    p.dial()
    old_action = p.doc.find("Gather").get("action")
    p.press("1")
    p.press("1")  # the category: now at the province
    assert "turn=0" in old_action
    late = p.post(old_action, Digits="3")  # the language menu's step again, with other keys
    assert late.data == p.responses[1].data  # the first answer to that step, not a new one
    assert call_row(db, p).step == "province"


# --- mistakes, silence, back and repeat ---------------------------------------------------

def test_a_wrong_key_says_not_understood_and_the_menu_again(phone):
    p = phone()
    p.dial()
    p.press("1")
    p.press("1")
    menu = p.heard()
    assert menu[0] == "voice.ask_province"
    p.press("7")  # five provinces
    assert p.heard() == ["not_understood"] + menu


def test_zero_repeats_and_star_goes_back(phone):
    p = phone()
    p.dial()
    p.press("1")
    p.press("1")
    province = p.heard()
    p.press("0")
    assert p.heard() == province
    p.press("*")
    assert "voice.ask_category" in p.heard()
    p.press("1")
    assert p.heard() == province


def test_silence_repeats_once_then_moves_on_and_ends_politely_on_the_language_menu(db, phone):
    p = phone()
    p.dial()
    first = p.heard()
    p.silence()
    assert p.heard() == first and not p.ended
    p.silence()
    assert p.ended and "voice.goodbye" in p.heard()
    assert call_row(db, p).status == "ended"


def test_a_silent_recording_is_a_silence(db, phone):
    p = phone()
    p.dial()
    for keys in ("1", "1", "2", "3"):
        p.press(keys)
    assert p.heard() == ["voice.record_place"]
    p.silence()
    assert p.heard() == ["voice.record_place"]
    p.silence()  # twice: the place name is unknown, on to the time
    assert p.heard()[0] == "voice.ask_when"


# --- nothing lost ---------------------------------------------------------------------------

def test_a_dropped_call_leaves_a_partial_alert(db, phone):
    p = phone()
    p.dial()
    for keys in ("2", "1", "2"):  # Swahili, attack, North Kivu
        p.press(keys)
    assert p.hang_up().status_code == 204
    alert = alert_of(db, p)
    assert alert.status == "incomplete" and alert.channel == "voice" and alert.category == "ATTACK"
    assert alert.place.key == "CD61" and alert.language == "sw"
    assert call_row(db, p).status == "dropped"
    assert db.scalar(select(func.count()).select_from(CallbackRequest)) == 0  # the menu had started


def test_a_call_the_status_callback_never_closed_is_swept_as_dropped(db, phone, app):
    p = phone()
    p.dial()
    p.press("1")
    p.press("3")
    with app.app_context():
        from service.inbox import Services
        svc = Services.current()
        svc.config = {**svc.config, "VOICE_CALL_IDLE": 0}
        assert voice_calls.sweep(svc) == 1
    assert call_row(db, p).status == "dropped" and alert_of(db, p).status == "incomplete"


def test_the_engine_failing_mid_call_records_the_report(db, phone, monkeypatch):
    p = phone()
    p.dial()
    p.press("1")
    p.press("1")

    def broken(*args, **kwargs):
        raise RuntimeError("the dialogue is broken")
    monkeypatch.setattr(voice_calls.voice, "advance", broken)
    p.press("2")
    assert p.heard() == ["voice.fallback"] and p.languages() == {"fr"}  # in the caller's language
    assert p.doc.find("Record").get("maxLength") == str(voice.RECORD_SECONDS["fallback"])
    monkeypatch.undo()
    sid = p.record(50)
    assert p.ended and "voice.fallback_thanks" in p.heard()
    alert = alert_of(db, p)
    assert alert.status == "new" and alert.category == "ATTACK"  # what was captured before is kept
    assert db.scalar(select(Recording.kind).where(Recording.recording_sid == sid)) == "fallback"
    assert db.scalar(select(Recording.alert_id).where(Recording.recording_sid == sid)) == alert.id


def test_a_slow_engine_gets_the_caller_to_recording_within_the_budget(db, phone, monkeypatch, app):
    import threading
    release = threading.Event()
    real = voice_calls.voice.advance

    def slow(*args, **kwargs):
        release.wait(10)
        return real(*args, **kwargs)
    budget, app.config["VOICE_STEP_BUDGET"] = app.config["VOICE_STEP_BUDGET"], 0.5
    p = phone()
    p.dial()
    p.press("1")  # French
    monkeypatch.setattr(voice_calls.voice, "advance", slow)
    try:
        p.press("1")
    finally:
        release.set()  # the late step finishes (its answer is never heard)
    assert p.heard() == ["voice.fallback"] and p.languages() == {"fr"} and p.doc.find("Record") is not None
    monkeypatch.undo()
    # the recording's own step with the usual budget: on a loaded machine half a second can
    # pass storing it too (then it would come in by its recording callback, another test)
    app.config["VOICE_STEP_BUDGET"] = budget
    sid = p.record(20)
    assert p.ended
    recording = db.scalar(select(Recording).where(Recording.recording_sid == sid))
    assert recording.kind == "fallback" and recording.alert_id is not None
    assert db.get(Alert, recording.alert_id).status == "new"


def test_a_step_for_a_call_never_stored_still_records_the_fallback(db, phone):
    """The answer itself fell back (nothing stored): the recording arrives at "fallback"."""
    p = phone()
    p.doc = ET.fromstring(voice_calls.twilio_voice.render(
        voice.fallback_record(None), voice_calls.Targets(
            f"{PUBLIC_BASE_URL}/webhooks/twilio/voice/step/fallback?turn=0",
            f"{PUBLIC_BASE_URL}/webhooks/twilio/voice/step/fallback?turn=0&silence=1",
            f"{PUBLIC_BASE_URL}/webhooks/twilio/voice/recording?kind=fallback"), lambda piece: None))
    sid = p.record(40)
    assert p.ended
    recording = db.scalar(select(Recording).where(Recording.recording_sid == sid))
    alert = db.get(Alert, recording.alert_id)
    assert alert.status == "new" and alert.channel == "voice" and alert.reporter_id is not None


# --- missed calls ---------------------------------------------------------------------------

def test_a_call_to_a_beep_line_is_rejected_and_called_back(db, phone):
    p = phone(line=BEEP_LINE)
    doc = p.dial()
    assert [child.tag for child in doc] == ["Reject"]
    request = db.scalar(select(CallbackRequest))
    assert request.reason == "beep" and request.line == BEEP_LINE and request.status == "queued"
    assert db.scalar(select(func.count()).select_from(Call)) == 0


def test_hanging_up_before_any_menu_key_asks_for_a_call_back(db, phone):
    p = phone()
    p.dial()
    p.hang_up()
    request = db.scalar(select(CallbackRequest))
    assert request.reason == "hung_up" and request.line == LINE
    assert call_row(db, p).status == "dropped" and call_row(db, p).alert_id is None


def test_a_withheld_number_gets_the_menu_but_no_call_back(db, phone):
    p = phone(number=None)
    p.dial()
    assert p.heard()[0] == "voice.language"
    p.hang_up()
    assert db.scalar(select(func.count()).select_from(CallbackRequest)) == 0


def test_a_call_back_answered_runs_the_same_menu(db, phone, app):
    with app.app_context():
        from service import callbacks
        from service.inbox import Services
        svc = Services.current()
        request = callbacks.request_callback(svc.session, svc.redis, REPORTER, BEEP_LINE, "beep")
        request.status = "calling"
        svc.session.commit()
        request_id = request.id
    p = phone(line=BEEP_LINE, outbound=True)
    p.dial(f"?callback={request_id}")  # a call-back is never rejected, even from a beep line
    assert p.heard()[0] == "voice.language"
    call = call_row(db, p)
    assert call.direction == "callback" and call.callback_id == request_id and call.line == BEEP_LINE
    assert call.reporter_id == request.reporter_id
    assert db.get(CallbackRequest, request_id, populate_existing=True).status == "answered"


# --- Somleng, and <Say> ---------------------------------------------------------------------

SOMLENG_SID = "AC" + "5" * 32
SOMLENG_TOKEN = "somleng-auth-token"
SOMLENG_LINE = "+243810000100"


@pytest.fixture
def somleng_app(app_config, twilio_standin):
    import json

    from service.app import create_app
    from tests.conftest import AUTH_TOKEN, _empty_tables
    entries = [
        {"name": "twilio", "kind": "twilio", "account_sid": ACCOUNT_SID, "auth_token": AUTH_TOKEN,
         "from": "+243990000000", "api_base": twilio_standin.url, "say_languages": {"fr": "fr-FR"}},
        {"name": "somleng", "kind": "somleng", "account_sid": SOMLENG_SID, "auth_token": SOMLENG_TOKEN,
         "from": SOMLENG_LINE, "api_base": twilio_standin.url},
    ]
    app = create_app({**app_config, "CHANNELS": json.dumps(entries)})
    _empty_tables(app)
    yield app
    app.extensions["db"].sessions.remove()
    app.extensions["db"].engine.dispose()


def test_somleng_runs_the_same_line_at_its_own_paths_with_its_own_token(somleng_app):
    from twilio.request_validator import RequestValidator
    client = somleng_app.test_client()
    p = Phone(client, RequestValidator(SOMLENG_TOKEN).compute_signature, line=SOMLENG_LINE)
    twilio_signed = Phone(client, RequestValidator("test-auth-token").compute_signature, line=SOMLENG_LINE)
    twilio_signed.sid = p.sid
    assert twilio_signed.post(f"{PUBLIC_BASE_URL}/webhooks/somleng/voice").status_code == 403
    doc = document(p.post(f"{PUBLIC_BASE_URL}/webhooks/somleng/voice", CallStatus="ringing"))
    assert doc.find("Gather").get("action").startswith(f"{PUBLIC_BASE_URL}/webhooks/somleng/voice/step/language")
    p.doc = doc
    p.press("3")
    assert p.languages() == {"ln"} and "voice.ask_category" in p.heard()
    with somleng_app.app_context():
        from service.db import get_session
        call = get_session().scalar(select(Call).where(Call.call_sid == p.sid))
        assert call.provider == "somleng" and call.line == SOMLENG_LINE


def test_say_is_used_only_for_a_language_the_provider_speaks_and_a_prompt_without_audio(somleng_app, tmp_path):
    somleng_app.config["PROMPT_CACHE_DIR"] = str(tmp_path / "empty")  # no audio at all
    from tests.conftest import AUTH_TOKEN
    from twilio.request_validator import RequestValidator
    p = Phone(somleng_app.test_client(), RequestValidator(AUTH_TOKEN).compute_signature)
    doc = p.dial()
    says = [(s.get("language"), s.text) for s in doc.iter("Say")]
    assert says and {lang for lang, _ in says} == {"fr-FR"}  # French only: Swahili and Lingala stay silent
    assert says[0][1] == voice.prompt_text("voice.language", "fr")
    assert doc.find("Play") is None and doc.find("Gather") is not None


# --- recordings: the provider's callback, the fetch, the alerts API ---------------------------

def test_a_voice_report_in_the_alerts_api_with_its_recordings_fetched_and_removed_at_the_provider(
        db, phone, app, client, sign, twilio_standin):
    from service import recordings
    from service.inbox import Services
    audio = {}
    p = phone()
    p.dial()
    for keys in ("2", "4"):  # Swahili, abduction
        p.press(keys)
    while p.doc.find("Record") is None:  # province, territory: the first key of each menu
        p.press("1")
    place_sid = p.record(3)
    p.press("1")  # now
    p.press("2#")  # two taken
    message_sid = p.record(25)
    summary = p.doc
    p.press("1")
    assert p.ended
    # the provider's copy is played back in the summary until it is fetched
    played = [e.text for e in summary.iter("Play") if "/Recordings/" in e.text]
    assert played == [f"https://api.twilio.com/2010-04-01/Accounts/{ACCOUNT_SID}/Recordings/{place_sid}"]

    for sid, kind in ((place_sid, "place-name"), (message_sid, "message")):
        audio[sid] = _silent_wav() + sid.encode()
        url = twilio_standin.add_recording(sid, audio[sid])
        callback = f"{PUBLIC_BASE_URL}/webhooks/twilio/voice/recording?kind={kind}"
        params = {"CallSid": p.sid, "AccountSid": ACCOUNT_SID, "RecordingSid": sid, "RecordingUrl": url,
                  "RecordingStatus": "completed", "RecordingDuration": "3"}
        assert client.post(callback[len(PUBLIC_BASE_URL):], data=params,
                           headers={"X-Twilio-Signature": sign(callback, params)}).status_code == 204
    with app.app_context():
        svc = Services.current()
        for row in svc.session.scalars(select(Recording).order_by(Recording.id)).all():
            assert recordings.fetch(svc, row.id) == "stored"
    assert sorted(twilio_standin.deleted_recordings) == sorted(audio)

    headers = {"Authorization": "Bearer test-api-token"}
    listed = client.get("/api/v1/alerts?limit=10", headers=headers).get_json()
    [alert] = [a for a in listed["alerts"] if a["channel"] == "voice"]
    assert alert["status"] == "new" and alert["category"] == "ABDUCTION" and alert["language"] == "sw"
    assert alert["people_affected"] == 2
    assert {r["kind"] for r in alert["recordings"]} == {"place-name", "message"}
    assert REPORTER not in str(listed) and "api.twilio.com" not in str(listed)
    for r in alert["recordings"]:
        got = client.get(r["url"], headers=headers)
        assert got.status_code == 200 and got.data in audio.values()
        assert client.get(r["url"]).status_code == 401
    # a caller's recording on disk is not the audio
    stored = list((Path(app.config["RECORDINGS_DIR"])).glob("*.bin"))
    assert len(stored) == 2 and all(f.read_bytes() not in audio.values() and b"RIFF" not in f.read_bytes()
                                    for f in stored)


def test_a_fallback_recording_known_only_from_a_spooled_callback_becomes_a_report(db, phone, app, client, sign,
                                                                                  twilio_standin, monkeypatch):
    """The database was down for the fallback's <Record> action and for the recording
    callback: the callback was kept on disk; the sweep applies it and the call's partial
    alert becomes a report with the recording."""
    from sqlalchemy.exc import OperationalError

    from service import jobs, recordings
    p = phone()
    p.dial()
    for keys in ("1", "3", "2"):  # French, clash, North Kivu
        p.press(keys)
    record_url = p.doc.find("Gather").get("action")
    down = OperationalError("SELECT 1", {}, Exception("the database is down"))

    def refuse(*args, **kwargs):
        raise down
    monkeypatch.setattr(voice_calls, "_find", refuse)  # every later step: no database
    monkeypatch.setattr(recordings, "_get_or_create", refuse)
    p.doc = document(p.post(record_url, Digits="1"))
    assert p.heard() == ["voice.fallback"] and p.languages() == {"fr"}
    sid = p.record(70)
    assert p.ended and "voice.fallback_thanks" in p.heard()
    url = twilio_standin.add_recording(sid, _silent_wav())
    callback = p.doc is not None and f"{PUBLIC_BASE_URL}/webhooks/twilio/voice/recording?kind=fallback"
    params = {"CallSid": p.sid, "AccountSid": ACCOUNT_SID, "RecordingSid": sid, "RecordingUrl": url,
              "RecordingStatus": "completed", "RecordingDuration": "70"}
    assert client.post(callback[len(PUBLIC_BASE_URL):], data=params,
                       headers={"X-Twilio-Signature": sign(callback, params)}).status_code == 204
    assert db.scalar(select(func.count()).select_from(Recording)) == 0
    assert len(list((Path(app.config["SPOOL_DIR"]) / "recordings").glob("*.json"))) == 1
    monkeypatch.undo()

    with app.app_context():
        report = jobs.sweep()
    assert report["recordings"]["spooled"] == 1
    assert not list((Path(app.config["SPOOL_DIR"]) / "recordings").glob("*.json"))
    recording = db.scalar(select(Recording).where(Recording.recording_sid == sid))
    alert = alert_of(db, p)
    assert recording.kind == "fallback" and recording.alert_id == alert.id
    assert alert.status == "new" and alert.category == "CLASH" and alert.place.key == "CD61"
    assert call_row(db, p).status == "submitted"


@pytest.mark.parametrize("keys", ["\x00\x1b", "12345678901234567890" * 50, "😀", "<Say>x</Say>"])
def test_garbage_keys_get_not_understood_and_the_same_menu(db, phone, keys):
    p = phone()
    p.dial()
    p.press("1")
    p.press("1")
    menu = p.heard()
    p.press(keys)
    assert p.heard() == ["not_understood"] + menu
    steps = db.scalars(select(CallStep).join(Call).where(Call.call_sid == p.sid).order_by(CallStep.id)).all()
    assert len(steps[-1].event["digits"]) <= 16


def test_a_bad_turn_is_a_bad_request(phone):
    p = phone()
    p.dial()
    action = p.doc.find("Gather").get("action")
    assert p.post(action.replace("turn=0", "turn=x"), Digits="1").status_code == 400


def test_the_language_chosen_on_the_keypad_is_kept_for_the_next_call(db, phone):
    first = phone()
    first.dial()
    first.press("3")  # Lingala
    first.hang_up()
    again = phone()
    again.dial()
    assert again.heard()[:2] == ["voice.welcome", "voice.keys_help"] and again.languages() == {"ln"}


def test_two_first_uses_of_a_place_at_once_make_one_row_and_both_drafts(app, database_url):
    """Another request inserts the place between this one's look and its insert: the
    unique key decides, and this request goes on with the winner's row."""
    if not database_url.startswith("postgresql"):
        pytest.skip("SQLite serialises writers: the race cannot happen there")
    from sqlalchemy import event
    from sqlalchemy.orm import Session

    from service import alerts
    from service.models import Place
    record = default_gazetteer().get("CD6103")
    engine = app.extensions["db"].engine
    with Session(engine) as session:
        raced = []

        def rival(session_, context, instances):
            if raced or not any(isinstance(o, Place) for o in session_.new):
                return
            raced.append(True)
            with Session(engine) as other:
                alerts.ensure_place(other, record)
                other.commit()
        event.listen(session, "before_flush", rival)
        place = alerts.ensure_place(session, record)
        draft = alerts.save_draft(session, "voice:twilio:CArace", None, alerts.DraftFields(place=record, channel="voice"))
        session.commit()
        assert raced and place.key == "CD6103" and draft.place_id == place.id
        assert session.scalar(select(func.count()).select_from(Place).where(Place.key == "CD6103")) == 1
