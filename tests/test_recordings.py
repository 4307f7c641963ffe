"""Callers' recordings on real SQLite and PostgreSQL and real Redis: the provider's signed
recording callback, the fetch job run in the test's process (the same function a worker
runs) with the real twilio client against the local stand-in, the encrypted copy on
disk, the deletion at the provider, the operators' API and the signed <Play> URL.
"""

from __future__ import annotations

import hashlib
import io
import json
import math
import re
import time
import wave
from datetime import timedelta
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import redis
from rq import Queue
from rq.registry import ScheduledJobRegistry
from sqlalchemy import event, select, update

from service import jobs, queue, recordings
from service.inbox import Services
from service.models import Alert, Call, Recording, utcnow
from tests.conftest import ACCOUNT_SID, PUBLIC_BASE_URL

HOOK = "/webhooks/twilio/voice/recording"
API_HEADERS = {"Authorization": "Bearer test-api-token"}


def tone(seconds: float = 0.5, pitch: int = 440) -> bytes:
    """A real 8 kHz mono 16-bit WAV, as the provider records a call."""
    frames = b"".join(int(8000 * math.sin(2 * math.pi * pitch * n / 8000)).to_bytes(2, "little", signed=True)
                      for n in range(int(8000 * seconds)))
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as writer:
        writer.setnchannels(1)
        writer.setsampwidth(2)
        writer.setframerate(8000)
        writer.writeframes(frames)
    return buffer.getvalue()


AUDIO = tone()


@pytest.fixture
def app_config(app_config, tmp_path):
    return {**app_config, "RECORDINGS_DIR": str(tmp_path / "recordings"), "RECORDING_FETCH_ATTEMPTS": 3,
            "RECORDING_URL_TTL": 600}


@pytest.fixture
def svc(app, db):
    return Services.current()


@pytest.fixture
def post_callback(client, sign):
    """post_callback(params, kind=None, signed=True): the provider's recording callback."""
    def post(params: dict, kind: str | None = None, signed: bool = True):
        path = HOOK + (f"?kind={kind}" if kind else "")
        headers = {"X-Twilio-Signature": sign(PUBLIC_BASE_URL + path, params)} if signed else {}
        return client.post(path, data=params, headers=headers)
    return post


def callback_params(sid: str, url: str | None, status: str = "completed", call_sid: str = "CA" + "1" * 32,
                    seconds: str = "4") -> dict:
    params = {"AccountSid": ACCOUNT_SID, "CallSid": call_sid, "RecordingSid": sid, "RecordingStatus": status,
              "RecordingDuration": seconds, "RecordingChannels": "1", "RecordingSource": "RecordVerb"}
    if url:
        params["RecordingUrl"] = url
    return params


def sid(n: int) -> str:
    return f"RE{n:032x}"


def row_of(svc, recording_sid: str) -> Recording | None:
    return svc.session.scalar(select(Recording).where(Recording.recording_sid == recording_sid)
                              .execution_options(populate_existing=True))


def fetch_jobs(redis_url) -> list[tuple[int, str]]:
    """Fetch jobs in RQ: (recording id, "queued" | "scheduled")."""
    connection = redis.Redis.from_url(redis_url)
    rq_queue = Queue(queue.QUEUE, connection=connection)
    found = [(j.args[0], "queued") for j in rq_queue.get_jobs() if j.func_name == queue.FETCH_RECORDING]
    for job_id in ScheduledJobRegistry(queue=rq_queue).get_job_ids():
        job = rq_queue.fetch_job(job_id)
        if job is not None and job.func_name == queue.FETCH_RECORDING:
            found.append((job.args[0], "scheduled"))
    return found


