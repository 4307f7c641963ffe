"""The shape: `service/` uses `bot/`, never the reverse.

`bot/` is the channel-neutral conversation layer: no storage, no web framework, no
Rasa. The Rasa action server stores, so it is a service process (`service/actions/`):
the service's configuration and production refusals, the service's database layer,
and database errors that fail the turn instead of being swallowed.
"""

from __future__ import annotations

import ast
import asyncio
import os
import pickle
import subprocess
import sys
from pathlib import Path

import pytest
from rasa_sdk import Tracker
from rasa_sdk.executor import ActionExecutor, CollectingDispatcher
from sqlalchemy.exc import SQLAlchemyError

from bot import rasa_project
from bot.flow import alert_flow
from service import cli, config, stack
from service.actions import common
from service.actions.commands import OptOut
from service.actions.form import ValidateAlertForm
from service.models import Base

ROOT = Path(__file__).resolve().parent.parent
BOT = ROOT / "bot"
# What bot/ must never import: the service, a web framework, storage, Rasa itself.
FORBIDDEN = ("service", "flask", "sqlalchemy", "rasa", "rasa_sdk")
IMPORT_FUNCTIONS = {"import_module", "__import__"}


def imported_modules(source: str) -> list[tuple[int, str]]:
    """Every module a source imports, wherever the import is (module level, inside a
    function or a branch), with its line; `importlib.import_module("x")` and
    `__import__("x")` with a literal name count too."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level == 0 and node.module:  # relative imports stay inside bot/
                found.append((node.lineno, node.module))
        elif isinstance(node, ast.Call) and node.args and isinstance(node.args[0], ast.Constant) \
                and isinstance(node.args[0].value, str):
            name = getattr(node.func, "attr", None) or getattr(node.func, "id", None)
            if name in IMPORT_FUNCTIONS:
                found.append((node.lineno, node.args[0].value))
    return found


def forbidden(module: str) -> bool:
    return module.split(".")[0] in FORBIDDEN


def test_the_import_finder_sees_imports_inside_functions():
    source = """
import os
from bot import places
def later():
    from service.models import Alert
    import flask.json
    if True:
        import sqlalchemy as sa
    return importlib.import_module("service.db"), __import__("rasa_sdk")
"""
    assert [m for _, m in imported_modules(source) if forbidden(m)] == [
        "service.models", "flask.json", "sqlalchemy", "service.db", "rasa_sdk"]
    assert not forbidden("bot.places") and not forbidden("services_unrelated") and not forbidden("os")


def test_bot_never_imports_the_service_flask_sqlalchemy_or_rasa():
    files = sorted(BOT.rglob("*.py"))
    assert files, "bot/ has no modules?"
    offences = [f"{path.relative_to(ROOT)}:{line}: {module}"
                for path in files for line, module in imported_modules(path.read_text(encoding="utf-8"))
                if forbidden(module)]
    assert not offences, "bot/ must stay free of storage and the service:\n" + "\n".join(offences)


def test_the_action_server_is_a_service_process(monkeypatch):
    assert not (BOT / "actions").exists()
    assert cli.EXTERNAL["actions"] == "service.actions:cli"
    started = []
    monkeypatch.setattr(stack, "_spawn", lambda cmd, log_path, env: started.append((cmd, env)))
    stack.start_actions(5099, Path("actions.log"), {"PATH": os.environ.get("PATH", "")})
    (cmd, env), = started
    assert cmd[1:] == ["-m", "rasa_sdk", "--actions", "service.actions", "-p", "5099"]
    assert env["SANIC_HOST"] == "127.0.0.1"


def registered() -> ActionExecutor:
    executor = ActionExecutor()
    executor.register_package("service.actions")
    return executor


def test_every_action_of_the_domain_is_served():
    domain_actions = set(rasa_project.domain(alert_flow())["actions"])
    assert domain_actions <= set(registered().actions)


def test_the_actions_survive_the_pickling_into_sanic_workers():
    """rasa-sdk hands its executor to each Sanic worker process pickled (spawn):
    the actions must be importable classes, the executor must hold no engine."""
    executor = registered()
    child = subprocess.run(
        [sys.executable, "-c", "import pickle, sys; executor = pickle.load(sys.stdin.buffer); "
                               "print(' '.join(sorted(executor.actions)))"],
        input=pickle.dumps(executor), capture_output=True, cwd=ROOT, timeout=120, env=dict(os.environ))
    assert child.returncode == 0, child.stderr.decode()
    assert child.stdout.decode().split() == sorted(executor.actions)


UNSAFE_PRODUCTION = {"ALERTE_ENV": "production", "DATABASE_URL": "sqlite:///unused.db", "SECRET_KEY": "",
                     "API_TOKEN": "", "TWILIO_AUTH_TOKEN": "", "REDIS_URL": ""}


def test_alerte_actions_refuses_an_unsafe_production_configuration(monkeypatch, capsys):
    for name, value in UNSAFE_PRODUCTION.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setattr(os, "execvp", lambda *a: pytest.fail("the action server was started"))
    assert cli.main(["actions", "--port", "5099"]) == 2  # like `alerte web`
    assert "refusing to start in production" in capsys.readouterr().err


def test_the_action_server_itself_refuses_an_unsafe_production_configuration():
    """Started directly (`alerte run`, the integration tests), rasa-sdk imports the
    package: the import fails on the configuration before anything is served."""
    env = {**os.environ, **UNSAFE_PRODUCTION, "SANIC_HOST": "127.0.0.1"}
    child = subprocess.run([sys.executable, "-m", "rasa_sdk", "--actions", "service.actions",
                            "-p", str(stack.free_port())],
                           capture_output=True, cwd=ROOT, timeout=120, env=env)
    assert child.returncode != 0
    assert "refusing to start in production" in child.stderr.decode() + child.stdout.decode()


@pytest.fixture
def action_database(tmp_path, monkeypatch):
    """Point the action server's configuration at a throwaway SQLite file."""
    def use(url: str) -> str:
        monkeypatch.setenv("DATABASE_URL", url)
        common.settings.cache_clear()
        common._sessions.cache_clear()
        return url
    yield use
    common.settings.cache_clear()
    common._sessions.cache_clear()


