"""Faults while reporters text: every message answered once, none lost, none after STOP.

Each case breaks one part of the running service (SIGKILL, SIGSTOP, a restart, a race),
restarts it, then waits (bounded) for the service to settle by itself and checks, from
the database and the Twilio stand-in's record (harness.examine):

- every inbound message ends ``processed`` exactly once, or visibly ``failed``;
- every processed message got a real reply, handed in the TwiML answer or sent by the
  worker, never both and never twice (grouped by the message it answers);
- every send the provider accepted is one outbound row, nothing left queued/sending;
- nothing is sent to a reporter after their STOP (but its confirmation);
- every webhook answered 200 TwiML within WEBHOOK_BUDGET;
- each reporter's messages answered in the order they were written (STOP/START aside).
"""

from __future__ import annotations

import threading
import time
import uuid

import pytest

from tests.faults.conftest import CONVERGE
from tests.faults.harness import TEXTS, join, new_number, received_texts, wait_until
from tests.integration.phone import says


def verdict(stack, *, converge: float = CONVERGE, problems: list[str] | None = None, **kwargs):
    """Wait for the service to settle, then fail with every broken promise at once."""
    started = time.monotonic()
    settled = stack.settle(converge)
    waited = time.monotonic() - started
    report = stack.examine(**kwargs)
    found = list(problems or [])
    if not settled:
        found.insert(0, f"not settled {converge:.0f} s after the fault was repaired")
    for proc in (stack.worker, stack.web, stack.rasa, stack.actions, stack.redis):
        if proc is not None and not proc.alive():
            found.append(f"{proc.name} exited ({proc.popen.returncode}) though the case did not stop it")
    found += report.problems
    if found:
        shown = "\n  ".join(found[:40]) + (f"\n  ... {len(found) - 40} more" if len(found) > 40 else "")
        pytest.fail(f"{len(found)} problem(s); {report.summary()}; settled after {waited:.0f} s\n  {shown}\n"
                    f"--- messages (provider id #n: n-th send the stand-in took) ---\n{stack.rows_table()}\n"
                    f"{stack.logs_tail()}", pytrace=False)
    print(f"settled after {waited:.0f} s: {report.summary()}")
    return report


def real(texts: list[str]) -> list[str]:
    received = received_texts()
    return [t for t in texts if t and t not in received]


def only_received(delivery) -> str | None:
    """A problem if a webhook did not answer 200 with just the "received" text."""
    if delivery.status != 200:
        return f"{delivery.body!r} answered {delivery.error or delivery.status}"
    received = received_texts()
    if not delivery.texts or any(t not in received for t in delivery.texts):
        return f"{delivery.body!r} answered {delivery.texts!r}, expected the \"received\" text"
    return None


def test_worker_killed_mid_job_recovers(service):
    """Rasa stopped: the webhooks answer "received" and the work goes to the worker. Rasa
    back, the worker is SIGKILLed while it sends (the stand-in holds the answer after
    accepting the message, so a `sending` row is left), then restarted."""
    s = service
    people = {new_number(): TEXTS["fr"][1:3], new_number(): TEXTS["sw"][1:3],
              new_number(): TEXTS["ln"][0:2], new_number(): ["Watu wenye silaha wameshambulia Kasindi leo", "2"]}
    s.rasa.pause()
    try:
        join(s.phones.in_lanes(people, lanes=2))
    finally:
        s.rasa.resume()
    problems = [p for p in (only_received(d) for d in s.phones.deliveries) if p]
    s.standin.hang = 2.0
    in_job = wait_until(lambda: s.standin.sends(), 45, 0.05)
    s.worker.kill()
    s.standin.hang = 0.0
    if not in_job:
        problems.append("the worker sent nothing within 45 s of Rasa's return (killed anyway)")
    s.worker.start()
    verdict(s, problems=problems)


def test_redis_restarted_while_messages_flow(service):
    """Redis SIGKILLed (no persistence: locks, queues and Rasa's trackers are gone) and
    started again on the same port while three reporters keep texting."""
    s = service
    people = {new_number(): TEXTS["fr"][:5], new_number(): TEXTS["sw"][:5], new_number(): TEXTS["ln"][:5]}
    threads = s.phones.in_lanes(people, lanes=2, gap=0.3)
    time.sleep(4)
    s.redis.kill()
    time.sleep(4)
    s.redis.start()
    join(threads)
    verdict(s)


