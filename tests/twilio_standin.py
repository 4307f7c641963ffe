"""A local stand-in for Twilio's Messages API, so the real twilio client sends somewhere.

It answers ``POST /2010-04-01/Accounts/<sid>/Messages.json`` like Twilio (201 and a
message resource with a new SM sid), records each request, and can refuse a number
with a Twilio error code (e.g. 21610, the number opted out at the carrier). ``GET`` of
the same path lists what it took (newest first, filtered by ``To``), as Twilio does, so
a send of unknown outcome can be looked up. ``cut(n)`` makes the next n sends be taken
but answered by a dropped connection: the sender cannot know the message left.

The Calls API too: ``POST .../Calls.json`` records each call placed (``calls``), answers
201 and a call resource with a new CA sid, or the error set for that number
(``fail_calls_for``), or throttles, or drops the connection once it has taken the call
(``cut_calls``), optionally after ``call_delay`` seconds. Each call ends the way
``call_outcomes`` says for its number (one status per call, in order; "completed", i.e.
answered, by default). ``progress(call)`` gives the status callbacks Twilio would post
(signed by whoever posts them); with ``deliver_statuses(base_url, auth_token)`` the
stand-in posts them itself, signed, to a local server. ``GET .../Calls.json`` lists the
calls (newest first, filtered by To and From) and ``GET .../Calls/<sid>.json`` fetches
one, so a dial of unknown outcome can be looked up (unless ``call_log`` is False).

Recordings: ``add_recording(sid, audio)`` keeps a caller's audio and gives its
RecordingUrl as Twilio gives it (on api.twilio.com); ``GET .../Recordings/<sid>.wav`` (or
``.mp3``) answers it to the account's basic auth only (401 otherwise), 404 if unknown or
deleted; ``DELETE .../Recordings/<sid>.json`` answers 204 and notes the sid in
``deleted_recordings``. ``fail_recording_fetches(n, status)`` answers the next n fetches
with 500 (or 404: "not ready yet"), ``fail_recording_deletes(n)`` the next n deletions.
"""

from __future__ import annotations

import base64
import json
import re
import secrets
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlencode, urlsplit

from twilio.request_validator import RequestValidator

PATH = re.compile(r"^/2010-04-01/Accounts/(AC\w+)/Messages\.json$")
CALLS = re.compile(r"^/2010-04-01/Accounts/(AC\w+)/Calls\.json$")
CALL = re.compile(r"^/2010-04-01/Accounts/(AC\w+)/Calls/(CA\w+)\.json$")
RECORDING = re.compile(r"^/2010-04-01/Accounts/(AC\w+)/Recordings/(RE\w+)\.(wav|mp3|json)$")
TERMINAL = ("completed", "busy", "no-answer", "failed", "canceled")
DEFAULT_ACCOUNT = "AC" + "0" * 31 + "1"  # tests/conftest.py's account
DEFAULT_TOKEN = "test-auth-token"


@dataclass
class SentMessage:
    sid: str
    account_sid: str
    to: str
    body: str
    sender: str | None
    status_callback: str | None
    params: dict = field(repr=False)
    at: datetime = field(default_factory=lambda: datetime.now(timezone.utc))


@dataclass
class PlacedCall:
    """One request to the Calls API, as taken: who, from which line, which TwiML URL."""

    sid: str
    account_sid: str
    to: str
    sender: str | None
    url: str | None
    status_callback: str | None
    events: list[str]  # StatusCallbackEvent values asked for
    params: dict = field(repr=False)  # first value of each parameter
    outcome: str = "completed"  # how the call will end
    status: str = "queued"  # as the API shows it now
    at: datetime = field(default_factory=lambda: datetime.now(timezone.utc))


