"""A per-sender pace: how many of one sender's messages are processed per minute.

Everything a flooding phone sends is stored; only its processing waits. A fixed
one-minute window in Redis, shared by every web and job process.
"""

from __future__ import annotations

import time

import redis

WINDOW = 60


def allow(connection: redis.Redis, reporter_id: int, per_minute: int) -> bool:
    """Count one turn for this sender; False when its window is full (the turn waits)."""
    if per_minute <= 0:
        return True
    key = _key(reporter_id)
    pipe = connection.pipeline()
    pipe.incr(key)
    pipe.expire(key, WINDOW * 2)
    count, _ = pipe.execute()
    if count > per_minute:
        connection.decr(key)  # not taken: leave the slot for the turn that will be
        return False
    return True


def give_back(connection: redis.Redis, reporter_id: int) -> None:
    """A turn that failed (an outage) does not use up the sender's pace."""
    try:
        if (connection.decr(_key(reporter_id)) or 0) < 0:
            connection.set(_key(reporter_id), 0, ex=WINDOW * 2)
    except redis.RedisError:
        pass  # the window ends by itself


def _key(reporter_id: int) -> str:
    return f"alerte:rate:{reporter_id}:{int(time.time() // WINDOW)}"


def until_next_window() -> float:
    return WINDOW - time.time() % WINDOW + 0.5
