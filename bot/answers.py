"""Reading a reporter's answer to one question of the flow, channel-neutral.

An SMS answer is text ("2", "hier soir", "Butembo"); a voice answer (later) is the
digits of a keypad menu. Both come here. Each reader returns an Answer: a slot value,
or a reason the answer could not be read (so the question is asked again).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta

from bot.flow import Field
from bot.parsing import EAST, parse_people, parse_when
from bot.places import Gazetteer
from bot.understanding import Understanding

NOT_APPLICABLE = "-"
UNKNOWN_WORDS = {"0", "?", "je ne sais pas", "sais pas", "je sais pas", "jsp", "inconnu", "aucune idee",
                 "sijui", "sijuwi", "hatujui", "haijulikani", "nayebi te", "toyebi te", "ayebani te"}
YES = {"1", "oui", "ouii", "wi", "yes", "ok", "okay", "d'accord", "dac", "c'est ca", "exact", "ndiyo",
       "ndio", "sawa", "ni kweli", "ni sawa", "iyo", "ee", "eee", "solo", "ya solo", "malamu"}
NO = {"2", "non", "no", "nan", "pas ca", "hapana", "si kweli", "apana", "te", "te ya solo", "ezali te"}


@dataclass(frozen=True)
class Answer:
    value: object = None
    error: str | None = None  # message id to send before asking again
    ask: str | None = None  # a follow-up question for the same field ("which Kibumba?")
    extra: dict | None = None  # other slots to set (candidates, pending text)

    @property
    def ok(self) -> bool:
        return self.value is not None


def number_choice(text: str) -> int | None:
    match = re.fullmatch(r"\s*(\d{1,2})\s*[.)]?\s*", text or "")
    return int(match.group(1)) if match else None


def clean(text: str) -> str:
    return re.sub(r"[^\w' ]+", " ", (text or "").lower()).strip()


def is_unknown(text: str, field: Field) -> bool:
    words = clean(text)
    return words in UNKNOWN_WORDS or (text or "").strip() in field.unknown_answers


def read_category(text: str, u: Understanding, field: Field) -> Answer:
    n = number_choice(text)
    if n is not None:
        option = field.option(n)
        return Answer(option.value) if option else Answer(error="invalid_choice")
    if u.category and u.confidence >= 0.3:
        return Answer(u.category)
    return Answer(error="not_understood")


def read_place(text: str, u: Understanding, field: Field, gazetteer: Gazetteer,
               candidates: list[str] | None, pending: str | None, near_admin2: str | None = None) -> Answer:
    n = number_choice(text)
    if candidates and n is not None:
        if 1 <= n <= len(candidates):  # place_written stays what the reporter wrote before the menu
            return Answer(candidates[n - 1], extra={"place_candidates": None, "place_pending": None})
        return Answer(error="invalid_choice", ask=field.ask_choice)
    if pending and (text or "").strip() == "0":
        return Answer("text:" + pending, extra={"place_candidates": None, "place_pending": None})
    words = (text or "").strip()
    if not words or n is not None:
        return Answer(error="not_understood")
    resolution = gazetteer.resolve(words, near_admin2=near_admin2)
    if resolution.status != "found" and u.place.status != "unknown":
        resolution = u.place  # the place was inside a longer sentence
    written = (resolution.written or words)[:80]
    if resolution.status == "found":
        return Answer(resolution.place.key, extra={"place_candidates": None, "place_pending": None,
                                                   "place_written": written})
    if resolution.status == "ambiguous":
        keys = [c.key for c in resolution.candidates][:5]
        return Answer(ask=field.ask_choice, extra={"place_candidates": keys, "place_pending": None,
                                                   "place_written": written})
    return Answer(ask=field.ask_unknown, extra={"place_pending": words[:80], "place_candidates": None})


def menu_time(value: str, now: datetime) -> dict:
    local = now.astimezone(EAST)
    today = local.replace(hour=12, minute=0, second=0, microsecond=0)
    at = {
        "now": local,
        "today": today,
        "last_night": (local - timedelta(hours=12)).replace(hour=23, minute=0, second=0, microsecond=0)
        if local.hour >= 12 else (local - timedelta(days=1)).replace(hour=23, minute=0, second=0, microsecond=0),
        "yesterday": today - timedelta(days=1),
        "earlier": None,
    }[value]
    return {"at": at.isoformat() if at else None, "option": value, "text": None}


def read_time(text: str, u: Understanding, field: Field, now: datetime) -> Answer:
    n = number_choice(text)
    if n is not None:
        option = field.option(n)
        return Answer(menu_time(option.value, now)) if option else Answer(error="invalid_choice")
    when = parse_when(text, now)
    if when:
        return Answer({"at": when.at.isoformat(), "option": None, "text": when.text})
    words = (text or "").strip()
    if is_unknown(words, field):
        return Answer({"at": None, "option": "earlier", "text": None})
    if len(words) >= 2:  # never block a reporter on a date format: keep their words
        return Answer({"at": None, "option": None, "text": words[:80]})
    return Answer(error="not_understood")


def read_count(text: str, u: Understanding, field: Field) -> Answer:
    words = (text or "").strip()
    if re.fullmatch(r"\d{1,5}", words):
        return Answer({"n": int(words), "many": False})
    if is_unknown(words, field) and words != "0":
        return Answer({"n": None, "many": False})
    count = parse_people(words)
    if count is not None:
        return Answer({"n": count.number, "many": count.many})
    return Answer(error="not_understood")


def read_text(text: str, u: Understanding, field: Field) -> Answer:
    words = (text or "").strip()
    if is_unknown(words, field):
        return Answer("")
    if u.perpetrator:
        return Answer(u.perpetrator)
    if words and not re.fullmatch(r"\d+", words):
        return Answer(words[:80])
    return Answer(error="not_understood")


def read_yes_no(text: str, u: Understanding) -> bool | None:
    words = clean(text)
    if words in YES or (u.intent == "affirm" and u.confidence >= 0.6):
        return True
    if words in NO or (u.intent == "deny" and u.confidence >= 0.6):
        return False
    return None
