"""Twilio's Calls API (and Somleng's, the same API at its own base URL): place an outbound
call, find one in the call log, read its status, and map its statuses onto ours.

It uses the channel's own client (service/channels/twilio.py), so the account, the base
URL (a local stand-in in tests) and the timeouts are the channel's. Nothing outside this
module knows the Calls API's field names, statuses or errors (service/callbacks.py asks
in our words: progress, answered, unanswered, canceled).
"""

from __future__ import annotations

from datetime import datetime

import requests
from flask import Request
from twilio.base.exceptions import TwilioException, TwilioRestException

from service.channels.base import BadRequest
from service.channels.twilio import TwilioChannel, failure

# the provider's call statuses onto ours: still going, answered, over unanswered, canceled
STATUSES = {"queued": "progress", "initiated": "progress", "ringing": "progress",
            "in-progress": "answered", "completed": "answered",  # completed: it was answered
            "busy": "unanswered", "no-answer": "unanswered", "failed": "unanswered",
            "canceled": "canceled"}


class CallError(RuntimeError):
    """The provider did not take the call. `unknown`: it may have (the answer was lost);
    `throttled`: it asks us to slow down; `retryable`: trying later can help."""

    def __init__(self, code: str | None, retryable: bool, message: str, unknown: bool = False,
                 throttled: bool = False):
        super().__init__(message)
        self.code, self.retryable, self.unknown, self.throttled = code, retryable, unknown, throttled


class LookupUnsupported(RuntimeError):
    """The provider keeps no call log we can search."""


def can_call(channel) -> bool:
    return isinstance(channel, TwilioChannel)


def ours(status: str | None) -> str | None:
    """A call status in our words, None if unknown."""
    return STATUSES.get((status or "").lower())


def parse_status(request: Request) -> tuple[str, str]:
    """(call id, status) of a call-progress status callback; raises BadRequest."""
    sid, status = request.form.get("CallSid"), request.form.get("CallStatus")
    if not sid or not status or len(sid) > 64:
        raise BadRequest("CallSid and CallStatus are required")
    return sid, status.lower()


class Dialer:
    """Outbound calls through one channel."""

    def __init__(self, channel: TwilioChannel):
        self.client = channel.client

    def call(self, to: str, line: str, url: str, status_callback: str, ring_timeout: int) -> str:
        """Place a call from `line` that fetches its TwiML at `url`; returns the call's id."""
        try:
            return self.client.calls.create(to=to, from_=line, url=url, method="POST",
                                            status_callback=status_callback, status_callback_method="POST",
                                            status_callback_event=["answered", "completed"],
                                            timeout=ring_timeout).sid
        except (TwilioException, requests.RequestException) as exc:
            f = failure(exc, "calls")
            raise CallError(f.code or (str(f.status) if f.status else None), f.retryable, f.message,
                            unknown=f.unknown, throttled=f.throttled) from None

    def find(self, to: str, line: str, since: datetime) -> tuple[str, str] | None:
        """The (id, status) of the latest call to `to` from `line` created after `since`."""
        try:
            recent = self.client.calls.list(to=to, from_=line, limit=20)
        except (TwilioException, requests.RequestException) as exc:
            status = _http_status(exc)
            if status in (404, 405, 501):  # no such resource here: a gateway without a call log
                raise LookupUnsupported(f"calls log: HTTP {status}") from None
            raise CallError(None, True, f"calls log: {type(exc).__name__} (HTTP {status})") from None
        for call in recent:  # newest first
            if call.date_created is None or call.date_created >= since:
                return call.sid, str(call.status)
        return None

    def status(self, sid: str) -> str:
        """A call's status as the provider has it now."""
        try:
            return str(self.client.calls(sid).fetch().status)
        except (TwilioException, requests.RequestException) as exc:
            raise CallError(None, True, f"calls fetch: {type(exc).__name__} (HTTP {_http_status(exc)})") from None


def _http_status(exc: Exception) -> int | None:
    """The HTTP status of a failed read: the client raises TwilioRestException for one
    resource, TwilioException("Unable to fetch page", response) for a list."""
    if isinstance(exc, TwilioRestException):
        return exc.status
    response = exc.args[1] if len(exc.args) > 1 else None
    return getattr(response, "status_code", None)
