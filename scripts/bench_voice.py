"""Benchmark (not a test): the voice line under simultaneous callers, and call-backs of beeps.

    .venv/bin/python scripts/bench_voice.py [--callers 20] [--interval 5] [--calls-per-caller 2]
        [--callbacks 200] [--web-workers 2] [--workers 2] [--no-prompts] [--json out.json] [--keep]

A smaller run while developing: --callers 4 --interval 0.5 --callbacks 20.

The stack is bench_broadcast's (scripts/bench_broadcast.py, from tests/faults/harness.py): a
private redis-server and PostgreSQL cluster, the web app under gunicorn (--web-workers), --workers
RQ workers, and a Twilio stand-in in a child process of this script (tests/twilio_standin.py,
keep-alive on, each Calls API request recorded with its arrival time, each placed call ended
"completed" by a signed status callback to the web app, so nothing is dialled again). No Rasa and
no action server: the voice line needs neither. BEEP_NUMBERS names a beep line, CALLBACK_DELAY=0,
CALLBACK_RATE=0 for the whole run. Prompt placeholders (silent WAVs, one per prompt and language,
as tests/test_voice_webhook.py makes them) go to a PROMPT_CACHE_DIR in the work folder, so every
answer carries its signed <Play> URLs; --no-prompts leaves it empty (TwiML without <Play>).

Phases:

- calls: --callers threads, each one caller (a fake number, +243992000000 upwards, never printed)
  making --calls-per-caller whole calls in turn through the real web app over HTTP (one
  requests.Session each, keep-alive), one signed webhook every --interval s, as Twilio posts them:
  the answer, then the <Gather> action with Digits, or the <Record> action with a recording's
  fields. The keys: language (fr/sw/ln in turn; a known caller's second call skips that menu),
  attack, North Kivu, Beni, a place name recorded, yesterday, 12 hurt, a message recorded,
  confirm; every third call presses a wrong key on the province menu, every third another a 0
  (repeat) on the time menu. After the goodbye, the status callback ("completed"). Measured per
  webhook: from sending the request to having the whole TwiML. Errors: a non-200, a document
  that does not parse, or one with neither Gather, Record nor Hangup; fallbacks (a <Record> to
  the "fallback" step where a menu was expected) are counted apart. At the end the database must
  hold, for each confirmed call, its alert with status "new" and channel "voice".
- callbacks: --callbacks beeps (signed calls to the beep line from distinct fake numbers,
  +243993000000 upwards, never printed), posted by 8 threads at once; measured: each beep's
  answer (<Reject/>), the dials the stand-in's Calls API received (per second, from the first
  beep to the last dial), and each beep's delay to its dial.

Also printed: the web and RQ workers' peak RSS (VmHWM), the CPU seconds of each part (from /proc,
as bench_broadcast), and the load average (`uptime`) before, during (sampled every 5 s) and after.
Recordings are only noted by the <Record> action: no recording status callback is posted, so no
fetch job runs (that path is not measured here).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
import wave
import xml.etree.ElementTree as ET
from io import BytesIO
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts"))

import requests  # noqa: E402
from twilio.request_validator import RequestValidator  # noqa: E402

import bench_broadcast as bb  # noqa: E402
from tests.faults import harness  # noqa: E402

CALLER_PREFIX = "+243992"  # the callers' fake numbers: +243992000000 upwards
BEEPER_PREFIX = "+243993"  # the beepers'
LINE = "+243970000100"  # the toll-free line (fake)
BEEP_LINE = "+243970000300"  # the beep line (fake)
LANGS = ("fr", "sw", "ln")
LANGUAGE_KEY = {"fr": "1", "sw": "2", "ln": "3"}
KEYS = {"category": "1", "province": "2", "territory": "3", "occurred_at": "4", "people_affected": "12#",
        "confirm": "1"}  # attack, North Kivu, Beni, yesterday, 12 hurt, yes
DETOURS = ({}, {"province": ["7"]}, {"occurred_at": ["0"]})  # a wrong key (five provinces), a repeat
RECORD_SECONDS = {"place-name": 4, "message": 30}
MAX_STEPS = 40
TARGET_P99_S = 1.0
BEEP_THREADS = 8


# ============================================================================ the stand-in (child process)

def standin_child(portfile: Path) -> int:
    """Twilio's stand-in (keep-alive), its placed calls with their arrival times, and a
    control server, until SIGTERM."""
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    from tests.twilio_standin import TwilioStandin

    class Twilio(TwilioStandin):
        def _handler(self):
            class Handler(super()._handler()):
                protocol_version = "HTTP/1.1"
                disable_nagle_algorithm = True
            return Handler

    twilio = Twilio()
    twilio.server.handle_error = lambda request, address: None
    twilio.start()

    class Control(BaseHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def do_GET(self):
            url = urlsplit(self.path)
            prefix = {k: v[0] for k, v in parse_qs(url.query).items()}.get("prefix", "")
            if url.path != "/calls":
                return self._send({"error": "not found"}, 404)
            with twilio.lock:
                calls = [[c.at.timestamp(), c.to, c.status] for c in twilio.calls if c.to.startswith(prefix)]
            self._send({"calls": calls})

        def do_POST(self):
            url = urlsplit(self.path)
            query = {k: v[0] for k, v in parse_qs(url.query).items()}
            if url.path == "/deliver":  # post each call's status callbacks, signed, to the web app
                twilio.deliver_statuses(query["base"], harness.AUTH_TOKEN)
            else:
                with twilio.lock:
                    twilio.calls.clear()
                    twilio.sent.clear()
            self._send({"ok": True})

        def _send(self, body, status=200):
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

    control = ThreadingHTTPServer(("127.0.0.1", 0), Control)
    threading.Thread(target=control.serve_forever, daemon=True).start()
    done = threading.Event()
    signal.signal(signal.SIGTERM, lambda *a: done.set())
    tmp = portfile.with_suffix(".tmp")
    tmp.write_text(json.dumps({"twilio": twilio.url, "control": f"http://127.0.0.1:{control.server_address[1]}"}))
    tmp.rename(portfile)
    done.wait()
    return 0


class VoiceStandins(bb.Standins):
    """bench_broadcast's stand-in process, running this script's child instead."""

    def __init__(self, workdir: Path, env: dict):
        super().__init__(workdir, env)
        log = workdir / "logs" / "standins.log"
        self.proc = harness.Proc("standins", lambda: harness.spawn(
            [harness.Stack.python(), str(Path(__file__).resolve()), "--standin-child", str(self.portfile)],
            log, env), log=log)

    def deliver_to(self, base: str) -> None:
        self.http.post(self.urls["control"] + "/deliver", params={"base": base}, timeout=30)

    def calls(self, prefix: str) -> list:
        return self._get("/calls", prefix=prefix)["calls"]


# ============================================================================ the stack

class VoiceStack(bb.BenchStack):
    """bench_broadcast's stack without Rasa, with a beep line, immediate unpaced call-backs
    and (unless --no-prompts) a placeholder for every prompt."""

    def env(self) -> dict:
        env = super().env()
        env.update(BEEP_NUMBERS=BEEP_LINE, CALLBACK_DELAY="0", CALLBACK_RATE="0",
                   PROMPT_CACHE_DIR=str(self.workdir / "prompts"),
                   PROMPT_RECORDINGS_DIR=str(self.workdir / "no-recorded-prompts"),
                   RECORDINGS_DIR=str(self.workdir / "recordings"))
        return env

    def start(self) -> "VoiceStack":
        if self.args.prompts:
            write_placeholders(self.workdir / "prompts")
        bb.Standins = VoiceStandins  # BenchStack.start builds its stand-ins by this name
        super().start()
        self.standins.deliver_to(self.web_url)
        return self

    def web_processes(self) -> list:
        """The gunicorn workers (the master's children), as objects MemorySampler reads."""
        master = self.web.pid
        pids = sorted(int(p) for p in os.listdir("/proc") if p.isdigit() and (bb._stat(int(p)) or (0,))[0] == master)
        return [_Pid(f"web{i}", pid) for i, pid in enumerate(pids)]


class _Pid:
    def __init__(self, name: str, pid: int):
        self.name, self.pid = name, pid


def write_placeholders(folder: Path) -> int:
    """A silent WAV for every prompt in every language (no espeak-ng needed)."""
    from bot import voice
    from bot.flow import alert_flow
    from bot.places import default_gazetteer

    out = BytesIO()
    with wave.open(out, "wb") as w:
        w.setnchannels(1), w.setsampwidth(2), w.setframerate(8000)
        w.writeframes(b"\0\0" * 800)
    ids = voice.prompt_ids(alert_flow(), default_gazetteer())
    for lang in LANGS:
        (folder / lang).mkdir(parents=True, exist_ok=True)
        for prompt_id in ids:
            (folder / lang / f"{prompt_id}.wav").write_bytes(out.getvalue())
    return len(ids)


# ============================================================================ a caller

class Result:
    """What the callers saw (shared by their threads)."""

    def __init__(self):
        self.lock = threading.Lock()
        self.times: dict[str, list[float]] = {"answer": [], "key": [], "record": [], "status": []}
        self.errors: list[str] = []
        self.fallbacks: list[str] = []
        self.retries = 0
        self.slow: list[tuple[float, str]] = []  # (s, step) of answers over the target
        self.documents = self.with_play = 0
        self.calls: dict[str, str] = {}  # call sid -> how it ended: confirmed, fallback, error, unfinished
        self.paths: dict[str, int] = {}  # "step:keys > ..." -> calls that took it

    def took(self, kind: str, seconds: float, step: str) -> None:
        with self.lock:
            self.times[kind].append(seconds)
            if seconds >= TARGET_P99_S:
                self.slow.append((round(seconds, 3), step))


def step_base(action: str) -> str:
    """The step a TwiML action URL names: ".../step/category-1?turn=3" -> "category"."""
    name = urlsplit(action).path.rsplit("/", 1)[-1]
    head, _, tail = name.rpartition("-")
    return head if head and tail.isdigit() else name


class Caller:
    """One phone on the line, as Twilio drives the webhooks, at one request per `interval`."""

    def __init__(self, web_url: str, number: str, lang: str, interval: float, result: Result):
        self.web_url, self.number, self.lang, self.interval, self.result = web_url, number, lang, interval, result
        self.http = requests.Session()
        self.validator = RequestValidator(harness.AUTH_TOKEN)
        self.sid, self.step, self.keys = "", "answer", ""

    def post(self, url: str, kind: str, step: str, **fields) -> ET.Element | None:
        params = {"CallSid": self.sid, "AccountSid": harness.ACCOUNT_SID, "From": self.number, "To": LINE,
                  "CallStatus": "in-progress", "Direction": "inbound", **fields}
        headers = {"X-Twilio-Signature": self.validator.compute_signature(url, params)}
        target = self.web_url + url[len(harness.PUBLIC_BASE_URL):]
        started = time.perf_counter()
        try:
            response = self.http.post(target, data=params, headers=headers, timeout=30)
            body = response.content
        except requests.RequestException as exc:
            return self._error(f"{step}: {type(exc).__name__}")
        self.result.took(kind, time.perf_counter() - started, step)
        if kind == "status":
            return None if response.status_code == 204 else self._error(f"status: HTTP {response.status_code}")
        if response.status_code != 200:
            return self._error(f"{step}: HTTP {response.status_code}")
        try:
            doc = ET.fromstring(body)
        except ET.ParseError:
            return self._error(f"{step}: TwiML does not parse")
        with self.result.lock:
            self.result.documents += 1
            self.result.with_play += doc.find(".//Play") is not None
        return doc

    def _error(self, what: str) -> None:
        with self.result.lock:
            self.result.errors.append(what)
        return None

    def call(self, n: int) -> str:
        """One whole call; how it ended."""
        self.sid, self.step, self.keys = f"CA{uuid.uuid4().hex}", "answer", ""
        detours = {k: list(v) for k, v in DETOURS[n % len(DETOURS)].items()}
        doc = self.post(f"{harness.PUBLIC_BASE_URL}/webhooks/twilio/voice", "answer", "answer", CallStatus="ringing")
        outcome, path = "unfinished", []
        for _ in range(MAX_STEPS):
            if doc is None:
                outcome = "error"
                break
            gather, record = doc.find("Gather"), doc.find("Record")
            if record is not None and step_base(record.get("action", "")) == "fallback":
                with self.result.lock:
                    self.result.fallbacks.append(self.step)
                outcome = "fallback"
                break
            if gather is None and record is None:
                if doc.find("Hangup") is not None:
                    outcome = "confirmed" if self.step == "confirm" else f"ended after {self.step}"
                    break
                redirect = doc.find("Redirect")
                if redirect is not None and doc.find("Pause") is not None:  # "still being answered"
                    with self.result.lock:
                        self.result.retries += 1
                    doc = self.post(redirect.text, "key", self.step, Digits=self.keys)
                    continue
                self._error(f"after {self.step}: no Gather, Record or Hangup")
                outcome = "error"
                break
            time.sleep(self.interval)  # the caller listens, then presses (or speaks)
            if record is not None:
                self.step = step_base(record.get("action", ""))
                rec = f"RE{uuid.uuid4().hex}"
                doc = self.post(record.get("action"), "record", self.step, RecordingSid=rec,
                                RecordingUrl=f"https://api.twilio.com/2010-04-01/Accounts/{harness.ACCOUNT_SID}"
                                             f"/Recordings/{rec}",
                                RecordingDuration=str(RECORD_SECONDS.get(self.step, 10)), Digits="#")
                path.append(f"{self.step}:rec")
                continue
            self.step = step_base(gather.get("action", ""))
            pending = detours.get(self.step)
            self.keys = pending.pop(0) if pending else (LANGUAGE_KEY[self.lang] if self.step == "language"
                                                        else KEYS.get(self.step, "1"))
            doc = self.post(gather.get("action"), "key", self.step, Digits=self.keys)
            path.append(f"{self.step}:{self.keys}")
        if outcome not in ("error",):
            time.sleep(min(self.interval, 1.0))
            self.post(f"{harness.PUBLIC_BASE_URL}/webhooks/twilio/voice/status", "status", "status",
                      CallStatus="completed", CallDuration="60")
        with self.result.lock:
            self.result.calls[self.sid] = outcome
            line = " > ".join(path) + f" => {outcome}"
            self.result.paths[line] = self.result.paths.get(line, 0) + 1
        return outcome


def calls_phase(stack: VoiceStack, args, result: Result, callers: int, calls_each: int, interval: float,
                first_number: int = 0, stagger: bool = True) -> None:
    def run(i: int) -> None:
        if stagger:  # the callers do not press in step: spread over one interval
            time.sleep(interval * i / max(1, callers))
        caller = Caller(stack.web_url, f"{CALLER_PREFIX}{first_number + i:06d}", LANGS[i % len(LANGS)],
                        interval, result)
        for n in range(calls_each):
            caller.call(i + n)
    threads = [threading.Thread(target=run, args=(i,), daemon=True) for i in range(callers)]
    for t in threads:
        t.start()
    harness.join(threads, 3600)


def check_alerts(stack: VoiceStack, result: Result) -> dict:
    """Each confirmed call's alert, from the database."""
    from sqlalchemy import bindparam, text

    sids = [sid for sid, outcome in result.calls.items() if outcome == "confirmed"]
    rows = []
    if sids:
        with stack.engine.connect() as conn:
            rows = conn.execute(text(
                "SELECT c.call_sid, c.status, a.status, a.channel FROM calls c LEFT JOIN alerts a ON a.id = c.alert_id "
                "WHERE c.call_sid IN :sids").bindparams(bindparam("sids", expanding=True)), {"sids": sids}).all()
    good = sum(1 for _, _, status, channel in rows if status == "new" and channel == "voice")
    with stack.engine.connect() as conn:
        voice_alerts = dict(conn.execute(text("SELECT status, count(*) FROM alerts WHERE channel = 'voice' "
                                              "GROUP BY status")).all())
        call_rows = dict(conn.execute(text("SELECT status, count(*) FROM calls GROUP BY status")).all())
    return {"confirmed_calls": len(sids), "with_new_voice_alert": good,
            "missing_or_wrong": len(sids) - good, "voice_alerts_by_status": voice_alerts,
            "calls_by_status": call_rows}


def stats(values: list[float]) -> dict:
    return {"count": len(values), "p50_s": bb.percentile(values, 50), "p90_s": bb.percentile(values, 90),
            "p99_s": bb.percentile(values, 99), "max_s": round(max(values), 3) if values else None}


# ============================================================================ beeps and call-backs

def callbacks_phase(stack: VoiceStack, count: int, timeout: float = 600) -> dict:
    from sqlalchemy import text

    stack.standins.reset()
    validator = RequestValidator(harness.AUTH_TOKEN)
    url = f"{harness.PUBLIC_BASE_URL}/webhooks/twilio/voice"
    beeps: dict[str, float] = {}  # number -> when its beep was sent
    answers: list[float] = []
    errors: list[str] = []
    lock = threading.Lock()
    numbers = [f"{BEEPER_PREFIX}{i:06d}" for i in range(count)]

    def lane(mine: list[str]) -> None:
        http = requests.Session()
        for number in mine:
            params = {"CallSid": f"CA{uuid.uuid4().hex}", "AccountSid": harness.ACCOUNT_SID, "From": number,
                      "To": BEEP_LINE, "CallStatus": "ringing", "Direction": "inbound"}
            sent, started = time.time(), time.perf_counter()
            try:
                response = http.post(stack.web_url + "/webhooks/twilio/voice", data=params, timeout=30,
                                     headers={"X-Twilio-Signature": validator.compute_signature(url, params)})
                ok = response.status_code == 200 and ET.fromstring(response.content).find("Reject") is not None
            except (requests.RequestException, ET.ParseError) as exc:
                ok, response = False, type(exc).__name__
            took = time.perf_counter() - started
            with lock:
                beeps[number] = sent
                answers.append(took)
                if not ok:
                    errors.append(f"beep: {getattr(response, 'status_code', response)}")
    threads = [threading.Thread(target=lane, args=(numbers[i::BEEP_THREADS],), daemon=True)
               for i in range(BEEP_THREADS)]
    for t in threads:
        t.start()
    harness.join(threads, timeout)
    harness.wait_until(lambda: len(stack.standins.calls(BEEPER_PREFIX)) >= count, timeout, 0.5)
    time.sleep(2)  # late duplicates, if any, and the status callbacks
    dials = stack.standins.calls(BEEPER_PREFIX)
    first_dial: dict[str, float] = {}
    for at, to, _ in sorted(dials):
        first_dial.setdefault(to, at)
    delays = [first_dial[n] - beeps[n] for n in numbers if n in first_dial and n in beeps]
    first_beep = min(beeps.values()) if beeps else None
    last_dial = max(first_dial.values()) if first_dial else None
    span = (last_dial - first_beep) if first_beep and last_dial else None
    dial_times = sorted(first_dial.values())
    harness.wait_until(lambda: bb.db_scalar(stack, "SELECT count(*) FROM callbacks WHERE status IN "
                                                   "('queued', 'dialing', 'calling')")[0] == 0, 30, 0.5)
    with stack.engine.connect() as conn:
        statuses = dict(conn.execute(text("SELECT status, count(*) FROM callbacks GROUP BY status")).all())
    return {"beeps": count, "beep_errors": errors[:10], "beep_error_count": len(errors),
            "beep_answer": stats(answers),
            "posting_s": round(max(beeps.values()) - first_beep, 2) if beeps else None,
            "dials": len(dials), "dialled_numbers": len(first_dial), "duplicate_dials": len(dials) - len(first_dial),
            "dials_per_s": round(len(first_dial) / span, 1) if span else None,
            "dials_per_s_first_to_last_dial": round((len(dial_times) - 1) / (dial_times[-1] - dial_times[0]), 1)
            if len(dial_times) > 1 and dial_times[-1] > dial_times[0] else None,
            "first_beep_to_last_dial_s": round(span, 2) if span else None,
            "delay": {"p50_s": bb.percentile(delays, 50), "p99_s": bb.percentile(delays, 99),
                      "max_s": round(max(delays), 3) if delays else None},
            "callbacks_by_status": statuses}


# ============================================================================ load, memory, report

class LoadSampler(threading.Thread):
    def __init__(self):
        super().__init__(daemon=True)
        self.samples: list[tuple[float, float, float]] = []
        self.stopping = threading.Event()

    def run(self) -> None:
        while True:
            self.samples.append(os.getloadavg())
            if self.stopping.wait(5):
                return

    def finish(self) -> dict:
        self.stopping.set()
        self.join(10)
        return {"max_1min": round(max(s[0] for s in self.samples), 2),
                "mean_1min": round(sum(s[0] for s in self.samples) / len(self.samples), 2)}


def log_problems(logs: Path) -> dict[str, int]:
    """WARNING and ERROR lines of the web app's and workers' logs, counted by their text with
    digits and ids taken out (the service's logs carry no numbers; masked ones stay masked)."""
    import re

    seen: dict[str, int] = {}
    for path in sorted(logs.glob("web.log")) + sorted(logs.glob("worker*.log")):
        for line in path.read_text(errors="replace").splitlines():
            if " WARNING " in line or " ERROR " in line or "Traceback" in line:
                text = re.sub(r"\d+", "N", line.split(" ", 2)[-1])[:160]
                key = f"{path.stem.rstrip('0123456789')}: {text}"
                seen[key] = seen.get(key, 0) + 1
    return seen


def uptime() -> str:
    try:
        return subprocess.run(["uptime"], capture_output=True, text=True, timeout=5).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "load average: " + ", ".join(f"{x:.2f}" for x in os.getloadavg())


def measured(stack: VoiceStack, name: str, run) -> dict:
    """Run a phase with the load, CPU and memory of every part watched."""
    out = {"phase": name, "uptime_before": uptime()}
    loads, cpu_before = LoadSampler(), bb.cpu_snapshot(stack.roots())
    memory = bb.MemorySampler(stack.web_processes() + stack.workers)
    loads.start(), memory.start()
    started = time.time()
    out.update(run())
    out["elapsed_s"] = round(time.time() - started, 1)
    out["cpu_s"] = bb.cpu_used(cpu_before, bb.cpu_snapshot(stack.roots()))
    out["memory"] = memory.finish()
    out["load_during"] = loads.finish()
    out["uptime_after"] = uptime()
    return out


def print_report(figures: dict) -> None:
    print("\n== bench_voice ==")
    a = figures["args"]
    print(f"machine: {os.cpu_count()} cores; {a['web_workers']} web workers, {a['workers']} RQ workers; "
          f"prompts: {'placeholders' if a['prompts'] else 'none'}")
    calls = figures.get("calls")
    if calls:
        print(f"\n[calls] {a['callers']} callers x {a['calls_per_caller']} calls, a webhook every {a['interval']} s; "
              f"{calls['elapsed_s']} s")
        rows = [("webhook", "count", "p50 s", "p90 s", "p99 s", "max s")]
        for kind in ("answer", "key", "record", "steps (all three)", "status"):
            s = calls["latency"][kind]
            rows.append((kind, str(s["count"]), bb.fmt(s["p50_s"]), bb.fmt(s["p90_s"]), bb.fmt(s["p99_s"]),
                         bb.fmt(s["max_s"])))
        widths = [max(len(r[i]) for r in rows) for i in range(6)]
        for j, row in enumerate(rows):
            print("  " + "  ".join(c.ljust(widths[i]) for i, c in enumerate(row)))
            if j == 0:
                print("  " + "  ".join("-" * w for w in widths))
        p99 = calls["latency"]["steps (all three)"]["p99_s"]
        print(f"  target p99 < {TARGET_P99_S:g} s: {'met' if p99 is not None and p99 < TARGET_P99_S else 'MISSED'}"
              f" ({bb.fmt(p99)} s); answers >= {TARGET_P99_S:g} s: {calls['slow_count']}"
              + (f" (slowest: {calls['slowest']})" if calls["slowest"] else ""))
        print(f"  calls: {calls['outcomes']}; errors {calls['error_count']} {calls['errors'][:5]}; fallbacks "
              f"{calls['fallback_count']} {calls['fallbacks'][:5]}; 'still answering' retries {calls['retries']}")
        for line, n in sorted(calls["paths"].items(), key=lambda x: -x[1]):
            print(f"  path x{n}: {line}")
        print(f"  audio: <Play> in {calls['with_play']} of {calls['documents']} TwiML answers")
        c = calls["alerts"]
        print(f"  database: {c['with_new_voice_alert']} of {c['confirmed_calls']} confirmed calls have their alert "
              f"(status new, channel voice); voice alerts by status {c['voice_alerts_by_status']}; "
              f"calls by status {c['calls_by_status']}")
        _print_common(calls)
    cb = figures.get("callbacks")
    if cb:
        print(f"\n[callbacks] {cb['beeps']} beeps by {BEEP_THREADS} threads, CALLBACK_DELAY=0, CALLBACK_RATE=0; "
              f"{cb['elapsed_s']} s")
        s = cb["beep_answer"]
        print(f"  beep answer (<Reject/>): p50 {bb.fmt(s['p50_s'])} / p90 {bb.fmt(s['p90_s'])} / p99 "
              f"{bb.fmt(s['p99_s'])} / max {bb.fmt(s['max_s'])} s; errors {cb['beep_error_count']} "
              f"{cb['beep_errors'][:3]}; all posted in {cb['posting_s']} s")
        print(f"  dials received: {cb['dials']} for {cb['dialled_numbers']} numbers (duplicates "
              f"{cb['duplicate_dials']}); {bb.fmt(cb['dials_per_s'])} dials/s from the first beep to the last dial "
              f"({cb['first_beep_to_last_dial_s']} s), {bb.fmt(cb['dials_per_s_first_to_last_dial'])} dials/s "
              f"first to last dial")
        d = cb["delay"]
        print(f"  beep -> dial: p50 {bb.fmt(d['p50_s'])} / p99 {bb.fmt(d['p99_s'])} / max {bb.fmt(d['max_s'])} s; "
              f"call-backs by status {cb['callbacks_by_status']}")
        _print_common(cb)


    problems = figures.get("log_problems") or {}
    print(f"\nwarnings and errors in the web and worker logs: {sum(problems.values())}")
    for line, n in sorted(problems.items(), key=lambda x: -x[1])[:8]:
        print(f"  x{n} {line}")


def _print_common(phase: dict) -> None:
    print("  peak RSS (VmHWM) MB: " + ", ".join(f"{k} {bb.fmt(v['peak_mb'])}" for k, v in phase["memory"].items()))
    print("  CPU s: " + ", ".join(f"{k} {v}" for k, v in phase["cpu_s"].items()) + f" (wall {phase['elapsed_s']} s)")
    print(f"  load: before `{phase['uptime_before']}`; during: 1-min max {phase['load_during']['max_1min']}, "
          f"mean {phase['load_during']['mean_1min']}; after `{phase['uptime_after']}`")


# ============================================================================ main

def arguments(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--callers", type=int, default=20, help="simultaneous callers")
    p.add_argument("--interval", type=float, default=5.0, help="s between a caller's webhooks")
    p.add_argument("--calls-per-caller", type=int, default=2)
    p.add_argument("--callbacks", type=int, default=200, help="beeps to call back (0: skip that phase)")
    p.add_argument("--web-workers", type=int, default=2)
    p.add_argument("--workers", type=int, default=2, help="RQ worker processes")
    p.add_argument("--no-prompts", dest="prompts", action="store_false", help="no prompt placeholders")
    p.add_argument("--json", type=Path)
    p.add_argument("--keep", action="store_true", help="keep the work folder (logs) afterwards")
    p.add_argument("--standin-child", type=Path, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.callers < 0 or args.calls_per_caller < 1 or args.callbacks < 0 or args.interval < 0:
        p.error("--callers, --callbacks and --interval non-negative; --calls-per-caller positive")
    if args.callers > 999_999 or args.callbacks > 999_999:
        p.error("at most 999999 callers or beeps (the fake ranges)")
    # what bench_broadcast's stack reads
    args.rasa, args.senders, args.worker_queues = False, args.workers, "all"
    return args


def main(argv=None) -> int:
    args = arguments(argv)
    if args.standin_child:
        return standin_child(args.standin_child)
    reason = harness.postgres_missing()
    if reason:
        print(f"needs a private PostgreSQL cluster: {reason}", file=sys.stderr)
        return 2
    workdir = Path(tempfile.mkdtemp(prefix="alerte-bench-voice-"))
    stack = VoiceStack(workdir, args)
    figures: dict = {"args": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()
                              if k not in ("standin_child", "rasa", "senders", "worker_queues")},
                     "cores": os.cpu_count()}
    try:
        print("starting the stack (no Rasa)...", flush=True)
        stack.start()
        warm = Result()  # each web worker's first use (flow, gazetteer, prompts): not counted
        calls_phase(stack, args, warm, 2 * args.web_workers, 1, 0.0, first_number=900_000, stagger=False)
        print(f"  warm-up calls (not counted): {list(warm.calls.values())}"
              + (f"; fell back at {warm.fallbacks}" if warm.fallbacks else "")
              + (f"; errors {warm.errors}" if warm.errors else ""), flush=True)
        if args.callers:
            print(f"calls: {args.callers} callers x {args.calls_per_caller}, every {args.interval} s...", flush=True)
            result = Result()

            def run_calls():
                calls_phase(stack, args, result, args.callers, args.calls_per_caller, args.interval)
                steps = result.times["answer"] + result.times["key"] + result.times["record"]
                outcomes: dict[str, int] = {}
                for outcome in result.calls.values():
                    outcomes[outcome] = outcomes.get(outcome, 0) + 1
                slow = sorted(result.slow, reverse=True)
                return {"latency": {**{k: stats(v) for k, v in result.times.items()},
                                    "steps (all three)": stats(steps)},
                        "outcomes": outcomes, "errors": result.errors, "error_count": len(result.errors),
                        "fallbacks": result.fallbacks, "fallback_count": len(result.fallbacks),
                        "retries": result.retries, "paths": result.paths, "documents": result.documents, "with_play": result.with_play,
                        "slow_count": len(slow), "slowest": slow[:5]}
            figures["calls"] = measured(stack, "calls", run_calls)
            figures["calls"]["alerts"] = check_alerts(stack, result)
            if args.json:
                args.json.write_text(json.dumps(figures, indent=2, default=str))
        if args.callbacks:
            print(f"callbacks: {args.callbacks} beeps...", flush=True)
            figures["callbacks"] = measured(stack, "callbacks", lambda: callbacks_phase(stack, args.callbacks))
        figures["log_problems"] = log_problems(stack.logs)
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
