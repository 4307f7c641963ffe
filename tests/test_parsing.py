"""Counts of people and times in the three languages, including what must NOT be read."""

from datetime import datetime, timedelta, timezone

import pytest

from bot.parsing import EAST, PeopleCount, When, parse_people, parse_when

UNKNOWN = PeopleCount(None, False)
MANY = PeopleCount(None, True)


@pytest.mark.parametrize("text,number", [
    ("3", 3), ("3 morts", 3), ("12 personnes", 12), ("0", 0), ("environ 20", 20), ("une personne", 1),
    ("trois", 3), ("vingt-cinq", 25), ("vingt et un", 21), ("soixante-dix", 70), ("quatre-vingt-douze", 92),
    ("deux cent trois", 203), ("cent", 100),
    ("tano", 5), ("watatu", 3), ("ishirini na tano", 25), ("kumi na mbili", 12), ("mia moja", 100),
    ("mia tatu na tano", 305), ("kama watu 10", 10),
    ("mitano", 5), ("zomi na mibale", 12), ("nkama", 100), ("nkama mibale", 200), ("ntuku misato na mitano", 35),
])
def test_count_answers(text, number):
    assert parse_people(text) == PeopleCount(number, False)


@pytest.mark.parametrize("text", ["plusieurs", "beaucoup", "wengi", "nyingi", "ebele", "mingi"])
def test_many(text):
    assert parse_people(text) == MANY


@pytest.mark.parametrize("text", ["personne", "hakuna", "moto te", "moto moko te", "aucun", "zero"])
def test_nobody(text):
    assert parse_people(text) == PeopleCount(0, False)


@pytest.mark.parametrize("text", ["je sais pas", "je ne sais pas", "sijui", "nayebi te", "?", "Sijui kabisa"])
def test_unknown_is_distinct_from_nothing(text):
    assert parse_people(text) == UNKNOWN


@pytest.mark.parametrize("text,expected", [
    ("Watu wenye silaha wameteka watoto watatu Lubero jana", PeopleCount(3, False)),
    ("ils ont tue 5 personnes a Beni", PeopleCount(5, False)),
    ("bato mitano babomami na zando", PeopleCount(5, False)),
    ("saa nane watu wawili wameuawa", PeopleCount(2, False)),
    ("les rebelles ont enleve 12 enfants hier", PeopleCount(12, False)),
    ("des hommes armes ont tue plusieurs personnes", MANY),
    ("watu wengi wamekufa", MANY),
    ("bato ebele bakimi", MANY),
    ("attaque repoussee, personne n est mort", PeopleCount(0, False)),
    ("basoda bayei kasi moto moko te akufi", PeopleCount(0, False)),
    # occupations and roles are people too
    ("5 cultivateurs emmenes en brousse", PeopleCount(5, False)),
    ("wameteka wakulima sita shambani", PeopleCount(6, False)),
    ("babomi balimi mibale na zamba", PeopleCount(2, False)),
    ("deux motards tues sur la route", PeopleCount(2, False)),
    # the count after the people word, across "about"/"more than" words and one verb
    ("wakimbizi karibu 500 wamefika kanisani", PeopleCount(500, False)),
    ("bato bakimi pene ya 500 bakomi na ndako ya nzambe", PeopleCount(500, False)),
    ("des deplaces, environ 300, dorment a l eglise", PeopleCount(300, False)),
    # the armed men are not the victims, whichever side of the number they stand
    ("wanaume wawili wenye silaha wamebaka msichana", None),
    ("mibali mibale ya mandoki bayibi ngombe", None),
    ("trois hommes en armes ont pille", None),
    # "bato ya mboka" are villagers, "bato ya mandoki" armed men
    ("bato ya mboka mitano bakufi", PeopleCount(5, False)),
])
def test_counts_in_reports(text, expected):
    assert parse_people(text) == expected


@pytest.mark.parametrize("text", [
    "attaque a 5h ce matin pres du marche",        # an hour
    "il y a 2 jours",                               # days, not people
    "depuis 2024 ils sont dans la foret",           # a year
    "appelez le 0000000000 svp",                    # a phone-like run
    "wamechoma moto nyumba tatu",                   # three houses, not people
    "trois hommes armes sont passes",               # perpetrators, not victims
    "un vieux papa abattu et sa femme blessee",     # "vieux" is not a count word
    "watu 3 wenye silaha wamepita",                 # armed men after their count
    "ngombe 40 zimeibiwa na vaches 12 volees",      # cattle, not people
    "Bato ya mandoki bakoti na Komanda na butu",    # no count at all
    "bonjour",
    "",
])
def test_not_a_count(text):
    assert parse_people(text) is None


# Wednesday 18 November 2026, 17:30 in Goma/Bukavu/Bunia (UTC+2)
NOW = datetime(2026, 11, 18, 15, 30, tzinfo=timezone.utc)
MORNING = datetime(2026, 11, 18, 9, 0, tzinfo=EAST)


def local(day, hour, minute=0, month=11, year=2026):
    return datetime(year, month, day, hour, minute, tzinfo=EAST)


@pytest.mark.parametrize("text", ["maintenant", "sasa hivi", "sasa", "sikoyo", "now"])
def test_now(text):
    when = parse_when(text, NOW)
    assert when.at == NOW and when.precision == "moment"


