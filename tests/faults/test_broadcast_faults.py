"""Faults in the middle of a safety broadcast: the real worker processes and Redis broken
while a broadcast goes out, then checked from the database (PostgreSQL where the session
has it) and from what the Twilio stand-in took (each send with its arrival time).

The session's stack is given, for this module (Stack.configure), a Twilio channel with a
low `send_rate` (RATE segments per second, a bucket of one second: BURST) and an Africa's
Talking channel (a reporter whose replies the worker sends). Subscribers are imported
through the real API (POST /api/v1/subscribers, text/csv) and broadcasts created through
POST /api/v1/broadcasts, a few hundred recipients each, so a broadcast lasts several
seconds and can be broken in the middle. Every text is one GSM-7 segment, unique to its
case, so the stand-in's record tells which send belongs to which broadcast.

What is checked, case by case:
 1. a worker SIGKILLed while it is in the middle of a chunk (the stand-in holds its
    answers), restarted: no more than a chunk was in flight, each subscriber got exactly
    one copy, in their language, every delivery ends sent, the broadcast ends sent;
 2. Redis SIGKILLed and started again empty mid-broadcast: the same;
 3. two worker processes send one broadcast: in no window of W seconds did the stand-in
    take more than RATE x (W + the longest time a send took from its claim to the wire)
    + BURST segments, nor were more than RATE x (W + STAMP) + BURST claimed (upper bounds
    only);
 4. cancel mid-broadcast: after the cancel's answer at most one chunk (the one in
    flight) reaches the stand-in, nothing is claimed after it, every other delivery
    ends canceled;
 5. subscribers text STOP (signed webhook) mid-broadcast: nothing reaches them after
    their STOP was answered, and a delivery claimed after it ends suppressed;
 6. a reporter texts during a big broadcast: the answer (sent by the worker) reaches the
    gateway before the broadcast's last send, and at most one sender slice of
    deliveries is claimed between the reporter's message and its answer.
Waits are bounded (they fail when the service never settles), never lower bounds on speed.
"""

from __future__ import annotations

import json
import math
import time
import uuid
from collections import Counter
from dataclasses import dataclass
from datetime import datetime

import pytest
import requests

from service.channels.base import Channel
from tests.africastalking_standin import AfricasTalkingStandin
from tests.faults import gateways
from tests.faults.conftest import CONVERGE
from tests.faults.gateways import AtPhones
from tests.faults.harness import (
    ACCOUNT_SID, API_TOKEN, AUTH_TOKEN, SERVICE_NUMBER, Proc, join, new_number, received_texts, spawn, tail,
    wait_until,
)

RATE = 25  # segments per second the Twilio channel may send
BURST = RATE * 1.0  # service/bucket.py: a full bucket holds one second of sending (BURST_SECONDS)
CHUNK = min(Channel.batch_size, int(BURST))  # a sender's chunk: min(batch_size, what a full bucket holds)
SLICE = 1.0  # BROADCAST_SLICE: s a sender job sends before queueing its continuation
# s a sender may be held up (a loaded machine) between taking its tokens in Redis and
# stamping its claim (claimed_at): the windows on claims allow for it. Under one chunk's
# worth (CHUNK / RATE = 1 s), so a limit not shared (twice the rate) is still caught.
STAMP = 0.5
LANGUAGES = ("fr", "sw", "ln")
BENI = "gn:219057"  # Beni town, Nord-Kivu (the gazetteer's key)
HEADERS = {"Authorization": f"Bearer {API_TOKEN}"}


def channels_json(twilio_url: str, at_url: str) -> str:
    """The Twilio channel of the other cases (same route, credentials, default), with a
    send rate; and Africa's Talking for the reporter of case 6."""
    return json.dumps([
        {"name": "twilio", "kind": "twilio", "default": True, "account_sid": ACCOUNT_SID,
         "auth_token": AUTH_TOKEN, "from": SERVICE_NUMBER, "api_base": twilio_url, "send_rate": RATE},
        {"name": "africastalking", "kind": "africastalking", "username": gateways.AT_USERNAME,
         "api_key": gateways.AT_KEY, "short_code": gateways.AT_SHORT_CODE, "callback_user": gateways.AT_USER,
         "callback_password": gateways.AT_PASSWORD, "api_base": at_url, "timeout": 10},
    ])


