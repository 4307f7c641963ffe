"""Benchmark (not a test): the operator console's pages with many alerts in PostgreSQL (issue 12).

    .venv/bin/python scripts/bench_console.py [--alerts 100000] [--requests 50] [--web-workers 2]
        [--no-explain] [--json out.json] [--keep]

A smaller run while developing: --alerts 5000 --requests 10.

The stack is bench_broadcast's (scripts/bench_broadcast.py, from tests/faults/harness.py) without
Rasa and without RQ workers: a private PostgreSQL cluster and redis-server, the web app under
gunicorn (--web-workers), bench_broadcast's stand-ins (unused here). Then, straight into the
database (not through the webhooks; a few seconds for 100,000 rows):

- ~200 places of the shipped gazetteer (service.alerts.ensure_place): 170 localities with
  coordinates (the largest by population), 25 territories, 5 provinces;
- 300 reporters (random keys, no phone number);
- --alerts alerts, one multi-row INSERT (SQLAlchemy Core executemany) per 5,000 rows, created over
  the last 12 weeks (uniformly), the 12 categories (ATTACK and ARMED_PRESENCE most frequent,
  SEXUAL_VIOLENCE 2 %), 3 % with no place, channel sms 80 % / voice 20 %, languages fr/sw/ln,
  statuses new 20 % / acknowledged 20 % / verified 20 % / closed 40 %;
- their triage events (alert_events, one INSERT ... SELECT each): "acknowledged" for every
  alert past new, 5 min to 6 h after it arrived, "verified" and "dispatched" for the later ones;
- incidents by one INSERT ... SELECT: the alerts of one category, place and day are one incident
  (not service.incidents' matching, which works one alert at a time: far too slow for 100,000;
  its grouping differs - distance and hours rather than same place and day - but the table has
  the same shape: mostly one-alert incidents, a few larger). Alerts with no place have none.
  Incidents last active more than 7 days ago are closed.
- one administrator (service.accounts.create); then ANALYZE.

Measured, on loopback with one requests.Session logged in through the form (the CSRF token
read from the login page): --requests sequential GETs of each URL (after 3 not counted), from
sending to having the whole body. That is server time plus loopback HTTP (well under a
millisecond here), with this script on the same cores. The dashboard keeps its figures a short
while in Redis (service/console/dashboard.py, CACHE_S): "dashboard cold" deletes them before
every request (not timed), so each one computes them: the figure the target is for; "dashboard
warm" leaves them, so all but the first are read from Redis. Sizes: the body as sent (no
Content-Encoding: gunicorn and Flask do not compress) and gzipped (level 6, what a proxy would
send). Page weight: the HTML plus every stylesheet, script and image it references (and the
url()s in those stylesheets), each fetched once; for the map page also the data its script
fetches (alerts GeoJSON and the two outline files), counted apart.

With --explain (the default) the web app is restarted with auto_explain (log_analyze) for queries
over 20 ms, each page is fetched twice more, and the slowest statements of each page are printed
with the top of their plans (these runs are slower: auto_explain's timing; not in the figures).
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import random
import re
import secrets
import shutil
import statistics
import sys
import tempfile
import time
from datetime import datetime, timedelta, timezone
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import urljoin, urlsplit

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts"))

import redis  # noqa: E402
import requests  # noqa: E402

import bench_broadcast as bb  # noqa: E402
from tests.faults import harness  # noqa: E402

TARGET_P95_S = 0.300
TARGET_INBOX_KB = 300
BATCH = 5_000
WEEKS = 12
ADMIN, PASSWORD = "bench-admin", "bench-console-password-1"
CATEGORY_WEIGHTS = {"ATTACK": 16, "ARMED_PRESENCE": 16, "CLASH": 10, "ABDUCTION": 8, "SEXUAL_VIOLENCE": 2,
                    "LOOTING": 8, "DISPLACEMENT": 10, "HATE_SPEECH": 4, "LAND_CONFLICT": 6, "EXTORTION": 8,
                    "THREAT": 7, "OTHER": 5}
STATUS_WEIGHTS = {"new": 20, "acknowledged": 20, "verified": 20, "closed": 40}
WORDS = ("des hommes armés", "au marché", "cette nuit", "les maisons", "brûlées", "près de l'école",
         "beaucoup de gens", "ont fui", "vers la route", "watu wengi", "wamekimbia", "bato ebele", "na zando")


# ============================================================================ the data

def pick_places():
    """~200 gazetteer places: the 170 most populous localities with coordinates, 25
    territories, 5 provinces (by key, so the same on every run)."""
    from bot.places import default_gazetteer

    records = list(default_gazetteer()._by_key.values())
    localities = sorted((r for r in records if r.level == "locality" and r.lat is not None and r.lon is not None
                         and r.admin1_pcode), key=lambda r: (-r.population, r.key))[:170]
    territories = sorted((r for r in records if r.level == "adm2"), key=lambda r: r.key)[:25]
    provinces = sorted((r for r in records if r.level == "adm1"), key=lambda r: r.key)[:5]
    return localities + territories + provinces


def load(stack: bb.BenchStack, n: int, seed: int = 12) -> dict:
    from sqlalchemy import insert, text
    from sqlalchemy.orm import Session

    from service import accounts, alerts
    from service.models import Alert, Reporter

    rng = random.Random(seed)
    started = time.monotonic()
    with Session(stack.engine) as db:
        places = [alerts.ensure_place(db, r) for r in pick_places()]
        db.flush()
        place_rows = [(p.id, p.level, p.admin1_pcode, p.admin2_pcode) for p in places]
        accounts.create(db, ADMIN, PASSWORD, ["administrator"], display_name="Benchmark")
        db.commit()
    now = datetime.now(timezone.utc)
    with stack.engine.begin() as conn:
        conn.execute(insert(Reporter), [{"key": secrets.token_hex(32), "language": rng.choice("fr sw ln".split()),
                                         "opted_out": False, "created_at": now - timedelta(weeks=WEEKS + 1)}
                                        for _ in range(300)])
        reporter_ids = [r[0] for r in conn.execute(text("SELECT id FROM reporters ORDER BY id"))]
    # a few places get most reports (the places where things happen), as in life
    place_weights = [1.0 / (1 + i) ** 0.7 for i in range(len(place_rows))]
    categories, cat_w = list(CATEGORY_WEIGHTS), list(CATEGORY_WEIGHTS.values())
    statuses, status_w = list(STATUS_WEIGHTS), list(STATUS_WEIGHTS.values())
    span = WEEKS * 7 * 86400
    rows = []
    inserted = 0
    for i in range(n):
        created = now - timedelta(seconds=rng.random() * span)
        place = rng.choices(place_rows, place_weights)[0] if rng.random() >= 0.03 else None
        status = rng.choices(statuses, status_w)[0]
        if created > now - timedelta(hours=12) and rng.random() < 0.7:
            status = "new"  # the newest are mostly not looked at yet
        rows.append({
            "reference": f"BX{i:08d}", "reporter_id": rng.choice(reporter_ids),
            "category": rng.choices(categories, cat_w)[0], "place_id": place[0] if place else None,
            "place_text": None if place else "kijiji kidogo", "occurred_at": created - timedelta(hours=rng.random() * 30),
            "occurred_text": "hier soir", "people_affected": rng.choice([None, 1, 2, 3, 5, 12, 40]),
            "people_many": False, "perpetrator": None,
            "description": " ".join(rng.choice(WORDS) for _ in range(rng.randint(3, 12))),
            "language": rng.choice(("fr", "sw", "ln")), "channel": "voice" if rng.random() < 0.2 else "sms",
            "status": status, "created_at": created, "updated_at": created,
            "submitted_at": created + timedelta(seconds=rng.randint(30, 600))})
        if len(rows) == BATCH or i == n - 1:
            with stack.engine.begin() as conn:
                conn.execute(insert(Alert), rows)
            inserted += len(rows)
            rows = []
    alerts_s = time.monotonic() - started
    with stack.engine.begin() as conn:
        conn.execute(text("""
            INSERT INTO alert_events (alert_id, from_status, to_status, at)
            SELECT id, 'new', 'acknowledged', submitted_at + (300 + random() * 21300) * interval '1 second'
            FROM alerts WHERE status <> 'new'"""))
        conn.execute(text("""
            INSERT INTO alert_events (alert_id, from_status, to_status, at)
            SELECT id, 'acknowledged', 'verified', submitted_at + interval '8 hours'
            FROM alerts WHERE status IN ('verified', 'closed')"""))
        conn.execute(text("""
            INSERT INTO alert_events (alert_id, from_status, to_status, at)
            SELECT id, 'verified', 'dispatched', submitted_at + interval '20 hours'
            FROM alerts WHERE status = 'closed'"""))
        conn.execute(text("""
            CREATE TEMP TABLE bench_groups AS
            SELECT row_number() OVER (ORDER BY min(coalesce(occurred_at, submitted_at))) AS id,
                   category, place_id, date_trunc('day', created_at) AS day,
                   min(coalesce(occurred_at, submitted_at)) AS first_at,
                   max(coalesce(occurred_at, submitted_at)) AS last_at,
                   count(*) AS alerts, count(DISTINCT reporter_id) AS sources, min(created_at) AS created_at
            FROM alerts WHERE place_id IS NOT NULL GROUP BY category, place_id, date_trunc('day', created_at)"""))
        conn.execute(text("""
            INSERT INTO incidents (id, category, place_id, first_at, last_at, alert_count, source_count, status,
                                   created_at, updated_at)
            SELECT id, category, place_id, first_at, last_at, alerts, sources,
                   CASE WHEN last_at < now() - interval '7 days' THEN 'closed' ELSE 'open' END, created_at, created_at
            FROM bench_groups"""))
        conn.execute(text("""
            UPDATE alerts a SET incident_id = g.id FROM bench_groups g
            WHERE a.place_id = g.place_id AND a.category = g.category AND date_trunc('day', a.created_at) = g.day"""))
        conn.execute(text("SELECT setval(pg_get_serial_sequence('incidents', 'id'), (SELECT max(id) FROM incidents))"))
    with stack.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(text("VACUUM ANALYZE"))
        counts = {t: conn.execute(text(f"SELECT count(*) FROM {t}")).scalar()
                  for t in ("alerts", "places", "reporters", "alert_events", "incidents")}
        counts["incidents_open"] = conn.execute(text("SELECT count(*) FROM incidents WHERE status = 'open'")).scalar()
        counts["incidents_2plus"] = conn.execute(text("SELECT count(*) FROM incidents WHERE alert_count > 1")).scalar()
        counts["alerts_by_status"] = dict(conn.execute(text("SELECT status, count(*) FROM alerts GROUP BY 1")).all())
        counts["database_mb"] = round(conn.execute(text("SELECT pg_database_size(current_database())")).scalar()
                                      / 1e6, 1)
        # the filters' values: the busiest province and territory of the data
        counts["province"] = conn.execute(text(
            "SELECT p.admin1_pcode FROM alerts a JOIN places p ON p.id = a.place_id GROUP BY 1 "
            "ORDER BY count(*) DESC LIMIT 1")).scalar()
        counts["territory"] = conn.execute(text(
            "SELECT p.admin2_pcode FROM alerts a JOIN places p ON p.id = a.place_id WHERE p.admin2_pcode IS NOT NULL "
            "GROUP BY 1 ORDER BY count(*) DESC LIMIT 1")).scalar()
    counts["alerts_insert_s"] = round(alerts_s, 1)
    counts["load_s"] = round(time.monotonic() - started, 1)
    return counts


# ============================================================================ the browser

def login(base: str) -> requests.Session:
    http = requests.Session()
    http.headers["Accept-Encoding"] = "identity"
    page = http.get(base + "/console/login", timeout=30)
    token = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
    if page.status_code != 200 or not token:
        raise RuntimeError(f"login page: HTTP {page.status_code}, CSRF token {'found' if token else 'missing'}")
    answer = http.post(base + "/console/login", data={"username": ADMIN, "password": PASSWORD,
                                                      "csrf_token": token.group(1)}, timeout=30)
    if answer.status_code != 200 or urlsplit(answer.url).path.endswith("/login"):
        raise RuntimeError(f"login refused: HTTP {answer.status_code} at {urlsplit(answer.url).path}")
    return http


COLD = "dashboard cold"  # the dashboard with its cache emptied before each request


def forget_dashboard(redis_url: str) -> None:
    """Delete the dashboard's cached figures (service.console.dashboard.CACHE_KEY)."""
    from service.console.dashboard import CACHE_KEY

    client = redis.Redis.from_url(redis_url, socket_timeout=5)
    try:
        keys = list(client.scan_iter(CACHE_KEY.format(restricted="*", weeks="*")))
        if keys:
            client.delete(*keys)
    finally:
        client.close()