class TwilioStandin:
    def __init__(self):
        self.sent: list[SentMessage] = []
        self.errors: dict[str, tuple[int, int]] = {}  # To -> (HTTP status, Twilio code)
        self.cuts = 0  # the next sends taken but never answered
        self.throttles = 0  # the next sends refused with 429 Too Many Requests (code 20429)
        self.on_send = None  # called with each SentMessage once taken, before it is answered
        self.lookups = 0
        # the Calls API
        self.calls: list[PlacedCall] = []
        self.call_outcomes: dict[str, list[str]] = {}  # To -> how its next calls end, in order
        self.call_errors: dict[str, tuple[int, int]] = {}  # To -> (HTTP status, Twilio code)
        self.call_cuts = 0  # the next calls taken but never answered
        self.call_throttles = 0  # the next calls refused with 429
        self.call_delay = 0.0  # s before a Calls request is answered, once taken
        self.call_lookups = 0
        self.call_log = True  # False: the call log is not offered (404), as on a gateway without one
        self.on_call = None  # called with each PlacedCall once taken, before it is answered
        self._deliver: tuple[str, str, float] | None = None  # (base URL, auth token, delay)
        # recordings: sid -> (account sid, auth token, audio)
        self.recordings: dict[str, tuple[str, str, bytes]] = {}
        self.recording_fetches: list[str] = []  # sids of every GET of a recording's audio, in order
        self.deleted_recordings: list[str] = []
        self.recording_fetch_failures: list[int] = []  # HTTP statuses of the next fetches
        self.recording_delete_failures: list[int] = []  # HTTP statuses of the next deletions
        self.lock = threading.Lock()
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def fail_for(self, to: str, code: int, status: int = 400) -> None:
        self.errors[to] = (status, code)

    def cut(self, count: int = 1) -> None:
        self.cuts = count

    def throttle(self, count: int = 1) -> None:
        self.throttles = count

    # -- the Calls API ---------------------------------------------------------------------
    def end_calls(self, to: str, *statuses: str) -> None:
        """The next calls to `to` end so, one status each: busy, no-answer, failed, completed..."""
        self.call_outcomes.setdefault(to, []).extend(statuses)

    def fail_calls_for(self, to: str, code: int, status: int = 400) -> None:
        self.call_errors[to] = (status, code)

    def cut_calls(self, count: int = 1) -> None:
        self.call_cuts = count

    def throttle_calls(self, count: int = 1) -> None:
        self.call_throttles = count

    def calls_to(self, to: str) -> list[PlacedCall]:
        with self.lock:
            return [c for c in self.calls if c.to == to]

    def progress(self, call: PlacedCall) -> list[tuple[str, dict]]:
        """Let the call end as planned: the (status callback URL, form) pairs Twilio would
        post, in order (the answer first if "answered" was asked for, then the end)."""
        statuses = (["in-progress"] if call.outcome == "completed" and "answered" in call.events else []) \
            + [call.outcome]
        with self.lock:
            call.status = call.outcome
        if not call.status_callback:
            return []
        return [(call.status_callback, self.status_params(call, status, n)) for n, status in enumerate(statuses)]

    def status_params(self, call: PlacedCall, status: str, sequence: int = 0) -> dict:
        """A call-progress status callback's form, as Twilio posts it."""
        params = {"AccountSid": call.account_sid, "ApiVersion": "2010-04-01", "CallSid": call.sid,
                  "CallStatus": status, "Direction": "outbound-api", "From": call.sender or "", "To": call.to,
                  "Called": call.to, "Caller": call.sender or "", "CallbackSource": "call-progress-events",
                  "SequenceNumber": str(sequence), "Timestamp": _rfc2822(datetime.now(timezone.utc))}
        if status == "completed":
            params["CallDuration"] = params["Duration"] = "42"
        return params

    def deliver_statuses(self, base_url: str, auth_token: str, delay: float = 0.0) -> None:
        """Post every call's status callbacks, signed with `auth_token` for the public URL
        the call named, to the same path and query at `base_url` (a local server)."""
        self._deliver = (base_url.rstrip("/"), auth_token, delay)

    def _post_statuses(self, call: PlacedCall) -> None:
        base, token, delay = self._deliver
        validator = RequestValidator(token)
        time.sleep(delay)
        for url, params in self.progress(call):
            parts = urlsplit(url)
            target = base + parts.path + (f"?{parts.query}" if parts.query else "")
            request = urllib.request.Request(target, data=urlencode(params).encode(), method="POST", headers={
                "X-Twilio-Signature": validator.compute_signature(url, params),
                "Content-Type": "application/x-www-form-urlencoded"})
            try:
                urllib.request.urlopen(request, timeout=10).close()
            except (urllib.error.URLError, OSError):
                pass  # Twilio does not retry a status callback either

    # -- recordings ------------------------------------------------------------------------
    def add_recording(self, sid: str, audio: bytes, account_sid: str = DEFAULT_ACCOUNT,
                      auth_token: str = DEFAULT_TOKEN) -> str:
        """Keep a caller's recording; its RecordingUrl as Twilio gives it (no extension)."""
        with self.lock:
            self.recordings[sid] = (account_sid, auth_token, audio)
        return f"https://api.twilio.com/2010-04-01/Accounts/{account_sid}/Recordings/{sid}"

    def fail_recording_fetches(self, count: int = 1, status: int = 500) -> None:
        with self.lock:
            self.recording_fetch_failures.extend([status] * count)

    def fail_recording_deletes(self, count: int = 1, status: int = 500) -> None:
        with self.lock:
            self.recording_delete_failures.extend([status] * count)

    def start(self) -> "TwilioStandin":
        self.thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def _handler(self):
        standin = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # keep test output (and numbers) out of stderr
                pass

            def do_POST(self):
                calls = CALLS.match(self.path)
                if calls:
                    return self._create_call(calls.group(1))
                match = PATH.match(self.path)
                if not match:
                    return self._json(404, {"code": 20404, "message": "The requested resource was not found",
                                            "status": 404})
                length = int(self.headers.get("Content-Length") or 0)
                params = {k: v[0] for k, v in parse_qs(self.rfile.read(length).decode()).items()}
                to = params.get("To", "")
                with standin.lock:
                    throttled, standin.throttles = standin.throttles > 0, max(0, standin.throttles - 1)
                if throttled:
                    return self._json(429, {"code": 20429, "message": "Too Many Requests", "status": 429,
                                            "more_info": "https://www.twilio.com/docs/errors/20429"})
                if to in standin.errors:
                    status, code = standin.errors[to]
                    return self._json(status, {"code": code, "message": f"error {code}", "status": status,
                                               "more_info": f"https://www.twilio.com/docs/errors/{code}"})
                sid = "SM" + secrets.token_hex(16)
                sent = SentMessage(sid, match.group(1), to, params.get("Body", ""), params.get("From"),
                                   params.get("StatusCallback"), params)
                with standin.lock:
                    standin.sent.append(sent)
                    cut, standin.cuts = standin.cuts > 0, max(0, standin.cuts - 1)
                if standin.on_send is not None:
                    standin.on_send(sent)
                if cut:  # taken, but the answer never reaches the sender
                    self.close_connection = True
                    self.connection.shutdown(2)
                    return
                self._json(201, _resource(sent))

            def do_GET(self):
                path, _, query = self.path.partition("?")
                if RECORDING.match(path):
                    return self._recording("GET", *RECORDING.match(path).groups())
                if CALLS.match(path) or CALL.match(path):
                    return self._read_calls(path, query)
                match = PATH.match(path)
                if not match:
                    return self._json(404, {"code": 20404, "message": "not found", "status": 404})
                to = {k: v[0] for k, v in parse_qs(query).items()}.get("To")
                with standin.lock:
                    standin.lookups += 1
                    found = [m for m in reversed(standin.sent) if to is None or m.to == to][:50]
                self._json(200, {"messages": [_resource(m) for m in found], "page": 0, "page_size": 50,
                                 "start": 0, "end": max(0, len(found) - 1), "uri": path,
                                 "first_page_uri": path, "next_page_uri": None, "previous_page_uri": None})

            def do_DELETE(self):
                match = RECORDING.match(self.path.partition("?")[0])
                if not match:
                    return self._json(404, {"code": 20404, "message": "not found", "status": 404})
                return self._recording("DELETE", *match.groups())

            def _recording(self, method: str, account_sid: str, sid: str, extension: str):
                with standin.lock:
                    kept = standin.recordings.get(sid)
                if kept is None or kept[0] != account_sid:
                    return self._json(404, {"code": 20404, "message": "not found", "status": 404})
                if self.headers.get("Authorization") != _basic(account_sid, kept[1]):
                    return self._json(401, {"code": 20003, "message": "Authenticate", "status": 401})
                if method == "DELETE":
                    if extension != "json":
                        return self._json(404, {"code": 20404, "message": "not found", "status": 404})
                    with standin.lock:
                        failure = standin.recording_delete_failures.pop(0) if standin.recording_delete_failures \
                            else None
                        if failure is None:
                            del standin.recordings[sid]
                            standin.deleted_recordings.append(sid)
                    if failure is not None:
                        return self._json(failure, {"code": 20500, "message": "error", "status": failure})
                    self.send_response(204)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                if extension == "json":
                    return self._json(200, {"sid": sid, "account_sid": account_sid, "status": "completed"})
                with standin.lock:
                    standin.recording_fetches.append(sid)
                    failure = standin.recording_fetch_failures.pop(0) if standin.recording_fetch_failures else None
                if failure is not None:
                    return self._json(failure, {"code": 20404 if failure == 404 else 20500,
                                                "message": "error", "status": failure})
                audio = kept[2]
                self.send_response(200)
                self.send_header("Content-Type", "audio/x-wav" if extension == "wav" else "audio/mpeg")
                self.send_header("Content-Length", str(len(audio)))
                self.end_headers()
                self.wfile.write(audio)

            def _create_call(self, account_sid: str):
                length = int(self.headers.get("Content-Length") or 0)
                form = parse_qs(self.rfile.read(length).decode())
                params = {k: v[0] for k, v in form.items()}
                to = params.get("To", "")
                if not to or not (params.get("Url") or params.get("Twiml") or params.get("ApplicationSid")):
                    return self._json(400, {"code": 21205, "message": "Url parameter is required", "status": 400})
                with standin.lock:
                    throttled, standin.call_throttles = standin.call_throttles > 0, max(0, standin.call_throttles - 1)
                if throttled:
                    return self._json(429, {"code": 20429, "message": "Too Many Requests", "status": 429})
                if to in standin.call_errors:
                    status, code = standin.call_errors[to]
                    return self._json(status, {"code": code, "message": f"error {code}", "status": status,
                                               "more_info": f"https://www.twilio.com/docs/errors/{code}"})
                with standin.lock:
                    planned = standin.call_outcomes.get(to) or []
                    outcome = planned.pop(0) if planned else "completed"
                    call = PlacedCall("CA" + secrets.token_hex(16), account_sid, to, params.get("From"),
                                      params.get("Url"), params.get("StatusCallback"),
                                      form.get("StatusCallbackEvent", []), params, outcome)
                    standin.calls.append(call)
                    cut, standin.call_cuts = standin.call_cuts > 0, max(0, standin.call_cuts - 1)
                if standin.on_call is not None:
                    standin.on_call(call)
                if standin._deliver is not None:
                    threading.Thread(target=standin._post_statuses, args=(call,), daemon=True).start()
                if standin.call_delay:
                    time.sleep(standin.call_delay)
                if cut:  # placed, but the answer never reaches the caller of the API
                    self.close_connection = True
                    self.connection.shutdown(2)
                    return
                self._json(201, _call_resource(call))

            def _read_calls(self, path: str, query: str):
                one = CALL.match(path)
                with standin.lock:
                    standin.call_lookups += 1
                    if not standin.call_log:
                        return self._json(404, {"code": 20404, "message": "not found", "status": 404})
                    if one:
                        found = [c for c in standin.calls if c.sid == one.group(2)]
                        if not found:
                            return self._json(404, {"code": 20404, "message": "not found", "status": 404})
                        return self._json(200, _call_resource(found[0]))
                    wanted = {k: v[0] for k, v in parse_qs(query).items()}
                    found = [c for c in reversed(standin.calls)
                             if c.to == wanted.get("To", c.to) and c.sender == wanted.get("From", c.sender)]
                    size = int(wanted.get("PageSize") or 50)
                    found = found[:size]
                self._json(200, {"calls": [_call_resource(c) for c in found], "page": 0, "page_size": size,
                                 "start": 0, "end": max(0, len(found) - 1), "uri": path, "first_page_uri": path,
                                 "next_page_uri": None, "previous_page_uri": None})

            def _json(self, status: int, body: dict):
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        return Handler


