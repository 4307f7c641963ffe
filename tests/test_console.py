"""The operator console (service/console) through its pages, on real SQLite and
PostgreSQL: an operator logs in with the form and its CSRF token, reads the inbox, opens
an alert, moves it through triage, listens to a caller's recording, and an administrator
reads and exports the audit log. French by default, English after the switch; never a
reporter's number on any page."""

from __future__ import annotations

import csv
import html
import io
import re
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from babel.messages.extract import extract_from_dir
from babel.messages.pofile import read_po
from flask import Flask
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from service import accounts, recordings
from service.console import bp
from service.inbox import Services
from service.models import Alert, AlertEvent, AuditEntry, Message, Operator, Place, Recording
from tests.conftest import REPORTER
from tests.test_recordings import AUDIO

PASSWORD = "correct horse battery"
ROOT = Path(__file__).resolve().parent.parent
API_HEADERS = {"Authorization": "Bearer test-api-token"}
WRONG = {"fr": "Nom d'utilisateur ou mot de passe incorrect, ou compte bloqué pour un moment.",
         "en": "Wrong username or password, or the account is locked for a while."}


@pytest.fixture
def app_config(app_config, tmp_path):
    return {**app_config, "RECORDINGS_DIR": str(tmp_path / "recordings"), "LOGIN_MAX_FAILURES": 3}


@pytest.fixture
def db(app):
    """The test's own session, apart from the pages' (each request its own app context, as
    in production: a shared one would carry the login and the CSRF token from one to the next)."""
    session = Session(app.extensions["db"].engine, expire_on_commit=False)
    yield session
    session.close()


def make_operator(db, username: str, roles) -> int:
    operator = accounts.create(db, username, PASSWORD, roles)
    db.commit()
    return operator.id


@pytest.fixture
def admin(db):
    return make_operator(db, "admin", ["administrator"])


@pytest.fixture
def analyst(db):
    return make_operator(db, "analyste", ["analyst"])


def csrf(page) -> str:
    found = re.search(r'name="csrf_token" value="([^"]+)"', page.get_data(as_text=True))
    assert found, "the page has no CSRF token"
    return found.group(1)


def login(client, username: str, password: str = PASSWORD):
    token = csrf(client.get("/console/login"))
    return client.post("/console/login", data={"username": username, "password": password, "csrf_token": token})


def signed_in(client, username: str):
    assert login(client, username).status_code == 302
    return client


def post_form(client, page_path: str, action: str, **fields):
    """Submit a form of a page as a browser does: with the token the page carries."""
    return client.post(action, data={**fields, "csrf_token": csrf(client.get(page_path))})


def place(db, key, name, level="locality", admin1=("CD61", "Nord-Kivu"), admin2=("CD6104", "Rutshuru")) -> int:
    row = Place(key=key, name=name, level=level, admin1_pcode=admin1[0], admin1_name=admin1[1],
                admin2_pcode=admin2[0], admin2_name=admin2[1])
    db.add(row)
    db.commit()
    return row.id


def new_alert(db, status="new", category="ATTACK", created_at=None, **fields) -> int:
    alert = Alert(status=status, category=category, channel=fields.pop("channel", "sms"),
                  created_at=created_at or datetime.now(timezone.utc), **fields)
    db.add(alert)
    db.commit()
    return alert.id


def shown(page) -> str:
    """The page's text as the browser shows it (entities decoded)."""
    return html.unescape(page.get_data(as_text=True))


def ids_listed(page) -> list[int]:
    return [int(i) for i in re.findall(r'href="/console/alerts/(\d+)"', page.get_data(as_text=True))]


def audit_actions(db) -> list[str]:
    db.rollback()  # a new transaction: what the pages committed
    return list(db.scalars(select(AuditEntry.action).order_by(AuditEntry.id)))


# --- logging in -------------------------------------------------------------------------

