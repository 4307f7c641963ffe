"""The gazetteer against the shipped data: resolution policy, aliases, false positives."""

import csv

import pytest

from bot.places import DATA_DIR, Gazetteer, PlaceRecord, Resolution, default_gazetteer, fold


@pytest.fixture(scope="module")
def gaz():
    return default_gazetteer()


def test_loads_in_scope():  # how fast it loads: scripts/bench_understand.py (no timed assertion here)
    g = Gazetteer.load()
    assert g.get("CD6110").name == "Butembo"
    assert g.get("CD10") is None  # Kinshasa is out of scope
    assert len(g) > 5000


def test_default_gazetteer_is_cached():
    assert default_gazetteer() is default_gazetteer()


def test_fold():
    assert fold("  Nord-Kivu ") == "nord kivu"
    assert fold("Oïcha, à Béni!") == "oicha a beni"
    assert fold("Kitchanga") == fold("Kitshanga") == "kitshanga"  # French tch = Swahili tsh


@pytest.mark.parametrize("written,key", [
    ("Tchabi", "gn:205100"), ("Rutchuru", "CD6111"), ("Kitchanga", "x:kitchanga"), ("kitshanga", "x:kitchanga"),
])
def test_tch_and_tsh_spellings_are_one_name(gaz, written, key):
    res = gaz.resolve(written)
    assert res.status == "found" and res.place.key == key


def test_added_place_without_a_settled_territory_has_none(gaz):
    rec = gaz.resolve("Mavivi").place
    assert rec.key == "x:mavivi" and rec.admin1_pcode == "CD61" and rec.admin2_pcode is None
    assert rec.location() == {"name": "Mavivi", "admin1": "Nord-Kivu", "admin2": None, "pcode": None}


