"""Fault injection: the whole service as real, throwaway processes, and what to check.

Everything here runs on loopback ports of its own (never a shared Redis or PostgreSQL):

- ``RedisServer``: a ``redis-server`` without persistence in a temporary folder;
- ``PostgresCluster``: an ``initdb`` cluster run as the ``postgres`` user (PostgreSQL
  refuses root), trust authentication, 127.0.0.1 only; stopped and started in place;
- the Rasa server, the action server (``service.stack``), the worker
  (``python -m service.cli worker``) and the web app (gunicorn), each a ``Proc`` that can
  be killed, paused (SIGSTOP), resumed and restarted on the same port;
- ``FaultStandin``: the Twilio stand-in of the tests, which also notes when each message
  arrived and can answer slowly or drop the connection after accepting a message.

``Stack`` starts them together; ``Phones`` sends signed webhooks; ``Observer`` reads the
database; ``problems`` lists every broken promise (lost, doubled, late, after STOP...).
The fault tests (tests/faults) and the benchmark (scripts/bench_faults.py) share this.
"""

from __future__ import annotations

import atexit
import glob
import itertools
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
import xml.etree.ElementTree as ET
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable

import requests
from twilio.request_validator import RequestValidator

from service import stack
from tests.twilio_standin import TwilioStandin

ROOT = Path(__file__).resolve().parents[2]
WEBHOOK = "/webhooks/twilio/sms"
AUTH_TOKEN = "faults-twilio-token"
ACCOUNT_SID = "AC" + "f" * 32
PUBLIC_BASE_URL = "https://alerte-faults.example.org"  # signatures are checked against it
SECRET_KEY = "faults-secret-key"
API_TOKEN = "faults-api-token"
SERVICE_NUMBER = "+243990000000"

# Settings of the service under test (the environment of every process).
SETTINGS = {
    "ALERTE_ENV": "test",
    "SWEEP_INTERVAL": "2",     # the sweep runs every 2 s
    "RASA_TIMEOUT": "3",       # a Rasa slower than this counts as down
    "WEBHOOK_BUDGET": "6",     # the webhook answers within this many seconds, whatever is down
    "LOCK_TIMEOUT": "15",      # a reporter lock held by a killed process expires after this
    "SEND_CLAIM_TIMEOUT": "20",  # a send left `sending` (killed worker) is recovered after this
    "MAX_ATTEMPTS": "5",
    "SENDER_RATE": "12",       # messages per minute processed for one sender (a flood of 30: > 1 min)
    "LOG_LEVEL": "INFO",
}
OUT_SENT = {"sent", "delivered", "undelivered", "read"}  # given to the provider by the worker
OUT_FINAL = OUT_SENT | {"handed", "suppressed", "failed"}
IN_FINAL = {"processed", "failed"}

TEXTS = {
    "fr": ["bonjour", "ils ont attaque notre village", "Oicha", "hier soir", "deux morts", "ADF", "oui"],
    "sw": ["habari", "Watu wenye silaha wameshambulia Kasindi leo", "jana usiku", "2", "M23", "ndiyo"],
    "ln": ["mbote", "babundisi mboka na biso", "Bunia", "lobi na butu", "3", "CODECO", "iyo"],
}
_numbers = itertools.count(int(time.time()) % 50_000)  # fresh numbers across runs too


def new_number() -> str:
    """A fake reporter number, +2439900xxxxx."""
    return f"+2439900{next(_numbers) % 100_000:05d}"


def wait_until(predicate: Callable[[], object], timeout: float, interval: float = 0.5):
    """Poll until `predicate()` is truthy; return its value, or None after `timeout`.

    Exceptions count as "not yet" (the database may be down while we poll)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            value = predicate()
        except Exception:  # noqa: BLE001 - a fault is under way
            value = None
        if value:
            return value
        if time.monotonic() >= deadline:
            return None
        time.sleep(interval)


def utc(ts: float) -> datetime:
    return datetime.fromtimestamp(ts, timezone.utc)


def aware(value: datetime | None) -> datetime | None:
    if value is None:
        return None
    return value if value.tzinfo else value.replace(tzinfo=timezone.utc)


def _die_with_parent() -> None:  # pragma: no cover - runs in the child, before exec
    """Linux: the child gets SIGTERM when the test process dies, even by SIGKILL."""
    try:
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except Exception:  # noqa: BLE001 - elsewhere: rely on Stack.stop and atexit
        pass


def spawn(cmd: list[str], log_path: Path, env: dict) -> subprocess.Popen:
    """Like service.stack._spawn (own session, log file, run from the project), and the
    child does not outlive this process."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    return subprocess.Popen(cmd, cwd=ROOT, stdout=log_path.open("ab"), stderr=subprocess.STDOUT, env=env,
                            start_new_session=True, preexec_fn=_die_with_parent)


def tail(path: Path | None, chars: int = 2500) -> str:
    try:
        return path.read_text(errors="replace")[-chars:] if path else ""
    except OSError:
        return ""


# ---------------------------------------------------------------------------- processes


