"""The voice line's keypad dialogue (bot/voice.py): whole calls through advance(), in
each language, with the keys a caller presses, the silences and the mistakes."""

from __future__ import annotations

import copy
import json
from collections import deque

import pytest

from bot import voice
from bot.categories import CODES, label_msgid
from bot.flow import alert_flow
from bot.languages import LANGUAGES
from bot.messages import MESSAGES
from bot.places import default_gazetteer
from bot.voice import Gather, HungUp, Piece, Pressed, Record, Recorded, Silence

FLOW = alert_flow()
GAZ = default_gazetteer()
WELCOME = ["voice.welcome", "voice.keys_help"]


def call(language, *events):
    """Start a call and play ``events`` (a str is keys pressed); every Step, in order."""
    steps = [voice.start(FLOW, language, GAZ)]
    for event in events:
        event = Pressed(event) if isinstance(event, str) else event
        steps.append(voice.advance(FLOW, steps[-1].state, event, GAZ))
    return steps


def ids(step) -> list[str]:
    """What a step says: prompt ids, and recordings as "rec:<ref>"."""
    return [p.prompt if p.prompt else "rec:" + p.recording for p in step.say]


def menu(*labels, more=False) -> list[str]:
    out = []
    for key, label in enumerate(labels, 1):
        out += [label, "voice.press", f"voice.digit.{key}"]
    return out + (["voice.more", "voice.press", "voice.digit.9"] if more else [])


CATEGORY_PAGE_1 = ["voice.ask_category"] + menu(*(label_msgid(c) for c in CODES[:8]), more=True)
CATEGORY_PAGE_2 = ["voice.ask_category"] + menu(*(label_msgid(c) for c in CODES[8:]))
PROVINCES = ["voice.ask_province"] + menu("place.CD54", "place.CD61", "place.CD62", "place.CD63", "place.CD74")
WHEN = ["voice.ask_when"] + menu("when.now", "when.today", "when.last_night", "when.yesterday", "when.earlier")
CONFIRM = ["voice.confirm"] + menu("option.yes", "voice.change")


# --- whole calls ------------------------------------------------------------------------

def test_a_french_caller_chooses_the_language_and_reports_an_attack():
    steps = call(None, "1", "1", "2", "3", Recorded("RE-place", 4), "4", "12#", Recorded("RE-msg", 35), "1")
    assert [s.step for s in steps] == ["language", "category-1", "province", "territory", "place-name",
                                       "occurred_at", "people_affected", "message", "confirm", "submit"]
    language = steps[0]
    assert language.say == tuple(Piece(p, lang) for lang, n in zip(LANGUAGES, "123")
                                 for p in ("voice.language", "voice.press", f"voice.digit.{n}"))
    assert language.collect == Gather(1, False, voice.MENU_TIMEOUT) and language.language is None
    assert ids(steps[1]) == WELCOME + CATEGORY_PAGE_1
    assert {p.lang for p in steps[1].say} == {"fr"}
    assert ids(steps[2]) == PROVINCES
    assert ids(steps[3]) == ["voice.ask_territory"] + menu(*(f"place.CD61{n}" for n in
                                                             ("01", "02", "03", "04", "05", "07", "09", "10", "11")))
    assert ids(steps[4]) == ["voice.record_place"] and steps[4].collect == Record(15)
    assert ids(steps[5]) == WHEN
    assert ids(steps[6]) == ["voice.ask_people_hurt", "voice.type_number"]
    assert steps[6].collect == Gather(5, True, voice.NUMBER_TIMEOUT)
    assert ids(steps[7]) == ["voice.record_message"] and steps[7].collect == Record(60)
    assert ids(steps[8]) == ["voice.summary", "field.category", "category.ATTACK",
                             "field.place", "place.CD61", "place.CD6103", "rec:RE-place",
                             "field.occurred_at", "when.yesterday",
                             "field.people_affected", "voice.digit.1", "voice.digit.2"] + CONFIRM
    submit = steps[9]
    assert submit.submit and not submit.end and submit.say == () and submit.collect is None
    assert submit.captured == {
        "language": "fr", "category": "ATTACK", "place": "CD6103", "place_recording": "RE-place",
        "occurred_at": {"at": None, "option": "yesterday", "text": None},
        "people_affected": {"n": 12, "many": False}, "message_recording": "RE-msg"}
    done = voice.submitted(submit.state, "482913")
    digits = [f"voice.digit.{d}" for d in "482913"]
    assert ids(done) == ["voice.thanks", "voice.reference_is", *digits, "voice.reference_again", *digits,
                         "voice.goodbye"]
    assert done.end and done.step == "done" and done.collect is None
    assert {p.lang for p in done.say} == {"fr"}


