"""Gateways behind one interface (base.Channel), several at once, configured as data.

A deployment lists its channels in a YAML file (`CHANNELS_FILE`) or the same list as
JSON in `CHANNELS`; without either, one Twilio channel is built from the TWILIO_*
settings (the embedded default). Each entry::

    - name: africastalking          # unique; routes are /webhooks/<name>/...
      kind: africastalking          # the module: twilio, africastalking, http, smpp
      numbers: ["+243970000111", "1234"]   # inbound numbers and short codes it owns
      carriers: ["Vodacom"]         # outbound messages that start from us: these networks
      default: true                 # ...and everyone else (the fallback)
      send_rate: 5                  # segments per second this channel may send
      ...                           # the module's own settings (credentials, URLs)

A reporter's replies leave by the channel their message came in on; messages that start
from us (broadcasts, call-backs) take `for_recipient()`: the channel configured for the
recipient's mobile network (from `phonenumbers`' carrier data), else the default.
"""

from __future__ import annotations

import importlib
import json
from pathlib import Path

import phonenumbers
from phonenumbers import carrier as pn_carrier
import yaml

from service.channels.base import (
    BadRequest, Channel, InboundMessage, LookupUnsupported, SendError, StatusUpdate,
)

# kind -> "module:Class"; adding a gateway is one module and one line here.
KINDS = {
    "twilio": "service.channels.twilio:TwilioChannel",
    "somleng": "service.channels.twilio:TwilioChannel",  # Twilio's API at Somleng's base URL (api_base)
    "africastalking": "service.channels.africastalking:AfricasTalkingChannel",
    "http": "service.channels.http:HttpGatewayChannel",
    "smpp": "service.channels.smpp:SmppChannel",
}

__all__ = ["BadRequest", "Channel", "Channels", "ChannelConfigError", "InboundMessage", "LookupUnsupported",
           "SendError", "StatusUpdate", "init_app", "load"]


class ChannelConfigError(ValueError):
    """The channels configuration is unusable; raised at boot, naming the entry."""


def twilio_default(config: dict) -> dict:
    """The embedded default: one Twilio channel from the TWILIO_* settings."""
    return {"name": "twilio", "kind": "twilio", "default": True,
            "account_sid": config.get("TWILIO_ACCOUNT_SID"), "auth_token": config.get("TWILIO_AUTH_TOKEN"),
            "from": config.get("TWILIO_FROM"), "messaging_service_sid": config.get("TWILIO_MESSAGING_SERVICE_SID"),
            "api_base": config.get("TWILIO_API_BASE")}


def entries(config: dict) -> list[dict]:
    """The configured channel entries (the file, else the JSON, else the default)."""
    if config.get("CHANNELS_FILE"):
        path = Path(str(config["CHANNELS_FILE"]))
        try:
            doc = yaml.safe_load(path.read_text(encoding="utf-8"))
        except (OSError, yaml.YAMLError) as exc:
            raise ChannelConfigError(f"CHANNELS_FILE {path}: {exc}") from None
        items = doc.get("channels") if isinstance(doc, dict) else doc
    elif config.get("CHANNELS"):
        raw = config["CHANNELS"]
        try:
            items = json.loads(raw) if isinstance(raw, str) else raw
        except ValueError as exc:
            raise ChannelConfigError(f"CHANNELS is not JSON: {exc}") from None
    else:
        return [twilio_default(config)]
    if not isinstance(items, list) or not items:
        raise ChannelConfigError("the channels configuration must be a non-empty list")
    return items


class Channels:
    """The configured channels, by name, by inbound number, and by mobile network."""

    def __init__(self, channels: list[Channel], settings: list[dict]):
        self.by_name = {c.name: c for c in channels}
        defaults = [c for c, s in zip(channels, settings) if s.get("default")]
        self.default = defaults[0] if defaults else channels[0]
        self.by_carrier = {}
        for c, s in zip(channels, settings):
            for network in s.get("carriers") or ():
                self.by_carrier.setdefault(str(network).lower(), c)

    def __iter__(self):
        return iter(self.by_name.values())

    def get(self, name: str | None) -> Channel:
        """A channel by name; an unknown or missing name (a channel removed since) is the default."""
        return self.by_name.get(name or "", self.default)

    def __contains__(self, name: str) -> bool:
        return name in self.by_name

    def for_recipient(self, number: str) -> Channel:
        """The channel for a message that starts from us: by the recipient's network."""
        try:
            parsed = phonenumbers.parse(number, None)
            network = pn_carrier.name_for_number(parsed, "en").lower()
        except phonenumbers.NumberParseException:
            network = ""
        for configured, channel in self.by_carrier.items():
            if network and (network == configured or network.startswith(configured)):
                return channel
        return self.default


def load(config: dict) -> Channels:
    items = entries(config)
    channels, seen = [], set()
    for i, item in enumerate(items):
        where = f"channel {i + 1}"
        if not isinstance(item, dict) or not item.get("name") or not item.get("kind"):
            raise ChannelConfigError(f"{where}: needs a name and a kind")
        name, kind = str(item["name"]), str(item["kind"])
        if name in seen:
            raise ChannelConfigError(f"{where}: the name {name!r} is used twice")
        if not name.replace("-", "").replace("_", "").isalnum() or name.lower() != name:
            raise ChannelConfigError(f"{where}: name {name!r} must be lower-case letters, digits, - or _")
        if kind not in KINDS:
            raise ChannelConfigError(f"{where}: unknown kind {kind!r}; one of {', '.join(KINDS)}")
        seen.add(name)
        module_name, class_name = KINDS[kind].split(":")
        cls = getattr(importlib.import_module(module_name), class_name)
        try:
            channels.append(cls(dict(item), config))
        except (KeyError, ValueError, TypeError) as exc:
            raise ChannelConfigError(f"{where} ({name}): {exc}") from None
    if config.get("ALERTE_ENV") == "production":
        problems = [f"channel {c.name}: {problem}" for c in channels for problem in c.production_problems()]
        if problems:
            raise ChannelConfigError("refusing to start in production: " + "; ".join(problems))
    return Channels(channels, items)


def init_app(app) -> None:
    app.extensions["channels"] = load(app.config)
