"""Conversations first: broadcast senders give way while a reporter is being answered.

Queues already keep a reply from waiting behind a broadcast's jobs (service/queue.py).
This keeps it from waiting behind a broadcast's CPU: on a small machine a broadcast sent
at full speed takes every core, and a reporter's turn (web, Rasa, the action server, the
database) slows down several times over (scripts/bench_broadcast.py).

- Whoever serves a reporter marks the turn in Redis while it runs (`serving`): the
  webhook, and the job that answers postponed messages. A mark lapses after MARK_TTL
  seconds, so a process killed mid-turn does not hold broadcasts back for long.
- A broadcast sender asks `GiveWay` before each chunk and before each item. While a
  turn is marked it waits, polling, for at most `budget` seconds per chunk (so a steady
  stream of conversations slows a broadcast, never stops it). When a job waits in the
  reporters' queue, the sender stops its slice at once: the worker it runs in is needed.

Redis trouble never blocks anybody: a mark that cannot be written is skipped, and a
sender that cannot look goes on sending.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from contextlib import contextmanager

import redis

log = logging.getLogger(__name__)

TURNS_KEY = "alerte:turns-in-flight"  # sorted set: token -> time its mark lapses
MARK_TTL = 30.0  # s; longer than any turn (the webhook's budget, Rasa's timeout)
POLL = 0.02  # s between looks while giving way


@contextmanager
def serving(connection):
    """Mark a reporter's turn as running for as long as the block runs."""
    token = uuid.uuid4().hex
    marked = False
    if connection is not None:
        try:
            connection.zadd(TURNS_KEY, {token: time.time() + MARK_TTL})
            marked = True
        except redis.RedisError:
            pass
    try:
        yield
    finally:
        if marked:
            try:
                connection.zrem(TURNS_KEY, token)
            except redis.RedisError:
                pass  # it lapses by itself


def pressure(connection, replies_queue: str | None) -> tuple[int, int]:
    """(turns running now, jobs waiting in the reporters' queue); (0, 0) if Redis cannot say."""
    if connection is None:
        return 0, 0
    try:
        pipe = connection.pipeline(transaction=False)
        pipe.zcount(TURNS_KEY, time.time(), "+inf")
        if replies_queue:
            pipe.llen(f"rq:queue:{replies_queue}")
        turns, *waiting = pipe.execute()
    except redis.RedisError:
        return 0, 0
    return int(turns), int(waiting[0]) if waiting else 0


def tidy(connection) -> int:
    """Drop lapsed marks (the sweep calls it); returns how many."""
    try:
        return int(connection.zremrangebyscore(TURNS_KEY, "-inf", time.time()))
    except redis.RedisError:
        return 0


class GiveWay:
    """One chunk's view, shared by the threads that send its items.

    Calling it returns True when the caller may send now (after waiting, bounded, while a
    turn runs) and False when it should stop and hand its worker back (a reply job waits).
    Once False, it stays False: the rest of the chunk is put back, not sent.
    """

    def __init__(self, connection, replies_queue: str | None, budget: float, poll: float = POLL,
                 clock=time.monotonic, sleep=time.sleep):
        self.connection, self.replies_queue = connection, replies_queue
        self.budget, self.poll = budget, poll
        self.clock, self.sleep = clock, sleep
        self.stopped = False
        self.waited = 0.0  # s this chunk gave way, for the sender's log
        self._deadline: float | None = None
        self._seen: tuple[float, tuple[int, int]] | None = None
        self._lock = threading.Lock()

    def _look(self) -> tuple[int, int]:
        with self._lock:  # one Redis round trip per poll, whatever the number of threads
            now = self.clock()
            if self._seen is None or now - self._seen[0] >= self.poll:
                self._seen = (now, pressure(self.connection, self.replies_queue))
            return self._seen[1]

    def __call__(self) -> bool:
        if self.budget <= 0 or self.connection is None:
            return True
        while not self.stopped:
            turns, waiting = self._look()
            if waiting:
                self.stopped = True
                break
            if not turns:
                return True
            now = self.clock()
            with self._lock:
                if self._deadline is None:
                    self._deadline = now + self.budget
                deadline = self._deadline
            if now >= deadline:
                return True  # given way long enough for this chunk
            self.sleep(self.poll)
            with self._lock:
                self.waited += self.poll
        return False
