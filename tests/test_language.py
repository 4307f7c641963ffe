"""Language choice on SMS-like sentences in French, Swahili and Lingala, mixed ones included.

The sentences are written the way reporters write: no accents, abbreviations, code-
switching. The corpus accuracy is asserted with a floor so that a regression shows,
and the short or mixed messages the conversation depends on are asserted one by one.
"""

import pytest

from bot import language

FR = [
    "Des hommes armes ont brule des maisons a Butembo ce matin",
    "bjr, il y a des tirs depuis ce matin pres du marche",
    "Les rebelles ont enleve trois enfants hier soir",
    "svp envoyez de l aide, les gens fuient vers la ville",
    "Une barriere illegale sur la route, ils demandent de l argent",
    "Nous avons entendu des coups de feu cette nuit",
    "slt les militaires sont arrives au village",
    "Ils ont pille le centre de sante et brule le marche",
    "Il y a des tracts qui menacent la population",
    "Deux personnes ont ete tuees dans leur champ",
    "bonjour je veux signaler une attaque",
    "Les deplaces arrivent nombreux a l ecole",
    "je ne sais pas combien de morts",
    "merci pour votre aide",
    "des inconnus armes ont attaque une femme au champ",
    "oui",
    "bjr",
]
SW = [
    "Watu wenye silaha wameteka watoto watatu Lubero jana",
    "slt, wanamgambo wako pres de Kasindi",
    "habari, kuna risasi mingi tangu asubuhi",
    "Waasi wamechoma nyumba kumi usiku wa leo",
    "Wanajeshi wameshambulia kijiji chetu",
    "watu wengi wamekimbia kwenda Goma",
    "Wameua watu wawili shambani jana usiku",
    "Tunaomba msaada, hali ni mbaya sana hapa",
    "Kuna kizuizi barabarani, wanadai pesa",
    "mama mmoja amebakwa na askari",
    "Wamepora ng'ombe wetu wote",
    "sijui ni watu wangapi",
    "jambo, nataka kutoa habari",
    "hatari, waasi wanakuja kutoka msituni",
    "asante sana kwa msaada",
    "ndiyo",
    "hapana",
]
LN = [
    "Bato ya mandoki bakoti na Komanda na butu",
    "mbote, basoda bayei na mboka lelo na ntongo",
    "Babomi bato mitano na zando",
    "bato ebele bakimi mboka na bango",
    "Bayibi bangombe na biso lobi",
    "nayebi te bato boni bakufi",
    "Masasi ezali kobeta banda ntongo",
    "Bato ya bibundeli bakangi bana mibale",
    "Batumbi bandako ebele na mboka",
    "Tosengi lisalisi, likama ezali monene",
    "Basoda bazali kosenga mbongo na barriere",
    "Etumba ezali kati na basoda na bato ya mandoki",
    "mbote na bino",
    "mwasi moko abebisami na basoda",
    "tozali na bobange mingi awa",
    "mbote",
    "iyo",
]
CORPUS = [(s, "fr") for s in FR] + [(s, "sw") for s in SW] + [(s, "ln") for s in LN]


def accuracy(lang):
    items = [(s, l) for s, l in CORPUS if l == lang]
    return sum(language.choose(s, default="xx") == l for s, l in items) / len(items)


@pytest.mark.parametrize("lang", ["fr", "sw", "ln"])
def test_accuracy_per_language(lang):
    assert accuracy(lang) >= 0.9


@pytest.mark.parametrize("text,expected", [
    ("slt, wanamgambo wako pres de Kasindi", "sw"),
    ("Bato ya mandoki bakoti na Komanda na butu", "ln"),
    ("Des hommes armes ont brule des maisons a Butembo ce matin", "fr"),
    ("bjr", "fr"), ("svp", "fr"), ("habari", "sw"), ("jambo", "sw"), ("ndiyo", "sw"),
    ("mbote", "ln"), ("nayebi te", "ln"), ("iyo", "ln"),
])
def test_known_messages(text, expected):
    assert language.choose(text) == expected


@pytest.mark.parametrize("text", ["", "   ", "123", "?!", "2."])
def test_nothing_to_detect(text):
    assert language.detect(text) == (None, 0.0)


def test_detect_returns_confidence():
    lang, prob = language.detect("Watu wenye silaha wameteka watoto watatu jana")
    assert lang == "sw" and 0.8 <= prob <= 1.0


def test_stated_choice_wins():
    assert language.choose("Des hommes armes ont brule des maisons", stated="ln") == "ln"
    assert language.choose("bonjour", stated="swc") == "sw"


def test_unclear_text_keeps_previous_then_default():
    assert language.choose("3", previous="sw") == "sw"
    assert language.choose("Butembo", previous="ln") == "ln"
    assert language.choose("3") == "fr"
    assert language.choose("", previous=None, default="sw") == "sw"


def test_invalid_previous_falls_back_to_default():
    assert language.choose("42", previous="en") == "fr"


# ---------------------------------------------------------------- the Rasa model's evidence

@pytest.mark.parametrize("text,expected", [
    ("etumba", "ln"), ("masasi", "ln"), ("risasi", "sw"), ("shambulio", "sw"), ("attaque", "fr"),
])
def test_one_word_decided_with_the_models_training_data(text, expected):
    # the identifier alone is too unsure of one word to change the conversation's language
    assert language.choose(text, previous="xx", default="xx") == expected


def test_model_evidence_ignores_words_the_model_never_saw():
    probs, known = language.model_evidence("Kanyabayonga Mutwanga")
    assert known == 0 and max(probs.values()) == min(probs.values())
    assert language.choose("Kanyabayonga", previous="sw") == "sw"


def test_model_evidence_follows_the_predicted_intent():
    probs, known = language.model_evidence("mbote", intent="greet")
    assert known == 1 and max(probs, key=probs.get) == "ln" and probs["ln"] > 0.8
    # the evidence of a report intent's examples points the same way for a report word
    probs, _ = language.model_evidence("babomi bato", intent="report_attack")
    assert max(probs, key=probs.get) == "ln"


def test_without_training_data_the_identifier_and_markers_still_work(monkeypatch, tmp_path):
    monkeypatch.setattr(language, "NLU_DATA", tmp_path)
    language._lexicon.cache_clear()
    language._shared_words.cache_clear()
    try:
        assert language.model_evidence("etumba")[1] == 0
        assert language.choose("mbote") == "ln"
        assert language.choose("etumba", previous="sw") == "sw"  # one word, no evidence: unchanged
    finally:
        language._lexicon.cache_clear()
        language._shared_words.cache_clear()
