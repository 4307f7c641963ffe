"""Counts of people and times, read from reporters' words in French, Swahili and Lingala.

Why hand-written rules: reports are short, unaccented and mixed-language ("watoto
watatu", "5 morts", "bato mitano", "hier soir", "saa nane"), and no offline library
reads Congolese Swahili or Lingala numbers and times. The rules are conservative: a
number in a long message counts only when it stands right next to a word for people,
so years, hours, phone numbers and "nyumba tatu" (three houses) are not taken as victims.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

EAST = ZoneInfo("Africa/Lubumbashi")  # eastern DRC, +02:00 all year: the one definition


def _norm(text: str) -> list[str]:
    """Tokens: lower case, no accents, apostrophes and hyphens split, "?" kept apart."""
    text = unicodedata.normalize("NFKD", (text or "").replace("ɛ", "e").replace("ɔ", "o"))
    text = "".join(c for c in text if not unicodedata.combining(c)).lower()
    text = re.sub(r"[’'`\-_,;!.()]+", " ", text).replace("?", " ? ")
    return re.findall(r"\d+[h:/]\d*(?:/\d+)?|\d+|[a-z]+|\?", text)


# ---------------------------------------------------------------- people counts

@dataclass(frozen=True)
class PeopleCount:
    number: int | None  # None with many=False means "the reporter does not know"
    many: bool


# value of each number word; MULT_BEFORE words multiply the unit that follows (Swahili
# "mia tatu" = 300, Lingala "nkama mibale" = 200, "ntuku misato" = 30).
NUMBERS = {
    # French
    "zero": 0, "un": 1, "une": 1, "deux": 2, "trois": 3, "quatre": 4, "cinq": 5, "six": 6, "sept": 7,
    "huit": 8, "neuf": 9, "dix": 10, "onze": 11, "douze": 12, "treize": 13, "quatorze": 14, "quinze": 15,
    "seize": 16, "vingt": 20, "vingts": 20, "trente": 30, "quarante": 40, "cinquante": 50, "soixante": 60,
    "cent": 100, "cents": 100,
    # Swahili (with the wa- forms used for people)
    "sifuri": 0, "moja": 1, "mmoja": 1, "mbili": 2, "wawili": 2, "pili": 2, "tatu": 3, "watatu": 3,
    "nne": 4, "wanne": 4, "tano": 5, "watano": 5, "sita": 6, "saba": 7, "nane": 8, "wanane": 8,
    "tisa": 9, "kenda": 9, "kumi": 10, "ishirini": 20, "thelathini": 30, "arobaini": 40, "hamsini": 50,
    "sitini": 60, "sabini": 70, "themanini": 80, "tisini": 90, "mia": 100,
    # Lingala
    "moko": 1, "mibale": 2, "mibali": 2, "babale": 2, "misato": 3, "misatu": 3, "basato": 3,
    "minei": 4, "mitano": 5, "motoba": 6, "nsambo": 7, "sambo": 7, "mwambe": 8, "mwambi": 8,
    "libwa": 9, "zomi": 10, "ntuku": 10, "nkama": 100,
}
MULT_BEFORE = {"mia", "nkama", "ntuku"}
CONNECTORS = {"na", "et", "ya"}
MANY = {"plusieurs", "beaucoup", "bcp", "nombreux", "nombreuses", "wengi", "nyingi", "mingi", "ebele", "bebele"}
UNKNOWN_PHRASES = ("je sais pas", "je ne sais pas", "sais pas", "jsp", "inconnu", "on ne sait pas",
                   "pas connu", "aucune idee", "sijui", "sijuwi", "hatujui", "haijulikani",
                   "nayebi te", "toyebi te", "ayebani te", "eyebani te")
ZERO_PHRASES = ("personne", "aucun", "aucune", "aucun mort", "pas de mort", "pas de morts", "zero", "sifuri",
                "hakuna", "hakuna mtu", "hamna", "hakuna hata mmoja", "hata mmoja", "moto te", "moto moko te",
                "ata moto moko te", "ata moko te", "moko te", "0")
PEOPLE = set("""personne personnes pers gens morts mort tues tue tuees blesses blesse enfants enfant femmes femme
hommes homme civils civil victimes victime otages otage enleves enleve kidnappes deplaces menages familles
filles fille garcons garcon eleves cadavres corps deces
watu mtu watoto mtoto wanawake mwanamke wanaume mwanaume wasichana msichana vijana kijana raia wakimbizi
wamekufa waliokufa wameuawa waliouawa maiti majeruhi wazee familia wanafunzi wametekwa walitekwa
wamejeruhiwa wameumia wamebebwa wamebakwa walibakwa
bantu muntu batoto bamama bamekufa baliokufa bameuawa baliouawa bamejeruhiwa bameumia bametekwa
bamebebwa bamebakwa
bato moto bana mwana basi mwasi mibali mobali bakufi babomami bilenge
""".split()) | set("""
cultivateurs cultivateur agriculteurs agriculteur paysans paysan eleveurs eleveur pecheurs pecheur
commercants commercant motards motard chauffeurs chauffeur passagers voyageurs villageois habitants
etudiants etudiant enseignants enseignant infirmiers infirmier fideles jeunes vieillards bebes
refugies travailleurs creuseurs orpailleurs chasseurs bergers mamans papas
wakulima mkulima wafugaji mfugaji wavuvi mvuvi wafanyabiashara mfanyabiashara madereva dereva
abiria wasafiri wanakijiji wenyeji wakazi walimu mwalimu waumini wagonjwa wachimbaji wachungaji
wazazi akina kaya
balimi molimi babokoli bateki moteki bamotari bashoferi bapaya bakristo bambuta bamama batata
mabota libota bana kelasi bakimi
""".split())
# Words naming the perpetrators after a people word and its count ("trois hommes armes",
# "wanaume wawili wenye silaha", "mibali mibale ya mandoki"): then the count is not of victims.
ARMED_AFTER = ("arme", "armes", "en armes", "en tenue", "wenye silaha", "wenye bunduki", "ya mandoki",
               "ya bibundeli", "ya bitumba", "ya basoda")
# Words between a people word and its count ("wakimbizi karibu 500", "bato bakimi pene ya 500",
# "deplaces environ 300"): looked through when the count comes after the people word.
APPROX = set("""environ pres de d plus moins que au a peu presque quelque
karibu takriban zaidi kama hivi kiasi ya pene koleka mbala""".split())
# people words that name the perpetrators when followed by these ("hommes armes", "watu wenye silaha")
ARMED_NEXT = {"arme", "armes", "wenye", "ya", "bitumba"}
# words that may surround a bare number in a short answer ("environ 20", "kama watu 10")
AROUND_COUNT = set("""environ pres de du a au moins plus que ou peut etre il y ont ete sont est en tout total
kama karibu takriban labda ni wako wapo wa na ya pene mbala to bazali ezali ba ata""".split())
NOT_COUNT_AFTER = {"h", "heure", "heures", "hr", "hrs", "min", "minutes", "ans", "an", "km", "kg", "fc",
                   "francs", "dollars", "usd", "jours", "siku", "mois", "novembre"}
NOT_COUNT_BEFORE = {"saa", "ngonga", "tarehe", "le", "numero", "no", "nambari"}


def _read_number(tokens: list[str], i: int) -> tuple[int, int] | None:
    """The number expression starting at tokens[i]: (value, index after it), or None."""
    tok = tokens[i]
    if tok.isdigit():
        return (int(tok), i + 1) if len(tok) <= 3 else None
    if tok not in NUMBERS:
        return None
    value, pending, j = 0, None, i
    while j < len(tokens):
        tok = tokens[j]
        if tok in CONNECTORS and value and j + 1 < len(tokens) and tokens[j + 1] in NUMBERS:
            j += 1
            continue
        if tok not in NUMBERS:
            break
        v = NUMBERS[tok]
        if tok in ("cent", "cents"):
            value = (value or 1) * 100
        elif tok in ("vingt", "vingts") and j > i and tokens[j - 1] == "quatre":
            value += 76  # quatre-vingt: the 4 already added becomes 80
        elif tok in MULT_BEFORE:
            value += v
            pending = v
        elif pending and v < 10:
            value += pending * (v - 1)
            pending = None
        else:
            value += v
            pending = None
        j += 1
    return value, j


def _is_count(tokens: list[str], i: int, j: int) -> bool:
    """False for hours, dates, ages and money around the number."""
    if j < len(tokens) and tokens[j] in NOT_COUNT_AFTER:
        return False
    before = tokens[max(0, i - 2):i]
    return not any(b in NOT_COUNT_BEFORE for b in before[-1:]) and "saa" not in before and "ngonga" not in before


def _has_phrase(tokens: list[str], phrases) -> bool:
    joined = " " + " ".join(tokens) + " "
    return any(" " + p + " " in joined for p in phrases)


def _is_people_word(tokens: list[str], k: int) -> bool:
    if not 0 <= k < len(tokens) or tokens[k] not in PEOPLE:
        return False
    nxt = tokens[k + 1] if k + 1 < len(tokens) else ""
    if nxt == "ya" and tokens[k] in ("bato", "moto", "mibali", "mobali"):  # "bato ya mboka" are villagers
        return not _armed_at(tokens, k + 1)
    return not (nxt in ARMED_NEXT and tokens[k] in ("hommes", "homme", "watu", "bato", "mtu", "moto"))


def _armed_at(tokens: list[str], k: int) -> bool:
    """True if the words from tokens[k] say "armed" ("armes", "wenye silaha", "ya mandoki")."""
    ahead = " ".join(tokens[k:k + 2])
    return any(ahead == a or ahead.startswith(a + " ") for a in ARMED_AFTER)


def _counted_people(tokens: list[str], start: int, end: int) -> bool:
    """A number tokens[start:end] counts people: a people word right before or after it
    ("5 cultivateurs", "watoto watatu"), or before it across approximation words and one
    verb ("wakimbizi karibu 500", "bato bakimi pene ya 500"); never the armed men
    themselves ("2 hommes armes", "wanaume wawili wenye silaha")."""
    if _is_people_word(tokens, end):
        return not _armed_at(tokens, end + 1)
    if _is_people_word(tokens, start - 1):
        return not _armed_at(tokens, end)
    k, skipped_verb = start - 1, False
    while k >= 0 and start - k <= 4:
        if tokens[k] in APPROX:
            k -= 1
            continue
        if _is_people_word(tokens, k):
            return k < start - 1 and not _armed_at(tokens, end)
        if skipped_verb or k == start - 1:
            return False
        skipped_verb = True  # one word (a verb) between the people word and "pene ya 500"
        k -= 1
    return False


def parse_people(text: str) -> PeopleCount | None:
    """How many people a report or an answer speaks of.

    PeopleCount(n, False) for a number, (None, True) for "many", (None, False) when
    the reporter says they do not know, and None when the text says nothing of a count.
    """
    tokens = _norm(text)
    if not tokens:
        return None
    if tokens == ["?"] or _has_phrase(tokens, UNKNOWN_PHRASES):
        return PeopleCount(None, False)
    tokens = [t for t in tokens if t != "?"]
    numbers = []  # (value, start, end)
    i = 0
    while i < len(tokens):
        found = _read_number(tokens, i)
        if found and _is_count(tokens, i, found[1]):
            numbers.append((found[0], i, found[1]))
            i = found[1]
        else:
            i += 1
    # a count next to a word for people: "watoto watatu", "5 personnes", "bato mitano"
    for value, start, end in numbers:
        if _counted_people(tokens, start, end):
            if value == 1 and tokens[end:end + 1] == ["te"]:
                return PeopleCount(0, False)  # Lingala "moto moko te": nobody
            return PeopleCount(value, False)
    short = len(tokens) <= 6
    if short and len(numbers) == 1:  # an answer to "how many?": "3", "environ 20", "ishirini na tano"
        value, start, end = numbers[0]
        if all(t in AROUND_COUNT or t in PEOPLE for t in tokens[:start] + tokens[end:]):
            return PeopleCount(value, False)
    for k, tok in enumerate(tokens):
        if tok in MANY and (short or any(_is_people_word(tokens, m) for m in range(k - 2, k + 3))):
            return PeopleCount(None, True)
    if _has_phrase(tokens, ("moto moko te", "moto te", "ata moko te", "hakuna mtu", "hakuna hata mmoja",
                            "aucun mort", "pas de mort", "pas de morts", "personne n")):
        return PeopleCount(0, False)
    if short and _has_phrase(tokens, ZERO_PHRASES):
        return PeopleCount(0, False)
    return None


# ---------------------------------------------------------------- times

@dataclass(frozen=True)
class When:
    at: datetime  # aware, in Africa/Lubumbashi
    text: str  # the words that gave it
    precision: str  # moment | part_of_day | day | unknown


NOW_WORDS = ("sasa hivi", "maintenant", "en ce moment", "actuellement", "sikoyo", "sikawa", "now", "sasa")
DAY_WORDS = (  # longest first
    ("avant hier", -2), ("lobi eleki", -2), ("lobi elekaki", -2), ("juzi", -2),
    ("aujourd hui", 0), ("aujourdhui", 0), ("auj", 0), ("ajd", 0), ("leo", 0), ("lelo", 0),
    ("hier", -1), ("jana", -1), ("lobi", -1),
)
PARTS = (  # (phrase, part)
    ("apres midi", "afternoon"), ("aprem", "afternoon"), ("mchana", "afternoon"), ("na midi", "midday"),
    ("midi", "midday"), ("matin", "morning"), ("matinee", "morning"), ("asubuhi", "morning"),
    ("ntongo", "morning"), ("soir", "evening"), ("soiree", "evening"), ("jioni", "evening"),
    ("pokwa", "evening"), ("nuit", "night"), ("usiku", "night"), ("butu", "night"),
)
PART_HOUR = {"morning": 7, "midday": 12, "afternoon": 15, "evening": 19, "night": 23}
WEEKDAYS = {  # Monday = 0
    "lundi": 0, "mardi": 1, "mercredi": 2, "jeudi": 3, "vendredi": 4, "samedi": 5, "dimanche": 6,
    "jumatatu": 0, "jumanne": 1, "jumatano": 2, "alhamisi": 3, "ijumaa": 4, "jumamosi": 5, "jumapili": 6,
    "mokolo ya yambo": 0, "mokolo mwa yambo": 0, "mokolo ya mibale": 1, "mokolo mwa mibale": 1,
    "mokolo ya misato": 2, "mokolo mwa misato": 2, "mokolo ya minei": 3, "mokolo mwa minei": 3,
    "mokolo ya mitano": 4, "mokolo mwa mitano": 4, "mposo": 5, "eyenga": 6, "lomingo": 6,
}
MONTHS = {"janvier": 1, "janv": 1, "fevrier": 2, "fev": 2, "mars": 3, "avril": 4, "avr": 4, "mai": 5,
          "juin": 6, "juillet": 7, "juil": 7, "aout": 8, "septembre": 9, "sept": 9, "sep": 9, "octobre": 10,
          "oct": 10, "novembre": 11, "nov": 11, "decembre": 12, "dec": 12}


def _find(joined: str, phrase: str) -> bool:
    return f" {phrase} " in joined


def _swahili_hour(n: int, part: str | None) -> int:
    """Swahili time counts from 6 o'clock: saa moja = 7:00, saa nane = 14:00, saa moja usiku = 19:00."""
    if part == "night" or (part == "evening" and n <= 6):
        return (n + 18) % 24
    if part == "morning" and n == 12:
        return 6
    return (n + 6) % 24


