"""Logs never carry a phone number in clear, whatever a caller or a library writes.

A filter on the root logger alone misses records propagated from child loggers, so the
same redaction also runs in the log-record factory: every record is cleaned at birth.
"""

from __future__ import annotations

import logging
import re

# a run of 9-15 digits, not inside a longer word: a provider's message id such as
# ATXid_12345678901 or SM9f3a... stays readable, so it can be matched to its receipt
PHONE = re.compile(r"(?<![A-Za-z0-9_])(?:%2[Bb]|\+)?\d{9,15}(?![A-Za-z0-9_])")  # %2B: url-encoded +
REDACTED = "[phone]"


def redact(text: str) -> str:
    return PHONE.sub(REDACTED, text)


class RedactPhoneNumbers(logging.Filter):
    """Rewrite a record's message (and traceback) with phone-like digit runs redacted."""

    def filter(self, record: logging.LogRecord) -> bool:
        if getattr(record, "_redacted", False):
            return True
        try:
            message = record.getMessage()
        except Exception:  # a broken format string: keep the raw template
            message = str(record.msg)
        record.msg, record.args = redact(message), ()
        if record.exc_info and not record.exc_text:
            record.exc_text = redact(logging.Formatter().formatException(record.exc_info))
        record._redacted = True
        return True


_FILTER = RedactPhoneNumbers()


def install(level: str | int | None = None) -> None:
    """Install the redaction everywhere (idempotent); optionally set the root level."""
    root = logging.getLogger()
    if _FILTER not in root.filters:
        root.addFilter(_FILTER)
    for handler in root.handlers:
        if _FILTER not in handler.filters:
            handler.addFilter(_FILTER)
    factory = logging.getLogRecordFactory()
    if not getattr(factory, "_redacting", False):
        def redacting_factory(*args, **kwargs):
            record = factory(*args, **kwargs)
            _FILTER.filter(record)
            return record
        redacting_factory._redacting = True
        logging.setLogRecordFactory(redacting_factory)
    logging.getLogger("twilio.http_client").setLevel(logging.WARNING)  # dumps every request
    if level is not None:
        root.setLevel(level)
        if not root.handlers:
            logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
            for handler in root.handlers:
                handler.addFilter(_FILTER)


def init_app(app) -> None:
    install(app.config.get("LOG_LEVEL"))
