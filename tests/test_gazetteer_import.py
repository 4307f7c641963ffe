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


def geonames_dump(path, localities, extra=()):
    lines = []
    for r in localities:
        if not r["geonameid"]:
            continue
        fields = [r["geonameid"], r["name"], r["name"], ",".join(filter(None, r["alt_names"].split("|"))),
                  r["lat"], r["lon"], r["feature_class"], r["feature_code"], "CD", "", r["geonames_admin1_code"],
                  "", "", "", r["population"] or "0", "", "1000", "Africa/Lubumbashi", "2018-08-02"]
        lines.append("\t".join(fields))
    lines.extend(extra)
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


def test_renamed_or_new_unit_gets_no_coordinates(tmp_path, shipped_units):
    out = out_dir(tmp_path)
    units = [dict(u) for u in shipped_units]
    oicha = next(u for u in units if u["pcode"] == "CD6107")
    oicha["name"] = "Beni-Territoire"  # a renamed unit: its old centroid is not trusted
    source = hdx_adm2_table(tmp_path / "cod.csv", units)
    assert main(["places", "import-cod", str(source), "--out", str(out)]) == 0
    row = next(r for r in rows(out / "admin_units.csv") if r["pcode"] == "CD6107")
    assert row["name"] == "Beni-Territoire" and row["centroid_lat"] == row["label_lat"] == ""


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
    far = "\t".join(["999999999", "Far Away", "Far Away", "", *KINSHASA, "P", "PPL", "CD", "", "06", "", "", "",
                     "0", "", "300", "Africa/Kinshasa", "2020-01-01"])
    lake = "\t".join(["999999998", "Some Lake", "Some Lake", "", "-1.6", "29.2", "H", "LK", "CD", "", "11", "", "",
                      "", "0", "", "1460", "Africa/Lubumbashi", "2020-01-01"])
    dump = geonames_dump(tmp_path / "CD.txt", shipped_localities, extra=[far, lake])
    if packed:
        with zipfile.ZipFile(tmp_path / "CD.zip", "w") as archive:
            archive.write(dump, "CD.txt")
            archive.writestr("readme.txt", "GeoNames")
        dump = tmp_path / "CD.zip"
    assert main(["places", "import-geonames", str(dump), "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "not a populated place 1" in printed and "outside the provinces 1" in printed
    imported = {r["geonameid"]: r for r in rows(out / "localities.csv")}
    assert "999999999" not in imported and "999999998" not in imported
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


@pytest.mark.parametrize("content,message", [
    ("ADM1_FR,ADM2_FR\nIturi,Irumu\n", "not a COD-AB table"),
    ("ADM1_FR,ADM1_PCODE,center_lat,center_lon\nIturi,CD54,north,30\n", "is not a coordinate"),
    ("ADM1_FR,ADM1_PCODE\nIturi,CD54,extra\n", "3 columns, expected 2"),
    ("ADM1_FR,ADM1_PCODE,ADM2_FR,ADM2_PCODE\nIturi,CD54,Irumu,\n", "empty ADM2_PCODE"),
])
def test_malformed_cod_file(tmp_path, content, message, capsys):
    out = out_dir(tmp_path)
    (tmp_path / "bad.csv").write_text(content, encoding="utf-8")
    assert main(["places", "import-cod", str(tmp_path / "bad.csv"), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err
    assert rows(out / "admin_units.csv") == rows(DATA_DIR / "admin_units.csv")


@pytest.mark.parametrize("line,message", [
    ("1\tA\tA\t\tnorth\t29.1\tP\tPPL\tCD\t\t11\t\t\t\t0\t\t\t\t2020-01-01", "latitude/longitude"),
    ("1\tA\tA\t0.5\t29.1\tP", "6 tab-separated fields"),
])
def test_malformed_geonames_file(tmp_path, line, message, capsys):
    out = out_dir(tmp_path)
    (tmp_path / "CD.txt").write_text(line + "\n", encoding="utf-8")
    assert main(["places", "import-geonames", str(tmp_path / "CD.txt"), "--out", str(out)]) == 2
    assert message in capsys.readouterr().err
    assert rows(out / "localities.csv") == rows(DATA_DIR / "localities.csv")


def test_places_dir_is_honoured(tmp_path, monkeypatch):
    out = out_dir(tmp_path)
    with open(out / "added_places.csv", "a", newline="", encoding="utf-8") as f:
        f.write("testville,Testville,,CD61,Nord-Kivu,CD6111,Rutshuru,,,added by project,test only\n")
    monkeypatch.setenv("PLACES_DIR", str(out))
    places.default_gazetteer.cache_clear()
    try:
        assert places.default_gazetteer().resolve("Testville").place.key == "x:testville"
    finally:
        monkeypatch.delenv("PLACES_DIR")
        places.default_gazetteer.cache_clear()
    assert places.default_gazetteer().resolve("Testville").status != "found"


def test_check_on_the_shipped_data(capsys):
    assert main(["places", "check"]) == 0
    out = capsys.readouterr().out
    assert "adm2" in out and "Nord-Kivu" in out


def test_check_reports_a_broken_alias(tmp_path, capsys):
    out = out_dir(tmp_path)
    with open(out / "aliases.csv", "a", encoding="utf-8") as f:
        f.write("Nowhere,gn:1,test\n")
    assert main(["places", "check", "--dir", str(out)]) == 1
    assert "Nowhere" in capsys.readouterr().out


def test_admin_columns_unchanged():
    with open(DATA_DIR / "admin_units.csv", newline="", encoding="utf-8") as f:
        assert next(csv.reader(f)) == ADMIN_COLUMNS
    with open(DATA_DIR / "localities.csv", newline="", encoding="utf-8") as f:
        assert next(csv.reader(f)) == LOCALITY_COLUMNS
