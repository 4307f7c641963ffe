"""A generic HTTP gateway: local aggregators, operator short codes, Android SMS relay apps.

Every request either way is signed with the header
``X-Alerte-Signature: sha256=<hex HMAC-SHA256 of the raw body>``; an inbound request
without a valid signature gets 403 and nothing is stored. The signature covers the body
only: a replayed inbound message is a duplicate (stored once, by the gateway's id), a
replayed delivery report cannot move a status backwards.

Routes (``<name>`` is the channel's name in the channels list):

* ``POST /webhooks/http/<name>/sms``: an inbound SMS, by default the JSON object
  ``{"from": "+243...", "to": "...", "text": "...", "id": "<gateway id>",
  "received_at": "<ISO 8601, optional>"}``;
* ``POST /webhooks/http/<name>/status``: a delivery report ``{"id", "status", "error"}``;
* outbound: we POST ``{"to", "text", "from", "id"}``, signed the same way, to
  ``send_url`` and expect a 2xx answer ``{"id": "<gateway id>"}``.

Settings of a channels-file entry (``kind: http``), besides the common ones
(name, numbers, carriers, default, send_rate)::

    - name: relay1
      kind: http
      secret: "..."              # required: HMAC key of the gateway's requests (a list
                                 #   of keys is accepted while rotating; the first signs)
      send_url: https://relay.example.org/send   # where outbound SMS are POSTed; required
                                 #   unless inline_replies
      send_secret: "..."         # optional: key signing what we send (default: secret)
      encoding: json             # json (default) or form (application/x-www-form-
                                 #   urlencoded; multipart is read too) for inbound,
                                 #   status and outbound bodies
      from: "+243990000100"      # our sender number or short code, sent as "from"
      timeout: 15                # seconds to wait for the gateway's answer (connect: 5 at most)
      inline_replies: false      # true: the reply goes back in the webhook's own answer,
                                 #   always JSON {"messages": ["...", ...]}
      lookup_url: https://relay.example.org/lookup  # optional, see find_sent()
      status_map: {DELIVRD: delivered, UNDELIV: undelivered, REJECTD: failed}
      opted_out_errors: ["UserInBlacklist"]     # the gateway's error strings meaning the
      invalid_number_errors: ["InvalidNumber"]  #   person opted out / not a mobile number
      fields:                    # rename fields; each section is optional, and so is
        inbound: {from: sender, text: message, id: uid, to: null}     # every key in it
        status: {id: uid, status: state, error: reason}
        send: {to: phone, text: message, from: null, id: ref}
        answer: {id: message_id, error: error}
        reply: {messages: messages}

Field defaults: inbound ``from, to, text, id, received_at``; status ``id, status,
error``; send ``to, text, from, id``; answer (the gateway's answer to a send or lookup)
``id, error``; reply (an inline answer) ``messages``. A JSON field may name a nested key
with dots (``payload.from``). ``null`` drops an optional field: inbound ``to`` and
``received_at``, status ``error``, send ``from`` and ``id``.

``received_at``: ISO 8601 (naive means UTC) or Unix time in seconds or milliseconds;
when given it sets the message's place in its sender's order (a relay phone forwarding
late keeps the order the person wrote in); a time ahead of ours is taken as now.

Status words: ours are understood by default (queued and sending mean the gateway has
it: "sent"; delivered, undelivered, failed, canceled); ``status_map`` adds the gateway's
words (case-insensitive). An unknown word is "failed" when the report carries an error,
else "sent". An error string listed in ``opted_out_errors`` opts the person out here too
(in a delivery report or in the answer to a send); ``invalid_number_errors`` fail the
message without retry.

Sending: the body carries, in the send ``id`` field, a reference of ours. The core
does not give a channel our message id (``send(to, body, reply_context)``), so this
reference is fresh for every call: it lets a gateway that returns no id of its own
report on the message by ours (then it is the message's provider id), but it is not an
idempotency key across retries (``send`` takes one as ``idempotency_key=`` should the
core pass it). Answers: 2xx sent; 429 and 5xx retryable (``Retry-After`` honoured as
``retry_after``); any other answer a permanent refusal. A refused or timed-out connect
never reached the gateway and is retried; a read timeout or a connection cut after the
request left is an unknown outcome (``SendError(unknown=True)``), settled by
``find_sent()``. Each send opens its own connection, so a stale kept-alive connection
can never turn a send into an unknown outcome.

Reporter safety: no phone number is logged, put in an error, or echoed in a response;
what the gateway says back (error strings) is stripped of digit runs before it is kept.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import json
import logging
import re
import secrets
from datetime import datetime, timezone
from email.utils import parsedate_to_datetime
from urllib.parse import parse_qsl, urlencode, urlsplit

import requests
from flask import Request, Response

from service.channels.base import (
    BadRequest, Channel, InboundMessage, LookupUnsupported, SendError, StatusUpdate,
)
from service.config import DEV_VALUES
from service.privacy import InvalidNumber, normalise

log = logging.getLogger(__name__)

SIGNATURE_HEADER = "X-Alerte-Signature"
SIGNATURE_SCHEME = "sha256"
HEX_DIGEST = re.compile(r"^[0-9a-fA-F]{64}$")
ENCODINGS = {"json": "application/json", "form": "application/x-www-form-urlencoded"}

FIELDS = {
    "inbound": {"from": "from", "to": "to", "text": "text", "id": "id", "received_at": "received_at"},
    "status": {"id": "id", "status": "status", "error": "error"},
    "send": {"to": "to", "text": "text", "from": "from", "id": "id"},
    "answer": {"id": "id", "error": "error"},
    "reply": {"messages": "messages"},
}
REQUIRED_FIELDS = {("inbound", "from"), ("inbound", "id"), ("inbound", "text"), ("status", "id"),
                   ("status", "status"), ("send", "to"), ("send", "text"), ("answer", "id"),
                   ("answer", "error"), ("reply", "messages")}
# our words, understood from any gateway; "queued"/"sending" at the gateway: it has it
STATUS_MAP = {"queued": "sent", "sending": "sent", "sent": "sent", "delivered": "delivered",
              "undelivered": "undelivered", "failed": "failed", "canceled": "canceled"}
REPORTABLE = {"sent", "delivered", "undelivered", "failed", "canceled"}

MAX_ID = 64  # messages.provider_id
MAX_CODE = 64  # messages.error_code
MAX_RECIPIENT = 32
DIGITS = re.compile(r"\+?\d[\d\s().\-]{4,}\d")  # anything that could be a phone number


def _scrub(text: object, limit: int) -> str:
    """A gateway's string, safe to keep or log: digit runs (a number?) removed, bounded."""
    cleaned = DIGITS.sub("…", str(text)).strip()
    return "".join(c for c in cleaned if c.isprintable())[:limit]


