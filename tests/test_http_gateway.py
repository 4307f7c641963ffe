"""The generic HTTP gateway (service/channels/http.py) as a relay app and an aggregator
see it: signed JSON or form webhooks, renamed fields, delivery reports, signed sends to
a local stand-in (tests/http_gateway_standin.py), and the Twilio path's guarantees:
stored first and once, per-sender order, "received" when the engine is slow, opt-out
honoured, no number in clear."""

from __future__ import annotations

import json
import logging
import socket
import uuid
from datetime import datetime, timedelta, timezone
from urllib.parse import urlencode

import pytest
from sqlalchemy import func, select

from bot import messages
from service import jobs, outbox, scheduler
from service.app import create_app
from service.channels import ChannelConfigError, load
from service.channels.base import LookupUnsupported, SendError
from service.channels.http import HttpGatewayChannel, _retry_after, signature
from service.models import Message, Reporter
from tests.conftest import ACCOUNT_SID, AUTH_TOKEN, OTHER_REPORTER, REPORTER
from tests.http_gateway_standin import HttpGatewayStandin

SECRET = "relay1-inbound-secret-0123456789"
SEND_SECRET = "relay1-outbound-secret-0123456789"
FORM_SECRET = "relay2-shared-secret-0123456789"
RELAY1, RELAY2 = "/webhooks/http/relay1/sms", "/webhooks/http/relay2/sms"
STATUS1 = "/webhooks/http/relay1/status"
# a reporter's number as it may appear anywhere: E.164, national, bare digits
NUMBER_FORMS = (REPORTER, REPORTER[1:], "0" + REPORTER[4:], REPORTER[4:])


@pytest.fixture
def gateway():
    standin = HttpGatewayStandin(SEND_SECRET).start()
    yield standin
    standin.stop()


@pytest.fixture
def form_gateway():
    """A relay app with its own names: form bodies, phone/message/ref, message_id."""
    standin = HttpGatewayStandin(FORM_SECRET, fields={"to": "phone", "text": "message", "id": "ref"},
                                 id_field="message_id", error_field="reason").start()
    yield standin
    standin.stop()


def relay1(gateway) -> dict:
    return {"name": "relay1", "kind": "http", "secret": SECRET, "send_secret": SEND_SECRET,
            "send_url": gateway.send_url, "lookup_url": gateway.lookup_url, "from": "+243990000100",
            "timeout": 5, "status_map": {"DELIVRD": "delivered", "UNDELIV": "undelivered"},
            "opted_out_errors": ["UserInBlacklist"], "invalid_number_errors": ["InvalidPhoneNumber"]}


def relay2(form_gateway) -> dict:
    return {"name": "relay2", "kind": "http", "secret": FORM_SECRET, "send_url": form_gateway.send_url,
            "encoding": "form", "fields": {
                "inbound": {"from": "sender", "text": "message", "id": "uid", "to": None,
                            "received_at": "sent_timestamp"},
                "status": {"id": "uid", "status": "state", "error": "reason"},
                "send": {"to": "phone", "text": "message", "from": None, "id": "ref"},
                "answer": {"id": "message_id", "error": "reason"}}}


@pytest.fixture
def app_config(app_config, gateway, form_gateway, twilio_standin):
    channels = [{"name": "twilio", "kind": "twilio", "account_sid": ACCOUNT_SID, "auth_token": AUTH_TOKEN,
                 "from": "+243990000000", "api_base": twilio_standin.url, "default": True},
                relay1(gateway), relay2(form_gateway)]
    return {**app_config, "CHANNELS": json.dumps(channels)}


def signed(body: bytes, secret: str = SECRET) -> dict:
    return {"X-Alerte-Signature": signature(body, secret)}


@pytest.fixture
def relay_in(client):
    """relay_in(text, sender=REPORTER, id=None, **fields) -> response: a signed JSON SMS."""
    def send(text: str, sender: str = REPORTER, id: str | None = None, **extra):
        doc = {"from": sender, "to": "+243990000100", "text": text, "id": id or uuid.uuid4().hex, **extra}
        body = json.dumps(doc).encode()
        return client.post(RELAY1, data=body, headers={**signed(body), "Content-Type": "application/json"})
    return send


