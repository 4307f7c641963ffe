"""Benchmark (not a test): one safety broadcast to many subscribers, through the real processes.

    .venv/bin/python scripts/bench_broadcast.py [--subscribers 100000] [--workers 3] [--senders N]
        [--web-workers 2] [--phases twilio,africastalking,twilio-nice,rate] [--nice 10] [--rate 200]
        [--rate-subscribers 6000]
        [--rate-kinds twilio,africastalking] [--latency-messages 80] [--no-rasa] [--json out.json] [--keep]

A smaller run while developing: --subscribers 5000 --rate-subscribers 2000 (add --no-rasa to
skip Rasa, the action server and the conversation figures).

It starts a throwaway stack of its own from the fault tests' pieces (tests/faults/harness.py):
a private redis-server, a private PostgreSQL cluster (initdb, fsync off), the trained Rasa
model and the action server (unless --no-rasa), the web app under gunicorn (--web-workers),
--workers RQ workers (`python -m service.cli worker --queues all`), and in a child process
of this script the tests' Twilio and Africa's Talking stand-ins (tests/twilio_standin.py,
tests/africastalking_standin.py; HTTP keep-alive on, each send recorded with its arrival
time). It never uses the machine's shared Redis or PostgreSQL.

Subscribers are loaded the way an operator loads them: one CSV (phone, language, place,
groups, channel) through `alerte subscribers import` against the stack's database (files of
at most 100,000 rows, the import's limit). Their numbers are fake, +243991000000 upwards (a
test range), and never printed; the CSV is deleted afterwards (unless --keep). Three
languages in turn, five places in three provinces, every text one GSM-7 segment.

Broadcasts leave by a channel named "bulk" (the subscribers' channel in the CSV); each
phase restarts the web app and the workers with "bulk" configured as another kind of
gateway (a benchmark device: the deliveries' rows and subscribers stay the same). Replies
to reporters leave by the Twilio channel, as in a real deployment.

Phases (--phases), in this order, each a broadcast POSTed to /api/v1/broadcasts:

- twilio: "bulk" is a Twilio channel with no send_rate, everyone targeted. Measures
  * fan-out: from the POST to every delivery row written (the fan-out job done and as many
    rows as the answer's "recipients"), polled every 0.2 s (target: under 60 s per 100,000);
    also the POST's own answer time (it counts the audience), when the fan-out job began
    (the broadcast's started_at) and how long the job itself ran;
  * throughput: messages per second the stand-in received, over the steady part (the middle
    80 % of the sending, by time) and from the first send to the last; one HTTP request per
    message (Twilio's API has no bulk send) (target: 1,000 msg/s or more);
  * conversation latency during the broadcast (with Rasa): reporters text real report
    conversations (French, Swahili, Lingala) through signed Twilio webhooks while it sends;
    a message's latency is from posting its webhook to its first real reply (the TwiML
    answer, or the worker's later send as the stand-in received it), as the harness's
    Phones and bench_faults measure it; only messages posted while broadcast sends were
    arriving count. The same conversations, before any broadcast, give the idle figures
    (target: p99 during at most twice the idle p99);
  * worker memory: VmHWM (peak RSS) of each worker process from /proc/<pid>/status, read at
    the end of the phase (workers are restarted per phase, so it is this phase's peak).
- africastalking: the same with "bulk" an Africa's Talking channel: its bulk send
  (send_many, one request per text for up to 100 recipients).
- twilio-nice (or africastalking-nice): the same with the workers at a lower CPU weight
  (--nice, default 10): `nice -n` and, since each process is in its own session and the
  kernel's autogroup scheduling shares CPU between sessions first, the session's
  /proc/<pid>/autogroup too (what a cgroup CPU weight, systemd's CPUWeight= or Docker's
  --cpu-shares, does for a deployment's broadcast workers).
- rate: "bulk" with send_rate --rate (segments per second), a broadcast to the group of
  the first --rate-subscribers subscribers, once per --rate-kinds; the achieved rate is the
  stand-in's count over the steady part (from a send at 25 % of the sending time to a send
  at 90 %: the bucket starts full, one second of sending, which goes out at the channel's
  full speed first), against --rate (target: within 5 %).

Earlier phases' deliveries stay in the table (as in a deployment); statistics are refreshed
(ANALYZE) before each phase. --json is written after every phase. At 100,000 subscribers
the whole run takes about half an hour on two cores; docs/BENCHMARKS.md has a run's figures.

For every phase it also prints the CPU seconds used by each part (workers, web, PostgreSQL,
Redis, stand-ins, Rasa, this script) and by the rest of the machine (other people's load),
from /proc, so a bottleneck shows; and the load average before and after.
"""

from __future__ import annotations

import argparse
import atexit
import csv
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from urllib.parse import parse_qs, urlparse

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import requests  # noqa: E402

from tests.faults import harness  # noqa: E402

SUB_PREFIX = "+243991"  # subscribers' fake numbers: +243991000000 upwards
REPORTER_PREFIX = "+2439900"  # harness.new_number(): the reporters of the conversation probe
BULK = "bulk"
RATE_GROUP = "bench-rate"
TEXTS = {"fr": "Route Beni-Kasindi dangereuse ce soir. Restez chez vous.",
         "sw": "Barabara Beni-Kasindi ni hatari leo usiku. Bakia nyumbani.",
         "ln": "Nzela Beni-Kasindi ezali na likama lelo na butu. Bofanda na ndako."}
LANGS = ("fr", "sw", "ln")
PLACES = ("gn:219057", "gn:214718", "gn:216281", "gn:217695", "gn:217831")  # Beni, Kamango, Goma, Bunia, Bukavu
IMPORT_MAX = 100_000
AT_USERNAME, AT_KEY = "alerte", "bench-at-key"
API = {"Authorization": f"Bearer {harness.API_TOKEN}"}
TARGETS = {"fanout_s": 60.0, "throughput": 1000.0, "rate_error": 0.05, "latency_ratio": 2.0}