def urls(figures: dict) -> list[tuple[str, str]]:
    """(name, path) of what is timed."""
    province, territory = figures["load"]["province"], figures["load"]["territory"]
    four_weeks = (datetime.now(timezone.utc) - timedelta(weeks=4)).date().isoformat()
    week = (datetime.now(timezone.utc) - timedelta(days=7)).date().isoformat()
    return [
        ("inbox", "/console/alerts"),
        ("inbox status=new", "/console/alerts?status=new"),
        (f"inbox ATTACK in {province}", f"/console/alerts?category=ATTACK&province={province}"),
        (f"inbox {territory}, sms, 4 weeks", f"/console/alerts?territory={territory}&channel=sms&since={four_weeks}"),
        ("inbox page 50", "/console/alerts?page=50"),
        ("map data", "/console/map/alerts.geojson"),
        (f"map data ATTACK in {province}", f"/console/map/alerts.geojson?category=ATTACK&province={province}"),
        ("map data last 7 days", f"/console/map/alerts.geojson?since={week}"),
        ("map page", "/console/map"),
        (COLD, "/console/dashboard"),
        ("dashboard warm", "/console/dashboard"),
        ("incidents", "/console/incidents"),
    ]


def time_url(http: requests.Session, base: str, path: str, n: int, warm: int = 3, before=None) -> dict:
    """`before()`, if given, runs before each request, outside the timing."""
    times, statuses, size = [], {}, 0
    body = b""
    for i in range(warm + n):
        if before is not None:
            before()
        started = time.perf_counter()
        answer = http.get(base + path, timeout=120, allow_redirects=False)
        body = answer.content
        took = time.perf_counter() - started
        if i >= warm:
            times.append(took)
            statuses[answer.status_code] = statuses.get(answer.status_code, 0) + 1
            size = len(body)
    times.sort()
    return {"path": path, "count": len(times), "statuses": statuses,
            "p50_s": round(statistics.median(times), 4), "p95_s": bb.percentile(times, 95),
            "max_s": round(max(times), 4), "bytes": size, "gzip_bytes": len(gzip.compress(body, 6)),
            "encoding": answer.headers.get("Content-Encoding", "none")}


