"""The SMS sign-up for safety broadcasts: join word, consent, place, language.

Channel-neutral and storage-free: ``start`` and ``answer`` return a ``Step`` whose
``state`` is a plain JSON-serialisable dict the service keeps between messages
(``None``: the sign-up ended), and reply payloads the channel renders.

The dialogue (message ids of bot/messages.py)::

    JIUNGE  -> subscribe_consent        what they get, what we keep; 1 agree, 2 refuse
    1       -> subscribe_place          which village or town?
    Kalonge -> ask_place_choice         numbered namesakes, with their territory
    2       -> subscribe_language       1 Francais 2 Kiswahili 3 Lingala
    2       -> subscribed               in the chosen language, with the place; result set

and, on the way: ``subscribe_refused`` (2 to the consent), ``invalid_choice`` before a
question asked again, ``subscribe_place_unknown`` (a big town near you) then
``subscribe_place_area`` (your territory or province) for places the gazetteer does
not know, ``subscribe_ended`` when the tries run out (MAX_TRIES).

A message that is not an answer (a report, "watu wenye silaha wamefika Kamango"; STOP;
HELP) is handed back with ``passthrough``: the service gives it to the normal
conversation. After STOP the sign-up has ended (state None); otherwise the state is kept
as it was. A language word switches the language and asks the same question again; a
join word starts over.

State keys: ``step`` (consent | place | language), ``language``, ``tries`` (failed
answers to the current question), ``candidates`` (place keys of the menu shown),
``written`` (the name those candidates are for), ``place_key`` (the place chosen).
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

from bot import keywords, perpetrators
from bot.answers import NO, YES
from bot.gsm7 import safe_text, segments
from bot.languages import DEFAULT_LANGUAGE, LANGUAGES, NATIVE_NAMES
from bot.messages import render_payload
from bot.parsing import NUMBERS
from bot.places import FILLER, Gazetteer, PlaceRecord, default_gazetteer
from bot.summary import place_label

CONSENT, PLACE, LANGUAGE = "consent", "place", "language"
STEPS = (CONSENT, PLACE, LANGUAGE)
KEYS = frozenset({"step", "language", "tries", "candidates", "written", "place_key"})
# Failed answers before the sign-up ends politely, per question.
MAX_TRIES = {CONSENT: 3, PLACE: 4, LANGUAGE: 3}
MAX_CANDIDATES = 5
# Longer than this, a message is not an answer to the sign-up (it goes to the conversation).
MAX_ANSWER_CHARS = 120
MAX_ANSWER_WORDS = {CONSENT: 4, PLACE: 6, LANGUAGE: 4}

# Consent besides 1/2 and the yes/no words of bot.answers ("I agree", "I refuse").
AGREE = {"agree", "i agree", "accepte", "j accepte", "accepter", "nakubali", "ninakubali", "nandimi",
         "na ndimi"}
REFUSE = {"refuse", "i refuse", "je refuse", "refuser", "pas d accord", "sikubali", "sitaki", "naboyi",
          "na boyi", "nalingi te"}
# Words around a place in "where do you live?" ("j'habite a Beni", "naishi Goma", "nafandaka Bunia").
HOME_WORDS = frozenset("""
je j moi habite habitons vis vivons suis reside i live in my
mimi naishi ninaishi tunaishi nakaa ninakaa tunakaa niko tuko nipo ni
ngai biso nafandaka tofandaka nafandi navandaka tovandaka nazali tozali
""".split())
# Words that make a short message a report, not an answer (DOMAIN.md's starter vocabulary).
REPORT_WORDS = frozenset("""
tuer tue tues tuee tuees morts mort blesse blesses attaque attaques attaquent combat combats tirs tir
armes arme rebelles militaires soldats enleve enleves enlevement kidnappe viol viole violee pille
pillage piller vole brule brulent fuient fuite deplaces menace menaces tract haine barriere arrives
kuua wameua wameuawa wamekufa ameuawa amekufa kushambulia wameshambulia shambulio vita mapigano silaha
wanamgambo waasi askari wanajeshi risasi kuteka wameteka wametekwa nyara kubaka amebakwa wamebaka kupora
wamepora kuiba wameiba kuchoma wamechoma kukimbia wamekimbia wakimbizi vitisho chuki kizuizi wamefika
wameingia wamekuja
koboma babomi babomami bakufi kobundisa kobunda etumba mandoki bibundeli basoda masasi kokanga makasi
kosangisa kobebisa koyiba kotumba kokima bakimi kobangisa koyina bakoti bayei
""".split())


@dataclass(frozen=True)
class Step:
    state: dict | None  # keep this for the next message; None: the sign-up ended
    payloads: list[dict]  # what to answer
    result: dict | None = None  # on success: {"language", "place_key", "place_name"}
    refused: bool = False  # the person said no to consent
    passthrough: bool = False  # not an answer: the service gives the message to the conversation


def start(language: str | None) -> Step:
    """The first question, after a join word (``language``: the word's, None for French)."""
    lang = language if language in LANGUAGES else DEFAULT_LANGUAGE
    state = {"step": CONSENT, "language": lang, "tries": 0, "candidates": [], "written": None,
             "place_key": None}
    return Step(state, [_say("subscribe_consent", lang)])


def answer(state: dict, text: str, gazetteer: Gazetteer | None = None) -> Step:
    """The next step of the sign-up after the person's message ``text``."""
    if not _valid(state):  # a state this module did not write: start nothing from it
        return Step(None, [_say("subscribe_ended", DEFAULT_LANGUAGE)])
    state = dict(state)
    raw = safe_text(text if isinstance(text, str) else "").strip()
    if len(raw) > MAX_ANSWER_CHARS:
        return _passthrough(state)
    words = _words(raw)
    step = state["step"]
    if step == CONSENT and _consent(raw, words) is not None:
        return _on_consent(state, _consent(raw, words))
    if step == LANGUAGE and _language(words):
        return _on_language(state, _language(words), gazetteer or default_gazetteer())
    command = keywords.match(raw)
    if command is not None:
        return _on_command(state, command, gazetteer)
    if len(words) > MAX_ANSWER_WORDS[step] or _is_report(raw, words):
        return _passthrough(state)
    if step == PLACE:
        return _on_place(state, raw, words, gazetteer or default_gazetteer())
    return _failed(state, gazetteer)


# --- the steps -------------------------------------------------------------------------

def _on_consent(state: dict, agreed: bool) -> Step:
    lang = state["language"]
    if not agreed:
        return Step(None, [_say("subscribe_refused", lang)], refused=True)
    state.update(step=PLACE, tries=0)
    return Step(state, [_say("subscribe_place", lang)])


def _on_place(state: dict, raw: str, words: list[str], gazetteer: Gazetteer) -> Step:
    n = _number(words)
    if n is not None and (state["candidates"] or words[0].isdigit()):  # "Saba" may be a village
        keys = state["candidates"]
        if keys and 1 <= n <= len(keys) and gazetteer.get(keys[n - 1]):
            return _chosen(state, gazetteer.get(keys[n - 1]))
        return _failed(state, gazetteer)
    state.update(candidates=[], written=None)  # a new name: the menu shown no longer applies
    resolution = gazetteer.resolve(_without_home_words(raw))
    if resolution.status == "found":
        return _chosen(state, resolution.place)
    if resolution.status == "ambiguous":
        state.update(candidates=[c.key for c in resolution.candidates[:MAX_CANDIDATES]],
                     written=(resolution.written or raw)[:40])
        choice = _choice(state, gazetteer)
        if choice:
            return Step(state, [choice])
        state.update(candidates=[], written=None)
    return _failed(state, gazetteer)


def _chosen(state: dict, place: PlaceRecord) -> Step:
    state.update(step=LANGUAGE, tries=0, candidates=[], written=None, place_key=place.key)
    return Step(state, [_language_menu(state["language"])])


def _on_language(state: dict, lang: str, gazetteer: Gazetteer) -> Step:
    place = gazetteer.get(state["place_key"])
    if place is None:  # the gazetteer changed under a waiting sign-up: ask the place again
        state.update(step=PLACE, tries=0, language=lang, place_key=None)
        return Step(state, [_say("subscribe_place", lang)])
    result = {"language": lang, "place_key": place.key, "place_name": place.name}
    return Step(None, [_say("subscribed", lang, {"place": place_label(place)})], result=result)


def _on_command(state: dict, command: keywords.Command, gazetteer: Gazetteer | None) -> Step:
    if command.intent == keywords.OPT_OUT:  # STOP ends everything: the service opts them out
        return Step(None, [], passthrough=True)
    if command.intent == keywords.JOIN:
        return start(command.language or state["language"])
    if command.intent == keywords.LANGUAGE:
        state["language"] = command.language
        return Step(state, _question(state, gazetteer))
    return _passthrough(state)  # HELP, START: the service answers them


def _failed(state: dict, gazetteer: Gazetteer | None) -> Step:
    """A wrong answer: say so and ask again, or end once the tries are used up."""
    state["tries"] += 1
    lang, step = state["language"], state["step"]
    if state["tries"] >= MAX_TRIES[step]:
        return Step(None, [_say("subscribe_ended", lang)])
    if step == PLACE and not state["candidates"]:
        hint = "subscribe_place_unknown" if state["tries"] == 1 else "subscribe_place_area"
        return Step(state, [_say(hint, lang)])
    return Step(state, [_say("invalid_choice", lang)] + _question(state, gazetteer))


def _question(state: dict, gazetteer: Gazetteer | None) -> list[dict]:
    """The current question again, in the state's language."""
    lang, step = state["language"], state["step"]
    if step == CONSENT:
        return [_say("subscribe_consent", lang)]
    if step == LANGUAGE:
        return [_language_menu(lang)]
    if state["candidates"]:
        choice = _choice(state, gazetteer or default_gazetteer())
        if choice:
            return [choice]
    return [_say("subscribe_place", lang)]


def _passthrough(state: dict) -> Step:
    return Step(state, [], passthrough=True)


# --- payloads --------------------------------------------------------------------------

def _say(msg: str, lang: str, args: dict | None = None, options: list | None = None) -> dict:
    payload = {"msg": msg, "lang": lang}
    if args:
        payload["args"] = args
    if options:
        payload["options"] = options
    return payload


def _language_menu(lang: str) -> dict:
    return _say("subscribe_language", lang, options=[[i + 1, NATIVE_NAMES[code]] for i, code in enumerate(LANGUAGES)])


def _choice(state: dict, gazetteer: Gazetteer) -> dict | None:
    """ "Which Kalonge? 1 Kalonge (Walikale) 2 ...": as many candidates as one SMS holds
    (None if none of them is in the gazetteer any more)."""
    places = [p for p in map(gazetteer.get, state["candidates"]) if p is not None]
    labels = _labels(places)
    args = {"name": state["written"] or ""}
    payload = None
    while labels:
        payload = _say("ask_place_choice", state["language"], args, [[i + 1, label] for i, label in enumerate(labels)])
        if segments(render_payload(payload, state["language"])) == 1:
            break
        labels.pop()
    return payload


def _labels(places: list[PlaceRecord]) -> list[str]:
    """Names that tell namesakes apart: a village with its territory, a territory with its
    province; the province too where two labels would still be the same."""
    def short(p: PlaceRecord) -> str:
        if p.level == "adm2" and p.admin1_name:
            return f"{p.name} ({p.admin1_name})"
        return place_label(p)

    labels = [short(p) for p in places]
    out = []
    for p, label in zip(places, labels):
        if labels.count(label) > 1 and p.level == "locality" and p.admin1_name:
            label = f"{p.name} ({p.admin2_name or '?'}, {p.admin1_name})"
        out.append(label)
    return out


# --- reading answers ---------------------------------------------------------------------

def _fold(text: str) -> str:
    decomposed = unicodedata.normalize("NFKD", text)
    plain = "".join(ch for ch in decomposed if not unicodedata.combining(ch)).lower()
    return " ".join(re.sub(r"[^a-z0-9]+", " ", plain).split())


def _words(text: str) -> list[str]:
    return _fold(text).split()


_YES = {_fold(w) for w in YES | AGREE} - {"2"}
_NO = {_fold(w) for w in NO | REFUSE} - {"1"}
_YES_WORDS = {w for w in _YES if " " not in w}
_NO_WORDS = {w for w in _NO if " " not in w}


def _number(words: list[str]) -> int | None:
    """ "1", "1.", "(1)", " 1 ", "moja", "moko": the number of a menu, else None."""
    if len(words) != 1:
        return None
    word = words[0]
    if word.isdigit() and len(word) <= 2:
        return int(word)
    return NUMBERS.get(word) or None


def _consent(raw: str, words: list[str]) -> bool | None:
    """1 or a yes ("oui", "ndiyo", "nakubali"), 2 or a no; a short reply with only yes words
    or only no words in it ("oui merci", "hapana sitaki") counts too; else None."""
    n, phrase = _number(words), " ".join(words)
    if n in (1, 2):
        return n == 1
    if phrase in _YES:
        return True
    if phrase in _NO:
        return False
    if len(words) > MAX_ANSWER_WORDS[CONSENT] or _is_report(raw, words):
        return None
    yes, no = any(w in _YES_WORDS for w in words), any(w in _NO_WORDS for w in words)
    return yes if yes != no else None


def _language(words: list[str]) -> str | None:
    n = _number(words)
    if n is not None:
        return LANGUAGES[n - 1] if 1 <= n <= len(LANGUAGES) else None
    return keywords.LANGUAGE_WORDS.get(keywords.fold(" ".join(words))) if len(words) == 1 else None


def _without_home_words(raw: str) -> str:
    """ "j'habite a Beni", "mimi naishi kijiji cha Pinga" -> "Beni", "Pinga": the name as written."""
    tokens = raw.split()
    while tokens and all(w in HOME_WORDS or w in FILLER for w in _words(tokens[0])):
        tokens.pop(0)
    return " ".join(tokens) or raw


def _is_report(raw: str, words: list[str]) -> bool:
    """A short message that tells of an event ("tirs a Beni", "ADF Kamango") is a report."""
    return any(w in REPORT_WORDS for w in words) or bool(perpetrators.in_text(raw))


def _valid(state) -> bool:
    return (isinstance(state, dict) and set(state) >= KEYS and state["step"] in STEPS
            and state["language"] in LANGUAGES and isinstance(state["tries"], int)
            and isinstance(state["candidates"], list) and all(isinstance(k, str) for k in state["candidates"]))

