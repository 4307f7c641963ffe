"""Benchmark (not a test): what each gateway module itself costs, against its local stand-in.

    .venv/bin/python scripts/bench_gateways.py [--gateways twilio,africastalking] [--sends 200]
                                               [--threads 1,4] [--json out.json]

Path "send": `Channel.send()` through the provider's real SDK to the stand-in the tests
use (tests/*_standin.py), from a few threads at once: the SDK's request building, the
HTTP round trip on loopback and the mapping of the answer; the stand-in answers at once,
so this is the module's overhead, never the provider's speed.
Path "inbound": `verify()` and `parse_inbound()` of one callback (signature or Basic
credentials, number normalisation), in a request context: no database, no engine.

Fake numbers (+2439900...), loopback stand-ins started and stopped here; bounded in
sends and threads. A gateway is added by one entry of GATEWAYS.
"""

from __future__ import annotations

import argparse
import base64
import json
import sys
import threading
import time
import uuid
from dataclasses import asdict, dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from flask import Flask, request  # noqa: E402
from twilio.request_validator import RequestValidator  # noqa: E402

from service.channels import load  # noqa: E402
from service.channels.base import SendError  # noqa: E402

PUBLIC_BASE_URL = "https://alerte.example.org"
MAX_SENDS, MAX_THREADS = 5000, 32
INBOUND_CALLS = 500


@dataclass
class Row:
    gateway: str
    path: str
    threads: int
    calls: int
    p50: float  # ms
    p90: float
    p99: float
    throughput: float  # calls per second
    errors: int


