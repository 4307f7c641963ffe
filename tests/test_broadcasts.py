"""Safety broadcasts through the API, the fan-out and the senders, on real SQLite and
PostgreSQL, real Redis and the real twilio client talking to the local stand-in.

The jobs are called in the test's process (the worker runs the same functions); the
integration and fault suites run them in real worker processes.
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select

from service import broadcast_sending, bucket
from service.inbox import Services
from service.models import Alert, Broadcast, Message, Place, Reporter, utcnow
from tests.broadcast_factories import API_HEADERS, BENI, BUKAVU, BUNIA, GOMA, KAMANGO, TEXTS, request, subscriber
from tests.conftest import REPORTER

pytestmark = pytest.mark.usefixtures("app")


def post(client, **fields):
    return client.post("/api/v1/broadcasts", json=request(**fields), headers=API_HEADERS)


def run(app, broadcast_id: int, slices: int = 50) -> str:
    """Fan out and send to the end, as the worker's jobs would."""
    with app.app_context():
        svc = Services.current()
        broadcast_sending.fanout(svc, broadcast_id)
        outcome = "continued"
        for _ in range(slices):
            outcome = broadcast_sending.send_slice(svc, broadcast_id, 0)
            if outcome != "continued":
                break
        svc.session.close()
        return outcome


def deliveries(db, broadcast_id: int) -> list[Message]:
    db.expire_all()
    return list(db.scalars(select(Message).where(Message.broadcast_id == broadcast_id).order_by(Message.id)))


@pytest.fixture
def identity(app):
    return app.extensions["identity"]


@pytest.fixture
def people(db, identity):
    """Six subscribers in three languages and four places, one opted out, one without a language."""
    return {
        "beni_fr": subscriber(db, identity, "+243990001001", "fr", BENI, groups=["focal points"]),
        "beni_sw": subscriber(db, identity, "+243990001002", "sw", BENI),
        "kamango_ln": subscriber(db, identity, "+243990001003", "ln", KAMANGO, groups=["focal points"]),
        "goma_sw": subscriber(db, identity, "+243990001004", "sw", GOMA),
        "bunia_none": subscriber(db, identity, "+243990001005", None, BUNIA),
        "bukavu_out": subscriber(db, identity, "+243990001006", "sw", BUKAVU, opted_out=True),
    }


# --- the request --------------------------------------------------------------------------

def test_a_broadcast_shows_each_languages_size_and_cost_and_who_it_reaches(client, people):
    texts = dict(TEXTS, sw="Watu wenye silaha wanaelekea Kamango. Nendeni kanisani. " * 3)
    response = post(client, texts=texts)
    assert response.status_code == 201, response.json
    out = response.json
    assert out["id"] and out["state"] == "scheduled" and out["warnings"] == []
    assert out["languages"]["fr"] == {"characters": len(TEXTS["fr"]), "septets": len(TEXTS["fr"]),
                                      "encoding": "GSM-7", "segments": 1, "recipients": 2}  # Bunia's has no language: fr
    assert out["languages"]["sw"]["segments"] == 2 and out["languages"]["sw"]["recipients"] == 2
    assert out["languages"]["ln"]["recipients"] == 1
    assert out["recipients"] == 5  # the opted-out one is not counted
    assert out["segments"] == 2 * 1 + 2 * 2 + 1 * 1
    for digits in ("990001001", "990001006"):
        assert digits not in response.get_data(as_text=True)


def test_a_missing_language_without_fallback_is_refused_naming_it(client, people):
    response = post(client, texts={"fr": TEXTS["fr"]})
    assert response.status_code == 400
    assert "sw, ln" in response.json["error"] and "fallback_language" in response.json["error"]
    ok = post(client, texts={"fr": TEXTS["fr"], "sw": TEXTS["sw"]}, fallback_language="fr")
    assert ok.status_code == 201 and ok.json["languages"]["fr"]["recipients"] == 3  # ln falls back to fr


