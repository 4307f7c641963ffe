"""Faults on the other gateways: Africa's Talking (replies sent later by the worker, no
record to look a send up in) and an SMPP bind (its own `alerte smpp` process).

The session's stack is given more channels for these cases (Stack.configure: the Twilio
channel stays the default, Africa's Talking and SMPP point at local stand-ins) and put
back as it was afterwards. Checked from the database and what the gateway took
(tests/faults/gateways.py: gateway_problems): each message stored once and processed
(or failed with a reason), every answer at the gateway once, nothing left queued or
sending, answers in order per reporter.
"""

from __future__ import annotations

import signal
import time

import pytest

from tests.africastalking_standin import AfricasTalkingStandin
from tests.faults import gateways
from tests.faults.conftest import CONVERGE
from tests.faults.gateways import AtPhones, HoldingSmsc, WireSend, gateway_problems, smsc_sends
from tests.faults.harness import Proc, join, new_number, spawn, tail, wait_until


@pytest.fixture(scope="module")
def gateway_stack(fault_stack):
    """The session's stack with an Africa's Talking and an SMPP channel besides Twilio."""
    at = AfricasTalkingStandin(gateways.AT_USERNAME, gateways.AT_KEY)
    at.server.handle_error = lambda request, address: None  # a killed worker's cut answer: expected
    at.start()
    smsc = HoldingSmsc().start()
    fault_stack.ensure_running()
    fault_stack.configure(CHANNELS=gateways.channels_json(fault_stack.standin.url, at.url, smsc.port))
    fault_stack.at, fault_stack.smsc = at, smsc
    yield fault_stack
    try:
        fault_stack.ensure_running()
        fault_stack.configure(CHANNELS=None)
    finally:
        at.stop()
        smsc.stop()


@pytest.fixture
def gw(gateway_stack, service):
    """A clean case: the stack reset (service), both stand-ins emptied."""
    at = service.at
    with at.lock:
        at.sent.clear()
        at.requests.clear()
        at.refusals.clear()
        at.http_errors.clear()
        at.delay, at.cuts = 0.0, 0
    service.smsc.reset()
    yield service
    at.delay = 0.0


def fail_with(s, problems: list[str], note: str, extra_logs: str = "") -> None:
    shown = "\n  ".join(problems[:40]) + (f"\n  ... {len(problems) - 40} more" if len(problems) > 40 else "")
    pytest.fail(f"{len(problems)} problem(s); {note}\n  {shown}\n--- messages ---\n"
                f"{gateways.rows_table(s.observer)}\n{s.logs_tail()}{extra_logs}", pytrace=False)


def at_sends(at) -> list[WireSend]:
    with at.lock:
        return [WireSend(m.message_id, m.to, m.message, m.at.timestamp()) for m in at.sent]


def at_settled(s, expected) -> bool:
    rows = s.observer.rows()
    people = s.observer.reporters()
    stored = {(people[r.reporter_id]["number"], r.body) for r in rows if r.direction == "in" and r.reporter_id}
    if any(e not in stored for e in expected):
        return False
    if any(r.direction == "in" and r.status not in ("processed", "failed") for r in rows):
        return False
    return not any(r.direction == "out" and r.status in ("queued", "sending") for r in rows)


CONVERSATIONS = [
    ["ils ont attaque notre village", "Oicha", "hier soir"],
    ["Watu wenye silaha wameshambulia Kasindi leo", "jana usiku", "2"],
    ["babundisi mboka na biso", "Bunia", "lobi na butu"],
    ["bonjour", "ils ont attaque notre village", "Oicha"],
]


