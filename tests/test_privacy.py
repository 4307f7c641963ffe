"""A reporter's number is never in clear: not in logs, not in the database."""

from __future__ import annotations

import logging

import pytest
from sqlalchemy import select, text

from service.logging import install, redact
from service.models import Reporter
from service.privacy import Identity, InvalidNumber, mask, normalise
from tests.conftest import REPORTER


@pytest.mark.parametrize("raw", ["+243990000001", "0990000001", "243990000001", "00243990000001",
                                 "+243 99 000 0001", "099-000-0001"])
def test_drc_numbers_in_any_usual_form_become_e164(raw):
    assert normalise(raw) == "+243990000001"


@pytest.mark.parametrize("raw", ["", None, "12345", "+24399000000", "+2439900000011", "hello", "+0123456789"])
def test_what_is_not_a_number_is_refused(raw):
    with pytest.raises(InvalidNumber):
        normalise(raw)


def test_a_masked_number_tells_two_apart_but_cannot_be_called():
    assert mask(REPORTER) == "+243…01"
    assert redact(mask(REPORTER)) == mask(REPORTER)


def test_the_key_is_stable_secret_and_hides_the_number():
    identity = Identity("one secret")
    assert identity.key("0990000001") == identity.key(REPORTER)
    assert len(identity.key(REPORTER)) == 64 and "990000001" not in identity.key(REPORTER)
    assert Identity("another secret").key(REPORTER) != identity.key(REPORTER)
    assert Identity("one secret", reporter_key_secret="separate").key(REPORTER) != identity.key(REPORTER)


def test_the_number_is_encrypted_and_only_our_key_opens_it():
    from cryptography.fernet import Fernet

    identity = Identity("one secret")
    token = identity.encrypt(REPORTER)
    assert "990000001" not in token and identity.decrypt(token) == REPORTER
    assert Identity("another secret").decrypt(token) is None
    new_key, old_key = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    old = Identity("x", phone_encryption_key=old_key)
    rotated = Identity("x", phone_encryption_key=f"{new_key},{old_key}")
    assert rotated.decrypt(old.encrypt(REPORTER)) == REPORTER  # key rotation keeps old tokens


def test_log_records_are_redacted_whoever_logs_them(caplog):
    install()
    with caplog.at_level(logging.INFO):
        logging.getLogger("some.library").info("sending to %s", REPORTER)
        logging.getLogger("another").warning("number 0990000001 failed")
        try:
            raise ValueError(f"bad number {REPORTER}")
        except ValueError:
            logging.getLogger("x").exception("boom")
    assert "990000001" not in caplog.text
    assert "[phone]" in caplog.text


def test_a_whole_conversation_leaves_no_number_in_logs_or_database(app, text_in, db, engine, caplog, twilio_standin):
    from service import scheduler

    with caplog.at_level(logging.DEBUG):
        text_in("SW", sender="0990000001")
        engine.down = True
        text_in("Wameshambulia Kasindi")
        engine.down = False
        scheduler.work(app, burst=True)
        text_in("STOP")
    assert twilio_standin.sent  # a number really went to Twilio...
    assert "990000001" not in caplog.text  # ...and never into a log line
    db.rollback()
    reporter = db.scalar(select(Reporter))
    assert reporter.phone_expires_at is not None and reporter.phone_encrypted
    for table in ("reporters", "conversations", "messages"):
        for row in db.execute(text(f"SELECT * FROM {table}")):
            assert "990000001" not in " ".join(str(v) for v in row)


@pytest.mark.parametrize("line, kept", [
    ("sent to +243990000001 as ATXid_123456789012", "ATXid_123456789012"),
    ("receipt SM12345678901234567890ab moved to delivered", "SM12345678901234567890ab"),
])
def test_redaction_hides_numbers_but_keeps_provider_ids(line, kept):
    assert "+243990000001" not in redact(line) and kept in redact(line)


@pytest.mark.parametrize("line", ["From=%2B243990000001&Body=x", "to 243990000001.", "tel:0990000001"])
def test_redaction_hides_numbers_in_their_usual_forms(line):
    assert "990000001" not in redact(line)
