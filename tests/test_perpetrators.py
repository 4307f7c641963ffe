"""Who did it, and when words may file a restricted category (bot/perpetrators.py,
bot/understanding.py): rules applied after the model, tested without it."""

import pytest

from bot import perpetrators
from bot.understanding import interpret, only_a_place, strong_enough
from bot.places import default_gazetteer


def parse(intent: str, confidence: float = 0.9, entities=()):
    return {"intent": {"name": intent, "confidence": confidence}, "entities": list(entities)}


def tagged(value: str) -> dict:
    return {"entity": "armed_group", "value": value}


@pytest.mark.parametrize("text, entities, expected", [
    # the case: the model tagged "basoda"; the group named after it wins
    ("Basoda ya M23 bayei ebele na Rugari", [tagged("unidentified soldiers")], "M23"),
    ("Basoda ya M23 bayei ebele na Rugari", [tagged("FARDC")], "FARDC"),  # a named tag stays named
    ("wanajeshi wa adf wamepita Oicha", [], "ADF"),  # the model missed it: the spelling is in the text
    ("militaires fardc ont pille le marche", [tagged("unidentified soldiers")], "FARDC"),
    ("basoda bayei na Rugari", [], perpetrators.UNIDENTIFIED_SOLDIERS),  # soldiers are not the army
    ("wanajeshi wameiba mbuzi", [tagged("unidentified soldiers")], perpetrators.UNIDENTIFIED_SOLDIERS),
    ("des hommes armes et des mai mai", [tagged("unidentified armed men")], "Mai-Mai"),
    ("bandits armes a Beni", [], perpetrators.UNIDENTIFIED),
    ("ba mayi mayi na ba m23 babundi", [], "Mai-Mai"),  # two named: the first written
    ("watu wameua watu wawili", [tagged("wameua")], None),  # a word no list spells is dropped
    ("soda na mayi ya malili", [], None),  # "soda" alone is a drink
])
def test_a_named_force_wins_and_a_generic_word_never_becomes_one(text, entities, expected):
    assert perpetrators.choose(entities, text) == expected
    u = interpret(text, parse("report_attack", entities=entities))
    assert u.perpetrator == expected


def test_generic_words_are_not_spellings_of_the_army():
    for word in ("militaires", "soldats", "basoda", "wanajeshi", "askari"):
        assert perpetrators.canonical(word) == perpetrators.UNIDENTIFIED_SOLDIERS
        assert not perpetrators.is_named(perpetrators.canonical(word))
    assert perpetrators.canonical("FARDC") == "FARDC" and perpetrators.is_named("FARDC")


@pytest.mark.parametrize("text", [
    "mobulu makasi na Rubaya, bato bazali kokima",   # heavy unrest: not rape
    "bato ya mandoki babebisi ndako na Sake",         # damaged houses
    "violents combats a Sake ce matin",               # violent, not viol
    "wamewapiga wanawake sana Minova",
])
def test_restricted_category_needs_its_own_words_or_a_sure_model(text):
    u = interpret(text, parse("report_sexual_violence", 0.9))
    assert u.category is None and u.intent == "report_alert"  # the conversation asks the category
    assert interpret(text, parse("report_sexual_violence", 0.97)).category == "SEXUAL_VIOLENCE"


@pytest.mark.parametrize("text", [
    "une femme violee hier a Sake", "mwanamke amebakwa jana Sake", "wanawake wawili walibakwa Minova",
    "basi mibale babebisi bango na Minova", "ba m23 baviolaki basi na Rubaya", "violences sexuelles a Kalehe",
    "ubakaji umefanyika Lemera", "bamama wawili bamebakwa ku Minova", "wamewabaka wasichana mu pori",
])
def test_restricted_category_with_its_own_words_is_filed(text):
    assert interpret(text, parse("report_sexual_violence", 0.6)).category == "SEXUAL_VIOLENCE"


def test_other_categories_need_no_extra_evidence():
    assert strong_enough("ATTACK", 0.4, "x") and not strong_enough("SEXUAL_VIOLENCE", 0.9, "mobulu makasi")
    # the ranking's fallback category is held to the same rule
    p = {"intent": {"name": "nlu_fallback", "confidence": 0.3},
         "intent_ranking": [{"name": "nlu_fallback"}, {"name": "report_sexual_violence", "confidence": 0.3}]}
    assert interpret("mobulu makasi na Sake", p).category is None


@pytest.mark.parametrize("text", ["Rubaya", "a Kibumba Nyiragongo", "KITCHANGA", "na Rubaya", "Sake territoire de Masisi"])
def test_a_bare_place_name_starts_a_report_without_a_category(text):
    u = interpret(text, parse("report_looting", 0.7))
    assert u.intent == "report_alert" and u.category is None and u.place.status == "found"
    assert interpret(text, parse("greet", 0.8)).intent == "report_alert"


@pytest.mark.parametrize("text", ["bonjour", "pillage a Rubaya", "Rubaya STOP ok", "habari ya Rubaya"])
def test_a_message_with_more_than_a_place_is_left_to_the_model(text):
    gaz = default_gazetteer()
    u = interpret(text, parse("greet", 0.8))
    assert not only_a_place(text, u.place, gaz)
