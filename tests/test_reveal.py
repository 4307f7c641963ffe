"""Revealing a number (service/reveal.py): an analyst who must call a reporter back gets
the number by saying why, and the audit log keeps who, whom and why, never the number."""

from __future__ import annotations

from datetime import timedelta

import pytest
from flask import current_app
from sqlalchemy import select

from service import accounts, audit, reporters, reveal
from service.models import AuditEntry, Reporter, utcnow
from tests.conftest import REPORTER

PASSWORD = "correct horse battery"
REASON = "rappel pour préciser le village de l'attaque"


@pytest.fixture
def identity(app, db):
    return current_app.extensions["identity"]


@pytest.fixture
def reporter_id(db, identity) -> int:
    reporter = reporters.seen(db, identity, REPORTER)
    db.commit()
    return reporter.id


def operator(db, name, *roles):
    created = accounts.create(db, name, PASSWORD, list(roles))
    db.commit()
    return created


def audited(db) -> list[AuditEntry]:
    db.rollback()
    return db.scalars(select(AuditEntry).where(AuditEntry.action == reveal.ACTION).order_by(AuditEntry.id)).all()


@pytest.mark.parametrize("role", ["analyst", "administrator"])
def test_an_analyst_gets_the_number_and_the_audit_keeps_why_not_what(db, identity, reporter_id, role):
    who = operator(db, "rappel", role)
    assert reveal.number(db, identity, who, reporter_id, f"  {REASON}\n") == REPORTER
    [entry] = audited(db)  # committed by reveal.number itself
    assert (entry.operator_id, entry.target_type, entry.target_id, entry.reason) == (
        who.id, "reporter", str(reporter_id), REASON)
    national, digits = "0" + REPORTER[4:], REPORTER[1:]
    for column in AuditEntry.__table__.columns:
        value = str(getattr(entry, column.key))
        assert REPORTER not in value and digits not in value and national not in value, column.key
    exported = audit.to_csv(audit.entries(db))
    assert REASON in exported and digits not in exported and national not in exported


@pytest.mark.parametrize("roles", [["broadcaster"], ["translator"], ["broadcaster", "translator"]])
def test_a_broadcaster_or_a_translator_is_refused(db, identity, reporter_id, roles):
    with pytest.raises(PermissionError):
        reveal.number(db, identity, operator(db, "autre", *roles), reporter_id, REASON)
    assert audited(db) == []


def test_nobody_and_a_disabled_analyst_are_refused(db, identity, reporter_id):
    with pytest.raises(PermissionError):
        reveal.number(db, identity, None, reporter_id, REASON)
    disabled = operator(db, "parti", "analyst")
    disabled.active = False
    db.commit()
    with pytest.raises(PermissionError):
        reveal.number(db, identity, disabled, reporter_id, REASON)
    assert audited(db) == []


@pytest.mark.parametrize("reason", [None, "", "   ", "rappel", "   a  b  c  "])
def test_a_reason_of_a_few_words_is_required(db, identity, reporter_id, reason):
    with pytest.raises(ValueError, match="say why"):
        reveal.number(db, identity, operator(db, "analyste", "analyst"), reporter_id, reason)
    assert audited(db) == []


def test_an_expired_number_is_a_clear_error_and_not_decrypted(db, identity, reporter_id):
    db.get(Reporter, reporter_id).phone_expires_at = utcnow() - timedelta(days=1)
    db.commit()
    with pytest.raises(reveal.NumberUnavailable, match="expired"):
        reveal.number(db, identity, operator(db, "analyste", "analyst"), reporter_id, REASON)
    assert audited(db) == []


def test_a_purged_number_and_an_unknown_reporter(db, identity, reporter_id):
    analyst = operator(db, "analyste", "analyst")
    db.get(Reporter, reporter_id).phone_encrypted = None  # reporters.purge_expired_numbers
    db.commit()
    with pytest.raises(reveal.NumberUnavailable, match="no number is kept"):
        reveal.number(db, identity, analyst, reporter_id, REASON)
    with pytest.raises(LookupError, match="no reporter"):
        reveal.number(db, identity, analyst, reporter_id + 1000, REASON)
    assert audited(db) == []