def test_an_operator_logs_in_with_the_form_and_out_again(client, db, analyst):
    page = client.get("/console/login")
    assert page.status_code == 200 and "Se connecter" in page.get_data(as_text=True)
    answer = login(client, "analyste")
    assert answer.status_code == 302 and answer.location.endswith("/console/")
    cookie = answer.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie and "Expires=" in cookie
    assert client.get("/console/").location.endswith("/console/alerts")
    assert client.get("/console/alerts").status_code == 200
    assert post_form(client, "/console/alerts", "/console/logout").status_code == 302
    assert client.get("/console/alerts").status_code == 302
    assert audit_actions(db) == ["operator.login", "operator.logout"]


def test_a_login_lasts_console_session_hours_however_busy_the_operator(client, db, analyst):
    signed_in(client, "analyste")
    assert client.get("/console/alerts").status_code == 200
    with client.session_transaction() as cookie:
        cookie["console_login_at"] -= 12 * 3600 + 1  # CONSOLE_SESSION_HOURS: 12 by default
    assert client.get("/console/alerts").status_code == 302


def test_a_wrong_password_and_an_unknown_name_get_the_same_answer_and_failures_lock_the_account(
        client, db, analyst):
    unknown = login(client, "personne")
    wrong = login(client, "analyste", "not the password")
    for answer in (unknown, wrong):
        assert answer.status_code == 200 and WRONG["fr"] in shown(answer)
    assert client.get("/console/alerts").status_code == 302  # not signed in
    login(client, "analyste", "still not it")
    login(client, "analyste", "third time wrong")  # LOGIN_MAX_FAILURES = 3
    db.rollback()  # a new transaction: what the pages committed
    assert accounts.locked(db.get(Operator, analyst))
    refused = login(client, "analyste")  # the right password, during the lock
    assert refused.status_code == 200 and WRONG["fr"] in shown(refused)
    assert client.get("/console/alerts").status_code == 302
    assert audit_actions(db) == ["operator.login_failed"] * 5
    logged = " ".join(f"{e.before} {e.after} {e.reason}" for e in db.scalars(select(AuditEntry)))
    assert "not the password" not in logged and PASSWORD not in logged and "personne" not in logged


def test_a_post_without_its_token_is_refused_while_webhooks_and_the_api_need_none(client, db, analyst, text_in):
    assert client.post("/console/login", data={"username": "analyste", "password": PASSWORD}).status_code == 400
    signed_in(client, "analyste")
    alert_id = new_alert(db)
    refused = client.post(f"/console/alerts/{alert_id}/transition", data={"to": "acknowledged"})
    assert refused.status_code == 400
    refused = client.post(f"/console/alerts/{alert_id}/transition", data={"to": "acknowledged", "csrf_token": "forged"})
    assert refused.status_code == 400
    db.rollback()  # a new transaction: what the pages committed
    assert db.get(Alert, alert_id).status == "new" and not db.scalar(select(func.count(AlertEvent.id)))
    assert text_in("bonjour").status_code == 200  # Twilio's signed webhook: no CSRF token
    assert db.scalar(select(func.count(Message.id)).where(Message.direction == "in")) == 1
    api = client.get("/api/v1/alerts", headers=API_HEADERS)
    assert api.status_code == 200 and [a["id"] for a in api.get_json()["alerts"]] == [alert_id]


@pytest.mark.parametrize("path", ["/console/", "/console/alerts", "/console/alerts/1", "/console/audit",
                                  "/console/audit.csv", "/console/alerts/1/recordings/1"])
def test_every_page_asks_for_a_login_first(client, path):
    answer = client.get(path)
    assert answer.status_code == 302 and "/console/login?next=" in answer.location


def test_each_role_sees_only_its_pages(client, db, analyst):
    make_operator(db, "diffuseur", ["broadcaster"])
    make_operator(db, "traducteur", ["translator"])
    alert_id = new_alert(db)
    for name in ("diffuseur", "traducteur"):
        signed_in(client, name)
        for path in ("/console/alerts", f"/console/alerts/{alert_id}", "/console/audit"):
            assert client.get(path).status_code == 403, (name, path)
        assert client.get("/console/").status_code == 200  # a page that says so, not an error
        post_form(client, "/console/", "/console/logout")
    signed_in(client, "analyste")
    assert client.get("/console/audit").status_code == 403
    assert client.get("/console/audit.csv").status_code == 403
    assert "audit.export" not in audit_actions(db)


