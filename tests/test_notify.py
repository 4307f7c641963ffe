"""Telling the reporter (service/notify.py): a Swahili reporter who texted through a
local operator's gateway hears "we received your report 482913" on that gateway, once,
through the real worker and the twilio client (stand-ins for both gateways); after STOP,
or once the number's retention is over, nothing."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from sqlalchemy import select
from twilio.request_validator import RequestValidator

from bot import messages
from bot.gsm7 import segments
from bot.languages import LANGUAGES
from service import accounts, inbox, notify, reporters, scheduler, triage
from service.app import create_app
from service.models import Alert, AuditEntry, Message, Reporter, utcnow
from tests.conftest import ACCOUNT_SID, AUTH_TOKEN, PUBLIC_BASE_URL, REPORTER, _empty_tables, new_sid
from tests.twilio_standin import TwilioStandin

SOMLENG_SID = "AC" + "5" * 32
SOMLENG_TOKEN = "somleng-auth-token"
SOMLENG_FROM = "+243810000100"
VODACOM_REPORTER = "+243812345678"  # Vodacom: the somleng channel's carrier
REFERENCE = "482913"


@pytest.fixture
def somleng():
    standin = TwilioStandin().start()
    yield standin
    standin.stop()


@pytest.fixture
def notify_app(app_config, twilio_standin, somleng):
    """Twilio (the default) and a Somleng gateway for Vodacom numbers."""
    entries = [
        {"name": "twilio", "kind": "twilio", "account_sid": ACCOUNT_SID, "auth_token": AUTH_TOKEN,
         "from": "+243990000000", "api_base": twilio_standin.url, "default": True},
        {"name": "somleng", "kind": "somleng", "account_sid": SOMLENG_SID, "auth_token": SOMLENG_TOKEN,
         "from": SOMLENG_FROM, "api_base": somleng.url, "carriers": ["Vodacom"]},
    ]
    app = create_app({**app_config, "CHANNELS": json.dumps(entries)})
    _empty_tables(app)
    yield app
    app.extensions["db"].sessions.remove()
    app.extensions["db"].engine.dispose()


@pytest.fixture
def svc(notify_app):
    with notify_app.app_context():
        services = inbox.Services.current()
        yield services
        services.session.close()


@pytest.fixture
def analyst(svc):
    operator = accounts.create(svc.session, "analyste", "correct horse battery", ["analyst"])
    svc.session.commit()
    return operator


def text(app, channel: str, body: str, sender: str):
    """A reporter's SMS through a channel's signed webhook."""
    account, token, to = ((SOMLENG_SID, SOMLENG_TOKEN, SOMLENG_FROM) if channel == "somleng"
                          else (ACCOUNT_SID, AUTH_TOKEN, "+243990000000"))
    params = {"MessageSid": new_sid(), "AccountSid": account, "From": sender, "To": to, "Body": body}
    path = f"/webhooks/{channel}/sms"
    signature = RequestValidator(token).compute_signature(PUBLIC_BASE_URL + path, params)
    response = app.test_client().post(path, data=params, headers={"X-Twilio-Signature": signature})
    assert response.status_code == 200
    return response


def reported_by_sms(svc, app, channel="somleng", sender=VODACOM_REPORTER,
                    body="wanamgambo wamechoma nyumba kasindi", status="acknowledged") -> int:
    """A reporter texts; their conversation's alert, confirmed with a reference."""
    text(app, channel, body, sender)
    svc.session.rollback()
    inbound = svc.session.scalar(select(Message).where(Message.direction == "in").order_by(Message.id.desc()))
    alert = Alert(reporter_id=inbound.reporter_id, conversation_id=inbound.conversation_id, channel="sms",
                  category="LOOTING", status=status, reference=REFERENCE, description=body)
    svc.session.add(alert)
    svc.session.commit()
    return alert.id


def reported_by_voice(svc, number=REPORTER, language="ln", stated=None, reference=REFERENCE) -> int:
    reporter = reporters.seen(svc.session, svc.identity, number)
    reporter.language = stated
    svc.session.flush()
    alert = Alert(reporter_id=reporter.id, channel="voice", category="ATTACK", status="acknowledged",
                  reference=reference, language=language)
    svc.session.add(alert)
    svc.session.commit()
    return alert.id