def test_postgres_stopped_and_started_while_messages_flow(on_postgres):
    """`pg_ctl stop -m fast`, webhooks during the outage (spooled, answered "received"),
    then `pg_ctl start`: the messages appear in the database and are answered."""
    s = on_postgres
    people = {new_number(): TEXTS["fr"][:2], new_number(): TEXTS["sw"][:2], new_number(): TEXTS["ln"][:2]}
    join(s.phones.in_lanes(people, lanes=2))
    s.postgres.stop("fast")
    try:
        outage = {number: [texts[0]] for number, texts in
                  zip(people, (["hier soir"], ["Watu wenye silaha wameshambulia Kasindi leo"], ["Bunia"]))}
        outage[new_number()] = ["ils ont attaque notre village"]  # someone new, during the outage
        before = len(s.phones.deliveries)
        join(s.phones.in_lanes(outage, lanes=2))
        during = s.phones.deliveries[before:]
        time.sleep(2)
    finally:
        s.postgres.start()
    problems = [f"during the outage: {p}" for p in (only_received(d) for d in during) if p]
    join(s.phones.in_lanes({n: ["2"] for n in people}, lanes=2))
    verdict(s, problems=problems)
    stored = {r.provider_id for r in s.observer.rows() if r.direction == "in"}
    assert all(d.sid in stored for d in during)


def test_action_server_killed_mid_conversation(service):
    """The action server SIGKILLed between two answers of a report: Rasa answers nothing
    (an empty answer is a failure: the message stays pending); restarted, the same
    conversation goes on where it was."""
    s = service
    a, b = new_number(), new_number()
    first = s.phones.post(a, "ils ont attaque notre village")
    problems = [] if says("\n".join(first.texts), "ask_place", "fr") else [f"first answer {first.texts!r}"]
    s.actions.kill()
    oicha = s.phones.post(a, "Oicha")
    s.phones.post(b, "Watu wenye silaha wameshambulia Kasindi leo")
    time.sleep(3)
    s.actions.start()
    verdict(s, problems=problems)
    rows = s.observer.rows()
    [message] = [r for r in rows if r.provider_id == oicha.sid]
    answers = real(oicha.texts) + [r.body for r in rows if r.direction == "out" and r.reply_to_id == message.id
                                   and r.status != "handed"]
    assert any(says(t, "ask_when", "fr") for t in real(answers)), f"'Oicha' answered {answers!r}"


def test_rasa_paused_past_the_webhook_budget(service):
    """Rasa SIGSTOPped for twice the webhook budget while reporters text: every webhook
    answers "received" within the budget; Rasa resumed, the real replies go out by SMS."""
    s = service
    people = {new_number(): ["bonjour"], new_number(): ["habari"], new_number(): ["mbote"]}
    join(s.phones.in_lanes(people, lanes=2))
    s.rasa.pause()
    paused_at = time.monotonic()
    try:
        later = {n: [t] for n, t in zip(people, ["ils ont attaque notre village",
                                                  "Watu wenye silaha wameshambulia Kasindi leo",
                                                  "babundisi mboka na biso"])}
        before = len(s.phones.deliveries)
        join(s.phones.in_lanes(later, lanes=2))
        during = s.phones.deliveries[before:]
        time.sleep(max(0.0, 2 * s.budget - (time.monotonic() - paused_at)))
    finally:
        s.rasa.resume()
    problems = [f"Rasa paused: {p}" for p in (only_received(d) for d in during) if p]
    verdict(s, problems=problems)


def test_two_simultaneous_deliveries_of_one_message_sid(on_postgres):
    """Twilio retries a webhook while the first is still running: the same MessageSid
    posted twice at once, on PostgreSQL. One message row, one reply."""
    s = on_postgres
    pairs = [(new_number(), "ils ont attaque notre village"), (new_number(), "mbote"),
             (new_number(), "Watu wenye silaha wameshambulia Kasindi leo"), (new_number(), "habari")]
    sids = []
    for number, body in pairs:
        sid = "SM" + uuid.uuid4().hex
        sids.append(sid)
        barrier = threading.Barrier(2)

        def deliver(number=number, body=body, sid=sid, barrier=barrier):
            barrier.wait()
            s.phones.post(number, body, sid=sid)
        threads = [threading.Thread(target=deliver) for _ in range(2)]
        for thread in threads:
            thread.start()
        join(threads, 60)
    verdict(s)
    rows = s.observer.rows()
    for sid in sids:
        [message] = [r for r in rows if r.direction == "in" and r.provider_id == sid]
        twiml = [t for d in s.phones.deliveries if d.sid == sid for t in real(d.texts)]
        sent = [r.body for r in rows if r.direction == "out" and r.reply_to_id == message.id
                and r.status not in ("handed", "suppressed") and r.body not in received_texts()]
        assert len(twiml) + len(sent) == 1, f"{message.body!r}: TwiML {twiml!r}, sent {sent!r}"


