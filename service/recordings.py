"""Callers' recordings (a place name, the message, a fallback report): fetched from the
provider once it says a recording is complete, kept here encrypted, removed there.

* **Noted once**: one row per provider recording (provider, recording_sid), whichever
  comes first, the call's <Record> action (`noted`) or the provider's recording callback
  (`completed`); a repeat fills what is missing and never moves a status back.
* **Encrypted at rest**: Fernet under a key derived from SECRET_KEY (or
  RECORDING_ENCRYPTION_KEY, comma-separated, newest first, for rotation), written
  atomically under RECORDINGS_DIR as `<id>-<random>.bin`: a file name says nothing of
  the caller. The sha256 of the audio is kept to check what is read back.
* **Deleted at the provider only once stored**: the stored row is committed before the
  deletion, so a crash between the two leaves a copy here and one there, and the sweep
  deletes it later. A recording we could not fetch (RECORDING_FETCH_ATTEMPTS used up)
  stays at the provider for an operator: never delete what we do not have.
* **Recoverable**: a fetch that fails for a reason that can pass (connection, 5xx, 429,
  404 before the provider's copy is ready) is tried again later, doubled each time; a
  job lost with a killed worker or Redis is queued again by the sweep.
* **Played back by a signed URL**: the provider's <Play> has no bearer token; it gets
  `play_url`, an HMAC of the recording and an expiry, like the prompts' URLs.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
import os
import secrets
import time
from datetime import timedelta
from pathlib import Path
from typing import Mapping
from urllib.parse import urlencode

import requests
from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session
from twilio.base.exceptions import TwilioException, TwilioRestException

from service import queue, spool
from service.channels import twilio_calls
from service.channels.twilio import API
from service.models import Call, Recording, utcnow
from service.privacy import derive, secrets_list

log = logging.getLogger(__name__)
KINDS = ("place-name", "message", "fallback")
UNKNOWN = "unknown"  # the callback came first and did not say; the <Record> action will
STATUSES = ("pending", "available", "stored", "failed")
OPEN = ("pending", "available")  # may still become stored, or failed
RETRY_DELAY = 15.0  # s before the second fetch, doubled after each failure
MAX_BYTES = 64 * 1024 * 1024  # an hour of 8 kHz 16-bit WAV is 58 MB
SETTLED = timedelta(seconds=60)  # the sweep leaves younger rows to their own job


class RecordingUnavailable(RuntimeError):
    """No readable copy here (not stored, file gone, or no configured key opens it)."""


class FetchError(RuntimeError):
    """The provider did not give us the audio; `retry`: trying later can help."""

    def __init__(self, message: str, retry: bool):
        super().__init__(message)
        self.retry = retry


# --- noting a recording -----------------------------------------------------------------

def noted(session: Session, provider: str, recording_sid: str, provider_url: str | None, seconds,
          kind: str, call_id: int | None = None, alert_id: int | None = None) -> Recording:
    """The call's <Record> action told us of a recording: stored (committed), pending
    until the provider's callback says it is complete, unless that came first."""
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {', '.join(KINDS)}")
    row = _get_or_create(session, provider, recording_sid, kind)
    _fill(row, provider_url, seconds, kind, call_id, alert_id)
    session.commit()
    return row


