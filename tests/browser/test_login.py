"""Logging in through the form: a wrong password is answered politely, the configured
number of failures (LOGIN_MAX_FAILURES, 3 here) locks the account, and a locked account
is refused even with the right password, saying so."""

from __future__ import annotations

from sqlalchemy import select

from service import accounts
from service.models import AuditEntry, Operator
from tests.browser.conftest import PASSWORD
from tests.browser.pages import click, flashes, text_of, type_into

WRONG = "Nom d'utilisateur ou mot de passe incorrect, ou compte bloqué pour un moment."


def attempt(browser, live, username: str, password: str) -> None:
    browser.get(f"{live.url}/console/login")
    type_into(browser, "username", username)
    type_into(browser, "password", password)
    click(browser, "form.login button[type=submit]")


def test_an_operator_logs_in_and_out_a_wrong_password_is_refused_politely_and_failures_lock(
        browser, live, login, screenshot):
    browser.get(f"{live.url}/console/alerts")
    assert "/console/login?next=/console/alerts" in browser.current_url  # a login first
    screenshot(browser, "login")
    login(browser, live, roles=("analyst",), username="analyste")
    assert browser.current_url == f"{live.url}/console/alerts"
    assert "analyste" in text_of(browser, "header")
    click(browser, "header form.inline button")  # Log out
    assert browser.current_url.startswith(f"{live.url}/console/login")
    assert "Vous êtes déconnecté" in " ".join(flashes(browser))

    attempt(browser, live, "analyste", "not the password")
    assert browser.current_url.startswith(f"{live.url}/console/login")  # the same form again
    assert text_of(browser, "p.flash.error[role=alert]") == WRONG
    assert browser.find_element("name", "username").get_attribute("value") == "analyste"  # kept
    assert browser.find_element("name", "password").get_attribute("value") == ""  # never sent back
    screenshot(browser, "login-refused")
    with live.session() as db:
        operator = db.scalar(select(Operator).where(Operator.username == "analyste"))
        assert operator.failed_logins == 1 and not accounts.locked(operator)

    attempt(browser, live, "analyste", "still not it")
    attempt(browser, live, "analyste", "third time wrong")  # LOGIN_MAX_FAILURES = 3
    with live.session() as db:
        assert accounts.locked(db.scalar(select(Operator).where(Operator.username == "analyste")))
    attempt(browser, live, "analyste", PASSWORD)  # the right one, during the lock
    assert browser.current_url.startswith(f"{live.url}/console/login")
    assert text_of(browser, "p.flash.error[role=alert]") == WRONG  # it says the account may be locked
    browser.get(f"{live.url}/console/alerts")
    assert "/console/login" in browser.current_url  # not signed in
    with live.session() as db:
        actions = list(db.scalars(select(AuditEntry.action).order_by(AuditEntry.id)))
    assert actions == ["operator.login", "operator.logout"] + ["operator.login_failed"] * 4
