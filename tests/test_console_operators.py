"""Administrators manage operators in the console (service/console/operators.py), on real
SQLite and PostgreSQL: create one who then logs in, change roles, disable and enable,
unlock after failed logins, reset a password; each change audited with before and after,
never a password or a hash; an administrator cannot lock themselves out."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from service import accounts
from service.models import AuditEntry, Operator
from tests.test_console import (  # noqa: F401  fixtures
    PASSWORD, admin, analyst, audit_actions, db, login, make_operator, post_form, shown, signed_in,
)

NEW_PASSWORD = "a long new passphrase 42"


@pytest.fixture
def app_config(app_config, tmp_path):
    return {**app_config, "RECORDINGS_DIR": str(tmp_path / "recordings"), "LOGIN_MAX_FAILURES": 3}


def entries(db, action=None) -> list[AuditEntry]:
    db.rollback()
    query = select(AuditEntry).order_by(AuditEntry.id)
    if action:
        query = query.where(AuditEntry.action == action)
    return list(db.scalars(query))


def operator(db, username) -> Operator:
    db.rollback()
    return db.scalar(select(Operator).where(Operator.username == username))


def logout(client):
    post_form(client, "/console/operators", "/console/logout")


def test_only_administrators_manage_operators(client, db, analyst, admin):
    make_operator(db, "traducteur", ["translator"])
    for name in ("analyste", "traducteur"):
        signed_in(client, name)
        assert client.get("/console/operators").status_code == 403
        assert client.get(f"/console/operators/{admin}").status_code == 403
        assert 'href="/console/operators"' not in client.get("/console/operators").get_data(as_text=True)
        logout(client)
    signed_in(client, "admin")
    page = client.get("/console/operators")
    assert page.status_code == 200 and 'href="/console/operators"' in page.get_data(as_text=True)
    assert "analyste" in shown(page) and "Dernière connexion" in shown(page)


def test_an_administrator_creates_an_operator_who_then_logs_in(client, db, admin):
    signed_in(client, "admin")
    short = post_form(client, "/console/operators", "/console/operators", username="court", password="short",
                      roles="translator")
    assert short.status_code == 302 and operator(db, "court") is None
    answer = post_form(client, "/console/operators", "/console/operators", username="Amani",
                       display_name="Amani K.", password=NEW_PASSWORD, roles=["translator", "broadcaster"])
    assert answer.status_code == 302
    created = operator(db, "amani")
    assert created.roles == ["broadcaster", "translator"] and created.active
    taken = post_form(client, "/console/operators", "/console/operators", username="amani",
                      password=NEW_PASSWORD, roles="analyst")
    assert "Non créé : Le nom d'utilisateur amani est déjà pris." in shown(client.get(taken.location))
    [entry] = entries(db, "operator.create")
    assert entry.after == {"username": "amani", "roles": ["broadcaster", "translator"], "active": True,
                           "locked": False}
    logout(client)
    assert login(client, "amani", NEW_PASSWORD).status_code == 302


def test_roles_change_and_an_administrator_cannot_drop_their_own(client, db, admin, analyst):
    signed_in(client, "admin")
    path = f"/console/operators/{analyst}"
    post_form(client, path, f"{path}/roles", roles=["analyst", "broadcaster"])
    assert operator(db, "analyste").roles == ["analyst", "broadcaster"]
    [entry] = entries(db, "operator.roles")
    assert entry.before["roles"] == ["analyst"] and entry.after["roles"] == ["analyst", "broadcaster"]
    mine = f"/console/operators/{admin}"
    refused = post_form(client, mine, f"{mine}/roles", roles=["analyst"])
    assert "propre rôle d'administrateur" in shown(client.get(refused.location))
    assert operator(db, "admin").roles == ["administrator"]
    none = post_form(client, path, f"{path}/roles")
    assert none.status_code == 302 and operator(db, "analyste").roles == ["analyst", "broadcaster"]
    assert len(entries(db, "operator.roles")) == 1


def test_disable_signs_the_operator_out_enable_lets_them_back_and_nobody_disables_themselves(
        client, app, db, admin, analyst):
    other = app.test_client()
    signed_in(other, "analyste")
    signed_in(client, "admin")
    path = f"/console/operators/{analyst}"
    post_form(client, path, f"{path}/active", active="0")
    assert not operator(db, "analyste").active
    assert other.get("/console/alerts").status_code == 302  # signed out at once
    assert login(other, "analyste").status_code == 200  # and cannot log in
    post_form(client, path, f"{path}/active", active="1")
    assert operator(db, "analyste").active
    mine = f"/console/operators/{admin}"
    refused = post_form(client, mine, f"{mine}/active", active="0")
    assert "propre compte" in shown(client.get(refused.location)) and operator(db, "admin").active
    assert [e.action for e in entries(db) if e.action.startswith("operator.") and e.target_id == str(analyst)
            and e.action not in ("operator.login", "operator.login_failed")] == \
        ["operator.disable", "operator.enable"]
    disabled = entries(db, "operator.disable")[0]
    assert disabled.before["active"] is True and disabled.after["active"] is False


def test_an_administrator_unlocks_an_account_locked_by_failed_logins(client, app, db, admin, analyst):
    other = app.test_client()
    for _ in range(3):  # LOGIN_MAX_FAILURES = 3
        login(other, "analyste", "wrong password here")
    assert accounts.locked(operator(db, "analyste"))
    signed_in(client, "admin")
    path = f"/console/operators/{analyst}"
    assert "bloqué" in shown(client.get(path))
    post_form(client, path, f"{path}/unlock")
    assert not accounts.locked(operator(db, "analyste"))
    [entry] = entries(db, "operator.unlock")
    assert entry.before["locked"] is True and entry.after["locked"] is False
    assert login(other, "analyste").status_code == 302


def test_a_password_reset_works_and_no_password_or_hash_is_ever_shown_or_logged(client, app, db, admin, analyst):
    signed_in(client, "admin")
    path = f"/console/operators/{analyst}"
    post_form(client, path, f"{path}/password", password="too short")
    assert accounts._verify(operator(db, "analyste").password_hash, PASSWORD)
    post_form(client, path, f"{path}/password", password=NEW_PASSWORD)
    other = app.test_client()
    assert login(other, "analyste", PASSWORD).status_code == 200
    assert login(other, "analyste", NEW_PASSWORD).status_code == 302
    post_form(client, "/console/operators", "/console/operators", username="nouveau", password=NEW_PASSWORD + "!",
              roles="analyst")
    assert [e.action for e in entries(db, "operator.password_reset")] == ["operator.password_reset"]
    hashes = [o.password_hash for o in db.scalars(select(Operator))]
    pages = "".join(client.get(p).get_data(as_text=True) for p in
                    ("/console/operators", path, f"/console/operators/{admin}", "/console/audit"))
    logged = " ".join(f"{e.before} {e.after} {e.reason}" for e in entries(db))
    for secret in [PASSWORD, NEW_PASSWORD, NEW_PASSWORD + "!", "argon2", *hashes]:
        assert secret not in pages and secret not in logged


def test_the_pages_are_small_and_need_nothing_from_elsewhere(client, db, admin, analyst):
    for n in range(15):
        make_operator(db, f"operateur{n}", ["analyst"])
    signed_in(client, "admin")
    for path in ("/console/operators", f"/console/operators/{analyst}"):
        page = client.get(path)
        text = page.get_data(as_text=True)
        assert page.status_code == 200 and len(page.data) < 50_000, path
        assert "<script" not in text and "http://" not in text and "https://" not in text, path


def test_an_account_refusal_is_shown_in_the_operators_language(client, db, admin):
    signed_in(client, "admin")
    refused = post_form(client, "/console/operators", "/console/operators", username="x y", password=NEW_PASSWORD,
                        roles="analyst")
    page = shown(client.get(refused.location))
    assert "Non créé : Un nom d'utilisateur compte de 1 à 64 lettres, chiffres, points, tirets ou tirets bas." in page
    refused = post_form(client, "/console/operators", "/console/operators", username="court", password="short",
                        roles="analyst")
    assert "Non créé : Un mot de passe compte au moins 12 caractères." in shown(client.get(refused.location))
    path = f"/console/operators/{admin}"
    refused = post_form(client, path, f"{path}/password", password="short")
    assert "Un mot de passe compte au moins 12 caractères." in shown(client.get(refused.location))
    client.get("/console/language/en")
    refused = post_form(client, "/console/operators", "/console/operators", username="admin", password=NEW_PASSWORD,
                        roles="analyst")
    assert "Not created: The username admin is taken." in shown(client.get(refused.location))
    assert [o.username for o in db.scalars(select(Operator))] == ["admin"]


def test_every_account_refusal_is_in_the_console_catalogs_in_french_and_english(app):
    catalogs = app.extensions["console_translations"]
    for msgid in accounts.MESSAGES:
        assert catalogs["fr"].gettext(msgid) != msgid, msgid
        assert catalogs["en"].gettext(msgid) == msgid and msgid in catalogs["en"]._catalog, msgid
