"""The gazetteer: turn what a reporter wrote ("a Butembo", "kitchanga", "mji wa Goma")
into one place of data/places/, or say honestly that it is ambiguous or unknown.

Why the rules below: reporters write without accents, in three languages, with local
spellings, and many villages share a name. A wrong place sends help to the wrong
village, so when the data cannot decide we answer "ambiguous" (the conversation then
offers a numbered choice) instead of guessing. Project aliases (data/places/aliases.csv)
are explicit product decisions and therefore win over every other rule.

Key places (data/places/key_places.csv) are the towns conflict and humanitarian reporting
names, each with its source. They carry the name people use (Oicha, not GeoNames' Hyosha),
their territory (two when a town straddles a boundary) and override the GeoNames record
they match. They are prominent: a key place wins over namesake villages unless the
reporter's usual area (`near_admin2`) or a unit named in the same text ("Kibumba
Nyiragongo", "Pinga/Walikale") points at another; the reporter is asked only when two
prominent places remain, with at most three choices, the likeliest first.
"""

from __future__ import annotations

import csv
import os
import re
import unicodedata
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from rapidfuzz import fuzz, process

DATA_DIR = Path(__file__).resolve().parent.parent / "data" / "places"
MAX_CANDIDATES = 3  # choices offered when asking
KEY_POINT_TOLERANCE_KM = 2.0  # a matched GeoNames point farther outside the key place's territory is not used
MAX_NGRAM = 4