class Proc:
    """A child process (its own session, so signals reach its children too)."""

    def __init__(self, name: str, spawn: Callable[[], subprocess.Popen],
                 ready: Callable[["Proc"], None] | None = None, log: Path | None = None):
        self.name, self._spawn, self._ready, self.log = name, spawn, ready, log
        self.popen: subprocess.Popen | None = None
        self.paused = False
        self.starts = 0

    @property
    def pid(self) -> int:
        return self.popen.pid

    def alive(self) -> bool:
        return self.popen is not None and self.popen.poll() is None

    def start(self, wait: bool = True) -> "Proc":
        self.popen, self.paused = self._spawn(), False
        self.starts += 1
        if wait:
            self.wait_ready()
        return self

    def wait_ready(self) -> None:
        if self._ready is not None:
            try:
                self._ready(self)
            except Exception as exc:
                raise RuntimeError(f"{self.name} did not start: {exc}\n{tail(self.log)}") from exc

    def send_signal(self, sig: int) -> None:
        if not self.alive():
            return
        try:
            os.killpg(self.popen.pid, sig)
        except ProcessLookupError:
            pass
        except PermissionError:
            self.popen.send_signal(sig)

    def kill(self, sig: int = signal.SIGKILL, timeout: float = 15) -> None:
        """Send `sig` (SIGKILL by default) and wait for the process to go."""
        if self.paused and sig != signal.SIGKILL:
            self.resume()
        self.send_signal(sig)
        self.paused = False
        if self.popen is not None:
            try:
                self.popen.wait(timeout)
            except subprocess.TimeoutExpired:
                self.send_signal(signal.SIGKILL)
                self.popen.wait(5)

    def pause(self) -> None:
        self.send_signal(signal.SIGSTOP)
        self.paused = True

    def resume(self) -> None:
        self.send_signal(signal.SIGCONT)
        self.paused = False

    def stop(self, timeout: float = 15) -> None:
        if self.alive():
            self.kill(signal.SIGTERM, timeout)

    def restart(self, wait: bool = True) -> "Proc":
        self.stop()
        return self.start(wait)

    def ensure(self) -> None:
        """Running and not paused (after a test that failed mid-fault)."""
        if self.paused:
            self.resume()
        if not self.alive():
            self.start()


def _ping_redis(url: str, timeout: float = 20) -> None:
    import redis

    def ok():
        client = redis.Redis.from_url(url, socket_timeout=1, socket_connect_timeout=1)
        try:
            return client.ping()
        finally:
            client.close()
    if not wait_until(ok, timeout, 0.1):
        raise TimeoutError(f"{url} does not answer PING")


class RedisServer(Proc):
    """redis-server on a fixed loopback port, no persistence: a restart forgets everything."""

    def __init__(self, workdir: Path, port: int | None = None):
        self.port = port or stack.free_port()
        self.dir = workdir / "redis"
        self.dir.mkdir(parents=True, exist_ok=True)
        binary = shutil.which("redis-server")
        if binary is None:
            raise RuntimeError("redis-server is not on PATH")
        cmd = [binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
               "--dir", str(self.dir), "--daemonize", "no", "--databases", "4"]
        log = workdir / "logs" / "redis.log"

        super().__init__("redis", lambda: spawn(cmd, log, dict(os.environ)), lambda p: _ping_redis(self.url(0)), log)

    def url(self, db: int = 0) -> str:
        return f"redis://127.0.0.1:{self.port}/{db}"

    def flushall(self) -> None:
        import redis

        client = redis.Redis.from_url(self.url(0), socket_timeout=3)
        try:
            client.flushall()
        finally:
            client.close()


