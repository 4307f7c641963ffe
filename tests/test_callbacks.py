"""Call-backs of missed calls on real SQLite and PostgreSQL and real Redis, dialled by the
real twilio client against the local stand-in, which records every Calls API request.

The worker's job is called in the test's process (it is the same function); time passes
by moving a request's due time, never by sleeping.
"""

from __future__ import annotations

import json
import threading
from datetime import timedelta

import pytest
import redis
from rq import Queue, SimpleWorker
from rq.registry import ScheduledJobRegistry
from sqlalchemy import select, update

from service import callbacks, jobs, queue, reporters
from service.app import create_app
from service.inbox import Services
from service.models import CallbackRequest, Reporter, utcnow
from service.reporters import aware
from tests.conftest import ACCOUNT_SID, AUTH_TOKEN, OTHER_REPORTER, PUBLIC_BASE_URL, REPORTER, _empty_tables

LINE = "+243970000100"  # the toll-free beep line
OTHER_LINE = "+243970000200"
THIRD = "+243990000003"
API_HEADERS = {"Authorization": "Bearer test-api-token"}
STATUS_PATH = "/webhooks/twilio/voice/callback-status"


@pytest.fixture
def app_config(app_config):
    return {**app_config, "BEEP_NUMBERS": f"{LINE}, {OTHER_LINE}", "CALLBACK_DELAY": 60, "CALLBACK_WINDOW": 1800,
            "CALLBACK_RATE": 0, "CALLBACK_MAX_ATTEMPTS": 3, "CALLBACK_RETRY_DELAY": 120,
            "CALLBACK_RING_TIMEOUT": 25, "CALLBACK_CLAIM_TIMEOUT": 120}


@pytest.fixture
def svc(app, db):
    return Services.current()


def beep(svc, number=REPORTER, line=LINE, reason="beep") -> CallbackRequest:
    return callbacks.request_callback(svc.session, svc.redis, number, line, reason)


def row(svc, request_id) -> CallbackRequest:
    return svc.session.get(CallbackRequest, request_id, populate_existing=True)


def time_passes(svc, request_id, claimed: bool = False) -> None:
    """The request's due time (or its dial's claim, long ago) has come."""
    long_ago = utcnow() - timedelta(seconds=3600)
    values = {"claimed_at": long_ago} if claimed else {"next_attempt_at": utcnow() - timedelta(seconds=6)}
    svc.session.execute(update(CallbackRequest).where(CallbackRequest.id == request_id).values(**values))
    svc.session.commit()


def dial(svc, request_id) -> str:
    time_passes(svc, request_id)
    return callbacks.place(svc, request_id)


def report(client, sign, standin, call):
    """Post, signed, the status callbacks Twilio would post as the call ends as planned."""
    responses = []
    for url, params in standin.progress(call):
        responses.append(client.post(url[len(PUBLIC_BASE_URL):], data=params,
                                     headers={"X-Twilio-Signature": sign(url, params)}))
    return responses


def scheduled(redis_url) -> dict:
    """Call-back jobs waiting in RQ's scheduler: request id -> when."""
    connection = redis.Redis.from_url(redis_url)
    registry = ScheduledJobRegistry(queue=Queue(queue.QUEUE, connection=connection))
    out = {}
    for job in registry.get_job_ids():
        fetched = Queue(queue.QUEUE, connection=connection).fetch_job(job)
        if fetched is not None and fetched.func_name == queue.PLACE_CALLBACK:
            out.setdefault(fetched.args[0], []).append(registry.get_scheduled_time(job))
    return out


def close_to(when, seconds: float, tolerance: float = 5.0) -> bool:
    return abs((aware(when) - utcnow()).total_seconds() - seconds) <= tolerance


# --- the request --------------------------------------------------------------------------

def test_a_beep_queues_one_call_back_kept_with_the_reporter_and_no_number(svc, redis_url):
    request = beep(svc)
    assert request.status == "queued" and request.reason == "beep" and request.line == LINE
    assert request.provider == "twilio" and request.attempts == 0 and request.beeps == 1
    reporter = svc.session.get(Reporter, request.reporter_id)
    assert svc.identity.decrypt(reporter.phone_encrypted) == REPORTER  # the reporter's own, encrypted
    stored = svc.session.execute(select(CallbackRequest.__table__)).one()
    assert "990000001" not in json.dumps([str(v) for v in stored])
    [when] = scheduled(redis_url)[request.id]
    assert close_to(when, 60) and close_to(request.next_attempt_at, 60)