def _explicit_time(tokens: list[str], part: str | None) -> tuple[int, int, str] | None:
    """(hour, minute, words) for "14h", "14h30", "14:30", "a 5 heures", "saa nane", "ngonga ya mitano"."""
    for k, tok in enumerate(tokens):
        m = re.fullmatch(r"(\d{1,2})[h:](\d{2})?", tok)
        if m and int(m.group(1)) < 24:
            hour, minute = int(m.group(1)), int(m.group(2) or 0)
            if part in ("afternoon", "evening", "night") and hour < 12 and not (part == "night" and hour < 5):
                hour += 12
            return hour, minute, tok
        if tok.isdigit() and k + 1 < len(tokens) and tokens[k + 1] in ("h", "heure", "heures") and int(tok) < 24:
            hour = int(tok) + (12 if part in ("afternoon", "evening") and int(tok) < 12 else 0)
            return hour, 0, f"{tok} {tokens[k + 1]}"
        if tok in ("saa", "ngonga") and k + 1 < len(tokens):
            start = k + 2 if tokens[k + 1] == "ya" else k + 1
            if start < len(tokens):
                found = _read_number(tokens, start)
                if found and 1 <= found[0] <= 24:
                    n, words = found[0], " ".join(tokens[k:found[1]])
                    if n > 12:
                        return n % 24, 0, words
                    if tok == "saa":
                        return _swahili_hour(n, part), 0, words
                    return n + (12 if part in ("afternoon", "evening") and n < 12 else 0), 0, words
    return None