# ============================================================================ the stand-ins (child process)

def standin_child(portfile: Path) -> int:
    """Run the Twilio and Africa's Talking stand-ins and a control server until SIGTERM."""
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    from tests.africastalking_standin import AfricasTalkingStandin
    from tests.twilio_standin import TwilioStandin

    class Twilio(TwilioStandin):
        def __init__(self):
            self.log: list[tuple[float, str, str, str]] = []  # (arrival, to, sid, body)
            super().__init__()

        def _handler(self):
            base, standin = super()._handler(), self

            class Handler(base):
                protocol_version = "HTTP/1.1"  # keep-alive: the client's session reuses its connections
                disable_nagle_algorithm = True  # headers and body are two writes: no 40 ms delayed-ACK stall

                def do_POST(self):
                    self._arrived = time.time()
                    super().do_POST()

                def _json(self, status, body):
                    if self.command == "POST" and status == 201:
                        standin.log.append((self._arrived, body["to"], body["sid"], body["body"]))
                    super()._json(status, body)
            return Handler

    class AfricasTalking(AfricasTalkingStandin):
        def _handler(self):
            class Handler(super()._handler()):
                protocol_version = "HTTP/1.1"
                disable_nagle_algorithm = True
            return Handler

    twilio = Twilio()
    twilio.start()
    at = AfricasTalking(AT_USERNAME, AT_KEY)
    at.server.handle_error = lambda request, address: None
    at.start()

    def sends(which: str, prefix: str):
        if which == "twilio":
            with twilio.lock:
                return [(t, to, sid, body) for t, to, sid, body in twilio.log if to.startswith(prefix)]
        with at.lock:
            return [(m.at.timestamp(), m.to, m.message_id, m.message) for m in at.sent if m.to.startswith(prefix)]

    class Control(BaseHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def do_GET(self):
            url = urlparse(self.path)
            query = {k: v[0] for k, v in parse_qs(url.query).items()}
            prefix, which = query.get("prefix", ""), query.get("which", "twilio")
            if url.path == "/count":
                body = {"twilio": sum(1 for s in sends("twilio", prefix)), "at": sum(1 for s in sends("at", prefix))}
            elif url.path == "/times":
                body = {"times": sorted(s[0] for s in sends(which, prefix))}
            elif url.path == "/replies":
                body = {"sends": [[sid, t, text] for t, _, sid, text in sends(which, prefix)]}
            else:
                self.send_response(404)
                self.end_headers()
                return
            self._send(body)

        def do_POST(self):
            with twilio.lock:
                twilio.sent.clear()
                twilio.log.clear()
            with at.lock:
                at.sent.clear()
                at.requests.clear()
            self._send({"reset": True})

        def _send(self, body):
            data = json.dumps(body).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

    control = ThreadingHTTPServer(("127.0.0.1", 0), Control)
    threading.Thread(target=control.serve_forever, daemon=True).start()
    done = threading.Event()
    signal.signal(signal.SIGTERM, lambda *a: done.set())
    tmp = portfile.with_suffix(".tmp")
    tmp.write_text(json.dumps({"twilio": twilio.url, "at": at.url,
                               "control": f"http://127.0.0.1:{control.server_address[1]}"}))
    tmp.rename(portfile)
    done.wait()
    return 0


class Standins:
    """The child process of stand-ins, and its control calls."""

    def __init__(self, workdir: Path, env: dict):
        self.portfile = workdir / "standins.json"
        self.proc = harness.Proc("standins", lambda: harness.spawn(
            [harness.Stack.python(), str(Path(__file__).resolve()), "--standin-child", str(self.portfile)],
            workdir / "logs" / "standins.log", env), log=workdir / "logs" / "standins.log")
        self.urls: dict = {}
        self.http = requests.Session()

    def start(self) -> "Standins":
        self.proc.start(wait=False)
        if not harness.wait_until(self.portfile.exists, 30, 0.1):
            raise RuntimeError(f"the stand-ins did not start:\n{harness.tail(self.proc.log)}")
        self.urls = json.loads(self.portfile.read_text())
        return self

    def stop(self) -> None:
        self.proc.stop()

    def _get(self, path: str, **params):
        return self.http.get(self.urls["control"] + path, params=params, timeout=60).json()

    def reset(self) -> None:
        self.http.post(self.urls["control"] + "/reset", timeout=30)

    def count(self, prefix: str = SUB_PREFIX) -> dict:
        return self._get("/count", prefix=prefix)

    def times(self, which: str, prefix: str = SUB_PREFIX) -> list[float]:
        return self._get("/times", which=which, prefix=prefix)["times"]

    def replies(self, prefix: str = REPORTER_PREFIX) -> dict[str, float]:
        return {sid: t for sid, t, _ in self._get("/replies", which="twilio", prefix=prefix)["sends"]}


# ============================================================================ the stack


def channels_json(standins: Standins, kind: str, rate: float | None) -> str:
    """Twilio for replies (the default channel, the webhook route the Phones use), and
    "bulk", the subscribers' channel, as `kind` with `rate` segments per second."""
    twilio = {"account_sid": harness.ACCOUNT_SID, "auth_token": harness.AUTH_TOKEN, "from": harness.SERVICE_NUMBER,
              "api_base": standins.urls["twilio"]}
    bulk = {"name": BULK, "kind": kind}
    if kind == "twilio":
        bulk.update(twilio)
    else:
        bulk.update({"username": AT_USERNAME, "api_key": AT_KEY, "short_code": "12345", "callback_user": "at",
                     "callback_password": "bench-at-callback-password", "api_base": standins.urls["at"],
                     "timeout": 30})
    if rate:
        bulk["send_rate"] = rate
    return json.dumps([{"name": "twilio", "kind": "twilio", "default": True, **twilio}, bulk])


class BenchStack:
    """Redis, PostgreSQL, stand-ins, Rasa and actions (optional), gunicorn, N workers."""

    def __init__(self, workdir: Path, args):
        from service import stack

        self.workdir, self.args = workdir, args
        self.logs = workdir / "logs"
        self.logs.mkdir(parents=True, exist_ok=True)
        (workdir / "spool").mkdir(exist_ok=True)
        self.redis = self.postgres = self.standins = self.rasa = self.actions = self.web = None
        self.workers: list[harness.Proc] = []
        self.rasa_port, self.actions_port, self.web_port = stack.free_port(), stack.free_port(), stack.free_port()
        self.database_url = ""
        self.channels = ""
        self.nice = 0  # the workers' nice level
        self.engine = None
        self.phones = None

    @property
    def web_url(self) -> str:
        return f"http://127.0.0.1:{self.web_port}"

    def env(self) -> dict:
        from service import stack

        return stack.child_env(
            ALERTE_ENV="test", DATABASE_URL=self.database_url, REDIS_URL=self.redis.url(0),
            RASA_URL=f"http://127.0.0.1:{self.rasa_port}", ACTIONS_URL=f"http://127.0.0.1:{self.actions_port}",
            PUBLIC_BASE_URL=harness.PUBLIC_BASE_URL, SECRET_KEY=harness.SECRET_KEY, API_TOKEN=harness.API_TOKEN,
            SPOOL_DIR=str(self.workdir / "spool"), CHANNELS=self.channels or None, LOG_LEVEL="INFO",
            BROADCAST_SENDERS=str(self.args.senders))

    def start(self) -> "BenchStack":
        from service import stack
        from service.db import make_engine, upgrade

        atexit.register(self.stop)
        self.redis = harness.RedisServer(self.workdir)
        self.redis.start()
        self.postgres = harness.PostgresCluster().init()
        self.database_url = self.postgres.url
        upgrade(self.database_url)
        self.engine = make_engine(self.database_url)
        self.standins = Standins(self.workdir, stack.child_env()).start()
        self.channels = channels_json(self.standins, "twilio", None)
        if self.args.rasa:
            from bot import rasa_project

            model = rasa_project.train()
            endpoints = stack.write_endpoints(self.workdir / "endpoints.yml",
                                              f"http://127.0.0.1:{self.actions_port}/webhook", self.redis.url(1))
            rasa_url = f"http://127.0.0.1:{self.rasa_port}"
            self.rasa = harness.Proc(
                "rasa", lambda: stack.start_rasa(model, endpoints, self.rasa_port, self.logs / "rasa.log", self.env()),
                lambda p: stack.wait_http(rasa_url + "/status", 300, p.popen, ok=stack.rasa_ready),
                self.logs / "rasa.log")
            self.rasa.start(wait=False)
            self.actions = harness.Proc(
                "actions", lambda: stack.start_actions(self.actions_port, self.logs / "actions.log", self.env()),
                lambda p: stack.wait_http(f"http://127.0.0.1:{self.actions_port}/health", 120, p.popen),
                self.logs / "actions.log")
            self.actions.start(wait=False)
        self.web = harness.Proc("web", lambda: harness.spawn(
            [harness.Stack.python(), "-m", "gunicorn", "-w", str(self.args.web_workers), "-b",
             f"127.0.0.1:{self.web_port}", "--timeout", "120", "--graceful-timeout", "5",
             "--control-socket", str(self.workdir / "gunicorn.ctl"), "service.app:create_app()"]
            if _gunicorn_has_control_socket() else
            [harness.Stack.python(), "-m", "gunicorn", "-w", str(self.args.web_workers), "-b",
             f"127.0.0.1:{self.web_port}", "--timeout", "120", "--graceful-timeout", "5", "service.app:create_app()"],
            self.logs / "web.log", self.env()),
            lambda p: stack.wait_http(self.web_url + "/healthz", 60, p.popen,
                                      ok=lambda r: r.status_code < 500 or r.status_code == 503), self.logs / "web.log")
        self.web.start(wait=False)
        for proc in (self.actions, self.rasa, self.web):
            if proc is not None:
                proc.wait_ready()
        self.phones = harness.Phones(self.web_url)
        self.warm_up()
        harness.Observer(self.database_url).truncate()
        self.start_workers()
        return self

    def _worker(self, i: int) -> harness.Proc:
        log = self.logs / f"worker{i}.log"
        nice = ["nice", "-n", str(self.nice)] if self.nice else []
        proc = harness.Proc(f"worker{i}", lambda: harness.spawn(
            [*nice, harness.Stack.python(), "-m", "service.cli", "worker", "--queues", self.args.worker_queues],
            log, self.env()), self._worker_ready, log)
        return proc

    def _worker_ready(self, proc: harness.Proc) -> None:
        import redis
        from rq import Worker

        def registered():
            if not proc.alive():
                raise RuntimeError(f"{proc.name} exited with {proc.popen.returncode}")
            connection = redis.Redis.from_url(self.redis.url(0), socket_timeout=2)
            try:
                return any(w.pid == proc.pid for w in Worker.all(connection=connection))
            finally:
                connection.close()
        if not harness.wait_until(registered, 60, 0.3):
            raise RuntimeError(f"{proc.name} did not register with RQ:\n{harness.tail(proc.log)}")

    def start_workers(self) -> None:
        self.workers = [self._worker(i) for i in range(self.args.workers)]
        for proc in self.workers:
            proc.start(wait=False)
            if self.nice:  # each process has its own session, so its own autogroup: nice that too
                set_autogroup_nice(proc.pid, self.nice)
        for proc in self.workers:
            proc.wait_ready()

    def stop_workers(self) -> None:
        for proc in self.workers:
            proc.stop()
        self.workers = []

    def warm_up(self) -> None:
        """Every gunicorn worker has loaded what it loads on first use (a conversation
        turn with Rasa when there is one); what it wrote is left (a few fake reporters)."""
        if self.args.rasa:
            people = {harness.new_number(): ["mbote", "STOP"] for _ in range(2 * self.args.web_workers)}
            harness.join(self.phones.in_lanes(people, lanes=self.args.web_workers), 120)
            self.phones.reset()
        for _ in range(4 * self.args.web_workers):
            requests.get(self.web_url + "/api/v1/broadcasts", headers=API, timeout=30)

    def configure(self, kind: str, rate: float | None, nice: int = 0) -> None:
        """"bulk" as this kind and rate, workers at this nice level: web and workers
        restarted with it."""
        self.channels = channels_json(self.standins, kind, rate)
        self.nice = nice
        self.stop_workers()
        self.web.restart()
        self.warm_up()
        self.start_workers()

    def roots(self) -> dict[str, list[int]]:
        """The processes of each part (their children are counted with them)."""
        parts = {"workers": [p.pid for p in self.workers if p.alive()],
                 "web": [self.web.pid] if self.web and self.web.alive() else [],
                 "postgres": [_postmaster_pid(self.postgres)] if self.postgres else [],
                 "redis": [self.redis.pid] if self.redis and self.redis.alive() else [],
                 "stand-ins": [self.standins.proc.pid] if self.standins else [],
                 "rasa+actions": [p.pid for p in (self.rasa, self.actions) if p is not None and p.alive()],
                 SELF: [os.getpid()]}
        return {k: [p for p in v if p] for k, v in parts.items()}

    def stop(self) -> None:
        steps = [p.stop for p in self.workers] + [getattr(p, "stop", None) for p in
                                                  (self.web, self.rasa, self.actions, self.standins, self.redis)]
        steps += [getattr(self.engine, "dispose", None), getattr(self.postgres, "destroy", None)]
        self.workers, self.web = [], None
        self.rasa = self.actions = self.standins = self.redis = self.postgres = self.engine = None
        for step in steps:
            if step is not None:
                try:
                    step()
                except Exception:  # noqa: BLE001 - best effort: stop the rest too
                    pass


def set_autogroup_nice(pid: int, nice: int) -> None:
    """With the kernel's autogroup scheduling (sched_autogroup_enabled), CPU is shared
    between sessions first and a process's nice only counts inside its session; the
    session's own weight is /proc/<pid>/autogroup."""
    try:
        Path(f"/proc/{pid}/autogroup").write_text(str(nice))
    except OSError:
        pass


def _gunicorn_has_control_socket() -> bool:
    try:
        from gunicorn import config

        return any(s.name == "control_socket" for s in config.KNOWN_SETTINGS)
    except ImportError:
        return False


def _postmaster_pid(cluster) -> int | None:
    try:
        return int((cluster.data / "postmaster.pid").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None


# ============================================================================ /proc: CPU and memory

TICK = os.sysconf("SC_CLK_TCK")
SELF = "this script"


def _stat(pid: int) -> tuple[int, float, float] | None:
    """(ppid, own CPU s, reaped children's CPU s) of a process."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = raw[raw.rindex(")") + 2:].split()
    return int(fields[1]), (int(fields[11]) + int(fields[12])) / TICK, (int(fields[13]) + int(fields[14])) / TICK


def cpu_snapshot(roots: dict[str, list[int]]) -> dict[str, float]:
    """CPU seconds so far of each part (a root, its live descendants, what they reaped),
    and of the whole machine ("machine", from /proc/stat)."""
    stats = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            s = _stat(int(entry))
            if s:
                stats[int(entry)] = s
    children: dict[int, list[int]] = {}
    for pid, (ppid, _, _) in stats.items():
        children.setdefault(ppid, []).append(pid)
    out = {}
    for part, pids in roots.items():
        if part == SELF:  # every other part is this script's child: its own time only
            out[part] = sum(stats[pid][1] for pid in pids if pid in stats)
            continue
        total, todo, seen = 0.0, list(pids), set()
        while todo:
            pid = todo.pop()
            if pid in seen or pid not in stats:
                continue
            seen.add(pid)
            total += stats[pid][1] + stats[pid][2]
            todo += children.get(pid, [])
        out[part] = total
    fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    out["machine"] = (sum(fields[:8]) - fields[3] - fields[4]) / TICK  # busy: all but idle and iowait
    return out


def cpu_used(before: dict, after: dict) -> dict[str, float]:
    used = {k: round(after.get(k, 0) - before.get(k, 0), 1) for k in after}
    ours = sum(v for k, v in used.items() if k != "machine")
    used["rest of the machine"] = round(max(0.0, used.pop("machine") - ours), 1)
    return used


def memory(pid: int) -> dict[str, float]:
    """VmHWM (peak RSS) and VmRSS of a process, MB."""
    out = {}
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(("VmHWM:", "VmRSS:")):
                key, value = line.split(":", 1)
                out[key] = round(int(value.split()[0]) / 1024, 1)
    except OSError:
        pass
    return out


class MemorySampler(threading.Thread):
    """RSS of each worker every 0.5 s; VmHWM read at the end."""

    def __init__(self, procs: list[harness.Proc]):
        super().__init__(daemon=True)
        self.procs = procs
        self.start_rss = {p.name: memory(p.pid).get("VmRSS") for p in procs}
        self.max_rss: dict[str, float] = {}
        self.stopping = threading.Event()

    def run(self) -> None:
        while not self.stopping.wait(0.5):
            for p in self.procs:
                rss = memory(p.pid).get("VmRSS")
                if rss:
                    self.max_rss[p.name] = max(self.max_rss.get(p.name, 0), rss)

    def finish(self) -> dict:
        self.stopping.set()
        self.join(5)
        out = {}
        for p in self.procs:
            now = memory(p.pid)
            out[p.name] = {"rss_start_mb": self.start_rss.get(p.name), "rss_end_mb": now.get("VmRSS"),
                           "peak_mb": now.get("VmHWM")}
        return out


# ============================================================================ the conversation probe


class Probe:
    """Reporters texting report conversations through `lanes` webhooks at once, until
    `limit` messages or told to stop."""

    def __init__(self, web_url: str, lanes: int, gap: float, limit: int):
        self.phones = harness.Phones(web_url)
        self.lanes, self.gap, self.limit = lanes, gap, limit
        self.stopping = threading.Event()
        self.count = 0
        self.lock = threading.Lock()
        self.threads: list[threading.Thread] = []

    def _lane(self, i: int) -> None:
        conversation = i
        while not self.stopping.is_set():
            number = harness.new_number()
            for text in harness.TEXTS[LANGS[conversation % len(LANGS)]]:
                with self.lock:
                    if self.stopping.is_set() or self.count >= self.limit:
                        return
                    self.count += 1
                self.phones.post(number, text)
                if self.gap:
                    time.sleep(self.gap)
            conversation += self.lanes

    def start(self) -> "Probe":
        self.threads = [threading.Thread(target=self._lane, args=(i,), daemon=True) for i in range(self.lanes)]
        for thread in self.threads:
            thread.start()
        return self

    def done(self) -> bool:
        return not any(t.is_alive() for t in self.threads)

    def stop(self) -> list:
        self.stopping.set()
        harness.join(self.threads, 120)
        return list(self.phones.deliveries)


def latencies(stack: BenchStack, deliveries: list, window: tuple[float, float] | None = None) -> dict:
    """Webhook -> first real reply (inline TwiML, else the worker's send as the stand-in
    got it), for the deliveries posted within `window` (epoch s)."""
    from sqlalchemy import bindparam, text

    received = harness.received_texts()
    chosen = [d for d in deliveries if window is None or window[0] <= d.sent_at <= window[1]]
    sids = [d.sid for d in chosen]
    inbound, replies = {}, {}
    if sids:
        with stack.engine.connect() as conn:
            inbound = dict(conn.execute(text("SELECT provider_id, id FROM messages WHERE direction = 'in' AND "
                                             "provider_id IN :sids").bindparams(bindparam("sids", expanding=True)),
                                        {"sids": sids}).all())
            if inbound:
                for reply_to, provider_id, body in conn.execute(text(
                        "SELECT reply_to_id, provider_id, body FROM messages WHERE direction = 'out' AND "
                        "broadcast_id IS NULL AND reply_to_id IN :ids").bindparams(
                        bindparam("ids", expanding=True)), {"ids": list(inbound.values())}):
                    if body not in received and provider_id:
                        replies.setdefault(reply_to, []).append(provider_id)
    sent_at = stack.standins.replies() if replies else {}
    values, deferred, unanswered, errors = [], 0, 0, 0
    for d in chosen:
        if d.status != 200 or d.error:
            errors += 1
        times = []
        if d.status == 200 and any(t not in received for t in d.texts):
            times.append(d.answered_at)
        later = [sent_at[p] for p in replies.get(inbound.get(d.sid), []) if p in sent_at]
        if later and not times:
            deferred += 1
        times += later
        if times:
            values.append(min(times) - d.sent_at)
        else:
            unanswered += 1
    return {"messages": len(chosen), "p50_s": percentile(values, 50), "p95_s": percentile(values, 95),
            "p99_s": percentile(values, 99), "max_s": round(max(values), 3) if values else None,
            "deferred": deferred, "unanswered": unanswered, "errors": errors}


def percentile(values: list[float], p: float) -> float | None:
    """Nearest rank, as scripts/bench_faults.py."""
    if not values:
        return None
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, int(round(p / 100 * (len(ordered) - 1))))], 3)


# ============================================================================ subscribers


def write_csv(path: Path, first: int, count: int, rate_group: int) -> None:
    with path.open("w", newline="", encoding="utf-8") as f:
        out = csv.writer(f)
        out.writerow(["phone", "language", "place", "groups", "channel"])
        for i in range(first, first + count):
            out.writerow([f"{SUB_PREFIX}{i:06d}", LANGS[i % 3], PLACES[i % len(PLACES)],
                          RATE_GROUP if i < rate_group else "", BULK])


def load_subscribers(stack: BenchStack, n: int, rate_group: int) -> dict:
    """The CSV through `alerte subscribers import` (files of at most 100,000 rows)."""
    started = time.monotonic()
    created = rejected = 0
    for first in range(0, n, IMPORT_MAX):
        path = stack.workdir / f"subscribers-{first}.csv"
        write_csv(path, first, min(IMPORT_MAX, n - first), rate_group)
        result = subprocess.run([harness.Stack.python(), "-m", "service.cli", "subscribers", "import", str(path),
                                 "--consent-note", "benchmark: fake numbers in a test range", "--source", "bench"],
                                cwd=ROOT, env=stack.env(), capture_output=True, text=True, timeout=3600)
        if not stack.args.keep:
            path.unlink()
        if result.returncode != 0:  # the import's messages name lines and reasons, never numbers
            raise RuntimeError(f"import failed ({result.returncode}): {result.stderr[-1500:]}")
        lines = dict(line.split(": ", 1) for line in result.stdout.splitlines() if ": " in line)
        created += int(lines.get("created", 0))
        rejected += int(lines.get("rejected", 0))
        if int(lines.get("rejected", 0)):
            print("  import rejected rows:", [l for l in result.stdout.splitlines() if l.startswith("line ")][:5])
    took = time.monotonic() - started
    with stack.engine.begin() as conn:
        from sqlalchemy import text

        conn.execute(text("ANALYZE"))
    return {"subscribers": n, "created": created, "rejected": rejected, "import_s": round(took, 1),
            "import_rows_per_s": round(n / took, 1) if took else None}


# ============================================================================ one broadcast


def db_scalar(stack: BenchStack, sql: str, **params):
    from sqlalchemy import text

    with stack.engine.connect() as conn:
        return conn.execute(text(sql), params).first()


def analyze(stack: BenchStack) -> None:
    """Fresh planner statistics before each phase (the earlier phases' deliveries stay, as
    they would in a deployment; deleting 100,000 of them takes minutes: every deleted row's
    messages.reply_to_id and broadcast_replies.message_id references are looked up without
    an index)."""
    from sqlalchemy import text

    with stack.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(text("ANALYZE messages"))


def broadcast(stack: BenchStack, name: str, which: str, targets: dict, probe: Probe | None = None,
              timeout: float = 3600, steady_from: float = 0.1) -> dict:
    """POST one broadcast and follow it to the end; the figures of that phase."""
    stack.standins.reset()
    analyze(stack)
    load_before = os.getloadavg()
    cpu_before = cpu_snapshot(stack.roots())
    sampler = MemorySampler(stack.workers)
    sampler.start()
    body = {"texts": TEXTS, "targets": targets, "priority": stack.args.priority, "status": "Exercise"}
    t_post = time.time()
    response = requests.post(stack.web_url + "/api/v1/broadcasts", json=body, headers=API, timeout=600)
    t_answer = time.time()
    if response.status_code != 201:
        raise RuntimeError(f"POST /api/v1/broadcasts answered {response.status_code}: {response.text[:300]}")
    created = response.json()
    bid, expected = created["id"], created["recipients"]
    if probe is not None:
        probe.start()
    fanout_s, last_progress, last_seen, shown = None, time.monotonic(), (-1, -1), 0.0
    state = "scheduled"
    while True:
        written, done, state = db_scalar(
            stack, "SELECT (SELECT count(*) FROM messages WHERE broadcast_id = :b), fanout_done, state "
                   "FROM broadcasts WHERE id = :b", b=bid)
        now = time.time()
        if fanout_s is None and done and written >= expected:
            fanout_s = now - t_post
        sent = stack.standins.count()["twilio" if which == "twilio" else "at"]
        if (written, sent) != last_seen:
            last_seen, last_progress = (written, sent), time.monotonic()
        if now - shown > 5:
            print(f"  [{name}] {now - t_post:6.1f} s: {written}/{expected} deliveries written, {sent} sent, "
                  f"state {state}", flush=True)
            shown = now
        if state not in ("scheduled", "sending"):
            break
        if time.monotonic() - last_progress > 120 or now - t_post > timeout:
            print(f"  [{name}] no progress for 120 s (or past {timeout:.0f} s): stopped following", flush=True)
            break
        time.sleep(0.2 if fanout_s is None else 0.5)
    t_end = time.time()
    deliveries = probe.stop() if probe is not None else []
    workers = sampler.finish()
    cpu = cpu_used(cpu_before, cpu_snapshot(stack.roots()))
    times = stack.standins.times(which)
    statuses = {}
    from sqlalchemy import text

    with stack.engine.connect() as conn:
        statuses = dict(conn.execute(text("SELECT status, count(*) FROM messages WHERE broadcast_id = :b "
                                          "GROUP BY status"), {"b": bid}).all())
        started = conn.execute(text("SELECT started_at FROM broadcasts WHERE id = :b"), {"b": bid}).scalar()
    started = started.timestamp() if started is not None else None  # the fan-out job began (its clock: ours)
    out = {"phase": name, "channel": which, "workers": stack.args.workers, "senders": stack.args.senders,
           "nice": stack.nice,
           "recipients": expected, "state": state, "post_answer_s": round(t_answer - t_post, 2),
           "fanout_s": round(fanout_s, 2) if fanout_s is not None else None,
           "fanout_job_start_s": round(started - t_post, 2) if started else None,
           "fanout_job_s": round(t_post + fanout_s - started, 2) if started and fanout_s is not None else None,
           "deliveries": statuses, "sends": len(times), "elapsed_s": round(t_end - t_post, 1),
           "load_before": [round(x, 2) for x in load_before], "load_after": [round(x, 2) for x in os.getloadavg()],
           "cpu_s": cpu, "worker_memory": workers}
    out.update(rates(times, t_post, steady_from))
    if probe is not None and times:
        out["latency"] = latencies(stack, deliveries, (times[0], times[-1]))
        out["latency"]["probe_messages"] = len(deliveries)
    return out


def rates(times: list[float], t_post: float, start: float = 0.1, end: float = 0.9) -> dict:
    """Messages per second: first to last send, and over the steady part: from the first
    send at or after `start` of the sending time to the first at or after `end`, counting
    the sends from the one up to (not including) the other. Both ends are chosen alike, so
    for a bulk gateway's bursts (a request of 100 recipients at once) the window holds
    whole bursts and as many periods."""
    if len(times) < 2:
        return {"rate_all": None, "rate_steady": None}
    first, last = times[0], times[-1]
    span = last - first
    lo = next(t for t in times if t >= first + start * span)
    hi = next(t for t in times if t >= first + end * span)
    inside = sum(1 for t in times if lo <= t < hi)
    return {"first_send_s": round(first - t_post, 2), "last_send_s": round(last - t_post, 2),
            "rate_all": round((len(times) - 1) / span, 1) if span > 0 else None,
            "rate_steady": round(inside / (hi - lo), 1) if hi > lo else None,
            "steady_window_s": round(hi - lo, 1)}


# ============================================================================ report


def fmt(value, unit: str = "") -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        value = f"{value:.3f}".rstrip("0").rstrip(".") if abs(value) < 10 else f"{value:.1f}"
    return f"{value}{unit}"


def summary_rows(figures: dict) -> list[tuple[str, str, str, str, str]]:
    """(figure, conditions, value, target, verdict)."""
    rows = []
    idle = figures.get("latency_idle")
    for phase in figures["phases"]:
        cond = f"{phase['channel']}, {phase['recipients']} recipients, {phase['workers']} workers/" \
               f"{phase['senders']} senders" + (f", workers at nice {phase['nice']}" if phase["nice"] else "")
        if phase["phase"].startswith("rate"):
            rate = phase["send_rate"]
            error = None if phase["rate_steady"] is None else (phase["rate_steady"] - rate) / rate
            rows.append((f"rate accuracy ({phase['phase']})", cond + f", send_rate {rate:g}/s",
                         f"{fmt(phase['rate_steady'])}/s ({fmt(None if error is None else round(100 * error, 1) + 0.0)}%)",
                         f"within {TARGETS['rate_error']:.0%} of {rate:g}",
                         "-" if error is None else ("met" if abs(error) <= TARGETS["rate_error"] else "MISSED")))
            continue
        fanout_target = TARGETS["fanout_s"] * phase["recipients"] / 100_000
        rows.append((f"fan-out ({phase['phase']})", cond,
                     f"{fmt(phase['fanout_s'], ' s')} (job began at {fmt(phase.get('fanout_job_start_s'))} s, "
                     f"ran {fmt(phase.get('fanout_job_s'))} s)",
                     f"< {fanout_target:g} s" + ("" if phase["recipients"] == 100_000 else " (60 s per 100k)"),
                     "-" if phase["fanout_s"] is None else
                     ("met" if phase["fanout_s"] < fanout_target else "MISSED")))
        rows.append((f"throughput ({phase['phase']})", cond + ", no send_rate",
                     f"{fmt(phase['rate_steady'])} msg/s steady, {fmt(phase['rate_all'])} first-last",
                     f">= {TARGETS['throughput']:g} msg/s",
                     "-" if phase["rate_steady"] is None else
                     ("met" if phase["rate_steady"] >= TARGETS["throughput"] else "MISSED")))
        peak = max((w["peak_mb"] or 0 for w in phase["worker_memory"].values()), default=None)
        rows.append((f"worker peak RSS ({phase['phase']})", cond,
                     ", ".join(f"{fmt(w['rss_start_mb'])}->{fmt(w['peak_mb'])} MB"
                               for w in phase["worker_memory"].values()), "(reported)", f"max {fmt(peak)} MB"))
        lat = phase.get("latency")
        if lat and idle:
            ratio = lat["p99_s"] / idle["p99_s"] if lat["p99_s"] and idle["p99_s"] else None
            rows.append((f"conversation during ({phase['phase']})", cond + f", {lat['messages']} messages",
                         f"p50 {fmt(lat['p50_s'])} / p95 {fmt(lat['p95_s'])} / p99 {fmt(lat['p99_s'])} s"
                         f" ({fmt(None if ratio is None else round(ratio, 2))}x idle)",
                         f"<= {TARGETS['latency_ratio']:g}x idle p99",
                         "-" if ratio is None else ("met" if ratio <= TARGETS["latency_ratio"] else "MISSED")))
    if idle:
        rows.insert(0, ("conversation latency idle", f"{idle['messages']} messages, no broadcast",
                        f"p50 {fmt(idle['p50_s'])} / p95 {fmt(idle['p95_s'])} / p99 {fmt(idle['p99_s'])} s",
                        "(baseline)", ""))
    return rows


def print_report(figures: dict) -> None:
    print("\n== bench_broadcast ==")
    print(f"machine: {os.cpu_count()} cores; load average at start {figures['load_start']}, "
          f"at end {figures['load_end']}")
    imp = figures.get("import")
    if imp:
        print(f"import: {imp['subscribers']} subscribers through `alerte subscribers import` in "
              f"{imp['import_s']} s ({imp['import_rows_per_s']} rows/s), {imp['rejected']} rejected")
    rows = [("figure", "conditions", "value", "target", "verdict")] + summary_rows(figures)
    widths = [min(60, max(len(r[i]) for r in rows)) for i in range(5)]
    for j, row in enumerate(rows):
        print("  ".join(cell.ljust(widths[i]) for i, cell in enumerate(row)))
        if j == 0:
            print("  ".join("-" * w for w in widths))
    for phase in figures["phases"]:
        print(f"\n[{phase['phase']}] {phase['channel']}: POST answered in {phase['post_answer_s']} s, fan-out job "
              f"started at {fmt(phase.get('fanout_job_start_s'))} s and took {fmt(phase.get('fanout_job_s'))} s, "
              f"first send at {fmt(phase.get('first_send_s'))} s, last at {fmt(phase.get('last_send_s'))} s, "
              f"{phase['sends']} sends, deliveries {phase['deliveries']}, state {phase['state']}; "
              f"load {phase['load_before']} -> {phase['load_after']}")
        print("  CPU s: " + ", ".join(f"{k} {v}" for k, v in phase["cpu_s"].items())
              + f" (wall {phase['elapsed_s']} s)")
        if phase.get("latency"):
            lat = phase["latency"]
            print(f"  conversation during: {lat['messages']} of {lat['probe_messages']} messages posted while sends "
                  f"arrived; deferred to the worker {lat['deferred']}, unanswered {lat['unanswered']}, "
                  f"errors {lat['errors']}")
    idle = figures.get("latency_idle")
    if idle:
        print(f"\nconversation idle: {idle['messages']} messages, deferred {idle['deferred']}, "
              f"unanswered {idle['unanswered']}, errors {idle['errors']}, max {idle['max_s']} s")


# ============================================================================ main


def arguments(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--subscribers", type=int, default=100_000)
    p.add_argument("--workers", type=int, default=3, help="worker processes")
    p.add_argument("--senders", type=int, help="BROADCAST_SENDERS (sender chains per broadcast); default: --workers")
    p.add_argument("--worker-queues", choices=["all", "broadcasts"], default="all")
    p.add_argument("--web-workers", type=int, default=2)
    p.add_argument("--phases", default="twilio,africastalking,twilio-nice,rate",
                   help="twilio, africastalking (add -nice: workers at --nice), rate; in this order")
    p.add_argument("--nice", type=int, default=10, help="the workers' nice level in a -nice phase")
    p.add_argument("--rate", type=float, default=200.0, help="send_rate of the rate phase, segments/s")
    p.add_argument("--rate-subscribers", type=int, default=6000, help="recipients of the rate phase")
    p.add_argument("--rate-kinds", default="twilio,africastalking")
    p.add_argument("--priority", choices=["urgent", "routine"], default="routine")
    p.add_argument("--latency-messages", type=int, default=80, help="webhooks per conversation probe")
    p.add_argument("--latency-lanes", type=int, default=2)
    p.add_argument("--latency-gap", type=float, default=0.3, help="s between a lane's messages")
    p.add_argument("--no-rasa", dest="rasa", action="store_false",
                   help="no Rasa, action server or conversation figures")
    p.add_argument("--json", type=Path)
    p.add_argument("--keep", action="store_true", help="keep the work folder (logs) afterwards")
    p.add_argument("--standin-child", type=Path, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    args.senders = args.senders or args.workers
    if not 1 <= args.subscribers <= 1_000_000 or args.workers < 1 or args.senders < 1:
        p.error("--subscribers 1..1000000; --workers and --senders positive")
    args.phases = [x.strip() for x in args.phases.split(",") if x.strip()]
    unknown = set(args.phases) - {"twilio", "africastalking", "twilio-nice", "africastalking-nice", "rate"}
    if unknown:
        p.error(f"unknown phase {', '.join(sorted(unknown))}")
    args.rate_kinds = [x.strip() for x in args.rate_kinds.split(",") if x.strip()]
    args.rate_subscribers = min(args.rate_subscribers, args.subscribers)
    return args


def save(args, figures: dict) -> None:
    """The figures so far (a run that fails later keeps its earlier phases)."""
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2, default=str))


def main(argv=None) -> int:
    args = arguments(argv)
    if args.standin_child:
        return standin_child(args.standin_child)
    reason = harness.postgres_missing()
    if reason:
        print(f"needs a private PostgreSQL cluster: {reason}", file=sys.stderr)
        return 2
    workdir = Path(tempfile.mkdtemp(prefix="alerte-bench-broadcast-"))
    stack = BenchStack(workdir, args)
    figures: dict = {"args": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()
                              if k != "standin_child"},
                     "cores": os.cpu_count(), "load_start": [round(x, 2) for x in os.getloadavg()], "phases": []}
    try:
        print("starting the stack" + (" (Rasa loads its model: about a minute)" if args.rasa else "") + "...",
              flush=True)
        stack.start()
        print(f"loading {args.subscribers} subscribers through `alerte subscribers import`...", flush=True)
        figures["import"] = load_subscribers(stack, args.subscribers, args.rate_subscribers)
        print(f"  {figures['import']}", flush=True)
        probe = (lambda: Probe(stack.web_url, args.latency_lanes, args.latency_gap, args.latency_messages)) \
            if args.rasa else (lambda: None)
        for phase in args.phases:
            if phase == "rate":
                for kind in args.rate_kinds:
                    stack.configure(kind, args.rate)
                    print(f"broadcast to {args.rate_subscribers} through {kind} at send_rate {args.rate:g}/s...",
                          flush=True)
                    result = broadcast(stack, f"rate-{kind}", "twilio" if kind == "twilio" else "at",
                                       {"groups": [RATE_GROUP]}, steady_from=0.25)
                    result["send_rate"] = args.rate
                    figures["phases"].append(result)
                    save(args, figures)
                    print(f"  steady {result['rate_steady']}/s", flush=True)
                continue
            kind = phase.removesuffix("-nice")
            stack.configure(kind, None, args.nice if phase.endswith("-nice") else 0)
            if args.rasa and "latency_idle" not in figures:
                print("conversation latency, idle...", flush=True)
                idle = Probe(stack.web_url, args.latency_lanes, args.latency_gap, args.latency_messages).start()
                harness.wait_until(idle.done, 600, 0.5)
                figures["latency_idle"] = latencies(stack, idle.stop())
                print(f"  {figures['latency_idle']}", flush=True)
            print(f"broadcast to everyone through {kind}, no send_rate"
                  + (f", workers at nice {stack.nice}" if stack.nice else "") + "...", flush=True)
            result = broadcast(stack, phase, "twilio" if kind == "twilio" else "at", {"all": True}, probe())
            figures["phases"].append(result)
            save(args, figures)
            print(f"  fan-out {result['fanout_s']} s, steady {result['rate_steady']} msg/s", flush=True)
        figures["load_end"] = [round(x, 2) for x in os.getloadavg()]
        print_report(figures)
        save(args, figures)
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
