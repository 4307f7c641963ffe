"""The operator console in a real browser: headless Chromium (Debian's, through its
chromedriver) against the real app served on a loopback port, on a SQLite file and on
PostgreSQL, with real Redis, the Twilio stand-in for outgoing SMS and, for the tests
that talk to the bot, a trained Rasa server and the action server.

The browser has no network: host names resolve to nothing and every request goes to a
proxy that does not exist, except loopback's. Selenium never downloads a driver: the
binary and the driver are named.

Fixtures for other browser tests: ``browser`` (the driver, one per session), ``live``
(.url, .app, .session(), .standin, .run_jobs(), .backend), ``login(browser, live,
roles=...)`` -> the Operator, ``screenshot(browser, name)`` -> docs/screenshots/<name>.png,
and ``bot`` (Rasa and the action server, ready, with no conversation remembered).
"""

from __future__ import annotations

import itertools
import os
import shutil
import threading
import uuid
from contextlib import contextmanager
from pathlib import Path

import pytest
import redis
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session
from werkzeug.serving import make_server

from bot import messages, rasa_project
from service import accounts, scheduler, stack
from service.app import create_app
from service.db import make_engine, upgrade
from service.models import Base
from tests.twilio_standin import DEFAULT_ACCOUNT, DEFAULT_TOKEN, TwilioStandin

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM, CHROMEDRIVER = Path("/usr/bin/chromium"), Path("/usr/bin/chromedriver")
WINDOW = (1280, 800)
REDIS = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379").rstrip("/")
POSTGRES = os.environ.get("TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")
DATABASE = "browser_test"  # a database of its own on the PostgreSQL server; a schema per run inside it
APP_REDIS_DB, RASA_REDIS_DB = 10, 11  # unit tests use 12, the integration tests 13 and 14
PASSWORD = "correct horse battery"
TWILIO_FROM = "+243990000000"


def pytest_collection_modifyitems(items):
    for item in items:
        if "tests/browser" in str(item.fspath):
            item.add_marker(pytest.mark.integration)


def unavailable(reason: str):
    """What CI must not skip fails there; a laptop without it skips."""
    if os.environ.get("CI") == "true":
        pytest.fail(f"{reason} (CI=true: the browser tests must run)", pytrace=False)
    pytest.skip(reason)


# --- the browser --------------------------------------------------------------------------

@pytest.fixture(scope="session")
def browser(tmp_path_factory):
    missing = [str(p) for p in (CHROMIUM, CHROMEDRIVER) if not p.exists()]
    if missing:
        unavailable(f"missing {' and '.join(missing)}: apt-get install chromium chromium-driver")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-quic",
                "--no-first-run", "--disable-background-networking", "--disable-component-update",
                "--disable-sync", "--lang=fr", f"--window-size={WINDOW[0]},{WINDOW[1]}",
                f"--user-data-dir={tmp_path_factory.mktemp('chromium')}",
                # no network: no name resolves, and anything not on loopback goes to a dead proxy
                '--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE 127.0.0.1',
                "--proxy-server=127.0.0.1:9", "--proxy-bypass-list=127.0.0.1"):
        options.add_argument(arg)
    options.add_experimental_option("prefs", {"intl.accept_languages": "fr-FR,fr"})  # the console's operators
    options.set_capability("goog:loggingPrefs", {"performance": "ALL", "browser": "ALL"})
    driver = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)
    driver.set_page_load_timeout(30)
    # the window's frame takes some height even headless: the page itself gets WINDOW
    driver.set_window_size(*WINDOW)
    inner = driver.execute_script("return [window.innerWidth, window.innerHeight]")
    driver.set_window_size(2 * WINDOW[0] - inner[0], 2 * WINDOW[1] - inner[1])
    yield driver
    driver.quit()


@pytest.fixture
def screenshot(tmp_path_factory):
    """screenshot(browser, name) -> <name>.png of what the window shows: in a folder of the
    run's, or in SCREENSHOTS_DIR when set (the README's pictures: `SCREENSHOTS_DIR=docs/screenshots
    bash scripts/test.sh tests/browser`), so that a plain run leaves the tree as it was."""
    folder = Path(os.environ["SCREENSHOTS_DIR"]).resolve() if os.environ.get("SCREENSHOTS_DIR") \
        else tmp_path_factory.getbasetemp() / "screenshots"

    def take(browser, name: str) -> Path:
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"{name}.png"
        browser.execute_script("window.scrollTo(0, 0)")
        assert browser.save_screenshot(str(path)), f"no screenshot {path}"
        assert path.stat().st_size > 5000, f"{path} is nearly empty"  # a blank window is ~3 KB
        return path
    return take


# --- the database of each backend -----------------------------------------------------------