class Refs(HTMLParser):
    """What a page makes a browser fetch: stylesheets, icons, scripts, images; the map's data-URLs."""

    def __init__(self):
        super().__init__()
        self.assets: list[str] = []
        self.data: list[str] = []

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "link" and a.get("href") and any(r in (a.get("rel") or "") for r in ("stylesheet", "icon")):
            self.assets.append(a["href"])
        elif tag in ("script", "img") and a.get("src"):
            self.assets.append(a["src"])
        for key in ("data-alerts", "data-adm1", "data-adm2"):
            if a.get(key):
                self.data.append(a[key])


def weigh(http: requests.Session, base: str, path: str) -> dict:
    """The page with everything it references, each fetched once (as a browser's first visit)."""
    page = http.get(base + path, timeout=120)
    refs = Refs()
    refs.feed(page.text)
    items = [("html", path, page.content)]
    seen = set()
    queue = [urljoin(base + path, u) for u in refs.assets]
    while queue:
        url = queue.pop(0)
        if url in seen or urlsplit(url).netloc != urlsplit(base).netloc:
            continue
        seen.add(url)
        answer = http.get(url, timeout=60)
        items.append(("asset", urlsplit(url).path, answer.content))
        if urlsplit(url).path.endswith(".css"):  # its images and fonts
            for ref in re.findall(r"url\(\s*['\"]?([^'\")]+)['\"]?\s*\)", answer.text):
                if not ref.startswith(("data:", "#")):  # not inline, not leaflet.css's old-IE behaviour
                    queue.append(urljoin(url, ref).split("#")[0])
    for url in refs.data:
        answer = http.get(urljoin(base + path, url), timeout=120)
        items.append(("data", urlsplit(url).path, answer.content))
    def total(kinds):
        chosen = [b for k, _p, b in items if k in kinds]
        return {"bytes": sum(len(b) for b in chosen), "gzip_bytes": sum(len(gzip.compress(b, 6)) for b in chosen)}
    return {"path": path, "html": total({"html"}), "with_assets": total({"html", "asset"}),
            "data": total({"data"}) if refs.data else None,
            "files": [{"kind": k, "path": p, "bytes": len(b), "gzip_bytes": len(gzip.compress(b, 6))}
                      for k, p, b in items]}


