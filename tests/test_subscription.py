"""The SMS sign-up for safety broadcasts (bot/subscription.py): a person sends a join
word, agrees to what we keep, names their village, chooses a language, and is
registered; the real default gazetteer resolves the places."""

from __future__ import annotations

import json
import re

import pytest

from bot import keywords, subscription
from bot.gsm7 import is_gsm7, segments
from bot.languages import LANGUAGES, NATIVE_NAMES
from bot.messages import MESSAGES, render, render_payload
from bot.places import default_gazetteer
from bot.summary import longest_place_label, place_label
from bot.subscription import Step

ALERT = "watu wenye silaha wamefika Kamango"
REPORTS = [ALERT, "Ils ont attaqué Kasindi cette nuit, 3 morts", "bato ya mandoki bakoti na Komanda",
           "tirs a Beni", "ADF Eringeti", "wameua watu"]
GARBAGE = ["", " ", "\x00\x1b\x07", "😀😀😀", "🇨🇩 ❤️", "\u202e1", "\ufeff", "x" * 5000, "1" * 5000,
           "1 " * 2500, "\ud800", "{options}", "{0}", "%s", "@ask_place", "١", "１", "0", "-1", "99999"]
# Swahili, Lingala and French join words the replies name (subscribe_refused, subscribe_ended)
JOIN_WORD = {"fr": "INSCRIPTION", "sw": "JIUNGE", "ln": "KOTA"}
STOP_WORDS = {"fr": {"STOP"}, "sw": {"ACHA", "STOP"}, "ln": {"TIKA", "STOP"}}


def gazetteer():
    return default_gazetteer()


def roundtrip(state):
    """The state as the service stores it between messages (JSON)."""
    return None if state is None else json.loads(json.dumps(state))


def talk(first: str, *replies: str) -> list[Step]:
    """A person sends the join word `first`, then each reply; every step, in order."""
    command = keywords.match(first)
    assert command is not None and command.intent == keywords.JOIN, first
    steps = [subscription.start(command.language)]
    for text in replies:
        assert steps[-1].state is not None, f"the sign-up ended before {text!r}"
        steps.append(subscription.answer(roundtrip(steps[-1].state), text, gazetteer()))
    return steps


def ids(step: Step) -> list[str]:
    return [p["msg"] for p in step.payloads]


def at(step_name: str, lang: str = "fr") -> dict:
    """A state waiting at one step of the sign-up."""
    replies = {"consent": (), "place": ("1",), "choice": ("1", "Kalonge"), "language": ("1", "Goma")}
    return talk(JOIN_WORD[lang], *replies[step_name])[-1].state


def assert_sendable(step: Step) -> None:
    for payload in step.payloads:
        assert set(payload) <= {"msg", "lang", "args", "options"}, payload
        assert payload["msg"] in MESSAGES and payload["lang"] in LANGUAGES, payload
        text = render_payload(payload, "fr")
        assert text.strip() and is_gsm7(text) and segments(text) == 1, text
        assert "{" not in text and "}" not in text, text


# --- the whole dialogue, in each language ----------------------------------------------

def test_a_swahili_person_signs_up_for_beni():
    steps = talk("JIUNGE", "ndiyo", "Beni", "2")
    assert ids(steps[0]) == ["subscribe_consent"] and steps[0].payloads[0]["lang"] == "sw"
    assert ids(steps[1]) == ["subscribe_place"]
    assert ids(steps[2]) == ["subscribe_language"]
    assert steps[2].payloads[0]["options"] == [[1, "Francais"], [2, "Kiswahili"], [3, "Lingala"]]
    done = steps[3]
    assert done.state is None and not done.refused and not done.passthrough
    beni = default_gazetteer().get(done.result["place_key"])
    assert done.result == {"language": "sw", "place_key": beni.key, "place_name": "Beni"}
    assert done.payloads == [{"msg": "subscribed", "lang": "sw", "args": {"place": "Beni"}}]
    text = render_payload(done.payloads[0], "fr")
    assert "Beni" in text and text == render("subscribed", "sw", {"place": "Beni"})
    assert "umeandikishwa" in text


