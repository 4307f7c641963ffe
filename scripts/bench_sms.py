"""Benchmark (not a test): SMS turns through the whole service against the same turns sent to Rasa.

    .venv/bin/python scripts/bench_sms.py [--senders 1,20] [--turns 7] [--url URL] [--rasa-url URL]
                                          [--token TWILIO_AUTH_TOKEN] [--json out.json]

Path "service": a signed Twilio webhook, answered with TwiML (storage, lock, Rasa, rendering).
Path "rasa": the same texts straight to Rasa's REST channel, i.e. the engine alone.
Each simulated sender plays a short conversation in French, Swahili or Lingala, one
turn after the other's answer, from its own fake number (+24399...) or Rasa sender id.
Loopback addresses only; bounded in senders, turns and time. Every run creates fresh
fake reporters in the service's database: point it at a development setup.
"""

from __future__ import annotations

import argparse
import json
import secrets
import sys
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from urllib.parse import urlparse

import requests

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from service.chat import ChatError, Phone  # noqa: E402
from service.config import DEFAULTS, DEV_TWILIO_AUTH_TOKEN  # noqa: E402

# One report each, as reporters text it: a greeting, a report that leaves questions open,
# then the answers (place, when, how many people, who, confirm). Checked against the bot.
SCRIPTS = {
    "fr": ["Bonjour", "il y a eu une attaque", "Butembo", "3", "4", "0", "1"],
    "sw": ["Habari", "watu wenye silaha wameshambulia kijiji", "Beni", "3", "5", "1"],
    "ln": ["Mbote", "bato ya mindoki babomi bato", "Bunia", "2", "5", "0", "1"],
}
LOOPBACK = {"127.0.0.1", "localhost", "::1"}
MAX_SENDERS, MAX_TURNS = 50, 200


@dataclass
class Row:
    path: str
    senders: int
    turns: int
    p50: float
    p90: float
    p99: float
    throughput: float
    errors: int
    empty: int  # answered without any text (e.g. the service deferred the reply to the worker)