def test_aliases_and_additions_point_to_real_keys():
    g = Gazetteer.load()
    with open(DATA_DIR / "aliases.csv", newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    assert rows and all(g.get(r["target_key"]) is not None for r in rows)
    with open(DATA_DIR / "added_places.csv", newline="", encoding="utf-8") as f:
        for row in csv.DictReader(f):
            rec = g.get("x:" + row["slug"])
            assert rec.lat is None and rec.lon is None
            assert row["source"] == "added by project" or row["source"].startswith("https://")  # a page once found
            if row["admin2_pcode"]:  # empty when the territory is not settled (honest, not guessed)
                assert g.get(row["admin2_pcode"]).admin1_pcode == row["admin1_pcode"]
            assert g.get(row["admin1_pcode"]).level == "adm1"


def test_unknown_alias_target_is_refused(tmp_path):
    for name in ("admin_units.csv", "localities.csv"):
        (tmp_path / name).write_bytes((DATA_DIR / name).read_bytes())
    (tmp_path / "aliases.csv").write_text("alias,target_key,note\nNowhere,gn:0,bad\n", encoding="utf-8")
    with pytest.raises(ValueError):
        Gazetteer.load(tmp_path)


def test_location_of_units_and_localities(gaz):
    assert gaz.get("CD6110").location() == {"name": "Butembo", "admin1": "Nord-Kivu",
                                           "admin2": "Butembo", "pcode": "CD6110"}
    assert gaz.get("CD61").location() == {"name": "Nord-Kivu", "admin1": "Nord-Kivu",
                                         "admin2": None, "pcode": "CD61"}
    komanda = gaz.get("gn:212424")
    assert komanda.location() == {"name": "Komanda", "admin1": "Ituri", "admin2": "Irumu", "pcode": "CD5402"}
    assert isinstance(komanda, PlaceRecord) and komanda.lat is not None


@pytest.mark.parametrize("name,key", [
    ("Beni", "CD6109"), ("Butembo", "CD6110"), ("Lubero", "CD6105"), ("Goma", "CD6101"),
    ("BUTEMBO", "CD6110"), ("a Butembo", "CD6110"), ("Nord Kivu", "CD61"), ("Ituri", "CD54"),
    ("kitchanga", "x:kitchanga"), ("Kiwandja", "gn:8485523"), ("Eringeti", "gn:216658"),
    ("Oicha", "gn:8329635"), ("Rutchuru", "CD6111"), ("beni mjini", "CD6109"),
    ("mji wa Beni", "CD6109"), ("Beni ville", "CD6109"), ("territoire de Beni", "CD6107"),
    ("Beni territoire", "CD6107"), ("ville de Bukavu", "CD6201"), ("Bunia ville", "CD5401"),
    ("Uvira mjini", "gn:204405"), ("Goma mjini", "CD6101"), ("Butembo ville", "CD6110"),
    ("Komanda", "gn:212424"), ("kijiji cha Komanda", "gn:212424"), ("pres de Minembwe", "x:minembwe"),
    ("Sake", "gn:205970"),  # the populated Sake (Masisi) beats empty namesakes
])
def test_resolve_found(gaz, name, key):
    res = gaz.resolve(name)
    assert res.status == "found", res
    assert res.place.key == key


def test_duplicate_points_in_one_territory_are_one_place(gaz):
    # two GeoNames points, both in Walikale, plus the key place Kitchanga (Masisi/Rutshuru)
    assert len(gaz.lookup("Kitshanga")) == 3
    res = gaz.resolve("Kitshanga", near_admin2="CD6104")
    assert res.status == "found" and res.place.key == "gn:212555" and res.place.admin2_pcode == "CD6104"


@pytest.mark.parametrize("name,near,key", [
    ("Kibumba", "CD6102", "gn:8433887"), ("Kibumba", "CD6212", "gn:213254"),
    ("Pinga", "CD6104", "gn:8435079"), ("Pinga", "CD6302", "gn:206241"), ("Kamango", "CD6107", "gn:214718"),
    ("Kamango", "CD63", "gn:214717"),  # a province works as the neighbourhood too
])
def test_namesakes_and_the_reporters_area(gaz, name, near, key):
    # the well-known town unless the reporter's usual area holds a namesake
    res = gaz.resolve(name)
    assert res.status == "found" and res.place.prominent
    near_res = gaz.resolve(name, near_admin2=near)
    assert near_res.status == "found" and near_res.place.key == key


def test_unit_namesake_in_reporters_territory(gaz):
    # Masisi the territoire, unless the reporter is in Kabambare, which has a village Masisi
    assert gaz.resolve("Masisi").place.key == "CD6103"
    assert gaz.resolve("Masisi", near_admin2="CD6309").place.admin2_pcode == "CD6309"


def test_unknown_and_typos(gaz):
    res = gaz.resolve("Xyzabc")
    assert res.status == "unknown" and res.place is None and res.candidates == ()
    assert gaz.resolve("").status == "unknown"
    typo = gaz.resolve("Butembu")  # never decided alone: offered as a choice
    assert typo.status == "ambiguous" and typo.candidates[0].key == "CD6110"


def test_lookup_best_first(gaz):
    assert [r.key for r in gaz.lookup("beni")][0] == "CD6109"
    assert gaz.lookup("nowhere at all") == []


@pytest.mark.parametrize("text,key", [
    ("Des hommes armes ont brule des maisons a Butembo ce matin", "CD6110"),
    ("Watu wenye silaha wameteka watoto watatu Lubero jana", "CD6105"),
    ("Bato ya mandoki bakoti na Komanda na butu", "gn:212424"),
    ("bjr, attaque a Kiwandja cette nuit", "gn:8485523"),
    ("wanamgambo wako karibu na Eringeti", "gn:216658"),
    ("tuko beni mjini, risasi nyingi", "CD6109"),
    ("Les rebelles occupent le territoire de Beni", "CD6107"),
    ("ADF wameua watu 5 Oicha", "gn:8329635"),
])
def test_find_in_text(gaz, text, key):
    res = gaz.find_in_text(text)
    assert res.status == "found", res
    assert res.place.key == key


def test_find_in_text_key_place_and_near(gaz):
    text = "slt, wanamgambo wako pres de Kibumba"
    assert gaz.find_in_text(text).place.key == "gn:8433887"  # Kibumba (Nyiragongo), the known one
    assert gaz.find_in_text(text, near_admin2="CD6212").place.key == "gn:213254"  # a Mwenga reporter's


@pytest.mark.parametrize("text", [
    "wamechoma moto nyumba kumi leo",
    "Mai Mai wameiba mali yetu",
    "kuna ngoma na soko leo",
    "site ya wakimbizi, bato ebele",
    "bato ebele bakimi mboka na bango",
    "bonjour, je veux signaler",
    "Xyzabc",
    "",
    "2",
])
def test_no_false_positives(gaz, text):
    res = gaz.find_in_text(text)
    assert res == Resolution("unknown", None, (), "")


# Places the templates name on purpose (nlu/generate.py's list is filled in separately).
TEMPLATE_PLACES = {"beni", "kiwanja"}


def test_no_word_of_the_training_templates_is_read_as_a_village(gaz):
    """A common word that is also a village name ("salamu" is a greeting and a village in
    Kabambare; "maiti" corpses and a village in Kasongo) must not become the place of a
    message: every such word of the templates is a stop word."""
    import re
    from pathlib import Path

    import yaml

    words = set()
    for path in sorted((Path(DATA_DIR).parent.parent / "nlu" / "templates").glob("*.yml")):
        spec = yaml.safe_load(path.read_text(encoding="utf-8"))
        texts = [str(t) for ts in spec["intents"].values() for t in ts]
        texts += [str(v) for name, values in (spec.get("fill") or {}).items() for v in values]
        for text in texts:
            words.update(fold(re.sub(r"\{[^}]*\}", " ", text)).split())
    read_as_places = sorted(w for w in words - TEMPLATE_PLACES
                            if len(w) >= 3 and not w.isdigit() and gaz.find_in_text(w).status != "unknown")
    assert read_as_places == []
    assert gaz.resolve("Salamu").status == "found"  # answered to "where?", the village is still found
