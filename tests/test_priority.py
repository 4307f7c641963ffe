"""Broadcast senders giving way to conversations (service/priority.py), on real Redis.

The waits are counted in polls through an injected clock and sleep, never timed.
"""

from __future__ import annotations

import threading
import time

import pytest
import redis

from service import priority


@pytest.fixture
def conn(redis_url):
    connection = redis.Redis.from_url(redis_url)
    yield connection
    connection.close()


class Clock:
    """A clock that moves only when the code under test sleeps (steps exact in binary)."""

    def __init__(self):
        self.now, self.sleeps, self.on_sleep = 100.0, 0, None

    def __call__(self):
        return self.now

    def sleep(self, seconds):
        self.sleeps += 1
        self.now += seconds
        if self.on_sleep:
            self.on_sleep(self.sleeps)


def give_way(conn, clock, replies="alerte", budget=1.0):
    return priority.GiveWay(conn, replies, budget, poll=0.25, clock=clock, sleep=clock.sleep)


def test_nobody_being_answered_means_no_wait(conn):
    clock = Clock()
    assert give_way(conn, clock)() is True
    assert clock.sleeps == 0


def test_a_sender_waits_while_a_turn_runs_and_goes_on_when_it_ends(conn):
    clock, release, done = Clock(), threading.Event(), threading.Event()
    ready = threading.Event()

    def turn():
        with priority.serving(conn):
            ready.set()
            release.wait(10)
        done.set()

    threading.Thread(target=turn).start()
    assert ready.wait(10)
    assert priority.pressure(conn, "alerte") == (1, 0)

    def end_turn_at_third_poll(count):
        if count == 3:
            release.set()
            assert done.wait(10)

    clock.on_sleep = end_turn_at_third_poll
    way = give_way(conn, clock)
    assert way() is True
    assert clock.sleeps == 3 and way.waited == 0.75
    assert priority.pressure(conn, "alerte") == (0, 0)  # the mark went with the turn


def test_a_turn_that_never_ends_holds_a_chunk_back_for_the_budget_only(conn):
    clock = Clock()
    conn.zadd(priority.TURNS_KEY, {"stuck": time.time() + 60})
    way = give_way(conn, clock, budget=0.5)
    assert way() is True
    assert clock.sleeps == 2  # 0.5 s of 0.25 s polls
    assert way() is True and clock.sleeps == 2  # the rest of the chunk goes without waiting again


def test_a_reply_job_waiting_stops_the_chunk_for_good(conn):
    clock = Clock()
    conn.rpush("rq:queue:alerte", "some-job-id")
    way = give_way(conn, clock)
    assert way() is False and way.stopped
    conn.delete("rq:queue:alerte")
    assert way() is False  # once handed back, the rest of the chunk is put back too


def test_a_worker_that_takes_no_replies_does_not_stop_for_their_jobs(conn):
    conn.rpush("rq:queue:alerte", "some-job-id")
    assert give_way(conn, Clock(), replies=None)() is True


def test_a_lapsed_mark_counts_for_nothing_and_the_sweep_removes_it(conn):
    conn.zadd(priority.TURNS_KEY, {"dead-process": time.time() - 1})
    assert priority.pressure(conn, "alerte") == (0, 0)
    assert priority.tidy(conn) == 1 and conn.zcard(priority.TURNS_KEY) == 0


def test_a_budget_of_zero_never_waits(conn):
    conn.zadd(priority.TURNS_KEY, {"turn": time.time() + 60})
    clock = Clock()
    assert give_way(conn, clock, budget=0)() is True and clock.sleeps == 0


def test_redis_down_blocks_neither_the_turn_nor_the_sender():
    dead = redis.Redis(host="127.0.0.1", port=1, socket_connect_timeout=0.2)
    with priority.serving(dead):
        pass  # no error: the turn goes on unmarked
    assert priority.pressure(dead, "alerte") == (0, 0)
    assert give_way(dead, Clock())() is True