def test_a_namesake_village_is_picked_by_number_with_its_territory():
    steps = talk("INSCRIPTION", "1.", "Kalonge")
    choice = steps[-1]
    assert ids(choice) == ["ask_place_choice"]
    options = choice.payloads[0]["options"]
    assert 2 <= len(options) <= subscription.MAX_CANDIDATES
    labels = [label for _, label in options]
    assert len(set(labels)) == len(labels) and all("(" in label for label in labels)  # told apart
    assert choice.payloads[0]["args"] == {"name": "Kalonge"}
    n, label = next((n, label) for n, label in options if label == "Kalonge (Walikale)")
    chosen = subscription.answer(roundtrip(choice.state), f" {n}) ", gazetteer())
    assert ids(chosen) == ["subscribe_language"]
    done = subscription.answer(roundtrip(chosen.state), "1", gazetteer())
    record = default_gazetteer().get(done.result["place_key"])
    assert place_label(record) == label and record.admin2_name == "Walikale"
    assert done.result == {"language": "fr", "place_key": record.key, "place_name": "Kalonge"}
    assert "Kalonge (Walikale)" in render_payload(done.payloads[0], "fr")


@pytest.mark.parametrize("join, consent, place, language, lang", [
    ("INSCRIPTION", "1", "Goma", "1", "fr"),
    ("s'inscrire", "Oui", "Uvira", "Francais", "fr"),
    ("jiunge", "1", "Bukavu", "2", "sw"),
    ("JIANDIKISHE", "Ndiyo", "Kitshanga", "kiswahili", "sw"),
    ("KOTA", "iyo", "Bunia", "3", "ln"),
    ("Komikomisa", "1", "Nord-Kivu", "LN", "ln"),
    ("JOIN", "1", "Masisi", "2", "sw"),  # an English word: French first, then their choice
])
def test_the_whole_dialogue_in_each_language(join, consent, place, language, lang):
    steps = talk(join, consent, place, language)
    started = keywords.match(join).language or "fr"
    for step in steps[:3]:
        assert step.state is not None and not step.passthrough and step.result is None
        assert all(p["lang"] == started for p in step.payloads)
        assert_sendable(step)
    done = steps[3]
    assert done.state is None and done.result["language"] == lang
    assert done.payloads[0]["msg"] == "subscribed" and done.payloads[0]["lang"] == lang
    record = default_gazetteer().get(done.result["place_key"])
    assert record is not None and done.result["place_name"] == record.name
    text = render_payload(done.payloads[0], "fr")
    assert record.name in text and _command_words(text) >= STOP_WORDS[lang]


@pytest.mark.parametrize("place, level", [("Nord-Kivu", "adm1"), ("Masisi", "adm2"), ("Minova", "locality"),
                                          ("j'habite à Goma", "adm2"), ("naishi kijiji cha Kamanyola", "locality")])
def test_any_level_of_place_is_accepted(place, level):
    step = talk("JIUNGE", "1", place)[-1]
    assert ids(step) == ["subscribe_language"]
    assert default_gazetteer().get(step.state["place_key"]).level == level


# --- consent ---------------------------------------------------------------------------

@pytest.mark.parametrize("join, no", [("JIUNGE", "2"), ("JIUNGE", "hapana"), ("KOTA", "te"),
                                      ("INSCRIPTION", "Non"), ("INSCRIPTION", " 2. "), ("KOTA", "naboyi")])
def test_refusing_consent_ends_the_sign_up(join, no):
    step = talk(join, no)[-1]
    lang = keywords.match(join).language
    assert step.refused and step.state is None and step.result is None and not step.passthrough
    assert step.payloads == [{"msg": "subscribe_refused", "lang": lang}]
    assert JOIN_WORD[lang] in _command_words(render_payload(step.payloads[0], "fr"))


@pytest.mark.parametrize("yes", ["1", "1.", " 1 ", "1)", "(1)", "OUI", "oui merci", "Ndiyo", "NDIO",
                                 "sawa", "iyo", "nakubali", "d'accord", "moja", "moko", "１"])
def test_agreeing_in_many_ways(yes):
    assert ids(talk("INSCRIPTION", yes)[-1]) == ["subscribe_place"]


