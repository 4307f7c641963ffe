"""Benchmark (not a test): a steady stream of SMS while parts of the service are killed.

    .venv/bin/python scripts/bench_faults.py [--messages 2000] [--senders 200] [--rate 5]
        [--fault-every 30] [--faults worker,redis,rasa] [--rasa-fault restart|pause]
        [--sqlite] [--lanes 2] [--converge 600] [--json out.json] [--keep]

A smaller run: --messages 200 --senders 20 --fault-every 15.

It starts its own throwaway stack with the fault tests' harness (tests/faults/harness.py):
a private redis-server, a private PostgreSQL cluster (--sqlite: a file), the trained
Rasa model, the action server, the worker and gunicorn, all on free loopback ports,
plus the Twilio stand-in in this process. It never uses the machine's shared Redis or
PostgreSQL. Every --fault-every seconds it breaks the next part in --faults:

- worker: SIGKILL, started again 2 s later;
- redis: SIGKILL (nothing persisted), started again 3 s later on the same port;
- rasa: SIGKILL and a new server on the same port (it loads its model: most of a
  minute without Rasa), or with --rasa-fault pause, SIGSTOP for 10 s then SIGCONT.

The senders text real report conversations (French, Swahili, Lingala), round-robin,
at --rate messages per second through at most --lanes webhooks at once. Afterwards
it waits (at most --converge s) for the service to settle and prints: received,
processed, failed, replies handed (TwiML) and sent (stand-in), duplicates, lost, the
worst and median delay from a message's arrival to its real reply, and the problems
found (harness.examine: the same checks as the fault tests).
"""

from __future__ import annotations

import argparse
import itertools
import json
import queue
import shutil
import signal
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.faults import harness  # noqa: E402

CONVERSATIONS = [harness.TEXTS["fr"], harness.TEXTS["sw"], harness.TEXTS["ln"],
                 ["Watu wenye silaha wameshambulia Kasindi leo", "jana usiku", "3", "ADF", "ndiyo"],
                 ["Des hommes armes ont brule des maisons a Butembo ce matin", "0", "1"],
                 ["Bato ya mandoki bakoti na Komanda na butu", "0", "1"]]


def arguments(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--messages", type=int, default=2000)
    p.add_argument("--senders", type=int, default=200)
    p.add_argument("--rate", type=float, default=5.0, help="messages per second (steady)")
    p.add_argument("--fault-every", type=float, default=30.0, help="seconds between two faults (0: none)")
    p.add_argument("--faults", default="worker,redis,rasa", help="which parts to break, in turn")
    p.add_argument("--rasa-fault", choices=["restart", "pause"], default="restart")
    p.add_argument("--lanes", type=int, default=2, help="webhooks in flight at once")
    p.add_argument("--web-workers", type=int, default=2)
    p.add_argument("--sqlite", action="store_true", help="SQLite instead of a private PostgreSQL")
    p.add_argument("--converge", type=float, default=600.0, help="longest wait for the service to settle (s)")
    p.add_argument("--json", type=Path, help="write the figures there too")
    p.add_argument("--keep", action="store_true", help="keep the work folder (logs) afterwards")
    args = p.parse_args(argv)
    if args.messages < 1 or args.senders < 1 or args.rate <= 0 or args.lanes < 1:
        p.error("--messages, --senders, --rate and --lanes must be positive")
    if args.senders > 1000 or args.messages > 20000:
        p.error("at most 1000 senders and 20000 messages")
    return args


def schedule(args) -> list[tuple[str, str]]:
    """(number, text) in sending order: round-robin over the senders, each in order."""
    numbers = [harness.new_number() for _ in range(args.senders)]
    scripts = {n: itertools.cycle(CONVERSATIONS[i % len(CONVERSATIONS)]) for i, n in enumerate(numbers)}
    return [(numbers[i % len(numbers)], next(scripts[numbers[i % len(numbers)]])) for i in range(args.messages)]


class Faults(threading.Thread):
    """Breaks the next part every `every` seconds until told to stop; logs what it did."""

    def __init__(self, stack, kinds: list[str], every: float, rasa_fault: str, t0: float):
        super().__init__(daemon=True)
        self.stack, self.kinds, self.every, self.rasa_fault, self.t0 = stack, kinds, every, rasa_fault, t0
        self.stopping = threading.Event()  # no more faults
        self.idle = threading.Event()  # the last fault is repaired
        self.release = threading.Event()  # may end: processes it restarted die with it (PDEATHSIG)
        self.log: list[str] = []

    def note(self, text: str) -> None:
        line = f"[{time.time() - self.t0:6.1f} s] {text}"
        self.log.append(line)
        print(line, flush=True)

    def run(self) -> None:
        for kind in itertools.cycle(self.kinds):
            if self.stopping.wait(self.every):
                break
            try:
                self.inject(kind)
            except Exception as exc:  # noqa: BLE001 - keep the run going, say so
                self.note(f"{kind}: fault failed: {exc}")
        self.idle.set()
        self.release.wait()

    def inject(self, kind: str) -> None:
        s = self.stack
        if kind == "worker":
            self.note("worker: SIGKILL")
            s.worker.kill(signal.SIGKILL)
            time.sleep(2)
            s.worker.start()
            self.note("worker: started")
        elif kind == "redis":
            self.note("redis: SIGKILL")
            s.redis.kill(signal.SIGKILL)
            time.sleep(3)
            s.redis.start()
            self.note("redis: started")
        elif kind == "rasa" and self.rasa_fault == "pause":
            self.note("rasa: SIGSTOP")
            s.rasa.pause()
            time.sleep(10)
            s.rasa.resume()
            self.note("rasa: SIGCONT")
        elif kind == "rasa":
            self.note("rasa: SIGKILL, restarting")
            s.rasa.kill(signal.SIGKILL)
            s.rasa.start()
            self.note("rasa: ready again")
        elif kind == "actions":
            self.note("actions: SIGKILL")
            s.actions.kill(signal.SIGKILL)
            time.sleep(3)
            s.actions.start()
            self.note("actions: started")
        elif kind == "postgres" and s.postgres is not None:
            self.note("postgres: stop -m fast")
            s.postgres.stop("fast")
            time.sleep(5)
            s.postgres.start()
            self.note("postgres: started")
        else:
            self.note(f"{kind}: unknown fault, skipped")


def send_steadily(stack, plan, rate: float, lanes: int) -> float:
    """Post the plan at `rate` per second through `lanes` threads; returns the seconds taken."""
    work: queue.Queue = queue.Queue(maxsize=lanes * 4)

    def lane():
        while True:
            item = work.get()
            if item is None:
                return
            stack.phones.post(*item)

    threads = [threading.Thread(target=lane, daemon=True) for _ in range(lanes)]
    for thread in threads:
        thread.start()
    start = time.monotonic()
    for i, item in enumerate(plan):
        delay = start + i / rate - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        work.put(item)  # blocks when the service falls behind: the achieved rate drops
        if (i + 1) % max(1, int(rate * 10)) == 0:
            print(f"  sent {i + 1}/{len(plan)}", flush=True)
    for _ in threads:
        work.put(None)
    harness.join(threads, 600)
    return time.monotonic() - start


def percentile(values: list[float], p: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(p / 100 * (len(ordered) - 1))))]


