"""The voice line's keypad dialogue (IVR): the alert flow of flows/ as spoken menus.

Pure and channel-neutral: no storage, no clock, no provider. The service keeps
``state`` (a JSON-serialisable dict) between webhooks, turns each webhook into an Event,
and renders the returned Step (what to play, what to collect) as TwiML::

    step = start(flow, "sw")                  # or fallback_record(lang) when it cannot serve
    step = advance(flow, step.state, Pressed("3"))
    ...                                       # step.submit: create the alert, then
    step = submitted(step.state, "482913")    # reads the reference digit by digit

The questions are the flow's: its fields in order, their options and labels, only_for
and ask_for. A question id Q is spoken as the catalog's "voice.Q" when there is one (the
SMS text says "write" or "reply with a number"), else as Q. Free text cannot be typed on
a keypad: the recorded message at the end carries it. Values are never inside a prompt:
"Attack: press 1" is [category.ATTACK, voice.press, voice.digit.1], a place is
"place.<p-code>" (spoken as the gazetteer writes it), a count or a reference is read
digit by digit. On every menu 0 repeats and * goes back one step; a silence repeats the
question once, then records "unknown" and moves on (the language menu, the confirmation
and the correction menu end the call politely instead).

A sexual-violence report is read back like any other, as the SMS summary shows it: the
caller chose it from a menu that said every label aloud; its restriction (never
broadcast, never in public exports) is the service's, on the stored alert.
"""

from __future__ import annotations

import functools
import json
import re
from dataclasses import dataclass
from typing import NamedTuple

from bot.flow import Field, Flow
from bot.languages import DEFAULT_LANGUAGE, LANGUAGES, normalise
from bot.messages import MESSAGES, text
from bot.places import Gazetteer, PlaceRecord, default_gazetteer

KEYS_PER_PAGE = 9           # every choice one key press: 1-9 (0 repeats, * goes back)
REPEAT, BACK = "0", "*"
MENU_TIMEOUT = 6            # seconds to wait for a key once a menu has been said
NUMBER_TIMEOUT = 10
NUMBER_MAX_DIGITS = 5       # bot.summary.PEOPLE_MAX has five
RECORD_SECONDS = {"place-name": 15, "message": 60, "fallback": 120}
RECORD_SILENCE = 5          # seconds of silence that end a recording
SILENCES = 2                # the second silence in a row moves on (or ends the call)
HISTORY_MAX = 30            # steps * can go back: keeps the state small in a long call
PLACE_PREFIX = "place."
DIGIT_PREFIX = "voice.digit."
NOT_UNDERSTOOD, YES, UNKNOWN, NOBODY = "not_understood", "option.yes", "value.unknown", "value.none"
WELCOME = ("voice.welcome", "voice.keys_help")
RECORD_PROMPTS = {"place-name": "voice.record_place", "message": "voice.record_message",
                  "fallback": "voice.fallback"}
ENDS_ON_SILENCE = ("language", "confirm", "correct", "fallback")
ENDED = ("done", "hangup", "no-answer", "fallback-done")
MESSAGE_KEY = "message_recording"


# --- what the service renders ------------------------------------------------------

@dataclass(frozen=True)
class Piece:
    """One thing to play: a prompt (a message id, or place.<p-code>) in a language, or
    a recording the caller made in this call (its ref, as the service gave it)."""
    prompt: str | None = None
    lang: str | None = None
    recording: str | None = None


@dataclass(frozen=True)
class Gather:
    max_digits: int
    finish_on_hash: bool
    timeout: int


@dataclass(frozen=True)
class Record:
    max_seconds: int
    silence_timeout: int = RECORD_SILENCE


@dataclass(frozen=True)
class Step:
    """What to play, then what to collect (nothing once ``end``). ``submit``: the caller
    confirmed; create the alert from ``captured`` and call submitted(). ``step`` is a
    short stable name ("category-2", "province"); with ``turn`` it names the webhook."""
    step: str
    say: tuple[Piece, ...]
    collect: Gather | Record | None
    state: dict
    end: bool = False
    submit: bool = False

    @property
    def captured(self) -> dict:
        """The alert so far, as slot values (a dropped call saves it as a partial alert)."""
        return self.state["captured"]

    @property
    def language(self) -> str | None:
        return self.state["language"]

    @property
    def turn(self) -> int:
        return self.state["turn"]


# --- what the service tells us -------------------------------------------------------