def _count(db, *where) -> int:
    db.rollback()
    return db.scalar(select(func.count()).select_from(Message).where(*where))


def _messages(db, direction):
    db.rollback()
    return db.scalars(select(Message).where(Message.direction == direction).order_by(Message.id)).all()


def _queued(db, number=REPORTER, body="Alerte: route Beni-Butembo dangereuse", provider="relay1"):
    from flask import current_app

    from service.reporters import seen

    reporter = seen(db, current_app.extensions["identity"], number)
    db.flush()
    message = outbox.record(db, reporter, body, provider=provider)
    db.commit()
    return reporter, message


# --- inbound ---------------------------------------------------------------------------

def test_each_gateway_gets_its_http_routes(app):
    rules = {r.rule for r in app.url_map.iter_rules()}
    assert {RELAY1, STATUS1, RELAY2, "/webhooks/http/relay2/status", "/webhooks/twilio/sms"} <= rules


def test_a_signed_json_sms_is_stored_answered_and_the_reply_sent_signed(app, relay_in, db, engine, gateway):
    response = relay_in("watu wenye silaha wako kasindi", id="relay-msg-1")
    assert response.status_code == 200 and response.get_json() == {}
    [inbound] = _messages(db, "in")
    assert (inbound.provider, inbound.provider_id, inbound.status) == ("relay1", "relay-msg-1", "processed")
    assert engine.texts == ["watu wenye silaha wako kasindi"]
    [reply] = _messages(db, "out")
    assert reply.provider == "relay1" and reply.status == "queued"  # no inline answer: sent by a job

    scheduler.work(app, burst=True)

    [taken] = gateway.sent
    assert (taken.to, taken.text, taken.sender) == (REPORTER, "Recu: watu wenye silaha wako kasindi",
                                                    "+243990000100")
    assert gateway.forged == 0 and taken.content_type == "application/json"  # signed with send_secret
    [reply] = _messages(db, "out")
    assert taken.reference == f"alerte-{reply.id}"  # ours, the same on every attempt: the gateway can dedupe
    assert (reply.status, reply.provider_id) == ("sent", taken.id)


def test_a_form_sms_with_renamed_fields_is_read_and_answered_in_form(app, client, db, engine, form_gateway):
    when = datetime(2024, 5, 1, 6, 30, tzinfo=timezone.utc)
    body = urlencode({"sender": "0990000001", "message": "bato ya mandoki bakoti", "uid": "42",
                      "sent_timestamp": str(int(when.timestamp() * 1000))}).encode()
    response = client.post(RELAY2, data=body, headers={**signed(body, FORM_SECRET),
                                                       "Content-Type": "application/x-www-form-urlencoded"})
    assert response.status_code == 200
    [inbound] = _messages(db, "in")
    assert inbound.provider_id == "42" and inbound.body == "bato ya mandoki bakoti"
    assert inbound.created_at.replace(tzinfo=timezone.utc) == when  # milliseconds read as such
    assert db.get(Reporter, inbound.reporter_id).key == app.extensions["identity"].key(REPORTER)

    scheduler.work(app, burst=True)

    [taken] = form_gateway.sent
    assert taken.content_type == "application/x-www-form-urlencoded"
    assert (taken.to, taken.text, taken.sender) == (REPORTER, "Recu: bato ya mandoki bakoti", None)
    assert _messages(db, "out")[0].provider_id == taken.id  # the answer's "message_id"


def test_a_multipart_form_is_read_too(client, db):
    boundary = "XyZ"
    parts = [("sender", REPORTER), ("message", "habari"), ("uid", "mp-1")]
    body = "".join(f"--{boundary}\r\nContent-Disposition: form-data; name=\"{k}\"\r\n\r\n{v}\r\n"
                   for k, v in parts).encode() + f"--{boundary}--\r\n".encode()
    response = client.post(RELAY2, data=body, headers={**signed(body, FORM_SECRET),
                                                       "Content-Type": f"multipart/form-data; boundary={boundary}"})
    assert response.status_code == 200
    assert [m.provider_id for m in _messages(db, "in")] == ["mp-1"]


