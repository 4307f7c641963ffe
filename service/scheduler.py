"""The worker process: an RQ worker sharing the app, and the sweep once per interval.

One Redis key elects a single sweep per interval across all workers. The worker keeps
going through a Redis restart: RQ waits for Redis itself; anything else that stops it
is logged and the worker starts again.
"""

from __future__ import annotations

import logging
import threading
import time

import redis
from rq import Queue, SimpleWorker

from service import queue as queues

log = logging.getLogger(__name__)


ROLES = ("replies", "broadcasts")  # what a worker takes by default; "training" on its own


def queue_names(roles=ROLES) -> list[str]:
    """The queues a worker takes jobs from, in the order it takes them: reporters' work
    (turns, replies, the sweep) first, then urgent broadcasts, then routine ones."""
    names = [queues.QUEUE] if "replies" in roles else []
    if "broadcasts" in roles:
        names += [queues.BROADCAST_QUEUES["urgent"], queues.BROADCAST_QUEUES["routine"]]
    if "training" in roles:
        names.append(queues.TRAINING_QUEUE)
    return names


def work(app, burst: bool = False, roles=ROLES) -> bool:
    """Run a worker in this process (jobs share the app's engine pools) with the scheduler."""
    connection = queues.connect(app.config["REDIS_URL"], blocking=True)
    rq_queue = Queue(queues.QUEUE, connection=connection)
    listened = [Queue(name, connection=connection) for name in queue_names(roles)]
    # a broadcast sender in this process hands the worker back when reporters' jobs wait
    # (service/priority.py); a worker that never takes them has no reason to
    app.config["WORKER_TAKES_REPLIES"] = "replies" in roles
    stop = threading.Event()
    if not burst:
        threading.Thread(target=_schedule_sweeps, args=(connection, rq_queue, stop, app.config["SWEEP_INTERVAL"]),
                         daemon=True).start()
    try:
        with app.app_context():
            while True:
                try:
                    return SimpleWorker(listened, connection=connection).work(
                        burst=burst, with_scheduler=not burst)
                except redis.RedisError as exc:
                    if burst:
                        raise
                    log.warning("worker stopped by Redis (%s); starting again", exc)
                    time.sleep(1)
    finally:
        stop.set()


def _schedule_sweeps(connection, rq_queue, stop: threading.Event, interval: int) -> None:
    while not stop.is_set():
        try:
            if connection.set("alerte:sweep-scheduled", 1, nx=True, ex=max(1, interval - 1)):
                rq_queue.enqueue(queues.SWEEP, job_timeout=300)
        except redis.RedisError:
            log.warning("sweep not scheduled: Redis down")
        stop.wait(interval)
