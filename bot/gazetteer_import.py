"""Load newer official place data into the gazetteer: `alerte places import-cod|import-geonames|check`.

A deployment gets newer or authoritative data without a code change:

    alerte places import-cod cod_admbnda_adm2.csv [--out DIR]    # OCHA COD-AB admin table(s)
    alerte places import-cod global_pcodes_adm_1_2.csv             # or HDX's Global P-Code List
    alerte places import-geonames CD.zip [--out DIR]              # a GeoNames country dump (or CD.txt)
    alerte places check [--dir DIR]

DIR defaults to the gazetteer in use (PLACES_DIR, else data/places). The new files are
built beside the old ones, loaded as a whole (every alias must still point at a place)
and only then swapped in, so a failed import changes nothing. Codes, names and
coordinates come only from the files given, or are kept from the previous file for an
unchanged p-code and name (polygon centroids); otherwise they are left empty, never guessed.
"""

from __future__ import annotations

import csv
import io
import json
import os
import re
import shutil
import sys
import tempfile
import unicodedata
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

from bot.places import DATA_DIR, Gazetteer, fold

EAST = ("CD54", "CD61", "CD62", "CD63", "CD74")  # Ituri, Nord-Kivu, Sud-Kivu, Maniema, Tanganyika
ADMIN_COLUMNS = ["level", "name", "pcode", "parent_pcode", "parent_name", "adm1_pcode", "adm1_name",
                 "in_scope_east", "valid_from", "centroid_lat", "centroid_lon", "centroid_inside", "label_lat",
                 "label_lon", "geometry_source", "geometry_source_name", "geometry_area_deg2", "source"]
GEOMETRY_COLUMNS = ADMIN_COLUMNS[9:17]
LOCALITY_COLUMNS = ["name", "alt_names", "lat", "lon", "adm1_pcode", "adm1_name", "adm2_pcode", "adm2_name",
                    "admin_assignment", "feature_class", "feature_code", "geonames_admin1_code", "geonameid",
                    "population", "population_source", "wof_id", "source"]
GAZETTEER_FILES = ("admin_units.csv", "localities.csv", "added_places.csv", "aliases.csv",
                   "boundaries_adm1.geojson", "boundaries_adm2.geojson")
OUTSIDE_TOLERANCE_KM = 1.0  # `check` reports localities farther than this outside their territory's outline
GEONAMES_FIELDS = 19  # geonameid ... modification date: the GeoNames dump layout
NEAREST_MAX_DEG = 0.05  # a point this close outside every polygon (lake shore, border) takes the nearest
KM_PER_DEG = 111.32
PCODE = re.compile(r"^[A-Z]{2,3}\d*$")


class InputError(Exception):
    """A file that cannot be read as what it claims to be (exit code 2)."""


class BrokenAliases(Exception):
    """The new data would leave aliases pointing at nothing (exit code 1)."""


def places_dir() -> Path:
    return Path(os.environ.get("PLACES_DIR") or DATA_DIR)


# ------------------------------------------------------------------ COD-AB admin tables

@dataclass
class Unit:
    level: int
    pcode: str
    name: str
    parent_pcode: str
    adm1_pcode: str
    valid_from: str = ""
    lat: str = ""
    lon: str = ""
    files: set = field(default_factory=set)


def _read_csv(path: Path) -> tuple[list[str], list[tuple[int, dict]]]:
    """Header and (line number, row) pairs; HXL hashtag rows (#adm1+code...) are skipped."""
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"{path.name}: cannot read ({exc})") from exc
    reader = csv.reader(io.StringIO(text))
    header = next(reader, None)
    if not header:
        raise InputError(f"{path.name}: empty file")
    header = [h.strip() for h in header]
    rows = []
    for values in reader:
        if not values or all(not v.strip() for v in values) or values[0].strip().startswith("#"):
            continue
        if len(values) != len(header):
            raise InputError(f"{path.name}, line {reader.line_num}: {len(values)} columns, expected {len(header)}")
        rows.append((reader.line_num, {h.lower(): v.strip() for h, v in zip(header, values)}))
    return [h.lower() for h in header], rows


