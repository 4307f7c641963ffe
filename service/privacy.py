"""Who a reporter is, without storing who they are: a keyed hash, an encrypted number.

The HMAC secret and the encryption key live outside the database (derived from
SECRET_KEY unless given), so a copy of the database alone reveals no number.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
from datetime import datetime, timedelta, timezone

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

DRC = "243"
E164 = re.compile(r"^\+[1-9]\d{7,14}$")


class InvalidNumber(ValueError):
    """Not a phone number we can answer."""


def normalise(number: str | None) -> str:
    """E.164 form of a number; a national DRC number ("0990000001") gets +243."""
    raw = re.sub(r"[\s().\-/]", "", number or "")
    if raw.startswith("00"):
        raw = "+" + raw[2:]
    elif re.fullmatch(r"0\d{9}", raw):
        raw = "+" + DRC + raw[1:]
    elif re.fullmatch(DRC + r"\d{9}", raw):
        raw = "+" + raw
    if not E164.match(raw) or (raw.startswith("+" + DRC) and len(raw) != 13):
        raise InvalidNumber("not an E.164 phone number")
    return raw


def mask(number: str | None) -> str:
    """Enough of a number to tell two apart in a log line, not enough to call it."""
    if not number:
        return "?"
    return f"{number[:4]}…{number[-2:]}" if len(number) > 6 else "…"


def derive(secret: str, info: str) -> bytes:
    """32 bytes for one purpose from the one SECRET_KEY (HKDF-SHA256)."""
    hkdf = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=info.encode())
    return hkdf.derive(secret.encode())


class Identity:
    """Reporter keys and number encryption, configured once per application."""

    def __init__(self, secret_key: str, reporter_key_secret: str | None = None,
                 phone_encryption_key: str | None = None, retention_days: int = 90):
        self._hmac_key = reporter_key_secret.encode() if reporter_key_secret else derive(secret_key, "reporter-key")
        if phone_encryption_key:
            keys = [Fernet(k.strip()) for k in phone_encryption_key.split(",") if k.strip()]
        else:
            keys = [Fernet(base64.urlsafe_b64encode(derive(secret_key, "phone-encryption")))]
        self._fernet = MultiFernet(keys)
        self.retention = timedelta(days=retention_days)

    @classmethod
    def from_config(cls, config) -> "Identity":
        return cls(config["SECRET_KEY"], config.get("REPORTER_KEY_SECRET"),
                   config.get("PHONE_ENCRYPTION_KEY"), int(config.get("PHONE_RETENTION_DAYS", 90)))

    def key(self, number: str) -> str:
        """HMAC-SHA256 hex of the E.164 number: stable, and useless without the secret."""
        return hmac.new(self._hmac_key, normalise(number).encode(), hashlib.sha256).hexdigest()

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

    def expiry(self, now: datetime | None = None) -> datetime:
        return (now or datetime.now(timezone.utc)) + self.retention


def init_app(app) -> None:
    app.extensions["identity"] = Identity.from_config(app.config)


def identity():
    """The application's Identity (inside an app context)."""
    from flask import current_app

    return current_app.extensions["identity"]