def test_a_caller_who_hangs_up_before_the_menu_is_called_back_the_same_way(svc, redis_url):
    request = beep(svc, reason="hung_up")
    assert request.status == "queued" and request.reason == "hung_up"
    assert request.id in scheduled(redis_url)
    with pytest.raises(ValueError):
        beep(svc, OTHER_REPORTER, reason="curious")


def test_more_missed_calls_within_the_window_count_on_the_same_request(svc, redis_url, twilio_standin):
    first = beep(svc)
    again = beep(svc, reason="hung_up")
    also = beep(svc, line=OTHER_LINE)
    assert again.id == first.id == also.id and row(svc, first.id).beeps == 3
    assert svc.session.scalar(select(CallbackRequest.id).where(CallbackRequest.id != first.id)) is None
    assert len(scheduled(redis_url)[first.id]) == 1
    other = beep(svc, OTHER_REPORTER)  # someone else is not held back
    assert other.id != first.id
    svc.session.execute(update(CallbackRequest).where(CallbackRequest.id == first.id)
                        .values(created_at=utcnow() - timedelta(seconds=1801)))
    svc.session.commit()
    later = beep(svc)  # the window has passed
    assert later.id not in (first.id, other.id) and later.status == "queued"


def test_two_beeps_at_the_same_moment_make_one_request(app, app_config, svc):
    reporter_id = reporters.seen(svc.session, svc.identity, OTHER_REPORTER).id  # as the voice webhook has it
    svc.session.commit()
    second = create_app(app_config)
    barrier, ids, errors = threading.Barrier(2), [], []

    def beep_from(web):
        try:
            with web.app_context():
                own = Services.current()
                reporter = own.session.get(Reporter, reporter_id)
                barrier.wait()
                ids.append(beep(own, reporter, reason="hung_up").id)
                own.session.close()
        except Exception as exc:  # reported below, not swallowed
            errors.append(exc)

    threads = [threading.Thread(target=beep_from, args=(web,)) for web in (app, second)]
    [t.start() for t in threads]
    [t.join(30) for t in threads]
    second.extensions["db"].engine.dispose()
    assert errors == [] and len(set(ids)) == 1
    assert row(svc, ids[0]).beeps == 2


def test_an_opted_out_caller_is_never_queued(svc, text_in, redis_url):
    text_in("STOP")
    request = beep(svc)
    assert request.status == "suppressed" and request.outcome == "opted_out"
    assert request.id not in scheduled(redis_url)


def test_the_line_decides_the_channel_that_calls_back(app_config, twilio_standin):
    entries = [{"name": "twilio", "kind": "twilio", "default": True, "account_sid": ACCOUNT_SID,
                "auth_token": AUTH_TOKEN, "from": "+243990000000", "api_base": twilio_standin.url},
               {"name": "somleng", "kind": "somleng", "account_sid": ACCOUNT_SID, "auth_token": AUTH_TOKEN,
                "from": "+243970000300", "api_base": twilio_standin.url, "beep_numbers": ["+243 970 000 300"]}]
    app = create_app({**app_config, "CHANNELS": entries, "BEEP_NUMBERS": LINE})
    try:
        _empty_tables(app)
        with app.app_context():
            svc = Services.current()
            channels = app.extensions["channels"]
            assert callbacks.is_beep_line("+243970000300") and callbacks.is_beep_line(LINE)
            assert not callbacks.is_beep_line("+243990000000")
            request = beep(svc, line="+243970000300")
            assert request.provider == "somleng"
            assert beep(svc, OTHER_REPORTER).provider == "twilio"  # BEEP_NUMBERS: the default channel's
            assert callbacks.place(svc, request.id) == "waiting"
            assert dial(svc, request.id) == "calling"
            [call] = twilio_standin.calls
            assert call.url == f"{PUBLIC_BASE_URL}/webhooks/somleng/voice?callback={request.id}"
            assert {r.rule for r in app.url_map.iter_rules()} >= {
                "/webhooks/twilio/voice/callback-status", "/webhooks/somleng/voice/callback-status"}
            assert callbacks.channel_for_line(channels, "+243970000999").name == "twilio"
            svc.session.close()
    finally:
        app.extensions["db"].engine.dispose()