def test_a_swahili_caller_known_to_the_line_reports_a_land_dispute_from_page_two():
    steps = call("sw", "9", "1", "3", "9", "3", Recorded("RE-p", 2), "5", Recorded("RE-m", 60), "1")
    assert [s.step for s in steps] == ["category-1", "category-2", "province", "territory-1", "territory-2",
                                       "place-name", "occurred_at", "message", "confirm", "submit"]
    assert ids(steps[0]) == WELCOME + CATEGORY_PAGE_1  # no language menu
    assert ids(steps[1]) == CATEGORY_PAGE_2
    assert ids(steps[3]) == ["voice.ask_territory"] + menu(
        *(f"place.CD62{n}" for n in ("01", "02", "03", "05", "06", "07", "08", "10")), more=True)
    assert ids(steps[4]) == ["voice.ask_territory"] + menu("place.CD6211", "place.CD6212", "place.CD6213")
    # no people question after a land dispute (only_for)
    assert ids(steps[8])[:9] == ["voice.summary", "field.category", "category.LAND_CONFLICT", "field.place",
                                 "place.CD62", "place.CD6213", "rec:RE-p", "field.occurred_at", "when.earlier"]
    assert ids(steps[8])[9:] == CONFIRM
    assert all(p.lang == "sw" for s in steps for p in s.say if p.prompt)
    assert steps[-1].captured == {
        "language": "sw", "category": "LAND_CONFLICT", "place": "CD6213", "place_recording": "RE-p",
        "occurred_at": {"at": None, "option": "earlier", "text": None}, "message_recording": "RE-m"}


def test_a_lingala_caller_reports_a_kidnapping_and_nobody_counted():
    steps = call("ln", "4", "1", "5", Recorded("RE-p", 3), "2", "0#", Recorded("RE-m", 10), "1")
    assert [s.step for s in steps] == ["category-1", "province", "territory", "place-name", "occurred_at",
                                       "people_affected", "message", "confirm", "submit"]
    assert ids(steps[5]) == ["voice.ask_people_taken", "voice.type_number"]
    summary = ids(steps[7])
    assert summary[:4] == ["voice.summary", "field.category", "category.ABDUCTION", "field.place"]
    assert ["place.CD54", "place.CD5405"] == summary[4:6]  # Ituri, Djugu
    assert summary[summary.index("field.people_affected") + 1] == "value.none"
    assert steps[-1].captured["people_affected"] == {"n": 0, "many": False}
    done = voice.submitted(steps[-1].state, "105")
    assert [p.lang for p in done.say] == ["ln"] * len(done.say)
    assert [p.prompt for p in done.say][1:5] == ["voice.reference_is", "voice.digit.1", "voice.digit.0", "voice.digit.5"]


def test_a_rape_report_asks_gently_and_is_read_back_as_the_sms_summary_shows_it():
    steps = call("fr", "5", "2", "1", Recorded("RE-p", 3), "2", "1#", Recorded("RE-m", 20))
    assert ids(steps[5]) == ["voice.ask_people_victims", "voice.type_number"]
    summary = ids(steps[-1])
    assert summary[2] == label_msgid("SEXUAL_VIOLENCE")  # the label the SMS summary shows
    assert "rec:RE-m" not in summary  # the message is never played back


