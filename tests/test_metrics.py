"""Response times per area and week, and silent areas (service/metrics.py), with fixed
timestamps on SQLite and PostgreSQL."""

from __future__ import annotations

import random
from datetime import datetime, timedelta, timezone

import json
import re

import pytest
import redis as redis_client
from sqlalchemy import DateTime, literal, select
from sqlalchemy.orm import Session

from bot.parsing import EAST
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


# --- the grouped queries against a straightforward computation ----------------------------------

def _utc(value: datetime) -> datetime:
    return value.replace(tzinfo=timezone.utc) if value.tzinfo is None else value.astimezone(timezone.utc)


@pytest.fixture
def mixed(db):
    """Fixed pseudo-random reports: every status, restricted categories, no place, a province
    and a territory as the place, submitted or only created, microseconds, several
    acknowledgements, a step before submission, eastern midnights and week ends to the microsecond."""
    rng = random.Random(20240306)
    spots = [place(db, "x:a", "CD61", "CD6104"), place(db, "x:b", "CD61", "CD6105"),
             place(db, "x:c", "CD62", "CD6201"), place(db, "x:d", "CD62", None)]
    spots.append(Place(key="CD63", name="prov CD63", level="adm1", admin1_pcode=None))
    spots.append(Place(key="CD6301", name="terr CD6301", level="adm2", admin1_pcode="CD63", admin1_name="prov CD63"))
    db.add_all(spots[-2:])
    db.flush()
    spots.append(None)
    categories = ["ATTACK", "LOOTING", "SEXUAL_VIOLENCE", "THREAT", None]
    sunday_night = datetime(2024, 3, 3, 22, 0, tzinfo=timezone.utc)  # Monday 00:00 in Goma, week W10
    edges = [sunday_night - timedelta(microseconds=1), sunday_night, sunday_night + timedelta(microseconds=1),
             NOW - timedelta(days=7), NOW - timedelta(days=7, microseconds=1), NOW]
    times = edges + [NOW - timedelta(seconds=rng.uniform(0, 86400 * 11 * 7)) for _ in range(250)]
    for n, at in enumerate(times):
        at = at.replace(microsecond=at.microsecond if n < len(edges) else rng.randrange(1_000_000))
        alert = Alert(category=rng.choice(categories), place=rng.choice(spots), channel="sms",
                      status=rng.choice(["new", "new", "acknowledged", "closed", "draft", "incomplete"]),
                      created_at=at - timedelta(seconds=rng.randrange(0, 4000)),
                      submitted_at=None if n % 5 == 0 else at)
        db.add(alert)
        db.flush()
        for to in ("acknowledged", "acknowledged", "dispatched", "verified"):
            if rng.random() < 0.6:
                delay = timedelta(seconds=rng.uniform(-600, 86400 * 3), microseconds=rng.randrange(1_000_000))
                db.add(AlertEvent(alert_id=alert.id, from_status="x", to_status=to, at=at + delay))
    db.commit()