def _postgres_database() -> str:
    """The server's URL for DATABASE, created the first time."""
    url = make_url(POSTGRES)
    admin = create_engine(url.set(drivername="postgresql+psycopg", database="postgres"), isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            if not conn.scalar(text("SELECT 1 FROM pg_database WHERE datname = :name"), {"name": DATABASE}):
                try:
                    conn.execute(text(f'CREATE DATABASE "{DATABASE}"'))
                except Exception as exc:  # another run created it meanwhile
                    if "already exists" not in str(exc):
                        raise
    finally:
        admin.dispose()
    return url.set(database=DATABASE).render_as_string(hide_password=False)


@pytest.fixture(scope="session", params=["sqlite", "postgresql"])
def database_url(request, tmp_path_factory):
    """A migrated, empty database: a SQLite file, or a schema of this run in DATABASE."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path_factory.mktemp('db') / 'alerte.db'}"
        upgrade(url)
        yield url
        return
    try:
        server = _postgres_database()
    except Exception as exc:
        unavailable(f"PostgreSQL unreachable at {POSTGRES}: {type(exc).__name__}")
    schema = f"browser_{uuid.uuid4().hex[:10]}"
    admin = make_engine(server)
    with admin.begin() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    url = f"{server}?options=-csearch_path%3D{schema}&application_name={schema}"
    upgrade(url)
    yield url
    with admin.begin() as conn:
        conn.execute(text("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                          "WHERE application_name = :name AND pid <> pg_backend_pid()"), {"name": schema})
        conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
    admin.dispose()


# --- the live server ----------------------------------------------------------------------

@pytest.fixture(scope="session")
def locales_dir(tmp_path_factory) -> Path:
    """A copy of locales/ where the translators' page saves, read by the bot in this process
    during each browser test (see _clean) and by the action server (its environment)."""
    copy = tmp_path_factory.mktemp("locales") / "locales"
    shutil.copytree(ROOT / "locales", copy, ignore=shutil.ignore_patterns("*.mo"))
    return copy


@pytest.fixture(scope="session")
def ports() -> dict:
    """Rasa's and the action server's ports, known to the app before either runs."""
    return {"rasa": stack.free_port(), "actions": stack.free_port()}


@pytest.fixture(scope="session")
def standin():
    server = TwilioStandin().start()
    yield server
    server.stop()


class Live:
    """The app served on a loopback port, and what the tests check behind the pages."""

    def __init__(self, app, url: str, standin: TwilioStandin, backend: str):
        self.app, self.url, self.standin, self.backend = app, url, standin, backend

    @contextmanager
    def session(self):
        """A session of the test's own, apart from the pages' (what they committed)."""
        session = Session(self.app.extensions["db"].engine, expire_on_commit=False)
        try:
            yield session
        finally:
            session.close()

    def run_jobs(self) -> None:
        """The worker's queued jobs, now, in this process (a real RQ worker, burst mode)."""
        scheduler.work(self.app, burst=True)

    def clean(self) -> None:
        with self.app.extensions["db"].engine.begin() as conn:
            for table in reversed(Base.metadata.sorted_tables):
                conn.execute(table.delete())
        self.app.extensions["redis"].flushdb()
        with self.standin.lock:
            self.standin.sent.clear()


@pytest.fixture(scope="session")
def live(database_url, standin, ports, locales_dir, tmp_path_factory):
    var = tmp_path_factory.mktemp("var")
    port = stack.free_port()
    url = f"http://127.0.0.1:{port}"
    app = create_app({
        "ALERTE_ENV": "test", "DATABASE_URL": database_url, "REDIS_URL": f"{REDIS}/{APP_REDIS_DB}",
        "RASA_URL": f"http://127.0.0.1:{ports['rasa']}", "RASA_TIMEOUT": 10.0,
        "ACTIONS_URL": f"http://127.0.0.1:{ports['actions']}",
        "TWILIO_ACCOUNT_SID": DEFAULT_ACCOUNT, "TWILIO_AUTH_TOKEN": DEFAULT_TOKEN,
        "TWILIO_API_BASE": standin.url, "TWILIO_FROM": TWILIO_FROM, "PUBLIC_BASE_URL": url,
        "SECRET_KEY": "browser-secret", "API_TOKEN": "browser-api-token",
        "SPOOL_DIR": str(var / "spool"), "RECORDINGS_DIR": str(var / "recordings"),
        "PROMPT_CACHE_DIR": str(var / "prompts"), "LOCALES_DIR": str(locales_dir),
        "LOGIN_MAX_FAILURES": 3, "LOGIN_LOCKOUT": 900,
    })
    try:
        app.extensions["redis"].ping()
    except redis.RedisError as exc:
        unavailable(f"Redis unreachable at {REDIS} (TEST_REDIS_URL): {type(exc).__name__}")
    server = make_server("127.0.0.1", port, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True)
    thread.start()
    yield Live(app, url, standin, "postgresql" if database_url.startswith("postgresql") else "sqlite")
    server.shutdown()
    server.server_close()
    app.extensions["db"].sessions.remove()
    app.extensions["db"].engine.dispose()


@pytest.fixture(autouse=True)
def _clean(live, browser, locales_dir, monkeypatch):
    """Each test starts with empty tables, queues and stand-in, and a browser signed out.
    The bot of this process (the live server's) reads the copy of the catalogs: bot.messages
    takes LOCALES_DIR from the environment at import, so it is set on the module, for this
    test only (the unit tests of the same run keep reading locales/)."""
    monkeypatch.setattr(messages, "LOCALES_DIR", locales_dir)
    live.clean()
    browser.delete_all_cookies()
    yield


_names = itertools.count(1)


@pytest.fixture
def login():
    """login(browser, live, roles=("analyst",)) -> the Operator, created and signed in
    through the login form (whoever was signed in before is signed out)."""
    from tests.browser.pages import click, type_into

    def sign_in(browser, live, roles=("analyst",), username: str | None = None, password: str = PASSWORD):
        username = username or f"{roles[0]}{next(_names)}"
        with live.session() as db:
            operator = accounts.create(db, username, password, list(roles))
            db.commit()
        browser.delete_all_cookies()
        browser.get(f"{live.url}/console/login")
        type_into(browser, "username", username)
        type_into(browser, "password", password)
        click(browser, "form.login button[type=submit]")
        assert "/console/login" not in browser.current_url, browser.find_element("css selector", "main").text
        return operator
    return sign_in


# --- the bot: Rasa and the action server ---------------------------------------------------

class Rasa:
    """One Rasa server for the session, started as soon as a collected test needs the
    bot (loading the model takes most of a minute: the other tests run meanwhile)."""

    def __init__(self, port: int, actions_port: int, logs: Path):
        self.port, self.actions_port, self.logs = port, actions_port, logs
        self.process = None
        self.ready = False

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        if self.process is None:
            model = rasa_project.train()  # the existing model when its inputs are unchanged
            endpoints = stack.write_endpoints(self.logs / "endpoints.yml",
                                              f"http://127.0.0.1:{self.actions_port}/webhook",
                                              f"{REDIS}/{RASA_REDIS_DB}")
            self.process = stack.start_rasa(model, endpoints, self.port, self.logs / "rasa.log")

    def wait(self) -> None:
        self.start()
        if not self.ready:
            try:
                stack.wait_http(f"{self.url}/status", 300, self.process, ok=stack.rasa_ready)
            except Exception as exc:
                raise RuntimeError(f"Rasa did not start: {exc}\n{(self.logs / 'rasa.log').read_text()[-3000:]}")
            self.ready = True

    def stop(self) -> None:
        stack.stop(self.process)


@pytest.fixture(scope="session")
def rasa(ports, tmp_path_factory):
    server = Rasa(ports["rasa"], ports["actions"], tmp_path_factory.mktemp("rasa"))
    yield server
    server.stop()


@pytest.fixture(scope="session", autouse=True)
def _rasa_early(request):
    """Start Rasa at the beginning of the session if any test will need the bot."""
    if any("bot" in getattr(item, "fixturenames", ()) for item in request.session.items):
        request.getfixturevalue("rasa").start()


class ActionServer:
    def __init__(self, port: int, database_url: str, locales: Path, logs: Path):
        self.port, self.logs = port, logs
        self.env = stack.child_env(DATABASE_URL=database_url, LOCALES_DIR=str(locales))
        self.process = None

    def start(self) -> None:
        self.process = stack.start_actions(self.port, self.logs / f"actions-{uuid.uuid4().hex[:6]}.log", self.env)
        stack.wait_http(f"http://127.0.0.1:{self.port}/health", 120, self.process)

    def stop(self) -> None:
        stack.stop(self.process)


@pytest.fixture(scope="session")
def actions(live, database_url, ports, locales_dir, tmp_path_factory):
    """The action server of this backend (it writes the drafts to the database the app reads)."""
    server = ActionServer(ports["actions"], database_url, locales_dir, tmp_path_factory.mktemp("actions"))
    server.start()
    yield server
    server.stop()


class Bot:
    def __init__(self, rasa: Rasa, actions: ActionServer):
        self.rasa, self.actions = rasa, actions


@pytest.fixture
def bot(rasa, actions):
    """Rasa and the action server, answering, with no conversation remembered."""
    rasa.wait()
    redis.Redis.from_url(f"{REDIS}/{RASA_REDIS_DB}").flushdb()
    return Bot(rasa, actions)