# ============================================================================ auto_explain

def explain(stack: bb.BenchStack, base: str, pages: list[tuple[str, str]], min_ms: int = 20) -> dict:
    """The web app restarted with auto_explain on its connections; each page twice; the
    statements over min_ms of each page's second fetch, slowest first, with their plans."""
    from sqlalchemy import text

    with stack.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        db = conn.execute(text("SELECT current_database()")).scalar()
        for setting in ("session_preload_libraries = 'auto_explain'", f"auto_explain.log_min_duration = {min_ms}",
                        "auto_explain.log_analyze = on", "auto_explain.log_buffers = on"):
            conn.execute(text(f'ALTER DATABASE "{db}" SET {setting}'))
    stack.web.restart()
    http = login(base)
    found = {}
    log = stack.postgres.log
    for name, path in pages:
        http.get(base + path, timeout=120)
        if name == COLD:
            forget_dashboard(stack.redis.url(0))
        offset = log.stat().st_size
        started = time.perf_counter()
        http.get(base + path, timeout=120)
        took = time.perf_counter() - started
        time.sleep(0.3)
        with log.open("rb") as f:
            f.seek(offset)
            chunk = f.read().decode(errors="replace")
        plans = []
        for m in re.finditer(r"duration: ([\d.]+) ms\s+plan:\n(.*?)(?=\n\S|\Z)", chunk, re.S):
            body = m.group(2)
            query = re.search(r"Query Text: (.*?)(?:\n\s*(?:[A-Z][a-zA-Z ]+\(|->)|\Z)", body, re.S)
            plans.append({"ms": float(m.group(1)),
                          "query": " ".join((query.group(1) if query else body[:300]).split())[:400],
                          "plan": "\n".join(line for line in body.splitlines() if "Query Text" not in line)[:6000]})
        plans.sort(key=lambda p: -p["ms"])
        found[name] = {"with_auto_explain_s": round(took, 3), "statements_over_min": plans[:6]}
    with stack.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(text(f'ALTER DATABASE "{db}" RESET ALL'))
    return found