@dataclass(frozen=True)
class Pressed:
    keys: str  # as gathered; a trailing "#" is ignored


@dataclass(frozen=True)
class Silence:
    """No key before the timeout, or nothing recorded."""


@dataclass(frozen=True)
class Recorded:
    ref: str
    seconds: int


@dataclass(frozen=True)
class HungUp:
    pass


Event = Pressed | Silence | Recorded | HungUp


class Choice(NamedTuple):
    label: str  # prompt id
    value: str
    lang: str | None = None  # said in this language rather than the call's


# --- the call --------------------------------------------------------------------------

def start(flow: Flow, language: str | None, gazetteer: Gazetteer | None = None) -> Step:
    """The first step: the language menu, unless the caller's language is known."""
    state = _new_state("language", normalise(language), {})
    if state["language"] is None:
        return _ask(flow, gazetteer, state)
    return _go(flow, gazetteer, state, _next(flow, state, None), WELCOME)


def advance(flow: Flow, state: dict, event: Event, gazetteer: Gazetteer | None = None) -> Step:
    """The step after ``event``; ``state`` is left as it was (the Step has the new one)."""
    state = _copy(state)
    state["turn"] += 1
    name = state["step"]
    base, page = _split(name)
    if name in ENDED or name == "submit":  # a late webhook: nothing changes
        return Step(name, (), None, state, end=name != "submit", submit=name == "submit")
    if isinstance(event, HungUp):
        return _end(state, "hangup", ())
    keys = event.keys.rstrip("#") if isinstance(event, Pressed) else None
    if keys == "" or isinstance(event, Silence) or (isinstance(event, Recorded) and _empty(event)):
        return _silent(flow, gazetteer, state)
    if keys == BACK:
        return _back(flow, gazetteer, state)
    kind = _kind(flow, base)
    if keys == REPEAT and kind != "number":
        return _ask(flow, gazetteer, state)
    if kind == "record" and isinstance(event, Recorded):
        if base == "fallback":
            state["captured"][MESSAGE_KEY] = event.ref
            return _end(state, "fallback-done", ("voice.fallback_thanks",))
        _capture(flow, state, base, event.ref)
        return _forward(flow, gazetteer, state)
    if kind == "number" and keys and re.fullmatch(r"[0-9]{1,%d}" % NUMBER_MAX_DIGITS, keys):
        _capture(flow, state, base, int(keys))
        return _forward(flow, gazetteer, state)
    if kind == "menu" and keys and len(keys) == 1 and keys.isdigit():
        shown, more = _page(_menu(flow, gazetteer, state, base)[1], page)
        if more and int(keys) == KEYS_PER_PAGE:
            _remember(state)
            return _enter(flow, gazetteer, state, f"{base}-{page + 1}")
        if 1 <= int(keys) <= len(shown):
            return _choose(flow, gazetteer, state, base, shown[int(keys) - 1].value)
    return _ask(flow, gazetteer, state, (NOT_UNDERSTOOD,))


def submitted(state: dict, reference: str | None) -> Step:
    """After the service created the alert: thanks, the reference said twice digit by
    digit (None: the alert is kept but has no number yet), goodbye."""
    if reference is not None and not re.fullmatch(r"[0-9]+", reference):
        raise ValueError("a reference read on the phone must be digits")
    state = _copy(state)
    state["turn"] += 1
    ids = ["voice.thanks"]
    if reference:
        number = [DIGIT_PREFIX + d for d in reference]
        ids += ["voice.reference_is", *number, "voice.reference_again", *number]
    return _end(state, "done", ids)


def fallback_record(language: str | None, captured: dict | None = None) -> Step:
    """When the line cannot run the dialogue: record the report straight away (in the
    three languages when the caller's is unknown); advance() then thanks and ends."""
    return _ask(None, None, _new_state("fallback", normalise(language), captured or {}))


def _new_state(step: str, lang: str | None, captured: dict) -> dict:
    """history: the steps before this one (for *); redo: the steps a correction asks
    again; province: the one chosen, for the territory menu."""
    return {"step": step, "language": lang, "turn": 0, "silences": 0, "history": [], "redo": None,
            "province": None, "captured": {**captured, **({"language": lang} if lang else {})}}


# --- the prompts -------------------------------------------------------------------------

