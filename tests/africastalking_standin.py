"""A local stand-in for Africa's Talking's SMS API, so the real SDK sends somewhere.

It answers ``POST /version1/messaging`` (where the SDK's ``send`` and ``send_premium``
post once their base URLs point here) as Africa's Talking does: a form-encoded request
(``username``, ``to``, ``message``, ``from``, ``bulkSMSMode``, and for premium messages
``keyword`` and ``linkId``) authenticated by the ``apiKey`` header, and a JSON answer::

    {"SMSMessageData": {"Message": "Sent to 1/1 Total Cost: USD 0.0200",
                        "Recipients": [{"statusCode": 101, "number": "+243...", "status": "Success",
                                        "cost": "USD 0.0200", "messageId": "ATXid_..."}]}}

It records what it took (and every request, taken or not), and can refuse a number with
a per-recipient statusCode and status (``refuse``), answer HTTP errors (``http_error``:
429, 500...), answer late (``delay``), or take the next sends and cut the connection
before answering (``cut``).
"""

from __future__ import annotations

import json
import secrets
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs

PATH = "/version1/messaging"
COST = "USD 0.0200"


@dataclass
class SentSms:
    message_id: str
    username: str
    to: str
    message: str
    sender: str | None
    params: dict = field(repr=False)
    at: datetime = field(default_factory=lambda: datetime.now(timezone.utc))

    @property
    def premium(self) -> bool:
        return self.params.get("bulkSMSMode") == "0"


class AfricasTalkingStandin:
    def __init__(self, username: str = "alerte", api_key: str = "at-test-key"):
        self.username, self.api_key = username, api_key
        self.sent: list[SentSms] = []
        self.requests: list[dict] = []  # every POST's form fields and apiKey, taken or not
        self.refusals: dict[str, tuple[int, str]] = {}  # number -> (statusCode, status)
        self.http_errors: list[tuple[int, float | None]] = []  # the next answers: (HTTP status, Retry-After)
        self.delay = 0.0  # s before answering (after taking the message)
        self.cuts = 0  # the next sends taken but never answered
        self.lock = threading.Lock()
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def refuse(self, number: str, status_code: int, status: str) -> None:
        """Answer sends to this number with this per-recipient refusal (e.g. 406 UserInBlacklist)."""
        self.refusals[number] = (status_code, status)

    def http_error(self, status: int, count: int = 1, retry_after: float | None = None) -> None:
        """Answer the next `count` requests with this HTTP status, taking nothing."""
        self.http_errors.extend([(status, retry_after)] * count)

    def cut(self, count: int = 1) -> None:
        self.cuts = count

    def start(self) -> "AfricasTalkingStandin":
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
                length = int(self.headers.get("Content-Length") or 0)
                params = {k: v[0] for k, v in parse_qs(self.rfile.read(length).decode(),
                                                        keep_blank_values=True).items()}
                with standin.lock:
                    standin.requests.append({"path": self.path, "apiKey": self.headers.get("apiKey"),
                                             "accept": self.headers.get("Accept"), **params})
                    error = standin.http_errors.pop(0) if standin.http_errors else None
                if self.path != PATH:
                    return self._text(404, "Not Found")
                if self.headers.get("apiKey") != standin.api_key or params.get("username") != standin.username:
                    return self._text(401, "The supplied authentication is invalid")
                if error is not None:
                    status, retry_after = error
                    return self._text(status, "Too Many Requests" if status == 429 else "Internal Server Error",
                                      retry_after)
                if not params.get("to") or "message" not in params:
                    return self._text(400, "Request is missing required form field 'to'")
                recipients, taken = [], 0
                for number in params["to"].split(","):
                    if number in standin.refusals:
                        code, status = standin.refusals[number]
                        recipients.append({"statusCode": code, "number": number, "status": status,
                                           "cost": "0", "messageId": "None"})
                        continue
                    sent = SentSms("ATXid_" + secrets.token_hex(16), params["username"], number,
                                   params["message"], params.get("from"), params)
                    with standin.lock:
                        standin.sent.append(sent)
                    taken += 1
                    recipients.append({"statusCode": 101, "number": number, "status": "Success",
                                       "cost": COST, "messageId": sent.message_id})
                with standin.lock:
                    cut, standin.cuts = standin.cuts > 0 and taken > 0, max(0, standin.cuts - (taken > 0))
                if standin.delay:
                    time.sleep(standin.delay)
                if cut:  # taken, but the answer never reaches the sender
                    self.close_connection = True
                    self.connection.shutdown(2)
                    return
                total = f"Total Cost: {COST if taken else '0'}"
                self._json(201, {"SMSMessageData": {"Message": f"Sent to {taken}/{len(recipients)} {total}",
                                                    "Recipients": recipients}})

            def _json(self, status: int, body: dict):
                self._send(status, json.dumps(body).encode(), "application/json")

            def _text(self, status: int, text: str, retry_after: float | None = None):
                self._send(status, text.encode(), "text/plain", retry_after)

            def _send(self, status: int, data: bytes, mimetype: str, retry_after: float | None = None):
                self.send_response(status)
                self.send_header("Content-Type", mimetype)
                self.send_header("Content-Length", str(len(data)))
                if retry_after is not None:
                    self.send_header("Retry-After", str(int(retry_after)))
                self.end_headers()
                self.wfile.write(data)

        return Handler