@pytest.fixture(scope="module")
def broadcast_stack(fault_stack):
    at = AfricasTalkingStandin(gateways.AT_USERNAME, gateways.AT_KEY)
    at.server.handle_error = lambda request, address: None
    at.start()
    fault_stack.ensure_running()
    fault_stack.configure(CHANNELS=channels_json(fault_stack.standin.url, at.url), BROADCAST_LEASE="10",
                          BROADCAST_SLICE=str(SLICE))
    fault_stack.at = at
    yield fault_stack
    try:
        fault_stack.ensure_running()
        fault_stack.configure(CHANNELS=None, BROADCAST_LEASE=None, BROADCAST_SLICE=None)
    finally:
        at.stop()


@pytest.fixture
def bc(broadcast_stack, service):
    """A clean case: the stack reset (service), the Africa's Talking stand-in emptied."""
    at = service.at
    with at.lock:
        at.sent.clear()
        at.requests.clear()
    yield service
    service.standin.hang = 0.0


# ---------------------------------------------------------------------------- the API


@dataclass
class Broadcast:
    id: int
    texts: dict[str, str]
    segments: int
    people: dict[str, str]  # number -> language

    def text_for(self, number: str) -> str:
        return self.texts[self.people[number]]


def api(s) -> requests.Session:
    http = requests.Session()
    http.headers.update(HEADERS)
    return http


def subscribe(s, count: int) -> dict[str, str]:
    """`count` new subscribers in Beni, languages in turn, imported as one CSV; number -> language."""
    people = {new_number(): LANGUAGES[i % 3] for i in range(count)}
    csv = "phone,language,place\n" + "".join(f"{n},{lang},{BENI}\n" for n, lang in people.items())
    response = api(s).post(s.web_url + "/api/v1/subscribers", params={"consent_note": "fault tests, no one real"},
                           data=csv.encode(), headers={"Content-Type": "text/csv"}, timeout=60)
    assert response.status_code == 200, response.text[:500]
    report = response.json()["report"]
    assert (report["created"], report["rejected"]) == (count, []), report
    return people


def start_broadcast(s, people: dict[str, str]) -> Broadcast:
    tag = uuid.uuid4().hex[:8]
    texts = {"fr": f"Exercice {tag}: route Beni-Kasindi dangereuse ce soir. Restez chez vous.",
             "sw": f"Zoezi {tag}: barabara Beni-Kasindi ni hatari leo usiku. Bakia nyumbani.",
             "ln": f"Exercice {tag}: nzela Beni-Kasindi ezali na likama lelo na butu. Bofanda na ndako."}
    response = api(s).post(s.web_url + "/api/v1/broadcasts", timeout=30, json={
        "texts": texts, "targets": {"all": True}, "priority": "urgent", "status": "Exercise"})
    assert response.status_code == 201, response.text[:500]
    out = response.json()
    assert out["recipients"] == len(people), out
    segments = {lang: out["languages"][lang]["segments"] for lang in texts}
    assert set(segments.values()) == {1}, segments  # the windows below count sends as segments
    return Broadcast(out["id"], texts, 1, people)


def cancel(s, broadcast: Broadcast) -> dict:
    response = api(s).post(f"{s.web_url}/api/v1/broadcasts/{broadcast.id}/cancel", timeout=30)
    assert response.status_code == 200, response.text[:500]
    return response.json()


# ---------------------------------------------------------------------------- what happened


@dataclass
class Send:
    sid: str
    to: str
    body: str
    at: float  # when the stand-in took it (epoch s)


@dataclass
class Row:
    id: int
    number: str | None
    status: str
    provider_id: str | None
    claimed_at: float | None
    attempts: int


def sends(s, broadcast: Broadcast) -> list[Send]:
    """What the stand-in took of this broadcast, in arrival order."""
    texts = set(broadcast.texts.values())
    out = [Send(m.sid, m.to, m.body, s.standin.time_of(m.sid) or 0.0) for m in s.standin.sends() if m.body in texts]
    return sorted(out, key=lambda m: m.at)


