"""Response times per area and week, and silent areas (service/metrics.py), with fixed
timestamps on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from service import metrics
from service.models import Alert, AlertEvent, Place

NOW = datetime(2024, 3, 6, 12, 0, tzinfo=timezone.utc)  # a Wednesday, ISO week 2024-W10
MONDAY = datetime(2024, 3, 4, 8, 0, tzinfo=timezone.utc)


def place(db, key, admin1, admin2, level="locality") -> Place:
    row = Place(key=key, name=key, level=level, admin1_pcode=admin1, admin1_name=f"prov {admin1}",
                admin2_pcode=admin2, admin2_name=f"terr {admin2}")
    db.add(row)
    db.flush()
    return row


@pytest.fixture
def places(db):
    return {"beni": place(db, "x:beni-village", "CD61", "CD6104"),
            "lubero": place(db, "x:lubero-village", "CD61", "CD6105"),
            "kalehe": place(db, "x:kalehe-village", "CD62", "CD6201"),
            "province": place(db, "CD61", "CD61", None, level="adm1")}


def report(db, where, at, category="ATTACK", status="new", ack=None, dispatch=None) -> Alert:
    alert = Alert(category=category, place=where, status=status, channel="sms", submitted_at=at, created_at=at)
    db.add(alert)
    db.flush()
    for to, delay in (("acknowledged", ack), ("dispatched", dispatch)):
        if delay is not None:
            db.add(AlertEvent(alert_id=alert.id, from_status="x", to_status=to, at=at + delay))
    db.flush()
    return alert


def row(rows, level, pcode, week="2024-W10"):
    return next(r for r in rows if (r["level"], r["pcode"], r["week"]) == (level, pcode, week))


def test_median_and_90th_percentile_to_acknowledgement_and_dispatch_per_territory_and_week(db, places):
    minutes = timedelta(minutes=1)
    report(db, places["beni"], MONDAY, ack=10 * minutes, dispatch=120 * minutes)
    report(db, places["beni"], MONDAY + timedelta(hours=3), ack=20 * minutes)
    report(db, places["beni"], MONDAY + timedelta(days=1), ack=60 * minutes)
    report(db, places["kalehe"], MONDAY)  # not acknowledged yet
    report(db, places["beni"], MONDAY - timedelta(days=3), ack=5 * minutes)  # the week before
    report(db, places["beni"], MONDAY, status="draft", ack=minutes)  # never submitted: not counted
    report(db, places["beni"], MONDAY, category="SEXUAL_VIOLENCE", ack=300 * minutes)
    report(db, places["beni"], MONDAY - timedelta(weeks=10), ack=minutes)  # outside the window
    db.commit()
    rows = metrics.response_times(db, weeks=8, now=NOW)
    beni = row(rows, "adm2", "CD6104")
    assert (beni["alerts"], beni["acknowledged"], beni["dispatched"]) == (3, 3, 1)
    assert beni["ack_median_s"] == 1200 and beni["ack_p90_s"] == pytest.approx(3120)
    assert beni["dispatch_median_s"] == beni["dispatch_p90_s"] == 7200 and beni["name"] == "terr CD6104"
    kalehe = row(rows, "adm2", "CD6201")
    assert (kalehe["alerts"], kalehe["acknowledged"], kalehe["ack_median_s"]) == (1, 0, None)
    assert row(rows, "adm1", "CD61")["alerts"] == 3 and row(rows, "adm1", "CD62")["alerts"] == 1
    assert row(rows, "all", None)["alerts"] == 4
    assert row(rows, "adm2", "CD6104", "2024-W09")["ack_median_s"] == 300
    assert {r["week"] for r in rows} == {"2024-W09", "2024-W10"}
    with_restricted = row(metrics.response_times(db, weeks=8, now=NOW, include_restricted=True), "adm2", "CD6104")
    assert with_restricted["alerts"] == 4 and with_restricted["ack_p90_s"] == pytest.approx(13680)


def test_weeks_are_eastern_drc_weeks():
    sunday_late_utc = datetime(2024, 3, 3, 23, 0, tzinfo=timezone.utc)  # Monday 01:00 in Goma
    assert metrics.iso_week(sunday_late_utc) == "2024-W10"


def test_percentiles_interpolate_like_postgresql():
    assert metrics.percentile([], 0.5) is None
    assert metrics.percentile([7.0], 0.9) == 7.0
    assert metrics.percentile([1, 2, 3, 4], 0.5) == 2.5
    assert metrics.percentile(list(range(1, 11)), 0.9) == pytest.approx(9.1)


def test_a_territory_that_usually_reports_and_has_gone_quiet_is_listed(db, places):
    quiet_from = NOW - timedelta(days=7)
    for i in range(16):  # two a week over the eight weeks before the quiet week
        at = quiet_from - timedelta(days=3.5 * i + 3)
        report(db, places["beni"], at)
        report(db, places["lubero"], at)
    report(db, places["lubero"], NOW - timedelta(days=2), status="incomplete")  # still reporting
    for i in range(3):  # rarely reports: its silence says nothing
        report(db, places["kalehe"], quiet_from - timedelta(days=10 * i + 1))
    report(db, places["province"], quiet_from - timedelta(days=1))  # no territory
    db.commit()
    silent = metrics.silent_areas(db, now=NOW)
    assert [a["pcode"] for a in silent] == ["CD6104"]
    beni = silent[0]
    assert beni["usual_weekly"] == 2.0 and beni["days_since_last"] == 10.0
    assert beni["name"] == "terr CD6104" and beni["admin1"] == "CD61"
    assert [a["pcode"] for a in metrics.silent_areas(db, now=NOW, min_weekly=0.3)] == ["CD6104", "CD6201"]
    assert metrics.silent_areas(db, now=NOW, quiet_days=14) == []


AUTH = {"Authorization": "Bearer test-api-token"}


def test_the_metrics_api_needs_the_token_and_checks_its_numbers(client, db, places):
    now = datetime.now(timezone.utc)
    report(db, places["beni"], now - timedelta(hours=2), ack=timedelta(minutes=30))
    for i in range(10):
        report(db, places["kalehe"], now - timedelta(days=8 + 3 * i))
    db.commit()
    assert client.get("/api/v1/metrics/response-times").status_code == 401
    times = client.get("/api/v1/metrics/response-times?weeks=2", headers=AUTH).get_json()
    beni = next(r for r in times["areas"] if r["pcode"] == "CD6104")
    assert times["weeks"] == 2 and beni["ack_median_s"] == pytest.approx(1800)
    silent = client.get("/api/v1/metrics/silent-areas?min_weekly=1", headers=AUTH).get_json()
    assert [a["pcode"] for a in silent["areas"]] == ["CD6201"] and silent["days"] == metrics.SILENT_DAYS
    assert client.get("/api/v1/metrics/silent-areas?days=soon", headers=AUTH).status_code == 400
    assert client.get("/api/v1/metrics/response-times?weeks=x", headers=AUTH).status_code == 400
