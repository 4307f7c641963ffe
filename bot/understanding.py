"""What a message says: one function behind the conversation and /api/v1/understand.

The order is fixed and the same everywhere: a lone command word (STOP, AIDE...) is
decided without guessing; otherwise Rasa's model gives the intent (one "report_<code>"
intent per category) and armed-group entities; the gazetteer finds the place; the
parsers find the count of people and the time. The conversation gets Rasa's parse of
the turn from the tracker; the API asks Rasa's /model/parse for it: same model, same code.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from datetime import datetime, timezone

from bot import keywords, language as langid
from bot.categories import code_for_intent
from bot.parsing import PeopleCount, When, parse_people, parse_when
from bot.places import Gazetteer, Resolution, default_gazetteer

PUBLIC_INTENTS = ("report_alert", "greet", "help", "opt_out", "opt_in", "choose_language",
                  "affirm", "deny", "out_of_scope")
MAX_NLU_CHARS = 1600  # one long (10-part) SMS: Rasa reads at most this; the whole text is stored
# Below this confidence a report intent does not decide the category on its own.
CATEGORY_MIN_CONFIDENCE = 0.5
UNIDENTIFIED = "unidentified armed men"


@dataclass(frozen=True)
class Understanding:
    text: str
    language: str
    intent: str  # public intent (PUBLIC_INTENTS)
    raw_intent: str | None  # the model's own intent name
    confidence: float
    category: str | None
    place: Resolution
    people: PeopleCount | None
    when: When | None
    perpetrator: str | None
    command: keywords.Command | None

    def as_json(self) -> dict:
        people = self.people.number if self.people and not self.people.many else None
        alert = {
            "category": self.category,
            "location": self.place.place.location() if self.place.status == "found" else None,
            "people_affected": people,
            "perpetrator": self.perpetrator,
        }
        if self.place.status == "ambiguous":  # the conversation would ask: say between what
            alert["candidates"] = [{"name": c.name, "admin2": c.admin2_name, "pcode": c.location()["pcode"]}
                                   for c in self.place.candidates]
            alert["place_text"] = self.place.written or self.place.text
        return {"language": self.language, "intent": self.intent, "alert": alert}


def for_nlu(text: str) -> str:
    """The text as Rasa gets it: lower case, no accents, no leading "/" (which would
    let a reporter force an intent), bounded length."""
    folded = unicodedata.normalize("NFKD", text or "")
    folded = "".join(ch for ch in folded if not unicodedata.combining(ch)).lower()
    folded = re.sub(r"\s+", " ", folded).strip().lstrip("/").strip()
    return folded[:MAX_NLU_CHARS]


def public_intent(raw: str | None, ranking: list[dict] | None = None) -> str:
    if raw and code_for_intent(raw):
        return "report_alert"
    if raw in PUBLIC_INTENTS:
        return raw
    for item in ranking or ():  # nlu_fallback: the best real intent
        name = item.get("name")
        if name and name != "nlu_fallback":
            return public_intent(name)
    return "out_of_scope"


def perpetrator_from(entities: list[dict]) -> str | None:
    for ent in entities or ():
        if ent.get("entity") == "armed_group" and ent.get("value"):
            return str(ent["value"])
    return None


def interpret(text: str, parse: dict | None, *, now: datetime | None = None,
              stated_language: str | None = None, previous_language: str | None = None,
              gazetteer: Gazetteer | None = None, near_admin2: str | None = None) -> Understanding:
    """Combine a Rasa parse of `text` with the command words, gazetteer and parsers."""
    now = now or datetime.now(timezone.utc)
    parse = parse or {}
    command = keywords.match(text)
    raw = (parse.get("intent") or {}).get("name")
    confidence = float((parse.get("intent") or {}).get("confidence") or 0.0)
    if command:
        intent, raw, confidence = command.intent, command.intent, 1.0
    else:
        intent = public_intent(raw, parse.get("intent_ranking"))
    category = code_for_intent(raw)
    if category is None and intent == "report_alert":
        category = next((code_for_intent(i.get("name")) for i in parse.get("intent_ranking") or ()
                         if code_for_intent(i.get("name"))), None)
    lang = langid.choose(text, stated=stated_language, previous=previous_language, intent=raw)
    if command and command.intent == keywords.LANGUAGE and command.language:
        lang = command.language
    gaz = gazetteer or default_gazetteer()
    place = gaz.find_in_text(text, near_admin2=near_admin2) if not command else Resolution("unknown", None, (), "")
    return Understanding(
        text=text, language=lang, intent=intent, raw_intent=raw, confidence=confidence,
        category=category, place=place,
        people=None if command else parse_people(text),
        when=None if command else parse_when(text, now),
        perpetrator=perpetrator_from(parse.get("entities")), command=command,
    )


def understand(text: str, engine, **kwargs) -> Understanding:
    """Understand a message as the conversation would (the engine is bot.engine.Engine)."""
    parse = None if keywords.match(text) else engine.parse(for_nlu(text))
    return interpret(text, parse, **kwargs)