def _epoch(value: datetime | None) -> float | None:
    from tests.faults.harness import aware

    return aware(value).timestamp() if value is not None else None


def rows(s, broadcast: Broadcast) -> list[Row]:
    """The broadcast's deliveries, with their recipient's number."""
    from sqlalchemy import select

    from service.models import Message

    numbers = {rid: p["number"] for rid, p in s.observer.reporters().items()}
    with s.observer.engine.connect() as conn:
        found = conn.execute(select(Message.id, Message.reporter_id, Message.status, Message.provider_id,
                                    Message.claimed_at, Message.attempts)
                             .where(Message.broadcast_id == broadcast.id).order_by(Message.id)).all()
    return [Row(r.id, numbers.get(r.reporter_id), r.status, r.provider_id, _epoch(r.claimed_at), r.attempts or 0)
            for r in found]


def statuses(s, broadcast: Broadcast) -> Counter:
    from sqlalchemy import func, select

    from service.models import Message

    with s.observer.engine.connect() as conn:
        return Counter(dict(conn.execute(select(Message.status, func.count()).where(
            Message.broadcast_id == broadcast.id).group_by(Message.status)).all()))


def state(s, broadcast: Broadcast) -> dict:
    from sqlalchemy import select

    from service.models import Broadcast as Model

    with s.observer.engine.connect() as conn:
        row = conn.execute(select(Model.state, Model.fanout_done, Model.finished_at)
                           .where(Model.id == broadcast.id)).one()
    return {"state": row.state, "fanout_done": row.fanout_done, "finished_at": _epoch(row.finished_at)}


def settled(s, broadcast: Broadcast, final: str = "sent") -> bool:
    """The broadcast in its final state and nothing queued or in flight."""
    counts = statuses(s, broadcast)
    return state(s, broadcast)["state"] == final and not counts["queued"] and not counts["sending"]


def wait_settled(s, broadcast: Broadcast, final: str = "sent", extra: float = 0.0) -> float | None:
    """Seconds until settled, None if not within a bound that grows with the size (never
    an assertion on speed: a bound on waiting for a service that may never settle)."""
    started = time.monotonic()
    bound = CONVERGE + extra + 4 * len(broadcast.people) / RATE
    if wait_until(lambda: settled(s, broadcast, final), bound, 0.5):
        return time.monotonic() - started
    return None


def wait_for_sends(s, broadcast: Broadcast, count: int, timeout: float = 60) -> bool:
    return bool(wait_until(lambda: len(sends(s, broadcast)) >= count, timeout, 0.05))


def one_copy_each(s, broadcast: Broadcast, skip: set[str] = frozenset()) -> list[str]:
    """Every subscriber (but `skip`) got exactly one copy, in their language, that is the
    provider id on their delivery, and their delivery ends sent; nobody else got one."""
    problems = []
    taken = sends(s, broadcast)
    copies = Counter(m.to for m in taken)
    by_sid = {m.sid: m for m in taken}
    for number, lang in broadcast.people.items():
        if number in skip:
            continue
        if copies[number] != 1:
            problems.append(f"...{number[-4:]} ({lang}) got {copies[number]} copies")
    for m in taken:
        if m.to not in broadcast.people:
            problems.append(f"a copy went to ...{m.to[-4:]}, not a subscriber")
        elif m.body != broadcast.text_for(m.to):
            problems.append(f"...{m.to[-4:]} ({broadcast.people[m.to]}) got the text {m.body[:30]!r}")
    found = rows(s, broadcast)
    if len(found) != len(broadcast.people):
        problems.append(f"{len(found)} deliveries written for {len(broadcast.people)} subscribers")
    for row in found:
        if row.number in skip:
            continue
        if row.status not in ("sent", "delivered"):
            problems.append(f"delivery #{row.id} (...{(row.number or '')[-4:]}) ended {row.status}")
        elif row.provider_id not in by_sid or by_sid[row.provider_id].to != row.number:
            problems.append(f"delivery #{row.id} is {row.status} as {row.provider_id!r}, which the stand-in "
                            "did not take for that number")
    return problems