# --- the call -----------------------------------------------------------------------------

def test_the_call_back_waits_for_its_delay_then_runs_the_ivr_from_the_line(svc, twilio_standin, redis_url):
    request = beep(svc)
    assert callbacks.place(svc, request.id) == "waiting"  # a job ahead of its time dials nothing
    assert twilio_standin.calls == []
    assert dial(svc, request.id) == "calling"
    [call] = twilio_standin.calls
    assert call.to == REPORTER and call.sender == LINE and call.account_sid == ACCOUNT_SID
    assert call.url == f"{PUBLIC_BASE_URL}/webhooks/twilio/voice?callback={request.id}"
    assert call.params["Method"] == "POST" and call.params["Timeout"] == "25"
    assert call.status_callback == f"{PUBLIC_BASE_URL}{STATUS_PATH}?callback={request.id}&attempt=1"
    assert call.events == ["answered", "completed"]
    done = row(svc, request.id)
    assert done.status == "calling" and done.attempts == 1 and done.call_sid == call.sid
    assert callbacks.place(svc, request.id) == "calling"  # the job again: no second call
    assert len(twilio_standin.calls) == 1


def test_the_job_runs_on_a_real_worker(app, app_config, svc, twilio_standin, redis_url):
    request = beep(svc)
    time_passes(svc, request.id)
    connection = redis.Redis.from_url(redis_url)
    assert queue.enqueue_callback(connection, request.id)
    SimpleWorker([Queue(queue.QUEUE, connection=connection)], connection=connection).work(burst=True)
    assert [c.to for c in twilio_standin.calls] == [REPORTER]


def test_busy_then_answered_tries_again_after_the_backoff(svc, client, sign, twilio_standin, redis_url):
    twilio_standin.end_calls(REPORTER, "busy", "completed")
    request = beep(svc)
    assert dial(svc, request.id) == "calling"
    [response] = report(client, sign, twilio_standin, twilio_standin.calls[0])
    assert response.status_code == 204
    busy = row(svc, request.id)
    assert busy.status == "queued" and busy.outcome == "busy" and busy.attempts == 1
    assert close_to(busy.next_attempt_at, 120) and any(close_to(t, 120) for t in scheduled(redis_url)[request.id])
    assert callbacks.place(svc, request.id) == "waiting"  # not before the backoff
    assert dial(svc, request.id) == "calling"
    second = twilio_standin.calls[1]
    assert second.status_callback.endswith(f"callback={request.id}&attempt=2")
    assert [r.status_code for r in report(client, sign, twilio_standin, second)] == [204, 204]
    answered = row(svc, request.id)
    assert answered.status == "answered" and answered.attempts == 2 and answered.answered_at is not None
    assert len(twilio_standin.calls_to(REPORTER)) == 2


def test_no_answer_until_the_bound_then_given_up(svc, client, sign, twilio_standin, redis_url):
    twilio_standin.end_calls(REPORTER, "no-answer", "no-answer", "no-answer", "completed")
    request = beep(svc)
    waits = []
    for attempt in (1, 2, 3):
        assert dial(svc, request.id) == "calling"
        report(client, sign, twilio_standin, twilio_standin.calls[-1])
        after = row(svc, request.id)
        assert after.attempts == attempt and after.outcome == "no-answer"
        if after.status == "queued":
            waits.append((aware(after.next_attempt_at) - utcnow()).total_seconds())
    assert after.status == "given_up" and after.finished_at is not None
    assert [round(w / 10) * 10 for w in waits] == [120, 240]  # doubled each time
    assert dial(svc, request.id) == "given_up" and len(twilio_standin.calls) == 3