def completed(session: Session, redis_connection, provider: str, recording_sid: str,
              recording_url: str | None, recording_status: str, duration=None, call_sid: str | None = None,
              kind: str | None = None) -> Recording:
    """The provider's recording callback: "completed" makes the recording available and
    queues its fetch; "absent" or "failed" end it failed. Repeats change nothing new."""
    status = (recording_status or "").strip().lower()
    row = _get_or_create(session, provider, recording_sid, kind if kind in KINDS else UNKNOWN)
    call = session.scalar(select(Call).where(Call.provider == provider, Call.call_sid == call_sid)) \
        if call_sid and row.call_id is None else None
    _fill(row, recording_url, duration, kind if kind in KINDS else None,
          call.id if call else None, call.alert_id if call else None)
    session.commit()
    if status == "completed":
        session.execute(update(Recording).where(Recording.id == row.id, Recording.status == "pending")
                        .values(status="available").execution_options(synchronize_session=False))
        session.commit()
        session.refresh(row)
        if row.status == "available":
            queue.enqueue_recording(redis_connection, row.id, unless_waiting=True)
    elif status in ("absent", "failed"):
        _fail(session, row.id, f"provider: recording {status}")
        session.refresh(row)
    elif status != "in-progress":
        log.warning("recording %s: unknown recording status %r", row.id, status[:32])
    if row.kind == "fallback" and status == "completed":
        from service import voice_calls  # the call's side: a fallback recording is a report
        voice_calls.adopt_fallback(session, row)
    log.info("recording %s (%s): callback %s, now %s", row.id, row.kind, status[:32], row.status)
    return row


# --- callbacks kept on disk while the database is down ----------------------------------

SPOOL_FOLDER = "recordings"  # under SPOOL_DIR, beside the spooled messages
CALLBACK_FIELDS = ("RecordingSid", "RecordingUrl", "RecordingStatus", "RecordingDuration", "CallSid")


def spool_callback(config: Mapping, provider: str, form: Mapping, kind: str | None) -> Path:
    """Keep a recording callback the database could not take (providers do not retry it:
    without this the recording would stay at the provider, unknown here). No number in it."""
    record = {"provider": provider, "kind": kind, **{k: form.get(k) for k in CALLBACK_FIELDS}}
    return spool.write_record(Path(config["SPOOL_DIR"]) / SPOOL_FOLDER, f"{provider}:{form.get('RecordingSid')}",
                              record)


def import_spooled(svc, limit: int = 200) -> int:
    """Apply the spooled recording callbacks (idempotent: `completed` is); a file goes once applied."""
    done = 0
    for path in spool.pending(Path(svc.config["SPOOL_DIR"]) / SPOOL_FOLDER, limit):
        try:
            record = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            continue
        except (OSError, ValueError) as exc:
            log.error("spooled recording callback %s unreadable, set aside as .bad: %s", path.name, exc)
            path.replace(path.with_suffix(".bad"))
            continue
        try:
            completed(svc.session, svc.redis, record["provider"], record["RecordingSid"], record.get("RecordingUrl"),
                      record.get("RecordingStatus"), record.get("RecordingDuration"), record.get("CallSid"),
                      record.get("kind"))
        except (KeyError, ValueError) as exc:
            log.error("spooled recording callback %s invalid, set aside as .bad: %s", path.name, exc)
            path.replace(path.with_suffix(".bad"))
            continue
        spool.remove(path)
        done += 1
    return done


def _get_or_create(session: Session, provider: str, recording_sid: str, kind: str) -> Recording:
    """The row of a provider recording; two first reports at once make one row (the
    unique constraint decides, the loser reads the winner's)."""
    if not recording_sid or len(recording_sid) > 64:
        raise ValueError("a recording sid of at most 64 characters is required")
    wanted = select(Recording).where(Recording.provider == provider, Recording.recording_sid == recording_sid) \
        .execution_options(populate_existing=True)
    row = session.scalar(wanted)
    if row is not None:
        return row
    row = Recording(provider=provider, recording_sid=recording_sid, kind=kind, status="pending", attempts=0,
                    created_at=utcnow())
    try:
        with session.begin_nested():
            session.add(row)
    except IntegrityError:
        row = session.scalar(wanted)
    return row


def _fill(row: Recording, provider_url, seconds, kind, call_id, alert_id) -> None:
    """What a later report knows and the row does not; never a status."""
    if kind and row.kind == UNKNOWN:
        row.kind = kind
    if call_id and row.call_id is None:
        row.call_id = call_id
    if alert_id and row.alert_id is None:
        row.alert_id = alert_id
    if seconds not in (None, "") and row.seconds is None:
        try:
            row.seconds = max(0, int(float(seconds)))
        except (TypeError, ValueError):
            pass  # a malformed length is not worth losing the recording for
    if provider_url and row.provider_url is None and row.provider_deleted_at is None and row.status != "stored":
        row.provider_url = str(provider_url)