def report(s, broadcast: Broadcast, problems: list[str], note: str = "", extra_logs: str = "") -> None:
    if problems:
        shown = "\n  ".join(problems[:40]) + (f"\n  ... {len(problems) - 40} more" if len(problems) > 40 else "")
        pytest.fail(f"{len(problems)} problem(s); {note}; deliveries {dict(statuses(s, broadcast))}, "
                    f"broadcast {state(s, broadcast)}\n  {shown}\n{s.logs_tail()}{extra_logs}", pytrace=False)
    print(f"{note}; deliveries {dict(statuses(s, broadcast))}")


def busiest(times: list[float], window: float) -> int:
    """The most events in any [t, t + window] (t an event's time): a sliding window."""
    times = sorted(times)
    best, j = 0, 0
    for i, start in enumerate(times):
        while j < len(times) and times[j] <= start + window:
            j += 1
        best = max(best, j - i)
    return best


# ---------------------------------------------------------------------------- the cases


def test_worker_killed_mid_chunk_then_restarted(bc):
    """The worker is SIGKILLed while it waits for the stand-in's answers to a chunk (the
    stand-in took some of them, answers 2 s later): the chunk's deliveries are left
    `sending`, some at the provider, some never posted. Restarted, the sweep settles them
    from Twilio's record (sent, or queued again) and the senders go on."""
    s = bc
    people = subscribe(s, 200)
    b = start_broadcast(s, people)
    problems = []
    if not wait_for_sends(s, b, CHUNK):
        problems.append(f"fewer than {CHUNK} sends within 60 s of the broadcast's creation")
    s.standin.hang = 2.0
    before = len(sends(s, b))
    hung = wait_for_sends(s, b, before + 1, 30)
    time.sleep(0.3)
    s.worker.kill()
    s.standin.hang = 0.0
    in_flight = [r for r in rows(s, b) if r.status == "sending"]
    taken_at_kill = len(sends(s, b))
    if not hung or not in_flight:
        problems.append(f"the kill did not land in a chunk: sent to the stand-in meanwhile {hung}, "
                        f"deliveries sending {len(in_flight)}")
    if len(in_flight) > CHUNK:  # one worker sends one chunk at a time
        problems.append(f"{len(in_flight)} deliveries were in flight at once: more than a chunk ({CHUNK})")
    if taken_at_kill >= len(people):
        problems.append("everything was sent before the kill: not mid-broadcast")
    time.sleep(1)
    s.worker.start()
    waited = wait_settled(s, b, extra=float(s.settings["SEND_CLAIM_TIMEOUT"]))
    if waited is None:
        problems.append("the broadcast did not settle as sent")
    problems += one_copy_each(s, b)
    at_provider = {m.sid for m in sends(s, b)[:taken_at_kill]}
    recovered = [r for r in rows(s, b) if r.id in {f.id for f in in_flight}]
    note = (f"{len(in_flight)} deliveries in flight at the kill, {taken_at_kill - before} taken by the stand-in "
            f"unanswered; after recovery {Counter('taken before the kill' if r.provider_id in at_provider else 'sent again' for r in recovered)}; settled "
            f"{waited and round(waited)} s after the restart")
    report(s, b, problems, note)


def test_redis_killed_and_started_again_mid_broadcast(bc):
    """Redis SIGKILLed (no persistence: queues, sender leases, the bucket, all gone) in
    the middle of a broadcast, started again empty 3 s later: the sweep starts the
    senders again and the broadcast finishes, nobody gets it twice."""
    s = bc
    people = subscribe(s, 200)
    b = start_broadcast(s, people)
    problems = []
    if not wait_for_sends(s, b, CHUNK):
        problems.append(f"fewer than {CHUNK} sends within 60 s of the broadcast's creation")
    s.redis.kill()
    killed_at = len(sends(s, b))
    time.sleep(3)
    s.redis.start()
    if killed_at >= len(people):
        problems.append("everything was sent before Redis was killed: not mid-broadcast")
    waited = wait_settled(s, b, extra=float(s.settings["SEND_CLAIM_TIMEOUT"]))
    if waited is None:
        problems.append("the broadcast did not settle as sent after Redis came back")
    problems += one_copy_each(s, b)
    if not s.worker.alive():
        problems.append(f"the worker exited ({s.worker.popen.returncode})")
    report(s, b, problems, f"{killed_at} sent when Redis was killed; settled {waited and round(waited)} s "
                           "after it was started again")