def test_nested_json_fields_are_read_by_dotted_names(app, app_config, gateway):  # app: empty tables
    own = create_app({**app_config, "CHANNELS": json.dumps([{
        "name": "nested", "kind": "http", "secret": SECRET, "send_url": gateway.send_url,
        "fields": {"inbound": {"from": "payload.from", "text": "payload.message", "id": "payload.uid"}}}])})
    body = json.dumps({"payload": {"from": REPORTER, "message": "salut", "uid": "n-1"}}).encode()
    response = own.test_client().post("/webhooks/http/nested/sms", data=body, headers=signed(body))
    assert response.status_code == 200
    with own.app_context():
        from service.db import get_session
        assert get_session().scalar(select(Message.provider_id).where(Message.direction == "in")) == "n-1"
    own.extensions["db"].engine.dispose()


@pytest.mark.parametrize("headers", [
    {},                                                            # unsigned
    {"X-Alerte-Signature": "sha256=" + "0" * 64},                  # forged
    {"X-Alerte-Signature": "sha256=not-hex"},                      # garbled
    {"X-Alerte-Signature": "sha256="},                             # empty
    {"X-Alerte-Signature": "md5=" + "0" * 32},                     # another scheme
    {"X-Alerte-Signature": "garbage"},
])
def test_an_unsigned_forged_or_garbled_request_is_refused_and_nothing_is_stored(client, db, engine, headers):
    body = json.dumps({"from": REPORTER, "text": "x", "id": "f-1"}).encode()
    assert client.post(RELAY1, data=body, headers=headers).status_code == 403
    assert client.post(STATUS1, data=json.dumps({"id": "f-1", "status": "failed"}), headers=headers).status_code == 403
    assert _count(db) == 0 and db.scalar(select(func.count()).select_from(Reporter)) == 0
    assert engine.calls == []


def test_a_signature_by_another_key_or_of_another_body_is_refused(client, db):
    body = json.dumps({"from": REPORTER, "text": "x", "id": "f-2"}).encode()
    assert client.post(RELAY1, data=body, headers=signed(body, SEND_SECRET)).status_code == 403  # not ours
    assert client.post(RELAY1, data=body, headers=signed(body, FORM_SECRET)).status_code == 403  # relay2's
    assert client.post(RELAY2, data=body, headers=signed(body)).status_code == 403  # relay1's on relay2
    other = body.replace(b'"x"', b'"y"')
    assert client.post(RELAY1, data=other, headers=signed(body)).status_code == 403  # body changed
    assert client.post(RELAY1, data=body + b" ", headers=signed(body)).status_code == 403  # one byte more
    assert _count(db) == 0


def test_an_uppercase_hex_signature_is_the_same_signature(client, db):
    body = json.dumps({"from": REPORTER, "text": "x", "id": "u-1"}).encode()
    header = signature(body, SECRET).upper().replace("SHA256=", "sha256=")
    assert client.post(RELAY1, data=body, headers={"X-Alerte-Signature": header}).status_code == 200


@pytest.mark.parametrize("body, says", [
    (b"{not json", b"not JSON"),
    (b"\xff\xfe", b"not JSON"),
    (b'["a list"]', b"JSON object"),
    (json.dumps({"from": REPORTER, "text": "x"}).encode(), b"id and from are required"),
    (json.dumps({"id": "m-1", "text": "x"}).encode(), b"id and from are required"),
    (json.dumps({"id": "  ", "from": REPORTER, "text": "x"}).encode(), b"required"),
    (json.dumps({"id": "m-1", "from": "not-a-number", "text": "x"}).encode(), b"from is not a phone number"),
    (json.dumps({"id": "m-1", "from": "+24399000", "text": "x"}).encode(), b"from is not a phone number"),
    (json.dumps({"id": "m-1", "from": {"n": 1}, "text": "x"}).encode(), b"from must be a string"),
    (json.dumps({"id": "x" * 65, "from": REPORTER, "text": "x"}).encode(), b"id is too long"),
    (json.dumps({"id": "m-1", "from": REPORTER, "text": "x", "received_at": "yesterday"}).encode(),
     b"received_at is not an ISO 8601 time"),
])
def test_a_malformed_request_is_a_clear_400_and_nothing_is_stored(client, db, engine, body, says):
    response = client.post(RELAY1, data=body, headers=signed(body))
    assert response.status_code == 400 and says in response.data
    assert not any(form.encode() in response.data for form in NUMBER_FORMS)
    assert _count(db) == 0 and engine.calls == []