def test_transliteration_replaces_only_what_gsm7_cannot_carry(client, people):
    texts = dict(TEXTS, fr="Hôpital fermé à Beni : « restez prudents » — évitez la route.")
    plain = post(client, texts=texts).json["languages"]["fr"]
    assert plain["encoding"] == "UCS-2" and "text" not in plain
    out = post(client, texts=texts, transliterate=True).json["languages"]["fr"]
    assert out["encoding"] == "GSM-7" and out["transliterated"] is True
    assert out["text"] == 'Hopital fermé à Beni : " restez prudents " - évitez la route.'


def test_a_broadcast_reaching_nobody_is_kept_with_a_warning(client):
    response = post(client, targets={"territories": ["CD6208"]})
    assert response.status_code == 201
    assert response.json["recipients"] == 0 and "nobody is reached" in response.json["warnings"][0]


@pytest.mark.parametrize("targets, error", [
    ({"provinces": ["CD99"]}, "not a province"),
    ({"territories": ["CD61"]}, "not a territory"),
    ({"localities": ["Kamango"]}, "names 2 places"),
    ({"groups": ["nobody"]}, "no group"),
    ({"radius": {"lat": 0.5, "lon": 29.4, "km": 900}}, "km must be"),
    ({"all": True, "provinces": ["CD61"]}, "no other target"),
    ({"planets": ["mars"]}, "unknown target kind"),
])
def test_bad_targets_are_refused_with_the_reason(client, targets, error):
    response = post(client, targets=targets)
    assert response.status_code == 400 and error in response.json["error"]


def test_a_reporters_number_in_the_text_is_refused(client, people, text_in):
    text_in("Attaque a Kamango")  # REPORTER now exists
    national = "0" + REPORTER[4:]
    response = post(client, texts=dict(TEXTS, fr=f"Appelez {national} pour aider."))
    assert response.status_code == 422 and "reporter" in response.json["error"]
    assert post(client, texts=dict(TEXTS, fr="Appelez le 0990000999 pour aider.")).status_code == 201


def test_the_api_needs_the_token(client):
    assert client.post("/api/v1/broadcasts", json=request()).status_code == 401
    assert client.get("/api/v1/broadcasts/1").status_code == 401


# --- who is reached -----------------------------------------------------------------------

@pytest.mark.parametrize("targets, reached", [
    ({"all": True}, {"beni_fr", "beni_sw", "kamango_ln", "goma_sw", "bunia_none"}),
    ({"provinces": ["CD54"]}, {"bunia_none"}),
    ({"territories": ["CD6109", "CD6101"]}, {"beni_fr", "beni_sw", "goma_sw"}),
    ({"localities": [KAMANGO]}, {"kamango_ln"}),
    ({"groups": ["focal points"]}, {"beni_fr", "kamango_ln"}),
    ({"radius": {"lat": 0.4911, "lon": 29.4731, "km": 5}}, {"beni_fr", "beni_sw"}),
    ({"radius": {"lat": 0.4911, "lon": 29.4731, "km": 60}}, {"beni_fr", "beni_sw", "kamango_ln"}),
    ({"provinces": ["CD54"], "groups": ["focal points"]}, {"bunia_none", "beni_fr", "kamango_ln"}),
])
def test_each_kind_of_target_reaches_its_subscribers_and_only_them(app, client, db, people, targets, reached):
    response = post(client, targets=targets)
    assert response.status_code == 201, response.json
    assert run(app, response.json["id"]) == "done"
    got = {m.reporter_id for m in deliveries(db, response.json["id"])}
    assert got == {people[name].reporter_id for name in reached}


def test_a_radius_around_an_alert_uses_its_village_and_refuses_restricted_categories(app, client, db, people):
    place = Place(key=KAMANGO, name="Kamango", level="locality", admin1_pcode="CD61", admin2_pcode="CD6107",
                  lat=0.6167, lon=29.9167, source="test")
    attack = Alert(reference="A1", category="ATTACK", place=place, status="new", channel="sms")
    rape = Alert(reference="A2", category="SEXUAL_VIOLENCE", place=place, status="new", channel="sms")
    db.add_all([attack, rape])
    db.commit()
    response = post(client, targets={"radius": {"alert": attack.id, "km": 10}})
    assert response.status_code == 201 and response.json["recipients"] == 1
    assert response.json["targets"]["radius"] == {"lat": 0.6167, "lon": 29.9167, "km": 10.0, "alert": attack.id,
                                                  "place": "Kamango"}
    refused = post(client, targets={"radius": {"alert": rape.id, "km": 10}})
    assert refused.status_code == 400 and "restricted" in refused.json["error"]


