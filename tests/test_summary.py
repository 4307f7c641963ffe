"""The confirmation summary: free text is cut for the SMS, never in the stored alert,
and the check's worst case is really the worst the form can write."""

from __future__ import annotations

import itertools
from datetime import datetime, timezone
from types import SimpleNamespace

import pytest

from bot import answers, catalogs
from bot.categories import CODES
from bot.flow import alert_flow
from bot.gsm7 import is_gsm7, septets, to_gsm7
from bot.languages import LANGUAGES
from bot.messages import render, text
from bot.places import default_gazetteer
from bot.summary import (
    FREE_TEXT_MAX, MORE, PEOPLE_MAX, PERPETRATOR_MAX, PLACE_TEXT_MAX, WHEN_TEXT_MAX, longest_place_label,
    place_label, shorten,
)
from bot.understanding import UNIDENTIFIED
from service.actions.form import draft_fields, summary

LONG = "Mai-Mai Yakutumba et d'autres groupes venus de la foret de Misisi, avec des motos"[:FREE_TEXT_MAX]


def sent(value: str) -> int:
    return septets(to_gsm7(value))


# --- shorten --------------------------------------------------------------------------

def test_short_text_is_kept_as_written():
    assert shorten("ADF", PERPETRATOR_MAX) == "ADF"
    assert shorten("x" * PERPETRATOR_MAX, PERPETRATOR_MAX) == "x" * PERPETRATOR_MAX
    assert shorten("  pres de\nBeni ", PLACE_TEXT_MAX) == "pres de Beni"  # one line in a summary


@pytest.mark.parametrize("limit", [PLACE_TEXT_MAX, WHEN_TEXT_MAX, PERPETRATOR_MAX])
@pytest.mark.parametrize("written", [LONG, "x" * FREE_TEXT_MAX, "[]{}" * 20, "œuvre " * 14, "ɛɔ…" * 27,
                                     "a" * (PERPETRATOR_MAX + 1)])
def test_long_text_is_cut_to_the_limit_as_sent(written, limit):
    cut = shorten(written, limit)
    if sent(written) <= limit:
        assert cut == written
        return
    assert cut.endswith(MORE) and sent(cut) <= limit
    assert written.startswith(cut[: -len(MORE)])
    assert sent(cut) >= limit * 2 // 3  # never cut much more than needed


def test_cut_at_a_space_near_the_end():
    assert shorten("Mai-Mai Yakutumba de Fizi", 20) == "Mai-Mai Yakutumba..."
    assert shorten("Abcdefghijklmnopqrstuvwxyz", 10) == "Abcdefg..."


# --- summary() cuts the summary only ---------------------------------------------------

def values(**changes) -> dict:
    base = {"category": "ABDUCTION", "place": "text:" + LONG, "people_affected": {"n": 4, "many": False},
            "occurred_at": {"at": None, "option": None, "text": LONG}, "perpetrator": LONG}
    return {**base, **changes}


def test_summary_cuts_free_text_and_the_alert_keeps_it_whole():
    args = summary(alert_flow(), values())["args"]
    assert args["place"] == shorten(LONG, PLACE_TEXT_MAX) and args["place"].endswith(MORE)
    assert args["when"] == shorten(LONG, WHEN_TEXT_MAX) and args["when"].endswith(MORE)
    assert args["perpetrator"] == shorten(LONG, PERPETRATOR_MAX) and args["perpetrator"].endswith(MORE)
    stored = draft_fields(values(), "fr", "the message")
    assert stored.place_text == LONG and stored.occurred_text == LONG and stored.perpetrator == LONG


def test_summary_keeps_short_answers_and_place_names_whole():
    record = next(r for r in default_gazetteer().lookup("Kitshanga") if r.level == "locality")
    args = summary(alert_flow(), values(place=record.key, perpetrator="M23",
                                        occurred_at={"at": None, "option": None, "text": "dimanche soir"}))["args"]
    assert args["place"] == place_label(record) == f"{record.name} ({record.admin2_name})"
    assert args["perpetrator"] == "M23" and args["when"] == "dimanche soir"
    assert summary(alert_flow(), values(perpetrator=UNIDENTIFIED))["args"]["perpetrator"] == "@value.armed_men"