def test_a_huge_body_is_refused_with_413(client, db):
    body = json.dumps({"from": REPORTER, "text": "x" * 70_000, "id": "big"}).encode()
    assert client.post(RELAY1, data=body, headers=signed(body)).status_code == 413
    assert _count(db) == 0


def test_a_repeated_id_is_stored_once_and_answered_once(app, relay_in, db, engine, gateway):
    first = relay_in("bato ya mandoki bakoti na mboka", id="dup-1")
    second = relay_in("bato ya mandoki bakoti na mboka", id="dup-1")
    assert first.status_code == second.status_code == 200
    scheduler.work(app, burst=True)
    assert _count(db, Message.direction == "in") == 1 and _count(db, Message.direction == "out") == 1
    assert len(engine.calls) == 1 and len(gateway.sent) == 1


def test_the_same_id_on_two_gateways_is_two_messages(client, relay_in, db):
    relay_in("habari", id="7")
    body = urlencode({"sender": OTHER_REPORTER, "message": "habari", "uid": "7"}).encode()
    client.post(RELAY2, data=body, headers={**signed(body, FORM_SECRET),
                                            "Content-Type": "application/x-www-form-urlencoded"})
    assert sorted(m.provider for m in _messages(db, "in")) == ["relay1", "relay2"]


def test_a_slow_engine_the_reporter_is_sent_received_then_the_answer(app, relay_in, db, engine, gateway):
    engine.slow = True  # the turn ran, but too late for the webhook
    assert relay_in("wanamgambo wameingia kasindi").status_code == 200
    [inbound] = _messages(db, "in")
    assert inbound.status == "pending"
    engine.slow = False

    scheduler.work(app, burst=True)

    notice, answer = messages.render("received", "sw"), "Recu: wanamgambo wameingia kasindi"
    assert [m.body for m in _messages(db, "out")] == [notice, answer]  # the answer: what Rasa had kept
    assert sorted(t.text for t in gateway.sent) == sorted([notice, answer])  # both sent (by two jobs)
    assert len(engine.calls) == 1 and all(t.to == REPORTER for t in gateway.sent)


def test_messages_forwarded_late_are_answered_in_the_order_written(app, relay_in, db, engine, gateway):
    engine.down = True
    written = datetime.now(timezone.utc) - timedelta(minutes=10)
    # the relay phone forwards the second message first
    relay_in("wako na bunduki", received_at=(written + timedelta(minutes=1)).isoformat())
    relay_in("wanamgambo wameingia kasindi", received_at=written.strftime("%Y-%m-%dT%H:%M:%SZ"))
    engine.down = False

    scheduler.work(app, burst=True)

    assert engine.texts == ["wanamgambo wameingia kasindi", "wako na bunduki"]
    assert [t.text for t in gateway.sent if t.text.startswith("Recu")] == [
        "Recu: wanamgambo wameingia kasindi", "Recu: wako na bunduki"]


def test_a_time_ahead_of_ours_is_taken_as_now(relay_in, db, engine):
    engine.down = True
    relay_in("habari", received_at=(datetime.now(timezone.utc) + timedelta(days=2)).isoformat())
    [inbound] = _messages(db, "in")
    assert inbound.created_at.replace(tzinfo=timezone.utc) <= datetime.now(timezone.utc)


def test_stop_through_the_gateway_opts_out_and_the_confirmation_still_leaves(app, relay_in, db, gateway):
    relay_in("STOP")
    db.rollback()
    assert db.scalar(select(Reporter)).opted_out
    scheduler.work(app, burst=True)
    assert [t.text for t in gateway.sent] == [messages.render("opted_out", "fr")]


# --- inline answers ---------------------------------------------------------------------

