"""What every action needs: the turn's language, its understanding, replies, storage.

Settings come from service.config (the same variables, defaults and production checks
as `alerte web`), sessions from an engine made by service.db, one per process. Database
errors are never caught here: the action fails, so the turn fails and the service
tries the message again, instead of the conversation going on without its storage.
"""

from __future__ import annotations

import contextlib
import functools
import os
from datetime import datetime, timezone

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from bot import language as langid
from bot.places import default_gazetteer
from bot.understanding import Understanding, interpret
from service import config, db
from service.models import Alert, Message, Place, Reporter


def metadata(tracker) -> dict:
    return (tracker.latest_message or {}).get("metadata") or {}


def received_at(tracker) -> datetime:
    raw = metadata(tracker).get("received_at")
    try:
        value = datetime.fromisoformat(raw) if raw else None
    except ValueError:
        value = None
    if value is None:
        return datetime.now(timezone.utc)
    return value if value.tzinfo else value.replace(tzinfo=timezone.utc)


def user_text(tracker) -> str:
    text = (tracker.latest_message or {}).get("text") or ""
    return "" if text.startswith("/") else text  # a forced intent carries no words


def forced(tracker) -> bool:
    return ((tracker.latest_message or {}).get("text") or "").startswith("/")


def language(tracker) -> str:
    """Stated choice first (sent by the service, or set in this conversation), then
    detection on this message, then the conversation's language so far."""
    stated = metadata(tracker).get("language")
    entity = next((e.get("value") for e in (tracker.latest_message or {}).get("entities") or ()
                   if e.get("entity") == "language"), None)
    intent = ((tracker.latest_message or {}).get("intent") or {}).get("name")
    return langid.choose(user_text(tracker), stated=entity or stated, previous=tracker.get_slot("language"),
                         intent=intent)


def understand(tracker) -> Understanding:
    """Rasa's parse of the turn, read with the reporter's own words (as the API does):
    the place as written keeps its capitals and accents."""
    message = tracker.latest_message or {}
    text = user_text(tracker)
    if text:
        text = original_text(tracker) or text
    return interpret(text, message, now=received_at(tracker),
                     stated_language=metadata(tracker).get("language"),
                     previous_language=tracker.get_slot("language"), near_admin2=home_area(tracker))


def home_area(tracker) -> str | None:
    """Where this person usually is, to choose among villages that share a name: the
    territory of the home village an operator registered for them (a focal point), else
    of their latest located alert."""
    with session_scope() as session:
        home = session.scalar(select(Reporter.home_place_key).where(Reporter.key == tracker.sender_id))
        record = default_gazetteer().get(home) if home else None
        area = (record.key if record.level == "adm2" else record.admin2_pcode) if record is not None else None
        if area:
            return area
        return session.scalar(
            select(Place.admin2_pcode).join(Alert, Alert.place_id == Place.id)
            .join(Reporter, Alert.reporter_id == Reporter.id)
            .where(Reporter.key == tracker.sender_id, Place.admin2_pcode.is_not(None))
            .order_by(Alert.updated_at.desc()).limit(1))


def say(dispatcher, msg: str, lang: str, args: dict | None = None, options: list | None = None) -> None:
    payload = {"msg": msg, "lang": lang}
    if args:
        payload["args"] = args
    if options:
        payload["options"] = options
    dispatcher.utter_message(json_message=payload)


@functools.lru_cache(maxsize=None)
def settings() -> dict:
    """The service's configuration, read once per process; raises ConfigError on an
    unsafe production configuration."""
    return config.load()


@functools.lru_cache(maxsize=None)
def _sessions(pid: int) -> sessionmaker:
    """One engine per process (keyed by pid: a forked worker never reuses its parent's
    connections), with the web app's engine settings (SQLite WAL, busy timeout...)."""
    return sessionmaker(db.make_engine(settings()["DATABASE_URL"]), expire_on_commit=False)


@contextlib.contextmanager
def session_scope() -> Session:
    session = _sessions(os.getpid())()
    try:
        yield session
        session.commit()
    except Exception:
        session.rollback()
        raise
    finally:
        session.close()


def original_text(tracker) -> str:
    """The reporter's own words (accents, capitals), as stored by the service; Rasa only
    saw a normalised copy."""
    message_id = metadata(tracker).get("message_id")
    try:
        key = int(message_id) if message_id else None
    except (TypeError, ValueError):  # not one of the service's ids (rasa shell, a test client)
        key = None
    if key is not None:
        with session_scope() as session:
            message = session.get(Message, key)
            if message is not None and message.body:
                return message.body
    return user_text(tracker)


settings()  # the action server refuses to start on an unsafe production configuration, like `alerte web`