def percentile(values: list[float], p: float) -> float:
    """Linear interpolation between closest ranks; NaN when there is nothing to rank."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    k = (len(ordered) - 1) * p / 100
    low = int(k)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (k - low)


def script_for(index: int) -> list[str]:
    languages = list(SCRIPTS)
    return SCRIPTS[languages[index % len(languages)]]


class ServiceSender:
    def __init__(self, args, number: str):
        self.phone = Phone(args.url, number, args.to, args.token, timeout=args.timeout, session=requests.Session())

    def turn(self, text: str) -> bool:
        """One SMS; True when the answer carried text."""
        return any(body.strip() for body in self.phone.text(text))


class RasaSender:
    def __init__(self, args, sender_id: str):
        self.url = args.rasa_url.rstrip("/") + "/webhooks/rest/webhook"
        self.sender_id, self.timeout, self.http = sender_id, args.timeout, requests.Session()

    def turn(self, text: str) -> bool:
        response = self.http.post(self.url, json={"sender": self.sender_id, "message": text}, timeout=self.timeout)
        response.raise_for_status()
        return bool(response.json())


def play(sender, script: list[str], turns: int, deadline: float, start: threading.Barrier,
         latencies: list[float], counts: dict, lock: threading.Lock) -> None:
    start.wait()
    for i in range(turns):
        if time.monotonic() > deadline:
            with lock:
                counts["late"] += turns - i
            return
        began = time.perf_counter()
        try:
            answered = sender.turn(script[i % len(script)])
        except (requests.RequestException, ChatError, ValueError):
            with lock:
                counts["errors"] += 1
            continue
        elapsed = (time.perf_counter() - began) * 1000
        with lock:
            latencies.append(elapsed)
            counts["empty"] += not answered


def run_path(path: str, make_sender, senders: int, turns: int, max_seconds: float) -> Row:
    latencies: list[float] = []
    counts = {"errors": 0, "empty": 0, "late": 0}
    lock = threading.Lock()
    start = threading.Barrier(senders + 1)
    deadline = time.monotonic() + max_seconds
    threads = [threading.Thread(target=play, daemon=True,
                                args=(make_sender(i), script_for(i), turns, deadline, start, latencies, counts, lock))
               for i in range(senders)]
    for thread in threads:
        thread.start()
    start.wait()
    began = time.perf_counter()
    for thread in threads:
        thread.join(max(0.0, deadline - time.monotonic()) + 60)  # a request may outlive the deadline by its timeout
    wall = time.perf_counter() - began
    if counts["late"]:
        print(f"  {path}: time limit reached, {counts['late']} turns not sent", file=sys.stderr)
    return Row(path, senders, len(latencies) + counts["errors"], round(percentile(latencies, 50), 1),
               round(percentile(latencies, 90), 1), round(percentile(latencies, 99), 1),
               round(len(latencies) / wall, 1) if wall > 0 else 0.0, counts["errors"], counts["empty"])


def check_loopback(*urls: str) -> None:
    for url in urls:
        if urlparse(url).hostname not in LOOPBACK:
            raise SystemExit(f"refusing {url}: this benchmark only talks to loopback addresses")


def parse_args(argv: list[str] | None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default="http://127.0.0.1:8000",
                        help="the service's base URL, as its PUBLIC_BASE_URL (signatures are computed on it)")
    parser.add_argument("--rasa-url", default="http://127.0.0.1:5005")
    parser.add_argument("--token", default=DEV_TWILIO_AUTH_TOKEN, help="the service's TWILIO_AUTH_TOKEN")
    parser.add_argument("--to", default=DEFAULTS["TWILIO_FROM"], help="the service's number")
    parser.add_argument("--senders", default="1,20", help="comma-separated concurrency levels")
    parser.add_argument("--turns", type=int, default=7, help="turns per sender (a report takes 6 or 7)")
    parser.add_argument("--paths", default="service,rasa", help="which paths to measure")
    parser.add_argument("--max-seconds", type=float, default=300.0, help="time limit for each run")
    parser.add_argument("--timeout", type=float, default=30.0, help="seconds per request")
    parser.add_argument("--json", type=Path, metavar="FILE", help="also write the results as JSON")
    args = parser.parse_args(argv)
    args.levels = [int(n) for n in args.senders.split(",") if n.strip()]
    args.paths = [p.strip() for p in args.paths.split(",") if p.strip()]
    if not args.levels or any(not 1 <= n <= MAX_SENDERS for n in args.levels):
        parser.error(f"--senders: each level between 1 and {MAX_SENDERS}")
    if not 1 <= args.turns <= MAX_TURNS:
        parser.error(f"--turns: between 1 and {MAX_TURNS}")
    if set(args.paths) - {"service", "rasa"}:
        parser.error("--paths: service and/or rasa")
    check_loopback(*([args.url] if "service" in args.paths else []) + ([args.rasa_url] if "rasa" in args.paths else []))
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    run = secrets.randbelow(100)  # fresh fake numbers and sender ids for every run
    makers = {
        # +243 99 RR LLL SS: run, level, sender (7 digits after +24399)
        "service": lambda level, i: ServiceSender(args, f"+24399{run:02d}{level:03d}{i:02d}"),
        "rasa": lambda level, i: RasaSender(args, f"bench-{run:02d}-{level}-{i}-{secrets.token_hex(4)}"),
    }
    warm = {"service": lambda: ServiceSender(args, f"+24399{run:02d}99999"),
            "rasa": lambda: RasaSender(args, f"bench-warmup-{secrets.token_hex(4)}")}
    for path in args.paths:  # the first turn of each path loads caches and connections
        try:
            warm[path]().turn("Bonjour")
        except (requests.RequestException, ChatError, ValueError) as exc:
            print(f"error: {path} path not answering: {exc}", file=sys.stderr)
            return 1
    rows: list[Row] = []
    for level in args.levels:
        for path in args.paths:
            print(f"# {path}: {level} senders x {args.turns} turns", file=sys.stderr, flush=True)
            rows.append(run_path(path, lambda i: makers[path](level, i), level, args.turns, args.max_seconds))
    print_table(rows)
    ratios = ratios_of(rows)
    for level, ratio in ratios.items():
        print(f"service/rasa at {level} senders: p50 x{ratio['p50']}, p99 x{ratio['p99']}")
    if args.json:
        args.json.write_text(json.dumps({"turns_per_sender": args.turns, "rows": [asdict(r) for r in rows],
                                         "ratios": ratios}, indent=2) + "\n")
    return 1 if any(r.errors for r in rows) else 0


def ratios_of(rows: list[Row]) -> dict:
    by = {(r.path, r.senders): r for r in rows}
    out = {}
    for (path, level), service in by.items():
        rasa = by.get(("rasa", level))
        if path == "service" and rasa and rasa.p50 > 0 and rasa.p99 > 0:
            out[str(level)] = {"p50": round(service.p50 / rasa.p50, 2), "p99": round(service.p99 / rasa.p99, 2)}
    return out


def print_table(rows: list[Row]) -> None:
    header = ("path", "senders", "turns", "p50 ms", "p90 ms", "p99 ms", "turns/s", "errors", "empty")
    lines = [header] + [(r.path, r.senders, r.turns, r.p50, r.p90, r.p99, r.throughput, r.errors, r.empty)
                        for r in rows]
    widths = [max(len(str(line[c])) for line in lines) for c in range(len(header))]
    for line in lines:
        print("  ".join(str(v).rjust(w) if c else str(v).ljust(w) for c, (v, w) in enumerate(zip(line, widths))))


if __name__ == "__main__":
    sys.exit(main())
