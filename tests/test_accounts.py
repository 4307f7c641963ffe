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
    ("b", PASSWORD, ["chief"], "Unknown roles: chief. The roles are administrator, analyst"),
    ("c", PASSWORD, [], "at least one role"),
])
def test_bad_accounts_are_refused_with_the_reason(db, username, password, roles, message):
    with pytest.raises(accounts.AccountError, match=message) as refused:
        accounts.create(db, username, password, roles)
    assert refused.value.msgid in accounts.MESSAGES  # what the console translates
    assert str(refused.value) == refused.value.msgid % refused.value.params  # what the command line prints


def test_a_refusal_carries_its_msgid_and_parameters_not_only_english(db):
    with pytest.raises(accounts.AccountError) as short:
        accounts.hash_password("short")
    assert (short.value.msgid, short.value.params) == (accounts.SHORT_PASSWORD, {"n": accounts.PASSWORD_MIN})
    accounts.create(db, "neema", PASSWORD, ["translator"])
    with pytest.raises(accounts.AccountError) as taken:
        accounts.create(db, "Neema", PASSWORD, ["analyst"])
    assert (taken.value.msgid, taken.value.params) == (accounts.TAKEN, {"name": "neema"})
    assert str(taken.value) == "The username neema is taken."


def test_a_taken_username_is_refused(db):
    accounts.create(db, "neema", PASSWORD, ["translator"])
    with pytest.raises(accounts.AccountError, match="taken"):
        accounts.create(db, "Neema", PASSWORD, ["analyst"])


def test_a_new_password_new_roles_or_a_disable_end_the_sessions_and_nothing_else_does(db):
    operator = accounts.create(db, "baraka", PASSWORD, ["analyst"])
    other = accounts.create(db, "zawadi", PASSWORD, ["analyst"])
    db.commit()
    assert operator.session_generation == 0
    generations = [operator.session_generation]
    accounts.set_password(operator, "another long passphrase")
    generations.append(operator.session_generation)
    assert not accounts.set_roles(operator, ["analyst"])  # the same roles: nothing to end
    generations.append(operator.session_generation)
    assert accounts.set_roles(operator, ["analyst", "broadcaster"])
    generations.append(operator.session_generation)
    assert accounts.set_active(operator, False) and not accounts.set_active(operator, False)
    generations.append(operator.session_generation)
    assert accounts.set_active(operator, True)  # enabling brings no old session back
    generations.append(operator.session_generation)
    assert accounts.authenticate(db, "baraka", "another long passphrase") is not None  # a login is no change
    generations.append(operator.session_generation)
    assert generations == [0, 1, 1, 2, 3, 3, 3]
    db.commit()
    db.refresh(other)
    assert other.session_generation == 0


def test_a_refused_new_password_or_roles_change_nothing(db):
    operator = accounts.create(db, "imani", PASSWORD, ["analyst"])
    for change, argument in ((accounts.set_password, "short"), (accounts.set_roles, []),
                             (accounts.set_roles, ["chief"])):
        with pytest.raises(accounts.AccountError):
            change(operator, argument)
    assert accounts._verify(operator.password_hash, PASSWORD)
    assert operator.roles == ["analyst"] and operator.session_generation == 0


def test_login_attempts_are_counted_per_address_in_redis_in_a_window(redis_url):
    import time

    import redis

    connection = redis.Redis.from_url(redis_url)
    try:
        counts = [accounts.count_attempt(connection, "198.51.100.7", window=2) for _ in range(3)]
        assert [c.count for c in counts] == [1, 2, 3] and all(1 <= c.retry_after <= 2 for c in counts)
        assert accounts.count_attempt(connection, "198.51.100.8", window=2).count == 1
        # one IPv6 line is a whole /64: its addresses share one count; an IPv4-mapped one is the IPv4
        assert accounts.count_attempt(connection, "2001:db8:1:2::1", window=2).count == 1
        assert accounts.count_attempt(connection, "2001:db8:1:2:ffff::9", window=2).count == 2
        assert accounts.count_attempt(connection, "2001:db8:1:3::1", window=2).count == 1
        assert accounts.count_attempt(connection, "::ffff:198.51.100.7", window=2).count == 4
        assert all(connection.ttl(key) > 0 for key in connection.keys("alerte:login:*"))
        time.sleep(2.1)
        assert accounts.count_attempt(connection, "198.51.100.7", window=2).count == 1  # a new window
    finally:
        connection.close()


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
    assert short.returncode == 2 and "A password needs at least 12 characters." in short.stderr
    taken = subprocess.run([sys.executable, "-m", "service.cli", "operators", "create-admin", "ROOT",
                            "--password-stdin"], input=PASSWORD + "\n", env=env, capture_output=True, text=True,
                           timeout=120)
    assert taken.returncode == 2 and "The username root is taken." in taken.stderr  # English, not a msgid
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