def test_the_consent_says_what_we_keep_and_how_to_stop():
    for lang in LANGUAGES:
        text = render("subscribe_consent", lang)
        assert " 1 " in text and " 2 " in text and "STOP" in text
    assert "free" in MESSAGES["subscribe_consent"] and "nobody" in MESSAGES["subscribe_consent"]


def test_wrong_answers_to_consent_are_bounded():
    steps = talk("INSCRIPTION", "peut-etre", "3", "bof")
    assert ids(steps[1]) == ["invalid_choice", "subscribe_consent"]
    assert ids(steps[2]) == ["invalid_choice", "subscribe_consent"]
    assert steps[2].state["tries"] == 2
    assert steps[3].state is None and ids(steps[3]) == ["subscribe_ended"] and not steps[3].refused
    assert JOIN_WORD["fr"] in _command_words(render_payload(steps[3].payloads[0], "fr"))


# --- place -----------------------------------------------------------------------------

def test_an_unknown_place_twice_asks_for_a_big_town_then_the_territory():
    steps = talk("JIUNGE", "1", "Mubambiro", "Xyzzyville", "Masisi")
    assert ids(steps[2]) == ["subscribe_place_unknown"]
    assert ids(steps[3]) == ["subscribe_place_area"]
    assert ids(steps[4]) == ["subscribe_language"] and steps[4].state["place_key"] == "CD6103"


def test_place_tries_are_bounded():
    steps = talk("KOTA", "1", "Mubambiro", "Xyzzyville", "qwertyuiop", "zzzz")
    assert [ids(s) for s in steps[2:]] == [["subscribe_place_unknown"], ["subscribe_place_area"],
                                          ["subscribe_place_area"], ["subscribe_ended"]]
    assert steps[-1].state is None and steps[-1].payloads[0]["lang"] == "ln"
    assert "KOTA" in _command_words(render_payload(steps[-1].payloads[0], "fr"))


def test_a_wrong_number_in_the_place_menu_asks_again():
    state = at("choice")
    step = subscription.answer(state, "7", gazetteer())
    assert ids(step) == ["invalid_choice", "ask_place_choice"] and step.state["tries"] == 1
    assert step.state["candidates"] == state["candidates"]
    step = subscription.answer(roundtrip(step.state), "Goma", gazetteer())  # a new name instead
    assert ids(step) == ["subscribe_language"] and step.state["place_key"] == "CD6101"


def test_a_number_without_a_menu_is_not_a_place():
    step = subscription.answer(at("place"), "3", gazetteer())
    assert ids(step) == ["subscribe_place_unknown"] and step.state["place_key"] is None


def test_a_number_word_without_a_menu_is_read_as_a_name():
    sita = default_gazetteer().lookup("Sita")[0]  # "six" in Swahili, and a village
    step = subscription.answer(at("place"), "Sita", gazetteer())
    assert ids(step) == ["subscribe_language"] and step.state["place_key"] == sita.key
    step = subscription.answer(at("choice"), "sita", gazetteer())  # with a menu shown, it is a number
    assert ids(step) == ["invalid_choice", "ask_place_choice"]


def test_places_come_only_from_the_gazetteer():
    for name in ("Beni", "Kalonge", "Butembu", "Goma"):
        step = subscription.answer(at("place"), name, gazetteer())
        keys = [step.state["place_key"]] if step.state["place_key"] else step.state["candidates"]
        assert keys and all(default_gazetteer().get(k) is not None for k in keys)


def test_the_place_menu_fits_one_sms_with_the_longest_names():
    gaz = default_gazetteer()
    records = sorted(gaz._by_key.values(), key=lambda r: -len(place_label(r)))  # no public iterator
    for lang in LANGUAGES:
        state = dict(at("choice", lang), candidates=[r.key for r in records[:5]], written="W" * 40)
        step = subscription.answer(state, "9", gaz)
        assert ids(step) == ["invalid_choice", "ask_place_choice"]
        assert_sendable(step)
        assert len(step.payloads[1]["options"]) >= 1


# --- language --------------------------------------------------------------------------

@pytest.mark.parametrize("reply, lang", [("1", "fr"), ("3)", "ln"), ("Français", "fr"), ("KISWAHILI", "sw"),
                                         ("lingála", "ln"), ("SW", "sw"), ("mbili", "sw")])