def prompt_ids(flow: Flow, gazetteer: Gazetteer) -> set[str]:
    """Every prompt the line can play, in any language (each needs a recording)."""
    ids = {m for m in MESSAGES if m.startswith("voice.")} | {NOT_UNDERSTOOD, YES, UNKNOWN, NOBODY}
    for f in _asked(flow):
        ids.add("field." + f.name)
        ids |= {o.label for o in f.options}
        if f.type != "place":
            ids |= {_voice(f.ask)} | {_voice(m) for _, m in f.ask_for}
    ids |= {PLACE_PREFIX + r.key for r in _units(gazetteer, "adm1") + _units(gazetteer, "adm2")}
    return ids


def prompt_text(prompt_id: str, language: str, gazetteer: Gazetteer | None = None) -> str:
    """What a prompt says in a language: the catalog's text, or a place's name as written."""
    if prompt_id.startswith(PLACE_PREFIX):
        record = (gazetteer or default_gazetteer()).get(prompt_id[len(PLACE_PREFIX):])
        if record is None:
            raise KeyError(prompt_id)
        return record.name
    if prompt_id not in MESSAGES:
        raise KeyError(prompt_id)
    return text(prompt_id, language)


def pages(count: int, keys: int = KEYS_PER_PAGE) -> list[range]:
    """Split ``count`` choices so each is one key: when they do not fit, every page but
    the last has keys - 1 choices and its last key says "more"."""
    if count <= keys:
        return [range(count)]
    out, first = [], 0
    while count - first > keys:
        out.append(range(first, first + keys - 1))
        first += keys - 1
    return out + [range(first, count)]


# --- the form: which steps, in which order ---------------------------------------------

def _asked(flow: Flow) -> list[Field]:
    """The fields a caller answers on the keypad (free text is in the recorded message)."""
    return [f for f in flow.fields if f.type != "text"]


def _form(flow: Flow) -> list[str]:
    steps = []
    for f in _asked(flow):
        steps += ["province", "territory", "place-name"] if f.type == "place" else [f.name]
    return steps + ["message"]


def _field(flow: Flow, base: str) -> Field | None:
    if base in ("province", "territory", "place-name"):
        return next(f for f in flow.fields if f.type == "place")
    return next((f for f in flow.fields if f.name == base), None)


def _key(flow: Flow, base: str) -> str:
    """Where a step's answer goes in ``captured``."""
    if base == "place-name":
        return _field(flow, base).name + "_recording"
    if base == "message":
        return MESSAGE_KEY
    return _field(flow, base).name


def _kind(flow: Flow | None, base: str) -> str:
    if base in RECORD_PROMPTS:
        return "record"
    field = _field(flow, base) if flow else None
    return "number" if field is not None and field.type == "count" else "menu"


def _category(flow: Flow, captured: dict) -> str | None:
    return next((captured.get(f.name) for f in flow.fields if f.type == "category"), None)


def _applies(flow: Flow, state: dict, base: str) -> bool:
    """Whether a step makes sense with the answers so far (the count after a kind of
    report in only_for, the territories of a chosen province)."""
    field = _field(flow, base)
    if field is not None and not field.applies_to(_category(flow, state["captured"])):
        return False
    return base != "territory" or bool(state["province"])


def _needed(flow: Flow, state: dict, base: str) -> bool:
    if not _applies(flow, state, base):
        return False
    redo = state["redo"]  # None: the form in order; a list: only these (and what is missing)
    return redo is None or base in redo or _key(flow, base) not in state["captured"]


def _next(flow: Flow, state: dict, after: str | None) -> str:
    form = _form(flow)
    rest = form[form.index(after) + 1:] if after in form else form
    return next((base for base in rest if _needed(flow, state, base)), "confirm")


def _redo(flow: Flow, value: str) -> list[str] | None:
    """The steps a choice of the correction menu asks again (None: all of them)."""
    if value == "all":
        return None
    return [base for base in _form(flow) if value in (base, getattr(_field(flow, base), "name", None))]


# --- the menus ----------------------------------------------------------------------------

def _units(gazetteer: Gazetteer | None, level: str, province: str | None = None) -> list[PlaceRecord]:
    """The gazetteer's provinces (adm1), or territories (adm2) of a province, by p-code."""
    return [r for r in _admin_units(gazetteer or default_gazetteer())
            if r.level == level and (province is None or r.admin1_pcode == province)]


@functools.lru_cache(maxsize=4)
def _admin_units(gazetteer: Gazetteer) -> tuple[PlaceRecord, ...]:
    records = gazetteer._by_key.values()  # bot.places has no public iterator over its records
    return tuple(sorted((r for r in records if r.level in ("adm1", "adm2")), key=lambda r: r.key))


