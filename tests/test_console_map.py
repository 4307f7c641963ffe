"""The console's map (service/console/map.py): an analyst opens /console/map and sees the
inbox's alerts as points over the province and territory outlines shipped with the project,
with Leaflet served by the console itself. Only villages with coordinates are drawn; an
alert placed in a territory only is counted "without a point"; restricted reports stay
hidden without the right; never a reporter's number or id in the data."""

from __future__ import annotations

import hashlib
import json
import re
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from sqlalchemy import event, select
from werkzeug.datastructures import MultiDict

from bot.categories import CODES
from service import accounts, incidents
from service.console import map as console_map
from service.console.inbox import Filters, filtered, visible
from service.models import Alert, Message, Operator, Place
from tests.conftest import REPORTER
from tests.test_console import make_operator, new_alert, place, shown, signed_in
from tests.test_console import admin, analyst, app_config, db  # noqa: F401  fixtures

ROOT = Path(__file__).resolve().parent.parent
STATIC = ROOT / "service" / "console" / "static"
LEAFLET = STATIC / "vendor" / "leaflet"
BOUNDARY_FILES = {level: ROOT / "data" / "places" / f"boundaries_{level}.geojson" for level in ("adm1", "adm2")}


def village(db, key="gn:1", name="Kiwanja", lat=-1.05, lon=29.45, territory=("CD6104", "Rutshuru")) -> int:
    row = Place(key=key, name=name, level="locality", lat=lat, lon=lon, admin1_pcode="CD61",
                admin1_name="Nord-Kivu", admin2_pcode=territory[0], admin2_name=territory[1])
    db.add(row)
    db.commit()
    return row.id


def geojson(answer) -> dict:
    assert answer.status_code == 200 and answer.mimetype == "application/geo+json"
    data = json.loads(answer.get_data(as_text=True))
    assert data["type"] == "FeatureCollection" and isinstance(data["features"], list)
    for feature in data["features"]:
        assert feature["type"] == "Feature" and feature["geometry"]["type"] in ("Point", "Polygon", "MultiPolygon")
    return data


def drawn(client, **filters) -> dict:
    return geojson(client.get("/console/map/alerts.geojson", query_string=filters))


def alert_ids(data) -> set[int]:
    return {f["properties"]["id"] for f in data["features"] if f["properties"]["kind"] == "alert"}


# --- who may look --------------------------------------------------------------------------

@pytest.mark.parametrize("path", ["/console/map", "/console/map/alerts.geojson",
                                  "/console/map/boundaries/adm1.geojson", "/console/map/boundaries/adm2.geojson"])
def test_the_map_and_its_data_ask_for_a_login_then_the_triage_role(client, db, path):
    answer = client.get(path)
    assert answer.status_code == 302 and "/console/login?next=" in answer.location
    make_operator(db, "diffuseur", ["broadcaster"])
    signed_in(client, "diffuseur")
    assert client.get(path).status_code == 403


def test_the_nav_links_the_map_for_an_analyst(client, db, analyst):
    signed_in(client, "analyste")
    assert 'href="/console/map"' in client.get("/console/alerts").get_data(as_text=True)


# --- the outlines ----------------------------------------------------------------------------

def test_the_outlines_are_the_shipped_provinces_and_territories_with_a_long_cache(client, db, analyst):
    signed_in(client, "analyste")
    provinces = client.get("/console/map/boundaries/adm1.geojson")
    assert "max-age=604800" in provinces.headers["Cache-Control"] and provinces.headers["ETag"]
    adm1 = geojson(provinces)
    assert {f["properties"]["ADM1_PCODE"] for f in adm1["features"]} == {"CD54", "CD61", "CD62", "CD63", "CD74"}
    assert all(len(f["properties"]["label"]) == 2 for f in adm1["features"])  # where the name is written
    adm2 = geojson(client.get("/console/map/boundaries/adm2.geojson"))
    shipped = json.loads(BOUNDARY_FILES["adm2"].read_text())
    assert [f["properties"]["ADM2_PCODE"] for f in adm2["features"]] == \
        [f["properties"]["ADM2_PCODE"] for f in shipped["features"]]
    again = client.get("/console/map/boundaries/adm2.geojson", headers={"If-None-Match": provinces.headers["ETag"]})
    assert again.status_code == 200
    etag = again.headers["ETag"]
    assert client.get("/console/map/boundaries/adm2.geojson", headers={"If-None-Match": etag}).status_code == 304
    assert client.get("/console/map/boundaries/adm3.geojson").status_code == 404


