"""The gateway fault cases' own pieces: the channels they configure, a reporter on
Africa's Talking, an SMSC that keeps what it could not deliver, and the checks that
read the gateway's record instead of the Twilio stand-in's.

- ``channels_json``: the Twilio channel the other cases use (still the default, same
  route and credentials), plus an Africa's Talking channel and an SMPP channel pointing
  at local stand-ins;
- ``AtPhones``: Africa's Talking callbacks (form fields, HTTP Basic credentials) to the
  running web app;
- ``HoldingSmsc``: tests/smpp_standin.py's SMSC, plus what a real SMSC does with mobile
  originated messages: each is kept until a deliver_sm_resp with status 0; one sent
  while no client is bound waits for the next bind; one delivered on a link that dropped
  before its answer is delivered again on the next bind (a new sequence number);
- ``WireSend`` and ``gateway_problems``: every promise, from the database and what the
  gateway took.
"""

from __future__ import annotations

import base64
import json
import threading
import time
import uuid
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timezone

import requests
from smpplib import smpp

from service.channels import smpp as codec
from tests.faults import harness
from tests.smpp_standin import SmppStandin

AT_USER, AT_PASSWORD = "at", "faults-at-callback-secret"
AT_USERNAME, AT_KEY, AT_SHORT_CODE = "alerte", "faults-at-api-key", "12345"
AT_WEBHOOK = "/webhooks/africastalking/sms"
SMPP_PASSWORD, SMPP_SHORT_CODE = "faults01", "1234"


def channels_json(twilio_url: str, at_url: str, smsc_port: int) -> str:
    return json.dumps([
        {"name": "twilio", "kind": "twilio", "default": True, "account_sid": harness.ACCOUNT_SID,
         "auth_token": harness.AUTH_TOKEN, "from": harness.SERVICE_NUMBER, "api_base": twilio_url},
        {"name": "africastalking", "kind": "africastalking", "username": AT_USERNAME, "api_key": AT_KEY,
         "short_code": AT_SHORT_CODE, "callback_user": AT_USER, "callback_password": AT_PASSWORD,
         "api_base": at_url, "timeout": 10},
        {"name": "smpp", "kind": "smpp", "host": "127.0.0.1", "port": smsc_port, "system_id": "alerte",
         "password": SMPP_PASSWORD, "source_addr": SMPP_SHORT_CODE, "numbers": [SMPP_SHORT_CODE],
         "enquire_link_interval": 1, "reconnect_max": 1, "response_timeout": 3, "throughput": 20},
    ])


# ---------------------------------------------------------------------------- Africa's Talking


@dataclass
class Callback:
    number: str
    body: str
    message_id: str
    status: int | None = None
    error: str | None = None
    seconds: float | None = None


