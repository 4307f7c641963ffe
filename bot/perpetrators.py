"""Who did it: the group a reporter names wins over a generic word.

The spellings live in ``nlu/data/armed_groups.yml`` (one synonym block per canonical
value), which also feeds Rasa's entity extraction. Values are of two kinds:

* **named forces**: armed groups, the army and the police by their names (ADF, M23,
  FARDC written as such, PNC...);
* **generic words**: armed men, soldiers, bandits. Soldiers are not the army: in the east
  a man in uniform may be FARDC, M23, a foreign army or a militia, so "basoda" alone is
  recorded as unidentified soldiers, never as FARDC.

"Basoda ya M23 bayei ebele na Rugari" names M23: a named force anywhere in the message
wins over a generic word, whichever the model tagged, and a spelling of a named force
written in the message is found even when the model missed it.
"""

from __future__ import annotations

import functools
import re
from pathlib import Path

import yaml

from bot.places import fold

GROUPS_FILE = Path(__file__).resolve().parent.parent / "nlu" / "data" / "armed_groups.yml"
UNIDENTIFIED = "unidentified armed men"
UNIDENTIFIED_SOLDIERS = "unidentified soldiers"
# canonical values that name no force
GENERIC = frozenset({UNIDENTIFIED, UNIDENTIFIED_SOLDIERS})


@functools.lru_cache(maxsize=1)
def spellings() -> dict[str, str]:
    """Folded spelling -> canonical value, every value's own name included."""
    doc = yaml.safe_load(GROUPS_FILE.read_text(encoding="utf-8"))
    out: dict[str, str] = {}
    for block in doc.get("nlu") or ():
        value = block.get("synonym")
        if not value:
            continue
        out[fold(value)] = value
        for line in (block.get("examples") or "").splitlines():
            line = line.strip()
            if line.startswith("- ") and fold(line[2:]):
                out[fold(line[2:])] = value
    return out


@functools.lru_cache(maxsize=1)
def _pattern() -> re.Pattern:
    words = sorted(spellings(), key=len, reverse=True)
    return re.compile(r"(?<![a-z0-9])(" + "|".join(re.escape(w) for w in words) + r")(?![a-z0-9])")


def is_named(value: str | None) -> bool:
    return bool(value) and value not in GENERIC


def canonical(value: str | None) -> str | None:
    """The canonical value of a spelling or of a value ("basoda" -> unidentified soldiers)."""
    return spellings().get(fold(value or "")) if value else None


def in_text(text: str) -> list[str]:
    """Canonical values whose spellings the text contains, in the order written."""
    found = []
    for m in _pattern().finditer(fold(text or "")):
        value = spellings()[m.group(1)]
        if value not in found:
            found.append(value)
    return found


def choose(entities: list[dict] | None, text: str = "") -> str | None:
    """The perpetrator of a message: the first named force the model tagged or the text
    spells out; else the first generic word; else None."""
    tagged = []  # only known values: a word the model tagged but no list spells is dropped
    for ent in entities or ():
        if ent.get("entity") == "armed_group" and ent.get("value"):
            value = canonical(str(ent["value"]))
            if value:
                tagged.append(value)
    candidates = tagged + in_text(text)
    named = [v for v in candidates if is_named(v)]
    if named:
        return named[0]
    return candidates[0] if candidates else None
