"""Delivery reports: applied to the delivery they report on, in any order, any number of times.

A status only moves forward (queued -> sent -> delivered...), so a repeated or late
report changes nothing. A report can also arrive before we have written the gateway's
id on the row (a fast gateway reports while a broadcast's chunk is still being
recorded): it is kept in Redis for a while and applied when the id is written.
"""

from __future__ import annotations

import json
import logging

import redis as redis_lib
from sqlalchemy import select
from sqlalchemy.orm import Session

from service import reporters
from service.channels.base import StatusUpdate, moves_forward
from service.models import Message, Reporter

log = logging.getLogger(__name__)
EARLY_TTL = 600  # s an early report waits for its row


def _key(channel_name: str, provider_id: str) -> str:
    return f"alerte:early-receipt:{channel_name}:{provider_id}"


def record(session: Session, channel_name: str, update: StatusUpdate, connection=None) -> Message | None:
    """Apply a report; the message, or None when no row has that id yet (then kept)."""
    message = session.scalar(select(Message).where(Message.provider == channel_name,
                                                   Message.provider_id == update.provider_id))
    if message is None:
        _keep_early(connection, channel_name, update)
        return None
    _apply(session, message, update)
    session.commit()
    return message


def _apply(session: Session, message: Message, update: StatusUpdate) -> None:
    if moves_forward(message.status, update.status):
        message.status = update.status
        message.error_code = update.error_code or message.error_code
    if update.opted_out and message.reporter_id:  # stopped at the carrier: every send stops
        reporters.opt_out(session, session.get(Reporter, message.reporter_id))


def _keep_early(connection, channel_name: str, update: StatusUpdate) -> None:
    if connection is None:
        return
    value = json.dumps({"status": update.status, "error_code": update.error_code, "opted_out": update.opted_out,
                        "invalid_number": update.invalid_number})
    try:
        key = _key(channel_name, update.provider_id)
        current = connection.get(key)
        if current is None or moves_forward(json.loads(current)["status"], update.status):
            connection.set(key, value, ex=EARLY_TTL)
    except redis_lib.RedisError:
        log.warning("an early delivery report was not kept (Redis down)")


def apply_early(session: Session, connection, channel_name: str, message_ids: dict[str, int]) -> int:
    """Apply the reports that arrived before these ids were written ({provider_id: message id})."""
    if connection is None or not message_ids:
        return 0
    keys = [_key(channel_name, pid) for pid in message_ids]
    try:
        values = connection.mget(keys)
    except redis_lib.RedisError:
        return 0
    applied = 0
    for (provider_id, message_id), raw in zip(message_ids.items(), values):
        if raw is None:
            continue
        data = json.loads(raw)
        message = session.get(Message, message_id)
        if message is not None:
            _apply(session, message, StatusUpdate(provider_id, data["status"], data.get("error_code"),
                                                  bool(data.get("opted_out")), bool(data.get("invalid_number"))))
            applied += 1
    if applied:
        session.commit()
        try:
            connection.delete(*[k for k, v in zip(keys, values) if v is not None])
        except redis_lib.RedisError:
            pass  # they expire
    return applied