# Words that are never a place on their own in a message, although GeoNames has
# villages with these names ("Moto", "Leo", "Kumi", "Mai", "Soko"...): function words,
# numbers, time words, the starter vocabulary of the three languages, armed-group names.
_STOP_TEXT = """
a à au aux de des du d l la le les un une et ou en dans sur sous vers chez pres près par pour avec
sans entre ce cet cette ces ici la-bas il ils elle elles on nous vous je tu me se leur leurs mon ma mes
est sont ont a été etre être avoir fait faire y pas ne plus tres très aussi mais donc car que qui quoi
dont ou où quand comment combien bien mal non oui merci bonjour bonsoir salut svp stp bjr slt pr ds mm
tout tous toute toutes autre autres meme même encore deja déjà depuis apres après avant pendant jusqu jusque
un deux trois quatre cinq six sept huit neuf dix onze douze vingt trente cent mille zero
matin soir nuit midi minuit hier demain aujourd aujourdhui maintenant heure heures jour jours semaine
lundi mardi mercredi jeudi vendredi samedi dimanche mois an ans annee
village ville territoire province quartier cite cité centre route marche marché maison maisons champ champs
hommes homme femmes femme enfants enfant gens personne personnes morts mort blesses blessés tues tués
armes armés arme militaires militaire soldats rebelles rebelle tirs coups feu attaque attaques combats
tuer tue tué enlever enleve enlevé kidnapper piller pille pillé voler vole volé bruler brule brûlé
fuir fuite deplaces déplacés menace menaces tract haine terre vaches barriere barrière argent aide
danger alerte urgence securite sécurité police armee armée
na ya wa za la cha vya kwa ku katika kati juu chini karibu mbali ni si hapa huko pale kule
mimi wewe yeye sisi ninyi wao hii hiyo ile huyu yule hawa wale hao kila kitu wote yote sana tu pia
lakini au kama bado tena sasa hivi leo jana juzi kesho asubuhi mchana jioni usiku saa siku wiki mwezi
mwaka moja mbili tatu nne tano sita saba nane tisa kumi ishirini thelathini mia elfu
watu mtu watoto mtoto wanawake mwanamke wanaume mwanaume wengi wachache hakuna kuna iko yuko wako
silaha wenye wanamgambo waasi askari wanajeshi jeshi polisi risasi vita mapigano hatari vitisho chuki
ardhi shamba mashamba ngombe kizuizi pesa kijiji vijiji barabara njia soko nyumba mji mjini mtaa
msaada jambo habari ndiyo ndio hapana sijui asante tafadhali salama shida moto maji mai mto ziwa
kuua wameua wameuawa wamekufa amekufa kufa kushambulia wameshambulia shambulio kuteka wameteka wametekwa
nyara kubaka amebakwa kupora wamepora kuiba wameiba kuchoma wamechoma kukimbia wamekimbia wakimbizi
ngoma mama baba bwana mzee kaka dada
mboka bato moto mwana bana basi mibali mobali bandako ndako nzela zando mabele elanga bilanga
mbongo lisalisi mbote iyo ee te nayebi boni lelo lobi ntongo butu mokolo poso sanza mbula
moko mibale misato minei mitano motoba nsambo mwambe libwa zomi nkama ebele mingi
mandoki bibundeli basoda soda masasi etumba likama koyina koboma babomi babomami bakufi
kobundisa kobunda kokanga makasi kozwa kosangisa nzoto kobebisa koyiba kotumba kokima bakimi
kobangisa bakoti bakotaki bayei baye bazali azali ezali ekoti awa kuna wapi nani nini
ale ali amba bale bali bani bao biso bitumba bona boyo home kabila kala kambi kana katanga kilo kisi
kuku low mali maya mayi mbaya mbele moyo ndeko nduma ngomba oye sango site tata tete una unga utu wawa zali
ngai yo ye bino bango oyo wana boye bongo lokola kasi mpe pe soki ndenge ntango sikoyo moke monene
malamu mabe likolo nse libanda sima liboso penepene mosika zamba esobe ebale nzete yangu yako yake yetu
yenu yao wetu wenu chetu huyo hizo hilo lile mengi kubwa ndogo nzuri tangu mpaka msitu mlima foret brousse
mmoja wawili watatu wanne watano watanu wasita wasaba wanane watisa
adf m23 codeco nyatura fdlr fardc wazalendo mai-mai maimai raia mutomboki twirwaneho zaire
salamu bila dola jina kikundi maiti mambo pande shaka simba bakoma longwa maloba mikolo
"""
# (the last line: words of the training templates that are also village names in the
# gazetteer; tests/test_places.py keeps that list complete)
STOPWORDS = frozenset(_STOP_TEXT.split())
# Filler around a place in an answer to "where?" ("a Butembo", "kijiji cha Pinga").
_FILLER_TEXT = """
a à au aux de des du d l la le les en dans vers chez pres près cote côté sur
village localite localité ville cite cité territoire groupement quartier secteur chefferie province
centre localisation endroit lieu
na ya wa la cha kwa ku katika karibu kijiji mji mjini mtaa eneo wilaya huko pale kule hapa
mboka engumba o penepene
"""
FILLER = frozenset(_FILLER_TEXT.split())
# Words after which a place name is likely ("a Kiwanja", "kwa Beni", "na Komanda").
LOCATIVES = frozenset("a à au de du vers chez pres près kwa ku huko katika na o".split())


def fold(text: str) -> str:
    """Lower case, no accents, punctuation as spaces, single spaces: how names are compared.
    French "tch" and Swahili "tsh" write the same sound (Tchabi/Tshabi, Rutchuru/Rutshuru,
    Kitchanga/Kitshanga), so both are compared as "tsh"."""
    text = (text or "").replace("ɛ", "e").replace("ɔ", "o").replace("Ɛ", "e").replace("Ɔ", "o")
    text = unicodedata.normalize("NFKD", text)
    text = "".join(c for c in text if not unicodedata.combining(c)).lower()
    return " ".join(re.sub(r"[^a-z0-9]+", " ", text).split()).replace("tch", "tsh")


@dataclass(frozen=True)
class PlaceRecord:
    key: str  # p-code (adm1/adm2), "gn:<geonameid>" (locality), "x:<slug>" (project addition)
    name: str
    level: str  # adm1 | adm2 | locality
    admin1_pcode: str | None
    admin1_name: str | None
    admin2_pcode: str | None
    admin2_name: str | None
    lat: float | None
    lon: float | None
    population: int
    source: str
    prominent: bool = False  # a key place (data/places/key_places.csv)
    admin2_pcodes: tuple[str, ...] = ()  # every territory of a key place (two when it straddles a boundary)
    kind: str = ""  # key places: city, territory_seat, town, border, mining, displacement_site...

    def location(self) -> dict:
        """The location as the API and exports give it; pcode is the finest p-code known."""
        pcode = self.admin2_pcode if self.level == "locality" else self.key
        return {"name": self.name, "admin1": self.admin1_name, "admin2": self.admin2_name, "pcode": pcode}

    def within(self, code: str | None) -> bool:
        """True if this place is in (or is) the adm1/adm2 unit `code`."""
        return bool(code) and (code in (self.key, self.admin2_pcode, self.admin1_pcode) or code in self.admin2_pcodes)


