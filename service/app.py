"""The application factory: configuration, then each resource's init_app, then blueprints."""

from __future__ import annotations

import importlib

from flask import Flask

from service import channels, config as settings, db, privacy, queue, webhooks
from service import logging as alerte_logging


def create_app(config: dict | None = None) -> Flask:
    """Build the web app; tests pass a mapping (including an ENGINE) instead of the environment."""
    app = Flask(__name__)
    app.config.update(settings.load(config))
    if app.config["TRUSTED_PROXIES"] > 0:  # behind the TLS proxy: the client is in X-Forwarded-For
        from werkzeug.middleware.proxy_fix import ProxyFix
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=app.config["TRUSTED_PROXIES"])
    alerte_logging.init_app(app)
    db.init_app(app)
    privacy.init_app(app)
    queue.init_app(app)
    channels.init_app(app)
    _init_engine(app)
    webhooks.init_app(app)
    for name in ("service.api", "service.api_subscribers", "service.api_broadcasts", "service.api_prompts",
                 "service.api_callbacks", "service.api_voice", "service.api_recordings", "service.console",
                 "service.api_console"):
        _register_optional(app, name)
    return app


def _init_engine(app: Flask) -> None:
    """The real Rasa engine unless the caller provides one (unit tests use a fake)."""
    engine = app.config.get("ENGINE")
    if engine is None:
        from bot.engine import RasaEngine

        engine = RasaEngine(app.config["RASA_URL"], app.config["RASA_TIMEOUT"], token=app.config["RASA_TOKEN"])
    app.extensions["engine"] = engine


def _register_optional(app: Flask, module_name: str) -> None:
    """Blueprints written elsewhere in the project, registered when present."""
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name != module_name:
            raise
        return
    app.register_blueprint(module.bp)
