"""Twilio: signed form webhooks in, TwiML replies, the REST API for later sends.

Signatures are checked against PUBLIC_BASE_URL, never the Host header: behind a proxy
the Host is ours to forge. The REST base can point at a local stand-in for tests.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import datetime, timezone

import requests
from flask import Request, Response
from twilio.base.exceptions import TwilioException, TwilioRestException
from twilio.http.http_client import TwilioHttpClient
from twilio.request_validator import RequestValidator
from twilio.rest import Client
from twilio.twiml.messaging_response import MessagingResponse

from bot.gsm7 import safe_text
from service.channels.base import BadRequest, Channel, InboundMessage, SendError, StatusUpdate
from service.config import DEV_TWILIO_ACCOUNT_SID, DEV_TWILIO_FROM, DEV_VALUES
from service.privacy import InvalidNumber, normalise

API = "https://api.twilio.com"
ENVIRONMENT_SETTINGS = ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy",
                        "NO_PROXY", "no_proxy", "REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE", "NETRC")
# Twilio's error codes: the person sent STOP to the carrier; not a mobile number / invalid
OPTED_OUT = {"21610"}
INVALID_NUMBER = {"21614", "21211", "21612", "21408", "21217", "30006"}
# Twilio's message statuses onto ours: with the provider (queued, sending...) is "sent"
STATUS_MAP = {"accepted": "sent", "scheduled": "sent", "queued": "sent", "sending": "sent", "sent": "sent",
              "delivered": "delivered", "read": "delivered", "partially_delivered": "delivered",
              "undelivered": "undelivered", "failed": "failed", "canceled": "canceled"}


def _never_connected(exc: Exception) -> bool:
    """Whether the request certainly never left: refused or timed out while connecting."""
    if isinstance(exc, requests.ConnectTimeout):
        return True
    text = repr(exc)
    return "NewConnectionError" in text or "Connection refused" in text


@dataclass(frozen=True)
class Failure:
    """What a failed call to Twilio's API means, for sends and calls alike. `unknown`: the
    request may have been taken (the answer was lost); `throttled`: HTTP 429."""

    code: str | None
    retryable: bool
    message: str
    unknown: bool = False
    throttled: bool = False
    status: int | None = None


def failure(exc: Exception, prefix: str) -> Failure | None:
    """The meaning of an exception of the twilio client (None: not one of its failures)."""
    if isinstance(exc, TwilioRestException):  # Twilio answered: nothing was created
        code = str(exc.code) if exc.code else None
        return Failure(code, exc.status >= 500 or exc.status == 429, f"{prefix}: HTTP {exc.status} code {code}",
                       throttled=exc.status == 429, status=exc.status)
    if isinstance(exc, (requests.ConnectTimeout, requests.ConnectionError)):
        if _never_connected(exc):
            return Failure(None, True, f"{prefix}: {type(exc).__name__}")
        return Failure(None, True, f"{prefix}: {type(exc).__name__} after sending", unknown=True)
    if isinstance(exc, (TwilioException, requests.RequestException)):  # read timeout, cut answer
        return Failure(None, True, f"{prefix}: {type(exc).__name__}", unknown=True)
    return None


class BaseUrlHttpClient(TwilioHttpClient):
    """Sends what the client addresses to api.twilio.com to another base URL instead."""

    def __init__(self, base_url: str, **kwargs):
        super().__init__(**kwargs)
        self.base_url = base_url.rstrip("/")

    def request(self, method, url, *args, **kwargs):
        if url.startswith(API):
            url = self.base_url + url[len(API):]
        return super().request(method, url, *args, **kwargs)


class TwilioChannel(Channel):
    """Twilio, or Somleng (the same API and signatures at another base URL: `api_base`)."""

    kind = "twilio"
    inline_replies = True

    def __init__(self, settings: dict, app_config: dict):
        super().__init__(settings, app_config)
        if not settings.get("account_sid") or not settings.get("auth_token"):
            raise ValueError("account_sid and auth_token are required")
        self.validator = RequestValidator(settings["auth_token"])
        self.sender = settings.get("from")
        self.messaging_service = settings.get("messaging_service_sid")
        if not self.sender and not self.messaging_service:
            raise ValueError("from or messaging_service_sid is required")
        http = BaseUrlHttpClient(settings["api_base"], timeout=15) if settings.get("api_base") \
            else TwilioHttpClient(timeout=15)
        if http.session is not None and not any(os.environ.get(v) for v in ENVIRONMENT_SETTINGS):
            # requests reads proxies, .netrc and CA bundles from the environment on every
            # request: a fifth of each send's CPU. Nothing there to read: skip it.
            http.session.trust_env = False
        self.client = Client(settings["account_sid"], settings["auth_token"], http_client=http)

    def verify(self, request: Request) -> bool:
        signature = request.headers.get("X-Twilio-Signature", "")
        if not signature:
            return False
        url = self.public_base_url + request.path
        if request.query_string:
            url += "?" + request.query_string.decode("latin-1")
        return self.validator.validate(url, request.form, signature)

    def parse_inbound(self, request: Request) -> InboundMessage:
        form = request.form
        sid, sender = form.get("MessageSid") or form.get("SmsSid"), form.get("From")
        if not sid or not sender:
            raise BadRequest("MessageSid and From are required")
        if len(sid) > 64:
            raise BadRequest("MessageSid is too long")
        try:
            number = normalise(sender)
        except InvalidNumber:
            raise BadRequest("From is not a phone number") from None
        return InboundMessage(provider_id=sid, sender=number, recipient=form.get("To"),
                              body=form.get("Body") or "", received_at=datetime.now(timezone.utc),
                              raw=form.to_dict())

    def reply(self, texts: list[str]) -> Response:
        """TwiML with one <Message> per text; a control character would make the XML
        invalid and Twilio would drop every message of the reply, so none gets through."""
        twiml = MessagingResponse()
        for text in texts:
            twiml.message(safe_text(text))
        return Response(str(twiml), mimetype="text/xml")

    def production_problems(self) -> list[str]:
        problems = []
        if self.settings.get("account_sid") in (DEV_TWILIO_ACCOUNT_SID, "", None):
            problems.append("account_sid is the development value")
        if self.settings.get("auth_token") in DEV_VALUES:
            problems.append("auth_token is a development value")
        if not self.messaging_service and self.sender in (DEV_TWILIO_FROM, "", None):
            problems.append("from is the fake development sender")
        return problems

    def inbound_path(self) -> str:
        return f"/webhooks/{self.name}/sms"  # the default channel "twilio": /webhooks/twilio/sms

    def send(self, to: str, body: str, reply_context: dict | None = None, *,
             idempotency_key: str | None = None) -> str:  # the key: no such field in this API
        params = {"to": to, "body": body}
        if self.messaging_service:
            params["messaging_service_sid"] = self.messaging_service
        else:
            params["from_"] = self.sender
        callback = self.status_callback_url()
        if callback:
            params["status_callback"] = callback
        try:
            return self.client.messages.create(**params).sid
        except (TwilioException, requests.RequestException) as exc:
            f = failure(exc, "twilio")
            raise SendError(f.code or f.status, f.retryable, f.message, unknown=f.unknown, throttled=f.throttled,
                            opted_out=f.code in OPTED_OUT, invalid_number=f.code in INVALID_NUMBER) from None

    def find_sent(self, to: str, body: str, since: datetime) -> str | None:
        """Twilio keeps every message: search the latest ones to this number for this body."""
        try:
            recent = self.client.messages.list(to=to, limit=50)
        except TwilioRestException as exc:
            raise SendError(exc.code or exc.status, True, f"twilio lookup: HTTP {exc.status}") from None
        except (TwilioException, requests.RequestException) as exc:
            raise SendError(None, True, f"twilio lookup: {type(exc).__name__}") from None
        for message in recent:
            created = message.date_created
            if message.body == body and (created is None or created >= since):
                return message.sid
        return None

    def parse_status(self, request: Request) -> StatusUpdate:
        form = request.form
        sid, status = form.get("MessageSid") or form.get("SmsSid"), form.get("MessageStatus") or form.get("SmsStatus")
        if not sid or not status:
            raise BadRequest("MessageSid and MessageStatus are required")
        status = status.lower()
        code = form.get("ErrorCode") or None
        return StatusUpdate(sid, STATUS_MAP.get(status, "failed" if code else "sent"), code,
                            opted_out=code in OPTED_OUT, invalid_number=code in INVALID_NUMBER)