# --- sending ------------------------------------------------------------------------------

def test_each_subscriber_gets_their_language_once_and_the_counts_show_it(app, client, db, people, twilio_standin):
    bid = post(client).json["id"]
    assert run(app, bid) == "done"
    sent = {m.to: m.body for m in twilio_standin.sent}
    assert sent == {"+243990001001": TEXTS["fr"], "+243990001002": TEXTS["sw"], "+243990001003": TEXTS["ln"],
                    "+243990001004": TEXTS["sw"], "+243990001005": TEXTS["fr"]}
    assert len(twilio_standin.sent) == 5
    run(app, bid)  # the jobs again (a redelivered job, a sweep): nothing more
    with app.app_context():
        broadcast_sending.fanout(Services.current(), bid)
    assert len(twilio_standin.sent) == 5 and len(deliveries(db, bid)) == 5
    shown = client.get(f"/api/v1/broadcasts/{bid}", headers=API_HEADERS).json
    assert shown["state"] == "sent" and shown["deliveries"] == {"sent": 5}
    assert shown["delivery_languages"] == {"fr": 2, "sw": 2, "ln": 1}


def test_an_opt_out_after_the_fan_out_is_honoured_at_send_time(app, client, db, people, twilio_standin):
    bid = post(client).json["id"]
    with app.app_context():
        broadcast_sending.fanout(Services.current(), bid)
    reporter = db.get(Reporter, people["goma_sw"].reporter_id)
    reporter.opted_out = True
    db.commit()
    assert run(app, bid) == "done"
    assert "+243990001004" not in {m.to for m in twilio_standin.sent} and len(twilio_standin.sent) == 4
    by_reporter = {m.reporter_id: m.status for m in deliveries(db, bid)}
    assert by_reporter[people["goma_sw"].reporter_id] == "suppressed"


def test_stop_by_sms_then_start_again_receives_the_next_broadcast(app, client, db, people, text_in,
                                                                  twilio_standin):
    goma = "+243990001004"
    text_in("STOP", sender=goma)
    assert run(app, post(client).json["id"]) == "done"
    assert goma not in {m.to for m in twilio_standin.sent}
    text_in("ANZA", sender=goma)  # opting back in works: still a subscriber
    before = len(twilio_standin.sent)
    assert run(app, post(client).json["id"]) == "done"
    assert [m.body for m in twilio_standin.sent[before:] if m.to == goma] == [TEXTS["sw"]]


def test_a_stop_while_a_chunk_is_going_out_stops_the_rest_of_that_chunk(app, client, db, people, text_in,
                                                                       twilio_standin):
    """The chunk's opt-outs were read from the database before its first send; a STOP
    stored during the chunk is still honoured for every send after it."""
    with app.app_context():
        channel = app.extensions["channels"].get("twilio")
    channel.send_concurrency = 1  # one after the other, so "after the STOP" is well defined
    goma = "+243990001004"
    stops = []

    def first_send_then_stop(sent):
        if not stops and sent.to != goma:
            stops.append(text_in("STOP", sender=goma).status_code)

    twilio_standin.on_send = first_send_then_stop
    try:
        bid = post(client).json["id"]
        assert run(app, bid) == "done"
    finally:
        twilio_standin.on_send = None
        channel.send_concurrency = 8
    assert stops == [200]
    assert goma not in {m.to for m in twilio_standin.sent} and len(twilio_standin.sent) == 4
    assert {m.reporter_id: m.status for m in deliveries(db, bid)}[people["goma_sw"].reporter_id] == "suppressed"