def postgres_bin() -> Path | None:
    """The newest PostgreSQL server binaries installed (Debian's layout, or PATH)."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"),
                   key=lambda p: [int(x) for x in re.findall(r"\d+", p)])
    if found:
        return Path(found[-1]).parent
    pg_ctl = shutil.which("pg_ctl")
    return Path(pg_ctl).parent if pg_ctl and shutil.which("initdb") else None


def postgres_missing() -> str | None:
    """Why a private PostgreSQL cluster cannot be made here, or None."""
    if postgres_bin() is None:
        return "PostgreSQL server binaries (initdb, pg_ctl) not found under /usr/lib/postgresql/*/bin or PATH"
    if os.geteuid() == 0:
        try:
            import pwd

            pwd.getpwnam("postgres")
        except KeyError:
            return "running as root and there is no `postgres` system user to run PostgreSQL as"
        if shutil.which("runuser") is None and shutil.which("su") is None:
            return "running as root and neither runuser nor su is available to become `postgres`"
    return None


class PostgresCluster:
    """A throwaway cluster: its own folder (owned by postgres), port and log; trust auth."""

    name = "postgresql"

    def __init__(self, port: int | None = None, database: str = "alerte"):
        self.bin = postgres_bin()
        self.port = port or stack.free_port()
        self.database = database
        self.dir = Path(tempfile.mkdtemp(prefix="alerte-faults-pg-"))
        self.data = self.dir / "data"
        self.log = self.dir / "postgres.log"
        self.running = False
        if os.geteuid() == 0:
            import pwd

            user = pwd.getpwnam("postgres")
            os.chown(self.dir, user.pw_uid, user.pw_gid)
        os.chmod(self.dir, 0o700)

    def _run(self, *args: str, check: bool = True, timeout: float = 120) -> subprocess.CompletedProcess:
        cmd = [str(self.bin / args[0]), *args[1:]]
        if os.geteuid() == 0:
            cmd = ["runuser", "-u", "postgres", "--", *cmd] if shutil.which("runuser") else \
                ["su", "postgres", "-s", "/bin/sh", "-c", " ".join(f"'{c}'" for c in cmd)]
        result = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, cwd=self.dir)
        if check and result.returncode != 0:
            raise RuntimeError(f"{' '.join(args[:2])}: {result.stdout[-1500:]}{result.stderr[-1500:]}"
                               f"{tail(self.log, 1500)}")
        return result

    @property
    def url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{self.database}"

    def init(self) -> "PostgresCluster":
        self._run("initdb", "-D", str(self.data), "-U", "postgres", "-A", "trust", "-E", "UTF8", "--no-locale")
        self.start()
        import psycopg

        with psycopg.connect(f"postgresql://postgres@127.0.0.1:{self.port}/postgres", autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{self.database}"')
        return self

    def start(self) -> None:
        options = (f"-p {self.port} -c listen_addresses=127.0.0.1 -c unix_socket_directories={self.dir} "
                   "-c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=300")
        self._run("pg_ctl", "-D", str(self.data), "-l", str(self.log), "-o", options, "-w", "-t", "60", "start")
        self.running = True

    def stop(self, mode: str = "fast") -> None:
        self._run("pg_ctl", "-D", str(self.data), "-m", mode, "-w", "-t", "60", "stop", check=False)
        self.running = False

    def kill(self, sig: int = signal.SIGKILL) -> None:  # same shape as Proc
        self.stop("immediate")

    def restart(self, wait: bool = True) -> None:
        self.stop()
        self.start()

    def ensure(self) -> None:
        status = self._run("pg_ctl", "-D", str(self.data), "status", check=False)
        if status.returncode != 0:
            self.start()

    def destroy(self) -> None:
        self.stop("immediate")
        shutil.rmtree(self.dir, ignore_errors=True)


# ---------------------------------------------------------------------------- Twilio stand-in


class FaultStandin(TwilioStandin):
    """The tests' Twilio stand-in, plus: when each message arrived (``times[sid]``, epoch
    seconds), a delay before handling each POST (``delay``), a hang after accepting
    (``hang``: the message is recorded, the answer comes that much later, past the
    client's read timeout if long enough), and ``drop(n)``: accept and record the next
    n messages, then close the connection without answering (the provider has the
    message, the service cannot know)."""

    def __init__(self):
        self.delay = 0.0
        self.hang = 0.0
        self.times: dict[str, float] = {}
        self.dropped: list[str] = []
        self._drops = 0
        super().__init__()

    def reset(self) -> None:
        with self.lock:
            self.sent.clear()
            self.times.clear()
            self.errors.clear()
            self.dropped.clear()
            self.delay = self.hang = 0.0
            self._drops = 0

    def drop(self, count: int = 1) -> None:
        with self.lock:
            self._drops += count

    def _take_drop(self) -> bool:
        with self.lock:
            if self._drops > 0:
                self._drops -= 1
                return True
            return False

    def sends(self, to: str | None = None) -> list:
        with self.lock:
            return [m for m in self.sent if to is None or m.to == to]

    def time_of(self, sid: str) -> float | None:
        return self.times.get(sid)

    def _handler(self):
        base = super()._handler()
        standin = self

        class Handler(base):
            def do_POST(self):
                self._arrived = time.time()
                if standin.delay:
                    time.sleep(standin.delay)
                super().do_POST()

            def _json(self, status, body):
                if self.command == "POST" and status == 201 and "sid" in body:
                    standin.times[body["sid"]] = self._arrived
                    if standin._take_drop():
                        standin.dropped.append(body["sid"])
                        self.close_connection = True
                        try:
                            self.connection.shutdown(socket.SHUT_RDWR)
                        except OSError:
                            pass
                        return
                    if standin.hang:
                        time.sleep(standin.hang)
                try:
                    super()._json(status, body)
                except OSError:  # the client is gone (killed, or gave up waiting)
                    self.close_connection = True

            def finish(self):
                try:
                    super().finish()
                except OSError:
                    pass

        return Handler


# ---------------------------------------------------------------------------- phones


@dataclass
class Delivery:
    """One webhook delivery as Twilio would make it, and what the service answered."""

    number: str
    body: str
    sid: str
    sent_at: float = 0.0
    answered_at: float | None = None
    status: int | None = None
    texts: list[str] = field(default_factory=list)
    error: str | None = None

    @property
    def seconds(self) -> float | None:
        return None if self.answered_at is None else self.answered_at - self.sent_at


def twiml_texts(xml: str) -> list[str]:
    return [m.text or "" for m in ET.fromstring(xml).iter("Message")]


class Phones:
    """Posts properly signed Twilio webhooks to the web app and keeps every delivery."""

    def __init__(self, web_url: str, token: str = AUTH_TOKEN, base_url: str = PUBLIC_BASE_URL):
        self.web_url, self.base_url = web_url.rstrip("/"), base_url.rstrip("/")
        self.validator = RequestValidator(token)
        self.deliveries: list[Delivery] = []
        self.lock = threading.Lock()
        self.local = threading.local()

    def _http(self) -> requests.Session:
        if not hasattr(self.local, "session"):
            self.local.session = requests.Session()
        return self.local.session

    def post(self, number: str, body: str, sid: str | None = None, timeout: float = 40) -> Delivery:
        sid = sid or "SM" + uuid.uuid4().hex
        params = {"MessageSid": sid, "SmsSid": sid, "AccountSid": ACCOUNT_SID, "From": number,
                  "To": SERVICE_NUMBER, "Body": body, "NumMedia": "0", "NumSegments": "1",
                  "SmsStatus": "received", "ApiVersion": "2010-04-01"}
        signature = self.validator.compute_signature(self.base_url + WEBHOOK, params)
        delivery = Delivery(number, body, sid, sent_at=time.time())
        with self.lock:
            self.deliveries.append(delivery)
        try:
            response = self._http().post(self.web_url + WEBHOOK, data=params, timeout=timeout,
                                         headers={"X-Twilio-Signature": signature})
            delivery.status = response.status_code
            if response.status_code == 200:
                try:
                    delivery.texts = twiml_texts(response.text)
                except ET.ParseError:
                    delivery.error = f"not TwiML: {response.text[:200]!r}"
            else:
                delivery.error = f"HTTP {response.status_code}: {response.text[:200]!r}"
        except requests.RequestException as exc:
            delivery.error = f"{type(exc).__name__}: {exc}"[:300]
        delivery.answered_at = time.time()
        return delivery

    def conversation(self, number: str, texts: list[str], gap: float = 0.0) -> list[Delivery]:
        """One person texting, each message after the previous webhook was answered."""
        out = []
        for text in texts:
            out.append(self.post(number, text))
            if gap:
                time.sleep(gap)
        return out

    def in_parallel(self, conversations: dict[str, list[str]], gap: float = 0.0) -> list[threading.Thread]:
        """Start one thread per number; join them to wait."""
        threads = [threading.Thread(target=self.conversation, args=(n, t, gap), daemon=True)
                   for n, t in conversations.items()]
        for thread in threads:
            thread.start()
        return threads

    def in_lanes(self, conversations: dict[str, list[str]], lanes: int = 2, gap: float = 0.0,
                 start_gap: float = 0.0) -> list[threading.Thread]:
        """Like Twilio with at most `lanes` webhooks in flight: each lane takes some of
        the people and sends their messages round-robin (each person's in order).
        Keeps the observed answer time that of the service, not of gunicorn's queue."""
        numbers = list(conversations)
        groups = [numbers[i::lanes] for i in range(lanes)]

        def run(group):
            queues = [(n, list(conversations[n])) for n in group]
            while any(q for _, q in queues):
                for number, queue in queues:
                    if queue:
                        self.post(number, queue.pop(0))
                        if gap:
                            time.sleep(gap)
        threads = []
        for group in groups:
            if group:
                threads.append(threading.Thread(target=run, args=(group,), daemon=True))
                threads[-1].start()
                if start_gap:
                    time.sleep(start_gap)
        return threads

    def reset(self) -> None:
        with self.lock:
            self.deliveries.clear()


def join(threads: list[threading.Thread], timeout: float = 300) -> None:
    deadline = time.monotonic() + timeout
    for thread in threads:
        thread.join(max(0.0, deadline - time.monotonic()))


# ---------------------------------------------------------------------------- observing


def received_texts() -> set[str]:
    """The "we received your message" answer in every language."""
    from bot import messages
    from bot.languages import LANGUAGES

    return {messages.render("received", lang) for lang in LANGUAGES}


def opt_out_words() -> Callable[[str], bool]:
    from bot import keywords

    def is_stop(body: str) -> bool:
        command = keywords.match(body or "")
        return command is not None and command.intent == keywords.OPT_OUT
    return is_stop


def subscription_words() -> Callable[[str], bool]:
    """STOP and START words: handled at once, ahead of the reporter's waiting messages."""
    from bot import keywords

    def is_command(body: str) -> bool:
        command = keywords.match(body or "")
        return command is not None and command.intent in (keywords.OPT_OUT, keywords.OPT_IN)
    return is_command


@dataclass
class Row:
    id: int
    direction: str
    status: str
    reporter_id: int | None
    reply_to_id: int | None
    body: str
    provider_id: str | None
    created_at: datetime | None
    processed_at: datetime | None
    attempts: int
    error_code: str | None
    failure_reason: str | None


class Observer:
    """Reads the database the way the checks need it (SQLAlchemy, the service's models)."""

    def __init__(self, database_url: str, secret_key: str = SECRET_KEY):
        from service.db import make_engine
        from service.privacy import Identity

        self.url = database_url
        self.engine = make_engine(database_url)
        self.identity = Identity(secret_key)

    def dispose(self) -> None:
        self.engine.dispose()

    def rows(self) -> list[Row]:
        from sqlalchemy import select
        from sqlalchemy.orm import Session

        from service.models import Message

        with Session(self.engine) as session:
            return [Row(m.id, m.direction, m.status, m.reporter_id, m.reply_to_id, m.body or "", m.provider_id,
                        aware(m.created_at), aware(m.processed_at), m.attempts or 0, m.error_code,
                        getattr(m, "failure_reason", None))
                    for m in session.scalars(select(Message).order_by(Message.id))]

    def reporters(self) -> dict[int, dict]:
        """id -> number (decrypted), key, opted_out, opted_out_at."""
        from sqlalchemy import select
        from sqlalchemy.orm import Session

        from service.models import Reporter

        with Session(self.engine) as session:
            return {r.id: {"number": self.identity.decrypt(r.phone_encrypted), "key": r.key,
                           "opted_out": bool(r.opted_out), "opted_out_at": aware(r.opted_out_at)}
                    for r in session.scalars(select(Reporter))}

    def db_state(self) -> dict[str, Counter]:
        """Inbound and outbound messages by status, from the database."""
        state = {"in": Counter(), "out": Counter()}
        for row in self.rows():
            state[row.direction][row.status] += 1
        return state

    def truncate(self) -> None:
        """Empty every table of the service (between tests)."""
        from sqlalchemy import MetaData, text

        meta = MetaData()
        meta.reflect(self.engine)
        tables = [t for t in meta.sorted_tables if t.name != "alembic_version"]
        if self.engine.dialect.name == "postgresql" and tables:
            names = ", ".join(f'"{t.name}"' for t in tables)
            try:  # TRUNCATE waits for every open transaction on these tables: not forever
                with self.engine.begin() as conn:
                    conn.execute(text("SET LOCAL lock_timeout = '5s'"))
                    conn.execute(text(f"TRUNCATE {names} RESTART IDENTITY CASCADE"))
                return
            except Exception:  # noqa: BLE001 - fall back to row deletes
                pass
        with self.engine.begin() as conn:
            for table in reversed(tables):
                conn.execute(table.delete())


@dataclass
class Report:
    """What a run did, from the database and the stand-in; `problems` is what went wrong."""

    state: dict
    received: int
    processed: int
    failed: int
    unprocessed: int
    replies_handed: int
    replies_sent: int
    duplicates: int
    lost: int
    worst_delay: float | None
    problems: list[str]
    delays: list[float] = field(default_factory=list)  # arrival -> first real reply, s
    delay_points: list[tuple[float, float]] = field(default_factory=list)  # (arrival epoch s, delay s)
    unanswered: int = 0

    def summary(self) -> str:
        delay = "n/a" if self.worst_delay is None else f"{self.worst_delay:.1f} s"
        return (f"received {self.received}, processed {self.processed}, failed {self.failed}, "
                f"unprocessed {self.unprocessed}, replies handed {self.replies_handed}, sent "
                f"{self.replies_sent}, duplicates {self.duplicates}, lost {self.lost}, worst delay {delay}; "
                f"db in={dict(self.state['in'])} out={dict(self.state['out'])}")


def tracker_turns(rasa_url: str | None, keys: list[str]) -> dict[int, int]:
    """message_id -> how many Rasa turns answered it (user event followed by a bot event),
    from the trackers still in Redis. More than one: the message was played twice."""
    turns: Counter = Counter()
    if not rasa_url:
        return turns
    http = requests.Session()
    for key in keys:
        try:
            events = http.get(f"{rasa_url}/conversations/{key}/tracker", params={"include_events": "ALL"},
                              timeout=5).json().get("events") or []
        except (requests.RequestException, ValueError):
            continue
        current, answered = None, False
        for event in events + [{"event": "user"}]:
            if event.get("event") == "user":
                if current is not None and answered:
                    turns[current] += 1
                current, answered = (event.get("metadata") or {}).get("message_id"), False
            elif event.get("event") == "bot":
                answered = True
    return turns


def examine(observer: Observer, standin: FaultStandin, deliveries: list[Delivery], *,
            budget: float | None = None, rasa_url: str | None = None, require_answers: bool = True) -> Report:
    """Every promise of the service, checked from the database and the stand-in's record.

    - each delivered MessageSid is stored exactly once; each webhook answered 200 TwiML
      within the budget;
    - each inbound message ends ``processed`` (and was played once in Rasa) or ``failed``
      with a reason;
    - each processed message got a real reply (not just "received"), handed in the TwiML
      answer or sent by the worker; none twice; never both;
    - every send the provider accepted belongs to one outbound row, and every row marked
      sent names a send the provider has; nothing left queued or sending;
    - nothing sent to an opted-out person after their STOP, except its confirmation and
      replies to messages they wrote after it.
    """
    problems: list[str] = []
    rows = observer.rows()
    people = observer.reporters()
    by_id = {r.id: r for r in rows}
    received = received_texts()
    is_stop = opt_out_words()
    is_command = subscription_words()
    inbound = [r for r in rows if r.direction == "in"]
    outbound = [r for r in rows if r.direction == "out"]
    state = {"in": Counter(r.status for r in inbound), "out": Counter(r.status for r in outbound)}
    sends = standin.sends()
    sids = {m.sid: m for m in sends}
    number_of = {rid: p["number"] for rid, p in people.items()}

    # webhooks
    by_sid = defaultdict(list)
    for row in inbound:
        by_sid[row.provider_id].append(row)
    seen_sids = set()
    for d in deliveries:
        if d.status != 200 or d.error:
            problems.append(f"webhook {d.sid[:10]} ({d.body[:20]!r}) answered {d.error or d.status}")
        elif budget is not None and d.seconds is not None and d.seconds > budget + 1.5:
            problems.append(f"webhook {d.sid[:10]} ({d.body[:20]!r}) took {d.seconds:.1f} s (budget {budget} s)")
        if d.sid in seen_sids:
            continue
        seen_sids.add(d.sid)
        stored = by_sid.get(d.sid, [])
        if len(stored) != 1:
            problems.append(f"MessageSid {d.sid[:10]} ({d.body[:20]!r}) stored {len(stored)} times")
    lost = sum(1 for sid in seen_sids if not by_sid.get(sid))

    # inbound outcome
    replies = defaultdict(list)
    for row in outbound:
        replies[row.reply_to_id].append(row)
    turns = tracker_turns(rasa_url, [p["key"] for p in people.values()])
    unprocessed = unanswered = 0
    for row in inbound:
        label = f"inbound #{row.id} ({row.body[:20]!r})"
        if row.status not in IN_FINAL:
            unprocessed += 1
            problems.append(f"{label} left {row.status} after {row.attempts} attempts")
        elif row.status == "failed" and not row.failure_reason:
            problems.append(f"{label} failed without a failure_reason")
        if turns.get(row.id, 0) > 1:
            problems.append(f"{label} was played {turns[row.id]} times in Rasa")
        if row.status == "processed" and require_answers:
            real = [o for o in replies.get(row.id, []) if o.body not in received]
            if not real:
                unanswered += 1
                problems.append(f"{label} processed but never answered (only {[o.status for o in replies.get(row.id, [])]})")

    # each reporter's messages answered in the order they were written (STOP/START jump the queue)
    by_reporter = defaultdict(list)
    for row in inbound:
        if row.status == "processed" and row.processed_at and row.created_at and not is_command(row.body):
            by_reporter[row.reporter_id].append(row)
    for rows_of in by_reporter.values():
        rows_of.sort(key=lambda r: (r.created_at, r.id))
        for before, after in zip(rows_of, rows_of[1:]):
            if after.processed_at < before.processed_at:
                gap = (after.created_at - before.created_at).total_seconds()
                problems.append(f"inbound #{after.id} ({after.body[:20]!r}) answered before #{before.id} "
                                f"({before.body[:20]!r}), written {gap:.1f} s after it")

    # outbound: one of each, handed or sent, accounted for at the provider
    duplicates = 0
    for reply_to, group in replies.items():
        reached = Counter(o.body for o in group if o.status in OUT_SENT | {"handed", "sending"})
        for body, count in reached.items():
            if count > 1:
                duplicates += count - 1
                problems.append(f"reply to #{reply_to} ({body[:30]!r}) recorded {count} times "
                                f"({[o.status for o in group if o.body == body]})")
    rows_by_provider_id = defaultdict(list)
    for row in outbound:
        if row.provider_id:
            rows_by_provider_id[row.provider_id].append(row)
        if row.status in ("queued", "sending"):
            problems.append(f"outbound #{row.id} still {row.status}")
        if row.status in OUT_SENT and row.provider_id not in sids:
            problems.append(f"outbound #{row.id} is {row.status} but the provider has no message "
                            f"{row.provider_id!r} (a TwiML answer must be `handed`)")
        if row.status == "handed" and row.provider_id in sids:
            problems.append(f"outbound #{row.id} is handed yet was also sent by the worker")
    wire = Counter((m.to, m.body) for m in sends)
    # a `sending` row may be at the provider already (that is its own problem, above)
    expected = Counter((number_of.get(o.reporter_id), o.body) for o in outbound
                       if o.status in OUT_SENT | {"sending"})
    for (to, body), count in wire.items():
        if count > expected.get((to, body), 0):
            extra = count - expected.get((to, body), 0)
            duplicates += extra
            problems.append(f"provider got {body[:30]!r} {count} times for ...{(to or '')[-4:]} but "
                            f"{expected.get((to, body), 0)} row(s) say sent")
    for m in sends:
        if m.sid not in rows_by_provider_id:
            problems.append(f"provider message {m.sid[:10]} ({m.body[:30]!r}) belongs to no outbound row")
    # handed and sent for the same inbound message with the same text
    for reply_to, group in replies.items():
        handed = {o.body for o in group if o.status == "handed"}
        sent = {o.body for o in group if o.status in OUT_SENT}
        for body in handed & sent - received:
            problems.append(f"reply to #{reply_to} ({body[:30]!r}) both handed and sent")

    # after STOP
    stop_answered: dict[str, float] = {}
    for d in deliveries:
        if is_stop(d.body) and d.status == 200 and d.answered_at:
            stop_answered[d.number] = min(stop_answered.get(d.number, d.answered_at), d.answered_at)
    for rid, person in people.items():
        if not person["opted_out"] or person["number"] is None:
            continue
        after = stop_answered.get(person["number"])
        if after is None and person["opted_out_at"] is not None:
            after = person["opted_out_at"].timestamp() + 1.0
        if after is None:
            continue
        opted_out_at = person["opted_out_at"]
        for m in sends:
            if m.to != person["number"] or (standin.time_of(m.sid) or 0) <= after:
                continue
            rows_for = rows_by_provider_id.get(m.sid, [])
            reply_to = by_id.get(rows_for[0].reply_to_id) if rows_for else None
            if reply_to is not None and (is_stop(reply_to.body) or (
                    opted_out_at and reply_to.created_at and reply_to.created_at > opted_out_at)):
                continue
            problems.append(f"sent {m.body[:30]!r} to an opted-out reporter "
                            f"{standin.time_of(m.sid) - after:.1f} s after their STOP was answered")

    # how long from arrival to the real reply
    worst, delays, points = None, [], []
    for row in inbound:
        arrival = row.created_at.timestamp() if row.created_at else None
        times = []
        for o in replies.get(row.id, []):
            if o.body in received:
                continue
            if o.status == "handed" and o.created_at:
                times.append(o.created_at.timestamp())
            elif o.provider_id in sids and standin.time_of(o.provider_id):
                times.append(standin.time_of(o.provider_id))
        if arrival and times:
            delay = min(times) - arrival
            delays.append(delay)
            points.append((arrival, delay))
            worst = delay if worst is None else max(worst, delay)
    handed = sum(1 for o in outbound if o.status == "handed")
    return Report(state, received=len(inbound), processed=state["in"]["processed"], failed=state["in"]["failed"],
                  unprocessed=unprocessed, replies_handed=handed, replies_sent=len(sends), duplicates=duplicates,
                  lost=lost, worst_delay=worst, problems=problems, delays=delays, unanswered=unanswered,
                  delay_points=points)


def settled(observer: Observer, deliveries: list[Delivery]) -> bool:
    """Nothing left to do: every delivered message stored and final, every reply out."""
    rows = observer.rows()
    stored = {r.provider_id for r in rows if r.direction == "in"}
    if any(d.sid not in stored for d in deliveries if d.status == 200):
        return False
    if any(r.direction == "in" and r.status not in IN_FINAL for r in rows):
        return False
    return not any(r.direction == "out" and r.status in ("queued", "sending") for r in rows)


# ---------------------------------------------------------------------------- the stack


class Stack:
    """The service and everything it talks to, as processes this harness owns."""

    def __init__(self, workdir: Path, *, postgres: bool = True, settings: dict | None = None,
                 web_workers: int = 2):
        self.workdir = Path(workdir)
        self.logs = self.workdir / "logs"
        self.logs.mkdir(parents=True, exist_ok=True)
        self.spool = self.workdir / "spool"
        self.spool.mkdir(exist_ok=True)
        self.use_postgres = postgres
        self.settings = dict(SETTINGS, **(settings or {}))
        self.extra_env: dict[str, str] = {}  # more environment for every process (see configure)
        self.web_workers = web_workers
        self.redis: RedisServer | None = None
        self.postgres: PostgresCluster | None = None
        self.standin: FaultStandin | None = None
        self.rasa = self.actions = self.web = self.worker = None
        self.database_url = ""
        self.observer: Observer | None = None
        self.phones: Phones | None = None
        self.rasa_port = stack.free_port()
        self.actions_port = stack.free_port()
        self.web_port = stack.free_port()

    # -- configuration
    @property
    def rasa_url(self) -> str:
        return f"http://127.0.0.1:{self.rasa_port}"

    @property
    def web_url(self) -> str:
        return f"http://127.0.0.1:{self.web_port}"

    @property
    def budget(self) -> float:
        return float(self.settings["WEBHOOK_BUDGET"])

    def env(self) -> dict:
        return stack.child_env(
            DATABASE_URL=self.database_url, REDIS_URL=self.redis.url(0), RASA_URL=self.rasa_url,
            TWILIO_API_BASE=self.standin.url, TWILIO_AUTH_TOKEN=AUTH_TOKEN, TWILIO_ACCOUNT_SID=ACCOUNT_SID,
            TWILIO_FROM=SERVICE_NUMBER, PUBLIC_BASE_URL=PUBLIC_BASE_URL, SECRET_KEY=SECRET_KEY,
            API_TOKEN=API_TOKEN, SPOOL_DIR=str(self.spool), ACTIONS_URL=f"http://127.0.0.1:{self.actions_port}",
            **dict(self.settings, **self.extra_env))

    def configure(self, **env: str | None) -> None:
        """Add (a value) or remove (None) environment of the service's processes, e.g.
        CHANNELS for the gateway cases, then restart the web app and the worker with it
        (warmed up again, tables and Redis emptied). Without a call nothing changes."""
        for key, value in env.items():
            if value is None:
                self.extra_env.pop(key, None)
            else:
                self.extra_env[key] = value
        self.worker.stop()
        self.web.restart()
        self.warm_up()
        self.worker.start()

    @staticmethod
    def python() -> str:
        venv = ROOT / ".venv" / "bin" / "python"
        return str(venv) if venv.exists() else sys.executable

    # -- starting
    def start(self, model: Path | None = None) -> "Stack":
        from bot import rasa_project
        from service.db import upgrade

        model = model or rasa_project.train()
        atexit.register(self.stop)  # an interrupted run leaves nothing behind
        self.redis = RedisServer(self.workdir)
        self.redis.start()
        if self.use_postgres:
            self.postgres = PostgresCluster().init()
            self.database_url = self.postgres.url
        else:
            self.database_url = f"sqlite:///{self.workdir / 'alerte.db'}"
        upgrade(self.database_url)
        self.observer = Observer(self.database_url)
        self.standin = FaultStandin().start()
        endpoints = stack.write_endpoints(self.workdir / "endpoints.yml",
                                          f"http://127.0.0.1:{self.actions_port}/webhook", self.redis.url(1))
        rasa_log = self.logs / "rasa.log"
        self.rasa = Proc("rasa", lambda: stack.start_rasa(model, endpoints, self.rasa_port, rasa_log, self.env()),
                         lambda p: stack.wait_http(self.rasa_url + "/status", 300, p.popen, ok=stack.rasa_ready),
                         rasa_log)
        self.rasa.start(wait=False)  # loads its model while the rest starts
        actions_log = self.logs / "actions.log"
        self.actions = Proc("actions", lambda: stack.start_actions(self.actions_port, actions_log, self.env()),
                            lambda p: stack.wait_http(f"http://127.0.0.1:{self.actions_port}/health", 120, p.popen),
                            actions_log)
        self.actions.start(wait=False)
        web_log = self.logs / "web.log"
        self.web = Proc("web", lambda: spawn(
            [self.python(), "-m", "gunicorn", "-w", str(self.web_workers), "-b", f"127.0.0.1:{self.web_port}",
             "--timeout", "60", "--graceful-timeout", "5", *self._gunicorn_private(), "service.app:create_app()"],
            web_log, self.env()),
            lambda p: stack.wait_http(self.web_url + "/healthz", 60, p.popen, ok=lambda r: r.status_code < 500
                                      or r.status_code == 503), web_log)
        self.web.start(wait=False)
        worker_log = self.logs / "worker.log"
        self.worker = Proc("worker", lambda: spawn([self.python(), "-m", "service.cli", "worker"],
                                                          worker_log, self.env()),
                           self._worker_ready, worker_log)
        self.actions.wait_ready()
        self.web.wait_ready()
        self.rasa.wait_ready()
        self.phones = Phones(self.web_url)
        self.warm_up()
        self.worker.start()
        return self

    def warm_up(self) -> None:
        """A few webhooks through every gunicorn worker, so that no case measures a cold
        process (imports and language models loaded on first use); then forgotten."""
        people = {new_number(): ["mbote", "STOP"] for _ in range(2 * self.web_workers)}
        join(self.phones.in_lanes(people, lanes=self.web_workers), 120)
        self.phones.reset()
        self.redis.flushall()
        self.observer.truncate()
        self.standin.reset()

    def _gunicorn_private(self) -> list[str]:
        """Newer gunicorns open a control socket in $HOME, shared by every gunicorn of
        the machine: give ours its own."""
        try:
            from gunicorn import config

            if any(s.name == "control_socket" for s in config.KNOWN_SETTINGS):
                return ["--control-socket", str(self.workdir / "gunicorn.ctl")]
        except ImportError:
            pass
        return []

    def _worker_ready(self, proc: Proc) -> None:
        """Registered with RQ in Redis (or at least still alive after a few seconds)."""
        import redis
        from rq import Worker

        def registered():
            if not proc.alive():
                raise RuntimeError(f"worker exited with {proc.popen.returncode}")
            connection = redis.Redis.from_url(self.redis.url(0), socket_timeout=2)
            try:
                return any(w.pid == proc.pid for w in Worker.all(connection=connection))
            except redis.RedisError:
                return False
            finally:
                connection.close()
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if registered():
                return
            time.sleep(0.3)
        if not proc.alive():
            raise RuntimeError(f"worker exited with {proc.popen.returncode}")

    def processes(self) -> list:
        return [p for p in (self.redis, self.postgres, self.actions, self.rasa, self.web, self.worker) if p]

    def ensure_running(self) -> None:
        """Resume what is paused and start what is down, in dependency order."""
        for proc in self.processes():
            if proc is not self.worker:
                proc.ensure()
        for proc in (self.actions, self.rasa, self.web):
            if proc is not None:
                proc.wait_ready()

    def reset(self) -> None:
        """A clean state for the next case: worker stopped, Redis and tables emptied,
        stand-in and spool cleared, every process up, the worker started again."""
        from service.db import upgrade

        self.ensure_running()
        if self.worker.alive():
            self.worker.stop()
        upgrade(self.database_url)  # a no-op, unless the schema moved on since the session began
        self.redis.flushall()
        self.observer.truncate()
        self.standin.reset()
        self.phones.reset()
        for path in self.spool.glob("**/*"):
            if path.is_file():
                path.unlink()
        self.worker.start()

    def stop(self) -> None:
        """Stop everything this stack started (safe to call twice)."""
        steps = [getattr(p, "stop", None) for p in (self.worker, self.web, self.rasa, self.actions, self.redis)
                 if p is not None]
        steps += [getattr(self.standin, "stop", None), getattr(self.observer, "dispose", None),
                  getattr(self.postgres, "destroy", None)]
        self.worker = self.web = self.rasa = self.actions = self.redis = None
        self.standin = self.observer = self.postgres = None
        for step in steps:
            if step is None:
                continue
            try:
                step()
            except Exception:  # noqa: BLE001 - best effort: stop the rest too
                pass

    # -- checking
    def examine(self, **kwargs) -> Report:
        kwargs.setdefault("budget", self.budget)
        kwargs.setdefault("rasa_url", self.rasa_url)
        return examine(self.observer, self.standin, list(self.phones.deliveries), **kwargs)

    def settle(self, timeout: float) -> bool:
        """Wait until nothing is left to do; False after `timeout`."""
        return bool(wait_until(lambda: settled(self.observer, list(self.phones.deliveries)), timeout, 0.5))

    def rows_table(self, limit: int = 80) -> str:
        """The messages as a compact table (ids, statuses, times), for failure reports."""
        try:
            rows = self.observer.rows()
        except Exception as exc:  # noqa: BLE001
            return f"(rows unavailable: {type(exc).__name__})"
        sids = {m.sid: i for i, m in enumerate(self.standin.sends())}
        lines = ["id  dir status     rep reply att created          processed        provider     body"]
        for r in rows[-limit:]:
            at = lambda t: t.strftime("%H:%M:%S.%f")[:-3] if t else "-"  # noqa: E731
            pid = (r.provider_id or "-")[:10] + (f"#{sids[r.provider_id]}" if r.provider_id in sids else "")
            lines.append(f"{r.id:<3} {r.direction:<3} {r.status:<10} {r.reporter_id or '-':<3} "
                         f"{r.reply_to_id or '-':<5} {r.attempts:<3} {at(r.created_at):<16} "
                         f"{at(r.processed_at):<16} {pid:<12} {r.body[:28]!r}")
        return "\n".join(lines)

    def logs_tail(self, chars: int = 1500) -> str:
        parts = []
        for proc in (self.worker, self.web, self.actions):
            if proc is not None:
                parts.append(f"--- {proc.name} log (end) ---\n{tail(proc.log, chars)}")
        return "\n".join(parts)