def voice_alert(svc, call_sid: str = "CA" + "1" * 32, status: str = "new") -> tuple[Alert, Call]:
    alert = Alert(status=status, channel="voice", reference=f"{abs(hash(call_sid)) % 900000 + 100000}",
                  category="ATTACK", language="sw")
    svc.session.add(alert)
    svc.session.flush()
    call = Call(provider="twilio", call_sid=call_sid, direction="in", status="active", alert_id=alert.id)
    svc.session.add(call)
    svc.session.commit()
    return alert, call


def stored(svc, twilio_standin, post_callback, n: int = 1, audio: bytes = AUDIO, **params) -> Recording:
    """A completed recording, fetched by its job: stored here."""
    url = twilio_standin.add_recording(sid(n), audio)
    assert post_callback(callback_params(sid(n), url, **params), kind="message").status_code == 204
    row = row_of(svc, sid(n))
    assert jobs.fetch_recording(row.id) == "stored"
    return row_of(svc, sid(n))


# --- the callback, the job, the encrypted copy ---------------------------------------------

def test_a_completed_recording_is_fetched_stored_encrypted_and_deleted_at_the_provider(
        svc, app, twilio_standin, post_callback, redis_url):
    url = twilio_standin.add_recording(sid(1), AUDIO)
    assert url == f"https://api.twilio.com/2010-04-01/Accounts/{ACCOUNT_SID}/Recordings/{sid(1)}"
    response = post_callback(callback_params(sid(1), url), kind="message")
    assert response.status_code == 204
    row = row_of(svc, sid(1))
    assert (row.status, row.kind, row.seconds, row.provider, row.provider_url) == (
        "available", "message", 4, "twilio", url)
    assert fetch_jobs(redis_url) == [(row.id, "queued")]

    assert jobs.fetch_recording(row.id) == "stored"
    row = row_of(svc, sid(1))
    assert twilio_standin.recording_fetches == [sid(1)]  # once, with the account's basic auth
    assert row.status == "stored" and row.attempts == 1 and row.stored_at is not None
    assert (row.size, row.content_type, row.sha256) == (len(AUDIO), "audio/wav", hashlib.sha256(AUDIO).hexdigest())
    assert re.fullmatch(rf"{row.id}-[0-9a-f]{{24}}\.bin", row.path)
    folder = app.config["RECORDINGS_DIR"]
    [on_disk] = list(Path(folder).iterdir())
    assert on_disk.name == row.path  # no temporary file left behind
    data = on_disk.read_bytes()
    assert data != AUDIO and b"RIFF" not in data and AUDIO[44:140] not in data  # encrypted, not the audio
    assert recordings.read_audio(app.config, row) == AUDIO
    # deleted at the provider once stored here; its URL forgotten
    assert twilio_standin.deleted_recordings == [sid(1)] and sid(1) not in twilio_standin.recordings
    assert row.provider_deleted_at is not None and row.provider_url is None


def test_another_secret_cannot_read_a_stored_recording_and_a_rotation_keeps_it_readable(
        svc, app, twilio_standin, post_callback):
    row = stored(svc, twilio_standin, post_callback)
    with pytest.raises(recordings.RecordingUnavailable):
        recordings.read_audio({**app.config, "SECRET_KEY": "another-secret"}, row)
    from cryptography.fernet import Fernet
    rotated = {**app.config, "RECORDING_ENCRYPTION_KEY": Fernet.generate_key().decode()}
    assert recordings.read_audio(rotated, row) == AUDIO  # the derived key still opens the old file


def test_an_unsigned_or_forged_callback_is_refused_and_nothing_is_stored(
        svc, twilio_standin, post_callback, client, redis_url):
    url = twilio_standin.add_recording(sid(1), AUDIO)
    params = callback_params(sid(1), url)
    assert post_callback(params, signed=False).status_code == 403
    forged = client.post(HOOK, data=params, headers={"X-Twilio-Signature": "bm90IGEgc2lnbmF0dXJl"})
    assert forged.status_code == 403
    assert svc.session.scalar(select(Recording.id)) is None and fetch_jobs(redis_url) == []
    assert twilio_standin.recording_fetches == []


