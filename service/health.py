"""Whether each part the service depends on answers: for /healthz and for the inbox,
which must not blame a message for an outage (its attempts are not counted then)."""

from __future__ import annotations

import logging

import redis
import requests
from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError

log = logging.getLogger(__name__)


def database(session) -> str:
    try:
        session.execute(text("SELECT 1"))
        return "ok"
    except SQLAlchemyError:
        session.rollback()
        log.warning("health: database down")
        return "down"


def redis_state(connection) -> str:
    try:
        connection.ping()
        return "ok"
    except redis.RedisError:
        log.warning("health: redis down")
        return "down"


def actions(url: str | None) -> str:
    """The action server's own health route; "unchecked" where none is configured."""
    if not url:
        return "unchecked"
    try:
        return "ok" if requests.get(url.rstrip("/") + "/health", timeout=2).ok else "down"
    except requests.RequestException:
        return "down"


def engine_outage(engine, actions_url: str | None) -> bool:
    """Rasa or its action server is down: a failed turn is then nobody's message's fault."""
    return not engine.ready() or actions(actions_url) == "down"