# --- the inbox --------------------------------------------------------------------------

def test_the_inbox_puts_urgent_alerts_first_then_the_newest_and_never_drafts(client, db, analyst):
    now = datetime.now(timezone.utc)
    old_attack = new_alert(db, category="ATTACK", created_at=now - timedelta(hours=5))
    new_land = new_alert(db, category="LAND_CONFLICT", created_at=now)
    armed = new_alert(db, category="ARMED_PRESENCE", created_at=now - timedelta(hours=1))
    clash = new_alert(db, category="CLASH", created_at=now - timedelta(hours=2))
    other = new_alert(db, category="OTHER", created_at=now)
    incomplete = new_alert(db, status="incomplete", category=None, created_at=now - timedelta(minutes=5))
    new_alert(db, status="draft", category="ATTACK", created_at=now)
    signed_in(client, "analyste")
    page = client.get("/console/alerts")
    assert ids_listed(page) == [clash, old_attack, armed, new_land, other, incomplete]
    assert "6 alertes" in page.get_data(as_text=True)


def test_the_inbox_filters_by_category_place_status_channel_language_and_days(client, db, analyst):
    kasindi = place(db, "gn:1", "Kasindi", admin1=("CD61", "Nord-Kivu"), admin2=("CD6102", "Beni"))
    rutshuru = place(db, "CD6104", "Rutshuru", level="adm2")
    bunia = place(db, "gn:2", "Bunia", admin1=("CD54", "Ituri"), admin2=("CD5401", "Djugu"))
    day = datetime(2026, 3, 10, 12, 0, tzinfo=timezone.utc)
    a = new_alert(db, category="ATTACK", place_id=kasindi, language="sw", channel="sms", created_at=day)
    b = new_alert(db, category="CLASH", place_id=rutshuru, language="fr", channel="voice",
                  status="acknowledged", created_at=day - timedelta(days=2))
    c = new_alert(db, category="ATTACK", place_id=bunia, language="ln", channel="sms",
                  created_at=day - timedelta(days=5))
    signed_in(client, "analyste")

    def listed(**args):
        return set(ids_listed(client.get("/console/alerts", query_string=args)))

    assert listed() == {a, b, c}
    assert listed(category="ATTACK") == {a, c}
    assert listed(province="CD61") == {a, b} and listed(province="cd54") == {c}
    assert listed(territory="CD6104") == {b} and listed(territory="CD6102") == {a}
    assert listed(status="acknowledged") == {b}
    assert listed(channel="voice") == {b} and listed(channel="sms") == {a, c}
    assert listed(language="ln") == {c}
    assert listed(since="2026-03-08") == {a, b} and listed(until="2026-03-08") == {b, c}
    assert listed(since="2026-03-08", until="2026-03-09") == {b}
    assert listed(category="ATTACK", province="CD61") == {a}
    bad = client.get("/console/alerts", query_string={"since": "10/03/2026", "category": "NOPE"})
    assert bad.status_code == 200 and set(ids_listed(bad)) == {a, b, c}
    assert "Une date s'écrit 2025-03-31" in shown(bad)


def test_the_inbox_shows_fifty_alerts_a_page(client, db, analyst):
    start = datetime.now(timezone.utc)
    made = [new_alert(db, category="THREAT", created_at=start - timedelta(minutes=n)) for n in range(53)]
    signed_in(client, "analyste")
    first = client.get("/console/alerts", query_string={"category": "THREAT"})
    assert ids_listed(first) == made[:50]
    following = re.search(r'rel="next" href="([^"]+)"', first.get_data(as_text=True)).group(1).replace("&amp;", "&")
    assert "category=THREAT" in following and "page=2" in following
    second = client.get(following)
    assert ids_listed(second) == made[50:] and 'rel="next"' not in second.get_data(as_text=True)


