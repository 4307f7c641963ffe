"""The channel-neutral core (service/channels): several channels from data, routes per
channel, replies by the channel used, messages that start from us by mobile network,
and no provider's field names, status names or error codes outside its module."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from service import channels as channels_mod
from service.app import create_app
from service.channels import ChannelConfigError, Channels, load
from service.channels.base import STATUSES, moves_forward
from service.privacy import InvalidNumber, normalise

ROOT = Path(__file__).resolve().parent.parent

TWO_TWILIOS = [
    {"name": "twilio", "kind": "twilio", "account_sid": "AC" + "1" * 32, "auth_token": "t1",
     "from": "+243990000100", "carriers": ["Airtel"]},
    {"name": "somleng", "kind": "twilio", "account_sid": "AC" + "2" * 32, "auth_token": "t2",
     "from": "+243810000000", "api_base": "http://127.0.0.1:9", "carriers": ["Vodacom"], "default": True},
]


def test_without_a_channels_list_the_twilio_settings_make_the_one_channel():
    found = load({"TWILIO_ACCOUNT_SID": "AC" + "0" * 32, "TWILIO_AUTH_TOKEN": "x", "TWILIO_FROM": "+243990000000"})
    assert [c.name for c in found] == ["twilio"] and found.default.name == "twilio"
    assert found.default.inbound_path() == "/webhooks/twilio/sms"
    assert found.default.status_path() == "/webhooks/twilio/status"


def test_channels_come_from_a_file_or_json(tmp_path):
    path = tmp_path / "channels.yml"
    path.write_text("channels:\n" + "".join(
        f"  - {json.dumps(entry)}\n" for entry in TWO_TWILIOS), encoding="utf-8")
    from_file = load({"CHANNELS_FILE": str(path)})
    from_json = load({"CHANNELS": json.dumps(TWO_TWILIOS)})
    for found in (from_file, from_json):
        assert [c.name for c in found] == ["twilio", "somleng"] and found.default.name == "somleng"
        assert found.get("twilio").sender == "+243990000100"


@pytest.mark.parametrize("number, name", [
    ("+243990000001", "twilio"),    # Airtel
    ("+243970000001", "twilio"),    # Airtel
    ("+243810000001", "somleng"),   # Vodacom
    ("+243840000001", "somleng"),   # Orange: not configured, the default
    ("+15005550006", "somleng"),    # no carrier known
])
def test_a_message_that_starts_from_us_takes_the_recipients_network_else_the_default(number, name):
    assert load({"CHANNELS": TWO_TWILIOS}).for_recipient(number).name == name


def test_a_removed_channel_falls_back_to_the_default():
    found = load({"CHANNELS": TWO_TWILIOS})
    assert found.get("gone") is found.default and found.get(None) is found.default


@pytest.mark.parametrize("entries, problem", [
    ([], "non-empty"),
    ([{"name": "x"}], "needs a name and a kind"),
    ([{"name": "x", "kind": "carrier-pigeon"}], "unknown kind"),
    ([TWO_TWILIOS[0], TWO_TWILIOS[0]], "used twice"),
    ([{**TWO_TWILIOS[0], "name": "Bad Name"}], "lower-case"),
    ([{**TWO_TWILIOS[0], "auth_token": ""}], "auth_token"),
])
def test_a_bad_channels_list_is_refused_at_boot_naming_the_entry(entries, problem):
    with pytest.raises(ChannelConfigError, match=problem):
        load({"CHANNELS": json.dumps(entries)})


def test_production_refuses_a_channel_with_development_secrets():
    from service.config import DEV_TWILIO_ACCOUNT_SID, DEV_TWILIO_AUTH_TOKEN
    entry = {**TWO_TWILIOS[0], "account_sid": DEV_TWILIO_ACCOUNT_SID, "auth_token": DEV_TWILIO_AUTH_TOKEN}
    with pytest.raises(ChannelConfigError, match="channel twilio: account_sid"):
        load({"CHANNELS": [entry], "ALERTE_ENV": "production"})
    assert load({"CHANNELS": TWO_TWILIOS, "ALERTE_ENV": "production"})  # real-looking values pass


def test_each_channel_gets_its_own_routes(app_config):
    app = create_app({**app_config, "CHANNELS": json.dumps(TWO_TWILIOS)})
    rules = {r.rule for r in app.url_map.iter_rules()}
    assert {"/webhooks/twilio/sms", "/webhooks/twilio/status",
            "/webhooks/somleng/sms", "/webhooks/somleng/status"} <= rules
    # an unsigned request to either is refused before anything is read
    client = app.test_client()
    for path in ("/webhooks/twilio/sms", "/webhooks/somleng/sms", "/webhooks/somleng/status"):
        assert client.post(path, data={"From": "+243990000001", "Body": "x", "MessageSid": "SM1"}).status_code == 403
    app.extensions["db"].engine.dispose()


def test_statuses_only_move_forward():
    assert set(STATUSES) >= {"queued", "sent", "delivered", "undelivered", "failed"}
    assert moves_forward("sent", "delivered") and not moves_forward("delivered", "sent")
    assert not moves_forward("failed", "delivered") and moves_forward(None, "sent")


@pytest.mark.parametrize("raw, e164", [
    ("+243 81 234 5678", "+243812345678"), ("0812345678", "+243812345678"), ("243812345678", "+243812345678"),
    ("00243812345678", "+243812345678"), ("+250 788 123 456", "+250788123456"), ("+1 415 555 0100", "+14155550100"),
])
def test_numbers_are_normalised_by_phonenumbers(raw, e164):
    assert normalise(raw) == e164


@pytest.mark.parametrize("raw", ["+24381234567", "+2438123456789", "081234", "+999123456789", "abc"])
def test_impossible_numbers_are_refused(raw):
    with pytest.raises(InvalidNumber):
        normalise(raw)


# What only a provider's module may know: its field names, status names, error codes.
PROVIDER_WORDS = re.compile(r"21610|21614|MessageSid|MessageStatus|SmsSid|linkId|networkCode|"
                            r"failureReason|UserInBlacklist|submit_sm|deliver_sm|X-Twilio")
# the development chat tool plays a Twilio phone on purpose
ALLOWED = {"service/chat.py"}


def test_no_provider_detail_outside_its_channel_module():
    offenders = []
    for path in sorted((ROOT / "service").rglob("*.py")):
        rel = path.relative_to(ROOT).as_posix()
        if rel.startswith("service/channels/") and rel != "service/channels/base.py" or rel in ALLOWED:
            continue
        if rel.startswith("service/channels/base.py"):
            text = path.read_text(encoding="utf-8").split('"""', 2)[-1]  # the docstring may name examples
        else:
            text = path.read_text(encoding="utf-8")
        for n, line in enumerate(text.splitlines(), 1):
            if PROVIDER_WORDS.search(line):
                offenders.append(f"{rel}:{n}: {line.strip()}")
    assert offenders == []


@pytest.mark.parametrize("variable", [None, "HTTPS_PROXY", "REQUESTS_CA_BUNDLE"])
def test_the_twilio_client_reads_the_environment_only_when_it_says_something(monkeypatch, variable):
    """requests' environment lookups cost a fifth of a send; a proxy or CA bundle set there
    must still be honoured."""
    from service.channels import twilio_default
    from service.channels.twilio import ENVIRONMENT_SETTINGS, TwilioChannel
    for name in ENVIRONMENT_SETTINGS:
        monkeypatch.delenv(name, raising=False)
    if variable:
        monkeypatch.setenv(variable, "http://proxy.example.org:3128" if "PROXY" in variable else "/etc/ssl/ca.pem")
    config = {"TWILIO_ACCOUNT_SID": "AC" + "0" * 31 + "1", "TWILIO_AUTH_TOKEN": "t", "TWILIO_FROM": "+243990000000",
              "PUBLIC_BASE_URL": "https://alerte.example.org", "TWILIO_API_BASE": None}
    channel = TwilioChannel(twilio_default(config), config)
    assert channel.client.http_client.session.trust_env is (variable is not None)