def test_two_workers_share_one_rate_limit(bc):
    """A second worker process (`alerte worker --queues broadcasts`) beside the first:
    both send the broadcast, and the stand-in's record shows one shared limit. On the
    wire a chunk's sends may be late after their tokens were taken (a loaded machine), so
    the window on the stand-in's times gets the longest claim-to-arrival time measured;
    the window on the claims (the row's claimed_at, just after the tokens were taken)
    gets STAMP. Only upper bounds: a slow machine can only lower the counts."""
    s = bc
    log = s.logs / "worker2.log"
    second = Proc("worker2", lambda: spawn([s.python(), "-m", "service.cli", "worker", "--queues", "broadcasts"],
                                           log, s.env()), s._worker_ready, log)
    try:
        second.start()
        people = subscribe(s, 250)
        b = start_broadcast(s, people)
        problems = []
        waited = wait_settled(s, b)
        if waited is None:
            problems.append("the broadcast did not settle as sent")
        problems += one_copy_each(s, b)
        taken = sends(s, b)
        claimed = {r.provider_id: r.claimed_at for r in rows(s, b) if r.claimed_at}
        late = [m.at - claimed[m.sid] for m in taken if m.sid in claimed]
        slack = max(late, default=0.0) + STAMP
        arrivals = [m.at for m in taken]
        claims = [r.claimed_at for r in rows(s, b) if r.claimed_at]
        seen = []
        for window in (1.0, 2.0, 4.0):
            wire, bound = busiest(arrivals, window), RATE * (window + slack) + BURST
            claim, claim_bound = busiest(claims, window), RATE * (window + STAMP) + BURST
            seen.append(f"W={window:g}s: {wire} taken (bound {bound:.0f}), {claim} claimed (bound {claim_bound:.0f})")
            if wire > bound:
                problems.append(f"{wire} segments reached the stand-in within {window:g} s: more than RATE x "
                                f"(W + {slack:.2f} s) + BURST = {bound:.0f}")
            if claim > claim_bound:
                problems.append(f"{claim} deliveries claimed within {window:g} s: more than RATE x "
                                f"(W + {STAMP} s) + BURST = {claim_bound:.0f}")
        workers = _broadcast_workers(s)
        if len(workers) < 2:
            problems.append(f"only {len(workers)} worker process(es) ran sender jobs ({sorted(workers)}): "
                            "the case did not test two at once")
        if not second.alive():
            problems.append(f"the second worker exited ({second.popen.returncode})")
        span = arrivals[-1] - arrivals[0] if arrivals else 0
        report(s, b, problems, f"{len(taken)} sends over {span:.1f} s by {len(workers)} workers; " + "; ".join(seen),
               f"\n--- worker2 log (end) ---\n{tail(log, 1500)}")
    finally:
        second.stop()


def _broadcast_workers(s) -> set[str]:
    """The names of the RQ workers that finished a sender job of a broadcast queue."""
    import redis
    from rq import Queue
    from rq.job import Job

    from service.queue import BROADCAST_QUEUES, BROADCAST_SEND

    connection = redis.Redis.from_url(s.redis.url(0), socket_timeout=5)
    try:
        names = set()
        for queue_name in BROADCAST_QUEUES.values():
            registry = Queue(queue_name, connection=connection).finished_job_registry
            for job in Job.fetch_many(registry.get_job_ids(), connection=connection):
                if job is not None and job.func_name == BROADCAST_SEND and getattr(job, "worker_name", None):
                    names.add(job.worker_name)
        return names
    finally:
        connection.close()


