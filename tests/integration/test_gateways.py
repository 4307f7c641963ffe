"""A complete alert conversation in each language over each local gateway, end to end:
the gateway's real callback format into the Flask app, the trained Rasa server, the
action server, Redis and SQLite or PostgreSQL; replies leave through the gateway's real
client (Africa's Talking's SDK, the twilio library at Somleng's base URL, the generic
gateway's signed HTTP POST) to a stand-in speaking its wire format, and are read back from it."""

from __future__ import annotations

import base64
import hashlib
import hmac
import itertools
import json
import os
import uuid
from datetime import datetime, timezone

import pytest
from sqlalchemy import select
from sqlalchemy.orm import selectinload
from twilio.request_validator import RequestValidator

from service.db import get_session
from service.models import Alert, Message
from tests.africastalking_standin import AfricasTalkingStandin
from tests.http_gateway_standin import HttpGatewayStandin
from tests.smpp_standin import SmppStandin
from tests.integration.phone import replies, says
from tests.twilio_standin import TwilioStandin

AT_USER, AT_PASSWORD, SHORT_CODE = "at", "integration-callback-secret", "12345"
HTTP_SECRET, HTTP_SEND_SECRET = "integration-relay-secret-0123", "integration-relay-send-secret-0123"
SOMLENG_SID, SOMLENG_TOKEN, SOMLENG_FROM = "AC" + "7" * 32, "integration-somleng-token", "+243810000200"
FULL = {
    "fr": ["bonjour", "ils ont attaque notre village", "Oicha", "hier soir", "deux morts", "ADF", "oui"],
    "sw": ["habari", "wameshambulia kijiji chetu", "Kiwanja", "jana usiku", "2", "M23", "ndiyo"],
    "ln": ["mbote", "babundisi mboka na biso", "Bunia", "lobi na butu", "3", "CODECO", "iyo"],
}
_numbers = itertools.count(1)


@pytest.fixture
def at_standin():
    standin = AfricasTalkingStandin("alerte", "integration-at-key").start()
    yield standin
    standin.stop()


@pytest.fixture
def somleng_standin():
    standin = TwilioStandin().start()
    yield standin
    standin.stop()


@pytest.fixture
def relay_standin():
    standin = HttpGatewayStandin(HTTP_SEND_SECRET).start()
    yield standin
    standin.stop()


@pytest.fixture
def gateways_app(app_config, twilio_standin, at_standin, somleng_standin, relay_standin):
    from service.app import create_app

    channels = [
        {"name": "twilio", "kind": "twilio", "account_sid": app_config["TWILIO_ACCOUNT_SID"],
         "auth_token": app_config["TWILIO_AUTH_TOKEN"], "from": "+243990000000",
         "api_base": twilio_standin.url, "default": True},
        {"name": "africastalking", "kind": "africastalking", "username": "alerte", "api_key": "integration-at-key",
         "short_code": SHORT_CODE, "callback_user": AT_USER, "callback_password": AT_PASSWORD,
         "api_base": at_standin.url},
        {"name": "somleng", "kind": "somleng", "account_sid": SOMLENG_SID, "auth_token": SOMLENG_TOKEN,
         "from": SOMLENG_FROM, "api_base": somleng_standin.url},
        {"name": "relay1", "kind": "http", "secret": HTTP_SECRET, "send_secret": HTTP_SEND_SECRET,
         "send_url": relay_standin.send_url, "from": "+243990000100"},
    ]
    return create_app({**app_config, "CHANNELS": json.dumps(channels)})


def _number() -> str:
    return f"+24381{os.getpid() % 100:02d}{next(_numbers):05d}"