def test_a_huge_number_is_shown_as_many_and_stored_as_it_is():
    huge = {"n": PEOPLE_MAX + 1, "many": False}
    assert summary(alert_flow(), values(people_affected=huge))["args"]["people"] == "@value.many"
    assert summary(alert_flow(), values(people_affected={"n": PEOPLE_MAX, "many": False}))["args"]["people"] \
        == str(PEOPLE_MAX)
    assert draft_fields(values(people_affected=huge), "fr", None).people_affected == PEOPLE_MAX + 1


def test_answers_keep_at_most_the_free_text_the_check_measures():
    field = SimpleNamespace(unknown_answers=(), ask_choice="ask_place_choice", ask_unknown="place_unknown")
    u = SimpleNamespace(perpetrator=None, place=SimpleNamespace(status="unknown"))
    long = "Kalunguta " * 30
    assert len(answers.read_text(long, u, field).value) <= FREE_TEXT_MAX
    when = answers.read_time(long, u, field, datetime.now(timezone.utc)).value
    assert when["text"] and len(when["text"]) <= FREE_TEXT_MAX
    place = answers.read_place("Zzqx " * 40, u, field, default_gazetteer(), None, None)
    assert 0 < len(place.extra["place_pending"]) <= FREE_TEXT_MAX


# --- the worst case the check measures is the worst summary() writes -------------------

def longest_record():
    return max(default_gazetteer()._by_key.values(), key=lambda r: sent(place_label(r)))


def every_kind_of_value():
    """What the form may hold for each field, at its longest (and then some)."""
    when = alert_flow().field("occurred_at")
    at = datetime(2026, 12, 31, 21, 59, tzinfo=timezone.utc).isoformat()
    return {
        "category": list(CODES) + [None],
        "place": [longest_record().key, "text:" + "x" * FREE_TEXT_MAX, "text:" + "{" * FREE_TEXT_MAX,
                  "text:" + LONG, "gn:not-a-place", None],
        "occurred_at": [{"at": None, "option": o.value, "text": None} for o in when.options]
                       + [{"at": at, "option": None, "text": None}, {"at": None, "option": None, "text": None},
                          {"at": None, "option": None, "text": "y" * FREE_TEXT_MAX}, None],
        "people_affected": [{"n": n, "many": False} for n in (0, 7, PEOPLE_MAX, 10 ** 9, None)]
                           + [{"n": None, "many": True}, answers.NOT_APPLICABLE, None],
        "perpetrator": [UNIDENTIFIED, "", answers.NOT_APPLICABLE, "z" * FREE_TEXT_MAX, "~" * FREE_TEXT_MAX,
                        LONG, None],
    }


PLACEHOLDER = {"category": "category", "place": "place", "occurred_at": "when",
               "people_affected": "people", "perpetrator": "perpetrator"}


@pytest.mark.parametrize("lang", LANGUAGES)
def test_the_check_knows_the_longest_value_of_every_placeholder(lang):
    def shown(value) -> int:
        return sent(text(value[1:], lang) if value.startswith("@") else value)

    worst = catalogs.worst_summary_args(lambda msg_id: text(msg_id, lang))
    for slot, kinds in every_kind_of_value().items():
        name = PLACEHOLDER[slot]
        for kind in kinds:
            arg = summary(alert_flow(), {slot: kind})["args"][name]
            assert shown(arg) <= shown(worst[name]), (lang, slot, kind, arg, worst[name])


def test_the_longest_place_is_the_gazetteers():
    label = longest_place_label(default_gazetteer())
    assert label == place_label(longest_record()) or sent(label) == sent(place_label(longest_record()))
    assert label in catalogs.summary_worst_values()["place"]


@pytest.mark.parametrize("lang", LANGUAGES)
def test_the_longest_real_confirmation_fits_one_sms(lang):
    """summary() on the longest values the form can hold, in every combination that
    matters: each category and each kind of time, the longest place and free text."""
    kinds = every_kind_of_value()
    longest = 0
    for category, when in itertools.product(kinds["category"], kinds["occurred_at"]):
        for place, perpetrator in ((longest_record().key, "z" * FREE_TEXT_MAX),
                                   ("text:" + "x" * FREE_TEXT_MAX, "~" * FREE_TEXT_MAX)):
            payload = summary(alert_flow(), {"category": category, "place": place, "occurred_at": when,
                                             "people_affected": {"n": None, "many": False},
                                             "perpetrator": perpetrator})
            message = render("confirm", lang, {"summary": payload})
            assert is_gsm7(message) and septets(message) <= catalogs.SMS_LIMIT, f"{septets(message)}: {message}"
            longest = max(longest, septets(message))
    assert longest <= septets(catalogs.worst_confirmation(lang))
