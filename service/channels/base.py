"""What the service needs from an SMS gateway; a new gateway is one module implementing it."""

from __future__ import annotations

import abc
from dataclasses import dataclass, field
from datetime import datetime

from flask import Request, Response

# Outbound statuses in the order they can only move forward; terminal ones share a rank.
# "handed": given to the provider in the webhook's own answer (TwiML), not known delivered.
STATUS_RANK = {"queued": 0, "accepted": 0, "scheduled": 0, "sending": 1, "sent": 2, "handed": 2,
               "delivered": 3, "undelivered": 3, "failed": 3, "canceled": 3, "suppressed": 3, "read": 4}


class BadRequest(ValueError):
    """The gateway's request lacks what we need; answered with 400 and nothing stored."""


class SendError(RuntimeError):
    """The gateway refused a message; `retryable` says whether trying later can help.

    `unknown`: the request may have reached the gateway (a read timeout, a connection cut
    after sending): the message may be on its way, so it must not be sent blindly again.
    """

    def __init__(self, code: str | int | None, retryable: bool, message: str = "", unknown: bool = False):
        super().__init__(message or f"send failed ({code})")
        self.code = None if code is None else str(code)
        self.retryable = retryable
        self.unknown = unknown


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


@dataclass(frozen=True)
class StatusUpdate:
    provider_id: str
    status: str
    error_code: str | None = None


class Channel(abc.ABC):
    """An SMS gateway: verifies and parses its webhooks, replies, and sends."""

    name: str

    @abc.abstractmethod
    def verify(self, request: Request) -> bool:
        """Whether the request really comes from the gateway."""

    @abc.abstractmethod
    def parse_inbound(self, request: Request) -> InboundMessage:
        """The message in an inbound webhook; raises BadRequest."""

    @abc.abstractmethod
    def reply(self, texts: list[str]) -> Response:
        """The webhook's answer carrying these replies (none: an empty answer)."""

    @abc.abstractmethod
    def send(self, to: str, body: str, status_callback_url: str | None = None) -> str:
        """Send one SMS now; returns the gateway's id; raises SendError."""

    @abc.abstractmethod
    def parse_status(self, request: Request) -> StatusUpdate:
        """A delivery receipt; raises BadRequest."""

    def find_sent(self, to: str, body: str, since: datetime) -> str | None:
        """The gateway's id of this message if it took it after `since`, else None.

        Used when a send's outcome is unknown; raises LookupUnsupported where the gateway
        keeps no searchable record, SendError when it cannot be asked now.
        """
        raise LookupUnsupported(self.name)


def moves_forward(current: str | None, new: str) -> bool:
    """Receipts repeat and arrive out of order: only a later state may replace a status."""
    return STATUS_RANK.get(new, -1) > STATUS_RANK.get(current or "queued", 0)