# --- the split menu ------------------------------------------------------------------------

@pytest.mark.parametrize("number, code", list(enumerate(CODES, 1)))
def test_every_category_is_one_key_press_away(number, code):
    keys = [str(number)] if number <= 8 else ["9", str(number - 8)]
    steps = call("fr", *keys)
    assert steps[-1].step == "province"
    assert steps[-1].captured["category"] == code


@pytest.mark.parametrize("count, sizes", [(1, [1]), (9, [9]), (10, [8, 2]), (12, [8, 4]), (17, [8, 9]),
                                          (18, [8, 8, 2]), (30, [8, 8, 8, 6])])
def test_pages_split_any_menu_into_single_keys(count, sizes):
    split = voice.pages(count)
    assert [len(p) for p in split] == sizes
    assert [i for p in split for i in p] == list(range(count))


def test_star_on_the_second_page_goes_back_to_the_first():
    steps = call("sw", "9", "*", "9", "*", "2")
    assert [s.step for s in steps] == ["category-1", "category-2", "category-1", "category-2", "category-1",
                                       "province"]
    assert steps[-1].captured["category"] == "ARMED_PRESENCE"


# --- wrong keys, silence, repeat, back ----------------------------------------------------------

@pytest.mark.parametrize("keys, step", [("7", "confirm"), ("#*", "confirm"), ("12", "confirm")])
def test_a_wrong_key_says_not_understood_and_the_same_menu(keys, step):
    before = call("fr", "9", "3", "1", "1", Recorded("RE-p", 2), "1", Recorded("RE-m", 5))  # a threat: no count
    after = voice.advance(FLOW, before[-1].state, Pressed(keys), GAZ)
    assert after.step == step == before[-1].step
    assert ids(after) == ["not_understood"] + ids(before[-1])


def test_wrong_keys_on_a_short_page_and_on_the_count():
    steps = call("fr", "9", "5", "*", "1", "1", "1", Recorded("RE-p", 2), "1", "12*", "abc", "123456")
    assert steps[2].step == "category-2" and ids(steps[2]) == ["not_understood"] + CATEGORY_PAGE_2
    counts = steps[-3:]
    assert [s.step for s in counts] == ["people_affected"] * 3
    assert all(ids(s) == ["not_understood", "voice.ask_people_hurt", "voice.type_number"] for s in counts)


def test_silence_repeats_once_then_an_optional_question_is_unknown():
    steps = call("fr", Silence(), Silence(),               # category: the flow's give-up value
                 "2", Silence(), Silence(),                # territory: the province is kept
                 Silence(), Silence(),                     # place name: none
                 Silence(), Silence(),                     # when: unknown
                 Silence(), Silence(),                     # message: none
                 )
    assert [s.step for s in steps] == ["category-1", "category-1", "province", "territory", "territory",
                                       "place-name", "place-name", "occurred_at", "occurred_at",
                                       "message", "message", "confirm"]
    assert ids(steps[1]) == CATEGORY_PAGE_1  # said again, without the welcome
    assert steps[-1].captured == {"language": "fr", "category": "OTHER", "place": "CD61", "place_recording": None,
                                  "occurred_at": {"at": None, "option": None, "text": None},
                                  "message_recording": None}
    assert ids(steps[-1])[:8] == ["voice.summary", "field.category", "category.OTHER", "field.place",
                                  "place.CD61", "field.occurred_at", "value.unknown", "voice.confirm"]


