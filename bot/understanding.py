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

from bot import keywords, language as langid, perpetrators
from bot.categories import BY_CODE, code_for_intent
from bot.parsing import PeopleCount, When, parse_people, parse_when
from bot.places import FILLER, Gazetteer, Resolution, default_gazetteer, fold

PUBLIC_INTENTS = ("report_alert", "greet", "help", "opt_out", "opt_in", "choose_language",
                  "affirm", "deny", "out_of_scope")
MAX_NLU_CHARS = 1600  # one long (10-part) SMS: Rasa reads at most this; the whole text is stored
# Below this confidence a report intent does not decide the category on its own.
CATEGORY_MIN_CONFIDENCE = 0.5
UNIDENTIFIED = perpetrators.UNIDENTIFIED
# A restricted category (sexual violence) is filed from words only on strong evidence:
# one of its own words in the message, or a model this sure. Otherwise the category is
# left empty and the conversation asks it ("mobulu makasi", heavy unrest, is not rape).
RESTRICTED_MIN_CONFIDENCE = 0.95
RESTRICTED_EVIDENCE = {
    "SEXUAL_VIOLENCE": re.compile(
        r"(?<![a-z0-9])("
        r"[a-z]{0,3}viol(s|e|es|ee|ees|er|ait|aient|aki|aka|i|a)?"  # viol, violee, ko-violer, ba-violaki
        r"|sexuel(le|les|s)?|vbg|vsbg"
        r"|(ku|a|wa|ba|u|m|tu|ni|ha)?(li|me|na|ta|si|ka)?(m|mu|wa|ba)?bak(a|wa|iwa|aji)"
        # ku-baka, wa-me-baka, ba-me-bakwa (Congolese ba-), wa-me-wa-baka, a-li-bakwa, u-bakaji
        r"|najisi|kunajisi|ngono|kijinsia"
        r"|[a-z]{0,3}bebis(a|i|aki|ami|ama) (ba|ya )?(basi|mwasi|mama|bamama|bana|mwana|bilenge|elenge|bango|ye)"
        r"|kosangisa nzoto"  # ko-bebisa basi: spoil (rape) women; bebisa ndako is damage
        r")(?![a-z0-9])"),
}


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
        if self.place.status != "unknown":  # the place as the reporter wrote it
            alert["place_text"] = self.place.written or self.place.text
        if self.place.status == "ambiguous":  # the conversation would ask: say between what
            alert["candidates"] = [{"name": c.name, "admin2": c.admin2_name, "pcode": c.location()["pcode"]}
                                   for c in self.place.candidates]
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
    if category and not strong_enough(category, confidence if code_for_intent(raw) == category else 0.0, text):
        category = None  # the conversation asks instead of filing a restricted category
    lang = langid.choose(text, stated=stated_language, previous=previous_language, intent=raw)
    if command and command.intent == keywords.LANGUAGE and command.language:
        lang = command.language
    gaz = gazetteer or default_gazetteer()
    place = gaz.find_in_text(text, near_admin2=near_admin2) if not command else Resolution("unknown", None, (), "")
    if not command and only_a_place(text, place, gaz):
        intent, category = "report_alert", None  # "Rubaya": a report starts, and asks what happened
    return Understanding(
        text=text, language=lang, intent=intent, raw_intent=raw, confidence=confidence,
        category=category, place=place,
        people=None if command else parse_people(text),
        when=None if command else parse_when(text, now),
        perpetrator=None if command else perpetrators.choose(parse.get("entities"), text), command=command,
    )


def strong_enough(category: str, confidence: float, text: str) -> bool:
    """Whether words may file this category: always, unless it is restricted; then
    only with its own words in the message or a model at least this sure."""
    if not BY_CODE[category].restricted:
        return True
    evidence = RESTRICTED_EVIDENCE.get(category)
    return confidence >= RESTRICTED_MIN_CONFIDENCE or bool(evidence and evidence.search(fold(text)))


def only_a_place(text: str, place: Resolution, gaz: Gazetteer) -> bool:
    """A message that is a place name and nothing else ("Rubaya", "a Kibumba Nyiragongo")."""
    if place.status == "unknown":
        return False
    rest = fold(text).split()
    for word in fold(place.written or place.text).split():
        if word in rest:
            rest.remove(word)
    def unit(word: str) -> bool:  # a territory or province qualifying the place (exact name only)
        return any(r.level != "locality" for r in gaz.lookup(word))
    return all(w in FILLER or unit(w) for w in rest)


def understand(text: str, engine, **kwargs) -> Understanding:
    """Understand a message as the conversation would (the engine is bot.engine.Engine)."""
    parse = None if keywords.match(text) else engine.parse(for_nlu(text))
    return interpret(text, parse, **kwargs)
