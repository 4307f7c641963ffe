"""`alerte places import-cod|import-geonames|check`: official files in, the same gazetteer out.

The inputs are written on the fly from the shipped data (real codes, names and points)
in the official layouts, so a round trip must give back what is shipped.
"""

import csv
import zipfile

import pytest

from bot import places
from bot.gazetteer_import import ADMIN_COLUMNS, LOCALITY_COLUMNS, Territories
from bot.places import DATA_DIR, Gazetteer
from service.cli import main

KINSHASA = ("-4.32", "15.31")  # Kinshasa city: far outside the eastern provinces


def rows(path):
    with open(path, newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def write_csv(path, header, data, hxl=None, bom=False):
    with open(path, "w", newline="", encoding="utf-8-sig" if bom else "utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(header)
        if hxl:
            writer.writerow(hxl)
        writer.writerows(data)
    return path


def hdx_adm2_table(path, units):
    """The HDX COD-AB adm2 table layout: one row per territoire/ville with its province."""
    by_pcode = {u["pcode"]: u for u in units}
    data = [["Congo (Rep. Dem.)", "CD", by_pcode[u["adm1_pcode"]]["name"], u["adm1_pcode"], u["name"], u["pcode"],
             "2019-09-11"] for u in units if u["level"] == "2"]
    return write_csv(path, ["ADM0_FR", "ADM0_PCODE", "ADM1_FR", "ADM1_PCODE", "ADM2_FR", "ADM2_PCODE", "validOn"],
                     data, bom=True)


def global_pcodes(path, units):
    data = [["COD", u["pcode"], u["name"], "COD" if u["level"] == "1" else u["parent_pcode"], u["level"],
             "2019-09-11T00:00:00Z"] for u in units]
    data.append(["UGA", "UG101", "Kampala", "UG1", "2", "2020-01-01"])  # another country: skipped
    return write_csv(path, ["Location", "P-Code", "Name", "Parent P-Code", "Admin Level", "Valid from date"], data,
                     hxl=["#country+code", "#adm+code", "#adm+name", "#adm+code+parent", "#adm+level", "#date"])


def geonames_record(r):
    """The 19 fields of a GeoNames dump line for a shipped localities.csv row."""
    return [r["geonameid"], r["name"], r["name"], ",".join(filter(None, r["alt_names"].split("|"))),
            r["lat"], r["lon"], r["feature_class"], r["feature_code"], "CD", "", r["geonames_admin1_code"],
            "", "", "", r["population"] or "0", "", "1000", "Africa/Lubumbashi", "2018-08-02"]


def geonames_dump(path, localities, changed=None):
    """A CD.txt of the shipped rows; `changed` maps a geonameid to {field index: value}."""
    lines = []
    for r in localities:
        fields = geonames_record(r)
        for index, value in (changed or {}).get(r["geonameid"], {}).items():
            fields[index] = value
        lines.append("\t".join(fields))
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def shipped_units():
    return rows(DATA_DIR / "admin_units.csv")


@pytest.fixture(scope="module")
def shipped_localities():
    return rows(DATA_DIR / "localities.csv")


def out_dir(tmp_path):
    """A deployment's gazetteer directory holding a copy of the shipped files."""
    out = tmp_path / "places"
    out.mkdir()
    for f in DATA_DIR.iterdir():
        if f.is_file():
            (out / f.name).write_bytes(f.read_bytes())
    return out


SAME = ("level", "name", "pcode", "parent_pcode", "adm1_pcode", "adm1_name", "in_scope_east")
GEONAMES_OWN = ("name", "alt_names", "lat", "lon", "feature_class", "feature_code", "geonames_admin1_code",
                "population")


@pytest.mark.parametrize("layout", ["hdx_adm2", "global_pcodes"])
def test_cod_round_trip(tmp_path, shipped_units, layout, capsys):
    out = out_dir(tmp_path)
    source = (hdx_adm2_table if layout == "hdx_adm2" else global_pcodes)(tmp_path / "cod.csv", shipped_units)
    assert main(["places", "import-cod", str(source), "--out", str(out)]) == 0
    imported = rows(out / "admin_units.csv")
    assert [[r[c] for c in SAME] for r in imported] == [[r[c] for c in SAME] for r in shipped_units]
    for new, old in zip(imported, shipped_units):  # polygon centroids kept for unchanged units
        assert (new["centroid_lat"], new["label_lon"]) == (old["centroid_lat"], old["label_lon"])
        assert new["valid_from"] == "2019-09-11" and "cod.csv" in new["source"]
    assert "0 new, 0 gone" in capsys.readouterr().out
    assert len(Gazetteer.load(out)) == len(Gazetteer.load(DATA_DIR))


def test_newer_cod_ab_layout(tmp_path, shipped_units, capsys):
    """HDX's newer COD-AB tables: lower-case adm2_name/adm2_pcode, valid_on, lang."""
    out = out_dir(tmp_path)
    by_pcode = {u["pcode"]: u for u in shipped_units}
    data = [[u["name"], u["pcode"], by_pcode[u["adm1_pcode"]]["name"], u["adm1_pcode"], "CD", "2019-09-11", "fr"]
            for u in shipped_units if u["level"] == "2"]
    source = write_csv(tmp_path / "cod_admin2.csv", ["adm2_name", "adm2_pcode", "adm1_name", "adm1_pcode",
                                                      "adm0_pcode", "valid_on", "lang"], data)
    assert main(["places", "import-cod", str(source), "--out", str(out)]) == 0
    imported = rows(out / "admin_units.csv")
    assert [[r[c] for c in SAME] for r in imported] == [[r[c] for c in SAME] for r in shipped_units]
    assert "189 rows read" in capsys.readouterr().out


def test_renamed_or_new_unit_gets_no_coordinates(tmp_path, shipped_units):
    out = out_dir(tmp_path)
    units = [dict(u) for u in shipped_units]
    oicha = next(u for u in units if u["pcode"] == "CD6107")
    oicha["name"] = "Beni-Territoire"  # a renamed unit: its old centroid is not trusted
    source = hdx_adm2_table(tmp_path / "cod.csv", units)
    assert main(["places", "import-cod", str(source), "--out", str(out)]) == 0
    row = next(r for r in rows(out / "admin_units.csv") if r["pcode"] == "CD6107")
    assert row["name"] == "Beni-Territoire" and row["centroid_lat"] == row["label_lat"] == ""


def test_new_unit_gets_no_coordinates(tmp_path, shipped_units):
    out = out_dir(tmp_path)
    # the deployment's previous table did not have Rutshuru: for this import it is a new p-code
    previous = [u for u in shipped_units if u["pcode"] != "CD6111"]
    write_csv(out / "admin_units.csv", ADMIN_COLUMNS, [[u[c] for c in ADMIN_COLUMNS] for u in previous])
    assert next(u for u in shipped_units if u["pcode"] == "CD6111")["centroid_lat"]
    source = hdx_adm2_table(tmp_path / "cod.csv", shipped_units)
    assert main(["places", "import-cod", str(source), "--out", str(out)]) == 0
    imported = {r["pcode"]: r for r in rows(out / "admin_units.csv")}
    new = imported["CD6111"]
    assert new["name"] == "Rutshuru" and all(new[c] == "" for c in ADMIN_COLUMNS[9:17])
    assert imported["CD6110"]["centroid_lat"]  # Butembo: unchanged, kept


def test_coordinates_given_by_the_file_are_used(tmp_path, shipped_units):
    out = out_dir(tmp_path)
    adm1 = {u["pcode"]: u["name"] for u in shipped_units if u["level"] == "1"}
    # the file gives a point for Irumu only (here: a real village of Irumu, Adumba)
    adumba = next(r for r in rows(DATA_DIR / "localities.csv") if r["name"] == "Adumba")
    assert adumba["adm2_pcode"] == "CD5402"
    irumu = next(u for u in shipped_units if u["pcode"] == "CD5402")
    data = [[adm1[u["adm1_pcode"]], u["adm1_pcode"], u["name"], u["pcode"],
             *((adumba["lat"], adumba["lon"]) if u is irumu else ("", ""))]
            for u in shipped_units if u["level"] == "2"]
    source = write_csv(tmp_path / "cod.csv", ["ADM1_FR", "ADM1_PCODE", "ADM2_FR", "ADM2_PCODE", "center_lat",
                                              "center_lon"], data)
    assert main(["places", "import-cod", str(source), "--out", str(out)]) == 0
    imported = {r["pcode"]: r for r in rows(out / "admin_units.csv")}
    assert imported["CD5402"]["centroid_lat"] == adumba["lat"] != irumu["centroid_lat"]
    assert imported["CD5402"]["label_lat"] == ""  # not given by the file, not kept from the old one
    assert "cod.csv" in imported["CD5402"]["geometry_source"]
    djugu = next(u for u in shipped_units if u["pcode"] == "CD5405")
    assert imported["CD5405"]["centroid_lat"] == djugu["centroid_lat"]  # kept: same code, same name


@pytest.mark.parametrize("packed", [False, True])
def test_geonames_round_trip(tmp_path, shipped_localities, packed, capsys):
    out = out_dir(tmp_path)
    # two real records altered: Adumba (Irumu) moved to Kinshasa's coordinates, and Agebo
    # (Irumu) given feature class S (a spot, not a populated place); no alias points at them
    far, spot = "8280560", "8280497"
    dump = geonames_dump(tmp_path / "CD.txt", shipped_localities,
                         changed={far: {4: KINSHASA[0], 5: KINSHASA[1]}, spot: {6: "S", 7: "BLDG"}})
    if packed:
        with zipfile.ZipFile(tmp_path / "CD.zip", "w") as archive:
            archive.write(dump, "CD.txt")
            archive.writestr("readme.txt", "GeoNames")
        dump = tmp_path / "CD.zip"
    assert main(["places", "import-geonames", str(dump), "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert f"{len(shipped_localities)} records read" in printed
    assert "not a populated place 1" in printed and "outside the provinces 1" in printed
    imported = {r["geonameid"]: r for r in rows(out / "localities.csv")}
    assert far not in imported and spot not in imported
    shipped_localities = [r for r in shipped_localities if r["geonameid"] not in (far, spot)]
    inside = [r for r in shipped_localities if r["admin_assignment"] == "point-in-polygon"]
    differ = [r for r in inside if imported[r["geonameid"]]["adm2_pcode"] != r["adm2_pcode"]]
    # The shipped assignment used the full RGC polygons; the shipped outlines are simplified
    # (0.001 deg), so a point a few metres from a border may fall on the other side of it.
    assert len(differ) <= 5
    territories = Territories(DATA_DIR / "boundaries_adm2.geojson")
    for r in differ:
        unit = next(u for u in territories.units if u[0] == r["adm2_pcode"])
        border = min(territories._segment_distance(float(r["lon"]), float(r["lat"]), *a, *b)
                     for polygon in unit[4] for ring in polygon for a, b in zip(ring, ring[1:] + ring[:1]))
        assert border < 0.001, (r["name"], border)
    near = [r for r in shipped_localities if r["admin_assignment"].startswith("nearest")]
    assert all(imported[r["geonameid"]]["adm2_pcode"] == r["adm2_pcode"] for r in near)
    assert set(imported) == {r["geonameid"] for r in shipped_localities}
    for r in shipped_localities:  # GeoNames' own fields come back as shipped
        assert [imported[r["geonameid"]][c] for c in GEONAMES_OWN] == [r[c] for c in GEONAMES_OWN]
    assert list(next(iter(imported.values()))) == LOCALITY_COLUMNS
    kasindi = Gazetteer.load(out).resolve("Kasindi", near_admin2="CD6107")
    assert kasindi.status == "found" and kasindi.place.admin2_pcode == "CD6107"


def test_an_import_that_breaks_an_alias_writes_nothing(tmp_path, shipped_units, capsys):
    out = out_dir(tmp_path)
    before = {f.name: f.read_bytes() for f in out.iterdir()}
    without_rutshuru = [u for u in shipped_units if u["pcode"] != "CD6111"]  # aliases point at it
    source = hdx_adm2_table(tmp_path / "cod.csv", without_rutshuru)
    assert main(["places", "import-cod", str(source), "--out", str(out)]) == 1
    assert "CD6111" in capsys.readouterr().err
    assert {f.name: f.read_bytes() for f in out.iterdir()} == before  # no staging left either
    fresh = tmp_path / "fresh"  # a new directory is not left behind either
    assert main(["places", "import-cod", str(source), "--out", str(fresh)]) == 1
    assert not fresh.exists()


@pytest.mark.parametrize("content,message", [
    ("ADM1_FR,ADM2_FR\nIturi,Irumu\n", "not a COD-AB table"),
    ("ADM1_FR,ADM1_PCODE,center_lat,center_lon\nIturi,CD54,north,30\n", "is not a coordinate"),
    ("ADM1_FR,ADM1_PCODE\nIturi,CD54,extra\n", "3 columns, expected 2"),
    ("ADM1_FR,ADM1_PCODE,ADM2_FR,ADM2_PCODE\nIturi,CD54,Irumu,\n", "empty ADM2_PCODE"),
    ("ADM1_FR,ADM1_PCODE,ADM2_PCODE\nIturi,CD54,CD5402\n", "missing column ADM2_FR"),
    ("Location,P-Code,Name,Admin Level\nCOD,CD54,Ituri,1\n", "missing column 'Parent P-Code'"),
])
def test_malformed_cod_file(tmp_path, content, message, capsys):
    out = out_dir(tmp_path)
    (tmp_path / "bad.csv").write_text(content, encoding="utf-8")
    assert main(["places", "import-cod", str(tmp_path / "bad.csv"), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err
    assert rows(out / "admin_units.csv") == rows(DATA_DIR / "admin_units.csv")


@pytest.mark.parametrize("spoil,message", [
    (lambda fields: fields[:4] + ["north"] + fields[5:], "latitude/longitude 'north'"),
    (lambda fields: fields[:6], "6 tab-separated fields"),
    (lambda fields: fields[:14] + ["many"] + fields[15:], "population 'many'"),
])
def test_malformed_geonames_file(tmp_path, shipped_localities, spoil, message, capsys):
    out = out_dir(tmp_path)
    line = "\t".join(spoil(geonames_record(shipped_localities[0])))  # a real record, spoilt
    (tmp_path / "CD.txt").write_text(line + "\n", encoding="utf-8")
    assert main(["places", "import-geonames", str(tmp_path / "CD.txt"), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert message in err and "line 1" in err and "Traceback" not in err
    assert rows(out / "localities.csv") == rows(DATA_DIR / "localities.csv")


def test_places_dir_is_honoured(tmp_path, monkeypatch, shipped_units):
    out = tmp_path / "places"  # a deployment's gazetteer: the provinces and territoires only
    out.mkdir()
    write_csv(out / "admin_units.csv", ADMIN_COLUMNS, [[u[c] for c in ADMIN_COLUMNS] for u in shipped_units])
    write_csv(out / "localities.csv", LOCALITY_COLUMNS, [])
    monkeypatch.setenv("PLACES_DIR", str(out))
    places.default_gazetteer.cache_clear()
    try:
        assert len(places.default_gazetteer()) == 51  # 5 provinces + 46 territoires/villes in scope
        assert places.default_gazetteer().resolve("Kasindi").status == "unknown"
    finally:
        monkeypatch.delenv("PLACES_DIR")
        places.default_gazetteer.cache_clear()
    assert len(places.default_gazetteer()) == len(Gazetteer.load(DATA_DIR)) > 5000


def test_an_empty_places_dir_is_filled_from_the_shipped_files(tmp_path, monkeypatch, shipped_units, capsys):
    """A deployment's new PLACES_DIR: the import writes there by default and takes the
    files it does not replace from the shipped gazetteer; the shipped files stay as they are."""
    out = tmp_path / "places"
    out.mkdir()
    shipped = {f.name: f.read_bytes() for f in DATA_DIR.iterdir() if f.is_file()}
    monkeypatch.setenv("PLACES_DIR", str(out))
    source = global_pcodes(tmp_path / "global_pcodes_adm_1_2.csv", shipped_units)
    assert main(["places", "import-cod", str(source)]) == 0
    assert {f.name for f in out.iterdir()} == {"admin_units.csv", "localities.csv", "added_places.csv",
                                               "aliases.csv", "boundaries_adm1.geojson", "boundaries_adm2.geojson"}
    assert (out / "aliases.csv").read_bytes() == shipped["aliases.csv"]
    assert {f.name: f.read_bytes() for f in DATA_DIR.iterdir() if f.is_file()} == shipped
    assert main(["places", "check"]) == 0
    assert str(out) in capsys.readouterr().out


def test_check_on_the_shipped_data(capsys):
    assert main(["places", "check"]) == 0
    out = capsys.readouterr().out
    assert "adm2" in out and "Nord-Kivu" in out


def test_check_reports_a_broken_alias(tmp_path, shipped_localities, capsys):
    out = out_dir(tmp_path)
    # Kiwanja (gn:8485523) gone from the localities: the alias "Kiwandja" points at nothing
    write_csv(out / "localities.csv", LOCALITY_COLUMNS,
              [[r[c] for c in LOCALITY_COLUMNS] for r in shipped_localities if r["geonameid"] != "8485523"])
    assert main(["places", "check", "--dir", str(out)]) == 1
    assert "alias 'Kiwandja' -> gn:8485523" in capsys.readouterr().out


def test_admin_columns_unchanged():
    with open(DATA_DIR / "admin_units.csv", newline="", encoding="utf-8") as f:
        assert next(csv.reader(f)) == ADMIN_COLUMNS
    with open(DATA_DIR / "localities.csv", newline="", encoding="utf-8") as f:
        assert next(csv.reader(f)) == LOCALITY_COLUMNS
