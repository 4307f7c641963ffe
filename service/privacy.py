"""Who a reporter is, without storing who they are: a keyed hash, an encrypted number.

The HMAC secret and the encryption key live outside the database (derived from
SECRET_KEY unless given), so a copy of the database alone reveals no number.

Both can be rotated without losing anyone: REPORTER_KEY_SECRET and PHONE_ENCRYPTION_KEY
hold comma-separated values, newest first. New keys and new tokens use the newest; a
number is looked up under every key and decrypted with every key. The values derived from
SECRET_KEY always come last, so moving from the derived defaults to explicit secrets is a
rotation like any other (see service/keys.py and docs/DEPLOY.md).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
from datetime import datetime, timedelta, timezone

import phonenumbers
from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

DRC = "243"
E164 = re.compile(r"^\+[1-9]\d{7,14}$")


class InvalidNumber(ValueError):
    """Not a phone number we can answer."""


def normalise(number: str | None, region: str = "CD") -> str:
    """E.164 form of a number, parsed by `phonenumbers`; a national number ("0990000001")
    is read in `region` (DR Congo), and "243..." without the plus as international."""
    raw = re.sub(r"[\s().\-/]", "", number or "")
    if raw.startswith("00"):
        raw = "+" + raw[2:]
    elif raw.startswith(DRC) and len(raw) == 12 and raw.isdigit():
        raw = "+" + raw
    try:
        parsed = phonenumbers.parse(raw, region)
    except phonenumbers.NumberParseException:
        raise InvalidNumber("not a phone number") from None
    # possible, not "valid": a range opened after the library's data must not lose a
    # reporter's message; DR Congo's mobile numbers have nine digits after +243
    if not phonenumbers.is_possible_number(parsed) or (
            parsed.country_code == int(DRC) and len(str(parsed.national_number)) != 9):
        raise InvalidNumber("not a possible phone number")
    formatted = phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)
    if not E164.match(formatted):
        raise InvalidNumber("not an E.164 phone number")
    return formatted


def mask(number: str | None) -> str:
    """Enough of a number to tell two apart in a log line, not enough to call it."""
    if not number:
        return "?"
    return f"{number[:4]}…{number[-2:]}" if len(number) > 6 else "…"


def derive(secret: str, info: str) -> bytes:
    """32 bytes for one purpose from the one SECRET_KEY (HKDF-SHA256)."""
    hkdf = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=info.encode())
    return hkdf.derive(secret.encode())


def secrets_list(value: str | None) -> list[str]:
    """The comma-separated secrets of a setting, newest first."""
    return [part.strip() for part in (value or "").split(",") if part.strip()]


class Identity:
    """Reporter keys and number encryption, configured once per application."""

    def __init__(self, secret_key: str, reporter_key_secret: str | None = None,
                 phone_encryption_key: str | None = None, retention_days: int = 90):
        hmac_keys = [s.encode() for s in secrets_list(reporter_key_secret)] + [derive(secret_key, "reporter-key")]
        self._hmac_keys = list(dict.fromkeys(hmac_keys))  # newest first, each once
        fernet_keys = secrets_list(phone_encryption_key) + [
            base64.urlsafe_b64encode(derive(secret_key, "phone-encryption")).decode()]
        self._fernet = MultiFernet([Fernet(k) for k in dict.fromkeys(fernet_keys)])
        self.retention = timedelta(days=retention_days)

    @classmethod
    def from_config(cls, config) -> "Identity":
        return cls(config["SECRET_KEY"], config.get("REPORTER_KEY_SECRET"),
                   config.get("PHONE_ENCRYPTION_KEY"), int(config.get("PHONE_RETENTION_DAYS", 90)))

    def key(self, number: str) -> str:
        """HMAC-SHA256 hex of the E.164 number under the newest secret: stable, and useless
        without the secret."""
        return self.keys(number)[0]

    def keys(self, number: str) -> list[str]:
        """The number's key under every configured secret, newest first."""
        e164 = normalise(number).encode()
        return [hmac.new(secret, e164, hashlib.sha256).hexdigest() for secret in self._hmac_keys]

    def encrypt(self, number: str) -> str:
        return self._fernet.encrypt(normalise(number).encode()).decode()

    def decrypt(self, token: str | None) -> str | None:
        """The number, or None if absent or undecryptable (rotated away, tampered)."""
        if not token:
            return None
        try:
            return self._fernet.decrypt(token.encode()).decode()
        except InvalidToken:
            return None

    def decrypt_unexpired(self, token: str | None, expires_at: datetime | None,
                          now: datetime | None = None) -> str | None:
        """The number unless it is past its retention: an expired number is never decrypted."""
        if expires_at is not None:
            expires_at = expires_at if expires_at.tzinfo else expires_at.replace(tzinfo=timezone.utc)
            if expires_at <= (now or datetime.now(timezone.utc)):
                return None
        return self.decrypt(token)

    def reencrypt(self, token: str | None) -> str | None:
        """The token encrypted again under the newest key (its time kept), or None if no
        configured key opens it."""
        if not token:
            return None
        try:
            return self._fernet.rotate(token.encode()).decode()
        except InvalidToken:
            return None

    def expiry(self, now: datetime | None = None) -> datetime:
        return (now or datetime.now(timezone.utc)) + self.retention


def init_app(app) -> None:
    app.extensions["identity"] = Identity.from_config(app.config)


def identity():
    """The application's Identity (inside an app context)."""
    from flask import current_app

    return current_app.extensions["identity"]