def test_silence_on_the_count_and_the_province():
    steps = call("fr", "1", Silence(), Silence(), Recorded("RE-p", 5), "1", Silence(), Silence())
    assert [s.step for s in steps] == ["category-1", "province", "province", "place-name", "occurred_at",
                                       "people_affected", "people_affected", "message"]
    assert steps[-1].captured["place"] is None and "territory" not in [s.step for s in steps]
    assert steps[-1].captured["people_affected"] == {"n": None, "many": False}
    summary = voice.advance(FLOW, steps[-1].state, Recorded("RE-m", 9), GAZ)
    place = ids(summary)[ids(summary).index("field.place") + 1]
    assert place == "rec:RE-p"  # no province: the recorded name alone
    assert ids(summary)[ids(summary).index("field.people_affected") + 1] == "value.unknown"


def test_a_silence_is_forgiven_once_per_question():
    steps = call("fr", Silence(), "1", Silence(), "2")
    assert [s.step for s in steps] == ["category-1", "category-1", "province", "province", "territory"]


@pytest.mark.parametrize("language", [None, "sw"])
def test_silence_on_the_language_menu_or_the_confirmation_ends_politely(language):
    if language is None:
        end = call(None, Silence(), Silence())[-1]
        expected = [Piece(p, lang) for lang in LANGUAGES for p in ("voice.no_answer", "voice.goodbye")]
    else:
        end = call("sw", "9", "3", "1", "1", Recorded("R", 2), "1", Recorded("M", 2), Silence(), Silence())[-1]
        expected = [Piece("voice.no_answer", "sw"), Piece("voice.goodbye", "sw")]
    assert end.step == "no-answer" and end.end and end.collect is None and not end.submit
    assert list(end.say) == expected


def test_zero_repeats_the_menu_and_the_recording_prompt():
    steps = call("ln", "0", "1", "0", "3", "0")
    assert [s.step for s in steps] == ["category-1", "category-1", "province", "province", "territory-1",
                                       "territory-1"]
    assert ids(steps[1]) == CATEGORY_PAGE_1 and ids(steps[3]) == PROVINCES
    assert ids(steps[5]) == ids(steps[4])
    place = call("ln", "1", "1", "1", "0")
    assert place[-1].step == "place-name" and ids(place[-1]) == ["voice.record_place"]


def test_star_goes_back_one_step_at_several_places():
    steps = call(None, "*", "2", "*", "3", "1", "*", "1", "2", "*", "*", "1", "2", "1", "*", "1",
                 Recorded("RE-p", 3), "*", Recorded("RE-p2", 3), "2", "3#", Recorded("RE-m", 5), "*",
                 Recorded("RE-m2", 5))
    assert [s.step for s in steps] == [
        "language", "language",           # nothing before the first menu: said again
        "category-1", "language",         # back to the language menu, choose Lingala
        "category-1", "province", "category-1", "province", "territory", "province", "category-1",
        "province", "territory", "place-name", "territory", "place-name", "occurred_at", "place-name",
        "occurred_at", "people_affected", "message", "confirm", "message", "confirm"]
    assert steps[-1].captured == {
        "language": "ln", "category": "ATTACK", "place": "CD6101", "place_recording": "RE-p2",
        "occurred_at": {"at": None, "option": "today", "text": None},
        "people_affected": {"n": 3, "many": False}, "message_recording": "RE-m2"}
    assert "rec:RE-p2" in ids(steps[-1]) and "rec:RE-p" not in ids(steps[-1])


def test_star_skips_a_question_a_corrected_answer_made_pointless():
    steps = [to_confirm(category="1")]  # an attack, 12 people
    for keys in ["2", "1", "9", "4", "*", "*", "*"]:  # correct what: other; then back, back, back
        steps.append(voice.advance(FLOW, steps[-1].state, Pressed(keys), GAZ))
    assert [s.step for s in steps] == ["confirm", "correct", "category-1", "category-2", "confirm",
                                       "category-2", "category-1", "correct"]
    assert "people_affected" not in steps[-1].captured
    back = voice.advance(FLOW, steps[-1].state, Pressed("*"), GAZ)
    assert back.step == "confirm"
    back = voice.advance(FLOW, back.state, Pressed("*"), GAZ)
    assert back.step == "message"  # not the count, pointless for "other"
    back = voice.advance(FLOW, back.state, Pressed("*"), GAZ)
    assert back.step == "occurred_at"