def _plain_response_times(db, weeks, now, include_restricted):
    """The metric as its definition reads: every alert, its events, datetimes."""
    start = metrics._week_start(now) - timedelta(weeks=weeks - 1)
    groups = {}
    for alert in db.scalars(select(Alert)):
        at = _utc(alert.submitted_at or alert.created_at)
        if alert.status == "draft" or not start <= at <= now or (
                not include_restricted and alert.category in metrics.HIDDEN):
            continue
        events = db.scalars(select(AlertEvent).where(AlertEvent.alert_id == alert.id)).all()
        steps = {}
        for to in ("acknowledged", "dispatched"):
            times = [_utc(e.at) for e in events if e.to_status == to]
            steps[to] = max((min(times) - at).total_seconds(), 0.0) if times else None
        p = alert.place
        areas = metrics._areas(*((p.level, p.key, p.admin1_pcode, p.admin1_name, p.admin2_pcode, p.admin2_name,
                                  p.name) if p else (None,) * 7))
        week = metrics.iso_week(at)
        for level, pcode, name in [("all", None, None), *areas]:
            group = groups.setdefault((level, pcode, week), {"level": level, "pcode": pcode, "name": name,
                                                             "week": week, "alerts": 0, "ack": [], "dispatch": []})
            group["alerts"] += 1
            for to, key in (("acknowledged", "ack"), ("dispatched", "dispatch")):
                if steps[to] is not None:
                    group[key].append(steps[to])
    order = {"all": 0, "adm1": 1, "adm2": 2, "none": 3}
    result = []
    for key in sorted(groups, key=lambda k: (k[2], order[k[0]], k[1] or "")):
        group = groups[key]
        ack, dispatch = group.pop("ack"), group.pop("dispatch")
        result.append({**group, "acknowledged": len(ack), "dispatched": len(dispatch),
                       "ack_median_s": metrics.percentile(ack, 0.5), "ack_p90_s": metrics.percentile(ack, 0.9),
                       "dispatch_median_s": metrics.percentile(dispatch, 0.5),
                       "dispatch_p90_s": metrics.percentile(dispatch, 0.9)})
    return result


def _plain_silent_areas(db, now, weeks, min_weekly, quiet_days, include_restricted):
    quiet_from = now - timedelta(days=quiet_days)
    baseline_from = quiet_from - timedelta(weeks=weeks)
    areas = {}
    for alert in db.scalars(select(Alert)):
        at, p = _utc(alert.submitted_at or alert.created_at), alert.place
        if p is None or not baseline_from <= at <= now or (not include_restricted and alert.category in metrics.HIDDEN):
            continue
        territory = p.key if p.level == "adm2" else p.admin2_pcode
        if not territory:
            continue
        area = areas.setdefault(territory, {"pcode": territory, "name": p.name if p.level == "adm2" else p.admin2_name,
                                            "admin1": p.admin1_pcode, "admin1_name": p.admin1_name,
                                            "baseline": 0, "recent": 0, "last": at})
        area["last"] = max(area["last"], at)
        area["recent" if at >= quiet_from else "baseline"] += 1
    return sorted(({"pcode": a["pcode"], "name": a["name"], "admin1": a["admin1"], "admin1_name": a["admin1_name"],
                    "usual_weekly": round(a["baseline"] / weeks, 2), "last_report_at": a["last"].isoformat(),
                    "days_since_last": round((now - a["last"]).total_seconds() / 86400, 1)}
                   for a in areas.values() if a["recent"] == 0 and a["baseline"] / weeks >= min_weekly),
                  key=lambda a: (-a["days_since_last"], a["pcode"]))


@pytest.mark.parametrize("include_restricted", [False, True])
@pytest.mark.parametrize("weeks", [1, 4, 8])
def test_response_times_are_those_of_a_plain_computation(db, mixed, weeks, include_restricted):
    got = metrics.response_times(db, weeks=weeks, now=NOW, include_restricted=include_restricted)
    assert got == _plain_response_times(db, weeks, NOW, include_restricted)
    assert len(got) > 5 * weeks if weeks > 1 else len(got) > 5


def test_response_times_keep_microseconds_and_eastern_weeks(db, places):
    sunday_night = datetime(2024, 3, 3, 22, 0, tzinfo=timezone.utc)  # Monday 00:00 in Goma
    report(db, places["beni"], sunday_night - timedelta(microseconds=1), ack=timedelta(seconds=1, microseconds=7))
    report(db, places["kalehe"], sunday_night, ack=timedelta(microseconds=-3), dispatch=timedelta(days=2, seconds=0.25))
    db.commit()
    rows = metrics.response_times(db, weeks=2, now=NOW)
    assert row(rows, "adm2", "CD6104", "2024-W09")["ack_median_s"] == 1.000007
    kalehe = row(rows, "adm2", "CD6201", "2024-W10")
    assert kalehe["ack_median_s"] == 0.0 and kalehe["dispatch_p90_s"] == 172800.25
    assert {(r["level"], r["week"]) for r in rows if r["level"] == "all"} == {("all", "2024-W09"), ("all", "2024-W10")}