def test_the_language_is_chosen_by_number_or_by_name(reply, lang):
    step = subscription.answer(at("language"), reply, gazetteer())
    assert step.result["language"] == lang and step.payloads[0]["lang"] == lang


def test_the_language_menu_names_each_language_in_itself():
    options = subscription.answer(at("place"), "Goma", gazetteer()).payloads[0]["options"]
    assert options == [[i + 1, NATIVE_NAMES[code]] for i, code in enumerate(LANGUAGES)]


def test_wrong_answers_to_the_language_are_bounded():
    steps = [subscription.answer(at("language"), "4", gazetteer())]
    assert ids(steps[0]) == ["invalid_choice", "subscribe_language"]
    for text in ("anglais", "?"):
        steps.append(subscription.answer(roundtrip(steps[-1].state), text, gazetteer()))
    assert ids(steps[-1]) == ["subscribe_ended"] and steps[-1].state is None


def test_a_language_word_switches_the_next_messages():
    step = talk("INSCRIPTION", "LN")[-1]
    assert step.payloads == [{"msg": "subscribe_consent", "lang": "ln"}]
    step = subscription.answer(roundtrip(step.state), "1", gazetteer())
    assert step.payloads == [{"msg": "subscribe_place", "lang": "ln"}]
    step = subscription.answer(roundtrip(step.state), "SW", gazetteer())  # at the place question too
    assert step.payloads == [{"msg": "subscribe_place", "lang": "sw"}]


# --- what is not an answer -------------------------------------------------------------

@pytest.mark.parametrize("where", ["consent", "place", "choice", "language"])
@pytest.mark.parametrize("report", REPORTS)
def test_a_real_alert_passes_through_and_the_sign_up_waits(where, report):
    state = at(where)
    step = subscription.answer(roundtrip(state), report, gazetteer())
    assert step.passthrough and step.payloads == [] and step.result is None
    assert step.state == state


@pytest.mark.parametrize("where", ["consent", "place", "choice", "language"])
def test_stop_ends_everything_and_goes_to_the_service(where):
    for word in ("STOP", "acha", "Tika", "ARRÊT"):
        step = subscription.answer(at(where), word, gazetteer())
        assert step.passthrough and step.state is None and step.payloads == [] and step.result is None


@pytest.mark.parametrize("where", ["consent", "place", "language"])
def test_help_passes_through_and_a_join_word_starts_again(where):
    state = at(where)
    step = subscription.answer(state, "AIDE", gazetteer())
    assert step.passthrough and step.state == state
    step = subscription.answer(state, "JIUNGE", gazetteer())
    assert step.payloads == [{"msg": "subscribe_consent", "lang": "sw"}] and step.state["step"] == "consent"


# --- garbage and stored state ----------------------------------------------------------

@pytest.mark.parametrize("where", ["consent", "place", "choice", "language"])
@pytest.mark.parametrize("text", GARBAGE)
def test_garbage_never_raises(where, text):
    step = subscription.answer(at(where), text, gazetteer())
    assert isinstance(step, Step)
    assert step.state is None or json.loads(json.dumps(step.state)) == step.state
    assert_sendable(step)


@pytest.mark.parametrize("state", [None, {}, {"step": "nowhere"}, {"step": "place", "language": "xx"},
                                   {"step": "place", "language": "fr", "tries": "2", "candidates": []},
                                   {"step": "place", "language": "fr", "tries": 0, "candidates": [7]},
                                   {"step": "consent", "language": "fr", "tries": 0},  # keys missing
                                   "consent", 42])
def test_a_state_it_did_not_write_ends_politely(state):
    step = subscription.answer(state, "1", gazetteer())
    assert step.state is None and ids(step) == ["subscribe_ended"]


def test_the_state_is_plain_json_and_carries_the_dialogue():
    for step in talk("JIUNGE", "1", "Kalonge", "2"):
        assert step.state is None or json.loads(json.dumps(step.state)) == step.state
    state = at("choice", "sw")
    assert set(state) == subscription.KEYS == {"step", "language", "tries", "candidates", "written", "place_key"}
    assert state["step"] == "place" and state["language"] == "sw" and len(state["candidates"]) >= 2