def test_sexual_violence_reports_are_invisible_without_the_right_and_audited_when_seen(
        client, db, admin, analyst, monkeypatch):
    hidden = new_alert(db, category="SEXUAL_VIOLENCE", description="details restreints")
    shown = new_alert(db, category="ATTACK")
    signed_in(client, "admin")
    assert set(ids_listed(client.get("/console/alerts"))) == {hidden, shown}
    page = client.get(f"/console/alerts/{hidden}")
    assert page.status_code == 200 and "details restreints" in page.get_data(as_text=True)
    post_form(client, "/console/alerts", "/console/logout")
    assert "alert.view_restricted" in audit_actions(db)
    monkeypatch.setattr(accounts, "RESTRICTED_ROLES", ("administrator",))  # analysts lose the right
    signed_in(client, "analyste")
    inbox = client.get("/console/alerts")
    assert ids_listed(inbox) == [shown] and "1 alerte" in inbox.get_data(as_text=True)
    assert client.get("/console/alerts", query_string={"category": "SEXUAL_VIOLENCE"}).get_data(as_text=True) \
        .count("/console/alerts/") == 0
    assert client.get(f"/console/alerts/{hidden}").status_code == 404
    refused = post_form(client, f"/console/alerts/{shown}", f"/console/alerts/{hidden}/transition", to="acknowledged")
    assert refused.status_code == 404
    db.rollback()  # a new transaction: what the pages committed
    assert db.get(Alert, hidden).status == "new"


# --- one alert --------------------------------------------------------------------------

def test_an_analyst_moves_an_alert_with_the_buttons_the_table_allows(client, db, analyst):
    goma = place(db, "gn:3", "Goma", admin2=("CD6107", "Nyiragongo"))
    alert_id = new_alert(db, place_id=goma, description="des hommes armés", perpetrator="ADF")
    signed_in(client, "analyste")
    page = client.get(f"/console/alerts/{alert_id}").get_data(as_text=True)
    assert "Goma" in page and "Nyiragongo" in page and "Nord-Kivu" in page and "ADF" in page
    assert re.findall(r'name="to" value="(\w+)"', page) == ["acknowledged"]
    moved = post_form(client, f"/console/alerts/{alert_id}", f"/console/alerts/{alert_id}/transition",
                      to="acknowledged", note="appel au chef de village")
    assert moved.status_code == 302
    page = shown(client.get(moved.location))
    assert "L'alerte est maintenant « Pris en compte »." in page
    assert re.findall(r'name="to" value="(\w+)"', page) == ["verified", "unverifiable", "false", "duplicate"]
    assert "appel au chef de village" in page and "analyste" in page
    db.rollback()  # a new transaction: what the pages committed
    event = db.scalar(select(AlertEvent))
    assert (event.alert_id, event.from_status, event.to_status, event.operator_id, event.note) == (
        alert_id, "new", "acknowledged", analyst, "appel au chef de village")
    entry = db.scalar(select(AuditEntry).where(AuditEntry.action == "alert.acknowledged"))
    assert (entry.operator_id, entry.target_id, entry.before, entry.after) == (
        analyst, str(alert_id), {"status": "new"}, {"status": "acknowledged"})


def test_a_step_the_table_refuses_changes_nothing_and_a_report_set_aside_needs_a_note(client, db, analyst):
    alert_id = new_alert(db)
    signed_in(client, "analyste")
    refused = post_form(client, f"/console/alerts/{alert_id}", f"/console/alerts/{alert_id}/transition", to="closed")
    assert refused.status_code == 409
    assert "ne peut pas devenir « Clôturée »" in shown(refused)
    db.rollback()  # a new transaction: what the pages committed
    assert db.get(Alert, alert_id).status == "new"
    assert not db.scalar(select(func.count(AlertEvent.id)))
    assert not [a for a in audit_actions(db) if a.startswith("alert.")]
    post_form(client, f"/console/alerts/{alert_id}", f"/console/alerts/{alert_id}/transition", to="acknowledged")
    no_note = post_form(client, f"/console/alerts/{alert_id}", f"/console/alerts/{alert_id}/transition", to="false")
    assert no_note.status_code == 400 and "Dites pourquoi le rapport est « Fausse »" in shown(no_note)
    db.rollback()  # a new transaction: what the pages committed
    assert db.get(Alert, alert_id).status == "acknowledged"
    assert client.get("/console/alerts/999999").status_code == 404