def test_a_callback_signed_for_other_fields_is_refused(svc, twilio_standin, client, sign):
    url = twilio_standin.add_recording(sid(1), AUDIO)
    params = callback_params(sid(1), url)
    signature = sign(PUBLIC_BASE_URL + HOOK, params)
    changed = dict(params, RecordingUrl=url.replace(sid(1), sid(2)))
    assert client.post(HOOK, data=changed, headers={"X-Twilio-Signature": signature}).status_code == 403
    assert svc.session.scalar(select(Recording.id)) is None


def test_a_malformed_callback_is_a_bad_request(svc, post_callback):
    params = callback_params(sid(1), None)
    del params["RecordingSid"]
    assert post_callback(params).status_code == 400
    assert post_callback(callback_params("RE" + "x" * 80, None)).status_code == 400
    assert svc.session.scalar(select(Recording.id)) is None


def test_a_repeated_callback_changes_nothing_once_stored(svc, twilio_standin, post_callback, redis_url):
    url = twilio_standin.add_recording(sid(1), AUDIO)
    params = callback_params(sid(1), url)
    assert post_callback(params).status_code == 204
    assert post_callback(params).status_code == 204  # before the job ran: still one job
    [(recording_id, _)] = fetch_jobs(redis_url)
    assert jobs.fetch_recording(recording_id) == "stored"
    redis.Redis.from_url(redis_url).flushdb()
    assert post_callback(params).status_code == 204  # after: no job, no new row, no fetch
    assert fetch_jobs(redis_url) == []
    assert jobs.fetch_recording(recording_id) == "stored"  # a stray job does nothing either
    assert svc.session.scalars(select(Recording.id)).all() == [recording_id]
    assert twilio_standin.recording_fetches == [sid(1)] and twilio_standin.deleted_recordings == [sid(1)]
    assert row_of(svc, sid(1)).provider_url is None


def test_a_callback_before_the_record_action_links_the_call_and_its_alert(svc, twilio_standin, post_callback):
    alert, call = voice_alert(svc)
    url = twilio_standin.add_recording(sid(1), AUDIO)
    assert post_callback(callback_params(sid(1), url, call_sid=call.call_sid)).status_code == 204
    row = row_of(svc, sid(1))
    assert (row.status, row.kind, row.call_id, row.alert_id) == ("available", recordings.UNKNOWN, call.id, alert.id)
    # the <Record> action arrives late: it names the kind and never moves the status back
    again = recordings.noted(svc.session, "twilio", sid(1), url, "4", "place-name", call_id=call.id)
    assert again.id == row.id and (again.status, again.kind) == ("available", "place-name")
    assert svc.session.scalar(select(Recording.id).where(Recording.id != row.id)) is None


def test_the_record_action_first_then_the_callback(svc, twilio_standin, post_callback, redis_url):
    alert, call = voice_alert(svc)
    url = twilio_standin.add_recording(sid(1), AUDIO)
    row = recordings.noted(svc.session, "twilio", sid(1), url, "7", "place-name", call_id=call.id, alert_id=alert.id)
    assert (row.status, row.kind, row.seconds) == ("pending", "place-name", 7)
    assert fetch_jobs(redis_url) == []  # not complete yet: nothing to fetch
    assert recordings.fetch(svc, row.id) == "pending" and twilio_standin.recording_fetches == []
    assert post_callback(callback_params(sid(1), url, call_sid=call.call_sid), kind="message").status_code == 204
    row = row_of(svc, sid(1))
    assert (row.status, row.kind, row.seconds) == ("available", "place-name", 7)  # the action's kind kept
    assert fetch_jobs(redis_url) == [(row.id, "queued")]
    with pytest.raises(ValueError):
        recordings.noted(svc.session, "twilio", sid(2), url, "1", "song")