def main(argv=None) -> int:
    args = arguments(argv)
    reason = None if args.sqlite else harness.postgres_missing()
    if reason:
        print(f"PostgreSQL unavailable ({reason}): using SQLite", flush=True)
    workdir = Path(tempfile.mkdtemp(prefix="alerte-bench-faults-"))
    stack = harness.Stack(workdir, postgres=not args.sqlite and reason is None, web_workers=args.web_workers)
    faults = None
    try:
        print("starting the stack (Rasa loads its model: about a minute)...", flush=True)
        stack.start()
        plan = schedule(args)
        t0 = time.time()
        kinds = [k.strip() for k in args.faults.split(",") if k.strip()]
        if args.fault_every > 0 and kinds:
            faults = Faults(stack, kinds, args.fault_every, args.rasa_fault, t0)
            faults.start()
        print(f"sending {len(plan)} messages from {args.senders} senders at {args.rate}/s", flush=True)
        took = send_steadily(stack, plan, args.rate, args.lanes)
        if faults is not None:
            faults.stopping.set()
            faults.idle.wait(180)
        stack.ensure_running()
        if not stack.worker.alive():
            print(f"worker found dead (exit {stack.worker.popen.returncode}); started", flush=True)
            stack.worker.start()
        waited = time.monotonic()
        settled = stack.settle(args.converge)
        waited = time.monotonic() - waited
        report = stack.examine()
        deliveries = list(stack.phones.deliveries)
        latencies = [d.seconds for d in deliveries if d.seconds is not None]
        figures = {
            "messages": len(plan), "senders": args.senders, "rate": args.rate,
            "achieved_rate": round(len(plan) / took, 2) if took else None,
            "webhook_errors": sum(1 for d in deliveries if d.status != 200 or d.error),
            "webhook_p50_s": percentile(latencies, 50), "webhook_max_s": max(latencies, default=None),
            "received": report.received, "processed": report.processed, "failed": report.failed,
            "unprocessed": report.unprocessed, "unanswered": report.unanswered,
            "replies_handed": report.replies_handed, "replies_sent": report.replies_sent,
            "duplicates": report.duplicates, "lost": report.lost,
            "worst_delay_s": report.worst_delay, "median_delay_s": statistics.median(report.delays)
            if report.delays else None, "p95_delay_s": percentile(report.delays, 95),
            "settled": settled, "settle_wait_s": round(waited, 1), "problems": len(report.problems),
            "faults": faults.log if faults else [],
        }
        print("\n== bench_faults ==")
        for key, value in figures.items():
            if key != "faults":
                print(f"{key:>16}: {round(value, 2) if isinstance(value, float) else value}")
        print(f"{'db':>16}: in={dict(report.state['in'])} out={dict(report.state['out'])}")
        if report.delay_points:
            arrival, delay = max(report.delay_points, key=lambda p: p[1])
            print(f"{'worst':>16}: {delay:.1f} s, a message that arrived at {arrival - t0:.1f} s")
            print("  worst delay by arrival (10 s buckets):")
            buckets: dict[int, float] = {}
            for arrival, delay in report.delay_points:
                key = int((arrival - t0) // 10)
                buckets[key] = max(buckets.get(key, 0.0), delay)
            print("  " + " ".join(f"{k * 10}s:{v:.0f}" for k, v in sorted(buckets.items())))
        if report.problems:
            print(f"first problems of {len(report.problems)}:")
            for problem in report.problems[:25]:
                print("  -", problem)
        if args.json:
            args.json.write_text(json.dumps({**figures, "problem_list": report.problems[:500]}, indent=2))
        ok = settled and not report.duplicates and not report.lost and not report.problems
        return 0 if ok else 1
    finally:
        if faults is not None:
            faults.stopping.set()
        stack.stop()
        if faults is not None:
            faults.release.set()
        if args.keep:
            print(f"work folder kept: {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
