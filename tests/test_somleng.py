"""Somleng (an open-source, Twilio-compatible platform a local operator can run): the
Twilio module pointed at Somleng's base URL, beside a Twilio channel, each with its own
token, routes and account. Somleng signs callbacks and takes messages exactly as
Twilio's API does, so the real twilio client talks to it (here, to a stand-in)."""

from __future__ import annotations

import json

import pytest
from sqlalchemy import select
from twilio.request_validator import RequestValidator

from service import scheduler
from service.app import create_app
from service.models import Message
from tests.conftest import ACCOUNT_SID, AUTH_TOKEN, PUBLIC_BASE_URL, _empty_tables, new_sid
from tests.twilio_standin import TwilioStandin

SOMLENG_SID = "AC" + "5" * 32
SOMLENG_TOKEN = "somleng-auth-token"
SOMLENG_FROM = "+243810000100"


@pytest.fixture
def somleng():
    standin = TwilioStandin().start()
    yield standin
    standin.stop()


@pytest.fixture
def two_channel_app(app_config, twilio_standin, somleng):
    entries = [
        {"name": "twilio", "kind": "twilio", "account_sid": ACCOUNT_SID, "auth_token": AUTH_TOKEN,
         "from": "+243990000000", "api_base": twilio_standin.url},
        {"name": "somleng", "kind": "somleng", "account_sid": SOMLENG_SID, "auth_token": SOMLENG_TOKEN,
         "from": SOMLENG_FROM, "api_base": somleng.url, "carriers": ["Vodacom"]},
    ]
    app = create_app({**app_config, "CHANNELS": json.dumps(entries)})
    _empty_tables(app)
    yield app
    app.extensions["db"].sessions.remove()
    app.extensions["db"].engine.dispose()


def _post(client, path, params, token):
    signature = RequestValidator(token).compute_signature(PUBLIC_BASE_URL + path, params)
    return client.post(path, data=params, headers={"X-Twilio-Signature": signature})


def _params(body, sender="+243812345678", sid=None):
    return {"MessageSid": sid or new_sid(), "AccountSid": SOMLENG_SID, "From": sender, "To": SOMLENG_FROM,
            "Body": body}


def test_a_somleng_sms_is_verified_with_somlengs_token_and_answered_in_twiml(two_channel_app, db):
    client = two_channel_app.test_client()
    params = _params("watu wenye silaha wako kasindi")
    assert _post(client, "/webhooks/somleng/sms", params, AUTH_TOKEN).status_code == 403  # Twilio's token
    assert _post(client, "/webhooks/twilio/sms", params, SOMLENG_TOKEN).status_code == 403
    response = _post(client, "/webhooks/somleng/sms", params, SOMLENG_TOKEN)
    assert response.status_code == 200 and response.mimetype == "text/xml" and "<Message>" in response.text
    db.rollback()
    inbound = db.scalar(select(Message).where(Message.direction == "in"))
    reply = db.scalar(select(Message).where(Message.direction == "out"))
    assert inbound.provider == "somleng" and reply.provider == "somleng" and reply.status == "handed"
    # a repeated delivery of the same MessageSid is stored and answered once
    assert _post(client, "/webhooks/somleng/sms", params, SOMLENG_TOKEN).text.count("<Message>") == 0


def test_a_later_reply_leaves_by_somleng_through_the_real_client(two_channel_app, db, engine, somleng,
                                                                 twilio_standin):
    client = two_channel_app.test_client()
    engine.down = True  # the engine is down: "received" now, the answer later by sending
    assert _post(client, "/webhooks/somleng/sms", _params("wameshambulia kasindi"), SOMLENG_TOKEN).status_code == 200
    engine.down = False
    scheduler.work(two_channel_app, burst=True)
    db.rollback()
    sent = db.scalars(select(Message).where(Message.direction == "out", Message.status == "sent")).all()
    assert len(sent) == 1 and sent[0].provider == "somleng"
    assert [m.to for m in somleng.sent] == ["+243812345678"] and twilio_standin.sent == []
    assert somleng.sent[0].account_sid == SOMLENG_SID and somleng.sent[0].sender == SOMLENG_FROM
    assert somleng.sent[0].status_callback == PUBLIC_BASE_URL + "/webhooks/somleng/status"
    # Somleng's delivery report, signed with its token, moves the message forward
    params = {"MessageSid": sent[0].provider_id, "MessageStatus": "delivered", "AccountSid": SOMLENG_SID}
    assert _post(client, "/webhooks/somleng/status", params, SOMLENG_TOKEN).status_code == 204
    db.rollback()
    assert db.get(Message, sent[0].id).status == "delivered"