def signature(body: bytes, secret: str) -> str:
    """The header value signing `body` with `secret`."""
    digest = hmac.new(secret.encode("utf-8"), body, hashlib.sha256).hexdigest()
    return f"{SIGNATURE_SCHEME}={digest}"


def signed_by(body: bytes, header: str | None, keys: list[str]) -> bool:
    """Whether `header` is a well-formed signature of `body` by one of `keys`."""
    scheme, sep, digest = (header or "").strip().partition("=")
    if not sep or scheme.strip().lower() != SIGNATURE_SCHEME or not HEX_DIGEST.match(digest.strip()):
        return False
    given = digest.strip().lower().encode("ascii")
    found = False
    for key in keys:  # every key compared, in constant time each
        expected = hmac.new(key.encode("utf-8"), body, hashlib.sha256).hexdigest().encode("ascii")
        found = hmac.compare_digest(expected, given) or found
    return found


def _never_connected(exc: BaseException) -> bool:
    """Whether the request certainly never left: the connection was refused or not made."""
    seen, todo = set(), [exc]
    while todo:
        current = todo.pop()
        if current is None or id(current) in seen:
            continue
        seen.add(id(current))
        name = type(current).__name__
        if name in ("NewConnectionError", "NameResolutionError", "ConnectTimeoutError") or \
                isinstance(current, ConnectionRefusedError):
            return True
        todo.extend([getattr(current, "reason", None), current.__cause__, current.__context__])
        todo.extend(a for a in getattr(current, "args", ()) if isinstance(a, BaseException))
    return False