def test_cancel_mid_broadcast_stops_all_but_the_chunk_in_flight(bc):
    """Canceled through the API while the worker sends: after the cancel's answer at most
    the chunk in flight reaches the stand-in (one worker: one chunk at a time), no
    delivery is claimed after the answer, every other one ends canceled, and nothing
    more goes in the next sweeps."""
    s = bc
    people = subscribe(s, 250)
    b = start_broadcast(s, people)
    problems = []
    if not wait_for_sends(s, b, CHUNK + 1):
        problems.append(f"fewer than {CHUNK + 1} sends within 60 s of the broadcast's creation")
    before = len(sends(s, b))
    answer = cancel(s, b)
    answered = time.time()
    if answer["state"] != "canceled" or not answer["withdrawn"]:
        problems.append(f"the cancel answered {answer}")
    if not wait_until(lambda: not statuses(s, b)["sending"] and not statuses(s, b)["queued"], CONVERGE, 0.2):
        problems.append(f"deliveries still queued or sending {CONVERGE:.0f} s after the cancel")
    time.sleep(2 * float(s.settings["SWEEP_INTERVAL"]) + 1)  # a sweep or two: nothing starts again
    taken = sends(s, b)
    after = [m for m in taken if m.at > answered]
    if len(after) > CHUNK:
        problems.append(f"{len(after)} copies reached the stand-in after the cancel's answer: more than the "
                        f"chunk in flight ({CHUNK})")
    found = rows(s, b)
    counts = Counter(r.status for r in found)
    if set(counts) - {"sent", "canceled"}:
        problems.append(f"deliveries ended {dict(counts)}: only sent and canceled expected")
    if counts["canceled"] != answer.get("withdrawn"):
        problems.append(f"{counts['canceled']} deliveries canceled, the answer said {answer.get('withdrawn')} withdrawn")
    claimed_late = [r for r in found if r.claimed_at and r.claimed_at > answered]
    if claimed_late:
        problems.append(f"{len(claimed_late)} deliveries claimed after the cancel's answer")
    by_sid = {m.sid: m for m in taken}
    copies = Counter(m.to for m in taken)
    for row in found:
        if row.status == "sent" and (row.provider_id not in by_sid or by_sid[row.provider_id].to != row.number):
            problems.append(f"delivery #{row.id} sent as {row.provider_id!r}, not taken by the stand-in")
        if row.status == "canceled" and copies[row.number]:
            problems.append(f"delivery #{row.id} canceled, yet its number got {copies[row.number]} copies")
    if any(n > 1 for n in copies.values()):
        problems.append(f"numbers with more than one copy: {sum(1 for n in copies.values() if n > 1)}")
    if counts["sent"] != len(taken):
        problems.append(f"{counts['sent']} deliveries sent, the stand-in took {len(taken)}")
    if state(s, b)["state"] != "canceled":
        problems.append(f"the broadcast ended {state(s, b)['state']}")
    if before >= len(people):
        problems.append("everything was sent before the cancel: not mid-broadcast")
    report(s, b, problems, f"{before} sent before the cancel, {len(after)} after its answer, "
                           f"{answer.get('withdrawn')} withdrawn")


def test_stop_mid_broadcast_is_honoured_at_send_time(bc):
    """Five subscribers whose deliveries are still queued, well behind the senders, text
    STOP (signed Twilio webhooks, at once) while the broadcast goes out: nothing reaches
    them after their STOP was answered; a delivery claimed after that ends suppressed
    (they were the last in line, so normally all five are; at least one must be, or the
    send-time check was not exercised); everybody else gets exactly one copy."""
    s = bc
    people = subscribe(s, 250)
    b = start_broadcast(s, people)
    problems = []
    if not wait_for_sends(s, b, CHUNK):
        problems.append(f"fewer than {CHUNK} sends within 60 s of the broadcast's creation")
    queued = [r for r in rows(s, b) if r.status == "queued"]
    if len(queued) < 4 * CHUNK:
        problems.append(f"only {len(queued)} deliveries still queued when the STOPs were sent")
    stoppers = [r.number for r in queued[-5:]]
    threads = s.phones.in_parallel({n: ["STOP"] for n in stoppers})
    join(threads, 60)
    stops = {d.number: d for d in s.phones.deliveries if d.body == "STOP"}
    waited = wait_settled(s, b)
    if waited is None:
        problems.append("the broadcast did not settle as sent")
    for number in stoppers:
        d = stops.get(number)
        if d is None or d.status != 200 or d.answered_at is None:
            problems.append(f"STOP from ...{number[-4:]} answered {d and (d.error or d.status)}")
    people_now = {p["number"]: p for p in s.observer.reporters().values()}
    for number in stoppers:
        if not people_now.get(number, {}).get("opted_out"):
            problems.append(f"...{number[-4:]} is not opted out after STOP")
    taken = sends(s, b)
    found = {r.number: r for r in rows(s, b)}
    claimed_after = 0
    for number in stoppers:
        stop = stops.get(number)
        answered = stop.answered_at if stop and stop.answered_at else 0.0
        late = [m for m in s.standin.sends(number) if (s.standin.time_of(m.sid) or 0) > answered]
        if late:
            problems.append(f"...{number[-4:]} got {[m.body[:20] for m in late]} after their STOP was answered")
        row = found.get(number)
        if row is not None and row.claimed_at and row.claimed_at > answered:
            claimed_after += 1
            if row.status != "suppressed":
                problems.append(f"delivery #{row.id} to ...{number[-4:]} claimed after the STOP, ended {row.status}")
    if claimed_after == 0:
        problems.append("no STOPper's delivery was claimed after their STOP: the send-time check was not exercised")
    problems += one_copy_each(s, b, skip=set(stoppers))
    report(s, b, problems, f"{len(stoppers)} STOPs, {claimed_after} of their deliveries claimed after the STOP "
                           f"(suppressed); {len(taken)} copies taken; settled {waited and round(waited)} s after")