# ============================================================================ report

def verdict(ok: bool) -> str:
    return "met" if ok else "MISSED"


def print_report(figures: dict) -> None:
    a, ld = figures["args"], figures["load"]
    print("\n== bench_console ==")
    print(f"machine: {figures['cores']} cores; {a['web_workers']} gunicorn workers; uptime before: "
          f"`{figures['uptime_before']}`")
    print(f"data: {ld['alerts']} alerts ({ld['alerts_by_status']}), {ld['places']} places, {ld['reporters']} "
          f"reporters, {ld['alert_events']} alert events, {ld['incidents']} incidents ({ld['incidents_open']} open, "
          f"{ld['incidents_2plus']} with 2+ alerts); database {ld['database_mb']} MB; loaded in {ld['load_s']} s "
          f"(alerts {ld['alerts_insert_s']} s)")
    print(f"\n[server time] {a['requests']} sequential requests each, after 3 not counted; client-side on loopback "
          f"(includes loopback HTTP); target p95 < {TARGET_P95_S * 1000:.0f} ms; {COLD}: its Redis cache emptied "
          f"before each request (not timed), warm: cached figures after the first")
    rows = [("page", "p50 ms", "p95 ms", "max ms", "body KB", "gzip KB", "HTTP", "p95 target")]
    for name, t in figures["timings"].items():
        rows.append((name, f"{t['p50_s'] * 1000:.0f}", f"{t['p95_s'] * 1000:.0f}", f"{t['max_s'] * 1000:.0f}",
                     f"{t['bytes'] / 1000:.1f}", f"{t['gzip_bytes'] / 1000:.1f}",
                     ",".join(f"{k}x{v}" for k, v in t["statuses"].items()),
                     verdict(t["p95_s"] < TARGET_P95_S and set(t["statuses"]) == {200})))
    _table(rows)
    print(f"\n[page weight] HTML + its CSS/JS/images, first visit (nothing cached); target inbox < "
          f"{TARGET_INBOX_KB} KB")
    rows = [("page", "HTML KB", "with assets KB", "gzip KB", "data KB (gzip)", "files", "target")]
    for name, w in figures["weights"].items():
        data = w["data"]
        rows.append((name, f"{w['html']['bytes'] / 1000:.1f}", f"{w['with_assets']['bytes'] / 1000:.1f}",
                     f"{w['with_assets']['gzip_bytes'] / 1000:.1f}",
                     f"{data['bytes'] / 1000:.1f} ({data['gzip_bytes'] / 1000:.1f})" if data else "-",
                     str(len(w["files"])),
                     verdict(w["with_assets"]["bytes"] < TARGET_INBOX_KB * 1000) if name == "inbox" else "-"))
    _table(rows)
    for name, w in figures["weights"].items():
        print(f"  {name}: " + ", ".join(f"{f['path'].rsplit('/', 1)[-1] or f['path']} {f['bytes'] / 1000:.1f}"
                                         for f in w["files"]))
    if figures.get("explain"):
        print("\n[auto_explain] statements over 20 ms (log_analyze on, so slower than above), per page:")
        for name, e in figures["explain"].items():
            statements = e["statements_over_min"]
            print(f"  {name}: page {e['with_auto_explain_s'] * 1000:.0f} ms; "
                  + ("; ".join(f"{s['ms']:.0f} ms: {s['query'][:110]}" for s in statements[:3]) or "none over 20 ms"))
    print(f"\nuptime after: `{figures['uptime_after']}`")