def _retry_after(value: str | None) -> float | None:
    """Retry-After as seconds: a number of seconds or an HTTP date."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    return max(0.0, (when - datetime.now(timezone.utc)).total_seconds())


def _private_host(url: str) -> bool:
    host = urlsplit(url).hostname or ""
    if host == "localhost":
        return True
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return False
    return address.is_loopback or address.is_private


class HttpGatewayChannel(Channel):
    """One HTTP gateway (see the module docstring for its settings)."""

    kind = "http"

    def __init__(self, settings: dict, app_config: dict):
        super().__init__(settings, app_config)
        keys = settings.get("secret")
        keys = [keys] if isinstance(keys, str) else list(keys or [])
        if not keys or not all(isinstance(k, str) and k for k in keys):
            raise ValueError("secret is required (a string, or a list of strings while rotating)")
        self.keys = keys
        self.send_secret = settings.get("send_secret") or keys[0]
        if not isinstance(self.send_secret, str):
            raise ValueError("send_secret must be a string")
        self.encoding = str(settings.get("encoding") or "json").lower()
        if self.encoding not in ENCODINGS:
            raise ValueError(f"encoding must be one of {', '.join(ENCODINGS)}")
        self.inline_replies = bool(settings.get("inline_replies", False))
        self.send_url = settings.get("send_url") or None
        self.lookup_url = settings.get("lookup_url") or None
        for setting in ("send_url", "lookup_url"):
            url = settings.get(setting)
            if url and urlsplit(str(url)).scheme not in ("http", "https"):
                raise ValueError(f"{setting} must be an http(s) URL")
        if not self.send_url and not self.inline_replies:
            raise ValueError("send_url is required unless inline_replies is true")
        self.sender = settings.get("from") or None
        try:
            self.timeout = float(settings.get("timeout") or 15)
        except (TypeError, ValueError):
            raise ValueError("timeout must be a number of seconds") from None
        if self.timeout <= 0:
            raise ValueError("timeout must be positive")
        self.fields = self._fields(settings.get("fields") or {})
        self.status_map = dict(STATUS_MAP)
        configured = settings.get("status_map") or {}
        if not isinstance(configured, dict):
            raise ValueError("status_map must map the gateway's status words onto ours")
        for word, ours in configured.items():
            if ours not in REPORTABLE:
                raise ValueError(f"status_map: {word!r} maps onto {ours!r}, not one of "
                                 f"{', '.join(sorted(REPORTABLE))}")
            self.status_map[str(word).strip().lower()] = ours
        self.opted_out_errors = self._errors(settings, "opted_out_errors")
        self.invalid_number_errors = self._errors(settings, "invalid_number_errors")

    @staticmethod
    def _fields(configured: dict) -> dict:
        if not isinstance(configured, dict):
            raise ValueError("fields must be a mapping of sections (inbound, status, send, answer, reply)")
        fields = {section: dict(names) for section, names in FIELDS.items()}
        for section, names in configured.items():
            if section not in FIELDS:
                raise ValueError(f"fields: unknown section {section!r}; one of {', '.join(FIELDS)}")
            if not isinstance(names, dict):
                raise ValueError(f"fields.{section} must be a mapping")
            for key, name in names.items():
                if key not in FIELDS[section]:
                    raise ValueError(f"fields.{section}: unknown field {key!r}; one of "
                                     f"{', '.join(FIELDS[section])}")
                if name is None and (section, key) in REQUIRED_FIELDS:
                    raise ValueError(f"fields.{section}.{key} cannot be dropped")
                if name is not None and (not isinstance(name, str) or not name):
                    raise ValueError(f"fields.{section}.{key} must be a field name or null")
                fields[section][key] = name
        return fields

    @staticmethod
    def _errors(settings: dict, key: str) -> set[str]:
        values = settings.get(key) or []
        if isinstance(values, str) or not isinstance(values, (list, tuple)):
            raise ValueError(f"{key} must be a list of the gateway's error strings")
        return {str(v).strip().casefold() for v in values}

    def production_problems(self) -> list[str]:
        problems = []
        checked = [("secret", self.keys)]
        if self.settings.get("send_secret"):
            checked.append(("send_secret", [self.send_secret]))
        for name, keys in checked:
            if any(k in DEV_VALUES or len(k) < 16 for k in keys):
                problems.append(f"{name} is a development value or shorter than 16 characters")
        for name in ("send_url", "lookup_url"):
            url = getattr(self, name)
            if url and urlsplit(url).scheme != "https" and not _private_host(url):
                problems.append(f"{name} sends phone numbers unencrypted over the internet (use https)")
        return problems

    # -- routes ------------------------------------------------------------------------
    def inbound_path(self) -> str:
        return f"/webhooks/http/{self.name}/sms"

    def status_path(self) -> str:
        return f"/webhooks/http/{self.name}/status"

    # -- inbound -----------------------------------------------------------------------
    def verify(self, request: Request) -> bool:
        """The signature of the exact raw body, by one of the configured keys."""
        return signed_by(request.get_data(cache=True), request.headers.get(SIGNATURE_HEADER), self.keys)

    def _body(self, request: Request) -> dict:
        raw = request.get_data(cache=True)
        if self.encoding == "json":
            try:
                doc = json.loads(raw.decode("utf-8"))
            except (UnicodeDecodeError, ValueError):
                raise BadRequest("the body is not JSON") from None
            if not isinstance(doc, dict):
                raise BadRequest("the body must be a JSON object")
            return doc
        if request.mimetype == "multipart/form-data":
            return request.form.to_dict()
        try:
            return dict(parse_qsl(raw.decode("utf-8"), keep_blank_values=True))
        except (UnicodeDecodeError, ValueError):
            raise BadRequest("the body is not a form") from None

    def _get(self, doc: dict, section: str, key: str):
        name = self.fields[section][key]
        if name is None:
            return None
        if name in doc or "." not in name:
            value = doc.get(name)
        else:  # a nested JSON key: payload.from
            value = doc
            for part in name.split("."):
                value = value.get(part) if isinstance(value, dict) else None
        if isinstance(value, (dict, list, bool)):
            raise BadRequest(f"{name} must be a string")
        return value if value is None or isinstance(value, str) else str(value)

    def parse_inbound(self, request: Request) -> InboundMessage:
        doc = self._body(request)
        names = self.fields["inbound"]
        provider_id, sender = self._get(doc, "inbound", "id"), self._get(doc, "inbound", "from")
        if not provider_id or not provider_id.strip() or not sender:
            raise BadRequest(f"{names['id']} and {names['from']} are required")
        provider_id = provider_id.strip()
        if len(provider_id) > MAX_ID:
            raise BadRequest(f"{names['id']} is too long")
        try:
            number = normalise(sender)
        except InvalidNumber:
            raise BadRequest(f"{names['from']} is not a phone number") from None
        recipient = self._get(doc, "inbound", "to")
        received_at = self._received_at(doc)
        return InboundMessage(provider_id=provider_id, sender=number,
                              recipient=recipient.strip()[:MAX_RECIPIENT] if recipient else None,
                              body=self._get(doc, "inbound", "text") or "", received_at=received_at,
                              raw=doc)

    def _received_at(self, doc: dict) -> datetime:
        now = datetime.now(timezone.utc)
        name = self.fields["inbound"]["received_at"]
        value = self._get(doc, "inbound", "received_at")
        if value is None or not value.strip():
            return now
        value = value.strip()
        try:
            if re.fullmatch(r"\d+(\.\d+)?", value):  # Unix time, seconds or milliseconds
                seconds = float(value)
                when = datetime.fromtimestamp(seconds / 1000 if seconds > 1e11 else seconds, timezone.utc)
            else:
                when = datetime.fromisoformat(value)
        except (ValueError, OverflowError, OSError):
            raise BadRequest(f"{name} is not an ISO 8601 time") from None
        if when.tzinfo is None:
            when = when.replace(tzinfo=timezone.utc)
        return min(when.astimezone(timezone.utc), now)

    def parse_status(self, request: Request) -> StatusUpdate:
        doc = self._body(request)
        names = self.fields["status"]
        provider_id, word = self._get(doc, "status", "id"), self._get(doc, "status", "status")
        if not provider_id or not word:
            raise BadRequest(f"{names['id']} and {names['status']} are required")
        error = self._get(doc, "status", "error")
        error = error.strip() if error and error.strip() else None
        status = self.status_map.get(word.strip().lower())
        if status is None:
            status = "failed" if error else "sent"
            log.warning("%s: unknown status word %r taken as %s", self.name, _scrub(word, 32), status)
        return StatusUpdate(provider_id.strip()[:MAX_ID], status, _scrub(error, MAX_CODE) if error else None,
                            opted_out=self._is(error, self.opted_out_errors),
                            invalid_number=self._is(error, self.invalid_number_errors))

    @staticmethod
    def _is(error: str | None, errors: set[str]) -> bool:
        return error is not None and error.strip().casefold() in errors

    def reply(self, texts: list[str]) -> Response:
        """Inline replies: JSON {"messages": [...]} (the reply field's configured name)."""
        if not self.inline_replies:
            return super().reply(texts)
        body = json.dumps({self.fields["reply"]["messages"]: [self.safe(t) for t in texts]}, ensure_ascii=False)
        return Response(body, status=200, mimetype="application/json")

    def ack(self) -> Response:
        if self.inline_replies:
            return self.reply([])
        return Response("{}", status=200, mimetype="application/json")

    # -- sending -----------------------------------------------------------------------
    def _encode(self, payload: dict) -> tuple[bytes, str]:
        payload = {k: v for k, v in payload.items() if k is not None and v is not None}
        if self.encoding == "json":
            return json.dumps(payload, ensure_ascii=False).encode("utf-8"), ENCODINGS["json"]
        return urlencode(payload).encode("ascii"), ENCODINGS["form"]

    def _post(self, url: str, payload: dict) -> requests.Response:
        data, content_type = self._encode(payload)
        headers = {"Content-Type": content_type, SIGNATURE_HEADER: signature(data, self.send_secret),
                   "Connection": "close"}
        return requests.post(url, data=data, headers=headers, allow_redirects=False,
                             timeout=(min(5.0, self.timeout), self.timeout))

    def _answer(self, response: requests.Response) -> dict:
        try:
            doc = response.json()
        except ValueError:
            return {}
        return doc if isinstance(doc, dict) else {}

    def send(self, to: str, body: str, reply_context: dict | None = None, *,
             idempotency_key: str | None = None) -> str:
        if not self.send_url:
            raise SendError("no_send_url", False, f"http gateway {self.name}: no send_url configured")
        names = self.fields["send"]
        reference = idempotency_key or secrets.token_hex(16)
        payload = {names["to"]: to, names["text"]: body, names["from"]: self.sender, names["id"]: reference}
        where = f"http gateway {self.name}"
        try:
            response = self._post(self.send_url, payload)
        except requests.ConnectTimeout:
            raise SendError(None, True, f"{where}: connect timeout") from None
        except requests.ConnectionError as exc:
            if _never_connected(exc):
                raise SendError(None, True, f"{where}: connection refused") from None
            raise SendError(None, True, f"{where}: connection lost after sending", unknown=True) from None
        except requests.RequestException as exc:  # read timeout, a cut or garbled answer
            raise SendError(None, True, f"{where}: {type(exc).__name__} after sending", unknown=True) from None
        status = response.status_code
        answer = self._answer(response)
        if 200 <= status < 300:
            return self._sent_id(answer, reference)
        if status == 429 or status >= 500:
            raise SendError(f"http_{status}", True, f"{where}: HTTP {status}",
                            retry_after=_retry_after(response.headers.get("Retry-After")), throttled=status == 429)
        error = self._get(answer, "answer", "error") if answer else None
        error = error.strip() if error and error.strip() else None
        code = _scrub(error, MAX_CODE) if error else f"http_{status}"
        raise SendError(code, False, f"{where}: HTTP {status}" + (f" {_scrub(error, 60)}" if error else ""),
                        opted_out=self._is(error, self.opted_out_errors),
                        invalid_number=self._is(error, self.invalid_number_errors))

    def _sent_id(self, answer: dict, reference: str) -> str:
        """The gateway's id from a 2xx answer; without one (some relay apps), ours."""
        try:
            gateway_id = self._get(answer, "answer", "id")
        except BadRequest:
            gateway_id = None
        gateway_id = gateway_id.strip() if gateway_id else None
        if gateway_id and len(gateway_id) <= MAX_ID:
            return gateway_id
        if gateway_id:
            log.warning("%s: the gateway's id is too long to keep; its reports will not match", self.name)
        return reference

    def find_sent(self, to: str, body: str, since: datetime) -> str | None:
        """The gateway's id of this text to this number taken after `since`, else None.

        Needs ``lookup_url``: we POST (signed, like a send; a number never goes into a URL,
        which proxies and access logs keep) ``{"to": ..., "since": "<ISO 8601>"}`` and
        expect 2xx with ``{"messages": [{"id": ..., "text": ...}, ...]}`` (the answer's id
        and the send's text field names): what the gateway took for that number since
        then. The text is matched here.
        """
        if not self.lookup_url:
            raise LookupUnsupported(self.kind)
        where = f"http gateway {self.name} lookup"
        payload = {self.fields["send"]["to"]: to, "since": since.astimezone(timezone.utc).isoformat()}
        try:
            response = self._post(self.lookup_url, payload)
        except requests.RequestException as exc:
            raise SendError(None, True, f"{where}: {type(exc).__name__}") from None
        if not 200 <= response.status_code < 300:
            raise SendError(f"http_{response.status_code}", True, f"{where}: HTTP {response.status_code}")
        try:
            doc = response.json()
        except ValueError:
            raise SendError(None, True, f"{where}: the answer is not JSON") from None
        found = doc.get("messages") if isinstance(doc, dict) else doc
        if not isinstance(found, list):
            raise SendError(None, True, f"{where}: no list of messages in the answer")
        text_field, id_field = self.fields["send"]["text"], self.fields["answer"]["id"]
        for item in found:
            if isinstance(item, dict) and item.get(text_field) == body and item.get(id_field):
                return str(item[id_field])[:MAX_ID]
        return None
