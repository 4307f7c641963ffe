"""Key places (data/places/key_places.csv): the table itself, the corrections it makes to the
shipped data, and prominence in resolution (issue 8)."""

import csv
import shutil

import pytest

from bot.gazetteer_import import Territories, outside_outline
from bot.places import DATA_DIR, MAX_CANDIDATES, Gazetteer, default_gazetteer
from bot.understanding import interpret
from service.cli import main

KEY_COLUMNS = ["name", "aliases", "admin1_pcode", "admin2_pcodes", "lat", "lon", "geonameid", "kind", "source", "note"]


@pytest.fixture(scope="module")
def gaz():
    return default_gazetteer()


@pytest.fixture(scope="module")
def rows():
    with open(DATA_DIR / "key_places.csv", newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        assert reader.fieldnames == KEY_COLUMNS
        return list(reader)


# -- the table ---------------------------------------------------------------------

def test_every_row_has_a_source_valid_codes_and_honest_coordinates(rows):
    with open(DATA_DIR / "admin_units.csv", newline="", encoding="utf-8") as f:
        units = {r["pcode"]: r for r in csv.DictReader(f) if r["in_scope_east"] == "yes"}
    with open(DATA_DIR / "localities.csv", newline="", encoding="utf-8") as f:
        geonameids = {r["geonameid"] for r in csv.DictReader(f)}
    territories = Territories(DATA_DIR / "boundaries_adm2.geojson")
    assert len(rows) >= 200
    assert len({r["name"] for r in rows}) == len(rows)
    for row in rows:
        assert row["source"].startswith(("https://", "http://")), row["name"]
        assert units[row["admin1_pcode"]]["level"] == "1", row["name"]
        codes = row["admin2_pcodes"].split(";")
        assert 1 <= len(codes) <= 2, row["name"]
        for code in codes:
            assert units[code]["level"] == "2" and units[code]["adm1_pcode"] == row["admin1_pcode"], row["name"]
        assert not row["geonameid"] or row["geonameid"] in geonameids, row["name"]
        assert row["kind"], row["name"]
        assert bool(row["lat"]) == bool(row["lon"]), row["name"]
        if row["lat"]:  # given only when the source states them: inside (or within 2 km of) a territory
            lat, lon = float(row["lat"]), float(row["lon"])
            distances = [territories.distance_km(lat, lon, c) for c in codes]
            distances = [d for d in distances if d is not None]
            assert distances and min(distances) <= 2.0, (row["name"], distances)


def test_key_places_override_the_record_they_match(gaz, rows):
    for row in rows:
        key = "gn:" + row["geonameid"] if row["geonameid"] else None
        rec = gaz.get(key) if key else next(r for r in gaz.lookup(row["name"]) if r.prominent and r.name == row["name"])
        assert rec.name == row["name"] and rec.prominent and rec.source == row["source"]
        assert rec.admin2_pcodes == tuple(row["admin2_pcodes"].split(";")) and rec.admin2_pcode == rec.admin2_pcodes[0]


@pytest.mark.parametrize("bad", [
    {"admin2_pcodes": "CD9999"}, {"admin2_pcodes": "CD6201"},  # unknown; in another province
    {"admin1_pcode": "CD10"}, {"geonameid": "1"},
])
def test_a_key_place_must_point_at_real_codes(tmp_path, bad):
    for name in ("admin_units.csv", "localities.csv"):
        shutil.copy(DATA_DIR / name, tmp_path / name)
    row = {"name": "Somewhere", "aliases": "", "admin1_pcode": "CD61", "admin2_pcodes": "CD6103", "lat": "", "lon": "",
           "geonameid": "", "kind": "town", "source": "https://example.org/", "note": "", **bad}
    with open(tmp_path / "key_places.csv", "w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=KEY_COLUMNS)
        writer.writeheader()
        writer.writerow(row)
    with pytest.raises(ValueError):
        Gazetteer.load(tmp_path)


# -- corrections of the shipped data ---------------------------------------------

def test_kitchanga_is_the_masisi_rutshuru_town_not_a_walikale_village(gaz):
    with open(DATA_DIR / "aliases.csv", newline="", encoding="utf-8") as f:
        assert all(r["target_key"] not in ("gn:212555", "gn:8435144") for r in csv.DictReader(f))
    for written in ("Kitchanga", "kitshanga", "Kitchanga centre", "a Kitchanga"):
        place = gaz.resolve(written).place
        assert place.key == "x:kitchanga" and place.admin2_pcode == "CD6103" and place.within("CD6111")
    assert (round(place.lat, 3), round(place.lon, 3)) == (-1.252, 29.059)
    assert gaz.resolve("Kitchanga", near_admin2="CD6111").place.key == "x:kitchanga"


@pytest.mark.parametrize("name,key,admin2", [
    ("Kirumba", "gn:8327990", "CD6105"),  # the Lubero town, not the Rutshuru namesake
    ("Mweso", "gn:207521", "CD6103"),  # Masisi, although the point is 0.2 km into Rutshuru's outline
    ("Kamanyola", "gn:214710", "CD6207"),  # Walungu, although the point is 0.4 km into Uvira's outline
])
def test_wrong_territories_are_corrected(gaz, name, key, admin2):
    res = gaz.resolve(name)
    assert res.status == "found" and res.place.key == key and res.place.admin2_pcode == admin2
    assert res.place.lat is not None  # a point this close to its territory is kept


@pytest.mark.parametrize("written,name,admin2", [
    ("Tongo", "Tongo", "CD6111"),  # the Rutshuru groupement, not a Punia village that has it as a variant
    ("Kibabi", "Kibabi", "CD6103"), ("Kasenyi", "Kasenyi", "CD5402"), ("Gety", "Gety", "CD5402"),
])
def test_names_once_taken_for_other_places(gaz, written, name, admin2):
    place = gaz.find_in_text(f"attaque a {written} ce matin").place
    assert place.name == name and place.admin2_pcode == admin2


def test_mwenga_is_not_a_point_off_uvira(gaz):
    rec = gaz.get("gn:9179570")
    assert rec.admin2_pcode == "CD6212" and rec.lat is None and rec.lon is None  # the far point is dropped
    for near in (None, "CD6208", "CD6212"):  # even a reporter in Uvira gets the Mwenga territoire
        assert gaz.resolve("Mwenga", near_admin2=near).place.within("CD6212")


def test_check_reports_points_outside_their_outline(gaz, capsys):
    assert main(["places", "check"]) == 0
    out = capsys.readouterr().out
    assert "key places: " in out and "km outside their territory's outline" in out
    # at a tolerance finer than the simplified outlines, the two corrected towns are seen
    close = {rec.key for _, rec in outside_outline(DATA_DIR, gaz, 0.1)}
    assert {"gn:207521", "gn:214710"} <= close
    assert not {"gn:207521", "gn:214710"} & {rec.key for _, rec in outside_outline(DATA_DIR, gaz, 1.0)}
    assert main(["places", "check", "--tolerance", "0.1"]) == 0
    assert "gn:207521 Mweso" in capsys.readouterr().out


def test_check_sees_a_misplaced_locality(tmp_path, capsys):
    for f in DATA_DIR.iterdir():
        if f.is_file():
            shutil.copy(f, tmp_path / f.name)
    with open(tmp_path / "localities.csv", newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        columns, localities = reader.fieldnames, list(reader)
    for row in localities:
        if row["geonameid"] == "212424":  # Komanda (Irumu) moved to Goma
            row["lat"], row["lon"] = "-1.68", "29.22"
    with open(tmp_path / "localities.csv", "w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=columns, lineterminator="\n")
        writer.writeheader()
        writer.writerows(localities)
    assert main(["places", "check", "--dir", str(tmp_path)]) == 0
    assert "gn:212424 Komanda (-1.68, 29.22)" in capsys.readouterr().out


# -- prominence in resolution ------------------------------------------------------

@pytest.mark.parametrize("name,key,admin2", [
    ("Kasindi", "gn:213974", "CD6107"), ("Kamango", "gn:214718", "CD6107"), ("Pinga", "gn:8435079", "CD6104"),
    ("Sange", "gn:205848", "CD6208"), ("Fataki", "gn:216555", "CD5405"), ("Kibumba", "gn:8433887", "CD6102"),
])
def test_well_known_towns_win_over_namesake_villages(gaz, name, key, admin2):
    assert len(gaz.lookup(name)) >= 2  # namesakes exist
    res = gaz.resolve(name)
    assert res.status == "found" and res.place.key == key and res.place.admin2_pcode == admin2
    assert gaz.find_in_text(f"attaque a {name} hier soir").place.key == key


@pytest.mark.parametrize("name,admin2", [
    ("Kanyaruchinya", "CD6102"), ("Rubaya", "CD6103"), ("Nyanzale", "CD6111"), ("Mabalako", "CD6107"),
    ("Kalunguta", "CD6107"), ("Lubutu", "CD6305"), ("Kalehe", "CD6205"),
])
def test_towns_once_absent_are_found(gaz, name, admin2):
    res = gaz.resolve(name)
    assert res.status == "found" and res.place.within(admin2)


@pytest.mark.parametrize("written,key", [
    ("Lubutu centre", "x:lubutu"), ("cite de Lubutu", "x:lubutu"), ("Kalehe centre", "x:kalehe"),
])
def test_seat_towns_named_like_their_territory(gaz, written, key):
    place = gaz.resolve(written).place
    assert place.key == key and place.kind == "territory_seat"
    assert gaz.get("x:kalehe").admin1_pcode == "CD62"  # the South Kivu town, not a North Kivu namesake


@pytest.mark.parametrize("written,key", [
    ("Kibumba Nyiragongo", "gn:8433887"), ("Kibumba Mwenga", "gn:213254"), ("Pinga/Walikale", "gn:8435079"),
    ("Pinga Kailo", "gn:206241"), ("Sake territoire de Masisi", "gn:205970"), ("Beni ville", "CD6109"),
    ("Kamango, Maniema", "gn:214717"),
])
def test_a_unit_named_beside_a_place_qualifies_it(gaz, written, key):
    assert gaz.resolve(written).place.key == key
    assert gaz.find_in_text(f"bato ya mandoki bakoti na {written} na butu").place.key == key


def test_the_qualifier_beats_the_reporters_area(gaz):
    assert gaz.resolve("Kibumba Nyiragongo", near_admin2="CD6212").place.key == "gn:8433887"


@pytest.mark.parametrize("written,name", [
    ("Hyosha", "Oicha"), ("Oicha", "Oicha"), ("Kanyobagonga", "Kanyabayonga"), ("Bunangana", "Bunagana"),
    ("Eringite", "Eringeti"), ("Tsatsa", "Ishasha"), ("Ishasha", "Ishasha"), ("Senge", "Sange"),
])
def test_display_names_are_the_names_people_use(gaz, written, name):
    place = gaz.resolve(written).place
    assert place.name == name and place.location()["name"] == name


@pytest.mark.parametrize("name,admin2", [  # places the integration conversations name keep their territories
    ("Oicha", "CD6107"), ("Kiwanja", "CD6111"), ("Bunia", "CD5401"), ("Butembo", "CD6110"), ("Lubero", "CD6105"),
    ("Komanda", "CD5402"), ("Kasindi", "CD6107"), ("Rutshuru", "CD6111"), ("Beni", "CD6109"),
])
def test_integration_places_keep_their_territories(gaz, name, admin2):
    assert gaz.resolve(name).place.location()["pcode"] == admin2


@pytest.fixture(scope="module")
def namesakes(tmp_path_factory):
    """The shipped gazetteer with every Kibumba and four of the five Fataki made key places."""
    out = tmp_path_factory.mktemp("places")
    for f in DATA_DIR.iterdir():
        if f.is_file():
            shutil.copy(f, out / f.name)
    extra = [("Kibumba", "CD62", "CD6210", "387597"), ("Kibumba", "CD62", "CD6212", "213254"),
             ("Fataki", "CD63", "CD6309", "216552"), ("Fataki", "CD63", "CD6309", "216553"),
             ("Fataki", "CD74", "CD7402", "8331048")]
    with open(out / "key_places.csv", "a", newline="", encoding="utf-8") as f:
        writer = csv.writer(f, lineterminator="\n")
        for name, adm1, adm2, gid in extra:
            writer.writerow([name, "", adm1, adm2, "", "", gid, "town", "https://example.org/test", "test"])
    return Gazetteer.load(out)


def test_two_prominent_places_are_asked_about(namesakes):
    res = namesakes.resolve("Kibumba")
    assert res.status == "ambiguous" and res.place is None and res.written == "Kibumba"
    assert [c.key for c in res.candidates] == ["gn:8433887", "gn:387597", "gn:213254"]  # the likeliest first
    assert all(c.prominent for c in res.candidates)
    assert namesakes.resolve("Kibumba", near_admin2="CD6212").place.key == "gn:213254"
    assert namesakes.resolve("Kibumba Nyiragongo").place.key == "gn:8433887"


def test_at_most_three_choices(namesakes):
    res = namesakes.resolve("Fataki")  # four key places of that name (two in Kabambare are one place)
    assert res.status == "ambiguous" and len(res.candidates) == MAX_CANDIDATES == 3
    assert len({c.admin2_pcode for c in res.candidates}) == 3
    assert namesakes.resolve("Fataki", near_admin2="CD5405").place.key == "gn:216555"


def test_understand_says_between_what_it_would_ask(namesakes, gaz):
    u = interpret("Bato ya mandoki bakoti na KIBUMBA na butu", None, gazetteer=namesakes)
    alert = u.as_json()["alert"]
    assert alert["location"] is None and alert["place_text"] == "KIBUMBA"
    assert alert["candidates"] == [{"name": "Kibumba", "admin2": "Nyiragongo", "pcode": "CD6102"},
                                   {"name": "Kibumba", "admin2": "Fizi", "pcode": "CD6210"},
                                   {"name": "Kibumba", "admin2": "Mwenga", "pcode": "CD6212"}]
    found = interpret("Bato ya mandoki bakoti na Kibumba na butu", None, gazetteer=gaz).as_json()["alert"]
    assert found["location"]["pcode"] == "CD6102" and "candidates" not in found
    assert found["location"]["name"] == "Kibumba" and found["place_text"] == "Kibumba"  # as written, beside it