@pytest.mark.parametrize("include_restricted", [False, True])
@pytest.mark.parametrize("weeks,min_weekly,quiet_days", [(8, 1.0, 7), (8, 0.3, 7), (2, 0.5, 3), (4, 0.0, 20)])
def test_silent_areas_are_those_of_a_plain_computation(db, mixed, weeks, min_weekly, quiet_days, include_restricted):
    got = metrics.silent_areas(db, now=NOW, weeks=weeks, min_weekly=min_weekly, quiet_days=quiet_days,
                               include_restricted=include_restricted)
    assert got == _plain_silent_areas(db, NOW, weeks, min_weekly, quiet_days, include_restricted)


def test_silent_areas_on_a_busy_line_are_none(db, mixed):
    later = NOW + timedelta(days=1)
    assert metrics.silent_areas(db, now=later, min_weekly=0.0, quiet_days=1) == _plain_silent_areas(
        db, later, 8, 0.0, 1, False)


def test_eastern_days_from_epoch_seconds_in_sql(db):
    assert EAST.utcoffset(datetime(2024, 7, 1)) == timedelta(seconds=metrics.EAST_OFFSET_S)
    for at in (datetime(2024, 3, 3, 21, 59, 59, 999999), datetime(2024, 3, 3, 22, 0), datetime(2023, 12, 31, 22, 0),
               datetime(2024, 2, 29, 12, 30, 0, 5)):
        value = literal(at.replace(tzinfo=timezone.utc), DateTime(timezone=True))
        day, us = db.execute(select(metrics.east_day(db, value), metrics.epoch_us(db, value))).one()
        assert isinstance(day, int)  # SQLite too: an integer division, so alerts of one day group together
        assert metrics.day_of(day) == at.replace(tzinfo=timezone.utc).astimezone(EAST).date()
        assert us == (at - datetime(1970, 1, 1)) // timedelta(microseconds=1)


def test_response_times_on_many_places_and_weeks_are_those_of_a_plain_computation(db):
    """Several alerts per week and place (PostgreSQL's arrays per week and place are then
    merged into areas), places sharing a territory under different names (one name, the
    smallest, whatever the order of the rows)."""
    rng = random.Random(12)
    spots = [place(db, f"x:{n}", f"CD6{n % 2}", f"CD6{n % 2}0{n % 3}") for n in range(9)]
    spots[4].admin2_name = "another name"
    for n in range(400):
        at = NOW - timedelta(seconds=rng.uniform(0, 86400 * 7 * 5))
        report(db, rng.choice(spots + [None]), at, ack=timedelta(seconds=rng.uniform(-60, 9000)) if n % 3 else None,
               dispatch=timedelta(hours=rng.uniform(0, 30)) if n % 4 == 0 else None)
    db.commit()
    got = metrics.response_times(db, weeks=5, now=NOW)
    assert got == _plain_names(_plain_response_times(db, 5, NOW, False))
    assert 300 < sum(r["alerts"] for r in got if r["level"] == "all") < 400  # the oldest: before the window
    assert len({r["week"] for r in got}) == 5 and any(r["name"] == "another name" for r in got)


def _plain_names(rows):
    """The plain computation names an area after its first alert's place: the smallest name instead."""
    names = {}
    for r in rows:
        if r["name"] is not None:
            names[r["level"], r["pcode"]] = min(names.get((r["level"], r["pcode"]), r["name"]), r["name"])
    return [{**r, "name": names.get((r["level"], r["pcode"]), r["name"])} for r in rows]


# --- the dashboard's figures: computed at once, cached a short while (service/console/dashboard.py) ------

@pytest.fixture
def pages_db(app):
    """A session of the test's own, apart from the pages' (as in tests/test_console.py)."""
    session = Session(app.extensions["db"].engine, expire_on_commit=False)
    yield session
    session.close()


