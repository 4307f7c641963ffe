"""What the service needs from a gateway; a new gateway is one module implementing it.

A channel is one configured connection to a provider (a Twilio account, an Africa's
Talking short code, an aggregator's HTTP gateway, an SMPP bind). It is split into what
the core needs from it:

* **inbound**: verify a callback (403 and nothing stored otherwise) and parse it into an
  `InboundMessage` or a `StatusUpdate`;
* **sending**: `send()` one SMS, returning the provider's id or raising `SendError`;
* **mapping**: the provider's delivery statuses and error codes onto ours (`STATUSES`
  and the flags of `StatusUpdate` and `SendError`); nothing outside a channel module
  knows a provider's field names, status names or error codes;
* **rendering**: replies are payloads (`{"msg", "lang", "args", "options"}`) until the
  channel renders them; SMS channels use `SmsRenderer` (GSM-7 safe text, numbered menus),
  the voice line will bring its own.

Whether a channel can answer inside the webhook's own response (Twilio's TwiML) or only
by sending later is `inline_replies`, a property of the channel.
"""

from __future__ import annotations

import abc
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from typing import Callable

from flask import Request, Response

from bot import messages
from bot.gsm7 import safe_text

# Our outbound statuses. queued -> sending -> sent -> delivered | undelivered | failed;
# "handed": given to the provider in the webhook's own answer (TwiML), not known
# delivered; "suppressed": never sent (opted out, number expired); "canceled": withdrawn;
# "expired": a broadcast's delivery not sent before the broadcast expired.
STATUSES = ("queued", "sending", "sent", "handed", "delivered", "undelivered", "failed",
            "suppressed", "canceled", "expired")
# The order they can only move forward in; terminal ones share a rank.
STATUS_RANK = {"queued": 0, "sending": 1, "sent": 2, "handed": 2,
               "delivered": 3, "undelivered": 3, "failed": 3, "canceled": 3, "suppressed": 3, "expired": 3}


class BadRequest(ValueError):
    """The gateway's request lacks what we need; answered with 400 and nothing stored."""


class SendError(RuntimeError):
    """The gateway refused a message.

    `retryable`: trying later can help (throttled, provider down). `unknown`: the request
    may have reached the gateway (a read timeout, a connection cut after sending), so it
    must not be sent blindly again. `opted_out`: the person stopped messages at the
    carrier or the provider; `invalid_number`: not a number that can get an SMS. Both of
    the last are permanent. `retry_after`: seconds the provider asked us to wait.
    `throttled`: the provider asks us to slow down (HTTP 429, SMPP throttled): every
    sender of this channel backs off, not only this message (service/bucket.py).
    `withdrawn`: never sent, since the item was no longer wanted when its turn came
    (Outgoing.wanted: a STOP while its batch was going out). `deferred`: never sent, not
    yet: the sender gave way to a reporter's conversation (Outgoing.go, service/priority.py);
    it goes back to the queue, the attempt not counted.
    """

    def __init__(self, code: str | int | None, retryable: bool, message: str = "", unknown: bool = False,
                 opted_out: bool = False, invalid_number: bool = False, retry_after: float | None = None,
                 throttled: bool = False, withdrawn: bool = False, deferred: bool = False):
        super().__init__(message or f"send failed ({code})")
        self.code = None if code is None else str(code)
        self.retryable = retryable and not (opted_out or invalid_number)
        self.unknown = unknown
        self.opted_out = opted_out
        self.invalid_number = invalid_number
        self.retry_after = retry_after
        self.throttled = throttled
        self.withdrawn = withdrawn
        self.deferred = deferred


class LookupUnsupported(RuntimeError):
    """The gateway keeps no record we can search for a message we may have sent."""


@dataclass(frozen=True)
class InboundMessage:
    provider_id: str
    sender: str  # E.164, normalised by the channel
    recipient: str | None
    body: str
    received_at: datetime
    raw: dict = field(default_factory=dict, repr=False)  # never stored: it holds the number
    # what a reply to this message must carry back to the provider (Africa's Talking's
    # link id); stored with the message, never a phone number
    reply_context: dict = field(default_factory=dict)


@dataclass(frozen=True)
class StatusUpdate:
    """A delivery report, already mapped onto our statuses by the channel."""

    provider_id: str
    status: str  # one of STATUSES
    error_code: str | None = None  # the provider's own code, kept for operators
    opted_out: bool = False  # the recipient stopped messages at the carrier
    invalid_number: bool = False


@dataclass(frozen=True)
class Outgoing:
    """One message of a batch (a broadcast's deliveries): no reply context. Asked just
    before this item goes to the gateway: `go` (it may wait a little; False: not now, the
    result is a SendError with `deferred`), then `wanted` (False: not at all, `withdrawn`)."""

    to: str
    body: str
    idempotency_key: str | None = None
    wanted: Callable[[], bool] | None = field(default=None, compare=False, repr=False)
    go: Callable[[], bool] | None = field(default=None, compare=False, repr=False)

    def withdrawn(self) -> SendError | None:
        """Why this item is not to be sent now, or None: send it."""
        if self.go is not None and not self.go():
            return SendError(None, True, "not sent yet: gave way to a conversation", deferred=True)
        if self.wanted is None or self.wanted():
            return None
        return SendError(None, False, "not sent: no longer wanted (a STOP meanwhile)", withdrawn=True)