def test_an_absent_recording_is_failed_and_never_fetched(svc, post_callback, redis_url, twilio_standin):
    assert post_callback(callback_params(sid(1), None, status="absent")).status_code == 204
    row = row_of(svc, sid(1))
    assert row.status == "failed" and "absent" in row.failure_reason
    assert fetch_jobs(redis_url) == [] and recordings.fetch(svc, row.id) == "failed"
    assert twilio_standin.recording_fetches == []


# --- failures: retried, bounded, never deleted when not stored ---------------------------

def test_fetch_failures_are_retried_with_backoff_then_failed_and_kept_at_the_provider(
        svc, app, twilio_standin, post_callback, redis_url):
    url = twilio_standin.add_recording(sid(1), AUDIO)
    twilio_standin.fail_recording_fetches(3, 500)
    assert post_callback(callback_params(sid(1), url)).status_code == 204
    row = row_of(svc, sid(1))
    redis.Redis.from_url(redis_url).flushdb()
    assert recordings.fetch(svc, row.id) == "retrying"
    assert fetch_jobs(redis_url) == [(row.id, "scheduled")]
    assert row_of(svc, sid(1)).failure_reason == "HTTP 500"
    assert recordings.fetch(svc, row.id) == "retrying"
    assert recordings.backoff(1) == recordings.RETRY_DELAY and recordings.backoff(2) == 2 * recordings.RETRY_DELAY
    assert recordings.fetch(svc, row.id) == "failed"  # RECORDING_FETCH_ATTEMPTS = 3
    row = row_of(svc, sid(1))
    assert (row.status, row.attempts, row.provider_url) == ("failed", 3, url)
    assert twilio_standin.recording_fetches == [sid(1)] * 3
    assert twilio_standin.deleted_recordings == [] and sid(1) in twilio_standin.recordings
    assert recordings.fetch(svc, row.id) == "failed" and len(twilio_standin.recording_fetches) == 3
    folder = Path(app.config["RECORDINGS_DIR"])
    assert not folder.exists() or list(folder.iterdir()) == []


def test_a_recording_not_ready_yet_is_fetched_on_the_next_try(svc, twilio_standin, post_callback):
    url = twilio_standin.add_recording(sid(1), AUDIO)
    twilio_standin.fail_recording_fetches(1, 404)
    assert post_callback(callback_params(sid(1), url)).status_code == 204
    row = row_of(svc, sid(1))
    assert recordings.fetch(svc, row.id) == "retrying"
    assert recordings.fetch(svc, row.id) == "stored"
    assert twilio_standin.deleted_recordings == [sid(1)]


def test_wrong_credentials_or_something_not_audio_is_never_stored_nor_deleted(svc, twilio_standin, post_callback):
    url = twilio_standin.add_recording(sid(1), AUDIO, auth_token="another-accounts-token")
    assert post_callback(callback_params(sid(1), url)).status_code == 204
    row = row_of(svc, sid(1))
    assert recordings.fetch(svc, row.id) == "failed"  # 401: trying again cannot help
    assert row_of(svc, sid(1)).failure_reason == "HTTP 401"
    url = twilio_standin.add_recording(sid(2), b"<html>not audio</html>")
    assert post_callback(callback_params(sid(2), url)).status_code == 204
    row = row_of(svc, sid(2))
    assert [recordings.fetch(svc, row.id) for _ in range(3)] == ["retrying", "retrying", "failed"]
    assert twilio_standin.deleted_recordings == []


def test_a_url_that_is_not_the_providers_is_never_fetched(svc, twilio_standin):
    row = recordings.noted(svc.session, "twilio", sid(1), "http://169.254.169.254/latest/meta-data", "3", "message")
    svc.session.execute(update(Recording).where(Recording.id == row.id).values(status="available"))
    svc.session.commit()
    assert recordings.fetch(svc, row.id) == "failed"
    assert "not the provider" in row_of(svc, sid(1)).failure_reason


