"""Africa's Talking: form callbacks in (SMS and delivery reports), the official SDK out.

Africa's Talking does not sign its callbacks. The callback URLs configured in its
dashboard carry a secret instead, as HTTP Basic credentials
(``https://at:<password>@alerte.example.org/webhooks/africastalking/sms``); a request
without them, or with others, gets 403 and nothing is read or stored. Replies cannot be
given in the callback's answer (``inline_replies = False``): they are sent through the
SMS API, and a reply to a two-way premium message carries back the ``linkId`` the
provider gave the message it answers.

Settings (this channel's entry of the channels list, see service/channels/__init__.py)::

    - name: africastalking
      kind: africastalking
      username: my-app              # the Africa's Talking application's username
      api_key: ...                  # its API key (header apiKey)
      short_code: "12345"           # the `from` of what we send: a short code...
      sender_id: ALERTE             # ...or an alphanumeric sender id (wins for plain sends)
      callback_user: at             # HTTP Basic credentials both callback URLs carry;
      callback_password: ...        # compared in constant time; both required
      premium_keyword: ALERTE       # optional: replies to a message that came with a
                                    # linkId go out as on-demand premium SMS (from the
                                    # short code, with this keyword and that link id)
      api_base: http://127.0.0.1:8900   # optional, tests only: a local stand-in instead
                                    # of Africa's Talking's API and content hosts
      timeout: 10                   # optional: seconds to wait for the API's answer

Routes: ``/webhooks/<name>/sms`` (incoming messages: ``from``, ``to``, ``text``,
``date``, ``id``, ``linkId``, ``networkCode``) and ``/webhooks/<name>/delivery``
(delivery reports: ``id``, ``status``, ``phoneNumber``, ``networkCode``,
``failureReason``, ``retryCount``).

Sending uses the SDK's ``SMSService.send`` / ``send_premium``, which build the request
(URL, form fields, headers). The SDK's transport turns every HTTP error into one
exception holding only the body; a subclass here keeps the HTTP status, so that 429 and
5xx can be retried and the rest not. Africa's Talking keeps no searchable record of
what was sent, so a send whose outcome is unknown (a read timeout, a connection cut
after the request left) is not looked up (LookupUnsupported): the core fails it for an
operator rather than sending it twice.

Numbers never appear in what this module logs or raises: errors name the status code.
"""

from __future__ import annotations

import hmac
import logging
from datetime import datetime, timezone

import requests
from africastalking.Service import DEFAULT_TIMEOUT_S
from africastalking.SMS import SMSService
from flask import Request

from service.channels.base import BadRequest, Channel, InboundMessage, Outgoing, SendError, StatusUpdate
from service.privacy import InvalidNumber, normalise

log = logging.getLogger(__name__)

MAX_ID = 64  # messages.provider_id
MAX_CODE = 64  # messages.error_code: longer failure reasons are cut to it

# Per-recipient statusCode of a send: accepted (Processed, Sent, Queued)...
ACCEPTED = {100, 101, 102}
# ...the recipient stopped messages from this sender / cannot get an SMS at this number
SEND_OPTED_OUT = {406}  # UserInBlacklist
SEND_INVALID_NUMBER = {403, 404}  # InvalidPhoneNumber, UnsupportedNumberType
# ...worth trying again later: top-up awaited, provider or gateway trouble
SEND_RETRYABLE = {405, 500, 501}  # InsufficientBalance, InternalServerError, GatewayError
# 401 RiskHold, 402 InvalidSenderId, 407 CouldNotRoute, 409 DoNotDisturbRejection,
# 502 RejectedByGateway and anything unknown: permanent for this message. A carrier's
# do-not-disturb bars promotional traffic, not this service by name: the message fails,
# the reporter is not opted out (only their own STOP or a blacklist does that).

# Delivery report statuses onto ours: with the provider or the network is "sent"
STATUS_MAP = {"sent": "sent", "submitted": "sent", "buffered": "sent", "queued": "sent",
              "success": "delivered",
              "failed": "undelivered",  # could not reach the handset
              "rejected": "failed",  # refused by the network
              "expired": "undelivered"}
# failureReason, compared case-insensitively (the docs write UserInBlackList)
REASON_OPTED_OUT = {"userinblacklist"}
REASON_INVALID_NUMBER = {"invalidphonenumber", "unsupportednumbertype", "userdoesnotexist"}


class _HttpRefused(Exception):
    """The API answered with an HTTP error: the message was not taken."""

    def __init__(self, status: int, retry_after: float | None):
        super().__init__(f"HTTP {status}")
        self.status = status
        self.retry_after = retry_after


class _Unreadable(Exception):
    """A 2xx answer that is not the JSON we expect: the message may have been taken."""


