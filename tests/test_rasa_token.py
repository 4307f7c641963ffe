"""Rasa's HTTP API wants RASA_TOKEN on every request; /livez needs nothing but the process."""

from __future__ import annotations

import pytest
import requests

from bot.engine import RasaEngine
from service import stack
from service.app import create_app


class Recorder:
    """A requests.Session stand-in: records each request, answers like a healthy Rasa."""

    def __init__(self):
        self.requests: list[tuple[str, str, dict]] = []

    def _answer(self, method, url, params=None, **kwargs):
        self.requests.append((method, url, dict(params or {})))
        response = requests.Response()
        response.status_code = 200
        if url.endswith("/status"):
            response._content = b'{"model_file": "alerte.tar.gz"}'
        elif url.endswith("/tracker"):
            response._content = b'{"events": []}'
        elif url.endswith("/webhooks/rest/webhook"):
            response._content = b'[{"custom": {"msg": "welcome", "lang": "fr"}}]'
        else:
            response._content = b'{"intent": {"name": "report"}, "entities": []}'
        return response

    def post(self, url, **kwargs):
        return self._answer("POST", url, **kwargs)

    def get(self, url, **kwargs):
        return self._answer("GET", url, **kwargs)


def _every_request(engine: RasaEngine) -> None:
    engine.converse("k" * 64, "bonjour", {"message_id": 1})
    engine.parse("bonjour")
    engine.replies_for("k" * 64, 1)
    assert engine.ready()


def test_every_request_carries_the_token():
    http = Recorder()
    _every_request(RasaEngine("http://rasa:5005", session=http, token="s3cret"))
    paths = [url.rsplit("5005", 1)[1] for _, url, _ in http.requests]
    assert paths == ["/webhooks/rest/webhook", "/model/parse", "/conversations/" + "k" * 64 + "/tracker", "/status"]
    assert all(params.get("token") == "s3cret" for _, _, params in http.requests)
    assert http.requests[2][2]["include_events"] == "ALL"  # the tracker's own parameter stays


def test_without_a_token_no_token_parameter_is_sent():
    http = Recorder()
    _every_request(RasaEngine("http://rasa:5005", session=http))
    assert all("token" not in params for _, _, params in http.requests)


def test_rasa_is_started_with_the_token_when_given(monkeypatch, tmp_path):
    started = []
    monkeypatch.setattr(stack, "_spawn", lambda cmd, log, env: started.append(cmd))
    monkeypatch.setattr(stack.rasa_project, "rasa_bin", lambda: "rasa")
    stack.start_rasa(tmp_path / "m.tar.gz", tmp_path / "endpoints.yml", 5005, tmp_path / "rasa.log", token="s3cret")
    stack.start_rasa(tmp_path / "m.tar.gz", tmp_path / "endpoints.yml", 5005, tmp_path / "rasa.log")
    with_token, without = started
    assert with_token[with_token.index("--auth-token") + 1] == "s3cret"
    assert "--auth-token" not in without


class Untouchable:
    """An engine that fails the test if anything asks it."""

    def __getattr__(self, name):
        raise AssertionError(f"/livez asked the engine for {name}")


@pytest.fixture
def unreachable_app(tmp_path):
    """An app whose database, Redis and Rasa are all unreachable."""
    app = create_app({"ALERTE_ENV": "test", "TESTING": True, "ENGINE": Untouchable(),
                      "DATABASE_URL": "postgresql://nobody@127.0.0.1:9/none", "REDIS_URL": "redis://127.0.0.1:9/0",
                      "SPOOL_DIR": str(tmp_path / "spool"), "DB_CONNECT_TIMEOUT": 1})
    yield app
    app.extensions["db"].engine.dispose()


def test_livez_answers_without_token_database_redis_or_rasa(unreachable_app):
    response = unreachable_app.test_client().get("/livez")
    assert response.status_code == 200 and response.get_json() == {"status": "ok"}


def test_healthz_still_reports_the_dependencies(unreachable_app):
    unreachable_app.extensions["engine"] = type("Down", (), {"ready": lambda self: False})()
    response = unreachable_app.test_client().get("/healthz")
    assert response.status_code == 503 and response.get_json()["status"] != "ok"