class AtPhones:
    """Africa's Talking's incoming-message callbacks to the web app, each one kept."""

    def __init__(self, web_url: str):
        self.url = web_url.rstrip("/") + AT_WEBHOOK
        self.auth = "Basic " + base64.b64encode(f"{AT_USER}:{AT_PASSWORD}".encode()).decode()
        self.callbacks: list[Callback] = []
        self.lock = threading.Lock()

    def post(self, number: str, body: str, timeout: float = 40) -> Callback:
        callback = Callback(number, body, str(uuid.uuid4()))
        with self.lock:
            self.callbacks.append(callback)
        form = {"from": number, "to": AT_SHORT_CODE, "text": body, "id": callback.message_id,
                "date": datetime.now(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
                "networkCode": "63001"}
        started = time.monotonic()
        try:
            response = requests.post(self.url, data=form, headers={"Authorization": self.auth}, timeout=timeout)
            callback.status = response.status_code
            if response.status_code != 200:
                callback.error = f"HTTP {response.status_code}: {response.text[:200]!r}"
        except requests.RequestException as exc:
            callback.error = f"{type(exc).__name__}: {exc}"[:300]
        callback.seconds = time.monotonic() - started
        return callback

    def round(self, messages: dict[str, str]) -> list[threading.Thread]:
        """One message from each of these numbers at once; join the threads to wait."""
        threads = [threading.Thread(target=self.post, args=(n, b), daemon=True) for n, b in messages.items()]
        for thread in threads:
            thread.start()
        return threads


# ---------------------------------------------------------------------------- SMPP


@dataclass
class Mo:
    """One mobile originated message as the SMSC holds it until it is acknowledged."""

    source: str  # digits, no +
    text: str
    sequences: list[int] = field(default_factory=list)  # every deliver_sm of it
    connection: object = None  # the link its last deliver_sm went on
    acked: bool = False
    refused: list[int] = field(default_factory=list)  # non-zero deliver_sm_resp statuses
    sent_at: float = 0.0


class HoldingSmsc(SmppStandin):
    """An SMSC that keeps each message until it is acknowledged (see the module docstring)."""

    RETRY_REFUSED = 1.0  # s before delivering again a message answered with an error

    def __init__(self, password: str = SMPP_PASSWORD):
        super().__init__(password=password)
        self.mos: list[Mo] = []
        self._by_sequence: dict[int, Mo] = {}
        self._pump_stop = threading.Event()
        self.submits_seen = 0  # submit_sm read (before any `delay`: submits has them after)

    def start(self) -> "HoldingSmsc":
        super().start()
        threading.Thread(target=self._pump, daemon=True).start()
        return self

    def stop(self) -> None:
        self._pump_stop.set()
        super().stop()

    def reset(self) -> None:
        with self._changed:
            self.mos.clear()
            self._by_sequence.clear()
            self.submits.clear()
            self.acks.clear()
            self.delay = 0.0
            self.drop_after_submit = 0
            self.submits_seen = 0
            self._answers.clear()

    def send_mo(self, source: str, text: str) -> Mo:
        """A reporter texts the short code: delivered now if bound, else on the next bind."""
        mo = Mo(source.lstrip("+"), text, sent_at=time.time())
        with self._changed:
            self.mos.append(mo)
            self._changed.notify_all()
        return mo

    def _submit(self, pdu, connection) -> None:
        with self._changed:
            self.submits_seen += 1
            self._changed.notify_all()
        super()._submit(pdu, connection)

    def bound_now(self) -> bool:
        connection = self.connection
        return connection is not None and connection.bound

    def unacknowledged(self) -> list[Mo]:
        return [m for m in self.mos if not m.acked]

    def _pump(self) -> None:
        """Deliver what waits, in order, on the bound link; notice acknowledgements."""
        while not self._pump_stop.wait(0.05):
            with self._changed:
                for sequence, status in list(self.acks.items()):
                    mo = self._by_sequence.pop(sequence, None)
                    if mo is None:
                        continue
                    if status == 0:
                        mo.acked = True
                    else:
                        mo.refused.append(status)
                        mo.connection = ("refused", time.monotonic())  # delivered again later
                connection = self.connection
                due = []
                if connection is not None and connection.bound:
                    for mo in self.mos:
                        if mo.acked or mo.connection is connection:
                            continue
                        if isinstance(mo.connection, tuple) and time.monotonic() - mo.connection[1] < \
                                self.RETRY_REFUSED:
                            continue
                        due.append(mo)
            for mo in due:
                if not self._deliver_on(connection, mo):
                    break

    def _deliver_on(self, connection, mo: Mo) -> bool:
        data_coding, units = codec.encode_units(mo.text)
        pdu = smpp.make_pdu("deliver_sm", client=self._sequence, service_type="", source_addr_ton=1,
                            source_addr_npi=1, source_addr=mo.source, dest_addr_ton=0, dest_addr_npi=0,
                            destination_addr=SMPP_SHORT_CODE, esm_class=0, data_coding=data_coding,
                            short_message=b"".join(units))
        with self._changed:
            self._by_sequence[pdu.sequence] = mo
            mo.sequences.append(pdu.sequence)
            mo.connection = connection
        try:
            self._write(pdu, connection)
            return True
        except OSError:  # the link just dropped: delivered again on the next bind
            return False


def smsc_sends(smsc: SmppStandin) -> list["WireSend"]:
    """The submit_sm the SMSC accepted, long texts put together from their UDH parts."""
    sends, parts = [], {}
    for i, s in enumerate(list(smsc.submits)):
        if s.status != 0:
            continue
        if s.concat is None:
            sends.append(WireSend(s.message_id, "+" + s.destination, s.text, float(i)))
            continue
        reference, total, number = s.concat
        group = parts.setdefault((s.destination, reference, total), {"first": i, "texts": {}, "ids": {}})
        group["texts"][number], group["ids"][number] = s.text, s.message_id
        if len(group["texts"]) == total:
            del parts[(s.destination, reference, total)]
            sends.append(WireSend(group["ids"][1], "+" + s.destination,
                                  "".join(group["texts"][n] for n in range(1, total + 1)), float(group["first"])))
    return sorted(sends, key=lambda w: w.at)


# ---------------------------------------------------------------------------- checks


@dataclass
class WireSend:
    """One message the gateway took: its id, recipient (E.164), text, and when (any
    increasing measure: the order it was taken in)."""

    id: str | None
    to: str
    body: str
    at: float


def is_unknown_outcome(row) -> bool:
    return row.status == "failed" and "unknown_outcome" in (row.failure_reason or "")


def gateway_problems(observer, sends: list[WireSend], expected: list[tuple[str, str]],
                     rasa_url: str | None = None) -> list[str]:
    """Every broken promise, from the database and what the gateway took:

    - each (number, text) a reporter sent is stored exactly once, and nothing else;
    - each inbound message ends processed (played once in Rasa) or failed with a reason;
    - each processed message has a real reply (not just "received") that reached the
      gateway: sent (its id is one the gateway gave), or failed "unknown_outcome" after
      the gateway took it once;
    - nothing left queued or sending; a reply recorded once per message it answers;
    - the gateway took no text more often than rows say it was sent, and each id it
      gave belongs to one row;
    - each reporter's messages processed, and their real replies taken, in the order
      the messages were written.
    """
    problems: list[str] = []
    rows = observer.rows()
    people = observer.reporters()
    number_of = {rid: p["number"] for rid, p in people.items()}
    received = harness.received_texts()
    inbound = [r for r in rows if r.direction == "in"]
    outbound = [r for r in rows if r.direction == "out"]
    by_id = {r.id: r for r in rows}

    stored = Counter((number_of.get(r.reporter_id), r.body) for r in inbound)
    wanted = Counter(expected)
    for (number, body), count in wanted.items():
        if stored.get((number, body), 0) != count:
            problems.append(f"{body[:25]!r} from ...{number[-4:]} sent {count} time(s), stored "
                            f"{stored.get((number, body), 0)}")
    for (number, body), count in stored.items():
        if (number, body) not in wanted:
            problems.append(f"{body[:25]!r} from ...{(number or '')[-4:]} stored {count} time(s), never sent")

    turns = harness.tracker_turns(rasa_url, [p["key"] for p in people.values()])
    replies = defaultdict(list)
    for row in outbound:
        replies[row.reply_to_id].append(row)
    wire_ids = {w.id for w in sends if w.id}
    wire = Counter((w.to, w.body) for w in sends)
    for row in inbound:
        label = f"inbound #{row.id} ({row.body[:20]!r})"
        if row.status not in harness.IN_FINAL:
            problems.append(f"{label} left {row.status} after {row.attempts} attempts")
        elif row.status == "failed" and not row.failure_reason:
            problems.append(f"{label} failed without a failure_reason")
        if turns.get(row.id, 0) > 1:
            problems.append(f"{label} was played {turns[row.id]} times in Rasa")
        if row.status != "processed":
            continue
        real = [o for o in replies.get(row.id, []) if o.body not in received]
        if not real:
            problems.append(f"{label} processed but never answered "
                            f"(only {[o.status for o in replies.get(row.id, [])]})")
        elif not any((o.status in harness.OUT_SENT and o.provider_id in wire_ids)
                     or (is_unknown_outcome(o) and wire.get((number_of.get(o.reporter_id), o.body)))
                     for o in real):
            problems.append(f"{label}: its answer never reached the gateway "
                            f"({[(o.status, o.failure_reason) for o in real]})")

    rows_by_provider_id = defaultdict(list)
    for row in outbound:
        if row.provider_id:
            rows_by_provider_id[row.provider_id].append(row)
        if row.status in ("queued", "sending"):
            problems.append(f"outbound #{row.id} still {row.status}")
        if row.status in harness.OUT_SENT and row.provider_id not in wire_ids:
            problems.append(f"outbound #{row.id} is {row.status} as {row.provider_id!r}, which the gateway never gave")
        if row.status == "failed" and not row.failure_reason:
            problems.append(f"outbound #{row.id} failed without a failure_reason")
    for reply_to, group in replies.items():
        reached = Counter(o.body for o in group if o.status in harness.OUT_SENT | {"sending"} or is_unknown_outcome(o))
        for body, count in reached.items():
            if count > 1:
                problems.append(f"reply to #{reply_to} ({body[:30]!r}) recorded {count} times "
                                f"({[o.status for o in group if o.body == body]})")
    may = Counter((number_of.get(o.reporter_id), o.body) for o in outbound
                  if o.status in harness.OUT_SENT | {"sending"} or is_unknown_outcome(o))
    for (to, body), count in wire.items():
        if count > may.get((to, body), 0):
            problems.append(f"the gateway took {body[:30]!r} {count} times for ...{to[-4:]} but "
                            f"{may.get((to, body), 0)} row(s) may have sent it")
    for w in sends:
        if w.id and len(rows_by_provider_id.get(w.id, [])) > 1:
            problems.append(f"gateway id {w.id} on {len(rows_by_provider_id[w.id])} rows")
        if w.id and w.id not in rows_by_provider_id and not any(
                is_unknown_outcome(o) and number_of.get(o.reporter_id) == w.to and o.body == w.body
                for o in outbound):
            problems.append(f"gateway message {w.id} ({w.body[:30]!r}) belongs to no outbound row")

    by_reporter = defaultdict(list)
    for row in inbound:
        if row.status == "processed" and row.processed_at and row.created_at:
            by_reporter[row.reporter_id].append(row)
    for rows_of in by_reporter.values():
        rows_of.sort(key=lambda r: (r.created_at, r.id))
        for before, after in zip(rows_of, rows_of[1:]):
            if after.processed_at < before.processed_at:
                problems.append(f"inbound #{after.id} ({after.body[:20]!r}) processed before #{before.id} "
                                f"({before.body[:20]!r})")
    # the real replies as the gateway took them, per reporter: in the order of what they answer
    row_of_send = {}
    for w in sends:
        candidates = rows_by_provider_id.get(w.id or "", []) or [
            o for o in outbound if is_unknown_outcome(o) and number_of.get(o.reporter_id) == w.to and o.body == w.body]
        if candidates:
            row_of_send[id(w)] = candidates[0]
    answered_order = defaultdict(list)
    for w in sorted(sends, key=lambda w: w.at):
        row = row_of_send.get(id(w))
        if row is None or row.body in received or row.reply_to_id not in by_id:
            continue
        answered_order[w.to].append(by_id[row.reply_to_id])
    for to, answered in answered_order.items():
        for before, after in zip(answered, answered[1:]):
            if (after.created_at, after.id) < (before.created_at, before.id):
                problems.append(f"...{to[-4:]}: the answer to #{after.id} ({after.body[:20]!r}) reached the "
                                f"gateway before the answer to #{before.id} ({before.body[:20]!r})")
    return problems


def rows_table(observer, limit: int = 80) -> str:
    try:
        rows = observer.rows()
    except Exception as exc:  # noqa: BLE001
        return f"(rows unavailable: {type(exc).__name__})"
    at = lambda t: t.strftime("%H:%M:%S.%f")[:-3] if t else "-"  # noqa: E731
    lines = ["id  dir status     rep reply att created      processed    provider_id  reason / body"]
    for r in rows[-limit:]:
        lines.append(f"{r.id:<3} {r.direction:<3} {r.status:<10} {r.reporter_id or '-':<3} {r.reply_to_id or '-':<5} "
                     f"{r.attempts:<3} {at(r.created_at)[:12]:<12} {at(r.processed_at)[:12]:<12} "
                     f"{(r.provider_id or '-')[:12]:<12} {(r.failure_reason or '')[:30]} {r.body[:28]!r}")
    return "\n".join(lines)