def test_the_shipped_outlines_are_small_enough_to_serve_as_they_are():
    for level, path in BOUNDARY_FILES.items():
        size = path.stat().st_size
        print(f"boundaries_{level}.geojson: {size} bytes, served {len(console_map.boundaries(level))}")
        assert size < console_map.SIMPLIFY_ABOVE


def test_a_big_outline_would_be_rounded_without_repeated_points():
    ring = [[29.123456, -1.654321], [29.123459, -1.654324], [29.2, -1.7], [29.123456, -1.654321]]
    assert console_map.simplify([ring]) == [[[29.1235, -1.6543], [29.2, -1.7], [29.1235, -1.6543]]]
    assert console_map.simplify([[ring]])[0][0][0] == [29.1235, -1.6543]  # a MultiPolygon too


# --- the alerts -----------------------------------------------------------------------------

def test_alerts_with_a_village_are_points_coloured_and_aged_and_the_others_are_counted(client, db, analyst):
    now = datetime.now(timezone.utc)
    kiwanja = village(db)
    rutshuru = place(db, "CD6104", "Rutshuru", level="adm2")  # a territory: no point of its own
    fresh = new_alert(db, category="ATTACK", place_id=kiwanja, reference="A1B2", created_at=now - timedelta(hours=2))
    week = new_alert(db, category="THREAT", place_id=kiwanja, created_at=now - timedelta(days=3))
    old = new_alert(db, category="OTHER", place_id=kiwanja, created_at=now - timedelta(days=30))
    territory_only = new_alert(db, place_id=rutshuru)
    nowhere = new_alert(db, place_text="quelque part")
    new_alert(db, status="draft", place_id=kiwanja)  # never on the map
    signed_in(client, "analyste")
    data = drawn(client)
    assert alert_ids(data) == {fresh, week, old}
    assert (data["total"], data["drawn"], data["area_only"], data["no_place"]) == (5, 3, 1, 1)
    by_id = {f["properties"]["id"]: f for f in data["features"]}
    first = by_id[fresh]
    assert first["geometry"]["coordinates"] == [29.45, -1.05]  # GeoJSON is longitude first
    assert first["properties"] == {
        "kind": "alert", "id": fresh, "reference": "A1B2", "category": "ATTACK", "status": "new",
        "age_hours": first["properties"]["age_hours"], "age": "day", "place": "Kiwanja", "incident": None,
        "path": f"/console/alerts/{fresh}"}
    assert 1.9 <= first["properties"]["age_hours"] <= 2.1
    assert [by_id[i]["properties"]["age"] for i in (fresh, week, old)] == ["day", "week", "older"]
    assert territory_only not in by_id and nowhere not in by_id
    page = shown(client.get("/console/map"))
    assert "5 alertes" in page and "3 sur la carte" in page and "2 sans point" in page


def test_the_map_takes_the_inbox_filters(client, db, analyst):
    kiwanja = village(db)
    uvira = village(db, key="gn:2", name="Uvira", lat=-3.39, lon=29.14, territory=("CD6209", "Uvira"))
    attack = new_alert(db, category="ATTACK", place_id=kiwanja)
    threat = new_alert(db, category="THREAT", place_id=uvira, channel="voice")
    signed_in(client, "analyste")
    assert alert_ids(drawn(client, category="ATTACK")) == {attack}
    assert alert_ids(drawn(client, territory="CD6209")) == {threat}
    assert alert_ids(drawn(client, channel="voice", category="NOPE")) == {threat}
    assert alert_ids(drawn(client, since="2000-01-01", until="2000-01-02")) == set()
    page = client.get("/console/map", query_string={"category": "ATTACK"}).get_data(as_text=True)
    assert 'data-alerts="/console/map/alerts.geojson?category=ATTACK"' in page


def test_an_incident_is_a_ring_with_its_alerts(client, db, analyst):
    kiwanja = village(db)
    first = new_alert(db, category="ATTACK", place_id=kiwanja)
    second = new_alert(db, category="LOOTING", place_id=kiwanja)
    alone = new_alert(db, category="DISPLACEMENT", place_id=kiwanja)  # its own incident, of one report
    for alert_id in (first, second, alone):
        incidents.assign(db, db.get(Alert, alert_id))
    db.commit()
    signed_in(client, "analyste")
    rings = [f["properties"] for f in drawn(client)["features"] if f["properties"]["kind"] == "incident"]
    assert len(rings) == 1 and rings[0]["alert_count"] == 2 and rings[0]["category"] == "ATTACK"
    assert {a["id"] for a in rings[0]["alerts"]} == {first, second}
    db.rollback()
    assert db.get(Alert, alone).incident_id not in (None, rings[0]["id"])  # no ring for one report