def percentile(values: list[float], p: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    k = (len(ordered) - 1) * p / 100
    low = int(k)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (k - low)


def number(i: int) -> str:
    return f"+2439900{i % 100000:05d}"


# --- the gateways: a stand-in, the channel's entry, one inbound callback ---------------

def twilio_gateway():
    from tests.twilio_standin import TwilioStandin

    standin = TwilioStandin().start()
    token = "bench-auth-token"
    entry = {"name": "twilio", "kind": "twilio", "account_sid": "AC" + "0" * 31 + "1", "auth_token": token,
             "from": "+243990000000", "api_base": standin.url}
    validator = RequestValidator(token)

    def callback(i: int) -> tuple[str, dict, dict]:
        path = "/webhooks/twilio/sms"
        form = {"MessageSid": f"SM{uuid.uuid4().hex}", "AccountSid": entry["account_sid"], "From": number(i),
                "To": entry["from"], "Body": "watu wenye silaha wako kasindi", "NumMedia": "0"}
        return path, form, {"X-Twilio-Signature": validator.compute_signature(PUBLIC_BASE_URL + path, form)}

    return standin, entry, callback


def africastalking_gateway():
    from tests.africastalking_standin import AfricasTalkingStandin

    standin = AfricasTalkingStandin("bench", "bench-api-key").start()
    entry = {"name": "africastalking", "kind": "africastalking", "username": "bench", "api_key": "bench-api-key",
             "short_code": "12345", "callback_user": "at", "callback_password": "bench-callback-secret",
             "api_base": standin.url}
    auth = "Basic " + base64.b64encode(b"at:bench-callback-secret").decode()

    def callback(i: int) -> tuple[str, dict, dict]:
        form = {"from": number(i), "to": "12345", "text": "watu wenye silaha wako kasindi",
                "id": str(uuid.uuid4()), "date": "2024-05-01T10:00:00.000Z", "linkId": "bench-link"}
        return "/webhooks/africastalking/sms", form, {"Authorization": auth}

    return standin, entry, callback


GATEWAYS = {"twilio": twilio_gateway, "africastalking": africastalking_gateway}


# --- the two paths ----------------------------------------------------------------------

def bench_send(name: str, channel, sends: int, threads: int) -> Row:
    latencies: list[float] = []
    errors = 0
    lock = threading.Lock()
    start = threading.Barrier(threads + 1)
    share = [sends // threads + (1 if t < sends % threads else 0) for t in range(threads)]

    def work(t: int) -> None:
        nonlocal errors
        start.wait()
        for i in range(share[t]):
            began = time.perf_counter()
            try:
                channel.send(number(t * 1000 + i), "Alerte: route Beni-Butembo dangereuse, restez a l'abri")
            except SendError:
                with lock:
                    errors += 1
                continue
            with lock:
                latencies.append((time.perf_counter() - began) * 1000)

    workers = [threading.Thread(target=work, args=(t,), daemon=True) for t in range(threads)]
    for w in workers:
        w.start()
    start.wait()
    began = time.perf_counter()
    for w in workers:
        w.join()
    elapsed = time.perf_counter() - began
    return Row(name, "send", threads, sends, percentile(latencies, 50), percentile(latencies, 90),
               percentile(latencies, 99), len(latencies) / elapsed if elapsed else float("nan"), errors)


def bench_inbound(name: str, channel, callback, calls: int) -> Row:
    app = Flask(__name__)
    latencies, errors = [], 0
    requests_ = [callback(i) for i in range(calls)]
    began = time.perf_counter()
    for path, form, headers in requests_:
        with app.test_request_context(path, method="POST", data=form, headers=headers,
                                      base_url=PUBLIC_BASE_URL):
            t0 = time.perf_counter()
            if channel.verify(request):
                channel.parse_inbound(request)
            else:
                errors += 1
            latencies.append((time.perf_counter() - t0) * 1000)
    elapsed = time.perf_counter() - began
    return Row(name, "inbound", 1, calls, percentile(latencies, 50), percentile(latencies, 90),
               percentile(latencies, 99), calls / elapsed if elapsed else float("nan"), errors)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--gateways", default=",".join(GATEWAYS), help="comma-separated: " + ", ".join(GATEWAYS))
    parser.add_argument("--sends", type=int, default=200, help=f"sends per gateway and thread count (≤{MAX_SENDS})")
    parser.add_argument("--threads", default="1,4", help=f"comma-separated thread counts (each ≤{MAX_THREADS})")
    parser.add_argument("--json", type=Path, help="also write the rows here")
    args = parser.parse_args(argv)
    names = [g.strip() for g in args.gateways.split(",") if g.strip()]
    unknown = [g for g in names if g not in GATEWAYS]
    if unknown:
        parser.error(f"unknown gateway(s): {', '.join(unknown)}")
    sends = max(1, min(args.sends, MAX_SENDS))
    thread_counts = [max(1, min(int(t), MAX_THREADS)) for t in args.threads.split(",") if t.strip()]

    rows: list[Row] = []
    for name in names:
        standin, entry, callback = GATEWAYS[name]()
        try:
            channel = load({"CHANNELS": [entry], "PUBLIC_BASE_URL": PUBLIC_BASE_URL}).get(entry["name"])
            channel.send(number(0), "warm-up")  # connections, imports
            rows.append(bench_inbound(name, channel, callback, INBOUND_CALLS))
            for threads in thread_counts:
                rows.append(bench_send(name, channel, sends, threads))
        finally:
            standin.stop()

    print(f"{'gateway':<16} {'path':<8} {'threads':>7} {'calls':>6} {'p50 ms':>8} {'p90 ms':>8} "
          f"{'p99 ms':>8} {'per s':>8} {'errors':>6}")
    for r in rows:
        print(f"{r.gateway:<16} {r.path:<8} {r.threads:>7} {r.calls:>6} {r.p50:>8.2f} {r.p90:>8.2f} "
              f"{r.p99:>8.2f} {r.throughput:>8.1f} {r.errors:>6}")
    if args.json:
        args.json.write_text(json.dumps([asdict(r) for r in rows], indent=2) + "\n", encoding="utf-8")
    return 1 if any(r.errors for r in rows) else 0


if __name__ == "__main__":
    sys.exit(main())
