"""A local stand-in for an HTTP SMS gateway (an aggregator, a relay app), for the
generic HTTP channel (service/channels/http.py) to send to.

It checks the ``X-Alerte-Signature`` of every request as a real gateway would (403 and
nothing taken otherwise), reads JSON or form bodies with configurable field names,
records what it took and answers ``{"id": "<gateway id>"}``. It can be told to refuse a
number with an error string (``refuse``), to throttle (429 with Retry-After), to fail
(500), to answer late (``delay``), or to take a message and cut the connection before
answering (``cut``). ``POST /lookup`` lists what it took for a number, as the channel's
``find_sent`` expects.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qsl

HEADER = "X-Alerte-Signature"


@dataclass
class Taken:
    id: str
    to: str
    text: str
    sender: str | None
    reference: str | None
    body: bytes = field(repr=False)
    content_type: str = ""
    at: datetime = field(default_factory=lambda: datetime.now(timezone.utc))


class HttpGatewayStandin:
    def __init__(self, secret: str, fields: dict | None = None, id_field: str = "id",
                 error_field: str = "error"):
        self.secret = secret
        self.fields = {"to": "to", "text": "text", "from": "from", "id": "id", **(fields or {})}
        self.id_field, self.error_field = id_field, error_field
        self.answer_without_id = False
        self.sent: list[Taken] = []
        self.requests: list[tuple[str, int]] = []  # (path, status answered), every request
        self.forged = 0  # requests refused for their signature
        self.refusals: dict[str, tuple[int, str]] = {}  # to -> (HTTP status, error string)
        self.plan: list[tuple[str, object]] = []  # the next answers: ("429", retry_after), ("500", None)...
        self.delay = 0.0
        self.cuts = 0
        self.cut_keeps = True
        self.lookups = 0
        self.lock = threading.Lock()
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05},
                                       daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    @property
    def send_url(self) -> str:
        return self.url + "/send"

    @property
    def lookup_url(self) -> str:
        return self.url + "/lookup"

    def refuse(self, to: str, error: str, status: int = 400) -> None:
        self.refusals[to] = (status, error)

    def throttle(self, count: int = 1, retry_after: str = "7") -> None:
        self.plan.extend([("429", retry_after)] * count)

    def fail(self, count: int = 1, status: int = 500) -> None:
        self.plan.extend([(str(status), None)] * count)

    def cut(self, count: int = 1, keep: bool = True) -> None:
        """The next `count` sends get a dropped connection instead of an answer; `keep`:
        the gateway took them (else it lost them: nothing in its record)."""
        self.cuts, self.cut_keeps = count, keep

    def start(self) -> "HttpGatewayStandin":
        self.thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def _handler(self):
        standin = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # keep numbers out of the test output
                pass

            def do_POST(self):
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length)
                expected = "sha256=" + hmac.new(standin.secret.encode(), raw, hashlib.sha256).hexdigest()
                if not hmac.compare_digest(expected, self.headers.get(HEADER, "")):
                    with standin.lock:
                        standin.forged += 1
                    return self._json(403, {standin.error_field: "bad signature"})
                content_type = self.headers.get("Content-Type", "")
                try:
                    doc = json.loads(raw) if content_type.startswith("application/json") \
                        else dict(parse_qsl(raw.decode(), keep_blank_values=True))
                except ValueError:
                    return self._json(400, {standin.error_field: "bad body"})
                if self.path == "/lookup":
                    return self._lookup(doc)
                if self.path != "/send":
                    return self._json(404, {standin.error_field: "not found"})
                return self._send(doc, raw, content_type)

            def _send(self, doc, raw, content_type):
                names = standin.fields
                to, text = doc.get(names["to"]), doc.get(names["text"])
                if not to or text is None:
                    return self._json(400, {standin.error_field: "missing fields"})
                with standin.lock:
                    planned = standin.plan.pop(0) if standin.plan else None
                if planned is not None:
                    status, retry_after = planned
                    headers = {"Retry-After": retry_after} if retry_after else {}
                    return self._json(int(status), {standin.error_field: "busy"}, headers)
                if to in standin.refusals:
                    status, error = standin.refusals[to]
                    return self._json(status, {standin.error_field: error})
                taken = Taken("GW" + secrets.token_hex(8), to, text, doc.get(names["from"]),
                              doc.get(names["id"]), raw, content_type)
                with standin.lock:
                    cut, standin.cuts = standin.cuts > 0, max(0, standin.cuts - 1)
                    if not cut or standin.cut_keeps:
                        standin.sent.append(taken)
                if standin.delay:
                    time.sleep(standin.delay)
                if cut:  # taken, but the answer never reaches the sender
                    self.close_connection = True
                    self.connection.shutdown(2)
                    return
                answer = {} if standin.answer_without_id else {standin.id_field: taken.id}
                self._json(200, answer)

            def _lookup(self, doc):
                to = doc.get(standin.fields["to"])
                since = datetime.fromisoformat(doc["since"]) if doc.get("since") else None
                with standin.lock:
                    standin.lookups += 1
                    found = [t for t in standin.sent if t.to == to and (since is None or t.at >= since)]
                self._json(200, {"messages": [{standin.id_field: t.id, standin.fields["text"]: t.text}
                                              for t in found]})

            def _json(self, status: int, body: dict, headers: dict | None = None):
                data = json.dumps(body).encode()
                with standin.lock:
                    standin.requests.append((self.path, status))
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                for name, value in (headers or {}).items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(data)

        return Handler
