"""The console's incidents, dashboard and CSV export (service/console/incidents.py and
dashboard.py), through their pages on real SQLite and PostgreSQL: an analyst sees the
reports of one event on one line, merges two incidents and splits one with a reason
(audited), reads which places have gone quiet and how fast alerts get an answer, and
exports the inbox's alerts with HXL hashtags, never a number."""

from __future__ import annotations

import csv
import io
import re
from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import select

from bot.parsing import EAST
from service import incidents, triage
from service.models import Alert, AuditEntry, Incident, Reporter
from tests.conftest import REPORTER
from tests.test_console import (  # noqa: F401  fixtures and helpers of the console's tests
    admin, analyst, app_config, db, make_operator, new_alert, place, post_form, shown, signed_in)

NOW = datetime.now(timezone.utc)


def reporter(db, n: int) -> int:
    row = Reporter(key=f"{n:064x}")
    db.add(row)
    db.commit()
    return row.id


def grouped(db) -> None:
    """The sweep's grouping, as it runs in production."""
    incidents.backfill(db)
    db.commit()


def incident_of(db, alert_id: int) -> Incident:
    db.rollback()  # a new transaction: what the pages committed
    return db.get(Incident, db.get(Alert, alert_id).incident_id, populate_existing=True)


def incident_ids(page) -> list[int]:
    return [int(i) for i in re.findall(r'href="/console/incidents/(\d+)"', page.get_data(as_text=True))]


@pytest.fixture
def village(db):
    return place(db, "kiwanja", "Kiwanja")


# --- the list and an incident's page ----------------------------------------------------------

@pytest.mark.parametrize("path", ["/console/incidents", "/console/incidents/1", "/console/dashboard",
                                  "/console/export.csv"])
def test_the_pages_need_a_login_and_the_right_role(client, db, path):
    assert client.get(path).status_code == 302
    make_operator(db, "diffuseur", ["broadcaster"])
    signed_in(client, "diffuseur")
    assert client.get(path).status_code == 403


def test_reports_of_one_event_are_one_line_with_their_sources(client, db, analyst, village):
    one, two = reporter(db, 1), reporter(db, 2)
    first = new_alert(db, place_id=village, reporter_id=one, created_at=NOW - timedelta(hours=3))
    new_alert(db, place_id=village, reporter_id=one, category="LOOTING", created_at=NOW - timedelta(hours=2))
    new_alert(db, place_id=village, reporter_id=two, created_at=NOW - timedelta(hours=1))
    later = new_alert(db, category="HATE_SPEECH", place_id=village)
    grouped(db)
    signed_in(client, "analyste")
    page = client.get("/console/incidents")
    text = shown(page)
    attack, speech = incident_of(db, first), incident_of(db, later)
    assert incident_ids(page) == [speech.id, attack.id]  # newest activity first
    row = re.search(rf'/console/incidents/{attack.id}".*?</tr>', text, re.S).group(0)
    assert "Attaque" in row and "Kiwanja, Rutshuru, Nord-Kivu" in row
    assert re.findall(r'class="n">(\d+)<', row) == ["3", "2"]  # three alerts, two sources
    only = client.get("/console/incidents", query_string={"category": "HATE_SPEECH"})
    assert incident_ids(only) == [speech.id]
    detail = client.get(f"/console/incidents/{attack.id}").get_data(as_text=True)
    assert detail.count('href="/console/alerts/') == 3 and f'href="/console/alerts/{first}"' in detail
    assert client.get("/console/incidents/999999").status_code == 404


def test_restricted_incidents_are_hidden_without_the_right_and_audited_when_seen(
        client, db, analyst, village, monkeypatch):
    hidden = new_alert(db, category="SEXUAL_VIOLENCE", place_id=village)
    seen = new_alert(db, place_id=village)
    grouped(db)
    restricted, open_one = incident_of(db, hidden), incident_of(db, seen)
    make_operator(db, "lecteur", ["administrator"])
    monkeypatch.setattr("service.accounts.RESTRICTED_ROLES", ("administrator",))
    signed_in(client, "analyste")
    assert incident_ids(client.get("/console/incidents")) == [open_one.id]
    assert client.get(f"/console/incidents/{restricted.id}").status_code == 404
    asked = client.get("/console/incidents", query_string={"category": "SEXUAL_VIOLENCE"})
    assert restricted.id not in incident_ids(asked)
    refused = post_form(client, f"/console/incidents/{open_one.id}", f"/console/incidents/{open_one.id}/merge",
                        others=str(restricted.id), reason="même événement")
    assert refused.status_code == 400 and f"Il n'y a pas d'incident n° {restricted.id}" in shown(refused)
    post_form(client, "/console/incidents", "/console/logout")
    signed_in(client, "lecteur")
    assert set(incident_ids(client.get("/console/incidents"))) == {restricted.id, open_one.id}
    assert client.get(f"/console/incidents/{restricted.id}").status_code == 200
    assert db.scalar(select(AuditEntry.target_id).where(AuditEntry.action == "incident.view_restricted")) \
        == str(restricted.id)