def _menu(flow: Flow, gazetteer: Gazetteer | None, state: dict, base: str) -> tuple[tuple[str, ...], list[Choice]]:
    """(question prompts, choices) of a menu step."""
    if base == "language":
        return (), [Choice("voice.language", lang, lang) for lang in LANGUAGES]
    if base == "province":
        return ("voice.ask_province",), [Choice(PLACE_PREFIX + r.key, r.key) for r in _units(gazetteer, "adm1")]
    if base == "territory":
        units = _units(gazetteer, "adm2", state["province"])
        return ("voice.ask_territory",), [Choice(PLACE_PREFIX + r.key, r.key) for r in units]
    if base == "confirm":
        return ("voice.confirm",), [Choice(YES, "yes"), Choice("voice.change", "change")]
    if base == "correct":
        category = _category(flow, state["captured"])
        fields = [Choice("field." + f.name, f.name) for f in _asked(flow) if f.applies_to(category)]
        return ("voice.ask_correction",), fields + [Choice("voice.field.message", "message"),
                                                    Choice("voice.all", "all")]
    field = flow.field(base)
    return (_voice(field.ask),), [Choice(o.label, o.value) for o in field.options]


def _page(choices: list[Choice], page: int) -> tuple[list[Choice], bool]:
    split = pages(len(choices))
    return [choices[i] for i in split[page - 1]], page < len(split)


def _split(name: str) -> tuple[str, int]:
    """"category-2" -> ("category", 2); "place-name" -> ("place-name", 1)."""
    base, _, page = name.rpartition("-")
    return (base, int(page)) if base and page.isdigit() else (name, 1)


def _voice(msg_id: str) -> str:
    return "voice." + msg_id if "voice." + msg_id in MESSAGES else msg_id


# --- moving through the call --------------------------------------------------------------

def _ask(flow: Flow | None, gazetteer: Gazetteer | None, state: dict, prefix=()) -> Step:
    """The current step said (again), after ``prefix`` prompts."""
    name = state["step"]
    base, page = _split(name)
    lang = state["language"] or DEFAULT_LANGUAGE
    say = _pieces(prefix, lang)
    kind = _kind(flow, base)
    if base == "fallback" and state["language"] is None:
        say += [Piece(RECORD_PROMPTS[base], each) for each in LANGUAGES]
        return Step(name, tuple(say), Record(RECORD_SECONDS[base]), state)
    if kind == "record":
        return Step(name, tuple(say + _pieces([RECORD_PROMPTS[base]], lang)), Record(RECORD_SECONDS[base]), state)
    if kind == "number":
        question = _voice(flow.field(base).question(_category(flow, state["captured"])))
        say += _pieces([question, "voice.type_number"], lang)
        return Step(name, tuple(say), Gather(NUMBER_MAX_DIGITS, True, NUMBER_TIMEOUT), state)
    if base == "confirm":
        say += _summary(flow, gazetteer, state)
    question, choices = _menu(flow, gazetteer, state, base)
    shown, more = _page(choices, page)
    say += _pieces(question, lang)
    for key, choice in enumerate(shown, 1):
        say += _choice(choice.label, key, choice.lang or lang)
    if more:
        say += _choice("voice.more", KEYS_PER_PAGE, lang)
    return Step(name, tuple(say), Gather(1, False, MENU_TIMEOUT), state)


def _enter(flow, gazetteer, state: dict, name: str, prefix=()) -> Step:
    state["step"], state["silences"] = name, 0
    return _ask(flow, gazetteer, state, prefix)


def _go(flow, gazetteer, state: dict, base: str, prefix=()) -> Step:
    """Enter a step by its base name: a menu split in pages starts at "<base>-1"."""
    split = _kind(flow, base) == "menu" and len(pages(len(_menu(flow, gazetteer, state, base)[1]))) > 1
    return _enter(flow, gazetteer, state, base + "-1" if split else base, prefix)


def _forward(flow, gazetteer, state: dict, prefix=()) -> Step:
    name = state["step"]
    _remember(state)
    return _go(flow, gazetteer, state, _next(flow, state, _split(name)[0]), prefix)


def _back(flow, gazetteer, state: dict) -> Step:
    """One step back, over the steps a changed answer made pointless since."""
    history = state["history"]
    while history and not _applies(flow, state, _split(history[-1])[0]):
        history.pop()
    if not history:
        return _ask(flow, gazetteer, state)
    return _enter(flow, gazetteer, state, history.pop())


