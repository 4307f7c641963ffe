"""An operator's console sessions end when the account changes, and the login form is paced
per address (service/console/auth.py, service/accounts.py), on real SQLite and PostgreSQL and
a real Redis: a session opened before a new password, new roles or a disable is refused at
its next request while other operators' go on; too many attempts from one address get a 429
that says nothing of the account, audited once, while another address still logs in."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from service import queue
from service.models import AuditEntry, Operator
from tests.test_console import (  # noqa: F401  fixtures
    PASSWORD, WRONG, admin, analyst, csrf, db, login, make_operator, post_form, shown, signed_in,
)

NEW_PASSWORD = "a long new passphrase 42"
PAGE = "/console/alerts"  # an analyst's page
LIMIT = 4  # the pacing tests' LOGIN_IP_MAX_ATTEMPTS (the others' logins all come from 127.0.0.1)


@pytest.fixture
def app_config(app_config, tmp_path):
    return {**app_config, "RECORDINGS_DIR": str(tmp_path / "recordings"), "LOGIN_MAX_FAILURES": 3,
            "LOGIN_IP_MAX_ATTEMPTS": 100, "LOGIN_IP_WINDOW": 300}


@pytest.fixture
def paced(app):
    app.config["LOGIN_IP_MAX_ATTEMPTS"] = LIMIT  # read at each login


def works(client, path: str = PAGE) -> bool:
    answer = client.get(path)
    assert answer.status_code in (200, 302), answer.status_code
    return answer.status_code == 200


def session_of(app, username: str):
    return signed_in(app.test_client(), username)


def login_from(client, address: str, username: str, password: str = PASSWORD):
    environ = {"REMOTE_ADDR": address}
    token = csrf(client.get("/console/login", environ_base=environ))
    return client.post("/console/login", data={"username": username, "password": password, "csrf_token": token},
                       environ_base=environ)


def audited(db, action: str) -> list[AuditEntry]:
    db.rollback()
    return list(db.scalars(select(AuditEntry).where(AuditEntry.action == action).order_by(AuditEntry.id)))


# --- sessions end with the account's changes --------------------------------------------

def test_a_password_reset_ends_every_earlier_session_of_that_operator_only(app, client, db, admin, analyst):
    make_operator(db, "collegue", ["analyst"])
    phone, laptop, colleague = session_of(app, "analyste"), session_of(app, "analyste"), session_of(app, "collegue")
    signed_in(client, "admin")
    assert works(phone) and works(laptop) and works(colleague)
    path = f"/console/operators/{analyst}"
    done = post_form(client, path, f"{path}/password", password=NEW_PASSWORD)
    assert "Les sessions de ce compte ouvertes ailleurs sont fermées." in shown(client.get(done.location))
    assert not works(phone) and not works(laptop)  # back to the login page at their next request
    assert phone.get(PAGE).location.startswith("/console/login")
    assert works(colleague) and works(client, "/console/operators")  # nobody else is signed out
    assert login(phone, "analyste", PASSWORD).status_code == 200  # the old password is refused
    assert login(phone, "analyste", NEW_PASSWORD).status_code == 302 and works(phone)
    assert not works(laptop)  # a new login does not revive an old session


def test_a_change_of_roles_ends_the_sessions_that_carried_the_old_ones(app, client, db, admin, analyst):
    make_operator(db, "collegue", ["analyst"])
    before, colleague = session_of(app, "analyste"), session_of(app, "collegue")
    signed_in(client, "admin")
    path = f"/console/operators/{analyst}"
    post_form(client, path, f"{path}/roles", roles=["analyst", "broadcaster"])
    assert not works(before) and works(colleague)
    post_form(client, path, f"{path}/roles", roles=["analyst", "broadcaster"])  # no change: nothing ends
    after = session_of(app, "analyste")
    post_form(client, path, f"{path}/roles", roles=["analyst", "broadcaster"])
    assert works(after)
    post_form(client, path, f"{path}/roles", roles=["broadcaster"])  # the right to triage is gone now
    assert not works(after, "/console/broadcasts") and works(colleague)


def test_a_disable_ends_the_sessions_for_good_even_after_the_account_is_enabled_again(
        app, client, db, admin, analyst):
    old, colleague = session_of(app, "analyste"), session_of(app, "admin")
    signed_in(client, "admin")
    path = f"/console/operators/{analyst}"
    post_form(client, path, f"{path}/active", active="0")
    assert not works(old)
    post_form(client, path, f"{path}/active", active="1")
    assert not works(old)  # enabling the account brings no old session back
    assert works(colleague, "/console/operators")
    assert login(old, "analyste").status_code == 302 and works(old)


def test_an_administrator_changing_their_own_account_stays_signed_in_only_where_they_did_it(
        app, client, db, admin):
    elsewhere = session_of(app, "admin")
    signed_in(client, "admin")
    path = f"/console/operators/{admin}"
    post_form(client, path, f"{path}/roles", roles=["administrator", "analyst"])
    assert works(client, "/console/operators") and works(client, PAGE)
    assert not works(elsewhere, "/console/operators")
    elsewhere = session_of(app, "admin")
    post_form(client, path, f"{path}/password", password=NEW_PASSWORD)
    assert works(client, "/console/operators") and not works(elsewhere, "/console/operators")


def test_a_session_without_a_generation_from_before_this_change_is_refused(client, db, analyst):
    signed_in(client, "analyste")
    with client.session_transaction() as cookie:
        assert cookie["_user_id"] == f"{analyst}:0"
        cookie["_user_id"] = str(analyst)  # what a login made before this change carried
    assert not works(client)


# --- the login form, paced per address ---------------------------------------------------

def test_too_many_attempts_from_one_address_are_refused_without_saying_whether_the_account_exists(
        app, client, db, analyst, paced):
    tries = [("analyste", "not the password"), ("personne", PASSWORD), ("analyste", "still not it"),
             ("personne", "nor this")]
    assert len(tries) == LIMIT
    for username, password in tries:
        answer = login_from(client, "203.0.113.5", username, password)
        assert answer.status_code == 200 and WRONG["fr"] in shown(answer)
    refused = [login_from(client, "203.0.113.5", name, password)
               for name, password in (("analyste", PASSWORD), ("personne", PASSWORD), ("analyste", "wrong"))]
    for answer in refused:
        assert answer.status_code == 429 and int(answer.headers["Retry-After"]) <= 300
        assert "Trop de tentatives de connexion depuis ce réseau. Réessayez dans 5 minutes." in shown(answer)
        assert WRONG["fr"] not in shown(answer)
    assert not works(client)  # the right password was not even tried
    db.rollback()
    assert db.scalar(select(Operator.failed_logins).where(Operator.username == "analyste")) == 2  # not counted
    [entry] = audited(db, "operator.login_rate_limited")  # once, not once per refusal
    assert entry.after == {"address": "203.0.113.5", "attempts": LIMIT} and entry.operator_id is None
    assert len(audited(db, "operator.login_failed")) == LIMIT
    other = app.test_client()  # another address is not held back
    assert login_from(other, "203.0.113.6", "analyste").status_code == 302 and works(other)


def test_the_refusal_is_in_english_after_the_switch(client, db, analyst, paced):
    client.get("/console/language/en")
    for _ in range(LIMIT):
        login_from(client, "2001:db8:7::1", "analyste", "not the password")
    answer = login_from(client, "2001:db8:7::2", "analyste")  # the same IPv6 /64
    assert answer.status_code == 429
    assert "Too many login attempts from this connection. Try again in 5 minutes." in shown(answer)


def test_the_limit_counts_successful_logins_too_and_zero_turns_it_off(app, db, analyst, paced):
    client = app.test_client()
    for _ in range(LIMIT):
        assert login_from(client, "198.51.100.20", "analyste").status_code == 302
    assert login_from(client, "198.51.100.20", "analyste").status_code == 429
    app.config["LOGIN_IP_MAX_ATTEMPTS"] = 0
    assert login_from(client, "198.51.100.20", "analyste").status_code == 302


def test_with_redis_down_the_login_still_works_and_the_account_lock_out_still_holds(app, db, analyst, paced):
    app.extensions["redis"] = queue.connect("redis://127.0.0.1:1/0")  # the web's client, on a closed port
    client = app.test_client()
    for _ in range(LIMIT + 1):
        assert login_from(client, "198.51.100.30", "personne").status_code == 200
    assert login_from(client, "198.51.100.30", "analyste").status_code == 302
    for _ in range(3):  # LOGIN_MAX_FAILURES = 3
        login_from(client, "198.51.100.30", "analyste", "wrong password here")
    assert login_from(app.test_client(), "198.51.100.31", "analyste").status_code == 200  # locked


def login_via_proxy(client, forwarded_for: str, username: str, password: str = PASSWORD):
    """A login as the TLS proxy forwards it: from the proxy's address, the client's in the header."""
    environ, headers = {"REMOTE_ADDR": "172.18.0.1"}, {"X-Forwarded-For": forwarded_for}
    token = csrf(client.get("/console/login", environ_base=environ, headers=headers))
    return client.post("/console/login", data={"username": username, "password": password, "csrf_token": token},
                       environ_base=environ, headers=headers)


@pytest.mark.parametrize("trusted", [0, 1])
def test_behind_a_trusted_proxy_each_client_has_its_own_limit_and_otherwise_the_header_is_ignored(
        app_config, db, analyst, trusted):
    from service.app import create_app
    app = create_app({**app_config, "TRUSTED_PROXIES": trusted, "LOGIN_IP_MAX_ATTEMPTS": LIMIT})
    client = app.test_client()
    for _ in range(LIMIT):
        assert login_via_proxy(client, "203.0.113.50", "personne", "wrong").status_code == 200  # no lock-out
    assert login_via_proxy(client, "203.0.113.50", "analyste").status_code == 429  # that client is held back
    other = login_via_proxy(app.test_client(), "203.0.113.51", "analyste")
    # trusted: another client behind the same proxy still signs in; not trusted: the header
    # is a client's word, so everyone behind the proxy is one address (and a forger gains nothing)
    assert other.status_code == (302 if trusted else 429)
    app.extensions["redis"].flushdb()
    app.extensions["db"].engine.dispose()
