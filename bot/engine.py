"""The seam to the dialogue engine (Rasa), reached over HTTP; never imported.

``RasaEngine`` is the real one. ``EngineUnavailable`` covers every way it can fail
(refused, timed out, 5xx, garbage), so callers have one thing to handle: keep the
message and try again later.
"""

from __future__ import annotations

import json
from typing import Protocol

import requests


class EngineUnavailable(RuntimeError):
    """The engine did not answer in time or answered with an error."""


class Engine(Protocol):
    def converse(self, sender: str, text: str, metadata: dict | None = None,
                 timeout: float | None = None) -> list[dict]:
        """One user turn; returns the reply payloads (see bot.messages). An empty list is
        what Rasa answers when an action failed: callers treat it as a failure."""

    def parse(self, text: str) -> dict:
        """NLU only: intent, intent ranking and entities of a text."""

    def ready(self) -> bool:
        """Whether a model is loaded and the engine answers."""

    def replies_for(self, sender: str, message_id: int) -> list[dict] | None:
        """The replies already given to one stored message, or None if the engine never
        answered it: a turn that timed out on our side may still have run."""


class RasaEngine:
    """Rasa's HTTP API. With ``token`` (Rasa started with ``rasa run --auth-token``), every
    request carries it as the ``token`` query parameter."""

    def __init__(self, base_url: str, timeout: float = 10.0, session: requests.Session | None = None,
                 token: str | None = None):
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout
        self.http = session or requests.Session()
        self.token = token or None

    def _params(self, extra: dict | None = None) -> dict:
        """The query of every request: the token (when there is one) and ``extra``."""
        return {**(extra or {}), **({"token": self.token} if self.token else {})}

    def _post(self, path: str, body: dict, timeout: float | None = None):
        try:
            resp = self.http.post(self.base_url + path, json=body, params=self._params(),
                                  timeout=timeout or self.timeout)
        except requests.RequestException as exc:
            raise EngineUnavailable(f"{path}: {type(exc).__name__}") from exc
        if resp.status_code >= 300:
            raise EngineUnavailable(f"{path}: HTTP {resp.status_code}")
        try:
            return resp.json()
        except ValueError as exc:
            raise EngineUnavailable(f"{path}: not JSON") from exc

    def converse(self, sender: str, text: str, metadata: dict | None = None,
                 timeout: float | None = None) -> list[dict]:
        answer = self._post(
            "/webhooks/rest/webhook",
            {"sender": sender, "message": text, "metadata": metadata or {}}, timeout,
        )
        if not isinstance(answer, list):
            raise EngineUnavailable("webhook: unexpected answer")
        payloads = []
        for item in answer:
            if isinstance(item.get("custom"), dict):
                payloads.append(item["custom"])
            elif item.get("text"):
                payloads.append({"text": item["text"]})
        return payloads

    def parse(self, text: str) -> dict:
        return self._post("/model/parse", {"text": text})

    def replies_for(self, sender: str, message_id: int) -> list[dict] | None:
        try:
            resp = self.http.get(f"{self.base_url}/conversations/{sender}/tracker",
                                 params=self._params({"include_events": "ALL"}), timeout=self.timeout)
        except requests.RequestException as exc:
            raise EngineUnavailable(f"tracker: {type(exc).__name__}") from exc
        if resp.status_code >= 300:
            raise EngineUnavailable(f"tracker: HTTP {resp.status_code}")
        try:
            events = resp.json().get("events") or []
        except ValueError as exc:
            raise EngineUnavailable("tracker: not JSON") from exc
        # The same message may have been played more than once (an earlier try failed in an
        # action and answered nothing): the replies of its last answered play count.
        answered, replies, inside = None, [], False
        for event in events + [{"event": "user"}]:
            if event.get("event") == "user":
                if inside and replies:
                    answered = replies
                inside = (event.get("metadata") or {}).get("message_id") == message_id
                replies = []
            elif inside and event.get("event") == "bot":
                custom = (event.get("data") or {}).get("custom")
                if isinstance(custom, dict):
                    replies.append(custom)
                elif event.get("text"):
                    replies.append({"text": event["text"]})
        return answered

    def ready(self) -> bool:
        try:
            return bool(self.model_file(timeout=min(self.timeout, 3.0)))
        except EngineUnavailable:
            return False

    def model_file(self, timeout: float | None = None) -> str | None:
        """The path of the model the server has loaded (None while it has none)."""
        try:
            resp = self.http.get(self.base_url + "/status", params=self._params(), timeout=timeout or self.timeout)
            resp.raise_for_status()
            return resp.json().get("model_file") or None
        except (requests.RequestException, ValueError, AttributeError) as exc:
            raise EngineUnavailable(f"/status: {type(exc).__name__}") from exc

    def load_model(self, model_file: str, timeout: float = 300) -> None:
        """Have the server replace its model by this file (a path as the server sees it)."""
        try:
            resp = self.http.put(self.base_url + "/model", json={"model_file": model_file},
                                 params=self._params(), timeout=timeout)
        except requests.RequestException as exc:
            raise EngineUnavailable(f"PUT /model: {type(exc).__name__}") from exc
        if resp.status_code >= 300:
            raise EngineUnavailable(f"PUT /model: HTTP {resp.status_code} {resp.text[:300]}")


def forced_intent(intent: str, entities: dict | None = None) -> str:
    """Rasa's "/intent{json}" syntax: the dialogue gets this intent without NLU guessing."""
    return "/" + intent + (json.dumps(entities, separators=(",", ":")) if entities else "")