def test_africastalking_worker_killed_mid_send(gw):
    """Four reporters on Africa's Talking. Their second messages' replies are being sent
    by the worker (the stand-in takes each message and answers 4 s later) when the
    worker is SIGKILLed; their third messages arrive while it is down; it is restarted.
    The send it was in cannot be looked up: it ends failed "unknown_outcome", taken once."""
    s, at = gw, gw.at
    phones = AtPhones(s.web_url)
    people = {new_number(): texts for texts in CONVERSATIONS}
    expected = [(n, t) for n, texts in people.items() for t in texts]
    problems: list[str] = []

    join(phones.round({n: texts[0] for n, texts in people.items()}), 60)
    if not wait_until(lambda: all(any(w.to == n for w in at_sends(at)) for n in people), 30, 0.2):
        problems.append("not every reporter had an answer within 30 s of their first message")

    before = len(at_sends(at))
    at.delay = 4.0
    second = phones.round({n: texts[1] for n, texts in people.items()})
    in_send = wait_until(lambda: len(at_sends(at)) > before, 30, 0.02)
    s.worker.kill()
    at.delay = 0.0
    killed_in = at_sends(at)[before] if in_send else None
    if not in_send:
        problems.append("the worker sent nothing within 30 s of the second messages (killed anyway)")
    join(second, 60)
    join(phones.round({n: texts[2] for n, texts in people.items()}), 60)
    time.sleep(1)
    s.worker.start()

    started = time.monotonic()
    settled = wait_until(lambda: at_settled(s, expected), CONVERGE, 0.5)
    waited = time.monotonic() - started
    if not settled:
        problems.append(f"not settled {CONVERGE:.0f} s after the worker came back")
    for c in phones.callbacks:
        if c.status != 200 or c.error:
            problems.append(f"callback {c.body[:20]!r} answered {c.error or c.status}")
        elif c.seconds and c.seconds > s.budget + 1.5:
            problems.append(f"callback {c.body[:20]!r} took {c.seconds:.1f} s (budget {s.budget} s)")
    sends = at_sends(at)
    problems += gateway_problems(s.observer, sends, expected, s.rasa_url)
    if killed_in is not None:
        people_by_id = s.observer.reporters()
        rows = [r for r in s.observer.rows() if r.direction == "out" and r.body == killed_in.body
                and people_by_id.get(r.reporter_id, {}).get("number") == killed_in.to]
        if [(r.status, r.error_code) for r in rows] != [("failed", "unknown")] or \
                "unknown_outcome" not in (rows[0].failure_reason or ""):
            problems.append(f"the send killed in flight ended {[(r.status, r.failure_reason) for r in rows]}, "
                            "expected one row failed unknown_outcome")
        copies = [w for w in sends if w.to == killed_in.to and w.body == killed_in.body]
        if len(copies) != 1:
            problems.append(f"the send killed in flight was taken {len(copies)} times")
    if not s.worker.alive():
        problems.append("the worker is not running at the end")
    note = f"settled after {waited:.0f} s; {len(sends)} sends taken; db {s.observer.db_state()}"
    if problems:
        fail_with(s, problems, note)
    print(note)


def smpp_settled(s, smsc, expected) -> bool:
    if smsc.unacknowledged() or not at_settled(s, expected):
        return False
    return True