def tracker(message_id="12", text="Watu wa ADF wameua watu 3 Beni jana") -> Tracker:
    latest = {"text": text, "intent": {"name": "report_killing", "confidence": 0.9}, "entities": [],
              "intent_ranking": [], "metadata": {"message_id": message_id, "language": None}}
    return Tracker("reporter-key", {"requested_slot": None}, latest, [], False, None, {}, None)


def test_settings_and_sessions_come_from_the_service_configuration(action_database, tmp_path):
    url = action_database(f"sqlite:///{tmp_path / 'actions.db'}")
    assert common.settings() == config.load()
    with common.session_scope() as session:
        assert str(session.get_bind().url) == url
    assert common._sessions(os.getpid()) is common._sessions(os.getpid())  # one engine per process


def test_database_errors_fail_the_action(action_database, tmp_path):
    action_database(f"sqlite:///{tmp_path / 'no-tables.db'}")  # every query fails
    with pytest.raises(SQLAlchemyError):
        common.home_area(tracker())
    with pytest.raises(SQLAlchemyError):
        common.original_text(tracker())
    for action in (ValidateAlertForm(), OptOut()):
        with pytest.raises(SQLAlchemyError):
            asyncio.run(action.run(CollectingDispatcher(), tracker(), {}))


def test_a_message_id_that_is_not_a_number_is_no_stored_message(action_database, tmp_path):
    action_database(f"sqlite:///{tmp_path / 'no-tables.db'}")
    assert common.original_text(tracker(message_id="shell-1", text="Bonjour")) == "Bonjour"


def test_the_stored_words_and_the_home_area_are_read(action_database, tmp_path):
    url = action_database(f"sqlite:///{tmp_path / 'actions.db'}")
    from service.db import make_engine

    engine = make_engine(url)
    Base.metadata.create_all(engine)
    engine.dispose()
    assert common.home_area(tracker()) is None  # no located alert yet
    assert common.original_text(tracker(message_id="12", text="salut")) == "salut"  # no such message


def test_a_submission_without_a_confirmed_draft_fails_instead_of_filing_an_empty_alert(action_database, tmp_path):
    """Rasa carries on after a failed action with its events lost, so a form whose
    validation failed (a database error) looks finished and the rules ask for the
    submission: it must fail (the service retries the message), never tell the reporter
    "recorded" for an empty alert. Found on PostgreSQL by the integration suite."""
    from service.actions.commands import SubmitAlert

    url = action_database(f"sqlite:///{tmp_path / 'actions.db'}")
    from service.db import make_engine

    engine = make_engine(url)
    Base.metadata.create_all(engine)
    engine.dispose()
    dispatcher = CollectingDispatcher()
    with pytest.raises(RuntimeError, match="confirmed"):
        asyncio.run(SubmitAlert().run(dispatcher, tracker(), {}))
    assert dispatcher.messages == []


def test_a_focal_points_registered_village_decides_the_home_area(action_database, tmp_path):
    """An operator registered the reporter's home village: namesakes are chosen near it,
    before the territory of their latest alert."""
    from sqlalchemy.orm import Session

    from bot.places import default_gazetteer
    from service.db import make_engine
    from service.models import Reporter
    url = action_database(f"sqlite:///{tmp_path / 'actions.db'}")
    engine = make_engine(url)
    Base.metadata.create_all(engine)
    village = default_gazetteer().resolve("Oicha").place
    assert village.level == "locality" and village.admin2_pcode
    with Session(engine) as session:
        session.add(Reporter(key="reporter-key", opted_out=False, home_place_key=village.key))
        session.commit()
    engine.dispose()
    assert common.home_area(tracker()) == village.admin2_pcode