@dataclass(frozen=True)
class Resolution:
    status: str  # found | ambiguous | unknown
    place: PlaceRecord | None
    candidates: tuple[PlaceRecord, ...]
    text: str  # the (folded) words matched, or the text given
    written: str = ""  # the place as the reporter wrote it (found or ambiguous)


UNKNOWN = Resolution("unknown", None, (), "")
_KIND_RANK = {"alias": 0, "name": 1, "alt": 2}
_LEVEL_RANK = {"adm2": 0, "adm1": 1, "locality": 2}


def _float(value: str) -> float | None:
    return float(value) if value not in (None, "") else None


def slug(name: str) -> str:
    """The `x:<slug>` of a key place without a GeoNames match ("Iga Barrière" -> iga-barriere);
    the same slug as an added place merges with it."""
    text = unicodedata.normalize("NFKD", name or "")
    text = "".join(c for c in text if not unicodedata.combining(c)).lower()
    return "-".join(re.sub(r"[^a-z0-9]+", " ", text).split())


def _written_spans(text: str, tokens: list[str]) -> list[tuple[int, int]] | None:
    """(start, end) in `text` of each folded token, or None when they cannot be aligned."""
    spans = []
    for m in re.finditer(r"[^\W_]+", text or ""):
        spans += [(m.start(), m.end())] * len(fold(m.group()).split())
    return spans if len(spans) == len(tokens) else None