# --- merge and split ------------------------------------------------------------------------

def test_an_analyst_merges_a_nearby_incident_with_a_reason(client, db, analyst, village):
    other_village = place(db, "rubare", "Rubare", admin2=("CD6104", "Rutshuru"))
    a = new_alert(db, place_id=village, reporter_id=reporter(db, 1))
    b = new_alert(db, category="DISPLACEMENT", place_id=other_village, reporter_id=reporter(db, 2))
    grouped(db)
    target, other = incident_of(db, a), incident_of(db, b)
    assert target.id != other.id
    signed_in(client, "analyste")
    path = f"/console/incidents/{target.id}"
    page = client.get(path).get_data(as_text=True)
    assert f'name="other" value="{other.id}"' in page  # offered: open, nearby, same days
    no_reason = post_form(client, path, f"{path}/merge", other=str(other.id), reason="  ")
    assert no_reason.status_code == 400 and "le motif est obligatoire" in shown(no_reason)
    assert f'name="other" value="{other.id}" checked' in no_reason.get_data(as_text=True)  # kept as ticked
    nothing = post_form(client, path, f"{path}/merge", reason="même attaque")
    assert nothing.status_code == 400
    done = post_form(client, path, f"{path}/merge", other=str(other.id), reason="même attaque, vu de Rubare")
    assert done.status_code == 302 and done.location.endswith(path)
    merged, closed = incident_of(db, a), incident_of(db, b)
    assert merged.id == closed.id == target.id and (merged.alert_count, merged.source_count) == (2, 2)
    assert db.get(Incident, other.id).merged_into_id == target.id
    entry = db.scalar(select(AuditEntry).where(AuditEntry.action == "incident.merge"))
    assert entry.operator_id == analyst and entry.reason == "même attaque, vu de Rubare"
    assert entry.after["merged"] == [other.id]
    again = post_form(client, path, f"{path}/merge", others=f"#{other.id}", reason="encore")
    assert again.status_code == 409 and "déjà été fusionné" in shown(again)
    assert other.id not in incident_ids(client.get("/console/incidents"))
    assert "a été fusionné" in shown(client.get(f"/console/incidents/{other.id}"))


def test_an_analyst_splits_alerts_of_another_event_into_a_new_incident(client, db, analyst, village):
    one, two = reporter(db, 1), reporter(db, 2)
    kept = new_alert(db, place_id=village, reporter_id=one)
    moved = new_alert(db, place_id=village, reporter_id=two)
    grouped(db)
    incident = incident_of(db, kept)
    assert (incident.alert_count, incident.source_count) == (2, 2)
    signed_in(client, "analyste")
    path = f"/console/incidents/{incident.id}"
    no_reason = post_form(client, path, f"{path}/split", alert=str(moved))
    assert no_reason.status_code == 400 and "le motif est obligatoire" in shown(no_reason)
    everything = client.post(f"{path}/split", data={"alert": [str(kept), str(moved)], "reason": "autre",
                                                    "csrf_token": re.search(r'name="csrf_token" value="([^"]+)"',
                                                                            client.get(path).get_data(as_text=True))[1]})
    assert everything.status_code == 400 and "Laissez au moins une alerte" in shown(everything)
    assert client.post(f"{path}/split", data={"alert": str(moved), "reason": "autre"}).status_code == 400  # no CSRF
    done = post_form(client, path, f"{path}/split", alert=str(moved), reason="un autre village, le lendemain")
    assert done.status_code == 302
    old, new = incident_of(db, kept), incident_of(db, moved)
    assert old.id == incident.id and new.id != incident.id and done.location.endswith(f"/console/incidents/{new.id}")
    assert (old.alert_count, old.source_count, new.alert_count, new.source_count) == (1, 1, 1, 1)
    entry = db.scalar(select(AuditEntry).where(AuditEntry.action == "incident.split"))
    assert entry.operator_id == analyst and entry.reason == "un autre village, le lendemain"
    assert entry.after["alerts"] == [moved]


