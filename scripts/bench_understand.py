"""Benchmark (not a test): latency of POST /api/v1/understand through the service.

    .venv/bin/python scripts/bench_understand.py --url http://127.0.0.1:8000 --token TOKEN [--n 300]

Sends the held-out messages (nlu/tests/heldout.yml) in turn from one client, loopback
only, bounded in count, and prints p50/p90/p99 in milliseconds; first, how long the
gazetteer takes to load in this process (each web and worker process loads it once).
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import requests
import yaml

ROOT = Path(__file__).resolve().parent.parent


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(p / 100 * (len(ordered) - 1))))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default="http://127.0.0.1:8000")
    parser.add_argument("--token", default="dev-api-token")
    parser.add_argument("--n", type=int, default=300)
    args = parser.parse_args()
    from bot.places import Gazetteer

    started = time.perf_counter()
    places = Gazetteer.load()
    print(f"gazetteer load  {len(places)} places  {(time.perf_counter() - started) * 1000:.0f} ms")
    texts = [m["text"] for m in yaml.safe_load((ROOT / "nlu/tests/heldout.yml").read_text())["messages"]]
    http = requests.Session()
    headers = {"Authorization": f"Bearer {args.token}"}
    http.post(args.url + "/api/v1/understand", json={"text": texts[0]}, headers=headers, timeout=30)  # warm-up
    latencies, errors = [], 0
    for i in range(args.n):
        started = time.perf_counter()
        resp = http.post(args.url + "/api/v1/understand", json={"text": texts[i % len(texts)]},
                         headers=headers, timeout=30)
        latencies.append((time.perf_counter() - started) * 1000)
        errors += resp.status_code != 200
    print(f"/api/v1/understand  n={args.n}  errors={errors}  "
          f"p50={percentile(latencies, 50):.1f} ms  p90={percentile(latencies, 90):.1f} ms  "
          f"p99={percentile(latencies, 99):.1f} ms  mean={statistics.mean(latencies):.1f} ms")


if __name__ == "__main__":
    main()