def test_a_failed_call_is_retried_and_a_refusal_ends_the_request(svc, client, sign, twilio_standin):
    twilio_standin.end_calls(REPORTER, "failed")
    request = beep(svc)
    dial(svc, request.id)
    report(client, sign, twilio_standin, twilio_standin.calls[0])
    assert row(svc, request.id).status == "queued"
    twilio_standin.fail_calls_for(REPORTER, 21215)  # no permission to call there: trying again cannot help
    assert dial(svc, request.id) == "failed"
    assert row(svc, request.id).outcome == "21215"


def test_provider_throttling_waits_without_using_an_attempt(svc, twilio_standin):
    twilio_standin.throttle_calls(1)
    request = beep(svc)
    assert dial(svc, request.id) == "throttled"
    waiting = row(svc, request.id)
    assert waiting.status == "queued" and waiting.attempts == 0
    assert dial(svc, request.id) == "calling" and len(twilio_standin.calls) == 1


def test_an_opt_out_between_the_beep_and_the_dial_means_no_call(svc, text_in, twilio_standin):
    request = beep(svc)
    assert text_in("ACHA").status_code == 200  # STOP in Swahili, by SMS
    assert dial(svc, request.id) == "suppressed"
    assert twilio_standin.calls == [] and row(svc, request.id).outcome == "opted_out"


def test_a_number_no_longer_kept_is_not_called(svc, twilio_standin):
    request = beep(svc)
    svc.session.execute(update(Reporter).where(Reporter.id == request.reporter_id)
                        .values(phone_expires_at=utcnow() - timedelta(days=1)))
    svc.session.commit()
    assert dial(svc, request.id) == "failed" and twilio_standin.calls == []


def test_the_rate_limit_per_line_holds_across_two_workers(app, app_config, svc, twilio_standin):
    """Two worker processes (two apps: own database pools, own Redis connections) dial at
    once: on one line, one call every 30 s at 2 a minute; the others wait their turn
    without using an attempt; another line has its own pace."""
    config = {**app_config, "CALLBACK_RATE": 2}  # one call every 30 s per line
    workers = [create_app(config), create_app(config)]
    ids = [beep(svc, n).id for n in (REPORTER, OTHER_REPORTER, THIRD)] + [beep(svc, "+243990000004", OTHER_LINE).id]
    for request_id in ids:
        time_passes(svc, request_id)
    outcomes, errors = {}, []
    barrier = threading.Barrier(len(ids))

    def work(worker, request_id):
        try:
            with worker.app_context():
                own = Services.current()
                barrier.wait()
                outcomes[request_id] = callbacks.place(own, request_id)
                own.session.close()
        except Exception as exc:  # reported below, not swallowed
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(workers[i % 2], rid)) for i, rid in enumerate(ids)]
    [t.start() for t in threads]
    [t.join(30) for t in threads]
    for worker in workers:
        worker.extensions["db"].engine.dispose()
    assert errors == []
    assert sorted(outcomes[i] for i in ids[:3]) == ["calling", "paced", "paced"] and outcomes[ids[3]] == "calling"
    assert sorted(c.sender for c in twilio_standin.calls) == [LINE, OTHER_LINE]
    for request_id in ids[:3]:
        waiting = row(svc, request_id)
        if outcomes[request_id] == "paced":
            assert waiting.status == "queued" and waiting.attempts == 0 and close_to(waiting.next_attempt_at, 30)


def test_two_workers_with_the_same_request_place_one_call(app, app_config, svc, twilio_standin):
    """A job run twice at once (a redelivery, the sweep's copy) dials once: the claim decides."""
    request = beep(svc)
    time_passes(svc, request.id)
    workers = [app, create_app(app_config)]
    twilio_standin.call_delay = 0.3  # the first claim's call is still in flight when the second looks
    outcomes, errors, barrier = [], [], threading.Barrier(2)

    def work(worker):
        try:
            with worker.app_context():
                own = Services.current()
                barrier.wait()
                outcomes.append(callbacks.place(own, request.id))
                own.session.close()
        except Exception as exc:  # reported below, not swallowed
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(w,)) for w in workers]
    [t.start() for t in threads]
    [t.join(30) for t in threads]
    workers[1].extensions["db"].engine.dispose()
    assert errors == [] and "calling" in outcomes and len(twilio_standin.calls) == 1
    assert row(svc, request.id).attempts == 1