def _fail(session: Session, recording_id: int, reason: str) -> None:
    session.execute(update(Recording).where(Recording.id == recording_id, Recording.status.in_(OPEN))
                    .values(status="failed", failure_reason=reason[:200])
                    .execution_options(synchronize_session=False))
    session.commit()


# --- fetching (the job) -----------------------------------------------------------------

def fetch(svc, recording_id: int) -> str:
    """Fetch, encrypt and store one available recording, then delete it at the provider;
    returns the recording's status (or "missing", "retrying"). Safe to run twice."""
    session, config = svc.session, svc.config
    row = session.get(Recording, recording_id, populate_existing=True)
    if row is None:
        return "missing"
    if row.status == "stored":
        if row.provider_deleted_at is None:
            delete_at_provider(svc, row)
        return "stored"
    if row.status != "available":
        return row.status
    channel = svc.channels.by_name.get(row.provider)
    if not twilio_calls.can_call(channel):
        _fail(session, row.id, "its channel is no longer configured")
        return "failed"
    if row.attempts >= config["RECORDING_FETCH_ATTEMPTS"]:
        _fail(session, row.id, row.failure_reason or "fetch attempts used up")
        return "failed"
    session.execute(update(Recording).where(Recording.id == row.id, Recording.status == "available")
                    .values(attempts=Recording.attempts + 1).execution_options(synchronize_session=False))
    session.commit()
    session.refresh(row)
    try:
        audio, content_type = download(channel, row.provider_url)
    except FetchError as exc:
        return _retry_or_fail(svc, row, exc)
    name = _write(config["RECORDINGS_DIR"], row.id, encrypt(config, audio))
    stored = session.execute(update(Recording).where(Recording.id == row.id, Recording.status == "available")
                             .values(status="stored", path=name, content_type=content_type, size=len(audio),
                                     sha256=hashlib.sha256(audio).hexdigest(), stored_at=utcnow(),
                                     failure_reason=None)
                             .execution_options(synchronize_session=False)).rowcount
    session.commit()
    if not stored:  # another job stored it first, or the callback said failed meanwhile
        (Path(config["RECORDINGS_DIR"]) / name).unlink(missing_ok=True)
        session.refresh(row)
        return row.status
    session.refresh(row)
    log.info("recording %s stored (%s bytes, %s)", row.id, row.size, content_type)
    delete_at_provider(svc, row)
    return "stored"


def backoff(attempts: int) -> float:
    """Seconds before the fetch after `attempts` tries: RETRY_DELAY, doubled each time."""
    return RETRY_DELAY * 2 ** max(0, attempts - 1)


def _retry_or_fail(svc, row: Recording, exc: FetchError) -> str:
    reason = str(exc)[:200]
    if not exc.retry or row.attempts >= svc.config["RECORDING_FETCH_ATTEMPTS"]:
        log.warning("recording %s not fetched after %s attempts (%s); kept at the provider",
                    row.id, row.attempts, reason)
        _fail(svc.session, row.id, reason)
        return "failed"
    svc.session.execute(update(Recording).where(Recording.id == row.id).values(failure_reason=reason)
                        .execution_options(synchronize_session=False))
    svc.session.commit()
    log.info("recording %s: fetch %s failed (%s); again later", row.id, row.attempts, reason)
    queue.enqueue_recording(svc.redis, row.id, delay=backoff(row.attempts))
    return "retrying"