def _first(row: dict, *names: str) -> str:
    return next((row[n] for n in names if row.get(n)), "")


def _name_columns(header: list[str], level: int) -> list[str]:
    candidates = [f"adm{level}_fr", *(f"adm{level}_name{s}" for s in ("", "1", "2", "3")), f"adm{level}_en",
                  f"adm{level}"]
    return [c for c in candidates if c in header]


def _unit_name(row: dict, level: int, columns: list[str]) -> str:
    """French first: ADM2_FR (older HDX tables), else the adm2_name/adm2_name1... column
    whose lang/lang1... column says "fr" (newer tables), else the first name given."""
    prefix = f"adm{level}_name"
    french = [c for c in columns if c.endswith("_fr")
              or (c.startswith(prefix) and row.get("lang" + c[len(prefix):], "").lower() == "fr")]
    return _first(row, *french, *columns)


def _coordinate(value: str, path: Path, line: int, low: float, high: float) -> str:
    if not value:
        return ""
    try:
        number = float(value)
    except ValueError:
        raise InputError(f"{path.name}, line {line}: {value!r} is not a coordinate") from None
    if not low <= number <= high:
        raise InputError(f"{path.name}, line {line}: coordinate {value} out of range")
    return value


def read_cod(paths: list[Path]) -> tuple[dict[str, Unit], dict[str, int]]:
    """Provinces (level 1) and territoires/villes (level 2) from COD-AB tables: the HDX
    admin tables (ADM1_PCODE, ADM1_FR, ADM2_PCODE...) or the Global P-Code List; and the
    count of rows read (under "read") and skipped by reason."""
    units: dict[str, Unit] = {}
    dropped = {"read": 0, "other country": 0, "level 3 or deeper": 0}
    for path in paths:
        header, rows = _read_csv(path)
        dropped["read"] += len(rows)
        if {"p-code", "admin level", "name"} <= set(header):
            if "parent p-code" not in header:
                raise InputError(f"{path.name}: missing column 'Parent P-Code' (Global P-Code List layout)")
            for line, row in rows:
                if row.get("location", "COD").upper() not in ("COD", "CD"):
                    dropped["other country"] += 1
                    continue
                try:
                    level = int(row["admin level"])
                except ValueError:
                    raise InputError(f"{path.name}, line {line}: admin level {row['admin level']!r}") from None
                if level not in (1, 2):
                    dropped["level 3 or deeper"] += level > 2
                    continue
                pcode, parent = row["p-code"].upper(), row.get("parent p-code", "").upper()
                _add(units, path, line, Unit(level, pcode, row["name"], parent,
                                             pcode if level == 1 else parent,
                                             valid_from=_first(row, "valid from date", "valid_from")[:10]))
            continue
        levels = sorted(int(m.group(1)) for h in header if (m := re.fullmatch(r"adm(\d)_pcode", h)))
        if not levels or 1 not in levels:
            raise InputError(f"{path.name}: not a COD-AB table: missing column ADM1_PCODE (and not the Global "
                             "P-Code List's P-Code/Name/Admin Level columns)")
        name_columns = {level: _name_columns(header, level) for level in (1, 2)}
        for level in (1, 2):
            if level in levels and not name_columns[level]:
                raise InputError(f"{path.name}: missing column ADM{level}_FR (or ADM{level}_EN, adm{level}_name) "
                                 f"for the names of ADM{level}_PCODE")
        deepest = max(levels)
        for line, row in rows:
            if row.get("adm0_pcode", "CD").upper() not in ("CD", "COD"):
                dropped["other country"] += 1
                continue
            valid = _first(row, "validon", "valid_on", "date", "valid_from")[:10]
            lat = _coordinate(_first(row, "center_lat", "centroid_lat", "latitude", "lat"), path, line, -90, 90)
            lon = _coordinate(_first(row, "center_lon", "centroid_lon", "longitude", "lon"), path, line, -180, 180)
            if deepest > 2:
                dropped["level 3 or deeper"] += 1
            for level in (1, 2):
                if level not in levels:
                    continue
                pcode = row.get(f"adm{level}_pcode", "").upper()
                name = _unit_name(row, level, name_columns[level])
                if not pcode:
                    raise InputError(f"{path.name}, line {line}: empty ADM{level}_PCODE")
                parent = "COD" if level == 1 else row.get("adm1_pcode", "").upper()
                own = level == deepest  # centre coordinates describe the row's own (deepest) unit
                _add(units, path, line, Unit(level, pcode, name, parent, pcode if level == 1 else parent, valid,
                                             lat if own else "", lon if own else ""))
    for unit in units.values():
        if unit.level == 2 and unit.adm1_pcode not in units:
            raise InputError(f"{unit.pcode} ({unit.name}): its province {unit.adm1_pcode} is in no file given")
    return units, dropped