def test_the_way_back_is_bounded():
    steps = call("fr", *(["1", "*"] * 40))
    assert len(steps[-1].state["history"]) <= voice.HISTORY_MAX
    assert steps[-1].step == "category-1"


def test_star_on_the_count_goes_back_but_zero_is_a_number():
    steps = call("fr", "1", "1", "1", Recorded("R", 2), "1", "*", "1", "0")
    assert [s.step for s in steps][-3:] == ["occurred_at", "people_affected", "message"]
    assert steps[-1].captured["people_affected"] == {"n": 0, "many": False}


# --- correcting after the summary ---------------------------------------------------------------

def to_confirm(language="fr", category="1"):
    return call(language, category, "2", "3", Recorded("RE-p", 4), "4", "12#", Recorded("RE-m", 35))[-1]


def test_change_one_answer_then_back_to_the_summary():
    confirm = to_confirm()
    steps = [confirm]
    for event in [Pressed("2"), Pressed("3"), Pressed("1")]:
        steps.append(voice.advance(FLOW, steps[-1].state, event, GAZ))
    assert [s.step for s in steps] == ["confirm", "correct", "occurred_at", "confirm"]
    assert ids(steps[1]) == ["voice.ask_correction"] + menu(
        "field.category", "field.place", "field.occurred_at", "field.people_affected",
        "voice.field.message", "voice.all")
    assert "when.now" in ids(steps[-1]) and "when.yesterday" not in ids(steps[-1])
    assert steps[-1].captured["people_affected"] == {"n": 12, "many": False}  # the rest is kept


def test_change_the_place_asks_province_territory_and_name_again():
    steps = [to_confirm()]
    for event in [Pressed("2"), Pressed("2"), Pressed("3"), Pressed("9"), Pressed("1"), Recorded("RE-p2", 3)]:
        steps.append(voice.advance(FLOW, steps[-1].state, event, GAZ))
    assert [s.step for s in steps] == ["confirm", "correct", "province", "territory-1", "territory-2",
                                       "place-name", "confirm"]
    assert steps[-1].captured["place"] == "CD6211" and steps[-1].captured["place_recording"] == "RE-p2"


def test_a_new_kind_of_report_drops_or_asks_the_count():
    to_threat = [to_confirm(category="1")]
    for keys in ["2", "1", "9", "3"]:  # correct: what: page 2: threat
        to_threat.append(voice.advance(FLOW, to_threat[-1].state, Pressed(keys), GAZ))
    assert to_threat[-1].step == "confirm"
    assert "people_affected" not in to_threat[-1].captured
    assert "field.people_affected" not in ids(to_threat[-1])
    to_attack = [to_threat[-1]]
    for keys in ["2", "1", "1", "7#"]:
        to_attack.append(voice.advance(FLOW, to_attack[-1].state, Pressed(keys), GAZ))
    assert [s.step for s in to_attack] == ["confirm", "correct", "category-1", "people_affected", "confirm"]
    assert to_attack[-1].captured["people_affected"] == {"n": 7, "many": False}


def test_start_everything_again():
    steps = [to_confirm()]
    for event in ["2", "6", "3", "1", "1", Recorded("RE-p3", 2), "2", "4#", Recorded("RE-m3", 2)]:
        event = Pressed(event) if isinstance(event, str) else event
        steps.append(voice.advance(FLOW, steps[-1].state, event, GAZ))
    assert [s.step for s in steps] == ["confirm", "correct", "category-1", "province", "territory",
                                       "place-name", "occurred_at", "people_affected", "message", "confirm"]
    assert steps[-1].captured["category"] == "CLASH" and steps[-1].captured["message_recording"] == "RE-m3"


# --- the end of the call ------------------------------------------------------------------------

