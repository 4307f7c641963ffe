"""SMS gateways behind one interface (base.Channel), chosen by name."""

from __future__ import annotations

import importlib

from service.channels.base import BadRequest, Channel, InboundMessage, SendError, StatusUpdate

# name -> "module:Class"; adding a gateway (Africa's Talking, Somleng...) is one line here.
REGISTRY = {"twilio": "service.channels.twilio:TwilioChannel"}

__all__ = ["BadRequest", "Channel", "InboundMessage", "SendError", "StatusUpdate", "get", "init_app"]


def get(name: str, config: dict) -> Channel:
    try:
        module_name, class_name = REGISTRY[name].split(":")
    except KeyError:
        raise ValueError(f"unknown SMS channel {name!r}; one of {', '.join(REGISTRY)}") from None
    return getattr(importlib.import_module(module_name), class_name)(config)


def init_app(app) -> None:
    app.extensions["channel"] = get(app.config["SMS_CHANNEL"], app.config)
