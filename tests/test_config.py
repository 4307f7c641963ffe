"""Development runs with no settings; production refuses to start on a development secret."""

from __future__ import annotations

import pytest

from service import config
from service.app import create_app

PRODUCTION = {
    "ALERTE_ENV": "production", "SECRET_KEY": "s" * 40, "API_TOKEN": "t" * 40, "TWILIO_AUTH_TOKEN": "a" * 32,
    "DATABASE_URL": "postgresql://alerte@db/alerte", "REDIS_URL": "redis://redis:6379/0",
    "PUBLIC_BASE_URL": "https://alerts.example.org", "TWILIO_ACCOUNT_SID": "AC" + "1" * 32,
    "TWILIO_FROM": "+243810000000", "RASA_TOKEN": "r" * 40,
}


def test_development_defaults_need_no_environment():
    settings = config.load(environ={})
    assert settings["ALERTE_ENV"] == "development"
    assert settings["DATABASE_URL"].startswith("sqlite:///") and settings["DATABASE_URL"].endswith("var/alerte.db")
    assert settings["RASA_URL"] == "http://127.0.0.1:5005" and settings["RASA_TIMEOUT"] == 8.0
    assert settings["CONVERSATION_TIMEOUT"] == 30 and settings["ALERT_DRAFT_TIMEOUT"] is None  # the flow decides
    assert settings["PUBLIC_BASE_URL"] == "http://127.0.0.1:8000"


def test_the_environment_then_the_mapping_override_defaults():
    settings = config.load({"RASA_TIMEOUT": "2.5"}, environ={"RASA_TIMEOUT": "4", "CONVERSATION_TIMEOUT": "10"})
    assert settings["RASA_TIMEOUT"] == 2.5 and settings["CONVERSATION_TIMEOUT"] == 10


def test_a_safe_production_configuration_loads():
    assert config.load(environ=PRODUCTION)["ALERTE_ENV"] == "production"


@pytest.mark.parametrize("change, complaint", [
    ({"SECRET_KEY": None}, "SECRET_KEY"),
    ({"SECRET_KEY": config.DEV_SECRET_KEY}, "SECRET_KEY"),
    ({"API_TOKEN": config.DEV_API_TOKEN}, "API_TOKEN"),
    ({"TWILIO_AUTH_TOKEN": None}, "TWILIO_AUTH_TOKEN"),
    ({"DATABASE_URL": "sqlite:///var/alerte.db"}, "PostgreSQL"),
    ({"REDIS_URL": None}, "REDIS_URL"),
    ({"PUBLIC_BASE_URL": None}, "PUBLIC_BASE_URL is unset or the development default"),
    ({"PUBLIC_BASE_URL": config.DEV_PUBLIC_BASE_URL}, "PUBLIC_BASE_URL is unset or the development default"),
    ({"PUBLIC_BASE_URL": "http://alerts.example.org"}, "PUBLIC_BASE_URL must be an https:// URL"),
    ({"PUBLIC_BASE_URL": "https://127.0.0.1:8443"}, "PUBLIC_BASE_URL must not be a loopback"),
    ({"PUBLIC_BASE_URL": "https://127.3.2.1"}, "PUBLIC_BASE_URL must not be a loopback"),
    ({"PUBLIC_BASE_URL": "https://localhost"}, "PUBLIC_BASE_URL must not be a loopback"),
    ({"PUBLIC_BASE_URL": "https://[::1]:8443"}, "PUBLIC_BASE_URL must not be a loopback"),
    ({"TWILIO_ACCOUNT_SID": None}, "TWILIO_ACCOUNT_SID"),
    ({"TWILIO_ACCOUNT_SID": config.DEV_TWILIO_ACCOUNT_SID}, "TWILIO_ACCOUNT_SID"),
    ({"TWILIO_ACCOUNT_SID": config.DEV_TWILIO_ACCOUNT_SID, "TWILIO_MESSAGING_SERVICE_SID": "MG" + "1" * 32},
     "TWILIO_ACCOUNT_SID"),
    ({"TWILIO_FROM": None}, "TWILIO_FROM"),
    ({"TWILIO_FROM": config.DEV_TWILIO_FROM}, "TWILIO_FROM"),
    ({"RASA_TOKEN": None}, "RASA_TOKEN"),
    ({"RASA_TOKEN": ""}, "RASA_TOKEN"),
])
def test_production_refuses_to_start_with_an_unsafe_setting(change, complaint):
    environ = {k: v for k, v in {**PRODUCTION, **change}.items() if v is not None}
    with pytest.raises(config.ConfigError, match=complaint):
        config.load(environ=environ)
    with pytest.raises(config.ConfigError, match=complaint):
        create_app({**PRODUCTION, **change})


def test_a_messaging_service_replaces_the_sender_number():
    settings = config.load(environ={**PRODUCTION, "TWILIO_FROM": config.DEV_TWILIO_FROM,
                                    "TWILIO_MESSAGING_SERVICE_SID": "MG" + "1" * 32})
    assert settings["TWILIO_MESSAGING_SERVICE_SID"].startswith("MG")
    settings = config.load(environ={k: v for k, v in PRODUCTION.items() if k != "TWILIO_FROM"}
                           | {"TWILIO_MESSAGING_SERVICE_SID": "MG" + "1" * 32})
    assert settings["TWILIO_FROM"] == config.DEV_TWILIO_FROM  # loaded, but never used to send


def test_production_names_every_problem_at_once():
    with pytest.raises(config.ConfigError) as refused:
        config.load(environ={"ALERTE_ENV": "production"})
    message = str(refused.value)
    for name in ("SECRET_KEY", "API_TOKEN", "TWILIO_AUTH_TOKEN", "DATABASE_URL", "REDIS_URL", "PUBLIC_BASE_URL",
                 "TWILIO_ACCOUNT_SID", "TWILIO_FROM", "RASA_TOKEN"):
        assert name in message


def test_development_and_tests_accept_the_defaults_and_need_no_rasa_token():
    assert config.load(environ={})["RASA_TOKEN"] is None
    assert config.load(environ={"ALERTE_ENV": "test"})["PUBLIC_BASE_URL"] == config.DEV_PUBLIC_BASE_URL


def test_a_bad_number_setting_is_a_clear_error():
    with pytest.raises(config.ConfigError, match="RASA_TIMEOUT"):
        config.load(environ={"RASA_TIMEOUT": "soon"})


def test_the_app_uses_the_real_engine_unless_given_one(app_config):
    from bot.engine import RasaEngine

    app = create_app({**app_config, "ENGINE": None, "RASA_URL": "http://127.0.0.1:5999", "RASA_TIMEOUT": 3,
                      "RASA_TOKEN": "rasa-token"})
    engine = app.extensions["engine"]
    assert isinstance(engine, RasaEngine) and engine.timeout == 3.0 and engine.base_url.endswith(":5999")
    assert engine.token == "rasa-token"
    assert [c.name for c in app.extensions["channels"]] == ["twilio"]
    app.extensions["db"].engine.dispose()