def _add(units: dict[str, Unit], path: Path, line: int, unit: Unit) -> None:
    if not PCODE.match(unit.pcode) or not unit.name:
        raise InputError(f"{path.name}, line {line}: p-code {unit.pcode!r} or name {unit.name!r} is not valid")
    seen = units.get(unit.pcode)
    if seen and (fold(seen.name) != fold(unit.name) or seen.level != unit.level):
        raise InputError(f"{path.name}, line {line}: {unit.pcode} is {unit.name!r} here and {seen.name!r} before")
    if seen:
        seen.lat, seen.lon = seen.lat or unit.lat, seen.lon or unit.lon
        seen.valid_from = seen.valid_from or unit.valid_from
        seen.files.add(path.name)
        return
    unit.files.add(path.name)
    units[unit.pcode] = unit


def admin_rows(units: dict[str, Unit], previous: list[dict], provinces: tuple[str, ...]) -> list[dict]:
    """admin_units.csv rows: geometry columns kept from the previous file only where the
    p-code and the folded name are unchanged; coordinates given by the file win."""
    before = {r["pcode"]: r for r in previous}
    rows = []
    for unit in sorted(units.values(), key=lambda u: (u.level, u.pcode)):
        adm1 = units[unit.adm1_pcode]
        row = {c: "" for c in ADMIN_COLUMNS}
        row.update(level=str(unit.level), name=unit.name, pcode=unit.pcode, parent_pcode=unit.parent_pcode,
                   parent_name="" if unit.level == 1 else adm1.name, adm1_pcode=adm1.pcode, adm1_name=adm1.name,
                   in_scope_east="yes" if adm1.pcode in provinces else "no", valid_from=unit.valid_from,
                   source="OCHA COD-AB: " + ", ".join(sorted(unit.files))
                   + (f" (valid from {unit.valid_from})" if unit.valid_from else ""))
        old = before.get(unit.pcode)
        if unit.lat and unit.lon:
            row.update(centroid_lat=unit.lat, centroid_lon=unit.lon, geometry_source=row["source"])
        elif old and fold(old["name"]) == fold(unit.name):
            row.update({c: old.get(c, "") for c in GEOMETRY_COLUMNS})
        rows.append(row)
    return rows


# ------------------------------------------------------------------ GeoNames country dump

def _geonames_lines(path: Path):
    """(line number, fields) of a GeoNames dump, from CD.txt or the CD.zip that holds it."""
    try:
        if zipfile.is_zipfile(path):
            with zipfile.ZipFile(path) as archive:
                members = [n for n in archive.namelist() if n.lower().endswith(".txt")
                           and not n.lower().startswith("readme")]
                if len(members) != 1:
                    raise InputError(f"{path.name}: expected one country .txt file inside, found {members}")
                text = archive.read(members[0]).decode("utf-8-sig")
        else:
            text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError, zipfile.BadZipFile) as exc:
        raise InputError(f"{path.name}: cannot read ({exc})") from exc
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip() or line.startswith("#"):
            continue
        fields = line.split("\t")
        if len(fields) != GEONAMES_FIELDS:
            raise InputError(f"{path.name}, line {number}: {len(fields)} tab-separated fields, "
                             f"a GeoNames dump has {GEONAMES_FIELDS}")
        yield number, fields


