"""Development runs with no settings; production refuses to start on a development secret."""

from __future__ import annotations

import pytest

from service import config
from service.app import create_app

PRODUCTION = {
    "ALERTE_ENV": "production", "SECRET_KEY": "s" * 40, "API_TOKEN": "t" * 40, "TWILIO_AUTH_TOKEN": "a" * 32,
    "DATABASE_URL": "postgresql://alerte@db/alerte", "REDIS_URL": "redis://redis:6379/0",
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
])
def test_production_refuses_to_start_with_an_unsafe_setting(change, complaint):
    environ = {k: v for k, v in {**PRODUCTION, **change}.items() if v is not None}
    with pytest.raises(config.ConfigError, match=complaint):
        config.load(environ=environ)
    with pytest.raises(config.ConfigError, match=complaint):
        create_app({**PRODUCTION, **change})


def test_a_bad_number_setting_is_a_clear_error():
    with pytest.raises(config.ConfigError, match="RASA_TIMEOUT"):
        config.load(environ={"RASA_TIMEOUT": "soon"})


def test_the_app_uses_the_real_engine_unless_given_one(app_config):
    from bot.engine import RasaEngine

    app = create_app({**app_config, "ENGINE": None, "RASA_URL": "http://127.0.0.1:5999", "RASA_TIMEOUT": 3})
    engine = app.extensions["engine"]
    assert isinstance(engine, RasaEngine) and engine.timeout == 3.0 and engine.base_url.endswith(":5999")
    assert app.extensions["channel"].name == "twilio"
    app.extensions["db"].engine.dispose()
