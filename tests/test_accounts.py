"""Operators, roles and lock-out (service/accounts.py), and the audit log
(service/audit.py), on real SQLite and PostgreSQL."""

from __future__ import annotations

import csv
import io
import subprocess
import sys
from datetime import timedelta

import pytest
from sqlalchemy import select

from service import accounts, audit
from service.models import AuditEntry, Operator, utcnow

PASSWORD = "correct horse battery"


def test_a_password_is_hashed_with_argon2_and_checked(db):
    operator = accounts.create(db, "Amani.K", PASSWORD, ["analyst"], "Amani")
    db.commit()
    assert operator.username == "amani.k" and operator.password_hash.startswith("$argon2id$")
    assert PASSWORD not in operator.password_hash
    assert accounts.authenticate(db, "AMANI.K", PASSWORD).id == operator.id
    assert accounts.authenticate(db, "amani.k", "wrong horse battery") is None
    assert accounts.authenticate(db, "nobody", PASSWORD) is None


@pytest.mark.parametrize("username, password, roles, message", [
    ("a", "short", ["analyst"], "at least 12"),
    ("", PASSWORD, ["analyst"], "username"),
    ("x y", PASSWORD, ["analyst"], "username"),
    ("b", PASSWORD, ["chief"], "roles"),
    ("c", PASSWORD, [], "roles"),
])
def test_bad_accounts_are_refused_with_the_reason(db, username, password, roles, message):
    with pytest.raises(accounts.AccountError, match=message):
        accounts.create(db, username, password, roles)


def test_a_taken_username_is_refused(db):
    accounts.create(db, "neema", PASSWORD, ["translator"])
    with pytest.raises(accounts.AccountError, match="taken"):
        accounts.create(db, "Neema", PASSWORD, ["analyst"])


def test_repeated_failures_lock_the_account_even_against_the_right_password(db):
    accounts.create(db, "jean", PASSWORD, ["analyst"])
    db.commit()
    for _ in range(accounts.LOGIN_MAX_FAILURES):
        assert accounts.authenticate(db, "jean", "not the password") is None
        db.commit()
    operator = db.scalar(select(Operator).where(Operator.username == "jean"))
    assert accounts.locked(operator)
    assert accounts.authenticate(db, "jean", PASSWORD) is None
    later = utcnow() + timedelta(seconds=accounts.LOGIN_LOCKOUT + 1)
    assert accounts.authenticate(db, "jean", PASSWORD, now=later) is not None


def test_a_success_resets_the_count_of_failures(db):
    accounts.create(db, "furaha", PASSWORD, ["broadcaster"])
    for _ in range(accounts.LOGIN_MAX_FAILURES - 1):
        accounts.authenticate(db, "furaha", "nope nope nope")
    assert accounts.authenticate(db, "furaha", PASSWORD) is not None
    for _ in range(accounts.LOGIN_MAX_FAILURES - 1):
        accounts.authenticate(db, "furaha", "nope nope nope")
    assert accounts.authenticate(db, "furaha", PASSWORD) is not None


def test_a_disabled_operator_cannot_log_in_or_do_anything(db):
    operator = accounts.create(db, "old", PASSWORD, ["administrator"])
    operator.active = False
    assert accounts.authenticate(db, "old", PASSWORD) is None
    assert not accounts.can(operator, "triage")


@pytest.mark.parametrize("roles, allowed, refused", [
    (["administrator"], {"triage", "audit", "broadcast", "translate", "see_restricted", "reveal_number"}, set()),
    (["analyst"], {"triage", "see_restricted", "reveal_number", "export"}, {"audit", "broadcast", "translate"}),
    (["broadcaster"], {"broadcast"}, {"triage", "see_restricted", "reveal_number", "export"}),
    (["translator"], {"translate"}, {"triage", "see_restricted", "broadcast"}),
    (["broadcaster", "translator"], {"broadcast", "translate"}, {"see_restricted"}),
])
def test_what_each_role_may_do(db, roles, allowed, refused):
    operator = accounts.create(db, "o" + "".join(r[0] for r in roles), PASSWORD, roles)
    assert all(accounts.can(operator, p) for p in allowed)
    assert not any(accounts.can(operator, p) for p in refused)
    assert not accounts.can(None, "triage")


def test_the_audit_log_lists_and_exports_who_did_what(db):
    admin = accounts.create(db, "admin", PASSWORD, ["administrator"])
    audit.record(db, admin, "alert.acknowledged", "alert", 7, before={"status": "new"},
                 after={"status": "acknowledged"}, reason="appel du point focal")
    audit.record(db, None, "operator.create", "operator", admin.id, after={"username": "admin"})
    db.commit()
    rows = audit.entries(db)
    assert [(e.action, name) for e, name in rows] == [("operator.create", None), ("alert.acknowledged", "admin")]
    assert [e.action for e, _ in audit.entries(db, target_type="alert", target_id=7)] == ["alert.acknowledged"]
    exported = list(csv.DictReader(io.StringIO(audit.to_csv(rows))))
    assert exported[1]["operator"] == "admin" and exported[1]["reason"] == "appel du point focal"
    assert exported[1]["before"] == '{"status": "new"}'


def test_the_command_creates_the_first_administrator(app, app_config, database_url):
    import os
    env = {**os.environ, "DATABASE_URL": database_url, "SECRET_KEY": "test-secret", "ALERTE_ENV": "test",
           "REDIS_URL": app_config["REDIS_URL"], "API_TOKEN": "test-api-token"}
    done = subprocess.run([sys.executable, "-m", "service.cli", "operators", "create-admin", "Root",
                           "--password-stdin"], input=PASSWORD + "\n", env=env, capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    assert "created root (administrator)" in done.stdout and PASSWORD not in done.stdout + done.stderr
    short = subprocess.run([sys.executable, "-m", "service.cli", "operators", "create-admin", "other",
                            "--password-stdin"], input="short\n", env=env, capture_output=True, text=True, timeout=120)
    assert short.returncode == 2 and "at least 12" in short.stderr
    listed = subprocess.run([sys.executable, "-m", "service.cli", "operators", "list"], env=env,
                            capture_output=True, text=True, timeout=120)
    assert listed.stdout.strip() == "root\tadministrator\tactive"
    from service.db import make_engine
    from sqlalchemy.orm import Session
    engine = make_engine(database_url)
    with Session(engine) as session:
        assert session.scalar(select(AuditEntry.action).where(AuditEntry.target_type == "operator")) == "operator.create"
        session.execute(AuditEntry.__table__.delete())
        session.execute(Operator.__table__.delete())
        session.commit()
    engine.dispose()