def _latin(name: str) -> bool:
    letters = [c for c in name if c.isalpha()]
    return bool(letters) and all(unicodedata.name(c, "").startswith("LATIN") for c in letters)


def _property(props: dict, *names: str) -> str:
    """A feature property by any of `names`, whatever its case (ADM2_PCODE, adm2_pcode)."""
    lower = {str(k).lower(): v for k, v in (props or {}).items()}
    return next((str(lower[n]).strip() for n in names if lower.get(n) not in (None, "")), "")


class Territories:
    """Point-in-polygon over the territoire/ville outlines (boundaries_adm2.geojson, whose
    features carry the COD adm2 p-code as ADM2_PCODE). Names and provinces are taken from
    `admin_units` (the gazetteer's admin_units.csv rows) when given, so a unit renamed by
    `import-cod` is written with its new name; else from the feature's own properties."""

    def __init__(self, path: Path, admin_units: list[dict] | None = None):
        try:
            doc = json.loads(path.read_text(encoding="utf-8"))
            features = doc["features"]
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise InputError(f"{path.name}: not a readable GeoJSON FeatureCollection ({exc})") from None
        units = {r["pcode"]: r for r in admin_units or ()}
        self.units = []  # (pcode, name, adm1 pcode, adm1 name, [polygon: [ring: [(lon, lat)]]], bbox)
        for number, feature in enumerate(features, 1):
            props, geometry = feature.get("properties") or {}, feature.get("geometry") or {}
            pcode = _property(props, "adm2_pcode", "pcode").upper()
            if not PCODE.match(pcode) or geometry.get("type") not in ("Polygon", "MultiPolygon"):
                raise InputError(f"{path.name}, feature {number}: no ADM2_PCODE property or no (multi)polygon")
            known = units.get(pcode, {})
            name = known.get("name") or _property(props, "adm2_fr", "adm2_name", "name")
            adm1 = known.get("adm1_pcode") or _property(props, "adm1_pcode").upper()
            adm1_name = known.get("adm1_name") or _property(props, "adm1_fr", "adm1_name")
            polygons = [geometry["coordinates"]] if geometry["type"] == "Polygon" else geometry["coordinates"]
            polygons = [[[(float(p[0]), float(p[1])) for p in ring] for ring in polygon] for polygon in polygons]
            points = [p for polygon in polygons for p in polygon[0]]
            bbox = (min(p[0] for p in points), min(p[1] for p in points),
                    max(p[0] for p in points), max(p[1] for p in points))
            self.units.append((pcode, name, adm1, adm1_name, polygons, bbox))

    @staticmethod
    def _in_ring(x: float, y: float, ring) -> bool:
        inside = False
        for (x1, y1), (x2, y2) in zip(ring, ring[1:] + ring[:1]):
            if (y1 > y) != (y2 > y) and x < x1 + (y - y1) * (x2 - x1) / (y2 - y1):
                inside = not inside
        return inside

    @staticmethod
    def _segment_distance(x, y, x1, y1, x2, y2) -> float:
        dx, dy = x2 - x1, y2 - y1
        t = 0.0 if dx == dy == 0 else max(0.0, min(1.0, ((x - x1) * dx + (y - y1) * dy) / (dx * dx + dy * dy)))
        return ((x - x1 - t * dx) ** 2 + (y - y1 - t * dy) ** 2) ** 0.5

    def distance_km(self, lat: float, lon: float, pcode: str) -> float | None:
        """How far (km) the point lies outside the outline of unit `pcode`: 0 inside it,
        None when the unit has no outline here."""
        best = None
        for unit in self.units:
            if unit[0] != pcode:
                continue
            for polygon in unit[4]:
                if self._in_ring(lon, lat, polygon[0]) and not any(self._in_ring(lon, lat, h) for h in polygon[1:]):
                    return 0.0
                for ring in polygon:
                    for (ax, ay), (bx, by) in zip(ring, ring[1:] + ring[:1]):
                        d = self._segment_distance(lon, lat, ax, ay, bx, by)
                        best = d if best is None or d < best else best
        return None if best is None else best * KM_PER_DEG

    def locate(self, lat: float, lon: float) -> tuple[tuple, str] | None:
        """(unit, how) for the polygon holding the point, else the nearest within 0.05 deg."""
        for unit in self.units:
            x0, y0, x1, y1 = unit[5]
            if not (x0 <= lon <= x1 and y0 <= lat <= y1):
                continue
            for polygon in unit[4]:
                if self._in_ring(lon, lat, polygon[0]) and not any(self._in_ring(lon, lat, h) for h in polygon[1:]):
                    return unit, "point-in-polygon"
        best, best_d = None, NEAREST_MAX_DEG
        for unit in self.units:
            x0, y0, x1, y1 = unit[5]
            if lon < x0 - best_d or lon > x1 + best_d or lat < y0 - best_d or lat > y1 + best_d:
                continue
            for polygon in unit[4]:
                for ring in polygon:
                    for (ax, ay), (bx, by) in zip(ring, ring[1:] + ring[:1]):
                        d = self._segment_distance(lon, lat, ax, ay, bx, by)
                        if d <= best_d:
                            best, best_d = unit, d
        if best is None:
            return None
        return best, f"nearest unit, {best_d * KM_PER_DEG:.1f} km outside"