def test_the_transcript_is_escaped_and_no_page_shows_the_reporters_number(client, db, admin, text_in):
    assert text_in("<script>alert(1)</script> slt wanamgambo").status_code == 200
    db.rollback()
    inbound = db.scalar(select(Message).where(Message.direction == "in"))
    alert_id = new_alert(db, reporter_id=inbound.reporter_id, conversation_id=inbound.conversation_id,
                         description="<img src=x onerror=alert(2)>")
    signed_in(client, "admin")
    page = client.get(f"/console/alerts/{alert_id}").get_data(as_text=True)
    assert "&lt;script&gt;alert(1)&lt;/script&gt; slt wanamgambo" in page
    assert "<script" not in page and "<img" not in page
    assert f"informateur n° {inbound.reporter_id}" in page
    assert page.index("slt wanamgambo") < page.rindex("Recu:")  # in, then the answer, in order
    pages = [page] + [client.get(p).get_data(as_text=True) for p in
                      ("/console/alerts", "/console/audit", "/console/audit.csv")]
    for text in pages:
        assert REPORTER not in text and REPORTER[1:] not in text and REPORTER[4:] not in text


def test_the_console_speaks_french_first_and_english_after_the_switch(client, db, analyst):
    assert "Nom d'utilisateur" in shown(client.get("/console/login"))
    switched = client.get("/console/language/en", query_string={"next": "/console/login"})
    assert switched.status_code == 302 and switched.location.endswith("/console/login")
    page = client.get("/console/login").get_data(as_text=True)
    assert "Username" in page and 'lang="en"' in page and "Français" in page
    assert WRONG["en"] in shown(login(client, "analyste", "wrong"))
    signed_in(client, "analyste")  # the choice outlives the new session of a login
    new_alert(db, category="ATTACK")
    inbox = client.get("/console/alerts").get_data(as_text=True)
    assert re.search(r">1 alert(?!s)", inbox) and "Attack" in inbox and "analyst" in inbox
    assert client.get("/console/language/fr", query_string={"next": "https://evil.example/"}).location \
        .endswith("/console/")  # never a redirect elsewhere
    assert "Alertes" in client.get("/console/alerts").get_data(as_text=True)


# --- recordings -------------------------------------------------------------------------

def stored_recording(app, db, twilio_standin, alert_id: int, sid: str = "RE" + "1" * 32) -> int:
    """A caller's recording as the voice line stores one: noted, completed, fetched, encrypted."""
    url = twilio_standin.add_recording(sid, AUDIO)
    row = recordings.noted(db, "twilio", sid, url, 4, "message", alert_id=alert_id)
    recordings.completed(db, app.extensions["redis"], "twilio", sid, url, "completed", "4")
    with app.app_context():  # the fetch job's own context, as a worker runs it
        assert recordings.fetch(Services.current(), row.id) == "stored"
    return row.id