def test_smpp_bind_killed_mid_conversation(gw):
    """Three reporters over an SMPP bind held by a real `alerte smpp --channel smpp`.
    While it waits for the answer to a submit_sm of their second messages' replies the
    process is SIGKILLed (the SMSC sees the link drop; that send ends failed
    "unknown_outcome", submitted once); two third messages come while it is down (the SMSC keeps them, and
    delivers again whatever was not acknowledged); restarted, it binds again: nothing
    lost, nothing stored or submitted twice."""
    s, smsc = gw, gw.smsc
    log = s.logs / "smpp.log"
    bind = Proc("smpp", lambda: spawn([s.python(), "-m", "service.cli", "smpp", "--channel", "smpp"], log, s.env()),
                log=log)
    people = {new_number(): texts for texts in CONVERSATIONS[:3]}
    a, b, c = people
    expected = [(n, t) for n, texts in people.items() for t in texts]
    problems: list[str] = []

    def answered(number, count):
        return len([w for w in smsc_sends(smsc) if w.to == number]) >= count

    binds = smsc.binds
    try:
        bind.start()
        if not smsc.wait_bound(binds + 1, 60):
            pytest.fail(f"`alerte smpp` did not bind within 60 s\n{tail(log)}", pytrace=False)
        for number, texts in people.items():
            smsc.send_mo(number, texts[0])
        if not wait_until(lambda: all(answered(n, 1) for n in people), 40, 0.2):
            problems.append("not every reporter had an answer within 40 s of their first message")

        # the SMSC answers submit_sm 3 s late: the bind is SIGKILLed while it waits for one
        smsc.delay, seen, taken = 3.0, smsc.submits_seen, len(smsc.submits)
        second = [smsc.send_mo(number, texts[1]) for number, texts in people.items()]
        in_submit = smsc.wait_for(lambda: smsc.submits_seen > seen, 30)
        bind.kill(signal.SIGKILL)
        smsc.delay = 0.0
        if not in_submit:
            problems.append("no submit_sm within 30 s of the second messages (killed anyway)")
        if not smsc.wait_for(lambda: smsc.connection is None, 10):
            problems.append("the SMSC did not see the link drop within 10 s of the SIGKILL")
        unacked_at_kill = sum(1 for m in second if not m.acked)
        smsc.send_mo(a, people[a][2])
        smsc.send_mo(c, people[c][2])
        time.sleep(2)
        bind.start()
        if not smsc.wait_bound(binds + 2, 60):
            problems.append("`alerte smpp` did not bind again within 60 s of its restart")
        if wait_until(lambda: answered(b, 2), 40, 0.2):
            smsc.send_mo(b, people[b][2])
        else:
            problems.append("the second message from b not answered within 40 s of the re-bind")
            smsc.send_mo(b, people[b][2])

        started = time.monotonic()
        settled = wait_until(lambda: smpp_settled(s, smsc, expected), CONVERGE, 0.5)
        waited = time.monotonic() - started
        if not settled:
            problems.append(f"not settled {CONVERGE:.0f} s after the re-bind "
                            f"({len(smsc.unacknowledged())} message(s) unacknowledged by the bind)")
        for mo in smsc.mos:
            if mo.refused:
                problems.append(f"{mo.text[:20]!r}: deliver_sm answered {mo.refused} before it was taken")
        sends = smsc_sends(smsc)
        problems += gateway_problems(s.observer, sends, expected, s.rasa_url)
        if in_submit:  # the submit the bind waited for when it was killed: unknown, taken once
            killed_in = smsc.submits[taken] if len(smsc.submits) > taken else None
            if killed_in is None or killed_in.concat is not None:
                problems.append(f"the submit_sm in flight at the kill: {killed_in}")
            else:
                number = "+" + killed_in.destination
                people_by_id = s.observer.reporters()
                rows = [r for r in s.observer.rows() if r.direction == "out" and r.body == killed_in.text
                        and people_by_id.get(r.reporter_id, {}).get("number") == number]
                if len(rows) != 1 or not gateways.is_unknown_outcome(rows[0]):
                    problems.append(f"the send killed in flight ended {[(r.status, r.failure_reason) for r in rows]}"
                                    ", expected one row failed unknown_outcome")
                copies = [w for w in sends if w.to == number and w.body == killed_in.text]
                if len(copies) != 1:
                    problems.append(f"the send killed in flight was submitted {len(copies)} times")
        if not bind.alive():
            problems.append(f"`alerte smpp` exited ({bind.popen.returncode}) after its restart")
        elif not smsc.bound_now():
            problems.append("the link is not bound at the end")
        redelivered = sum(1 for m in smsc.mos if len(m.sequences) > 1)
        note = (f"settled after {waited:.0f} s; binds {smsc.binds - binds}; second messages unacknowledged at the "
                f"kill {unacked_at_kill}; re-delivered {redelivered}; {len(sends)} submits; "
                f"db {s.observer.db_state()}")
        if problems:
            fail_with(s, problems, note, f"\n--- smpp log (end) ---\n{tail(log, 3000)}")
        print(note)
    finally:
        bind.stop()