@pytest.mark.parametrize("text,at,precision", [
    ("ce matin", local(18, 7), "part_of_day"),
    ("asubuhi", local(18, 7), "part_of_day"),
    ("leo asubuhi", local(18, 7), "part_of_day"),
    ("na ntongo", local(18, 7), "part_of_day"),
    ("lelo na ntongo", local(18, 7), "part_of_day"),
    ("cette nuit", local(17, 23), "part_of_day"),
    ("usiku wa leo", local(17, 23), "part_of_day"),
    ("na butu", local(17, 23), "part_of_day"),
    ("hier", local(17, 12), "day"),
    ("jana", local(17, 12), "day"),
    ("lobi", local(17, 12), "day"),
    ("jana usiku", local(17, 21), "part_of_day"),
    ("hier soir", local(17, 21), "part_of_day"),
    ("hier nuit", local(17, 21), "part_of_day"),
    ("lobi na butu", local(17, 21), "part_of_day"),
    ("avant-hier", local(16, 12), "day"),
    ("juzi", local(16, 12), "day"),
    ("lobi eleki", local(16, 12), "day"),
    ("aujourd'hui", local(18, 12), "day"),
    ("leo", local(18, 12), "day"),
    ("lelo", local(18, 12), "day"),
    ("lundi", local(16, 12), "day"),
    ("jumatatu", local(16, 12), "day"),
    ("mokolo ya yambo", local(16, 12), "day"),
    ("jeudi", local(12, 12), "day"),        # the most recent past Thursday
    ("alhamisi", local(12, 12), "day"),
    ("mercredi", local(18, 12), "day"),     # today is a Wednesday
    ("12/11", local(12, 12), "day"),
    ("le 12 novembre", local(12, 12), "day"),
    ("25/12", local(25, 12, month=12, year=2025), "day"),  # never in the future
    ("a 14h", local(18, 14), "moment"),
    ("vers 14h30", local(18, 14, 30), "moment"),
    ("a 20h", local(17, 20), "moment"),     # later than now today: yesterday
    ("hier a 22h", local(17, 22), "moment"),
    ("saa nane", local(18, 14), "moment"),  # Swahili time: saa 1 = 7:00
    ("saa moja asubuhi", local(18, 7), "moment"),
    ("jana saa tatu asubuhi", local(17, 9), "moment"),
    ("saa mbili usiku", local(17, 20), "moment"),
    ("ngonga ya mitano na pokwa", local(18, 17), "moment"),
    ("il y a 2 jours", local(16, 12), "day"),
    ("il y a trois jours le soir", local(15, 21), "part_of_day"),
    ("siku tatu zilizopita", local(15, 12), "day"),
    ("mikolo misato eleki", local(15, 12), "day"),
])
def test_when(text, at, precision):
    when = parse_when(text, NOW)
    assert isinstance(when, When)
    assert when.at == at and when.precision == precision
    assert when.at.utcoffset() == timedelta(hours=2) and when.text


def test_night_after_midnight_is_the_night_just_past():
    assert parse_when("cette nuit", datetime(2026, 11, 18, 2, 0, tzinfo=EAST)).at == local(17, 23)
    assert parse_when("cette nuit", datetime(2026, 11, 18, 23, 30, tzinfo=EAST)).at == local(18, 23)


def test_part_of_day_never_in_the_future():
    assert parse_when("ce soir", MORNING).at <= MORNING


def test_when_in_a_report():
    when = parse_when("Des hommes armes ont brule des maisons a Butembo ce matin", NOW)
    assert when.at == local(18, 7)


@pytest.mark.parametrize("text", ["2", "12", "bonjour", "", "Butembo", "watoto watatu"])
def test_no_time(text):
    assert parse_when(text, NOW) is None


@pytest.mark.parametrize("text,at", [
    ("tarehe 12 saa nane usiku", local(12, 2)),        # the 12th, 2 am (Swahili hours)
    ("le 12 vers 20h", local(12, 20)),
    ("mokolo ya 12 na butu", local(12, 21)),
    ("tarehe 25", local(25, 12, month=10)),           # the 25th is still to come: last month's
])
def test_day_of_the_month(text, at):
    assert parse_when(text, NOW).at == at


def test_a_count_after_le_is_not_a_date():
    assert parse_when("le 12 personnes tuees", NOW) is None



@pytest.mark.parametrize("text,number", [
    # Congolese Swahili: bantu for watu, ba- verb prefixes, French numbers inside
    ("bantu wawili bamekufa ku Beni", 2), ("ba militaires bameua bantu trois ku Beni", 3),
    ("bantu deux bamekufa usiku", 2), ("bamebeba bantu 6 mu pori", 6), ("bantu wanne bamejeruhiwa", 4),
    ("bamama 4 bamebakwa njiani", 4),
])
def test_congolese_swahili_counts(text, number):
    assert parse_people(text) == PeopleCount(number, False)


@pytest.mark.parametrize("text", ["bantu ya silaha 5 bamepita ku Beni", "nyumba tatu zimechomwa na bantu ya silaha"])
def test_congolese_swahili_perpetrators_and_things_are_not_victims(text):
    assert parse_people(text) is None