class Gazetteer:
    """An in-memory index: folded name -> [(record, how it matched)]."""

    def __init__(self, records: list[PlaceRecord], names: dict[str, list[tuple[PlaceRecord, str]]]):
        self._by_key = {r.key: r for r in records}
        self._index = names
        self._keys = list(names)

    # -- loading -------------------------------------------------------------------
    @classmethod
    def load(cls, data_dir: Path = DATA_DIR) -> "Gazetteer":
        data_dir = Path(data_dir)
        records: dict[str, PlaceRecord] = {}
        names_of: dict[str, list[tuple[str, str]]] = {}  # key -> [(name, how it matches)]

        def put(rec: PlaceRecord, names: list[tuple[str, str]]) -> None:
            records[rec.key] = rec
            names_of.setdefault(rec.key, []).extend(names)

        with open(data_dir / "admin_units.csv", newline="", encoding="utf-8") as f:
            for row in csv.DictReader(f):
                if row["in_scope_east"] != "yes":
                    continue
                adm2 = row["level"] == "2"
                rec = PlaceRecord(
                    key=row["pcode"], name=row["name"], level="adm2" if adm2 else "adm1",
                    admin1_pcode=row["adm1_pcode"], admin1_name=row["adm1_name"],
                    admin2_pcode=row["pcode"] if adm2 else None, admin2_name=row["name"] if adm2 else None,
                    lat=_float(row["label_lat"]) or _float(row["centroid_lat"]),
                    lon=_float(row["label_lon"]) or _float(row["centroid_lon"]),
                    population=0, source="OCHA/RGC COD-AB via HDX")
                put(rec, [(rec.name, "name")])
        with open(data_dir / "localities.csv", newline="", encoding="utf-8") as f:
            for row in csv.DictReader(f):
                rec = PlaceRecord(
                    key="gn:" + row["geonameid"], name=row["name"], level="locality",
                    admin1_pcode=row["adm1_pcode"], admin1_name=row["adm1_name"],
                    admin2_pcode=row["adm2_pcode"] or None, admin2_name=row["adm2_name"] or None,
                    lat=_float(row["lat"]), lon=_float(row["lon"]),
                    population=int(row["population"] or 0), source="GeoNames")
                put(rec, [(rec.name, "name")] + [(alt, "alt") for alt in filter(None, row["alt_names"].split("|"))])
        added = data_dir / "added_places.csv"
        if added.exists():
            with open(added, newline="", encoding="utf-8") as f:
                for row in csv.DictReader(f):
                    rec = PlaceRecord(
                        key="x:" + row["slug"], name=row["name"], level="locality",
                        admin1_pcode=row["admin1_pcode"], admin1_name=row["admin1_name"],
                        admin2_pcode=row["admin2_pcode"] or None, admin2_name=row["admin2_name"] or None,
                        lat=_float(row["lat"]), lon=_float(row["lon"]), population=0,
                        source=row["source"] or "added by project")
                    put(rec, [(rec.name, "name")] + [(alt, "alt") for alt in filter(None, row["alt_names"].split("|"))])
        key_places = data_dir / "key_places.csv"  # a row whose locality the data lacks refuses to load
        if key_places.exists():
            cls._load_key_places(key_places, data_dir, records, put)
        aliases_of: dict[str, PlaceRecord] = {}
        aliases = data_dir / "aliases.csv"
        if aliases.exists():
            with open(aliases, newline="", encoding="utf-8") as f:
                for row in csv.DictReader(f):
                    target = records.get(row["target_key"])
                    if target is None:  # an alias must never point at an invented key
                        raise ValueError(f"aliases.csv: unknown target_key {row['target_key']!r}")
                    aliases_of[fold(row["alias"])] = target
        names: dict[str, list[tuple[PlaceRecord, str]]] = {}
        for key, rec in records.items():
            for name, kind in names_of[key]:
                folded = fold(name)
                if folded and all(r.key != key for r, _ in names.get(folded, ())):
                    names.setdefault(folded, []).append((rec, kind))
        for folded, target in aliases_of.items():
            names[folded] = [(target, "alias")]  # an alias replaces whatever else the same words would match
        return cls(list(records.values()), names)

    @staticmethod
    def _load_key_places(path: Path, data_dir: Path, records: dict, put) -> None:
        """Key places override the record they match (a GeoNames locality, or an added place
        of the same slug): display name, territory, source; their coordinates when the source
        states them, else the matched point if it lies within KEY_POINT_TOLERANCE_KM of one of
        their territories (a far point is dropped: empty is honest)."""
        territories = None
        with open(path, newline="", encoding="utf-8") as f:
            for line, row in enumerate(csv.DictReader(f), 2):
                codes = tuple(filter(None, (c.strip() for c in row["admin2_pcodes"].split(";"))))
                units = [records.get(c) for c in codes]
                province = records.get(row["admin1_pcode"])
                if (province is None or province.level != "adm1" or not codes
                        or any(u is None or u.level != "adm2" or u.admin1_pcode != province.key for u in units)):
                    raise ValueError(f"key_places.csv, line {line}: unknown or inconsistent p-codes")
                key = "gn:" + row["geonameid"] if row["geonameid"] else "x:" + slug(row["name"])
                base = records.get(key)
                if row["geonameid"] and base is None:
                    raise ValueError(f"key_places.csv, line {line}: no locality gn:{row['geonameid']}")
                lat, lon = _float(row["lat"]), _float(row["lon"])
                if lat is None and base is not None and base.lat is not None:
                    if territories is None:
                        territories = _territories(data_dir)
                    distances = [territories.distance_km(base.lat, base.lon, c) for c in codes] if territories else []
                    distances = [d for d in distances if d is not None]
                    if not distances or min(distances) <= KEY_POINT_TOLERANCE_KM:
                        lat, lon = base.lat, base.lon
                rec = PlaceRecord(
                    key=key, name=row["name"], level="locality",
                    admin1_pcode=province.key, admin1_name=province.name,
                    admin2_pcode=codes[0], admin2_name=units[0].name, lat=lat, lon=lon,
                    population=base.population if base else 0, source=row["source"],
                    prominent=True, admin2_pcodes=codes, kind=row["kind"])
                put(rec, [(row["name"], "name")] + [(a.strip(), "alt") for a in row["aliases"].split(";") if a.strip()])

    # -- queries -------------------------------------------------------------------
    def get(self, key: str | None) -> PlaceRecord | None:
        return self._by_key.get(key) if key else None

    def __len__(self) -> int:
        return len(self._by_key)

    def _entries(self, folded: str) -> list[tuple[PlaceRecord, str]]:
        entries = self._index.get(folded, [])
        return sorted(entries, key=lambda e: (_KIND_RANK[e[1]], _LEVEL_RANK[e[0].level],
                                              -e[0].population, e[0].key))

    def lookup(self, name: str) -> list[PlaceRecord]:
        """Every place whose name, variant or alias equals `name` once folded; best first."""
        return [r for r, _ in self._entries(fold(name))]

    def resolve(self, name: str, near_admin2: str | None = None) -> Resolution:
        """Resolve an answer to "where?": exact words first (so aliases such as
        "territoire de Beni" keep their meaning), then without filler words, then a
        scan for a place inside the answer (where a territory named beside it, as in
        "Kibumba Nyiragongo" or "Sake territoire de Masisi", qualifies it), then
        typo-tolerant matching, which is never trusted alone: it returns "ambiguous" so
        the reporter confirms."""
        folded = fold(name)
        if not folded:
            return UNKNOWN
        if folded in self._index:
            return self._decide(folded, near_admin2, written=(name or "").strip())
        core = " ".join(w for w in folded.split() if w not in FILLER)
        if core in self._index:
            return self._decide(core, near_admin2, written=(name or "").strip())
        inside = self.find_in_text(name, near_admin2)
        if inside.status != "unknown":
            return inside
        return self._fuzzy(core or folded, near_admin2, written=(name or "").strip())

    def find_in_text(self, text: str, near_admin2: str | None = None) -> Resolution:
        """The place named in a whole message: the longest n-gram (1-4 words) that is a
        place. Common words that happen to be village names are skipped, and a single
        word needs 3 letters or more. A locality qualified by a territory or province
        named elsewhere in the text ("Pinga/Walikale", "Kibumba Nyiragongo") wins over the
        territory itself. Then longer matches win; ties go to a word after a locative
        ("a", "kwa", "na"...), then to a decided place over an ambiguous one, then to the
        first."""
        tokens = fold(text).split()
        matches = []  # (n, i, key)
        for n in range(min(MAX_NGRAM, len(tokens)), 0, -1):
            for i in range(len(tokens) - n + 1):
                gram = tokens[i:i + n]
                if n == 1 and (gram[0] in STOPWORDS or len(gram[0]) < 3 or gram[0].isdigit()):
                    continue
                if n > 1 and (all(w in STOPWORDS for w in gram) or gram[0] in LOCATIVES
                              or gram[-1] in ("na", "ya", "wa", "de", "a")):
                    continue
                key = " ".join(gram)
                if key in self._index:
                    matches.append((n, i, key))
        if not matches:
            return UNKNOWN
        # territories and provinces named in the text: they may qualify another name
        units = [(n, i, rec.key) for n, i, key in matches
                 for rec in (self._entries(key)[0][0],) if rec.level != "locality"]
        spans = _written_spans(text, tokens)
        best, best_score = None, None
        for n, i, key in matches:
            qualifiers = tuple(code for n2, i2, code in units if i2 + n2 <= i or i + n <= i2)
            written = text[spans[i][0]:spans[i + n - 1][1]] if spans else key
            res = self._decide(key, near_admin2, qualifiers, written=written)
            qualified = (res.status == "found" and res.place.level == "locality"
                         and any(res.place.within(c) for c in qualifiers))
            locative = i > 0 and tokens[i - 1] in LOCATIVES
            score = (qualified, n, locative, res.status == "found", -i)
            if best_score is None or score > best_score:
                best, best_score = res, score
        return best

    # -- policy --------------------------------------------------------------------
    def _decide(self, folded: str, near: str | None, qualifiers: tuple[str, ...] = (),
                written: str = "") -> Resolution:
        written = written or folded
        entries = self._entries(folded)
        if not entries:
            return Resolution("unknown", None, (), folded)

        def found(rec: PlaceRecord) -> Resolution:
            return Resolution("found", rec, (rec,), folded, written)

        if entries[0][1] == "alias":
            return found(entries[0][0])
        admins = [r for r, _ in entries if r.level != "locality"]
        localities = self._dedupe(entries)
        if qualifiers:  # "Kibumba Nyiragongo": the place of that name in the unit named beside it
            qualified = [r for r in localities if any(r.within(c) for c in qualifiers)]
            if len(qualified) == 1:
                return found(qualified[0])
            if qualified:
                localities = qualified
        if admins:
            unit = admins[0]
            # a namesake village in the reporter's own territory beats a distant unit
            near_locs = [r for r in localities if near and r.within(near) and not r.within(unit.key)]
            if near_locs and not unit.within(near) and not (unit.level == "adm1" and near.startswith(unit.key)):
                return found(near_locs[0])
            return found(unit)
        if len(localities) == 1:
            return found(localities[0])
        if near:  # the reporter's usual area decides between namesakes, key places included
            near_locs = [r for r in localities if r.within(near)]
            near_keys = [r for r in near_locs if r.prominent]
            if len(near_locs) == 1 or len(near_keys) == 1:
                return found(near_keys[0] if len(near_keys) == 1 else near_locs[0])
            if near_locs:
                localities = near_locs
        prominent = [r for r in localities if r.prominent]
        if len(prominent) == 1:  # a well-known town beats its namesake villages
            return found(prominent[0])
        ranked = sorted(prominent or localities,
                        key=lambda r: (-r.population, r.admin1_pcode or "", r.admin2_pcode or ""))
        top, second = ranked[0], ranked[1]
        if not prominent and top.population >= 1000 and top.population > 10 * second.population:
            return found(top)
        return Resolution("ambiguous", None, tuple(ranked[:MAX_CANDIDATES]), folded, written)

    @staticmethod
    def _dedupe(entries: list[tuple[PlaceRecord, str]]) -> list[PlaceRecord]:
        """Several GeoNames points with one name in one territory are taken to be one
        place (duplicates are common); keep the key place, then the most populous, then the main-name match,
        then the oldest record, so the choice is stable."""
        best: dict[str | None, tuple] = {}
        for rec, kind in entries:
            if rec.level != "locality":
                continue
            gid = int(rec.key[3:]) if rec.key.startswith("gn:") and rec.key[3:].isdigit() else 0
            rank = (not rec.prominent, -rec.population, _KIND_RANK[kind], gid)
            if rec.admin2_pcode not in best or rank < best[rec.admin2_pcode][0]:
                best[rec.admin2_pcode] = (rank, rec)
        return [rec for _, rec in sorted(best.values(), key=lambda v: v[0])]

    def _fuzzy(self, folded: str, near: str | None, written: str = "") -> Resolution:
        """Close spellings ("Butembu", "Rutshru"): offered as a choice, never decided."""
        if len(folded) < 5:
            return Resolution("unknown", None, (), folded)
        hits = process.extract(folded, self._keys, scorer=fuzz.ratio, score_cutoff=85, limit=MAX_CANDIDATES)
        seen: dict[str, PlaceRecord] = {}
        for key, _score, _ in hits:
            res = self._decide(key, near)
            for rec in (res.place,) if res.place else res.candidates:
                seen.setdefault(rec.key, rec)
        if not seen:
            return Resolution("unknown", None, (), folded)
        return Resolution("ambiguous", None, tuple(list(seen.values())[:MAX_CANDIDATES]), folded, written or folded)


def _territories(data_dir: Path):
    """The territory outlines for the key places' point check (None when not shipped)."""
    from bot.gazetteer_import import Territories  # imported here: that module imports this one
    path = next((p for p in (data_dir / "boundaries_adm2.geojson", DATA_DIR / "boundaries_adm2.geojson")
                 if p.exists()), None)
    return Territories(path) if path else None


@lru_cache(maxsize=1)
def default_gazetteer() -> Gazetteer:
    """The gazetteer in use, loaded once per process: PLACES_DIR when set (data loaded
    with `alerte places import-...`), else the one shipped in data/places."""
    return Gazetteer.load(Path(os.environ.get("PLACES_DIR") or DATA_DIR))