# --- what the provider says -----------------------------------------------------------

def test_the_status_callback_must_be_signed(svc, client, sign, twilio_standin):
    request = beep(svc)
    dial(svc, request.id)
    [(url, params)] = [(u, p) for u, p in twilio_standin.progress(twilio_standin.calls[0])][-1:]
    path = url[len(PUBLIC_BASE_URL):]
    assert client.post(path, data=params).status_code == 403
    forged = dict(params, CallStatus="busy")
    assert client.post(path, data=forged, headers={"X-Twilio-Signature": sign(url, params)}).status_code == 403
    other_request = path.replace(f"callback={request.id}", f"callback={request.id + 1}")
    assert client.post(other_request, data=params, headers={"X-Twilio-Signature": sign(url, params)}).status_code == 403
    assert row(svc, request.id).status == "calling"
    assert client.post(path, data=params, headers={"X-Twilio-Signature": sign(url, params)}).status_code == 204
    assert row(svc, request.id).status == "answered"


def test_late_and_repeated_reports_change_nothing(svc, client, sign, twilio_standin):
    twilio_standin.end_calls(REPORTER, "no-answer", "completed")
    request = beep(svc)
    dial(svc, request.id)
    first = twilio_standin.progress(twilio_standin.calls[0])
    post = lambda url, params: client.post(url[len(PUBLIC_BASE_URL):], data=params,  # noqa: E731
                                           headers={"X-Twilio-Signature": sign(url, params)})
    post(*first[-1])
    dial(svc, request.id)
    post(*first[-1])  # attempt 1's report again, while attempt 2 rings
    assert row(svc, request.id).status == "calling" and row(svc, request.id).attempts == 2
    for url, params in twilio_standin.progress(twilio_standin.calls[1]) * 2:
        assert post(url, params).status_code == 204
    done = row(svc, request.id)
    assert done.status == "answered" and done.attempts == 2 and len(twilio_standin.calls) == 2


def test_the_voice_webhook_can_mark_a_call_back_answered(svc, twilio_standin):
    request = beep(svc)
    dial(svc, request.id)
    assert callbacks.mark_answered(svc.session, request.id, twilio_standin.calls[0].sid)
    assert row(svc, request.id).status == "answered"
    assert not callbacks.mark_answered(svc.session, request.id)


# --- a worker killed mid-dial -------------------------------------------------------------

def test_an_answer_lost_after_the_call_left_is_found_in_the_call_log_not_dialled_again(svc, client, sign,
                                                                                     twilio_standin):
    twilio_standin.cut_calls(1)  # the call is placed, its answer never arrives
    request = beep(svc)
    assert dial(svc, request.id) == "dialing"
    assert callbacks.place(svc, request.id) == "dialing"  # the job again: not re-dialled
    assert callbacks.sweep(svc)["recovered"] == 0  # too early to trust the log
    time_passes(svc, request.id, claimed=True)
    assert callbacks.sweep(svc)["recovered"] == 1
    found = row(svc, request.id)
    assert found.status == "calling" and found.call_sid == twilio_standin.calls[0].sid  # it rings
    assert twilio_standin.call_lookups >= 1
    report(client, sign, twilio_standin, twilio_standin.calls[0])
    assert row(svc, request.id).status == "answered" and len(twilio_standin.calls) == 1


def test_a_worker_killed_before_the_call_left_dials_once_after_the_sweep(svc, twilio_standin):
    request = beep(svc)
    svc.session.execute(update(CallbackRequest).where(CallbackRequest.id == request.id).values(
        status="dialing", attempts=1, claimed_at=utcnow() - timedelta(seconds=3600)))  # claimed, then killed
    svc.session.commit()
    assert callbacks.sweep(svc)["recovered"] == 1
    assert row(svc, request.id).status == "queued" and row(svc, request.id).outcome == "not_placed"
    assert dial(svc, request.id) == "calling"
    assert dial(svc, request.id) == "calling" and len(twilio_standin.calls) == 1


