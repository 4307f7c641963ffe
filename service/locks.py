"""One sender, one message at a time: a Redis lock per reporter, across processes.

Why Redis and not the database: web workers, the RQ worker and several machines all
process messages, and the lock must expire by itself if a process dies holding it.
"""

from __future__ import annotations

import contextlib
import logging

import redis
from redis.exceptions import LockError, LockNotOwnedError
from redis.lock import Lock

log = logging.getLogger(__name__)


class Busy(Exception):
    """Another process holds this reporter's lock beyond the wait we allow."""


class Unavailable(Exception):
    """Redis cannot be reached: no lock can be taken."""


LockLost = LockNotOwnedError  # raised by reacquire() once the lock expired and may be another's


def reporter_lock(connection: redis.Redis, reporter_id: int, timeout: float, wait: float) -> Lock:
    return Lock(connection, f"alerte:lock:reporter:{reporter_id}", timeout=timeout,
                blocking_timeout=wait, thread_local=False)


@contextlib.contextmanager
def holding(connection: redis.Redis, reporter_id: int, timeout: float = 60.0, wait: float = 5.0):
    """Hold a reporter's lock for the block; raises Busy or Unavailable if it can't be had.

    The yielded lock can be renewed with ``lock.reacquire()`` between long steps.
    """
    lock = reporter_lock(connection, reporter_id, timeout, wait)
    try:
        acquired = lock.acquire()
    except redis.RedisError as exc:
        raise Unavailable(str(exc)) from exc
    if not acquired:
        raise Busy(f"reporter {reporter_id}")
    try:
        yield lock
    finally:
        try:
            lock.release()
        except (LockNotOwnedError, LockError):
            log.warning("reporter %s: lock expired before release (processing too slow?)", reporter_id)
        except redis.RedisError:
            log.warning("reporter %s: could not release the lock; it will expire", reporter_id)