class AtPhone:
    """A reporter on Africa's Talking: callbacks with Basic credentials, replies sent later."""

    def __init__(self, app, standin):
        self.app, self.client, self.standin, self.number = app, app.test_client(), standin, _number()
        self.seen = 0

    def post(self, text: str, message_id: str | None = None):
        form = {"from": self.number, "to": SHORT_CODE, "text": text, "id": message_id or str(uuid.uuid4()),
                "date": datetime.now(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
                "networkCode": "63001"}
        auth = base64.b64encode(f"{AT_USER}:{AT_PASSWORD}".encode()).decode()
        return self.client.post("/webhooks/africastalking/sms", data=form, headers={"Authorization": "Basic " + auth})

    def send(self, text: str, run_worker) -> str:
        assert self.post(text).status_code == 200
        run_worker()  # the reply leaves through the SDK, by the send job
        mine = [m for m in self.standin.sent if m.to == self.number]
        new, self.seen = mine[self.seen:], len(mine)
        return "\n".join(m.message for m in new)


class RelayPhone:
    """A reporter behind an aggregator's HTTP gateway: signed JSON in, signed JSON out."""

    def __init__(self, app, standin):
        self.client, self.standin, self.number, self.seen = app.test_client(), standin, _number(), 0

    def send(self, text: str, run_worker) -> str:
        body = json.dumps({"from": self.number, "to": "+243990000100", "text": text,
                           "id": uuid.uuid4().hex}).encode()
        signature = "sha256=" + hmac.new(HTTP_SECRET.encode(), body, hashlib.sha256).hexdigest()
        response = self.client.post("/webhooks/http/relay1/sms", data=body,
                                    headers={"X-Alerte-Signature": signature, "Content-Type": "application/json"})
        assert response.status_code == 200
        run_worker()
        mine = [m for m in self.standin.sent if m.to == self.number]
        new, self.seen = mine[self.seen:], len(mine)
        return "\n".join(m.text for m in new)


class SomlengPhone:
    """A reporter on Somleng: Twilio-signed callbacks with Somleng's token, TwiML answers."""

    def __init__(self, app):
        self.client, self.number = app.test_client(), _number()

    def send(self, text: str, run_worker=None) -> str:
        params = {"From": self.number, "To": SOMLENG_FROM, "Body": text, "MessageSid": "SM" + uuid.uuid4().hex,
                  "AccountSid": SOMLENG_SID}
        path = "/webhooks/somleng/sms"
        signature = RequestValidator(SOMLENG_TOKEN).compute_signature("https://alerts.example.org" + path, params)
        response = self.client.post(path, data=params, headers={"X-Twilio-Signature": signature})
        assert response.status_code == 200
        return replies(response.get_data(as_text=True))


def _alerts(app):
    with app.app_context():
        return get_session().scalars(select(Alert).options(selectinload(Alert.place))
                                     .where(Alert.status == "new")).all()


QUESTIONS = ["welcome", "ask_place", "ask_when", None, "ask_perpetrator", "confirm", "submitted"]


@pytest.mark.parametrize("gateway", ["africastalking", "relay1", "somleng"])
@pytest.mark.parametrize("lang", ["fr", "sw", "ln"])
def test_a_reporter_completes_an_alert_over_a_local_gateway(gateways_app, at_standin, relay_standin, gateway, lang,
                                                            run_worker_for):
    phone = {"africastalking": lambda: AtPhone(gateways_app, at_standin),
             "relay1": lambda: RelayPhone(gateways_app, relay_standin),
             "somleng": lambda: SomlengPhone(gateways_app)}[gateway]()
    run = run_worker_for(gateways_app)
    for text, expected in zip(FULL[lang], QUESTIONS):
        reply = phone.send(text, run)
        if expected:  # the people question depends on the kind of report
            assert says(reply, expected, lang), f"{gateway}: {text!r} -> {reply!r}, expected {expected} in {lang}"
    [alert] = _alerts(gateways_app)
    assert alert.category == "ATTACK" and alert.language == lang and alert.place is not None
    assert alert.reference in reply
    with gateways_app.app_context():
        rows = get_session().scalars(select(Message)).all()
    assert {m.provider for m in rows} == {gateway}  # every reply left by the channel used
    assert len([m for m in rows if m.direction == "in"]) == len(FULL[lang])


def test_a_repeated_africastalking_callback_is_one_message_and_one_reply(gateways_app, at_standin, run_worker_for):
    phone = AtPhone(gateways_app, at_standin)
    message_id = str(uuid.uuid4())
    assert phone.post("bonjour", message_id).status_code == 200
    assert phone.post("bonjour", message_id).status_code == 200
    run_worker_for(gateways_app)()
    with gateways_app.app_context():
        rows = get_session().scalars(select(Message)).all()
    assert len([m for m in rows if m.direction == "in"]) == 1
    assert len([m for m in at_standin.sent if m.to == phone.number]) == 1


# -- SMPP: the bind's own loop (`alerte smpp`) in a thread, against a stand-in SMSC ---------

@pytest.fixture
def smsc():
    standin = SmppStandin(password="intsmpp1").start()
    yield standin
    standin.stop()


@pytest.fixture
def smpp_app(app_config, smsc):
    import threading

    from service.app import create_app
    from service.channels.smpp_link import Link

    channel = {"name": "smpp", "kind": "smpp", "default": True, "host": "127.0.0.1", "port": smsc.port,
               "system_id": "alerte", "password": "intsmpp1", "source_addr": "1234", "numbers": ["1234"],
               "enquire_link_interval": 1, "reconnect_max": 0.5, "response_timeout": 3, "throughput": 20}
    app = create_app({**app_config, "CHANNELS": json.dumps([channel])})
    link = Link(app, app.extensions["channels"].by_name["smpp"])
    thread = threading.Thread(target=link.run, daemon=True)
    thread.start()
    assert smsc.wait_bound(1)
    yield app
    link.stop()
    thread.join(10)


class SmppPhone:
    """A reporter whose operator's SMSC is bound to us: deliver_sm in, submit_sm out."""

    def __init__(self, smsc):
        self.smsc, self.source, self.seen = smsc, _number().lstrip("+"), 0

    def send(self, text: str, run_worker=None) -> str:
        sequence = self.smsc.deliver(self.source, text)
        assert self.smsc.wait_for(lambda: sequence in self.smsc.acks, 20) and self.smsc.acks[sequence] == 0
        assert self.smsc.wait_for(lambda: len(self.smsc.accepted(self.source)) > self.seen, 30), text
        mine = self.smsc.accepted(self.source)
        new, self.seen = mine[self.seen:], len(mine)
        return "\n".join(m.text for m in new)


@pytest.mark.parametrize("lang", ["fr", "sw", "ln"])
def test_a_reporter_completes_an_alert_over_an_smpp_bind(smpp_app, smsc, lang):
    phone = SmppPhone(smsc)
    for text, expected in zip(FULL[lang], QUESTIONS):
        reply = phone.send(text)
        if expected:
            assert says(reply, expected, lang), f"smpp: {text!r} -> {reply!r}, expected {expected} in {lang}"
    [alert] = _alerts(smpp_app)
    assert alert.category == "ATTACK" and alert.language == lang and alert.reference in reply
    with smpp_app.app_context():
        rows = get_session().scalars(select(Message)).all()
    assert {m.provider for m in rows} == {"smpp"}
    assert len([m for m in rows if m.direction == "in"]) == len(FULL[lang])
    assert len(smsc.accepted(phone.source)) == len(FULL[lang])  # one answer each, none twice