def outbound(svc) -> list[Message]:
    svc.session.rollback()
    return svc.session.scalars(select(Message).where(Message.direction == "out", Message.status != "handed")
                               .order_by(Message.id).execution_options(populate_existing=True)).all()


def test_a_swahili_reporter_hears_of_the_acknowledgement_on_the_gateway_they_used(
        notify_app, svc, analyst, somleng, twilio_standin):
    alert_id = reported_by_sms(svc, notify_app)
    told = notify.tell_reporter(svc, svc.session.get(Alert, alert_id), "acknowledged", analyst)  # or its id
    assert told.outcome == notify.QUEUED and told.queued

    [message] = outbound(svc)
    expected = messages.render("triage.acknowledged", "sw", {"reference": REFERENCE})
    assert (message.id, message.language, message.provider, message.status) == (told.message_id, "sw", "somleng",
                                                                                   "queued")
    assert message.body == expected and REFERENCE in expected and message.reply_to_id is None
    assert "kasindi" not in message.body.lower() and "nyumba" not in message.body.lower()  # nothing of the report
    [entry] = svc.session.scalars(select(AuditEntry).where(AuditEntry.action == "alert.reporter_told")).all()
    assert (entry.operator_id, entry.target_type, entry.target_id) == (analyst.id, "alert", str(alert_id))
    assert entry.after["event"] == "acknowledged" and entry.after["channel"] == "somleng"

    scheduler.work(notify_app, burst=True)  # the real worker, the real twilio client, Somleng's stand-in
    assert [(s.to, s.body) for s in somleng.sent] == [(VODACOM_REPORTER, expected)]
    assert twilio_standin.sent == []
    assert outbound(svc)[0].status == "sent"


def test_telling_twice_sends_one_sms_and_the_response_is_another(notify_app, svc, analyst, somleng):
    alert_id = reported_by_sms(svc, notify_app)
    first = notify.tell_reporter(svc, alert_id, "acknowledged", analyst)
    scheduler.work(notify_app, burst=True)
    again = notify.tell_reporter(svc, alert_id, "acknowledged", analyst)
    assert again.outcome == notify.ALREADY and again.message_id == first.message_id and not again.queued
    scheduler.work(notify_app, burst=True)
    assert len(somleng.sent) == 1 and len(outbound(svc)) == 1

    for to, note in (("verified", "contre-enquête: le chef de poste confirme"), ("dispatched", "patrouille")):
        triage.transition(svc.session, alert_id, to, analyst, note)
        svc.session.commit()
    dispatched = notify.tell_reporter(svc, alert_id, "dispatched", analyst)
    assert dispatched.queued and dispatched.message_id != first.message_id
    assert notify.tell_reporter(svc, alert_id, "dispatched", analyst).outcome == notify.ALREADY
    scheduler.work(notify_app, burst=True)
    assert [s.body for s in somleng.sent] == [messages.render(f"triage.{e}", "sw", {"reference": REFERENCE})
                                              for e in ("acknowledged", "dispatched")]
    audited = svc.session.scalars(select(AuditEntry).where(AuditEntry.action == "alert.reporter_told")
                                  .order_by(AuditEntry.id)).all()
    assert [a.after["event"] for a in audited] == ["acknowledged", "dispatched"]


def test_after_stop_the_reporter_is_told_nothing(notify_app, svc, analyst, somleng, twilio_standin):
    alert_id = reported_by_sms(svc, notify_app)
    text(notify_app, "somleng", "ACHA", VODACOM_REPORTER)
    told = notify.tell_reporter(svc, alert_id, "acknowledged", analyst)
    assert told.outcome == notify.OPTED_OUT and told.message_id is None
    scheduler.work(notify_app, burst=True)
    assert outbound(svc) == [] and somleng.sent == [] and twilio_standin.sent == []
    assert svc.session.scalar(select(AuditEntry.id).where(AuditEntry.action == "alert.reporter_told")) is None


def test_a_stop_between_telling_and_sending_wins(notify_app, svc, analyst, somleng):
    alert_id = reported_by_sms(svc, notify_app)
    assert notify.tell_reporter(svc, alert_id, "acknowledged", analyst).queued
    text(notify_app, "somleng", "STOP", VODACOM_REPORTER)  # opt-out is read again at send time
    scheduler.work(notify_app, burst=True)
    assert [m.status for m in outbound(svc)] == ["suppressed"] and somleng.sent == []