class AtSmsService(SMSService):
    """The SDK's SMS service at another base URL (a stand-in), keeping the HTTP status.

    The SDK's services build every URL from ``_baseUrl`` (bulk SMS) and ``_contentUrl``
    (premium SMS), set in ``_init_service``; ``_make_request`` is its transport.
    """

    def __init__(self, username: str, api_key: str, api_base: str | None = None):
        self._api_base = api_base.rstrip("/") if api_base else None  # read by _init_service
        super().__init__(username, api_key)

    def _init_service(self):
        super()._init_service()
        if self._api_base:
            self._baseUrl = self._contentUrl = self._api_base + "/version1"

    def _make_request(self, url, method, headers, data, params, callback=None, timeout=DEFAULT_TIMEOUT_S):
        # the same request the SDK makes (requests, form data, its headers), synchronous
        response = requests.request(method.upper(), url, headers=headers, data=data, params=params,
                                    timeout=timeout)
        if not 200 <= response.status_code < 300:
            raise _HttpRefused(response.status_code, _retry_after(response.headers.get("Retry-After")))
        try:
            return response.json()
        except ValueError:
            raise _Unreadable("the answer is not JSON") from None


def _retry_after(value: str | None) -> float | None:
    try:
        seconds = float(value) if value else None
    except ValueError:
        return None
    return seconds if seconds is not None and 0 <= seconds <= 3600 else None


def _never_connected(exc: Exception) -> bool:
    """Whether the request certainly never left: refused or timed out while connecting."""
    if isinstance(exc, requests.ConnectTimeout):
        return True
    text = repr(exc)
    return "NewConnectionError" in text or "Connection refused" in text


def _received_at(value: str | None) -> datetime:
    """The provider's `date` (ISO 8601; naive is UTC); now if absent, unreadable or ahead
    of our clock (a skewed date must not put a message after ones that came later)."""
    now = datetime.now(timezone.utc)
    if not value:
        return now
    try:
        when = datetime.fromisoformat(value.strip())
    except ValueError:
        return now
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    return min(when.astimezone(timezone.utc), now)