def test_a_relay_app_taking_replies_inline_gets_them_as_json(app, app_config, engine):  # app: empty tables
    own = create_app({**app_config, "CHANNELS": json.dumps([{
        "name": "phone1", "kind": "http", "secret": SECRET, "inline_replies": True,
        "fields": {"reply": {"messages": "payload"}}}])})
    client = own.test_client()
    body = json.dumps({"from": REPORTER, "text": "habari", "id": "in-1"}).encode()
    first = client.post("/webhooks/http/phone1/sms", data=body, headers=signed(body))
    again = client.post("/webhooks/http/phone1/sms", data=body, headers=signed(body))
    assert first.get_json() == {"payload": ["Recu: habari"]}
    assert again.status_code == 200 and again.get_json() == {"payload": []}  # a duplicate: nothing twice
    with own.app_context():
        from service.db import get_session
        assert get_session().scalar(select(Message.status).where(Message.direction == "out")) == "handed"
    own.extensions["db"].engine.dispose()


# --- delivery reports -------------------------------------------------------------------

def _sent_message(app, db, gateway, number=REPORTER):
    reporter, message = _queued(db, number)
    assert jobs.send_message(message.id) == "sent"
    db.rollback()
    return reporter, db.get(Message, message.id)


def test_delivery_reports_repeat_and_arrive_out_of_order_and_only_move_forward(app, client, db, gateway):
    reporter, message = _sent_message(app, db, gateway)

    def report(status, error=None, secret=SECRET):
        doc = {"id": message.provider_id, "status": status, **({"error": error} if error else {})}
        body = json.dumps(doc).encode()
        response = client.post(STATUS1, data=body, headers=signed(body, secret))
        db.rollback()
        return response.status_code, db.get(Message, message.id).status

    assert report("queued") == (204, "sent")
    assert report("DELIVRD") == (204, "delivered")  # the gateway's word, mapped
    assert report("sent") == (204, "delivered")  # late
    assert report("UNDELIV", "30003") == (204, "delivered")
    assert report("failed", secret=SEND_SECRET)[0] == 403  # our sending key signs nothing inbound
    body = json.dumps({"id": "GW-not-ours", "status": "delivered"}).encode()
    assert client.post(STATUS1, data=body, headers=signed(body)).status_code == 204
    body = json.dumps({"status": "delivered"}).encode()
    assert client.post(STATUS1, data=body, headers=signed(body)).status_code == 400


def test_an_undelivered_report_keeps_the_gateways_error(app, client, db, gateway):
    reporter, message = _sent_message(app, db, gateway)
    body = json.dumps({"id": message.provider_id, "status": "weird-state", "error": "Absent subscriber"}).encode()
    assert client.post(STATUS1, data=body, headers=signed(body)).status_code == 204
    db.rollback()
    message = db.get(Message, message.id)
    assert (message.status, message.error_code) == ("failed", "Absent subscriber")


def test_a_report_saying_the_person_opted_out_opts_them_out(app, client, db, gateway):
    reporter, message = _sent_message(app, db, gateway)
    body = json.dumps({"id": message.provider_id, "status": "failed", "error": "userinblacklist"}).encode()
    assert client.post(STATUS1, data=body, headers=signed(body)).status_code == 204
    db.rollback()
    assert db.get(Reporter, reporter.id).opted_out


def test_a_gateway_without_ids_of_its_own_reports_by_our_reference(app, client, db, gateway):
    gateway.answer_without_id = True
    reporter, message = _sent_message(app, db, gateway)
    [taken] = gateway.sent
    assert message.provider_id == taken.reference
    body = json.dumps({"id": taken.reference, "status": "delivered"}).encode()
    client.post(STATUS1, data=body, headers=signed(body))
    db.rollback()
    assert db.get(Message, message.id).status == "delivered"


# --- sending ----------------------------------------------------------------------------

def test_a_number_opted_out_at_the_gateway_stops_every_later_send(app, db, gateway):
    gateway.refuse(REPORTER, "UserInBlacklist", status=403)
    reporter, first = _queued(db)
    _, second = _queued(db, body="Alerte: second message")
    assert jobs.send_message(first.id) == "failed"
    db.rollback()
    assert db.get(Message, first.id).error_code == "UserInBlacklist"
    assert db.get(Reporter, reporter.id).opted_out
    assert jobs.send_message(second.id) == "suppressed"
    assert len(gateway.requests) == 1 and gateway.sent == []  # nothing more was even tried
    _, third = _queued(db, body="Alerte: a broadcast")
    assert third.status == "suppressed"


