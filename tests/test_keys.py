"""Rotating the reporter key secret and the phone encryption key loses nobody: the same row,
its opt-out, its language and its history, found again by its number."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
from cryptography.fernet import Fernet
from sqlalchemy import func, select

from service import cli, keys, reporters
from service.models import Alert, Conversation, Reporter
from service.privacy import Identity
from tests.conftest import OTHER_REPORTER, REPORTER

OLD_FERNET, NEW_FERNET = Fernet.generate_key().decode(), Fernet.generate_key().decode()


def _opted_out_swahili(db, identity: Identity, number: str) -> int:
    """A reporter who chose Swahili, reported once, then sent STOP; returns their id."""
    reporter = reporters.seen(db, identity, number)
    reporters.set_language(db, reporter, "sw")
    conversation = reporters.conversation(db, reporter, 30)
    db.add(Alert(reporter_id=reporter.id, conversation_id=conversation.id, category="ATTACK", status="new"))
    reporters.opt_out(db, reporter)
    db.commit()
    return reporter.id


def _same_person(db, identity: Identity, number: str, reporter_id: int) -> Reporter:
    reporter = reporters.find(db, identity, number)
    assert reporter is not None and reporter.id == reporter_id
    assert reporter.opted_out and reporter.opted_out_at is not None and reporter.language == "sw"
    assert reporter.key == identity.key(number)
    assert db.scalar(select(func.count()).select_from(Conversation).where(Conversation.reporter_id == reporter_id)) == 1
    assert db.scalar(select(func.count()).select_from(Alert).where(Alert.reporter_id == reporter_id)) == 1
    return reporter


@pytest.mark.parametrize("old, new", [
    # explicit secrets, the new ones put first
    (Identity("test-secret", "old-secret", OLD_FERNET),
     Identity("test-secret", "new-secret,old-secret", f"{NEW_FERNET},{OLD_FERNET}")),
    # from the keys derived from SECRET_KEY to explicit ones: the derived keys are always tried last
    (Identity("test-secret"), Identity("test-secret", "new-secret", NEW_FERNET)),
], ids=["explicit", "from-derived"])
def test_rotation_keeps_every_reporter_with_or_without_a_kept_number(db, old, new):
    kept = _opted_out_swahili(db, old, REPORTER)
    purged = _opted_out_swahili(db, old, OTHER_REPORTER)
    db.get(Reporter, purged).phone_encrypted = None  # past retention, purged by the sweep
    db.commit()
    old_key_of_purged = db.get(Reporter, purged).key

    counts = keys.rotate(db, new, batch=1)
    assert (counts.reporters, counts.reencrypted, counts.rekeyed, counts.purged) == (2, 1, 1, 1)
    assert counts.undecryptable == counts.conflicts == 0
    db.expire_all()
    assert db.scalar(select(func.count()).select_from(Reporter)) == 2  # nobody new, nobody lost

    reporter = _same_person(db, new, REPORTER, kept)
    only_newest = Identity("another secret", phone_encryption_key=NEW_FERNET)
    assert only_newest.decrypt(reporter.phone_encrypted) == REPORTER  # re-encrypted under the newest key

    assert db.get(Reporter, purged).key == old_key_of_purged  # no number, no re-key...
    _same_person(db, new, OTHER_REPORTER, purged)  # ...until they write: found, and re-keyed then
    again = reporters.seen(db, new, OTHER_REPORTER)
    assert again.id == purged and new.decrypt(again.phone_encrypted) == OTHER_REPORTER
    db.commit()

    second = keys.rotate(db, new)
    assert (second.rekeyed, second.current, second.purged) == (0, 2, 0)


def test_a_reporter_under_an_old_key_is_rekeyed_when_they_next_write(db):
    old = Identity("test-secret", "old-secret", OLD_FERNET)
    new = Identity("test-secret", "new-secret,old-secret", f"{NEW_FERNET},{OLD_FERNET}")
    reporter_id = _opted_out_swahili(db, old, REPORTER)
    reporter = reporters.seen(db, new, REPORTER)
    db.commit()
    assert reporter.id == reporter_id and reporter.key == new.key(REPORTER) != old.key(REPORTER)
    _same_person(db, new, REPORTER, reporter_id)


def test_without_the_old_secret_a_reporter_is_not_found():
    old, new = Identity("test-secret", "old-secret"), Identity("test-secret", "new-secret")
    assert old.key(REPORTER) not in new.keys(REPORTER)
    assert Identity("test-secret", "new-secret,old-secret").keys(REPORTER)[1] == old.key(REPORTER)


def test_an_expired_number_is_never_decrypted_for_sending(db):
    identity = Identity("test-secret")
    reporter = reporters.seen(db, identity, REPORTER)
    now = datetime.now(timezone.utc)
    assert reporters.number_for_sending(identity, reporter, now) == REPORTER
    reporter.phone_expires_at = now - timedelta(minutes=1)
    assert reporters.number_for_sending(identity, reporter, now) is None
    reporter.phone_expires_at = (now + timedelta(days=1)).replace(tzinfo=None)  # as SQLite returns it
    assert reporters.number_for_sending(identity, reporter, now) == REPORTER
    assert identity.decrypt_unexpired(reporter.phone_encrypted, now - timedelta(seconds=1), now) is None


def test_the_command_prints_counts_never_a_number(app, db, app_config, monkeypatch, capsys):
    _opted_out_swahili(db, Identity.from_config(app.config), REPORTER)
    db.close()
    environ = {k: str(v) for k, v in app_config.items() if k not in ("ENGINE", "TESTING") and v is not None}
    for name, value in {**environ, "REPORTER_KEY_SECRET": "new-secret", "PHONE_ENCRYPTION_KEY": NEW_FERNET}.items():
        monkeypatch.setenv(name, value)
    assert cli.main(["keys", "rotate"]) == 0
    out = capsys.readouterr().out
    assert "rekeyed: 1" in out and "reencrypted: 1" in out
    assert "990000001" not in out and "+243" not in out
    db.expire_all()
    assert reporters.find(db, Identity("test-secret", "new-secret", NEW_FERNET), REPORTER).opted_out


def test_generated_secrets_are_usable(capsys):
    assert cli.main(["keys", "generate"]) == 0
    values = dict(line.split("=", 1) for line in capsys.readouterr().out.splitlines() if not line.startswith("#"))
    assert set(values) == {"REPORTER_KEY_SECRET", "PHONE_ENCRYPTION_KEY", "RASA_TOKEN", "API_TOKEN", "SECRET_KEY"}
    identity = Identity(values["SECRET_KEY"], values["REPORTER_KEY_SECRET"], values["PHONE_ENCRYPTION_KEY"])
    assert identity.decrypt(identity.encrypt(REPORTER)) == REPORTER and "," not in values["REPORTER_KEY_SECRET"]
