"""Reports of one event grouped into incidents (service/incidents.py), on SQLite and
PostgreSQL: ten messages about one attack are one line with its distinct sources."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import select

from service import accounts, incidents
from service.models import Alert, AuditEntry, Incident, Place, Reporter

T0 = datetime(2024, 3, 4, 6, 0, tzinfo=timezone.utc)
PASSWORD = "correct horse battery"


def place(db, key, lat=None, lon=None, level="locality", admin2="CD6104") -> Place:
    row = Place(key=key, name=key, level=level, admin1_pcode="CD61", admin1_name="Nord-Kivu",
                admin2_pcode=admin2, admin2_name="Beni", lat=lat, lon=lon)
    db.add(row)
    db.flush()
    return row


@pytest.fixture
def places(db):
    return {
        "village": place(db, "x:village", 0.50, 29.45),
        "neighbour": place(db, "x:neighbour", 0.52, 29.46),  # about 2.5 km away
        "far": place(db, "x:far", 0.95, 29.45),  # about 50 km north
        "beni": place(db, "CD6104", level="adm2"),  # the territory, no coordinates
        "elsewhere": place(db, "x:lubero-village", level="locality", admin2="CD6105"),
    }


def reporters(db, n) -> list[int]:
    rows = [Reporter(key=f"{i:064x}") for i in range(1, n + 1)]
    db.add_all(rows)
    db.flush()
    return [r.id for r in rows]


def report(db, category="ATTACK", where=None, at=T0, reporter_id=None, status="new", occurred=True) -> Alert:
    alert = Alert(category=category, place=where, reporter_id=reporter_id, status=status, channel="sms",
                  occurred_at=at if occurred else None, submitted_at=at, created_at=at)
    db.add(alert)
    db.flush()
    incidents.assign(db, alert)
    return alert


def test_ten_reports_of_one_attack_from_three_reporters_are_one_incident_with_three_sources(db, places):
    one, two, busy = reporters(db, 3)
    senders = [one, two] + [busy] * 8
    alerts = [report(db, where=places["village" if i % 2 else "neighbour"], at=T0 + timedelta(minutes=10 * i),
                     reporter_id=r) for i, r in enumerate(senders)]
    db.commit()
    assert len({a.incident_id for a in alerts}) == 1
    incident = db.get(Incident, alerts[0].incident_id, populate_existing=True)
    assert (incident.alert_count, incident.source_count, incident.category) == (10, 3, "ATTACK")
    assert incidents.territory(incident.place) == "CD6104"
    assert incidents._utc(incident.first_at) == T0 and incidents._utc(incident.last_at) == T0 + timedelta(minutes=90)
    shown = incidents.as_json(incident, [a.id for a in alerts])
    assert shown["alert_count"] == 10 and shown["source_count"] == 3 and "reporter" not in str(shown)


def test_reports_without_a_reporter_count_one_source_each(db, places):
    first = report(db, where=places["village"])
    report(db, where=places["village"], at=T0 + timedelta(hours=1))
    incident = db.get(Incident, first.incident_id)
    assert (incident.alert_count, incident.source_count) == (2, 2)


@pytest.mark.parametrize("where, at", [("far", T0 + timedelta(hours=1)), ("village", T0 + timedelta(days=3)),
                                       ("elsewhere", T0)])
def test_a_report_fifty_km_away_three_days_later_or_in_another_territory_is_another_incident(db, places, where, at):
    first = report(db, where=places["village"])
    other = report(db, where=places[where], at=at)
    assert other.incident_id != first.incident_id
    assert db.get(Incident, first.incident_id).alert_count == 1


def test_a_territory_level_report_joins_a_village_of_that_territory(db, places):
    first = report(db, where=places["village"])
    assert report(db, where=places["beni"], at=T0 + timedelta(hours=5)).incident_id == first.incident_id


def test_reports_without_a_place_are_never_grouped(db, places):
    first = report(db, where=None)
    assert report(db, where=None).incident_id != first.incident_id
    assert report(db, where=places["village"]).incident_id != first.incident_id


def test_the_time_of_a_report_is_when_it_happened_else_when_it_was_sent(db, places):
    first = report(db, where=places["village"])
    late_news = Alert(category="ATTACK", place=places["village"], status="new", channel="sms",
                      occurred_at=T0 + timedelta(hours=2), submitted_at=T0 + timedelta(days=2))
    db.add(late_news)
    db.flush()
    assert incidents.assign(db, late_news).id == first.incident_id
    undated = report(db, where=places["village"], at=T0 + timedelta(hours=20), occurred=False)
    assert undated.incident_id == first.incident_id


def test_a_related_category_joins_an_unrelated_one_does_not(db, places):
    attack = report(db, "ATTACK", places["village"])
    looting = report(db, "LOOTING", places["neighbour"], T0 + timedelta(hours=1))
    abduction = report(db, "ABDUCTION", places["village"], T0 + timedelta(hours=2))
    land = report(db, "LAND_CONFLICT", places["village"], T0 + timedelta(hours=1))
    assert attack.incident_id == looting.incident_id == abduction.incident_id
    assert land.incident_id != attack.incident_id
    assert db.get(Incident, attack.incident_id).category == "ATTACK"


def test_sexual_violence_never_shares_an_incident_with_other_reports(db, places):
    attack = report(db, "ATTACK", places["village"])
    sv = report(db, "SEXUAL_VIOLENCE", places["village"], T0 + timedelta(minutes=5))
    attack_again = report(db, "ATTACK", places["village"], T0 + timedelta(minutes=10))
    sv_again = report(db, "SEXUAL_VIOLENCE", places["neighbour"], T0 + timedelta(minutes=15))
    assert sv.incident_id != attack.incident_id and attack_again.incident_id == attack.incident_id
    assert sv_again.incident_id == sv.incident_id
    assert db.get(Incident, attack.incident_id).alert_count == 2
    hidden = {i.id for i in incidents.listing(db)}
    assert attack.incident_id in hidden and sv.incident_id not in hidden
    assert sv.incident_id in {i.id for i in incidents.listing(db, include_restricted=True)}
    with pytest.raises(ValueError):
        incidents.merge(db, attack.incident_id, [sv.incident_id], None, "same village")


def test_drafts_get_no_incident_and_assign_is_idempotent(db, places):
    draft = report(db, where=places["village"], status="draft")
    assert draft.incident_id is None
    done = report(db, where=places["village"])
    assert incidents.assign(db, done).id == done.incident_id
    assert db.get(Incident, done.incident_id).alert_count == 1


@pytest.fixture
def analyst(db):
    operator = accounts.create(db, "analyste", PASSWORD, ["analyst"])
    db.commit()
    return operator


def test_an_operator_merges_two_incidents_and_the_counts_are_recounted_and_audited(db, places, analyst):
    one, two = reporters(db, 2)
    first = report(db, where=places["village"], reporter_id=one)
    report(db, where=places["village"], reporter_id=one, at=T0 + timedelta(hours=1))
    far = report(db, where=places["far"], reporter_id=two, at=T0 + timedelta(hours=2))
    db.commit()
    far_incident = far.incident_id
    target = incidents.merge(db, first.incident_id, [far_incident], analyst, "the same column of attackers")
    db.commit()
    assert (target.alert_count, target.source_count) == (3, 2)
    merged = db.get(Incident, far_incident, populate_existing=True)
    assert (merged.status, merged.merged_into_id, merged.alert_count) == ("closed", target.id, 0)
    assert db.get(Alert, far.id, populate_existing=True).incident_id == target.id
    entry = db.scalars(select(AuditEntry).where(AuditEntry.action == "incident.merge")).one()
    assert entry.operator_id == analyst.id and entry.target_id == str(target.id)
    assert entry.before["target"]["alert_count"] == 2 and entry.after["target"]["alert_count"] == 3
    assert entry.reason == "the same column of attackers"
    assert far_incident not in {i.id for i in incidents.listing(db, status=None)}


def test_an_operator_splits_reports_into_a_new_incident(db, places, analyst):
    one, two, three = reporters(db, 3)
    alerts = [report(db, where=places["village"], reporter_id=r, at=T0 + timedelta(hours=i))
              for i, r in enumerate((one, two, three, three))]
    incident_id = alerts[0].incident_id
    db.commit()
    new = incidents.split(db, incident_id, [alerts[2].id, alerts[3].id], None, "another attack, at night")
    db.commit()
    old = db.get(Incident, incident_id, populate_existing=True)
    assert (old.alert_count, old.source_count) == (2, 2)
    assert (new.alert_count, new.source_count, new.place_id) == (2, 1, places["village"].id)
    assert incidents._utc(new.first_at) == T0 + timedelta(hours=2)
    entry = db.scalars(select(AuditEntry).where(AuditEntry.action == "incident.split")).one()
    assert entry.operator_id is None and entry.after["new"]["id"] == new.id and entry.after["alerts"] == [
        alerts[2].id, alerts[3].id]
    with pytest.raises(ValueError):
        incidents.split(db, incident_id, [alerts[0].id, alerts[1].id], None)  # nothing would be left
    with pytest.raises(ValueError):
        incidents.split(db, incident_id, [alerts[2].id], None)  # not one of its alerts


def test_backfill_assigns_every_submitted_alert_without_an_incident(db, places):
    for i in range(3):
        db.add(Alert(category="ATTACK", place=places["village"], status="new", channel="sms",
                     submitted_at=T0 + timedelta(hours=i)))
    db.add(Alert(category="ATTACK", place=places["village"], status="draft", channel="sms"))
    db.flush()
    assert incidents.backfill(db) == 3
    db.commit()
    assert db.scalar(select(Incident.alert_count)) == 3
    assert incidents.backfill(db) == 0


AUTH = {"Authorization": "Bearer test-api-token"}


def test_the_incidents_api_lists_counts_merges_and_splits_never_showing_reporters(client, db, places):
    one, two = reporters(db, 2)
    a = report(db, where=places["village"], reporter_id=one)
    b = report(db, where=places["village"], reporter_id=two, at=T0 + timedelta(hours=1))
    far = report(db, where=places["far"], reporter_id=two, at=T0 + timedelta(hours=1))
    sv = report(db, "SEXUAL_VIOLENCE", places["village"], reporter_id=one)
    ids = {"near": a.incident_id, "far": far.incident_id, "sv": sv.incident_id}
    db.commit()
    assert client.get("/api/v1/incidents").status_code == 401
    listed = client.get("/api/v1/incidents", headers=AUTH).get_json()["incidents"]
    assert {i["id"] for i in listed} == {ids["near"], ids["far"]}
    near = next(i for i in listed if i["id"] == ids["near"])
    assert (near["alert_count"], near["source_count"], near["alerts"]) == (2, 2, [a.id, b.id])
    assert near["location"]["pcode"] == "CD6104" and "reporter" not in str(listed)
    assert "0" * 60 not in client.get("/api/v1/incidents", headers=AUTH).get_data(as_text=True)
    shown = client.get("/api/v1/incidents?include_restricted=1", headers=AUTH).get_json()["incidents"]
    assert ids["sv"] in {i["id"] for i in shown}

    merged = client.post(f"/api/v1/incidents/{ids['near']}/merge", headers=AUTH,
                         json={"incidents": [ids["far"]], "reason": "une seule attaque"})
    assert merged.status_code == 200 and merged.get_json()["alert_count"] == 3
    assert client.post(f"/api/v1/incidents/{ids['near']}/merge", headers=AUTH,
                       json={"incidents": [ids["sv"]]}).status_code == 400
    assert client.post("/api/v1/incidents/9999/merge", headers=AUTH, json={"incidents": [ids["far"]]}).status_code == 404
    assert client.post(f"/api/v1/incidents/{ids['near']}/merge", headers=AUTH, json={}).status_code == 400

    split = client.post(f"/api/v1/incidents/{ids['near']}/split", headers=AUTH, json={"alerts": [far.id]})
    assert split.status_code == 201
    answer = split.get_json()
    assert answer["incident"]["alert_count"] == 2 and answer["new"]["alerts"] == [far.id]
    assert client.post(f"/api/v1/incidents/{ids['near']}/split", headers=AUTH,
                       json={"alerts": [sv.id]}).status_code == 400
    closed = client.get("/api/v1/incidents?status=closed", headers=AUTH).get_json()["incidents"]
    assert closed == []  # the merged one points to its target and is not listed
    assert client.get("/api/v1/incidents?status=nope", headers=AUTH).status_code == 400