def test_an_operator_listens_to_a_stored_recording_and_each_listen_is_audited(
        app, client, db, analyst, twilio_standin, monkeypatch):
    alert_id = new_alert(db, channel="voice", category="ABDUCTION")
    other_id = new_alert(db, channel="voice", category="ATTACK")
    heard = stored_recording(app, db, twilio_standin, alert_id)
    pending = recordings.noted(db, "twilio", "RE" + "2" * 32, None, 3, "place-name", alert_id=alert_id).id
    path = f"/console/alerts/{alert_id}/recordings/{heard}"
    signed_in(client, "analyste")
    page = client.get(f"/console/alerts/{alert_id}").get_data(as_text=True)
    assert f'<audio controls preload="none" src="{path}">' in page and "pas encore stocké ici" in page
    audio = client.get(path)
    assert audio.status_code == 200 and audio.data == AUDIO and audio.mimetype == "audio/wav"
    assert "no-store" in audio.headers["Cache-Control"]
    part = client.get(path, headers={"Range": "bytes=100-199"})
    assert part.status_code == 206 and part.data == AUDIO[100:200]
    entries = list(db.scalars(select(AuditEntry).where(AuditEntry.action == "recording.listen")))
    assert [(e.operator_id, e.target_id, e.after) for e in entries] == [(analyst, str(heard), {"alert": alert_id})]
    assert client.get(f"/console/alerts/{alert_id}/recordings/{pending}").status_code == 404
    assert client.get(f"/console/alerts/{other_id}/recordings/{heard}").status_code == 404
    assert client.get(f"/console/alerts/{alert_id}/recordings/999999").status_code == 404


def test_a_recording_is_refused_to_those_who_may_not_hear_it(app, client, db, analyst, twilio_standin, monkeypatch):
    restricted = new_alert(db, channel="voice", category="SEXUAL_VIOLENCE")
    heard = stored_recording(app, db, twilio_standin, restricted)
    make_operator(db, "diffuseur", ["broadcaster"])
    path = f"/console/alerts/{restricted}/recordings/{heard}"
    assert client.get(path).status_code == 302
    signed_in(client, "diffuseur")
    assert client.get(path).status_code == 403
    post_form(client, "/console/", "/console/logout")
    monkeypatch.setattr(accounts, "RESTRICTED_ROLES", ("administrator",))
    signed_in(client, "analyste")
    assert client.get(path).status_code == 404
    db.rollback()  # a new transaction: what the pages committed
    assert not db.scalar(select(func.count(AuditEntry.id)).where(AuditEntry.action == "recording.listen"))
    assert db.get(Recording, heard).status == "stored"


# --- the audit log ----------------------------------------------------------------------

def test_an_administrator_reads_filters_and_exports_the_audit_log(client, db, admin, analyst):
    alert_id = new_alert(db)
    signed_in(client, "analyste")
    post_form(client, f"/console/alerts/{alert_id}", f"/console/alerts/{alert_id}/transition", to="acknowledged")
    client.get("/console/language/fr")
    post_form(client, "/console/alerts", "/console/logout")
    signed_in(client, "admin")
    page = client.get("/console/audit").get_data(as_text=True)
    rows = re.findall(r"<tr><td>[^<]*</td><td>(\w+)</td><td>([\w.]+)</td>", page)
    assert rows == [("admin", "operator.login"), ("analyste", "operator.logout"),
                    ("analyste", "alert.acknowledged"), ("analyste", "operator.login")]
    only = client.get("/console/audit", query_string={"action": "alert.acknowledged"}).get_data(as_text=True)
    assert re.findall(r"<tr><td>[^<]*</td><td>(\w+)</td><td>([\w.]+)</td>", only) == [
        ("analyste", "alert.acknowledged")]
    by_target = client.get("/console/audit", query_string={"target_type": "alert", "target_id": str(alert_id)})
    assert by_target.get_data(as_text=True).count("alert.acknowledged") == 1
    assert "operator.login" not in client.get("/console/audit", query_string={"operator": "nobody"}) \
        .get_data(as_text=True)
    export = client.get("/console/audit.csv", query_string={"operator": "analyste"})
    assert export.status_code == 200 and export.mimetype == "text/csv"
    assert "attachment" in export.headers["Content-Disposition"]
    table = list(csv.DictReader(io.StringIO(export.get_data(as_text=True))))
    assert [r["action"] for r in table] == ["operator.logout", "alert.acknowledged", "operator.login"]
    assert table[1]["before"] == '{"status": "new"}' and {r["operator"] for r in table} == {"analyste"}
    entry = db.scalar(select(AuditEntry).where(AuditEntry.action == "audit.export"))
    assert entry.operator_id == admin and entry.after == {"filters": {"operator": "analyste"}, "rows": 3}


