"""The real path: a trained Rasa server, the action server, Redis, and each database.

One Rasa server serves the whole session (loading a model takes most of a minute);
the action server is restarted for each database backend, since it writes drafts to
the database the web app reads. Everything listens on loopback only.
"""

from __future__ import annotations

import itertools
import os
import uuid
from pathlib import Path

import pytest
import redis
from sqlalchemy import create_engine

from bot import rasa_project
from service import stack
from service.models import Base

pytestmark = pytest.mark.integration

REDIS = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379").rstrip("/")
POSTGRES = os.environ.get("TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")
RASA_REDIS_DB, APP_REDIS_DB = 14, 13


def pytest_collection_modifyitems(items):
    for item in items:
        if "tests/integration" in str(item.fspath):
            item.add_marker(pytest.mark.integration)


@pytest.fixture(scope="session")
def rasa_model() -> Path:
    return rasa_project.train()


@pytest.fixture(scope="session")
def logs_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("logs")


@pytest.fixture(scope="session")
def actions_port() -> int:
    return stack.free_port()


class RasaServer:
    def __init__(self, url: str, process):
        self.url, self.process, self.pid = url, process, process.pid


@pytest.fixture(scope="session")
def rasa_server(rasa_model, actions_port, logs_dir, tmp_path_factory) -> RasaServer:
    port = stack.free_port()
    endpoints = stack.write_endpoints(tmp_path_factory.mktemp("rasa") / "endpoints.yml",
                                      f"http://127.0.0.1:{actions_port}/webhook",
                                      f"{REDIS}/{RASA_REDIS_DB}")
    process = stack.start_rasa(rasa_model, endpoints, port, logs_dir / "rasa.log")
    try:
        stack.wait_http(f"http://127.0.0.1:{port}/status", 300, process, ok=stack.rasa_ready)
    except Exception:
        stack.stop(process)
        raise RuntimeError((logs_dir / "rasa.log").read_text()[-3000:])
    yield RasaServer(f"http://127.0.0.1:{port}", process)
    stack.stop(process)


def _database(backend: str, tmp_path_factory) -> str:
    if backend == "sqlite":
        return f"sqlite:///{tmp_path_factory.mktemp('db') / 'alerte.db'}"
    return POSTGRES


@pytest.fixture(scope="session", params=["sqlite", "postgresql"])
def database_url(request, tmp_path_factory) -> str:
    url = _database(request.param, tmp_path_factory)
    sa_url = url.replace("postgresql://", "postgresql+psycopg://", 1)
    engine = create_engine(sa_url)
    try:
        Base.metadata.drop_all(engine)
        Base.metadata.create_all(engine)
    finally:
        engine.dispose()
    return url


@pytest.fixture(scope="session")
def actions_server(database_url, actions_port, logs_dir):
    env = stack.child_env(DATABASE_URL=database_url)
    process = stack.start_actions(actions_port, logs_dir / f"actions-{uuid.uuid4().hex[:6]}.log", env)
    stack.wait_http(f"http://127.0.0.1:{actions_port}/health", 120, process)
    yield process
    stack.stop(process)


@pytest.fixture
def app_config(database_url, rasa_server, actions_server, twilio_standin) -> dict:
    """A clean state for each test: conversations (Rasa's trackers), locks and queues
    live in Redis, alerts and messages in the database."""
    redis.Redis.from_url(f"{REDIS}/{RASA_REDIS_DB}").flushdb()
    redis.Redis.from_url(f"{REDIS}/{APP_REDIS_DB}").flushdb()
    engine = create_engine(database_url.replace("postgresql://", "postgresql+psycopg://", 1))
    with engine.begin() as conn:
        for table in reversed(Base.metadata.sorted_tables):
            conn.execute(table.delete())
    engine.dispose()
    return {
        "ALERTE_ENV": "test",
        "DATABASE_URL": database_url,
        "REDIS_URL": f"{REDIS}/{APP_REDIS_DB}",
        "RASA_URL": rasa_server.url,
        "RASA_TIMEOUT": 3.0,
        "TWILIO_ACCOUNT_SID": "AC" + "0" * 32,
        "TWILIO_AUTH_TOKEN": "integration-twilio-token",
        "TWILIO_API_BASE": twilio_standin.url,
        "PUBLIC_BASE_URL": "https://alerts.example.org",
        "API_TOKEN": "integration-api-token",
        "SECRET_KEY": "integration-secret-key",
    }


@pytest.fixture
def app(app_config):
    from service.app import create_app

    return create_app(app_config)


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture
def run_worker_for():
    """run_worker_for(app)() runs that app's queued jobs now, in this process, with a
    real RQ worker (burst mode)."""
    from rq import SimpleWorker

    def make(app):
        def run():
            with app.app_context():
                queue = app.extensions["queue"]
                SimpleWorker([queue], connection=queue.connection).work(burst=True)
        return run
    return make


@pytest.fixture
def run_worker(app, run_worker_for):
    """Run the queued jobs of the test's app now (see run_worker_for)."""
    return run_worker_for(app)


_numbers = itertools.count(1)


@pytest.fixture
def phone(client, app_config):
    """phone() -> a new reporter's Phone (tests/integration/phone.py), a number of its own."""
    from tests.integration.phone import Phone

    def make(lang_hint: str | None = None) -> Phone:
        number = f"+24399{os.getpid() % 100:02d}{next(_numbers):05d}"
        return Phone(client, number, token=app_config["TWILIO_AUTH_TOKEN"],
                     base_url=app_config["PUBLIC_BASE_URL"])
    return make