def _signed_in_analyst(client, session):
    from tests.test_console import make_operator, signed_in

    make_operator(session, "analyste", ["analyst"])
    return signed_in(client, "analyste")


def _dashboard(client) -> str:
    from tests.test_console import shown

    page = client.get("/console/dashboard")
    assert page.status_code == 200
    return shown(page)


def test_the_dashboard_keeps_its_figures_a_short_while_and_says_how_old_they_are(app, client, pages_db):
    from service.console import dashboard
    from tests.test_console import new_alert
    from tests.test_console import place as console_place

    village = console_place(pages_db, "kiwanja", "Kiwanja")
    new_alert(pages_db, category="LOOTING", place_id=village)
    _signed_in_analyst(client, pages_db)
    text = _dashboard(client)
    assert "Pillage/feu: 1</title>" in text and re.search(r"calculé il y a [0-5] s", text)
    assert "gardés 45 secondes" in text
    new_alert(pages_db, category="LOOTING", place_id=village)
    assert "Pillage/feu: 1</title>" in _dashboard(client)  # the kept figures
    cache = app.extensions["redis"]
    key = dashboard.CACHE_KEY.format(restricted=1, weeks=dashboard.WEEKS)
    assert 0 < cache.ttl(key) <= dashboard.CACHE_S
    kept = json.loads(cache.get(key))
    kept["computed_at"] = (datetime.fromisoformat(kept["computed_at"]) - timedelta(seconds=20)).isoformat()
    cache.set(key, json.dumps(kept), ex=dashboard.CACHE_S)
    assert re.search(r"calculé il y a 2[0-5] s", _dashboard(client))
    cache.delete(key)
    assert "Pillage/feu: 2</title>" in _dashboard(client)  # computed again


def test_figures_are_kept_apart_for_those_who_may_not_see_restricted_categories(client, pages_db, monkeypatch):
    from tests.test_console import new_alert
    from tests.test_console import place as console_place

    village = console_place(pages_db, "kiwanja", "Kiwanja")
    new_alert(pages_db, category="SEXUAL_VIOLENCE", place_id=village)
    _signed_in_analyst(client, pages_db)
    assert "· Viol: 1</title>" in _dashboard(client)  # the category's French label
    monkeypatch.setattr("service.accounts.RESTRICTED_ROLES", ("administrator",))  # the analyst may no longer
    text = _dashboard(client)
    assert "Viol" not in text and "<svg" not in text


def test_without_redis_the_dashboard_computes_its_figures(app, client, pages_db, caplog):
    from tests.test_console import new_alert
    from tests.test_console import place as console_place

    new_alert(pages_db, category="LOOTING", place_id=console_place(pages_db, "kiwanja", "Kiwanja"))
    _signed_in_analyst(client, pages_db)
    app.extensions["redis"] = redis_client.Redis(host="127.0.0.1", port=1, socket_connect_timeout=1)
    text = _dashboard(client)
    assert "Pillage/feu: 1</title>" in text and re.search(r"calculé il y a [0-5] s", text)
    assert "dashboard cache unreadable" in caplog.text


def test_the_figures_computed_at_once_are_those_computed_one_after_another(app, db, mixed):
    """On PostgreSQL the three queries run on their own connections and threads."""
    from service import accounts
    from service.console import dashboard

    operator = accounts.create(db, "analyste", "correct horse battery", ["analyst"])
    db.commit()
    later = NOW + timedelta(days=3)
    with app.test_request_context():
        found = dashboard.figures(db, later, operator, 8)
        counted = [list(r) for r in db.execute(dashboard._chart_query(db, later, operator))]
    assert found == {"computed_at": later.isoformat(),
                     "silent": metrics.silent_areas(db, now=later, include_restricted=True),
                     "times": metrics.response_times(db, weeks=8, now=later, include_restricted=True),
                     "charts": counted}
    assert found["times"] and found["charts"] and json.loads(json.dumps(found)) == found