def test_the_reference_is_read_digit_by_digit_twice():
    done = voice.submitted(to_confirm("sw").state, "907")
    assert [p.prompt for p in done.say] == ["voice.thanks", "voice.reference_is", "voice.digit.9", "voice.digit.0",
                                            "voice.digit.7", "voice.reference_again", "voice.digit.9",
                                            "voice.digit.0", "voice.digit.7", "voice.goodbye"]


def test_no_reference_yet_still_thanks_and_a_reference_must_be_digits():
    assert ids(voice.submitted(to_confirm().state, None)) == ["voice.thanks", "voice.goodbye"]
    with pytest.raises(ValueError):
        voice.submitted(to_confirm().state, "A-7K3M9Q")


def test_a_hang_up_keeps_what_was_captured():
    steps = call("fr", "1", "2", HungUp())
    end = steps[-1]
    assert end.step == "hangup" and end.end and end.say == () and end.collect is None
    assert end.captured == {"language": "fr", "category": "ATTACK", "place": "CD61"}
    late = voice.advance(FLOW, end.state, Pressed("1"), GAZ)
    assert late.step == "hangup" and late.end and late.say == ()


def test_an_event_while_the_alert_is_created_changes_nothing():
    submit = voice.advance(FLOW, to_confirm().state, Pressed("1"), GAZ)
    again = voice.advance(FLOW, submit.state, Pressed("1"), GAZ)
    assert again.submit and again.step == "submit" and again.captured == submit.captured


def test_state_is_json_and_advance_leaves_the_given_state_alone():
    steps = call(None, "2", "9", "2", "3", "9", "1", Recorded("R", 3), "2", "*")
    for step in steps:
        assert json.loads(json.dumps(step.state)) == step.state
    state = steps[-1].state
    kept = copy.deepcopy(state)
    voice.advance(FLOW, state, Pressed("1"), GAZ)
    assert state == kept
    assert [s.turn for s in steps] == list(range(len(steps)))


# --- when the dialogue cannot run ------------------------------------------------------------------

def test_fallback_records_the_report_in_every_language_when_the_caller_s_is_unknown():
    step = voice.fallback_record(None)
    assert step.step == "fallback" and step.collect == Record(120)
    assert list(step.say) == [Piece("voice.fallback", lang) for lang in LANGUAGES]
    done = voice.advance(FLOW, step.state, Recorded("RE-f", 40), GAZ)
    assert done.end and done.step == "fallback-done"
    assert [p.prompt for p in done.say] == ["voice.fallback_thanks", "voice.goodbye"] * 3
    assert done.captured == {"message_recording": "RE-f"}


def test_fallback_keeps_what_the_call_had_captured():
    captured = call("sw", "1", "2")[-1].captured
    step = voice.fallback_record("sw", captured)
    assert ids(step) == ["voice.fallback"] and step.language == "sw"
    silent = voice.advance(FLOW, voice.advance(FLOW, step.state, Silence(), GAZ).state, Silence(), GAZ)
    assert silent.step == "no-answer" and silent.captured == {"language": "sw", "category": "ATTACK", "place": "CD61"}
    done = voice.advance(FLOW, step.state, Recorded("RE-f", 12), GAZ)
    assert done.captured == {"language": "sw", "category": "ATTACK", "place": "CD61", "message_recording": "RE-f"}


# --- prompts --------------------------------------------------------------------------------------

MENU_KEYS = [Pressed(k) for k in "0123456789*"]
EVENTS = {Gather: MENU_KEYS + [Pressed("12#")], Record: [Recorded("R", 5), Pressed("0"), Pressed("5"), Pressed("*")]}
TWO_SILENCES = "two silences"  # one silence only says the step again: the walk takes them by two


def play(state: dict, event):
    if event == TWO_SILENCES:
        return voice.advance(FLOW, voice.advance(FLOW, state, Silence(), GAZ).state, Silence(), GAZ)
    return voice.advance(FLOW, state, event, GAZ)