def test_stop_while_the_worker_answers_older_messages(service):
    """A reporter's backlog (Rasa was stopped) is being answered by the worker, slowly
    (the stand-in takes 1.5 s per message), when they send STOP: nothing more reaches
    them after the STOP's answer, but its confirmation."""
    s = service
    a, other = new_number(), new_number()
    s.rasa.pause()
    try:
        s.phones.conversation(a, ["ils ont attaque notre village", "Oicha", "hier soir", "deux morts"])
    finally:
        s.rasa.resume()
    s.standin.delay = 1.5
    busy = wait_until(lambda: s.standin.sends(a), 45, 0.05)
    stop = s.phones.post(a, "STOP")
    s.phones.post(other, "mbote")
    problems = [] if busy else ["the worker sent nothing to the reporter within 45 s (STOP sent anyway)"]
    if stop.status != 200:
        problems.append(f"STOP answered {stop.error or stop.status}")
    report = verdict(s, problems=problems)
    confirmations = real(stop.texts) + [m.body for m in s.standin.sends(a)
                                        if (s.standin.time_of(m.sid) or 0) > stop.answered_at]
    assert any(says(t, "opted_out", "fr") for t in confirmations), confirmations
    people = s.observer.reporters()
    assert [p["opted_out"] for p in people.values() if p["number"] == a] == [True], report.summary()


def test_a_flood_from_one_sender_does_not_starve_the_others(service):
    """One phone sends 30 messages at once; another person has a conversation meanwhile.
    All 30 are stored at once and processed at a bounded pace (SENDER_RATE a minute: at
    most twice that in any 60 s, whatever the limiter); the other person is answered as
    usual meanwhile."""
    s = service
    rate = int(s.settings["SENDER_RATE"])
    flooder, other = new_number(), new_number()
    texts = (TEXTS["sw"] + TEXTS["fr"] + TEXTS["ln"]) * 2
    flood = texts[:30]
    flooding = s.phones.in_lanes({flooder: flood}, lanes=1)
    problems = []

    def converse():
        for text in ["mbote", "babundisi mboka na biso", "Bunia"]:
            delivery = s.phones.post(other, text)
            if real(delivery.texts):
                continue
            sends_before = {m.sid for m in s.standin.sends(other)}
            if not wait_until(lambda: [m for m in s.standin.sends(other) if m.sid not in sends_before], 20, 0.2):
                problems.append(f"{text!r} from the other person not answered within 20 s during the flood")
    time.sleep(1)
    conversing = threading.Thread(target=converse)
    conversing.start()
    join(flooding + [conversing])
    sids = {d.sid for d in s.phones.deliveries if d.number == flooder}
    stored = wait_until(lambda: len(sids & {r.provider_id for r in s.observer.rows()}) == 30, 10, 0.2)
    if not stored:
        problems.append(f"{len(sids & {r.provider_id for r in s.observer.rows()})} of 30 flood messages stored")
    verdict(s, converge=CONVERGE + 60 * len(flood) / rate, problems=problems)
    people = s.observer.reporters()
    [flooder_id] = [rid for rid, p in people.items() if p["number"] == flooder]
    done = sorted(r.processed_at.timestamp() for r in s.observer.rows()
                  if r.direction == "in" and r.reporter_id == flooder_id and r.processed_at)
    # whatever the limiter (fixed window, sliding, bucket): at most 2 x rate in any minute
    busiest = max((sum(1 for u in done if t <= u < t + 60) for t in done), default=0)
    assert busiest <= 2 * rate, (f"{busiest} of the flood processed within one minute (SENDER_RATE {rate}); "
                                 f"all {len(done)} within {done[-1] - done[0]:.0f} s" if done else "")


def test_provider_drops_the_connection_after_accepting(service):
    """The provider accepts a message, then the connection drops before its answer: the
    worker cannot know it was sent. It must look before sending again: one SMS."""
    s = service
    a = new_number()
    s.rasa.pause()
    try:
        s.phones.post(a, "ils ont attaque notre village")
    finally:
        s.rasa.resume()
    s.standin.drop(1)
    dropped = wait_until(lambda: s.standin.dropped, 45, 0.1)
    verdict(s, problems=[] if dropped else ["no send reached the provider within 45 s: nothing dropped"])
    assert len(s.standin.sends(a)) == 1, [m.body for m in s.standin.sends(a)]