# --- light pages, complete catalogs -----------------------------------------------------

def test_the_pages_are_small_and_need_nothing_from_elsewhere(client, db, admin, text_in):
    text_in("attaque a Kasindi")
    db.rollback()
    inbound = db.scalar(select(Message).where(Message.direction == "in"))
    for n in range(50):
        new_alert(db, category="ATTACK", description="x" * 200)
    alert_id = new_alert(db, conversation_id=inbound.conversation_id, reporter_id=inbound.reporter_id)
    css = client.get("/console/static/console.css")
    assert css.status_code == 200 and len(css.data) < 8000
    signed_in(client, "admin")
    for path in ("/console/login", "/console/alerts", f"/console/alerts/{alert_id}", "/console/audit"):
        page = client.get(path)
        html = page.get_data(as_text=True)
        assert len(page.data) + len(css.data) < 50_000, path
        assert "<script" not in html and "http://" not in html and "https://" not in html, path
        assert "default-src 'self'" in page.headers["Content-Security-Policy"]


def test_every_console_text_is_in_french_and_english():
    extracted = {found[2] for found in extract_from_dir(
        ROOT / "service" / "console", method_map=[("**.py", "python"), ("**/templates/**.html", "jinja2")],
        keywords={"_": None, "gettext": None, "ngettext": (1, 2), "N_": None})}
    wanted = {m[0] if isinstance(m, tuple) else m for m in extracted}
    assert len(wanted) > 80
    from service.console import i18n
    for lang in ("fr", "en"):
        translated = set()
        for path in i18n.catalog_files(lang):
            with path.open("rb") as source:
                catalog = read_po(source, locale=lang)
            translated |= {m.id[0] if isinstance(m.id, tuple) else m.id for m in catalog
                           if m.id and not m.fuzzy and all(m.string if isinstance(m.string, tuple) else [m.string])}
        assert wanted - translated == set(), lang


@pytest.mark.parametrize("environment, secure", [("production", True), ("development", False), ("test", False)])
def test_the_session_cookie_is_secure_outside_development_and_test(environment, secure):
    app = Flask(__name__)
    app.config.update(ALERTE_ENV=environment, CONSOLE_SESSION_HOURS=8, CONSOLE_LANGUAGE="fr", SECRET_KEY="s")
    app.register_blueprint(bp)
    assert app.config["SESSION_COOKIE_SECURE"] is secure
    assert app.config["SESSION_COOKIE_HTTPONLY"] and app.config["SESSION_COOKIE_SAMESITE"] == "Lax"
    assert app.config["PERMANENT_SESSION_LIFETIME"] == timedelta(hours=8)


# --- telling the reporter, revealing a number ------------------------------------------------

def reported(db, text_in, **fields) -> int:
    """An alert from a real inbound SMS (its reporter's number kept, encrypted)."""
    assert text_in("watu wenye silaha wako kijijini").status_code == 200
    db.rollback()
    inbound = db.scalar(select(Message).where(Message.direction == "in"))
    return new_alert(db, reporter_id=inbound.reporter_id, conversation_id=inbound.conversation_id,
                     reference="482913", **fields)


def test_acknowledging_can_tell_the_reporter_by_sms_once(client, db, analyst, text_in):
    alert_id = reported(db, text_in)
    signed_in(client, "analyste")
    page = client.get(f"/console/alerts/{alert_id}").get_data(as_text=True)
    assert 'name="tell" value="1" checked' in page
    moved = post_form(client, f"/console/alerts/{alert_id}", f"/console/alerts/{alert_id}/transition",
                      to="acknowledged", tell="1")
    assert "L'informateur recevra un SMS." in shown(client.get(moved.location))
    db.rollback()
    [told] = db.scalars(select(Message).where(Message.direction == "out", Message.reply_to_id.is_(None))).all()
    assert told.reply_context == {"alert": alert_id, "event": "acknowledged"} and "482913" in told.body
    assert "silaha" not in told.body  # only the reference, never what was reported
    assert "alert.reporter_told" in audit_actions(db)