def test_cancel_stops_what_was_not_sent(app, client, db, people, twilio_standin):
    bid = post(client).json["id"]
    with app.app_context():
        broadcast_sending.fanout(Services.current(), bid)
    response = client.post(f"/api/v1/broadcasts/{bid}/cancel", headers=API_HEADERS)
    assert response.status_code == 200 and response.json == {"id": bid, "state": "canceled", "withdrawn": 5}
    assert run(app, bid) == "canceled"
    assert twilio_standin.sent == [] and {m.status for m in deliveries(db, bid)} == {"canceled"}
    assert client.post(f"/api/v1/broadcasts/{bid}/cancel", headers=API_HEADERS).status_code == 409


def test_a_cancel_while_the_fan_out_writes_a_page_leaves_nothing_queued(app, client, db, people, twilio_standin,
                                                                       monkeypatch):
    from service import targeting

    bid = post(client).json["id"]
    real, calls = targeting.recipients, []

    def recipients(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:  # after the first page, before the second is written
            assert client.post(f"/api/v1/broadcasts/{bid}/cancel", headers=API_HEADERS).status_code == 200
        return real(*args, **kwargs)

    monkeypatch.setattr(targeting, "recipients", recipients)
    monkeypatch.setitem(app.config, "BROADCAST_PAGE", 2)
    with app.app_context():
        broadcast_sending.fanout(Services.current(), bid)
    rows = deliveries(db, bid)
    assert len(rows) == 4 and {m.status for m in rows} == {"canceled"}  # two pages, none left queued
    assert run(app, bid) == "canceled" and twilio_standin.sent == []


def test_an_expired_broadcast_sends_nothing_more(app, client, db, people, twilio_standin):
    bid = post(client).json["id"]
    with app.app_context():
        broadcast_sending.fanout(Services.current(), bid)
    broadcast = db.get(Broadcast, bid)
    broadcast.expires_at = utcnow() - timedelta(seconds=1)
    db.commit()
    assert run(app, bid) == "expired"
    assert twilio_standin.sent == [] and {m.status for m in deliveries(db, bid)} == {"expired"}
    assert db.get(Broadcast, bid).state == "expired"


def test_a_time_given_in_eastern_congo_time_is_kept_as_that_instant(app, client, db, people):
    """SQLite keeps no offset: a +02:00 time must be stored as its UTC instant."""
    from datetime import datetime, timezone
    bid = post(client, send_at="2030-01-01T20:00:00+02:00", expires_at="2030-01-02T08:00:00+02:00").json["id"]
    db.expire_all()
    broadcast = db.get(Broadcast, bid)
    stored = broadcast.send_at if broadcast.send_at.tzinfo else broadcast.send_at.replace(tzinfo=timezone.utc)
    assert stored == datetime(2030, 1, 1, 18, 0, tzinfo=timezone.utc)
    expires = broadcast.expires_at if broadcast.expires_at.tzinfo else broadcast.expires_at.replace(tzinfo=timezone.utc)
    assert expires == datetime(2030, 1, 2, 6, 0, tzinfo=timezone.utc)


def test_a_scheduled_broadcast_waits_for_its_time(app, client, db, people, twilio_standin):
    later = (utcnow() + timedelta(hours=2)).isoformat()
    response = post(client, send_at=later)
    bid = response.json["id"]
    assert response.json["send_at"] == later
    run(app, bid)
    assert twilio_standin.sent == [] and deliveries(db, bid) == [] and db.get(Broadcast, bid).state == "scheduled"
    broadcast = db.get(Broadcast, bid)
    broadcast.send_at = utcnow() - timedelta(seconds=1)  # its time has come
    db.commit()
    assert run(app, bid) == "done" and len(twilio_standin.sent) == 5


def test_transient_failures_are_retried_and_permanent_ones_are_not(app, client, db, people, twilio_standin):
    twilio_standin.fail_for("+243990001001", 20500, status=500)  # Twilio down for this one, for now
    twilio_standin.fail_for("+243990001002", 21211)  # not a valid number: permanent
    twilio_standin.fail_for("+243990001003", 21610)  # stopped at the carrier
    bid = post(client).json["id"]
    assert run(app, bid) == "waiting"
    by_reporter = {m.reporter_id: m for m in deliveries(db, bid)}
    retried = by_reporter[people["beni_fr"].reporter_id]
    assert retried.status == "queued" and retried.next_attempt_at is not None and retried.attempts == 1
    assert by_reporter[people["beni_sw"].reporter_id].status == "failed"
    assert by_reporter[people["beni_sw"].reporter_id].error_code == "21211"
    assert by_reporter[people["kamango_ln"].reporter_id].status == "failed"
    assert db.get(Reporter, people["kamango_ln"].reporter_id).opted_out is True
    del twilio_standin.errors["+243990001001"]
    retried.next_attempt_at = utcnow() - timedelta(seconds=1)  # its back-off is over
    db.commit()
    assert run(app, bid) == "done"
    assert [m.to for m in twilio_standin.sent].count("+243990001001") == 1
    assert db.get(Broadcast, bid).state == "sent"


def test_provider_throttling_pauses_the_channel_without_counting_an_attempt(app, client, db, people, twilio_standin,
                                                                            redis_url):
    twilio_standin.throttle(1)
    bid = post(client).json["id"]
    run(app, bid, slices=1)
    throttled = [m for m in deliveries(db, bid) if m.error_code == "20429"]
    assert len(throttled) == 1 and throttled[0].status == "queued" and throttled[0].attempts == 0
    with app.app_context():
        paused = bucket.for_channel(app.extensions["redis"], app.extensions["channels"].get("twilio")).paused_for()
    assert 0 < paused <= 2.0
    assert len(twilio_standin.sent) == 4


def test_delivery_reports_update_each_delivery_in_any_order(app, client, db, people, twilio_standin, sign):
    bid = post(client, targets={"localities": [KAMANGO]}).json["id"]
    run(app, bid)
    sid = twilio_standin.sent[0].sid

    def report(status, message_sid=sid):
        params = {"MessageSid": message_sid, "MessageStatus": status, "AccountSid": "AC" + "0" * 31 + "1"}
        url = "https://alerte.example.org/webhooks/twilio/status"
        return client.post("/webhooks/twilio/status", data=params, headers={"X-Twilio-Signature": sign(url, params)})

    assert report("delivered").status_code == 204
    assert report("sent").status_code == 204  # late and older: changes nothing
    assert deliveries(db, bid)[0].status == "delivered"
    # a report that arrives before the sender has written the gateway's id is kept and applied then
    early = "SM" + "e" * 32
    assert report("delivered", early).status_code == 204
    message = deliveries(db, bid)[0]
    from service import receipts
    with app.app_context():
        message.status, message.provider_id = "sent", early
        db.commit()
        assert receipts.apply_early(db, app.extensions["redis"], "twilio", {early: message.id}) == 1
    assert deliveries(db, bid)[0].status == "delivered"


def test_the_token_bucket_is_shared_and_replies_go_first(redis_url):
    import redis as redis_lib
    connection = redis_lib.Redis.from_url(redis_url)
    one, other = bucket.Bucket(connection, "gw", 10), bucket.Bucket(connection, "gw", 10)  # two processes
    assert one.take(10) == 0  # a full bucket: one second of sending
    wait = other.take(5)
    assert 0.3 < wait <= 0.5  # the other process sees the same bucket
    assert other.take(5, force=True) == 0  # a reply is never made to wait...
    assert one.take(5) > wait  # ...and the broadcast waits for it
    one.pause(3)
    assert other.take(1) > 2.5 and 2.5 < other.paused_for() <= 3
    assert bucket.Bucket(connection, "free", None).take(10 ** 6) == 0


# --- two-way ------------------------------------------------------------------------------

QUESTION = {"answers": {"1": "safe", "2": "not safe", "3": "leaving"}}
ASKING = {"fr": "Etes-vous en securite ? 1 Oui 2 Non 3 Nous partons",
          "sw": "Muko salama? 1 Ndiyo 2 Hapana 3 Tunaondoka",
          "ln": "Bozali malamu? 1 Iyo 2 Te 3 Tozali kokende"}


def test_answers_to_a_question_are_counted_per_answer_and_area(app, client, db, people, text_in, engine):
    bid = post(client, texts=ASKING, question=QUESTION, targets={"provinces": ["CD61"]}).json["id"]
    assert run(app, bid) == "done"
    assert text_in("1", sender="+243990001001").status_code == 200
    text_in("2.", sender="+243990001002")
    text_in("3 Tunaondoka", sender="+243990001004")
    text_in("2", sender="+243990001001")  # changed their mind: the latest answer counts
    assert engine.calls == []  # none of these is a report for the engine
    tally = client.get(f"/api/v1/broadcasts/{bid}/replies", headers=API_HEADERS).json
    assert tally["total"] == 3 and tally["received"] == 4
    assert {n: a["count"] for n, a in tally["answers"].items()} == {"1": 0, "2": 2, "3": 1}
    areas = {a["admin2_pcode"]: a["answers"] for a in tally["by_area"]}
    assert areas["CD6109"] == {"1": 0, "2": 2, "3": 0} and areas["CD6101"] == {"1": 0, "2": 0, "3": 1}


def test_a_reply_that_is_really_a_new_alert_still_starts_one(app, client, db, people, text_in, engine):
    bid = post(client, texts=ASKING, question=QUESTION).json["id"]
    run(app, bid)
    text_in("1 mais des hommes armes sont ici a Kamango", sender="+243990001003")
    assert [c["text"] for c in engine.calls] == ["mais des hommes armes sont ici a kamango"]  # as the engine reads it (for_nlu)
    tally = client.get(f"/api/v1/broadcasts/{bid}/replies", headers=API_HEADERS).json
    assert tally["answers"]["1"]["count"] == 1


def test_after_a_conversation_a_number_answers_the_conversation_not_the_broadcast(app, client, db, people,
                                                                                   text_in, engine):
    bid = post(client, texts=ASKING, question=QUESTION).json["id"]
    run(app, bid)
    text_in("Attaque a Beni", sender="+243990001001")  # the engine asks its question
    text_in("1", sender="+243990001001")
    assert [c["text"] for c in engine.calls] == ["attaque a beni", "1"]
    assert client.get(f"/api/v1/broadcasts/{bid}/replies", headers=API_HEADERS).json["total"] == 0


# --- CAP 1.2 --------------------------------------------------------------------------------

CAP = "{urn:oasis:names:tc:emergency:cap:1.2}"


def cap_of(client, bid: int):
    from lxml import etree

    response = client.get(f"/api/v1/broadcasts/{bid}/cap.xml", headers=API_HEADERS)
    assert response.status_code == 200 and response.mimetype == "application/cap+xml"
    return response.data, etree.fromstring(response.data)


def test_a_broadcast_is_a_valid_cap_alert_with_one_info_per_language_and_its_areas(app, client, db, people):
    from service import cap

    targets = {"provinces": ["CD54"], "territories": ["CD6107"], "localities": [KAMANGO],
               "radius": {"lat": 1.56789123, "lon": 30.2512345, "km": 3}}
    bid = post(client, targets=targets, status="Exercise").json["id"]
    document, root = cap_of(client, bid)
    assert cap.validate(document) == []
    assert root.findtext(f"{CAP}status") == "Exercise" and root.findtext(f"{CAP}msgType") == "Alert"
    infos = root.findall(f"{CAP}info")
    assert [i.findtext(f"{CAP}language") for i in infos] == ["fr", "sw", "ln"]
    assert [i.findtext(f"{CAP}description") for i in infos] == [TEXTS["fr"], TEXTS["sw"], TEXTS["ln"]]
    assert all(i.findtext(f"{CAP}category") == "Security" for i in infos)
    areas = infos[0].findall(f"{CAP}area")
    geocodes = [a.findtext(f"{CAP}geocode/{CAP}value") for a in areas]
    assert geocodes[:2] == ["CD54", "CD6107"]
    circles = [c.text for c in root.iter(f"{CAP}circle")]
    assert circles and set(circles) == {"1.57,30.25 3"}  # about 1 km: a village's area, never a household
    assert "1.5678" not in document.decode() and "30.2512" not in document.decode()
    text = document.decode()
    for number in ("990001001", "990001003"):  # no subscriber's number, in any form
        assert number not in text


def test_a_radius_around_an_alert_names_its_village_not_the_alert(app, client, db, people):
    from service import cap

    place = Place(key=KAMANGO, name="Kamango", level="locality", admin1_pcode="CD61", admin2_pcode="CD6107",
                  lat=0.6167, lon=29.9167, source="test")
    attack = Alert(reference="KMG-77", category="ATTACK", place=place, status="new", channel="sms",
                   description="the reporter's own words, never in a broadcast")
    db.add(attack)
    db.commit()
    bid = post(client, targets={"radius": {"alert": attack.id, "km": 10}}).json["id"]
    document, root = cap_of(client, bid)
    assert cap.validate(document) == []
    text = document.decode()
    assert "Kamango" in text and "KMG-77" not in text and "own words" not in text
    assert f">{attack.id}<" not in text


def test_a_canceled_broadcast_is_a_cap_cancel_referencing_the_alert(app, client, db, people):
    from service import cap

    bid = post(client).json["id"]
    run(app, bid, slices=0)
    original, root = cap_of(client, bid)
    assert client.post(f"/api/v1/broadcasts/{bid}/cancel", headers=API_HEADERS).status_code == 200
    document, canceled = cap_of(client, bid)
    assert cap.validate(document) == []
    assert canceled.findtext(f"{CAP}msgType") == "Cancel"
    identifier, sender, sent = (root.findtext(f"{CAP}{n}") for n in ("identifier", "sender", "sent"))
    assert canceled.findtext(f"{CAP}references") == f"{sender},{identifier},{sent}"
    assert canceled.findtext(f"{CAP}identifier") != identifier


def test_the_atom_feed_lists_active_broadcasts_only(app, client, db, people):
    from lxml import etree

    atom = "{http://www.w3.org/2005/Atom}"
    kept = post(client).json["id"]
    gone = post(client).json["id"]
    run(app, kept)
    run(app, gone, slices=0)
    client.post(f"/api/v1/broadcasts/{gone}/cancel", headers=API_HEADERS)
    later = post(client, send_at=(utcnow() + timedelta(hours=2)).isoformat()).json["id"]
    response = client.get("/api/v1/cap/feed", headers=API_HEADERS)
    assert response.status_code == 200 and response.mimetype == "application/atom+xml"
    feed = etree.fromstring(response.data)
    links = [e.find(f"{atom}link").get("href") for e in feed.findall(f"{atom}entry")]
    assert [link.rsplit("/", 2)[-2] for link in links] == [str(kept)]  # not the canceled, not the later one
    assert later not in (gone, kept)


def test_replies_count_against_the_channels_rate_without_waiting(app, redis_url, text_in, engine, twilio_standin):
    """A reply takes its segments from the bucket at once (never waits, the bucket goes
    into debt), so a broadcast sender sharing the channel finds less room."""
    import redis as redis_client

    connection = redis_client.Redis.from_url(redis_url)
    with app.app_context():
        channel = app.extensions["channels"].get("twilio")
    channel.send_rate = 0.001  # so slow that nothing refills while the test runs
    try:
        assert text_in("Attaque a Beni", sender="+243990001001").status_code == 200  # inline, handed
        with app.app_context():
            svc = Services.current()
            assert svc.send(outbox_record(svc, "+243990001002").id) == "sent"  # sent by the worker's path
        tokens = float(connection.hget("alerte:bucket:twilio", "tokens"))
        # a full bucket holds at least one send (1 segment here): the first reply empties
        # it, the second is taken all the same and leaves it one segment in debt
        assert abs(tokens - -1) < 0.01
        assert len(twilio_standin.sent) == 1  # the second reply was not held back
    finally:
        channel.send_rate = None


def outbox_record(svc, number: str):
    from service import outbox, reporters

    reporter = reporters.seen(svc.session, svc.identity, number)
    reply = outbox.record(svc.session, reporter, "Sawa", language="sw", provider="twilio")
    svc.session.commit()
    return reply


# --- conversations first (service/priority.py) ---------------------------------------------

def test_a_sender_hands_its_worker_back_when_a_reporters_job_waits(app, client, db, people, redis_url,
                                                                    twilio_standin):
    """In a worker that also takes reporters' jobs, a job waiting in their queue ends the
    slice before the chunk is claimed: nothing sent, nothing counted as an attempt."""
    import redis as redis_client

    connection = redis_client.Redis.from_url(redis_url)
    app.config["WORKER_TAKES_REPLIES"] = True
    connection.rpush("rq:queue:alerte", "a-reply-job")
    bid = post(client).json["id"]
    with app.app_context():
        svc = Services.current()
        broadcast_sending.fanout(svc, bid)
        assert broadcast_sending.send_slice(svc, bid, 0) == "continued"
    assert twilio_standin.sent == []
    assert {(m.status, m.attempts) for m in deliveries(db, bid)} == {("queued", 0)}
    connection.delete("rq:queue:alerte")  # the worker took it
    assert run(app, bid) == "done"
    assert len(twilio_standin.sent) == 5 and {(m.status, m.attempts) for m in deliveries(db, bid)} == {("sent", 1)}


def test_a_reply_job_arriving_mid_chunk_puts_the_rest_of_the_chunk_back(app, client, db, people, redis_url,
                                                                        twilio_standin, monkeypatch):
    """Items are asked one by one: after the reply job appears, the rest of the chunk goes
    back to the queue untouched, and the broadcast later reaches each person once."""
    import redis as redis_client

    from service import priority
    monkeypatch.setattr(priority, "POLL", 0.0)  # every item looks at Redis: five sends fit in one 20 ms poll

    connection = redis_client.Redis.from_url(redis_url)
    app.config["WORKER_TAKES_REPLIES"] = True
    with app.app_context():
        channel = app.extensions["channels"].get("twilio")
    channel.send_concurrency = 1  # one after the other, so "after the job" is well defined
    twilio_standin.on_send = lambda sent: connection.rpush("rq:queue:alerte", "a-reply-job")
    try:
        bid = post(client).json["id"]
        with app.app_context():
            svc = Services.current()
            broadcast_sending.fanout(svc, bid)
            assert broadcast_sending.send_slice(svc, bid, 0) == "continued"
        twilio_standin.on_send = None
        sent_first = len(twilio_standin.sent)
        assert sent_first == 1  # the job was there before the second item asked
        rows = deliveries(db, bid)
        assert sorted((m.status, m.attempts) for m in rows) == \
            [("queued", 0)] * (5 - sent_first) + [("sent", 1)] * sent_first
        connection.delete("rq:queue:alerte")
        assert run(app, bid) == "done"
    finally:
        twilio_standin.on_send = None
        channel.send_concurrency = 8
    assert sorted(m.to for m in twilio_standin.sent) == sorted({m.to for m in twilio_standin.sent})
    assert len(twilio_standin.sent) == 5


def test_a_turn_that_never_ends_slows_a_broadcast_but_never_stops_it(app, client, db, people, redis_url,
                                                                     twilio_standin):
    import time

    import redis as redis_client

    from service import priority

    connection = redis_client.Redis.from_url(redis_url)
    connection.zadd(priority.TURNS_KEY, {"a-turn-that-hangs": time.time() + 60})
    app.config["BROADCAST_GIVE_WAY"] = 0.1
    assert run(app, post(client).json["id"]) == "done"
    assert len(twilio_standin.sent) == 5


def test_the_webhook_marks_the_turn_while_it_runs(app, redis_url, text_in, engine):
    """What a sender sees while a reporter is answered: the mark, there during the turn
    and gone after it."""
    import redis as redis_client

    from service import priority

    connection = redis_client.Redis.from_url(redis_url)
    seen, converse = [], engine.converse

    def watched(*args, **kwargs):
        seen.append(priority.pressure(connection, None)[0])
        return converse(*args, **kwargs)

    engine.converse = watched
    assert text_in("Attaque a Beni", sender="+243990001001").status_code == 200
    assert seen and seen[0] == 1
    assert priority.pressure(connection, None)[0] == 0