def _silent(flow, gazetteer, state: dict) -> Step:
    state["silences"] += 1
    if state["silences"] < SILENCES:
        return _ask(flow, gazetteer, state)
    base = _split(state["step"])[0]
    if base in ENDS_ON_SILENCE:
        return _end(state, "no-answer", ("voice.no_answer",))
    _capture(flow, state, base, None)
    return _forward(flow, gazetteer, state)


def _choose(flow, gazetteer, state: dict, base: str, value: str) -> Step:
    if base == "language":
        state["language"] = state["captured"]["language"] = value
        _remember(state)
        return _go(flow, gazetteer, state, _next(flow, state, None), WELCOME)
    if base == "confirm":
        if value == "yes":
            state["step"] = "submit"
            return Step("submit", (), None, state, submit=True)
        _remember(state)
        return _enter(flow, gazetteer, state, "correct")
    if base == "correct":
        state["redo"] = _redo(flow, value)
        _remember(state)
        return _go(flow, gazetteer, state, _next(flow, state, None))
    _capture(flow, state, base, value)
    return _forward(flow, gazetteer, state)


def _capture(flow: Flow, state: dict, base: str, value) -> None:
    """Keep an answer (None: unknown) in ``captured``, as the SMS form keeps its slots."""
    captured, field, key = state["captured"], _field(flow, base), _key(flow, base)
    if base == "province":
        state["province"] = captured[key] = value
    elif base == "territory":
        captured[key] = value or state["province"]
    elif base in RECORD_PROMPTS:
        captured[key] = value
    elif field.type == "category":
        captured[key] = value or field.give_up_value
        for other in flow.fields:  # a new kind of report may make a question pointless
            if not other.applies_to(captured[key]):
                captured.pop(other.name, None)
    elif field.type == "time":
        captured[key] = {"at": None, "option": value, "text": None}  # answers.menu_time fills "at"
    elif field.type == "count":
        captured[key] = {"n": value, "many": False}
    if state["redo"] and base in state["redo"]:
        state["redo"].remove(base)


def _summary(flow: Flow, gazetteer: Gazetteer | None, state: dict) -> list[Piece]:
    """What the caller told us, read back before the confirmation (not the message)."""
    captured, lang = state["captured"], state["language"]
    say = [Piece("voice.summary", lang)]
    for f in _asked(flow):
        if not f.applies_to(_category(flow, captured)):
            continue
        value, ids = captured.get(f.name), []
        if f.type == "place":
            record = (gazetteer or default_gazetteer()).get(value)
            if record is not None:
                ids = [PLACE_PREFIX + c for c in dict.fromkeys((record.admin1_pcode, record.key)) if c]
        elif f.type == "count":
            n = (value or {}).get("n")
            ids = [] if n is None else [NOBODY] if n == 0 else [DIGIT_PREFIX + d for d in str(n)]
        else:
            chosen = value.get("option") if isinstance(value, dict) else value
            ids = [o.label for o in f.options if o.value == chosen]
        recording = captured.get(f.name + "_recording") if f.type == "place" else None
        say += _pieces(["field." + f.name] + (ids or ([] if recording else [UNKNOWN])), lang)
        say += [Piece(recording=recording)] if recording else []
    return say


def _end(state: dict, name: str, ids) -> Step:
    """The call ends: ``ids`` then goodbye, in the call's language (in each while unknown);
    after a hang-up there is nobody to hear it."""
    state["step"] = name
    langs = [state["language"]] if state["language"] else LANGUAGES
    say = () if name == "hangup" else tuple(Piece(i, lang) for lang in langs for i in (*ids, "voice.goodbye"))
    return Step(name, say, None, state, end=True)


def _remember(state: dict) -> None:
    state["history"] = (state["history"] + [state["step"]])[-HISTORY_MAX:]


def _copy(state: dict) -> dict:
    """A copy the caller's dict never sees changed; JSON, as the service keeps it."""
    return json.loads(json.dumps(state))


def _pieces(ids, lang: str) -> list[Piece]:
    return [Piece(i, lang) for i in ids]


def _choice(label: str, key: int, lang: str) -> list[Piece]:
    return _pieces([label, "voice.press", DIGIT_PREFIX + str(key)], lang)


def _empty(event: Recorded) -> bool:
    return not event.ref or event.seconds < 1