# --- the dashboard ------------------------------------------------------------------------------

def test_the_dashboard_puts_silent_areas_first_then_charts_and_response_times(client, db, analyst, village):
    quiet = place(db, "kitshanga", "Kitshanga", admin2=("CD6102", "Masisi"))
    for n in range(16):  # Masisi reported twice a week until eight days ago
        new_alert(db, place_id=quiet, created_at=NOW - timedelta(days=8 + n * 3.4))
    now = datetime.now(timezone.utc)  # not the module's NOW: the step below is timed by the real clock
    acknowledged = new_alert(db, place_id=village, category="LOOTING", created_at=now - timedelta(hours=5),
                             submitted_at=now - timedelta(hours=5))
    triage.transition(db, acknowledged, "acknowledged", None, "")
    db.commit()
    signed_in(client, "analyste")
    page = client.get("/console/dashboard")
    text = shown(page)
    assert page.status_code == 200
    silent = text.index("Zones silencieuses")
    assert silent < text.index("<svg") and "Masisi" in text[silent:text.index("<svg")]
    assert "le réseau est peut-être coupé" in text
    assert text.count("<svg") == 2 and "<rect" in text and "Pillage/feu: 1</title>" in text
    assert "Nord-Kivu" in text and "<details>" in text  # the province chart, the table of figures
    times = text[text.index("Délais de réponse"):]
    assert "Toutes les zones" in times and re.search(r">5 h 0\d<", times)  # acknowledged after five hours


def test_restricted_categories_are_counted_only_for_those_who_may_see_them(client, db, analyst, village, monkeypatch):
    new_alert(db, category="SEXUAL_VIOLENCE", place_id=village)
    monkeypatch.setattr("service.accounts.RESTRICTED_ROLES", ("administrator",))
    signed_in(client, "analyste")
    text = shown(client.get("/console/dashboard"))
    label = "Viol"  # the French label of SEXUAL_VIOLENCE (its English one is in the catalog)
    assert f">{label}" not in text and f"{label}:" not in text and "<svg" not in text


def test_the_charts_count_per_eastern_day_like_a_plain_computation(app, db, monkeypatch):
    """The charts' grouped query (days from epoch seconds in SQL) against counting each alert
    with its datetime, to the microsecond at eastern midnights and at the window's start."""
    from collections import Counter

    from service import accounts
    from service.console import dashboard

    now = datetime(2024, 3, 6, 12, 0, tzinfo=timezone.utc)
    spots = [place(db, "a", "A"), place(db, "b", "B", admin1=("CD62", "Sud-Kivu"), admin2=("CD6201", "Kalehe")),
             place(db, "CD63", "Tanganyika", level="adm1", admin1=(None, None), admin2=(None, None)),
             place(db, "c", "C", admin1=(None, None), admin2=(None, None)), None]
    start = datetime(2024, 2, 6, tzinfo=EAST)  # 30 eastern days up to today
    edges = [start - timedelta(microseconds=1), start, datetime(2024, 3, 3, 22, tzinfo=timezone.utc),
             datetime(2024, 3, 3, 21, 59, 59, 999999, tzinfo=timezone.utc), now, now + timedelta(hours=13)]
    rng = __import__("random").Random(7)
    times = edges + [now - timedelta(seconds=rng.uniform(0, 86400 * 35)) for _ in range(200)]
    for n, at in enumerate(times):
        spot = rng.choice(spots)
        new_alert(db, status=rng.choice(["new", "closed", "draft"]),
                  category=rng.choice(["ATTACK", "LOOTING", "SEXUAL_VIOLENCE", None]),
                  place_id=spot, created_at=at if n % 3 else at - timedelta(hours=30),
                  submitted_at=at if n % 3 else None)
    alerts = list(db.scalars(select(Alert)))
    for restricted in (False, True):
        monkeypatch.setattr(dashboard, "current_operator", lambda: restricted)
        monkeypatch.setattr(accounts, "can", lambda operator, permission: bool(operator))
        with app.test_request_context():
            by_category, by_province = dashboard._charts(db, now)
        categories, provinces, names = Counter(), Counter(), {}
        for alert in alerts:
            at = alert.submitted_at or alert.created_at
            at = at if at.tzinfo else at.replace(tzinfo=timezone.utc)
            if alert.status == "draft" or at < start or (not restricted and alert.category == "SEXUAL_VIOLENCE"):
                continue
            day, p = at.astimezone(EAST).date(), alert.place
            province = ((p.key if p.level == "adm1" else p.admin1_pcode) if p else None) or ""
            names.setdefault(province, ((p.name if p.level == "adm1" else p.admin1_name) if p else None) or province)
            categories[day, alert.category or ""] += 1
            provinces[day, province] += 1
        assert +by_category.counts == categories and +by_province.counts == provinces
        assert sum(categories.values()) > 50 and (("SEXUAL_VIOLENCE" in {c for _d, c in categories}) == restricted)
        assert [k for k, _n in by_province.series] == sorted(
            names, key=lambda k: (-sum(n for (_d, p), n in provinces.items() if p == k), k))
        assert {k: n for k, n in by_province.series if k} == {k: n for k, n in names.items() if k}
        assert by_category.days[-1] == now.astimezone(EAST).date() and len(by_category.days) == 30