def provider_address(channel, url: str) -> str:
    """Where the audio of a recording URL is fetched: the provider's own API only, moved
    to the channel's base URL (a stand-in, Somleng) as its http client moves every call."""
    base = getattr(channel.client.http_client, "base_url", API)
    own = (API + "/", base.rstrip("/") + "/")
    if not url or not url.startswith(own):
        raise FetchError("the recording URL is not the provider's API", retry=False)
    path = url[len(API):] if url.startswith(API + "/") else url[len(base.rstrip("/")):]
    if not path.endswith((".wav", ".mp3")):
        path += ".wav"
    return base.rstrip("/") + path


def download(channel, url: str | None) -> tuple[bytes, str]:
    """(audio, content type) of a recording, with the channel's account credentials."""
    address = provider_address(channel, url or "")
    http = channel.client.http_client
    client = getattr(http, "session", None) or requests.Session()
    try:
        # not the twilio client's request(): it decodes the body as text
        with client.get(address, auth=(channel.client.username, channel.client.password), stream=True,
                        timeout=getattr(http, "timeout", None) or 15, allow_redirects=True) as response:
            if response.status_code != 200:
                code = response.status_code
                raise FetchError(f"HTTP {code}", retry=code in (404, 408, 429) or code >= 500)
            audio = bytearray()
            for chunk in response.iter_content(64 * 1024):
                audio += chunk
                if len(audio) > MAX_BYTES:
                    raise FetchError(f"larger than {MAX_BYTES} bytes", retry=False)
    except requests.RequestException as exc:
        raise FetchError(type(exc).__name__, retry=True) from None
    content_type = audio_type(bytes(audio))
    if content_type is None:
        raise FetchError("the provider's answer is not WAV or MP3 audio", retry=True)
    return bytes(audio), content_type


def audio_type(data: bytes) -> str | None:
    """"audio/wav" or "audio/mpeg" by the file's magic, else None. Not prompts.audio_format:
    that bounds a prompt to two minutes, and a caller's report may be longer."""
    if data[:4] == b"RIFF" and data[8:12] == b"WAVE":
        return "audio/wav"
    if data[:3] == b"ID3" or (len(data) > 1 and data[0] == 0xFF and data[1] & 0xE0 == 0xE0):
        return "audio/mpeg"
    return None


# --- deleting at the provider -----------------------------------------------------------

def delete_at_provider(svc, row: Recording) -> bool:
    """Delete a stored recording at the provider; False leaves it for the sweep."""
    if row.status != "stored" or not row.path or not (Path(svc.config["RECORDINGS_DIR"]) / row.path).is_file():
        log.error("recording %s: no copy here, so not deleted at the provider", row.id)
        return False
    channel = svc.channels.by_name.get(row.provider)
    if not twilio_calls.can_call(channel):
        log.warning("recording %s: channel %s gone; not deleted at the provider", row.id, row.provider)
        return False
    try:
        channel.client.recordings(row.recording_sid).delete()
    except TwilioRestException as exc:
        if exc.status != 404:  # 404: already gone there
            log.warning("recording %s: deletion at the provider refused (HTTP %s); next sweep", row.id, exc.status)
            return False
    except (TwilioException, requests.RequestException) as exc:
        log.warning("recording %s: deletion at the provider failed (%s); next sweep", row.id, type(exc).__name__)
        return False
    svc.session.execute(update(Recording).where(Recording.id == row.id, Recording.provider_deleted_at.is_(None))
                        .values(provider_deleted_at=utcnow(), provider_url=None)
                        .execution_options(synchronize_session=False))
    svc.session.commit()
    svc.session.refresh(row)
    return True


# --- encryption at rest -----------------------------------------------------------------

def _fernet(config: Mapping) -> MultiFernet:
    keys = secrets_list(config.get("RECORDING_ENCRYPTION_KEY")) + [
        base64.urlsafe_b64encode(derive(config["SECRET_KEY"], "recording-encryption")).decode()]
    return MultiFernet([Fernet(k) for k in dict.fromkeys(keys)])


def encrypt(config: Mapping, audio: bytes) -> bytes:
    """The Fernet token of the audio, as raw bytes (its base64 would cost a third more)."""
    return base64.urlsafe_b64decode(_fernet(config).encrypt(audio))