def test_restricted_reports_are_not_on_the_map_without_the_right(client, db, admin, analyst, monkeypatch):
    kiwanja = village(db)
    hidden = new_alert(db, category="SEXUAL_VIOLENCE", place_id=kiwanja, reference="SV01")
    incidents.assign(db, db.get(Alert, hidden))
    db.commit()
    seen = new_alert(db, category="ATTACK", place_id=kiwanja)
    signed_in(client, "admin")
    assert alert_ids(drawn(client)) == {hidden, seen}
    monkeypatch.setattr(accounts, "RESTRICTED_ROLES", ("administrator",))  # analysts lose the right
    signed_in(client, "analyste")
    data = drawn(client)
    assert alert_ids(data) == {seen} and data["total"] == 1
    assert all(f["properties"]["category"] != "SEXUAL_VIOLENCE" for f in data["features"])
    assert alert_ids(drawn(client, category="SEXUAL_VIOLENCE")) == set()
    page = shown(client.get("/console/map"))
    assert "SV01" not in page and f"/console/alerts/{hidden}" not in page


def test_no_reporter_number_or_id_in_the_map_or_its_data(client, db, admin, text_in):
    assert text_in("slt wanamgambo Kiwanja").status_code == 200
    db.rollback()
    inbound = db.scalar(select(Message).where(Message.direction == "in"))
    alert_id = new_alert(db, reporter_id=inbound.reporter_id, place_id=village(db), description=f"appel {REPORTER}")
    signed_in(client, "admin")
    data = client.get("/console/map/alerts.geojson").get_data(as_text=True)
    assert alert_ids(json.loads(data)) == {alert_id}
    assert "reporter" not in data and "description" not in data
    for text in (data, client.get("/console/map").get_data(as_text=True)):
        assert REPORTER not in text and REPORTER[1:] not in text and REPORTER[4:] not in text


# --- the page and its files -------------------------------------------------------------------

def test_the_page_uses_only_its_own_files_and_lists_the_alerts_without_javascript(client, db, analyst):
    kiwanja = village(db, name="Kiwanja <b>")
    alert_id = new_alert(db, place_id=kiwanja, reference="K1")
    signed_in(client, "analyste")
    answer = client.get("/console/map")
    page = answer.get_data(as_text=True)
    assert answer.status_code == 200 and "default-src 'self'" in answer.headers["Content-Security-Policy"]
    assert "<script>" not in page and " style=" not in page  # the CSP forbids both
    links = re.findall(r'(?:src|href)="([^"]*)"', page)
    assert not [link for link in links if re.match(r"(?i)(https?:)?//", link)]
    assert "/console/static/vendor/leaflet/leaflet.js" in links and "/console/static/map.js" in links
    assert "/console/static/vendor/leaflet/leaflet.css" in links and "/console/static/map.css" in links
    for path in ("vendor/leaflet/leaflet.js", "vendor/leaflet/leaflet.css", "map.js", "map.css"):
        assert client.get(f"/console/static/{path}").status_code == 200
    assert f'href="/console/alerts/{alert_id}"' in page and "Kiwanja &lt;b&gt;" in page  # the table, escaped
    labels = json.loads(re.search(r"data-labels='([^']*)'", page).group(1))
    assert labels["categories"]["ATTACK"] and labels["text"]["open"] == "Ouvrir l'alerte"
    print(f"map page: {len(page.encode())} bytes; map.js {(STATIC / 'map.js').stat().st_size}; "
          f"map.css {(STATIC / 'map.css').stat().st_size}; leaflet.js {(LEAFLET / 'leaflet.js').stat().st_size}")


def test_every_category_has_a_colour_in_the_palette():
    css = (STATIC / "map.css").read_text()
    for code in CODES + ("none",):
        assert re.search(rf"\.cat-{code} \{{ --c: #[0-9a-f]{{6}}; \}}", css), code


def test_the_vendored_leaflet_is_the_pinned_release_file_for_file():
    lines = (LEAFLET / "VERSION").read_text().splitlines()
    assert lines[0] == "leaflet 1.9.4" and lines[1].startswith("integrity sha512-")
    assert lines[2] == "source https://registry.npmjs.org/leaflet/-/leaflet-1.9.4.tgz"
    pinned = dict(reversed(line.split()[1:]) for line in lines if line.startswith("sha256 "))
    present = {p.relative_to(LEAFLET).as_posix() for p in LEAFLET.rglob("*") if p.is_file() and p.name != "VERSION"}
    assert set(pinned) == present and {"leaflet.js", "leaflet.css", "LICENSE"} <= present
    for name, digest in pinned.items():
        assert hashlib.sha256((LEAFLET / name).read_bytes()).hexdigest() == digest, name
    assert lines[1].split()[1] in (ROOT / "scripts" / "vendor_leaflet.sh").read_text()
    assert "BSD 2-Clause" in (LEAFLET / "LICENSE").read_text() or "Redistribution" in (LEAFLET / "LICENSE").read_text()


