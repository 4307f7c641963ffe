"""Reporters: found or created by keyed hash, their number kept encrypted and expiring.

Opt-out lives here (not in Rasa) so that STOP is honoured even when the engine is down.
A number is looked up under every configured reporter key; found under an older one, the
same row is re-keyed to the newest (opt-out, language and history stay with it).
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta, timezone

import redis
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from service.models import Conversation, Message, Reporter, Subscriber, utcnow
from service.privacy import Identity

log = logging.getLogger(__name__)


def find(session: Session, identity: Identity, number: str) -> Reporter | None:
    """The reporter behind a number, under the newest key or an older one (then re-keyed)."""
    keys = identity.keys(number)
    rows = {r.key: r for r in session.scalars(select(Reporter).where(Reporter.key.in_(keys)))}
    if not rows:
        return None
    if keys[0] in rows:
        if len(rows) > 1:  # an older secret was dropped, then put back: keep the current row
            log.warning("reporter %s also exists under an older key; left as is", rows[keys[0]].id)
        return rows[keys[0]]
    reporter = next(rows[k] for k in keys if k in rows)
    reporter.key = keys[0]
    session.flush()
    return reporter


def rekey(session: Session, identity: Identity, reporter: Reporter, number: str) -> bool:
    """Give a reporter the newest key of their number; False if it is already theirs or
    another row holds it."""
    key = identity.key(number)
    if reporter.key == key:
        return False
    if session.scalar(select(Reporter.id).where(Reporter.key == key, Reporter.id != reporter.id)) is not None:
        log.warning("reporter %s: the newest key is held by another row; left as is", reporter.id)
        return False
    reporter.key = key
    session.flush()
    return True


def number_for_sending(identity: Identity, reporter: Reporter, now: datetime | None = None) -> str | None:
    """The reporter's number, unless it is past its retention (then it is never decrypted)."""
    return identity.decrypt_unexpired(reporter.phone_encrypted, aware(reporter.phone_expires_at), now)


def seen(session: Session, identity: Identity, number: str) -> Reporter:
    """The reporter behind a number, created on first contact; refreshes the kept number.

    Two first messages at once both try to insert; the unique key decides and the loser
    reads the winner's row.
    """
    key = identity.key(number)
    reporter = find(session, identity, number)
    if reporter is None:
        reporter = Reporter(key=key, opted_out=False)
        try:
            with session.begin_nested():
                session.add(reporter)
                session.flush()
        except IntegrityError:
            reporter = session.scalar(select(Reporter).where(Reporter.key == key))
    now = utcnow()
    reporter.phone_encrypted = identity.encrypt(number)
    reporter.phone_expires_at = identity.expiry(now)
    reporter.last_seen_at = now
    return reporter


def opt_out(session: Session, reporter: Reporter, message_id: int | None = None) -> None:
    """Stop everything we initiate; the time is kept to tell later messages apart, and
    the message that asked, so that its own confirmation still goes."""
    if not reporter.opted_out:
        reporter.opted_out = True
        reporter.opted_out_at = utcnow()
        reporter.opted_out_message_id = message_id


STOPPED_KEY = "alerte:stopped:{}"  # Redis: when (Redis's clock) the reporter last said STOP
STOPPED_TTL = 3600


def mark_stopped(connection, reporter_id: int) -> None:
    """Tell senders at once, between two messages of a batch already checked against the
    database, that this reporter said STOP (service/broadcast_sending.py asks `stopped`
    just before each send). The database stays the record: Redis down loses nothing but
    this shortcut. The time is Redis's, so hosts' clocks do not matter, and a later START
    needs no clearing: a batch read after the STOP sees it in the database instead."""
    now = redis_now(connection)
    if now is None:
        log.info("reporter %s: STOP not signalled to senders (no Redis)", reporter_id)
        return
    try:
        connection.set(STOPPED_KEY.format(reporter_id), f"{now:.6f}", ex=STOPPED_TTL)
    except redis.RedisError as exc:
        log.info("reporter %s: STOP not signalled to senders: %s", reporter_id, exc)


def redis_now(connection) -> float | None:
    """Redis's clock, for `stopped` (None without Redis, or if it cannot say)."""
    if connection is None:
        return None
    try:
        seconds, micros = connection.time()
    except redis.RedisError:
        return None
    return seconds + micros / 1e6


def stopped(connection, reporter_id: int, since: float | None) -> bool:
    """Whether the reporter said STOP after `since` (Redis's clock, read before the
    database was); False when Redis cannot say."""
    if connection is None or since is None:
        return False
    try:
        value = connection.get(STOPPED_KEY.format(reporter_id))
    except redis.RedisError:
        return False
    return value is not None and float(value) >= since


def opt_in(session: Session, reporter: Reporter) -> None:
    reporter.opted_out = False
    reporter.opted_out_at = None
    reporter.opted_out_message_id = None


def set_language(session: Session, reporter: Reporter, language: str) -> None:
    """A stated choice: it wins over detection from now on."""
    reporter.language = language


def conversation(session: Session, reporter: Reporter, timeout_minutes: int, channel: str = "sms") -> Conversation:
    """The reporter's current conversation on a channel, or a new one after a quiet period."""
    latest = latest_conversation(session, reporter, channel)
    now = utcnow()
    if latest is not None and aware(latest.last_activity_at) >= now - timedelta(minutes=timeout_minutes):
        return latest
    started = Conversation(reporter_id=reporter.id, channel=channel, language=latest.language if latest else None,
                           started_at=now, last_activity_at=now)
    session.add(started)
    session.flush()
    return started


def latest_conversation(session: Session, reporter: Reporter, channel: str = "sms") -> Conversation | None:
    return session.scalar(
        select(Conversation).where(Conversation.reporter_id == reporter.id, Conversation.channel == channel)
        .order_by(Conversation.last_activity_at.desc(), Conversation.id.desc()).limit(1))


def purge_expired_numbers(session: Session) -> int:
    """Forget numbers past their retention: the reporter stays, only call-backs stop.
    An active subscriber's number is kept: their consent to broadcasts is its basis."""
    now = utcnow()
    subscribed = select(Subscriber.id).where(Subscriber.reporter_id == Reporter.id, Subscriber.status == "active")
    rows = session.scalars(select(Reporter).where(Reporter.phone_expires_at < now,
                                                  Reporter.phone_encrypted.is_not(None),
                                                  ~subscribed.exists())).all()
    for reporter in rows:
        reporter.phone_encrypted = None
    return len(rows)


def aware(value: datetime | None) -> datetime | None:
    """SQLite returns naive datetimes even for timezone-aware columns."""
    return value if value is None or value.tzinfo else value.replace(tzinfo=timezone.utc)


# --- the console's simulator (service/console/simulator.py) --------------------------------

SIMULATOR = "simulator"  # the provider of its messages and the channel of anything it signs up


def simulated():
    """The ids of reporters who wrote through the simulator (a subquery): real-data queries
    leave them out (`Alert.reporter_id.not_in(simulated())`), and nothing is sent to them."""
    return select(Message.reporter_id).where(Message.provider == SIMULATOR, Message.reporter_id.is_not(None)) \
        .distinct().scalar_subquery()


def real_alerts(query):
    """`query` on alerts without the simulator's."""
    from service.models import Alert
    return query.where((Alert.reporter_id.is_(None)) | Alert.reporter_id.not_in(simulated()))