def read_geonames(path: Path, territories: Territories, provinces: tuple[str, ...]) -> tuple[list[dict], dict]:
    """localities.csv rows from a GeoNames dump, and the count of records dropped by reason
    (with the total read under "read")."""
    rows, dropped, newest = [], {"read": 0, "not a populated place": 0, "outside the provinces": 0}, ""
    for line, f in _geonames_lines(path):
        dropped["read"] += 1
        if f[6] != "P":
            dropped["not a populated place"] += 1
            continue
        try:
            lat, lon = float(f[4]), float(f[5])
        except ValueError:
            raise InputError(f"{path.name}, line {line}: latitude/longitude {f[4]!r}, {f[5]!r}") from None
        if not (-90 <= lat <= 90 and -180 <= lon <= 180):
            raise InputError(f"{path.name}, line {line}: latitude/longitude {f[4]!r}, {f[5]!r} out of range")
        if not f[0].isdigit() or not f[1].strip():
            raise InputError(f"{path.name}, line {line}: geonameid {f[0]!r} or name {f[1]!r} is not valid")
        try:
            population = int(f[14] or 0)
        except ValueError:
            raise InputError(f"{path.name}, line {line}: population {f[14]!r} is not a number") from None
        found = territories.locate(lat, lon)
        if found is None or found[0][2] not in provinces:
            dropped["outside the provinces"] += 1
            continue
        (adm2, adm2_name, adm1, adm1_name, _, _), how = found
        name = f[1].strip()
        # Latin-script variants, each once, in GeoNames' order; an accented spelling of the
        # main name ("Saké" for "Sake") is kept, as GeoNames gives it
        alts = [alt for alt in dict.fromkeys(a.strip() for a in f[3].split(","))
                if alt and alt != name and _latin(alt) and not alt.lower().startswith("http")]
        newest = max(newest, f[18].strip())
        rows.append({"name": name, "alt_names": "|".join(alts), "lat": f[4].strip(), "lon": f[5].strip(),
                     "adm1_pcode": adm1, "adm1_name": adm1_name, "adm2_pcode": adm2, "adm2_name": adm2_name,
                     "admin_assignment": how, "feature_class": f[6], "feature_code": f[7],
                     "geonames_admin1_code": f[10], "geonameid": f[0], "population": str(population),
                     "population_source": "geonames", "wof_id": ""})
    source = f"GeoNames (CC BY 4.0) {path.name}" + (f", modified up to {newest}" if newest else "")
    for row in rows:
        row["source"] = source
    rows.sort(key=lambda r: (r["adm1_pcode"], r["adm2_pcode"], fold(r["name"]), int(r["geonameid"])))
    return rows, dropped


# ------------------------------------------------------------------ installing