def _explicit_date(tokens: list[str], local: datetime) -> tuple[datetime, str] | None:
    for k, tok in enumerate(tokens):
        m = re.fullmatch(r"(\d{1,2})/(\d{1,2})(?:/(\d{2,4}))?", tok)
        day = month = year = None
        if m:
            day, month = int(m.group(1)), int(m.group(2))
            year = int(m.group(3)) if m.group(3) else None
            words = tok
        elif (tok.isdigit() or tok in ("premier", "1er")) and k + 1 < len(tokens) and tokens[k + 1] in MONTHS:
            day, month = (int(tok) if tok.isdigit() else 1), MONTHS[tokens[k + 1]]
            words = f"{tok} {tokens[k + 1]}"
        elif tok in ("tarehe", "le", "mokolo") and k + 1 < len(tokens):
            # a day of this month: "tarehe 12", "le 12" (not "le 12 personnes"), "mokolo ya 12"
            start = k + 2 if tok == "mokolo" and tokens[k + 1] == "ya" else k + 1
            nxt = tokens[start + 1] if start + 1 < len(tokens) else ""
            if (start < len(tokens) and tokens[start].isdigit() and 1 <= int(tokens[start]) <= 31
                    and (tok == "tarehe" or not _is_people_word(tokens, start + 1))
                    and nxt not in NOT_COUNT_AFTER):
                day, month = int(tokens[start]), local.month
                words = " ".join(tokens[k:start + 1])
                try:
                    at = local.replace(day=day)
                except ValueError:
                    at = None
                if at is None or at.date() > local.date():  # a day still to come: last month's
                    prev = local.replace(day=1) - timedelta(days=1)
                    month, year = prev.month, prev.year
        if day is None:
            continue
        if year is not None and year < 100:
            year += 2000
        try:
            at = local.replace(year=year or local.year, month=month, day=day)
        except ValueError:
            continue
        if year is None and at.date() > local.date():
            at = at.replace(year=at.year - 1)
        return at, words
    return None