class AfricasTalkingChannel(Channel):
    """Africa's Talking SMS (bulk and on-demand premium) with delivery reports."""

    kind = "africastalking"
    inline_replies = False
    batch_size = 100  # recipients per bulk request

    def __init__(self, settings: dict, app_config: dict):
        super().__init__(settings, app_config)
        for key in ("username", "api_key", "callback_user", "callback_password"):
            if not isinstance(settings.get(key), str) or not settings.get(key):
                raise ValueError(f"{key} is required")
        self.sender_id = settings.get("sender_id") or None
        self.short_code = str(settings["short_code"]) if settings.get("short_code") else None
        if not self.sender_id and not self.short_code:
            raise ValueError("sender_id or short_code is required")
        self.premium_keyword = settings.get("premium_keyword") or None
        if self.premium_keyword and not self.short_code:
            raise ValueError("premium_keyword needs the short_code premium messages come from")
        timeout = settings.get("timeout")
        self.timeout = (DEFAULT_TIMEOUT_S[0], float(timeout)) if timeout else DEFAULT_TIMEOUT_S
        self._user = settings["callback_user"].encode()
        self._password = settings["callback_password"].encode()
        self.sms = AtSmsService(settings["username"], settings["api_key"], settings.get("api_base"))

    def production_problems(self) -> list[str]:
        problems = []
        if self.settings.get("username") == "sandbox":
            problems.append("username is Africa's Talking's sandbox")
        if self.settings.get("api_base"):
            problems.append("api_base points away from Africa's Talking (tests only)")
        if len(self.settings.get("callback_password") or "") < 16:
            problems.append("callback_password is shorter than 16 characters")
        return problems

    # -- routes ------------------------------------------------------------------------
    def inbound_path(self) -> str:
        return f"/webhooks/{self.name}/sms"

    def status_path(self) -> str:
        return f"/webhooks/{self.name}/delivery"

    # -- inbound -----------------------------------------------------------------------
    def verify(self, request: Request) -> bool:
        auth = request.authorization
        if auth is None or auth.type != "basic" or auth.username is None or auth.password is None:
            return False
        # both compared, always: the time taken says nothing about which one was wrong
        user_ok = hmac.compare_digest(auth.username.encode(), self._user)
        password_ok = hmac.compare_digest(auth.password.encode(), self._password)
        return user_ok and password_ok

    def parse_inbound(self, request: Request) -> InboundMessage:
        form = request.form
        message_id, sender = form.get("id"), form.get("from")
        if not message_id or not sender:
            raise BadRequest("id and from are required")
        if len(message_id) > MAX_ID:
            raise BadRequest("id is too long")
        try:
            number = normalise(sender)
        except InvalidNumber:
            raise BadRequest("from is not a phone number") from None
        link_id = form.get("linkId") or None
        if link_id is not None and len(link_id) > 128:
            raise BadRequest("linkId is too long")
        return InboundMessage(provider_id=message_id, sender=number, recipient=form.get("to"),
                              body=form.get("text") or "", received_at=_received_at(form.get("date")),
                              raw=form.to_dict(), reply_context={"link_id": link_id} if link_id else {})

    def parse_status(self, request: Request) -> StatusUpdate:
        form = request.form
        message_id, status = form.get("id"), form.get("status")
        if not message_id or not status:
            raise BadRequest("id and status are required")
        reason = (form.get("failureReason") or "").strip() or None
        key = (reason or "").lower()
        mapped = STATUS_MAP.get(status.strip().lower(), "failed" if reason else "sent")
        return StatusUpdate(message_id, mapped, reason[:MAX_CODE] if reason else None,
                            opted_out=key in REASON_OPTED_OUT, invalid_number=key in REASON_INVALID_NUMBER)

    # -- sending -----------------------------------------------------------------------
    def send(self, to: str, body: str, reply_context: dict | None = None, *,
             idempotency_key: str | None = None) -> str:  # the key: no such field in this API
        link_id = (reply_context or {}).get("link_id")
        premium = bool(self.premium_keyword and link_id)
        if premium:
            answer = self._request(lambda: self.sms.send_premium(
                body, self.short_code, [to], keyword=self.premium_keyword, link_id=link_id, timeout=self.timeout))
        else:
            answer = self._request(lambda: self.sms.send(body, [to], sender_id=self.sender_id or self.short_code,
                                                         timeout=self.timeout))
        return self._provider_id(answer, to)

    def send_many(self, items: list[Outgoing]) -> list[str | SendError]:
        """Bulk SMS: one request per text for all its recipients (`batch_size` of them);
        each recipient's own status and messageId come back in the answer."""
        results: list[str | SendError | None] = [None] * len(items)
        by_body: dict[str, list[int]] = {}
        for i, item in enumerate(items):
            results[i] = item.withdrawn()  # asked just before the request that would carry it
            if results[i] is None:
                by_body.setdefault(item.body, []).append(i)
        for body, positions in by_body.items():
            numbers = [items[i].to for i in positions]
            try:
                answer = self._request(lambda: self.sms.send(body, numbers, sender_id=self.sender_id or self.short_code,
                                                             timeout=self.timeout))
            except SendError as exc:  # the whole request: the same outcome for each recipient
                for i in positions:
                    results[i] = exc
                continue
            for i in positions:
                try:
                    results[i] = self._provider_id(answer, items[i].to, exact=True)
                except SendError as exc:
                    results[i] = exc
        return results

    def _request(self, call):
        """One request through the SDK, its failures as SendError."""
        try:
            return call()
        except ValueError:  # the SDK's own check of the number (its message holds it)
            raise SendError(None, False, "africastalking: the SDK refused the number",
                            invalid_number=True) from None
        except _HttpRefused as exc:
            retryable = exc.status == 429 or exc.status >= 500
            raise SendError(exc.status, retryable, f"africastalking: HTTP {exc.status}",
                            retry_after=exc.retry_after, throttled=exc.status == 429) from None
        except _Unreadable:
            raise SendError(None, True, "africastalking: unreadable answer", unknown=True) from None
        except (requests.ConnectTimeout, requests.ConnectionError) as exc:
            if _never_connected(exc):
                raise SendError(None, True, f"africastalking: {type(exc).__name__}") from None
            raise SendError(None, True, f"africastalking: {type(exc).__name__} after sending",
                            unknown=True) from None
        except requests.RequestException as exc:  # read timeout, cut answer
            raise SendError(None, True, f"africastalking: {type(exc).__name__}", unknown=True) from None

    def _provider_id(self, answer, to: str, exact: bool = False) -> str:
        """The recipient's messageId from the send's answer, or its refusal as SendError
        (`exact`: a bulk answer, where only this number's entry is this recipient's)."""
        data = answer.get("SMSMessageData") if isinstance(answer, dict) else None
        recipients = data.get("Recipients") if isinstance(data, dict) else None
        if not isinstance(recipients, list):
            raise SendError(None, True, "africastalking: unexpected answer", unknown=True)
        mine = [r for r in recipients if isinstance(r, dict) and r.get("number") == to]
        if not mine and not exact:
            mine = [r for r in recipients if isinstance(r, dict)]
        if not mine:  # refused as a whole (its Message says why, e.g. InvalidSenderId)
            reason = str(data.get("Message") or "")[:40] if reason_safe(data.get("Message")) else "?"
            raise SendError(None, False, f"africastalking: no recipient taken ({reason})")
        recipient = mine[0]
        try:
            code = int(recipient.get("statusCode"))
        except (TypeError, ValueError):
            code = None
        status = str(recipient.get("status") or "")[:40]
        message_id = recipient.get("messageId")
        if code in ACCEPTED and message_id and message_id != "None" and len(str(message_id)) <= MAX_ID:
            return str(message_id)
        if code in ACCEPTED:  # accepted without an id we can keep: it may go out
            raise SendError(code, True, "africastalking: accepted without a message id", unknown=True)
        raise SendError(code, code in SEND_RETRYABLE,
                        f"africastalking: refused {code} {status if reason_safe(status) else ''}".rstrip(),
                        opted_out=code in SEND_OPTED_OUT, invalid_number=code in SEND_INVALID_NUMBER)


def reason_safe(text) -> bool:
    """Whether a provider's word may go into an error message: no digits (no number)."""
    return isinstance(text, str) and not any(ch.isdigit() for ch in text)