def _csv_text(columns: list[str], rows: list[dict]) -> str:
    out = io.StringIO()
    writer = csv.DictWriter(out, columns, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return out.getvalue()


def _rows(path: Path) -> list[dict]:
    if not path.exists():
        return []
    with open(path, newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def broken_aliases(directory: Path) -> list[str]:
    """Aliases and added places whose target or territory the data no longer holds."""
    keys = {r["pcode"] for r in _rows(directory / "admin_units.csv") if r["in_scope_east"] == "yes"}
    keys |= {"gn:" + r["geonameid"] for r in _rows(directory / "localities.csv")}
    keys |= {"x:" + r["slug"] for r in _rows(directory / "added_places.csv")}
    broken = [f"alias {r['alias']!r} -> {r['target_key']}" for r in _rows(directory / "aliases.csv")
              if r["target_key"] not in keys]
    broken += [f"added place {r['name']!r} -> {r['admin2_pcode'] or r['admin1_pcode']}"
               for r in _rows(directory / "added_places.csv")
               if (r["admin2_pcode"] or r["admin1_pcode"]) not in keys]
    for r in _rows(directory / "key_places.csv"):
        codes = [r["admin1_pcode"], *filter(None, r["admin2_pcodes"].split(";"))]
        if r["geonameid"]:
            codes.append("gn:" + r["geonameid"])
        broken += [f"key place {r['name']!r} -> {c}" for c in codes if c not in keys]
    return broken


def outside_outline(directory: Path, gazetteer: Gazetteer, tolerance_km: float = OUTSIDE_TOLERANCE_KM) -> list[tuple]:
    """Localities (as the gazetteer holds them, key-place corrections applied) whose point lies
    more than `tolerance_km` outside the outline of every territory they are filed under:
    (km, record), farthest first. Units without an outline (the villes created after 2010) are
    not checked."""
    boundaries = directory / "boundaries_adm2.geojson"
    if not boundaries.exists():
        boundaries = _current(directory, "boundaries_adm2.geojson")
    if not boundaries.exists():
        return []
    territories = Territories(boundaries)
    found = []
    for rec in gazetteer._by_key.values():
        if rec.level != "locality" or rec.lat is None or rec.lon is None or not rec.admin2_pcode:
            continue
        distances = [territories.distance_km(rec.lat, rec.lon, c) for c in (rec.admin2_pcodes or (rec.admin2_pcode,))]
        distances = [d for d in distances if d is not None]
        if distances and min(distances) > tolerance_km:
            found.append((min(distances), rec))
    return sorted(found, key=lambda item: (-item[0], item[1].key))


def stray_localities(directory: Path) -> dict[str, int]:
    """Localities whose territoire p-code is not an in-scope unit of admin_units.csv (after
    an import-cod that renumbered units, until import-geonames is run again): p-code -> count."""
    units = {r["pcode"] for r in _rows(directory / "admin_units.csv") if r["in_scope_east"] == "yes"}
    stray: dict[str, int] = {}
    for row in _rows(directory / "localities.csv"):
        if row["adm2_pcode"] and row["adm2_pcode"] not in units:
            stray[row["adm2_pcode"]] = stray.get(row["adm2_pcode"], 0) + 1
    return stray


def install(out: Path, files: dict[str, str]) -> Gazetteer:
    """Write `files` (name -> text) into `out` all at once, or not at all. The other
    gazetteer files come from `out`, else from the gazetteer in use or the shipped one
    (`_current`); the whole is loaded (Gazetteer.load) before anything is replaced."""
    created = not out.exists()
    out.mkdir(parents=True, exist_ok=True)
    stage = Path(tempfile.mkdtemp(prefix=".import-", dir=out))  # same file system: os.replace is atomic
    done = False
    try:
        for name in GAZETTEER_FILES:
            if name in files:
                (stage / name).write_text(files[name], encoding="utf-8")
            elif _current(out, name).exists():
                shutil.copyfile(_current(out, name), stage / name)
        broken = broken_aliases(stage)
        if broken:
            raise BrokenAliases("; ".join(broken))
        try:
            gazetteer = Gazetteer.load(stage)
        except (OSError, KeyError, ValueError) as exc:
            raise BrokenAliases(f"the gazetteer would not load ({type(exc).__name__}: {exc})") from None
        for name in GAZETTEER_FILES:
            if (stage / name).exists() and (name in files or not (out / name).exists()):
                os.replace(stage / name, out / name)
        done = True
        return gazetteer
    finally:
        shutil.rmtree(stage, ignore_errors=True)
        if created and not done:
            try:
                out.rmdir()  # the directory this failed import created, now empty again
            except OSError:
                pass


def _current(out: Path, name: str) -> Path:
    """A gazetteer file of the target directory, else of the gazetteer in use (PLACES_DIR),
    else the shipped one: a new, empty PLACES_DIR starts from the shipped files."""
    return next((d / name for d in (out, places_dir(), DATA_DIR) if (d / name).exists()), out / name)


def _previous(out: Path, name: str) -> list[dict]:
    return _rows(_current(out, name))


BOOKKEEPING = ("source", "population_source", "wof_id")  # not counted as a change of the data


def _changes(before: list[dict], after: list[dict], key: str) -> str:
    old, new = {r[key]: r for r in before}, {r[key]: r for r in after}
    changed = sum(1 for k in old.keys() & new.keys()
                  if any(old[k].get(c, "") != new[k].get(c, "") for c in new[k] if c not in BOOKKEEPING))
    return (f"{len(new.keys() - old.keys())} new, {len(old.keys() - new.keys())} gone, {changed} changed"
            f" (not counting the {'/'.join(c for c in BOOKKEEPING if c in next(iter(after), {}))} columns)")


def _skipped(dropped: dict[str, int]) -> str:
    return ", ".join(f"{k} {v}" for k, v in dropped.items() if k != "read" and v) or "none"


def _warn_stray(out: Path) -> None:
    stray = stray_localities(out)
    if stray:
        print(f"warning: {sum(stray.values())} localities are in territoires that are not in admin_units.csv "
              f"({', '.join(f'{k} {v}' for k, v in sorted(stray.items()))}); run import-geonames again")


# ------------------------------------------------------------------ commands

def _provinces(value: str) -> tuple[str, ...]:
    return tuple(p.strip().upper() for p in value.split(",") if p.strip())


def run_import_cod(args) -> int:
    out = Path(args.out) if args.out else places_dir()
    units, dropped = read_cod([Path(p) for p in args.files])
    previous = _previous(out, "admin_units.csv")
    rows = admin_rows(units, previous, args.provinces)
    gazetteer = install(out, {"admin_units.csv": _csv_text(ADMIN_COLUMNS, rows)})
    east = [r for r in rows if r["in_scope_east"] == "yes"]
    located = sum(1 for r in east if r["centroid_lat"])
    print(f"admin units: {dropped['read']} rows read, skipped: {_skipped(dropped)}; {len(rows)} units written "
          f"({sum(r['level'] == '1' for r in rows)} provinces), {len(east)} in scope, {located} of them with "
          f"coordinates; vs the previous file: {_changes(previous, rows, 'pcode')}")
    _warn_stray(out)
    print(f"gazetteer in {out}: {len(gazetteer)} places")
    return 0


def run_import_geonames(args) -> int:
    out = Path(args.out) if args.out else places_dir()
    boundaries = _current(out, "boundaries_adm2.geojson")
    if not boundaries.exists():
        raise InputError(f"no boundaries_adm2.geojson in {out}, in PLACES_DIR or in the shipped data")
    territories = Territories(boundaries, _previous(out, "admin_units.csv"))
    rows, dropped = read_geonames(Path(args.file), territories, args.provinces)
    previous = _previous(out, "localities.csv")
    gazetteer = install(out, {"localities.csv": _csv_text(LOCALITY_COLUMNS, rows)})
    nearest = sum(1 for r in rows if r["admin_assignment"] != "point-in-polygon")
    print(f"localities: {dropped['read']} records read, skipped: not a populated place "
          f"{dropped['not a populated place']}, outside the provinces {dropped['outside the provinces']}; "
          f"{len(rows)} kept ({nearest} assigned to the nearest territory within {NEAREST_MAX_DEG} deg); "
          f"vs the previous file: {_changes(previous, rows, 'geonameid')}")
    _warn_stray(out)
    print(f"gazetteer in {out}: {len(gazetteer)} places")
    return 0


def run_check(args) -> int:
    directory = Path(args.dir) if args.dir else places_dir()
    broken = broken_aliases(directory)
    for item in broken:
        print(f"broken: {item}")
    if broken:
        return 1
    try:
        gazetteer = Gazetteer.load(directory)
    except (KeyError, ValueError) as exc:
        print(f"broken: the gazetteer does not load ({type(exc).__name__}: {exc})")
        return 1
    records = list(gazetteer._by_key.values())
    by_level: dict = {}
    for rec in records:
        by_level.setdefault((rec.level, rec.admin1_name), 0)
        by_level[(rec.level, rec.admin1_name)] += 1
    print(f"{directory}: {len(records)} places")
    for (level, province), count in sorted(by_level.items(), key=lambda kv: (kv[0][0], kv[0][1] or "")):
        print(f"  {level:<9} {province or '-':<12} {count}")
    missing = [r for r in records if r.level == "locality" and not r.admin2_pcode]
    print(f"  localities without a territory: {len(missing)}"
          + (f" ({', '.join(r.name for r in missing[:10])}{', ...' if len(missing) > 10 else ''})" if missing else "")
          + f"; places without coordinates: {sum(1 for r in records if r.lat is None)}")
    aliases = _rows(directory / "aliases.csv")
    print(f"  aliases: {len(aliases)}, all pointing at a place")
    keys = _rows(directory / "key_places.csv")
    print(f"  key places: {len(keys)} ({sum(1 for r in keys if r['lat'])} with coordinates from their source, "
          f"{sum(1 for r in keys if r['geonameid'])} matched to a GeoNames locality)")
    tolerance = getattr(args, "tolerance", None)
    tolerance = OUTSIDE_TOLERANCE_KM if tolerance is None else tolerance
    outside = outside_outline(directory, gazetteer, tolerance)
    print(f"  localities more than {tolerance:g} km outside their territory's outline: {len(outside)}")
    for km, rec in outside[:50]:
        print(f"    {rec.key} {rec.name} ({rec.lat}, {rec.lon}): {km:.1f} km outside "
              f"{rec.admin2_name} ({rec.admin2_pcode})")
    if len(outside) > 50:
        print(f"    ... and {len(outside) - 50} more")
    _warn_stray(directory)
    return 0


def cli(parser):
    """Gazetteer data: import OCHA COD-AB tables or a GeoNames dump, check the data."""
    sub = parser.add_subparsers(dest="places_command", required=True)
    cod = sub.add_parser("import-cod", help="OCHA COD-AB admin table(s) or HDX Global P-Code List (CSV)")
    cod.add_argument("files", nargs="+")
    geo = sub.add_parser("import-geonames", help="a GeoNames country dump (CD.txt or CD.zip)")
    geo.add_argument("file")
    for p in (cod, geo):
        p.add_argument("--out", help="gazetteer directory to write (default: PLACES_DIR or data/places)")
        p.add_argument("--provinces", type=_provinces, default=EAST,
                       help="province p-codes in scope (default: " + ",".join(EAST) + ")")
    check = sub.add_parser("check", help="load the gazetteer and report what it holds")
    check.add_argument("--dir")
    check.add_argument("--tolerance", type=float, default=OUTSIDE_TOLERANCE_KM,
                       help="km outside its territory's outline before a locality is reported (default %(default)s)")
    commands = {"import-cod": run_import_cod, "import-geonames": run_import_geonames, "check": run_check}

    def run(args) -> int:
        try:
            return commands[args.places_command](args)
        except InputError as exc:
            print(f"alerte places: {exc}", file=sys.stderr)
            return 2
        except BrokenAliases as exc:
            print(f"alerte places: nothing written; the new data would break: {exc}", file=sys.stderr)
            return 1
        except OSError as exc:  # a file or directory given that is not there
            print(f"alerte places: {exc}", file=sys.stderr)
            return 2
    return run
