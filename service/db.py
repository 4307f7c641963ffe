"""The database engine and a session per request or job, removed at teardown.

Plain SQLAlchemy so that jobs and scripts use the same engine as the web app:
inside an app context call ``get_session()``; elsewhere ``make_engine(url)``.
"""

from __future__ import annotations

from pathlib import Path

from flask import current_app
from sqlalchemy import create_engine, event
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session, scoped_session, sessionmaker

SQLITE_BUSY_MS = 15000


def sqlalchemy_url(url: str) -> str:
    """psycopg 3 is the driver: plain postgresql:// URLs would ask for psycopg2."""
    for prefix in ("postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix):]
    return url


def make_engine(url: str, connect_timeout: float = 3) -> Engine:
    """A database that does not answer within `connect_timeout` counts as down (the
    webhook then spools), instead of hanging the request."""
    url = sqlalchemy_url(url)
    if not url.startswith("sqlite"):
        return create_engine(url, pool_pre_ping=True, pool_timeout=connect_timeout,
                             connect_args={"connect_timeout": max(1, int(connect_timeout))})
    path = url.split("///", 1)[-1]
    if path and path != ":memory:":
        Path(path).parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(url, connect_args={"timeout": SQLITE_BUSY_MS / 1000, "check_same_thread": False})
    event.listen(engine, "connect", _sqlite_pragmas)
    return engine


def _sqlite_pragmas(dbapi_connection, _record) -> None:
    """WAL lets readers and one writer work at once; SQLite ignores foreign keys unless asked."""
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_MS}")
    cursor.close()


class Database:
    """One engine and one thread-scoped session registry per application."""

    def __init__(self, url: str, connect_timeout: float = 3):
        self.engine = make_engine(url, connect_timeout)
        self.sessions = scoped_session(sessionmaker(self.engine, expire_on_commit=False))

    def remove(self, _exc=None) -> None:
        self.sessions.remove()


def init_app(app) -> None:
    database = Database(app.config["DATABASE_URL"], app.config["DB_CONNECT_TIMEOUT"])
    app.extensions["db"] = database
    app.teardown_appcontext(database.remove)


def get_session() -> Session:
    """This request's (or job's) session; it is closed when the app context ends."""
    return current_app.extensions["db"].sessions()


def alembic_config(url: str | None = None):
    """Alembic's configuration for this project, pointed at `url` (else DATABASE_URL)."""
    from alembic.config import Config

    cfg = Config(str(Path(__file__).resolve().parent / "alembic.ini"))
    if url:
        cfg.attributes["url"] = url
    return cfg


def upgrade(url: str | None = None, revision: str = "head") -> None:
    """Bring the schema to `revision`; the only way tables are created."""
    from alembic import command

    command.upgrade(alembic_config(url), revision)