def test_a_reporter_is_answered_before_a_big_broadcast_finishes(bc):
    """A reporter on Africa's Talking (whose replies the worker sends, on the reporters'
    queue) texts while a 300-subscriber broadcast goes out on Twilio. The worker takes
    the reporters' jobs before the broadcast's continuations: the answer reaches the
    gateway before the broadcast's last send, with at most one sender slice of deliveries
    (BURST + RATE x SLICE tokens) claimed between the message's answer by the webhook and
    the reply's arrival."""
    s, at = bc, bc.at
    people = subscribe(s, 300)
    b = start_broadcast(s, people)
    problems = []
    if not wait_for_sends(s, b, CHUNK):
        problems.append(f"fewer than {CHUNK} sends within 60 s of the broadcast's creation")
    reporter = new_number()
    callback = AtPhones(s.web_url).post(reporter, "ils ont attaque notre village")
    posted = time.time()
    if callback.status != 200 or callback.error:
        problems.append(f"the reporter's message answered {callback.error or callback.status}")
    sent_before = len(sends(s, b))

    received = received_texts()

    def replies(real: bool = False):
        with at.lock:  # a "received" notice may go first (Rasa slow): the real answer counts
            return [m for m in at.sent if m.to == reporter and not (real and m.message in received)]
    answered = wait_until(lambda: replies(real=True), CONVERGE, 0.05)
    waited = wait_settled(s, b)
    if waited is None:
        problems.append("the broadcast did not settle as sent")
    problems += one_copy_each(s, b)
    got = replies(real=True)
    taken = sends(s, b)
    note = f"{sent_before} copies sent when the reporter texted"
    if not answered or len(got) != 1:
        problems.append(f"the reporter got {len(got)} real answers ({[m.message[:30] for m in replies()]})")
    else:
        reply_at = got[0].at.timestamp()
        last = max((m.at for m in taken), default=0.0)
        if reply_at >= last:
            problems.append(f"the answer came {reply_at - last:.1f} s after the broadcast's last send")
        finished = state(s, b)["finished_at"]
        if finished is not None and reply_at >= finished:
            problems.append("the answer came after the broadcast was marked sent")
        between = [r for r in rows(s, b) if r.claimed_at and posted < r.claimed_at < reply_at]
        bound = math.ceil((BURST + RATE * SLICE) / CHUNK) * CHUNK
        if len(between) > bound:
            problems.append(f"{len(between)} deliveries claimed between the reporter's message and its answer: "
                            f"more than one sender slice ({bound})")
        after = sum(1 for m in taken if m.at > reply_at)
        note += f", {len(between)} claimed before the answer, {after} sent after it"
    if sent_before >= len(people):
        problems.append("everything was sent before the reporter texted: not during the broadcast")
    report(s, b, problems, note)