def test_an_invalid_number_fails_without_retry_or_opt_out(app, db, gateway):
    gateway.refuse(OTHER_REPORTER, "InvalidPhoneNumber")
    reporter, message = _queued(db, OTHER_REPORTER)
    assert jobs.send_message(message.id) == "failed"
    db.rollback()
    assert not db.get(Reporter, reporter.id).opted_out
    assert db.get(Message, message.id).error_code == "InvalidPhoneNumber"


def test_a_429_is_retried_after_the_time_the_gateway_asked(app, db, gateway):
    gateway.throttle(1, retry_after="7")
    reporter, message = _queued(db)
    with pytest.raises(SendError) as raised:
        jobs.send_message(message.id)
    assert raised.value.retryable and not raised.value.unknown and raised.value.retry_after == 7.0
    db.rollback()
    assert (db.get(Message, message.id).status, db.get(Message, message.id).error_code) == ("queued", "http_429")
    assert jobs.send_message(message.id) == "sent"  # the retry
    assert len(gateway.sent) == 1


def test_a_gateway_error_is_retried(app, db, gateway):
    gateway.fail(1, status=503)
    reporter, message = _queued(db)
    with pytest.raises(SendError) as raised:
        jobs.send_message(message.id)
    assert raised.value.retryable and raised.value.retry_after is None
    assert jobs.send_message(message.id) == "sent" and len(gateway.sent) == 1


def test_retry_after_as_an_http_date():
    later = (datetime.now(timezone.utc) + timedelta(seconds=120)).strftime("%a, %d %b %Y %H:%M:%S GMT")
    assert 100 < _retry_after(later) <= 120
    assert _retry_after("garbage") is None and _retry_after(None) is None and _retry_after("0") == 0.0


def _channel(**settings) -> HttpGatewayChannel:
    return HttpGatewayChannel({"name": "t", "kind": "http", "secret": SECRET, **settings}, {})


def test_a_refused_connection_never_reached_the_gateway_and_is_retried():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with pytest.raises(SendError) as raised:
        _channel(send_url=f"http://127.0.0.1:{port}/send").send(REPORTER, "x")
    assert raised.value.retryable and not raised.value.unknown


def test_a_slow_answer_is_an_unknown_outcome(gateway):
    gateway.delay = 1.0
    with pytest.raises(SendError) as raised:
        _channel(send_url=gateway.send_url, send_secret=SEND_SECRET, timeout=0.3).send(REPORTER, "x")
    assert raised.value.unknown
    assert not any(form in str(raised.value) for form in NUMBER_FORMS)


def test_a_connection_cut_after_the_gateway_took_it_is_found_in_its_record_not_sent_twice(app, db, gateway):
    gateway.cut(1)
    reporter, message = _queued(db)
    assert jobs.send_message(message.id) == "sent"  # unknown, then found by the lookup
    [taken] = gateway.sent
    db.rollback()
    assert db.get(Message, message.id).provider_id == taken.id and gateway.lookups == 1


def test_a_cut_send_not_in_the_record_is_sent_again(app, db, gateway):
    gateway.cut(1, keep=False)  # the connection dropped and the gateway has no trace of it
    reporter, message = _queued(db)
    assert jobs.send_message(message.id) == "queued"  # never reached it: may be sent again
    assert gateway.lookups == 1 and gateway.sent == []
    assert jobs.send_message(message.id) == "sent" and len(gateway.sent) == 1


def test_without_a_lookup_a_cut_send_is_failed_for_an_operator_not_sent_twice(app, db, form_gateway):
    form_gateway.cut(1)
    reporter, message = _queued(db, provider="relay2")
    assert jobs.send_message(message.id) == "failed"
    db.rollback()
    assert db.get(Message, message.id).error_code == "unknown" and len(form_gateway.sent) == 1
    with pytest.raises(LookupUnsupported):
        _channel(send_url=form_gateway.send_url).find_sent(REPORTER, "x", datetime.now(timezone.utc))