PEOPLE = FLOW.field("people_affected")


def blanks(captured: dict) -> tuple:
    """Which answers the summary reads are unknown, none or zero (it says them differently)."""
    def blank(value):
        return not value or (isinstance(value, dict) and not (value.get("option") or value.get("n")))
    return tuple(sorted(k for k, v in captured.items() if k != "message_recording" and blank(v)))


def reachable_steps():
    """Every step a call can reach, walked over what changes what is said (the step, the
    people question of the kind of report, the province, whether it is a correction, which
    summarised answers are blank), then the reference read out and the fallback."""
    seen, todo, out = set(), deque([voice.start(FLOW, None, GAZ), voice.start(FLOW, "fr", GAZ)]), []
    while todo:
        step = todo.popleft()
        s = step.state
        category = s["captured"].get("category")
        key = (s["step"], s["redo"] is None,
               PEOPLE.applies_to(category) and PEOPLE.question(category),
               s["province"] if s["step"].startswith(("province", "territory")) else bool(s["province"]),
               blanks(s["captured"]))
        if key in seen:
            continue
        seen.add(key)
        out += [step, voice.advance(FLOW, s, Silence(), GAZ)]
        if step.submit:
            out += [voice.submitted(s, "0123456789"), voice.submitted(s, None)]
        if step.collect is not None:
            todo += [play(s, event) for event in EVENTS[type(step.collect)] + [TWO_SILENCES]]
    fallback = voice.fallback_record(None)
    return out + [fallback] + [play(fallback.state, e) for e in EVENTS[Record] + [TWO_SILENCES]]


@pytest.fixture(scope="module")
def walked():
    return reachable_steps()


def test_prompt_ids_cover_every_prompt_a_call_can_play(walked):
    listed = voice.prompt_ids(FLOW, GAZ)
    played = {p.prompt for step in walked for p in step.say if p.prompt}
    assert played <= listed, played - listed
    # and lists nothing the line never plays, but the generic count question
    # (asked for a category in only_for without its own ask_for question: none today)
    assert listed - played == {"voice.ask_people"}
    assert {"place.CD6213", "place.CD5411", "place.CD7410"} <= played


def test_every_menu_page_fits_the_keypad(walked):
    for step in walked:
        keys = [step.say[i + 1].prompt for i, p in enumerate(step.say[:-1]) if step.say[i + 1].prompt == "voice.press"]
        assert len(keys) <= voice.KEYS_PER_PAGE, step.step
        if isinstance(step.collect, Gather) and not step.collect.finish_on_hash:
            assert step.collect.max_digits == 1


@pytest.mark.parametrize("lang", LANGUAGES)
def test_prompt_text_speaks_every_prompt_in_every_language(lang):
    for prompt in voice.prompt_ids(FLOW, GAZ):
        said = voice.prompt_text(prompt, lang, GAZ)
        assert said.strip() and "{" not in said, prompt
    assert voice.prompt_text("place.CD6103", lang, GAZ) == "Masisi"
    assert voice.prompt_text("place.CD61", lang, GAZ) == "Nord-Kivu"


def test_digits_and_language_names_are_said_in_their_language():
    assert [voice.prompt_text("voice.digit.7", lang) for lang in LANGUAGES] == ["sept", "saba", "nsambo"]
    assert [voice.prompt_text("voice.language", lang) for lang in LANGUAGES] == ["Français", "Kiswahili", "Lingala"]
    assert len({voice.prompt_text(f"voice.digit.{d}", "sw") for d in range(10)}) == 10


def test_unknown_prompts_are_refused_and_place_ids_never_clash_with_messages():
    with pytest.raises(KeyError):
        voice.prompt_text("place.CD99", "fr", GAZ)
    with pytest.raises(KeyError):
        voice.prompt_text("voice.nothing", "fr", GAZ)
    assert not any(m.startswith(voice.PLACE_PREFIX) for m in MESSAGES)