def test_a_step_without_the_box_ticked_tells_nobody(client, db, analyst, text_in):
    alert_id = reported(db, text_in)
    signed_in(client, "analyste")
    post_form(client, f"/console/alerts/{alert_id}", f"/console/alerts/{alert_id}/transition", to="acknowledged")
    db.rollback()
    assert not db.scalars(select(Message).where(Message.direction == "out", Message.reply_to_id.is_(None))).all()


def test_revealing_the_number_needs_the_role_and_a_reason_and_is_audited_without_it(client, db, analyst, text_in):
    alert_id = reported(db, text_in)
    make_operator(db, "diffuseur", ["broadcaster"])
    signed_in(client, "diffuseur")
    refused = post_form(client, "/console/", f"/console/alerts/{alert_id}/reveal", reason="x" * 20)
    assert refused.status_code == 403 and REPORTER not in shown(refused)
    client.get("/console/logout")
    signed_in(client, "analyste")
    page = client.get(f"/console/alerts/{alert_id}").get_data(as_text=True)
    assert "/reveal" in page and REPORTER not in page
    short = post_form(client, f"/console/alerts/{alert_id}", f"/console/alerts/{alert_id}/reveal", reason="vite")
    assert short.status_code == 302 and REPORTER not in shown(client.get(short.location))
    shown_once = post_form(client, f"/console/alerts/{alert_id}", f"/console/alerts/{alert_id}/reveal",
                           reason="rappeler pour confirmer le lieu de l'attaque")
    assert shown_once.status_code == 200 and REPORTER in shown(shown_once)
    assert shown_once.headers["Cache-Control"].startswith("private, no-store")
    db.rollback()
    entry = db.scalar(select(AuditEntry).where(AuditEntry.action == "reporter.reveal_number"))
    assert entry.operator_id == analyst and entry.reason.startswith("rappeler")
    assert REPORTER[4:] not in str((entry.before, entry.after, entry.reason, entry.target_id))
    assert client.get(f"/console/alerts/{alert_id}").get_data(as_text=True).count(REPORTER) == 0


def test_an_operator_registers_a_focal_points_home_village_without_seeing_the_number(client, db, analyst, text_in):
    from service.models import Reporter
    alert_id = reported(db, text_in)
    signed_in(client, "analyste")
    unknown = post_form(client, f"/console/alerts/{alert_id}", f"/console/alerts/{alert_id}/home", place="Xyzzyville")
    assert "Aucun lieu de ce nom" in shown(client.get(unknown.location))
    done = post_form(client, f"/console/alerts/{alert_id}", f"/console/alerts/{alert_id}/home", place="Oicha")
    page = shown(client.get(done.location))
    assert "Village d'origine enregistré : Oicha." in page and REPORTER not in page
    db.rollback()
    reporter = db.scalar(select(Reporter))
    from bot.places import default_gazetteer
    assert reporter.home_place_key == default_gazetteer().resolve("Oicha").place.key
    entry = db.scalar(select(AuditEntry).where(AuditEntry.action == "reporter.home_place"))
    assert entry.operator_id == analyst and entry.after == {"home_place": reporter.home_place_key}
    forged = post_form(client, f"/console/alerts/{alert_id}", f"/console/alerts/{alert_id}/home", key="CD99999")
    assert "Aucun lieu de ce nom" in shown(client.get(forged.location))


def test_the_inbox_links_to_the_export_of_what_it_shows(client, db, analyst):
    new_alert(db, category="LOOTING")
    signed_in(client, "analyste")
    page = client.get("/console/alerts?category=LOOTING").get_data(as_text=True)
    link = re.search(r'href="(/console/export\.csv[^"]*)"', page)
    assert link and "category=LOOTING" in link.group(1)
    exported = client.get(html.unescape(link.group(1)))
    assert exported.status_code == 200 and "#" in exported.get_data(as_text=True).splitlines()[1]
