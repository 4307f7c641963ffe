"""Fixtures for the service: real databases (SQLite and PostgreSQL), real Redis, the
real twilio client talking to a local stand-in, and a fake engine for unit tests.

Integration tests reuse ``app`` and override ``engine`` with a real RasaEngine.
"""

from __future__ import annotations

import os
import threading
import uuid

import pytest
import redis
from sqlalchemy import text
from twilio.request_validator import RequestValidator

from bot.engine import EngineUnavailable
from service.app import create_app
from service.db import make_engine, upgrade
from service.models import Base
from tests.twilio_standin import TwilioStandin

POSTGRES = os.environ.get("TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")
REDIS = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379").rstrip("/")
UNIT_REDIS_DB = 12  # the integration tests use 13 (app) and 14 (Rasa)
AUTH_TOKEN = "test-auth-token"
ACCOUNT_SID = "AC" + "0" * 31 + "1"
PUBLIC_BASE_URL = "https://alerte.example.org"  # never the Host the test client uses
REPORTER = "+243990000001"
OTHER_REPORTER = "+243990000002"


class FakeEngine:
    """In-memory dialogue engine for this layer's unit tests: records turns, can be down.

    Like Rasa, it remembers what it answered to each message id (``replies_for``), and
    can be made to answer too late (``slow``): the turn ran, the caller saw a timeout.
    """

    def __init__(self, delay: float = 0.0):
        self.calls: list[dict] = []
        self.down = False
        self.slow = False
        self.delay = delay
        self.active = 0
        self.max_active = 0
        self.answers: dict[int, list[dict]] = {}
        self.reply = lambda text, metadata: [{"text": f"Recu: {text}"}]
        self._lock = threading.Lock()

    def converse(self, sender, text, metadata=None, timeout=None):
        if self.down:
            raise EngineUnavailable("fake engine is down")
        with self._lock:
            self.active += 1
            self.max_active = max(self.max_active, self.active)
        try:
            if self.delay:
                threading.Event().wait(self.delay)
            self.calls.append({"sender": sender, "text": text, "metadata": dict(metadata or {})})
            payloads = self.reply(text, metadata or {})
            self.answers[(metadata or {}).get("message_id")] = payloads
        finally:
            with self._lock:
                self.active -= 1
        if self.slow:
            raise EngineUnavailable("fake engine answered too late")
        return payloads

    def replies_for(self, sender, message_id):
        if self.down:
            raise EngineUnavailable("fake engine is down")
        return self.answers.get(message_id)

    def parse(self, text):
        return {"text": text, "intent": {"name": "report", "confidence": 1.0}, "entities": []}

    def ready(self):
        return not self.down

    @property
    def texts(self) -> list[str]:
        return [c["text"] for c in self.calls]


@pytest.fixture(scope="session", params=["sqlite", "postgresql"])
def database_url(request, tmp_path_factory):
    """A migrated, empty database; PostgreSQL in its own schema, dropped at the end."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path_factory.mktemp('db') / 'alerte.db'}"
        upgrade(url)
        yield url
        return
    schema = f"alerte_test_{uuid.uuid4().hex[:10]}"
    admin = make_engine(POSTGRES)
    try:
        with admin.begin() as conn:
            conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    except Exception as exc:  # CI has PostgreSQL; a laptop may not
        admin.dispose()
        pytest.skip(f"PostgreSQL unreachable: {type(exc).__name__}")
    url = f"{POSTGRES}{'&' if '?' in POSTGRES else '?'}options=-csearch_path%3D{schema}&application_name={schema}"
    upgrade(url)
    yield url
    with admin.begin() as conn:
        # a test client request made inside a test's app context shares it and skips the
        # session teardown: end what such a test left open on this schema, then drop it
        conn.execute(text("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                          "WHERE application_name = :name AND pid <> pg_backend_pid()"), {"name": schema})
        conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
    admin.dispose()


@pytest.fixture
def redis_url():
    url = f"{REDIS}/{UNIT_REDIS_DB}"
    connection = redis.Redis.from_url(url)
    connection.flushdb()
    yield url
    connection.flushdb()
    connection.close()


@pytest.fixture
def engine():
    return FakeEngine()


@pytest.fixture
def twilio_standin():
    standin = TwilioStandin().start()
    yield standin
    standin.stop()


@pytest.fixture
def spool_dir(tmp_path):
    return tmp_path / "spool"


@pytest.fixture
def app_config(database_url, redis_url, engine, twilio_standin, spool_dir) -> dict:
    return {
        "ALERTE_ENV": "test", "TESTING": True, "DATABASE_URL": database_url, "REDIS_URL": redis_url,
        "ENGINE": engine, "TWILIO_ACCOUNT_SID": ACCOUNT_SID, "TWILIO_AUTH_TOKEN": AUTH_TOKEN,
        "TWILIO_API_BASE": twilio_standin.url, "TWILIO_FROM": "+243990000000",
        "PUBLIC_BASE_URL": PUBLIC_BASE_URL, "SECRET_KEY": "test-secret", "API_TOKEN": "test-api-token",
        "LOCK_WAIT": 5.0, "ACTIONS_URL": None, "SPOOL_DIR": str(spool_dir),
    }


@pytest.fixture
def app(app_config):
    app = create_app(app_config)
    _empty_tables(app)
    yield app
    app.extensions["db"].sessions.remove()
    app.extensions["db"].engine.dispose()


def _empty_tables(app) -> None:
    with app.extensions["db"].engine.begin() as conn:
        for table in reversed(Base.metadata.sorted_tables):
            conn.execute(table.delete())


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture
def sign():
    """sign(url, params) -> the X-Twilio-Signature Twilio would send."""
    validator = RequestValidator(AUTH_TOKEN)
    return lambda url, params: validator.compute_signature(url, params)



def new_sid() -> str:
    return f"SM{uuid.uuid4().hex}"


@pytest.fixture
def text_in(client, sign):
    """text_in(body, sender=REPORTER, sid=None) -> response: a reporter's SMS, signed by Twilio."""
    def send(body: str, sender: str = REPORTER, sid: str | None = None, **extra):
        params = {"MessageSid": sid or new_sid(), "AccountSid": ACCOUNT_SID, "From": sender,
                  "To": "+243990000000", "Body": body, "NumMedia": "0", **extra}
        path = "/webhooks/twilio/sms"
        return client.post(path, data=params,
                           headers={"X-Twilio-Signature": sign(PUBLIC_BASE_URL + path, params)})
    return send


@pytest.fixture
def db(app):
    """A session on the app's database, inside an app context."""
    from service.db import get_session

    with app.app_context():
        session = get_session()
        yield session
        session.close()  # a nested app context may have dropped it from the registry


def replies(response) -> list[str]:
    """The texts of a TwiML answer."""
    import xml.etree.ElementTree as ET

    root = ET.fromstring(response.data)
    return [m.text or "" for m in root.iter("Message")]