def _table(rows) -> None:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for j, row in enumerate(rows):
        print("  " + "  ".join(c.ljust(widths[i]) for i, c in enumerate(row)))
        if j == 0:
            print("  " + "  ".join("-" * w for w in widths))


# ============================================================================ main

def arguments(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--alerts", type=int, default=100_000)
    p.add_argument("--requests", type=int, default=50, help="timed requests per URL")
    p.add_argument("--web-workers", type=int, default=2)
    p.add_argument("--no-explain", dest="explain", action="store_false", help="skip the auto_explain pass")
    p.add_argument("--json", type=Path)
    p.add_argument("--keep", action="store_true", help="keep the work folder (logs) afterwards")
    args = p.parse_args(argv)
    if args.alerts < 1 or args.requests < 1:
        p.error("--alerts and --requests positive")
    args.rasa, args.senders, args.worker_queues, args.workers = False, 1, "all", 0  # bench_broadcast's stack
    return args


def uptime() -> str:
    import subprocess

    try:
        return subprocess.run(["uptime"], capture_output=True, text=True, timeout=5).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "load average: " + ", ".join(f"{x:.2f}" for x in os.getloadavg())


def main(argv=None) -> int:
    args = arguments(argv)
    reason = harness.postgres_missing()
    if reason:
        print(f"needs a private PostgreSQL cluster: {reason}", file=sys.stderr)
        return 2
    workdir = Path(tempfile.mkdtemp(prefix="alerte-bench-console-"))
    stack = bb.BenchStack(workdir, args)
    figures: dict = {"args": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()
                              if k not in ("rasa", "senders", "worker_queues", "workers")},
                     "cores": os.cpu_count()}
    try:
        print("starting the stack (no Rasa, no workers)...", flush=True)
        stack.start()
        print(f"loading {args.alerts} alerts...", flush=True)
        figures["load"] = load(stack, args.alerts)
        print(f"  loaded in {figures['load']['load_s']} s", flush=True)
        base = stack.web_url
        http = login(base)
        figures["uptime_before"] = uptime()
        figures["timings"] = {}
        for name, path in urls(figures):
            before = (lambda: forget_dashboard(stack.redis.url(0))) if name == COLD else None
            figures["timings"][name] = t = time_url(http, base, path, args.requests, before=before)
            print(f"  {name}: p50 {t['p50_s'] * 1000:.0f} / p95 {t['p95_s'] * 1000:.0f} ms, {t['bytes']} B "
                  f"{t['statuses']}", flush=True)
        figures["uptime_after"] = uptime()
        figures["weights"] = {name: weigh(http, base, path) for name, path in
                              (("inbox", "/console/alerts"), ("map page", "/console/map"),
                               ("dashboard", "/console/dashboard"), ("incidents", "/console/incidents"))}
        if args.explain:
            print("auto_explain pass...", flush=True)
            figures["explain"] = explain(stack, base, urls(figures))
        print_report(figures)
        if args.json:
            args.json.write_text(json.dumps(figures, indent=2, default=str))
        return 0
    except BaseException:
        print(f"failed; logs in {workdir}/logs", file=sys.stderr)
        args.keep = True
        raise
    finally:
        stack.stop()
        if args.keep:
            print(f"work folder kept: {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