def test_a_failed_deletion_keeps_the_copy_and_the_sweep_deletes_it_later(svc, app, twilio_standin, post_callback):
    twilio_standin.fail_recording_deletes(1, 500)
    row = stored(svc, twilio_standin, post_callback)
    assert row.status == "stored" and row.provider_deleted_at is None and row.provider_url is not None
    assert sid(1) in twilio_standin.recordings and twilio_standin.deleted_recordings == []
    assert recordings.read_audio(app.config, row) == AUDIO
    assert recordings.sweep(svc) == {"queued": 0, "deleted": 0, "spooled": 0}  # too recent: its job may still delete it
    svc.session.execute(update(Recording).where(Recording.id == row.id)
                        .values(stored_at=utcnow() - timedelta(minutes=5)))
    svc.session.commit()
    report = jobs.sweep()
    assert report["recordings"] == {"queued": 0, "deleted": 1, "spooled": 0}
    assert twilio_standin.deleted_recordings == [sid(1)]
    row = row_of(svc, sid(1))
    assert row.provider_deleted_at is not None and row.provider_url is None
    assert "recordings" not in jobs.sweep()  # nothing left to do: not named


def test_a_fetch_lost_with_its_worker_is_queued_again_by_the_sweep_once(svc, twilio_standin, post_callback,
                                                                         redis_url):
    url = twilio_standin.add_recording(sid(1), AUDIO)
    assert post_callback(callback_params(sid(1), url)).status_code == 204
    row = row_of(svc, sid(1))
    assert recordings.sweep(svc)["queued"] == 0  # its job is waiting
    redis.Redis.from_url(redis_url).flushdb()  # the worker died with the job; its mark expired
    assert recordings.sweep(svc)["queued"] == 0  # a minute not yet passed
    svc.session.execute(update(Recording).where(Recording.id == row.id)
                        .values(created_at=utcnow() - timedelta(minutes=2)))
    svc.session.commit()
    assert recordings.sweep(svc)["queued"] == 1
    assert recordings.sweep(svc)["queued"] == 0
    assert fetch_jobs(redis_url) == [(row.id, "queued")]
    assert jobs.fetch_recording(row.id) == "stored"


# --- operators: the alerts API -------------------------------------------------------------

def test_the_api_gives_an_alerts_recordings_and_their_audio_only_with_the_token(
        svc, client, twilio_standin, post_callback):
    alert, call = voice_alert(svc)
    other, other_call = voice_alert(svc, "CA" + "2" * 32)
    row = stored(svc, twilio_standin, post_callback, 1, call_sid=call.call_sid)
    waiting_url = twilio_standin.add_recording(sid(2), tone(pitch=880))
    assert post_callback(callback_params(sid(2), waiting_url, call_sid=call.call_sid)).status_code == 204
    base = f"/api/v1/alerts/{alert.id}/recordings"
    assert client.get(base).status_code == 401
    assert client.get(f"{base}/{row.id}").status_code == 401
    listed = client.get(base, headers=API_HEADERS).get_json()["recordings"]
    assert [(r["id"], r["status"], r["kind"], r["url"]) for r in listed] == [
        (row.id, "stored", "message", f"{base}/{row.id}"), (row.id + 1, "available", "unknown", None)]
    audio = client.get(f"{base}/{row.id}", headers=API_HEADERS)
    assert audio.status_code == 200 and audio.data == AUDIO and audio.mimetype == "audio/wav"
    assert "no-store" in audio.headers["Cache-Control"]
    assert client.get(f"{base}/{row.id + 1}", headers=API_HEADERS).status_code == 404  # not stored yet
    assert client.get(f"/api/v1/alerts/{other.id}/recordings/{row.id}", headers=API_HEADERS).status_code == 404
    assert client.get("/api/v1/alerts/999999/recordings", headers=API_HEADERS).status_code == 404
    text = json.dumps(listed)
    assert "api.twilio.com" not in text and sid(1) not in text and "990000001" not in text