def test_without_a_call_log_an_unknown_dial_is_given_up_rather_than_rung_twice(svc, twilio_standin):
    twilio_standin.cut_calls(1)
    twilio_standin.call_log = False
    request = beep(svc)
    assert dial(svc, request.id) == "dialing"
    time_passes(svc, request.id, claimed=True)
    callbacks.sweep(svc)
    failed = row(svc, request.id)
    assert failed.status == "failed" and failed.outcome == "unknown_outcome"
    assert len(twilio_standin.calls) == 1


def test_a_call_whose_end_was_never_reported_is_asked_about(svc, twilio_standin):
    twilio_standin.end_calls(REPORTER, "busy")
    request = beep(svc)
    dial(svc, request.id)
    twilio_standin.progress(twilio_standin.calls[0])  # it ended; the report was lost
    time_passes(svc, request.id, claimed=True)
    assert callbacks.sweep(svc)["checked"] == 1
    assert row(svc, request.id).status == "queued" and row(svc, request.id).outcome == "busy"


def test_the_sweep_queues_again_a_due_call_back_whose_job_was_lost(app, svc, redis_url):
    request = beep(svc)
    redis.Redis.from_url(redis_url).flushdb()  # Redis restarted: the job is gone
    time_passes(svc, request.id)
    report = jobs.sweep()
    assert report["callbacks"] == {"queued": 1, "recovered": 0, "checked": 0}
    assert [j.func_name for j in Queue(queue.QUEUE, connection=redis.Redis.from_url(redis_url)).jobs] == [
        queue.PLACE_CALLBACK]
    assert "callbacks" not in jobs.sweep()  # its job waits: not queued twice


# --- the operators' view ------------------------------------------------------------------

def test_the_queue_for_operators_shows_counts_and_requests_and_never_a_number(svc, client, sign, text_in,
                                                                              twilio_standin):
    twilio_standin.end_calls(OTHER_REPORTER, "busy")
    answered = beep(svc)
    dial(svc, answered.id)
    report(client, sign, twilio_standin, twilio_standin.calls[0])
    retried = beep(svc, OTHER_REPORTER, OTHER_LINE, "hung_up")
    dial(svc, retried.id)
    report(client, sign, twilio_standin, twilio_standin.calls[1])
    waiting = beep(svc, THIRD)
    text_in("STOP", sender="+243990000004")
    suppressed = beep(svc, "+243990000004", OTHER_LINE)
    assert client.get("/api/v1/callbacks").status_code == 401
    response = client.get("/api/v1/callbacks", headers=API_HEADERS)
    assert response.status_code == 200
    out = response.json
    assert out["counts"] == {"total": 4, "by_status": {"answered": 1, "queued": 2, "suppressed": 1},
                             "by_line": {LINE: {"answered": 1, "queued": 1},
                                         OTHER_LINE: {"queued": 1, "suppressed": 1}}}
    listed = {r["id"]: r for r in out["callbacks"]}
    assert list(listed) == [suppressed.id, waiting.id, retried.id, answered.id]  # newest first
    assert listed[retried.id] | {"created_at": None, "next_attempt_at": None, "last_attempt_at": None} == {
        "id": retried.id, "line": OTHER_LINE, "channel": "twilio", "reason": "hung_up", "status": "queued",
        "attempts": 1, "beeps": 1, "outcome": "busy", "failure_reason": None, "reporter_id": retried.reporter_id,
        "created_at": None, "next_attempt_at": None, "last_attempt_at": None, "answered_at": None,
        "finished_at": None}
    assert listed[answered.id]["answered_at"] is not None
    text = response.get_data(as_text=True)
    for number in (REPORTER, OTHER_REPORTER, THIRD, "+243990000004"):
        assert number[4:] not in text  # neither in E.164 nor in national form
    assert all(call.sid not in text for call in twilio_standin.calls)
    only = client.get(f"/api/v1/callbacks?status=queued&line={OTHER_LINE.replace('+', '%2B')}", headers=API_HEADERS)
    assert [r["id"] for r in only.json["callbacks"]] == [retried.id]
    assert client.get("/api/v1/callbacks?status=ringing", headers=API_HEADERS).status_code == 400