class SmsRenderer:
    """Payloads to SMS text: the catalogs' wording, numbered menus, GSM-7-safe characters."""

    def render(self, payloads: list[dict], default_language: str) -> str:
        texts = (messages.render_payload(p, default_language) for p in payloads)
        return "\n".join(t for t in texts if t)

    def text(self, msg_id: str, language: str) -> str:
        return messages.render(msg_id, language)


class Channel(abc.ABC):
    """One configured gateway. Subclasses set `kind` and implement the abstract methods."""

    kind: str = ""  # the module's name: twilio, africastalking, http, smpp
    inline_replies = False  # can answer inside the webhook's response
    send_queue: str | None = None  # its own RQ queue, where only one process can send (an SMPP bind)

    @property
    def broadcast_queue(self) -> str | None:
        """Where its broadcast deliveries wait, when it sends from its own process: a
        queue of their own that the process takes after `send_queue`, so a reply never
        waits behind a broadcast."""
        return f"{self.send_queue}-broadcasts" if self.send_queue else None
    renderer = SmsRenderer()
    batch_size = 50  # messages handed to send_many() at once (a broadcast's chunk)

    def __init__(self, settings: dict, app_config: dict):
        """`settings`: this channel's entry of the channels file (see service/channels/
        __init__.py); `app_config`: the service's configuration."""
        self.settings = settings
        self.name = settings["name"]
        self.numbers = tuple(settings.get("numbers") or ())
        self.send_rate = float(settings.get("send_rate") or 0) or None  # segments per second
        self.public_base_url = str(app_config.get("PUBLIC_BASE_URL") or "").rstrip("/")
        # how many sends of a batch may be in flight at once (one HTTP request each)
        self.send_concurrency = max(1, int(settings.get("send_concurrency") or 8))
        self.batch_size = max(1, int(settings.get("batch_size") or self.batch_size))
        self._pool: ThreadPoolExecutor | None = None
        self._pool_lock = threading.Lock()

    def production_problems(self) -> list[str]:
        """What makes this channel unsafe in production (a development secret...)."""
        return []

    # -- routes ------------------------------------------------------------------------
    def inbound_path(self) -> str:
        return f"/webhooks/{self.name}/sms"

    def status_path(self) -> str | None:
        return f"/webhooks/{self.name}/status"

    def status_callback_url(self) -> str | None:
        """Where the provider should post delivery reports of what we send."""
        path = self.status_path()
        return self.public_base_url + path if path and self.public_base_url else None

    # -- inbound -----------------------------------------------------------------------
    @abc.abstractmethod
    def verify(self, request: Request) -> bool:
        """Whether the request really comes from the gateway."""

    @abc.abstractmethod
    def parse_inbound(self, request: Request) -> InboundMessage:
        """The message in an inbound webhook; raises BadRequest."""

    @abc.abstractmethod
    def parse_status(self, request: Request) -> StatusUpdate:
        """A delivery report, mapped onto our statuses; raises BadRequest."""

    def reply(self, texts: list[str]) -> Response:
        """The webhook's answer carrying these replies; only for inline_replies channels."""
        if texts:
            raise NotImplementedError(f"{self.kind} cannot answer inside the webhook")
        return self.ack()

    def ack(self) -> Response:
        """The webhook's answer when nothing is said in it."""
        return Response(status=200)

    # -- sending -----------------------------------------------------------------------
    @abc.abstractmethod
    def send(self, to: str, body: str, reply_context: dict | None = None, *,
             idempotency_key: str | None = None) -> str:
        """Send one SMS now; returns the gateway's id; raises SendError. `reply_context`:
        what the message being answered asked a reply to carry (see InboundMessage);
        `idempotency_key`: ours for this message, the same on every attempt, for a
        gateway that can refuse a second copy of it."""

    def send_many(self, items: list[Outgoing]) -> list[str | SendError]:
        """Send a batch (a broadcast's chunk); one result per item, in order: the
        gateway's id or the SendError. A gateway with a bulk request overrides this;
        the default sends them one by one, `send_concurrency` at a time."""
        if len(items) <= 1 or self.send_concurrency <= 1:
            return [self._send_one(item) for item in items]
        with self._pool_lock:
            if self._pool is None:
                self._pool = ThreadPoolExecutor(self.send_concurrency, thread_name_prefix=f"send-{self.name}")
        return list(self._pool.map(self._send_one, items))

    def _send_one(self, item: Outgoing) -> str | SendError:
        withdrawn = item.withdrawn()
        if withdrawn is not None:
            return withdrawn
        try:
            return self.send(item.to, item.body, None, idempotency_key=item.idempotency_key)
        except SendError as exc:
            return exc

    def find_sent(self, to: str, body: str, since: datetime) -> str | None:
        """The gateway's id of this message if it took it after `since`, else None.

        Used when a send's outcome is unknown; raises LookupUnsupported where the gateway
        keeps no searchable record, SendError when it cannot be asked now.
        """
        raise LookupUnsupported(self.kind)

    # -- rendering ---------------------------------------------------------------------
    def render(self, payloads: list[dict], default_language: str) -> str:
        return self.renderer.render(payloads, default_language)

    def safe(self, text: str) -> str:
        return safe_text(text)


def moves_forward(current: str | None, new: str) -> bool:
    """Receipts repeat and arrive out of order: only a later state may replace a status."""
    return STATUS_RANK.get(new, -1) > STATUS_RANK.get(current or "queued", 0)
