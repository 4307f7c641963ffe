"""The voice line under real faults: the fault stack's own PostgreSQL stopped in the
middle of a call, with the web app under gunicorn and the RQ worker as real processes.

The caller is driven the way Twilio drives the webhooks (signed POSTs over HTTP, the
TwiML parsed and followed); the Twilio stand-in serves the caller's recording and
records its deletion.
"""

from __future__ import annotations

import uuid
import wave
import xml.etree.ElementTree as ET
from io import BytesIO

import requests
from sqlalchemy import select
from sqlalchemy.orm import Session
from twilio.request_validator import RequestValidator

from service.models import Alert, Call, Recording
from tests.faults.harness import ACCOUNT_SID, AUTH_TOKEN, PUBLIC_BASE_URL, new_number, wait_until
from tests.faults.conftest import CONVERGE

LINE = "+243970000100"


def _wav() -> bytes:
    out = BytesIO()
    with wave.open(out, "wb") as w:
        w.setnchannels(1), w.setsampwidth(2), w.setframerate(8000)
        w.writeframes(b"\1\0" * 8000)
    return out.getvalue()


class Caller:
    """One phone on the line, over HTTP to the real web app."""

    def __init__(self, web_url: str):
        self.web_url, self.sid, self.number = web_url.rstrip("/"), f"CA{uuid.uuid4().hex}", new_number()
        self.validator, self.http, self.doc = RequestValidator(AUTH_TOKEN), requests.Session(), None

    def post(self, url: str, **fields) -> requests.Response:
        params = {"CallSid": self.sid, "AccountSid": ACCOUNT_SID, "From": self.number, "To": LINE,
                  "CallStatus": "in-progress", "Direction": "inbound", **fields}
        return self.http.post(self.web_url + url[len(PUBLIC_BASE_URL):], data=params, timeout=30,
                              headers={"X-Twilio-Signature": self.validator.compute_signature(url, params)})

    def follow(self, response: requests.Response) -> ET.Element:
        assert response.status_code == 200, response.text[:300]
        self.doc = ET.fromstring(response.text)
        return self.doc

    def dial(self) -> ET.Element:
        return self.follow(self.post(f"{PUBLIC_BASE_URL}/webhooks/twilio/voice", CallStatus="ringing"))

    def press(self, keys: str) -> ET.Element:
        return self.follow(self.post(self.doc.find("Gather").get("action"), Digits=keys))

    def record(self, seconds: int) -> tuple[str, str]:
        record = self.doc.find("Record")
        sid = f"RE{uuid.uuid4().hex}"
        url = f"https://api.twilio.com/2010-04-01/Accounts/{ACCOUNT_SID}/Recordings/{sid}"
        self.follow(self.post(record.get("action"), RecordingSid=sid, RecordingUrl=url,
                              RecordingDuration=str(seconds)))
        return sid, record.get("recordingStatusCallback")


def test_postgres_stopped_mid_call_the_caller_records_the_report_and_nothing_is_lost(on_postgres):
    """`pg_ctl stop` after three answers: the next key gets the fallback recording (not an
    error, not silence), the recording's action and callback are answered while the
    database is down; PostgreSQL back, the call's alert is a report with what the keys
    captured and the recording, fetched, encrypted here and deleted at the provider."""
    s = on_postgres
    caller = Caller(s.web_url)
    caller.dial()
    for keys in ("1", "1", "2"):  # French, attack, North Kivu
        caller.press(keys)
    assert caller.doc.find("Gather") is not None  # the territory menu
    s.postgres.stop("fast")
    try:
        caller.press("3")
        record = caller.doc.find("Record")
        assert record is not None and "/voice/step/fallback" in record.get("action"), ET.tostring(caller.doc)
        assert "lang=fr" in record.get("action")
        sid, callback = caller.record(45)
        assert caller.doc.find("Hangup") is not None
        url = s.standin.add_recording(sid, _wav(), account_sid=ACCOUNT_SID, auth_token=AUTH_TOKEN)
        reported = caller.post(callback, RecordingSid=sid, RecordingUrl=url, RecordingStatus="completed",
                               RecordingDuration="45")
        assert reported.status_code == 204  # kept on disk, not refused
        assert caller.post(f"{PUBLIC_BASE_URL}/webhooks/twilio/voice/status", CallStatus="completed").status_code == 204
    finally:
        s.postgres.start()

    def settled():
        with Session(s.observer.engine) as session:
            call = session.scalar(select(Call).where(Call.call_sid == caller.sid))
            recording = session.scalar(select(Recording).where(Recording.recording_sid == sid))
            if call is None or recording is None or recording.status != "stored" or not recording.provider_deleted_at:
                return None
            alert = session.get(Alert, recording.alert_id)
            return call.status, recording.kind, alert.status, alert.category, alert.place_id and alert.place.key, \
                alert.channel, alert.id == call.alert_id
    assert wait_until(settled, CONVERGE, 0.5), f"not settled: {settled()!r}"
    assert settled() == ("submitted", "fallback", "new", "ATTACK", "CD61", "voice", True)
    assert sid in s.standin.deleted_recordings