def read_audio(config: Mapping, row: Recording) -> bytes:
    """The decrypted audio of a stored recording, checked against its sha256."""
    if row.status != "stored" or not row.path:
        raise RecordingUnavailable(f"recording {row.id} is not stored here")
    try:
        token = (Path(config["RECORDINGS_DIR"]) / row.path).read_bytes()
        audio = _fernet(config).decrypt(base64.urlsafe_b64encode(token))
    except FileNotFoundError:
        raise RecordingUnavailable(f"recording {row.id}: its file is missing") from None
    except InvalidToken:
        raise RecordingUnavailable(f"recording {row.id}: no configured key opens it") from None
    if row.sha256 and hashlib.sha256(audio).hexdigest() != row.sha256:
        raise RecordingUnavailable(f"recording {row.id}: not the audio that was stored")
    return audio


def _write(directory, recording_id: int, data: bytes) -> str:
    """Write one file atomically (temporary, fsync, rename, fsync the folder); its name."""
    folder = Path(directory)
    folder.mkdir(parents=True, exist_ok=True)
    name = f"{recording_id}-{secrets.token_hex(12)}.bin"
    temporary = folder / f".{name}.tmp"
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(temporary, folder / name)
    descriptor = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(descriptor)  # the rename itself survives a power cut
    finally:
        os.close(descriptor)
    return name


# --- playing back (the provider's <Play>) -----------------------------------------------

def _signature(secret: str, recording_id: int, expires: int) -> str:
    key = derive(secret, "voice-recording-url")
    digest = hmac.new(key, f"recording/{recording_id}/{expires}".encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def play_path(recording_id: int) -> str:
    return f"/voice/recordings/{recording_id}"


def play_url(row: Recording, config: Mapping, now: float | None = None) -> str | None:
    """What the provider's <Play> fetches: our signed URL once stored (valid between one
    and two RECORDING_URL_TTL, so a call's replays share one URL), the provider's URL
    before, None if neither."""
    if row.status == "stored" and row.path:
        ttl = int(config["RECORDING_URL_TTL"])
        expires = (int(now if now is not None else time.time()) // ttl + 2) * ttl
        query = urlencode({"expires": expires, "signature": _signature(config["SECRET_KEY"], row.id, expires)})
        return f"{str(config['PUBLIC_BASE_URL']).rstrip('/')}{play_path(row.id)}?{query}"
    if row.provider_url and row.provider_deleted_at is None:
        return row.provider_url
    return None


def check_signature(recording_id: int, expires, signature, config: Mapping, now: float | None = None) -> bool:
    """True if the URL was signed by us for this recording and has not expired."""
    try:
        deadline = int(expires)
    except (TypeError, ValueError):
        return False
    expected = _signature(config["SECRET_KEY"], recording_id, deadline)
    return hmac.compare_digest(expected.encode(), str(signature or "").encode()) and \
        deadline > (now if now is not None else time.time())


# --- the sweep --------------------------------------------------------------------------

def sweep(svc) -> dict:
    """Recordings that fell through: available with no job waiting (a worker killed
    mid-fetch, Redis lost the job), stored but not yet deleted at the provider."""
    session = svc.session
    before, counts = utcnow() - SETTLED, {"queued": 0, "deleted": 0, "spooled": import_spooled(svc)}
    for recording_id in session.scalars(select(Recording.id).where(
            Recording.status == "available", Recording.created_at < before)).all():
        if not queue.recording_waiting(svc.redis, recording_id):
            counts["queued"] += queue.enqueue_recording(svc.redis, recording_id, unless_waiting=True)
    for row in session.scalars(select(Recording).where(
            Recording.status == "stored", Recording.provider_deleted_at.is_(None), Recording.stored_at < before)
            .order_by(Recording.id).limit(100).execution_options(populate_existing=True)).all():
        counts["deleted"] += delete_at_provider(svc, row)
    return counts