# --- what the data costs ------------------------------------------------------------------------

def _statements(engine, run) -> list[str]:
    """The SQL run by run(), as sent."""
    seen = []

    def note(conn, cursor, statement, parameters, context, executemany):
        seen.append(statement)
    event.listen(engine, "before_cursor_execute", note)
    try:
        run()
    finally:
        event.remove(engine, "before_cursor_execute", note)
    return seen


def test_the_counts_are_one_query_with_the_four_figures_of_each_filter(client, db, admin, analyst, monkeypatch):
    kiwanja = village(db)
    uvira = village(db, key="gn:2", name="Uvira", lat=-3.39, lon=29.14, territory=("CD6209", "Uvira"))
    no_coords = place(db, "gn:3", "Sans coordonnées")  # a locality without lat/lon: no point
    rutshuru = place(db, "CD6104", "Rutshuru", level="adm2")
    for place_id, category in ((kiwanja, "ATTACK"), (kiwanja, "THREAT"), (uvira, "ATTACK"), (no_coords, "ATTACK"),
                               (rutshuru, "ATTACK"), (None, "ATTACK"), (None, None), (kiwanja, "SEXUAL_VIOLENCE")):
        new_alert(db, category=category, place_id=place_id)
    new_alert(db, status="draft", place_id=kiwanja)
    monkeypatch.setattr(accounts, "RESTRICTED_ROLES", ("administrator",))
    engine = db.get_bind()
    expected = {  # total, drawn, no_place, area_only
        ("admin", ""): (8, 4, 2, 2), ("analyste", ""): (7, 3, 2, 2),
        ("analyste", "category=ATTACK"): (5, 2, 1, 2), ("analyste", "province=CD61"): (5, 3, 0, 2),
        ("analyste", "territory=CD6209"): (1, 1, 0, 0), ("admin", "territory=CD6104"): (5, 3, 0, 2)}
    for (who, query), figures in expected.items():
        operator = db.scalar(select(Operator).where(Operator.username == who))
        f, _errors = Filters.parse(MultiDict([query.split("=")] if query else []))
        base = filtered(visible(select(Alert), operator), f)
        found = {}
        sql = _statements(engine, lambda: found.update(console_map.counts(db, base)))
        assert len(sql) == 1, sql
        assert (found["total"], found["drawn"], found["no_place"], found["area_only"]) == figures, (who, query)
        signed_in(client, who)
        data = drawn(client, **dict([query.split("=")] if query else []))
        assert (data["total"], data["drawn"], data["no_place"], data["area_only"]) == figures, (who, query)
        assert data["shown"] == figures[1] == len(alert_ids(data))


def test_the_data_reads_only_what_it_draws_and_writes_each_link_from_one_template(client, db, analyst):
    kiwanja = village(db, lat=-1.0512345678, lon=29.4567891234)
    ids = [new_alert(db, place_id=kiwanja, description="ne pas charger") for _ in range(3)]
    for alert_id in ids:
        incidents.assign(db, db.get(Alert, alert_id))
    db.commit()
    signed_in(client, "analyste")
    statements = []
    sql = _statements(db.get_bind(), lambda: statements.append(drawn(client)))
    data = statements[0]
    selected = [s.split("FROM", 1)[0] for s in sql if "FROM alerts" in s]  # what is read, not what is filtered on
    assert selected and not [s for s in selected if "description" in s or "reporter_id" in s]
    assert len([s for s in sql if "CASE WHEN" in s]) == 1  # the counts
    assert len([s for s in sql if "FROM alerts" in s]) == 2  # the counts and the points
    by_kind = {}
    for feature in data["features"]:
        by_kind.setdefault(feature["properties"]["kind"], []).append(feature)
        assert feature["geometry"]["coordinates"] == [29.45679, -1.05123]  # 5 decimals, about a metre
    assert {f["properties"]["path"] for f in by_kind["alert"]} == {f"/console/alerts/{i}" for i in ids}
    (ring,) = by_kind["incident"]
    assert ring["properties"]["alerts"] == [{"id": i, "path": f"/console/alerts/{i}"} for i in sorted(ids, reverse=True)]