def _resource(sent: SentMessage) -> dict:
    """A message resource as Twilio's API shows it."""
    when = sent.at.strftime("%a, %d %b %Y %H:%M:%S +0000")
    return {"sid": sent.sid, "account_sid": sent.account_sid, "to": sent.to, "from": sent.sender,
            "messaging_service_sid": sent.params.get("MessagingServiceSid"), "body": sent.body,
            "status": "queued", "num_segments": "1", "num_media": "0", "direction": "outbound-api",
            "api_version": "2010-04-01", "price": None, "price_unit": "USD", "error_code": None,
            "error_message": None, "date_created": when, "date_updated": when, "date_sent": None,
            "uri": f"/2010-04-01/Accounts/{sent.account_sid}/Messages/{sent.sid}.json", "subresource_uris": {}}


def _basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def _rfc2822(when: datetime) -> str:
    return when.strftime("%a, %d %b %Y %H:%M:%S +0000")


def _call_resource(call: PlacedCall) -> dict:
    """A call resource as Twilio's API shows it."""
    when = _rfc2822(call.at)
    answered = call.status in ("in-progress", "completed")
    return {"sid": call.sid, "account_sid": call.account_sid, "to": call.to, "to_formatted": call.to,
            "from": call.sender, "from_formatted": call.sender, "status": call.status,
            "direction": "outbound-api", "api_version": "2010-04-01", "parent_call_sid": None,
            "phone_number_sid": None, "answered_by": None, "caller_name": None, "forwarded_from": None,
            "group_sid": None, "trunk_sid": None, "queue_time": "0", "price": None, "price_unit": "USD",
            "date_created": when, "date_updated": when, "start_time": when if answered else None,
            "end_time": when if call.status in TERMINAL else None,
            "duration": "42" if call.status == "completed" else "0",
            "uri": f"/2010-04-01/Accounts/{call.account_sid}/Calls/{call.sid}.json", "subresource_uris": {}}
