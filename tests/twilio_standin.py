"""A local stand-in for Twilio's Messages API, so the real twilio client sends somewhere.

It answers ``POST /2010-04-01/Accounts/<sid>/Messages.json`` like Twilio (201 and a
message resource with a new SM sid), records each request, and can refuse a number
with a Twilio error code (e.g. 21610, the number opted out at the carrier).
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


class TwilioStandin:
    def __init__(self):
        self.sent: list[SentMessage] = []
        self.errors: dict[str, tuple[int, int]] = {}  # To -> (HTTP status, Twilio code)
        self.lock = threading.Lock()
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def fail_for(self, to: str, code: int, status: int = 400) -> None:
        self.errors[to] = (status, code)

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
                if to in standin.errors:
                    status, code = standin.errors[to]
                    return self._json(status, {"code": code, "message": f"error {code}", "status": status,
                                               "more_info": f"https://www.twilio.com/docs/errors/{code}"})
                sid = "SM" + secrets.token_hex(16)
                with standin.lock:
                    standin.sent.append(SentMessage(sid, match.group(1), to, params.get("Body", ""),
                                                    params.get("From"), params.get("StatusCallback"), params))
                now = datetime.now(timezone.utc).strftime("%a, %d %b %Y %H:%M:%S +0000")
                self._json(201, {
                    "sid": sid, "account_sid": match.group(1), "to": to, "from": params.get("From"),
                    "messaging_service_sid": params.get("MessagingServiceSid"), "body": params.get("Body", ""),
                    "status": "queued", "num_segments": "1", "num_media": "0", "direction": "outbound-api",
                    "api_version": "2010-04-01", "price": None, "price_unit": "USD", "error_code": None,
                    "error_message": None, "date_created": now, "date_updated": now, "date_sent": None,
                    "uri": f"/2010-04-01/Accounts/{match.group(1)}/Messages/{sid}.json",
                    "subresource_uris": {}})

            def _json(self, status: int, body: dict):
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        return Handler