def test_start_without_a_language_is_french():
    assert subscription.start(None).payloads == [{"msg": "subscribe_consent", "lang": "fr"}]
    assert subscription.start("en").payloads[0]["lang"] == "fr"


# --- every message of the dialogue, in every language ----------------------------------

DIALOGUES = [
    ("JIUNGE", "ndiyo", "Beni", "2"), ("INSCRIPTION", "x", "1", "Kalonge", "9", "2", "5", "1"),
    ("KOTA", "1", "Mubambiro", "Xyzzyville", "Rien", "Nada"), ("JOIN", "2"), ("JOIN", "a", "b", "c"),
]


@pytest.mark.parametrize("lang", LANGUAGES)
def test_every_payload_renders_in_one_sms_in_every_language(lang):
    seen = set()
    for dialogue in DIALOGUES:
        for step in talk(*dialogue):
            for payload in step.payloads:
                payload = dict(payload, lang=lang)
                text = render_payload(payload, "fr")
                assert text.strip() and is_gsm7(text) and segments(text) == 1, text
                seen.add(payload["msg"])
    assert {"subscribe_consent", "subscribe_place", "ask_place_choice", "subscribe_place_unknown",
            "subscribe_place_area", "subscribe_language", "subscribed", "subscribe_refused",
            "subscribe_ended", "invalid_choice"} <= seen
    longest = render("subscribed", lang, {"place": longest_place_label(default_gazetteer())})
    assert segments(longest) == 1 and is_gsm7(longest), longest


@pytest.mark.parametrize("lang", LANGUAGES)
def test_the_broadcast_and_cap_texts_exist_in_every_language(lang):
    for msg_id in ("broadcast_answer_thanks", "cap.event", "cap.sender_name", "cap.all_areas"):
        text = render(msg_id, lang)
        assert text and segments(text) == 1 and text != MESSAGES[msg_id]
    assert render("cap.event", "sw") != render("cap.event", "fr")


# --- the join words --------------------------------------------------------------------

def _command_words(text: str) -> set[str]:
    return set(re.findall(r"\b[A-Z]{2,}\b", text)) - {"OK"}


def test_the_join_words_are_matched_as_lone_words():
    words = keywords.WORDS[keywords.JOIN]
    assert {"JOIN", "SUBSCRIBE", "ABONNER", "INSCRIRE", "INSCRIPTION", "JIUNGE", "JIANDIKISHE", "KOTA"} <= set(words)
    assert {lang for lang in words.values() if lang} == set(LANGUAGES)
    for word, lang in words.items():
        for written in (word, word.lower(), f" {word.title()}. ", f"{word}!"):
            assert keywords.match(written) == keywords.Command(keywords.JOIN, lang), written
    assert keywords.match("S'abonner") == keywords.Command(keywords.JOIN, "fr")
    assert keywords.match("Inscription à Beni demain") is None  # inside a sentence: not a command
    assert keywords.match("nataka kujiunga") is None


def test_the_join_words_collide_with_nothing():
    join = set(keywords.WORDS[keywords.JOIN])
    others = {w for intent, words in keywords.WORDS.items() if intent != keywords.JOIN for w in words}
    assert not join & others and not join & set(keywords.LANGUAGE_WORDS)
    gaz = default_gazetteer()
    assert all(not gaz.lookup(word) for word in join), "a join word is also a place name"


@pytest.mark.parametrize("lang", LANGUAGES)
def test_the_command_words_of_the_new_messages_are_real(lang):
    known = {w for words in keywords.WORDS.values() for w in words} | set(keywords.LANGUAGE_WORDS)
    for msg_id in ("subscribe_consent", "subscribed", "subscribe_refused", "subscribe_ended"):
        words = _command_words(render(msg_id, lang, {"place": "Beni"}))
        assert words and words <= known, f"{lang} {msg_id}: {words - known}"
    for msg_id in ("subscribe_refused", "subscribe_ended"):
        word = JOIN_WORD[lang]
        assert word in _command_words(render(msg_id, lang))
        assert keywords.match(word) == keywords.Command(keywords.JOIN, lang)
    for msg_id in ("subscribe_consent", "subscribed"):
        assert STOP_WORDS[lang] <= _command_words(render(msg_id, lang, {"place": "Beni"}))