def test_an_expired_number_gets_nothing(notify_app, svc, analyst, somleng):
    alert_id = reported_by_sms(svc, notify_app)
    reporter = svc.session.get(Reporter, svc.session.get(Alert, alert_id).reporter_id)
    reporter.phone_expires_at = utcnow() - timedelta(days=1)
    svc.session.commit()
    assert notify.tell_reporter(svc, alert_id, "acknowledged", analyst).outcome == notify.NO_NUMBER
    assert outbound(svc) == []


def test_a_voice_reporter_is_told_by_sms_on_the_channel_that_reaches_them(notify_app, svc, analyst,
                                                                          twilio_standin, somleng):
    """No SMS came in: the channel for messages that start from us (by network, else the default)."""
    airtel = reported_by_voice(svc, REPORTER, language="ln")
    vodacom = reported_by_voice(svc, VODACOM_REPORTER, language="ln", stated="fr", reference="735102")
    assert notify.tell_reporter(svc, airtel, "acknowledged", analyst).queued
    assert notify.tell_reporter(svc, vodacom, "acknowledged", None).queued  # the system may tell too
    first, second = outbound(svc)
    assert (first.provider, first.language, first.conversation_id) == ("twilio", "ln", None)  # the alert's language
    assert (second.provider, second.language) == ("somleng", "fr")  # a stated choice wins
    scheduler.work(notify_app, burst=True)
    assert [(s.to, s.body) for s in twilio_standin.sent] == [
        (REPORTER, messages.render("triage.acknowledged", "ln", {"reference": REFERENCE}))]
    assert [(s.to, s.body) for s in somleng.sent] == [
        (VODACOM_REPORTER, messages.render("triage.acknowledged", "fr", {"reference": "735102"}))]


def test_nothing_to_tell_without_a_reporter_or_a_reference(svc, analyst):
    anonymous = Alert(channel="operator", status="acknowledged", reference="111111")
    svc.session.add(anonymous)
    svc.session.commit()
    assert notify.tell_reporter(svc, anonymous.id, "acknowledged", analyst).outcome == notify.NO_REPORTER
    unconfirmed = reported_by_voice(svc, reference=None)
    assert notify.tell_reporter(svc, unconfirmed, "acknowledged", analyst).outcome == notify.NO_REFERENCE
    assert outbound(svc) == []
    with pytest.raises(ValueError, match="unknown event"):
        notify.tell_reporter(svc, unconfirmed, "closed", analyst)
    with pytest.raises(LookupError):
        notify.tell_reporter(svc, 999999, "acknowledged", analyst)


@pytest.mark.parametrize("lang", LANGUAGES)
@pytest.mark.parametrize("event", sorted(notify.EVENTS))
def test_each_text_is_one_gsm7_sms_carrying_the_reference(lang, event):
    body = messages.render(notify.EVENTS[event], lang, {"reference": "999999"})
    assert segments(body) == 1 and "999999" in body and "{" not in body
    assert body != messages.MESSAGES[notify.EVENTS[event]].format(reference="999999")  # translated, not English


def test_two_operators_telling_at_once_store_one_sms(notify_app, svc, analyst, monkeypatch):
    """Each in its own session and thread, both past the "told before?" look-up before
    either stores (a slow look-up): the alert row taken first makes the second wait and
    find the first's SMS."""
    import threading
    import time

    alert_id = reported_by_sms(svc, notify_app)
    barrier, outcomes = threading.Barrier(2), []
    looked_up = notify.told_before

    def slow(*args):
        found = looked_up(*args)
        time.sleep(0.3)
        return found

    monkeypatch.setattr(notify, "told_before", slow)

    def tell():
        with notify_app.app_context():
            own = inbox.Services.current()
            barrier.wait()
            outcomes.append(notify.tell_reporter(own, alert_id, "acknowledged", None).outcome)
            own.session.close()

    threads = [threading.Thread(target=tell) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert sorted(outcomes) == sorted([notify.QUEUED, notify.ALREADY])
    assert len(outbound(svc)) == 1
