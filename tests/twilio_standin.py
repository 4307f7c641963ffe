"""A local stand-in for Twilio's Messages API, so the real twilio client sends somewhere.

It answers ``POST /2010-04-01/Accounts/<sid>/Messages.json`` like Twilio (201 and a
message resource with a new SM sid), records each request, and can refuse a number
with a Twilio error code (e.g. 21610, the number opted out at the carrier). ``GET`` of
the same path lists what it took (newest first, filtered by ``To``), as Twilio does, so
a send of unknown outcome can be looked up. ``cut(n)`` makes the next n sends be taken
but answered by a dropped connection: the sender cannot know the message left.
"""

from __future__ import annotations

import json
import re
import secrets
import threading
from dataclasses import dataclass, field
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs

PATH = re.compile(r"^/2010-04-01/Accounts/(AC\w+)/Messages\.json$")


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


class TwilioStandin:
    def __init__(self):
        self.sent: list[SentMessage] = []
        self.errors: dict[str, tuple[int, int]] = {}  # To -> (HTTP status, Twilio code)
        self.cuts = 0  # the next sends taken but never answered
        self.throttles = 0  # the next sends refused with 429 Too Many Requests (code 20429)
        self.on_send = None  # called with each SentMessage once taken, before it is answered
        self.lookups = 0
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