# --- the CSV export -------------------------------------------------------------------------------

def test_the_export_has_hxl_hashtags_no_number_and_restricted_rows_only_for_the_right_role(
        client, db, analyst, village, text_in, monkeypatch):
    assert text_in(f"attaque a Kiwanja, appelez {REPORTER}").status_code == 200
    db.rollback()
    shared = new_alert(db, place_id=village, description=f"appelez {REPORTER}", reporter_id=reporter(db, 9),
                       created_at=NOW - timedelta(days=1))
    restricted = new_alert(db, category="SEXUAL_VIOLENCE", place_id=village)
    new_alert(db, category="LOOTING", status="draft")
    signed_in(client, "analyste")
    answer = client.get("/console/export.csv")
    assert answer.status_code == 200 and answer.mimetype == "text/csv"
    assert "attachment" in answer.headers["Content-Disposition"]
    body = answer.get_data(as_text=True)
    table = list(csv.reader(io.StringIO(body)))
    assert table[1][0] == "#date +occurred" and "#meta +id" in table[1]
    ids = [int(r[-1]) for r in table[2:]]
    assert shared in ids and restricted in ids
    assert REPORTER not in body and REPORTER[1:] not in body and REPORTER[4:] not in body
    yesterday = (NOW - timedelta(days=1)).astimezone(EAST).date().isoformat()  # the inbox's local days
    only = client.get("/console/export.csv", query_string={"category": "ATTACK", "since": yesterday,
                                                            "until": yesterday, "page": "2"})
    assert [int(r[-1]) for r in list(csv.reader(io.StringIO(only.get_data(as_text=True))))[2:]] == [shared]
    assert client.get("/console/export.csv", query_string={"category": "NOPE"}).status_code == 400
    entries = list(db.scalars(select(AuditEntry).where(AuditEntry.action == "alerts.export").order_by(AuditEntry.id)))
    assert [(e.operator_id, e.after) for e in entries] == [
        (analyst, {"filters": {}, "restricted": True}),
        (analyst, {"filters": {"category": "ATTACK", "since": yesterday, "until": yesterday}, "restricted": True})]
    monkeypatch.setattr("service.accounts.RESTRICTED_ROLES", ("administrator",))
    hidden = list(csv.reader(io.StringIO(client.get("/console/export.csv").get_data(as_text=True))))
    assert restricted not in [int(r[-1]) for r in hidden[2:]] and shared in [int(r[-1]) for r in hidden[2:]]


# --- light pages --------------------------------------------------------------------------------

def test_every_page_is_small_and_needs_nothing_from_elsewhere(client, db, admin):
    villages = [place(db, f"v{n}", f"Village {n}", admin1=(f"CD6{n % 3}", f"Province {n % 3}"),
                      admin2=(f"CD6{n % 3}0{n % 5}", f"Territoire {n % 5}")) for n in range(12)]
    for n in range(300):
        new_alert(db, category=["ATTACK", "LOOTING", "THREAT", "DISPLACEMENT", "EXTORTION", "CLASH"][n % 6],
                  place_id=villages[n % 12], created_at=NOW - timedelta(hours=n * 2.3))
    grouped(db)
    first = db.scalar(select(Incident.id).order_by(Incident.alert_count.desc()))
    signed_in(client, "admin")
    css = client.get("/console/static/console.css").data + client.get("/console/static/incidents.css").data
    for path in ("/console/incidents", f"/console/incidents/{first}", "/console/dashboard"):
        page = client.get(path)
        html = page.get_data(as_text=True)
        assert page.status_code == 200 and len(page.data) + len(css) < 50_000, (path, len(page.data))
        assert "<script" not in html and "http://" not in html and "https://" not in html.replace(
            'xmlns="http://www.w3.org/2000/svg"', ""), path