def test_a_lookup_that_cannot_answer_leaves_the_send_for_the_sweep(gateway):
    channel = _channel(send_url=gateway.send_url, lookup_url=gateway.url + "/nowhere", send_secret=SEND_SECRET)
    with pytest.raises(SendError):
        channel.find_sent(REPORTER, "x", datetime.now(timezone.utc))


def test_what_we_send_is_signed_over_the_exact_body(gateway):
    channel = _channel(send_url=gateway.send_url)  # signs with SECRET, the stand-in expects SEND_SECRET
    with pytest.raises(SendError) as raised:
        channel.send(REPORTER, "x")
    assert raised.value.code == "bad signature" and not raised.value.retryable
    assert gateway.forged == 1 and gateway.sent == []


# --- configuration ----------------------------------------------------------------------

@pytest.mark.parametrize("settings, problem", [
    ({"secret": None}, "secret is required"),
    ({"send_url": None}, "send_url is required unless inline_replies"),
    ({"encoding": "xml"}, "encoding"),
    ({"send_url": "ftp://x"}, "http"),
    ({"fields": {"inbound": {"sender": "x"}}}, "unknown field"),
    ({"fields": {"outbound": {}}}, "unknown section"),
    ({"fields": {"inbound": {"id": None}}}, "cannot be dropped"),
    ({"status_map": {"OK": "great"}}, "status_map"),
    ({"opted_out_errors": "UserInBlacklist"}, "list"),
    ({"timeout": "soon"}, "timeout"),
])
def test_a_bad_gateway_entry_is_refused_at_boot(settings, problem):
    entry = {"name": "relay", "kind": "http", "secret": SECRET, "send_url": "https://relay.example.org/send",
             **settings}
    with pytest.raises(ChannelConfigError, match=problem):
        load({"CHANNELS": json.dumps([entry])})


def test_production_refuses_a_weak_secret_or_numbers_sent_in_clear():
    entry = {"name": "relay", "kind": "http", "secret": "short", "send_url": "http://relay.example.org/send"}
    with pytest.raises(ChannelConfigError, match="secret is a development value.*unencrypted"):
        load({"CHANNELS": [entry], "ALERTE_ENV": "production"})
    fine = [{**entry, "secret": SECRET, "send_url": "https://relay.example.org/send"},
            {**entry, "name": "phone", "secret": SECRET, "send_url": "http://192.168.1.20:8080/send"}]
    assert load({"CHANNELS": fine, "ALERTE_ENV": "production"})


# --- reporter safety --------------------------------------------------------------------

def test_no_phone_number_in_any_log_or_response(app, client, relay_in, db, engine, gateway, caplog):
    caplog.set_level(logging.DEBUG)
    responses = [relay_in("watu wenye silaha wako kasindi"), relay_in("x", id="dup"), relay_in("x", id="dup")]
    engine.down = True
    responses.append(relay_in("wako na bunduki"))
    engine.down = False
    gateway.throttle(1)
    scheduler.work(app, burst=True)  # replies and the "received" notice; one send throttled
    gateway.cut(1)
    _, cut = _queued(db, body="Alerte: route coupee")
    assert jobs.send_message(cut.id) == "sent"  # outcome unknown, then found by the lookup
    gateway.refuse(REPORTER, "UserInBlacklist: " + REPORTER)  # a gateway echoing the number back
    _, refused = _queued(db)
    assert jobs.send_message(refused.id) == "failed"
    for body in (b"{bad", json.dumps({"from": REPORTER + "9", "id": "z", "text": "x"}).encode()):
        responses.append(client.post(RELAY1, data=body, headers=signed(body)))
    responses.append(client.post(RELAY1, data=json.dumps({"from": REPORTER, "id": "q"})))  # unsigned
    body = json.dumps({"id": "nope", "status": REPORTER, "error": REPORTER}).encode()
    responses.append(client.post(STATUS1, data=body, headers=signed(body)))

    assert len(gateway.sent) >= 3 and "+243…01" in caplog.text  # the flows above ran, and logged masked
    db.rollback()
    stored = " ".join(f"{m.error_code} {m.failure_reason}" for m in db.scalars(select(Message)))
    for form in NUMBER_FORMS:
        assert form not in caplog.text
        assert form not in stored
        for response in responses:
            assert form.encode() not in response.data