def _days_ago(tokens: list[str]) -> tuple[int, str] | None:
    """"il y a 3 jours", "siku tatu zilizopita", "mikolo misato eleki": (days, words)."""
    for k, tok in enumerate(tokens):
        if tok in ("siku", "mikolo") and k + 1 < len(tokens):
            found = _read_number(tokens, k + 1)
            if found and found[1] < len(tokens) and tokens[found[1]] in (
                    "zilizopita", "zimepita", "iliyopita", "eleki", "elekaki", "esili"):
                return found[0], " ".join(tokens[k:found[1] + 1])
        if tok in ("jour", "jours") and k >= 2:
            for start in range(max(0, k - 4), k):
                found = _read_number(tokens, start)
                if found and found[1] == k and tokens[start - 1:start] == ["a"]:
                    return found[0], " ".join(tokens[start - 1:k + 1])
    return None


def parse_when(text: str, now: datetime) -> When | None:
    """When the event happened, relative to `now`; None if the text gives no time.

    Never in the future: an hour later than now today means yesterday, "cette nuit"
    is the latest night already begun. Digits alone are menu answers, not times.
    """
    tokens = [t for t in _norm(text) if t != "?"]
    if not tokens or all(t.isdigit() for t in tokens):
        return None
    local = now.astimezone(EAST) if now.tzinfo else now.replace(tzinfo=EAST)
    joined = " " + " ".join(tokens) + " "
    words: list[str] = []
    day, day_explicit = 0, False
    date = _explicit_date(tokens, local)
    if date:
        base, w = date
        words.append(w)
        day_explicit = True
    else:
        base = local
        ago = _days_ago(tokens)
        if ago and 0 < ago[0] <= 60:
            day, day_explicit = -ago[0], True
            words.append(ago[1])
        for phrase, offset in DAY_WORDS if not ago else ():
            if _find(joined, phrase):
                day, day_explicit = offset, True
                words.append(phrase)
                joined = joined.replace(f" {phrase} ", " # ")
                break
        for phrase, weekday in sorted(WEEKDAYS.items(), key=lambda kv: -len(kv[0])):
            if not day_explicit and _find(joined, phrase):
                day, day_explicit = -((local.weekday() - weekday) % 7), True
                words.append(phrase)
                break
    part = None
    for phrase, name in PARTS:
        if _find(joined, phrase):
            part = name
            words.append(phrase)
            break
    time = _explicit_time(tokens, part)
    if time:
        words.append(time[2])
    if not words:
        for phrase in NOW_WORDS:
            if _find(joined, phrase):
                return When(local, phrase, "moment")
        return None
    start = (base + timedelta(days=day)).replace(minute=0, second=0, microsecond=0)
    if time:
        at = start.replace(hour=time[0], minute=time[1])
        if not day_explicit and at > local:
            at -= timedelta(days=1)
        return When(at, " ".join(words), "moment")
    if part:
        if day_explicit and (day != 0 or date) and part in ("evening", "night"):
            return When(start.replace(hour=21), " ".join(words), "part_of_day")
        at = start.replace(hour=PART_HOUR[part])
        if part == "night" and at > local:
            at -= timedelta(days=1)  # the night just past
        elif at > local:
            at = local.replace(second=0, microsecond=0)  # "ce soir" said at 18:00: not in the future
        return When(at, " ".join(words), "part_of_day")
    return When(start.replace(hour=12), " ".join(words), "day")