def test_alerts_list_their_recordings_in_one_query_and_never_a_provider_url(
        svc, app, client, twilio_standin, post_callback):
    alert, call = voice_alert(svc)
    second, second_call = voice_alert(svc, "CA" + "3" * 32)
    stored(svc, twilio_standin, post_callback, 1, call_sid=call.call_sid)
    stored(svc, twilio_standin, post_callback, 2, call_sid=second_call.call_sid)
    waiting = twilio_standin.add_recording(sid(3), AUDIO)
    assert post_callback(callback_params(sid(3), waiting, call_sid=second_call.call_sid)).status_code == 204
    sms = Alert(status="new", channel="sms", reference="424242", category="LOOTING")
    svc.session.add(sms)
    svc.session.commit()
    statements = []
    engine = app.extensions["db"].engine
    listen = lambda *args: statements.append(args[2])  # noqa: E731
    event.listen(engine, "before_cursor_execute", listen)
    try:
        body = client.get("/api/v1/alerts", headers=API_HEADERS).get_json()
    finally:
        event.remove(engine, "before_cursor_execute", listen)
    assert sum("recordings" in s for s in statements) == 1  # one query for the page, not one per alert
    shown = {a["id"]: a for a in body["alerts"]}
    assert "recordings" not in shown[sms.id]
    assert [(r["kind"], r["status"]) for r in shown[alert.id]["recordings"]] == [("message", "stored")]
    assert [r["status"] for r in shown[second.id]["recordings"]] == ["stored", "available"]
    first = shown[alert.id]["recordings"][0]
    assert first["url"] == f"/api/v1/alerts/{alert.id}/recordings/{first['id']}"
    text = json.dumps(body)
    assert "api.twilio.com" not in text and "RE0000" not in text and "990000001" not in text
    assert client.get(first["url"], headers=API_HEADERS).data == AUDIO
    from service import alerts as alerts_module
    one = svc.session.get(Alert, alert.id)
    assert alerts_module.as_json(one)["recordings"] == [first]  # alone, it looks them up itself


# --- the provider's <Play> ------------------------------------------------------------------

def test_a_signed_play_url_plays_the_recording_until_it_expires(svc, app, client, twilio_standin, post_callback):
    row = stored(svc, twilio_standin, post_callback)
    url = recordings.play_url(row, app.config)
    assert url.startswith(f"{PUBLIC_BASE_URL}/voice/recordings/{row.id}?expires=")
    parts = urlsplit(url)
    played = client.get(f"{parts.path}?{parts.query}")
    assert played.status_code == 200 and played.data == AUDIO and played.mimetype == "audio/wav"
    assert recordings.play_url(row, app.config) == url  # one URL for a while: the provider caches it
    expired = urlsplit(recordings.play_url(row, app.config, now=time.time() - 3 * 600))
    assert client.get(f"{expired.path}?{expired.query}").status_code == 403
    forged = parts.query.rsplit("signature=", 1)[0] + "signature=" + "A" * 43
    assert client.get(f"{parts.path}?{forged}").status_code == 403
    assert client.get(f"/voice/recordings/{row.id + 1}?{parts.query}").status_code == 403  # another recording
    assert client.get(parts.path).status_code == 403
    other = {**app.config, "SECRET_KEY": "another-secret"}
    assert not recordings.check_signature(row.id, *_query(url), other)


def _query(url: str) -> tuple[str, str]:
    from urllib.parse import parse_qs

    query = parse_qs(urlsplit(url).query)
    return query["expires"][0], query["signature"][0]


def test_before_it_is_stored_the_provider_plays_its_own_copy(svc, app, twilio_standin):
    url = twilio_standin.add_recording(sid(1), AUDIO)
    row = recordings.noted(svc.session, "twilio", sid(1), url, "3", "place-name")
    assert recordings.play_url(row, app.config) == url
    nothing = recordings.noted(svc.session, "twilio", sid(2), None, None, "place-name")
    assert recordings.play_url(nothing, app.config) is None
