"""The flow file (flows/alert.yml, bot/flow.py): the question asked after each kind of report."""

from __future__ import annotations

import asyncio
import copy

import pytest
import yaml
from rasa_sdk import Tracker
from rasa_sdk.executor import CollectingDispatcher

from bot.categories import CODES
from bot.flow import FLOWS_DIR, FlowError, alert_flow, parse
from bot.messages import MESSAGES, render

PEOPLE_QUESTION = {
    "ATTACK": "ask_people_hurt", "CLASH": "ask_people_hurt", "ABDUCTION": "ask_people_taken",
    "SEXUAL_VIOLENCE": "ask_people_victims", "DISPLACEMENT": "ask_people_fled",
}


def raw_flow() -> dict:
    return yaml.safe_load((FLOWS_DIR / "alert.yml").read_text(encoding="utf-8"))


def with_people(**changes) -> dict:
    data = copy.deepcopy(raw_flow())
    people = next(f for f in data["fields"] if f["name"] == "people_affected")
    for key, value in changes.items():
        if value is None:
            people.pop(key, None)
        else:
            people[key] = value
    return data


def test_the_people_question_depends_on_the_kind_of_report():
    field = alert_flow().field("people_affected")
    assert {code: field.question(code) for code in field.only_for} == PEOPLE_QUESTION
    assert field.question(None) == field.ask == "ask_people"  # not known yet: the general question
    assert field.question("OTHER") == "ask_people"
    assert set(PEOPLE_QUESTION.values()) <= alert_flow().message_ids()


def test_other_fields_ask_one_question_whatever_the_kind():
    for field in alert_flow().fields:
        if field.name != "people_affected":
            assert {field.question(code) for code in CODES} == {field.ask}


@pytest.mark.parametrize("lang", ["fr", "sw", "ln"])
def test_each_people_question_is_its_own_text(lang):
    """A displacement report is not asked how many were killed, in any language."""
    texts = {render(msg, lang) for msg in set(PEOPLE_QUESTION.values()) | {"ask_people"}}
    assert len(texts) == 5
    fled = render("ask_people_fled", "fr")
    assert "fui" in fled and "tuées" not in fled


def test_ask_for_is_checked_like_the_rest():
    people_ask_for = next(f for f in raw_flow()["fields"] if f["name"] == "people_affected")["ask_for"]
    assert parse(with_people()).field("people_affected").ask_for == tuple(
        (code, people_ask_for[code]) for code in CODES if code in people_ask_for)
    with pytest.raises(FlowError, match="unknown categories in ask_for"):
        parse(with_people(ask_for={"KILLING": "ask_people_hurt"}))
    with pytest.raises(FlowError, match=r"unknown message ids \['ask_people_dead'\]"):
        parse(with_people(ask_for={"ATTACK": "ask_people_dead"}))
    with pytest.raises(FlowError, match="never asked for"):
        parse(with_people(ask_for={"THREAT": "ask_people_hurt"}))  # THREAT is not in only_for
    with pytest.raises(FlowError, match="must map category codes to message ids"):
        parse(with_people(ask_for=["ask_people_hurt"]))
    with pytest.raises(FlowError, match="must map category codes to message ids"):
        parse(with_people(ask_for={"ATTACK": None}))
    # without only_for the field is asked for every category, so any category may have its question
    flow = parse(with_people(only_for=None, ask_for={"THREAT": "ask_people_hurt"}))
    assert flow.field("people_affected").question("THREAT") == "ask_people_hurt"
    assert parse(with_people(ask_for=None)).field("people_affected").question("DISPLACEMENT") == "ask_people"


def test_every_question_of_the_flow_is_a_message():
    assert alert_flow().message_ids() <= set(MESSAGES)


def ask(slot: str, **slots) -> list[dict]:
    from service.actions.form import AskFieldAction

    action = type("Ask", (AskFieldAction,), {"slot": slot})()
    tracker = Tracker("reporter-key", {"language": "fr", **slots}, {"text": "", "metadata": {}},
                      [], False, None, {}, None)
    dispatcher = CollectingDispatcher()
    asyncio.run(action.run(dispatcher, tracker, {}))
    return [m["custom"] for m in dispatcher.messages]


@pytest.mark.parametrize("category, expected", list(PEOPLE_QUESTION.items()) + [(None, "ask_people")])
def test_the_form_asks_the_question_of_the_flow(category, expected):
    [payload] = ask("people_affected", category=category)
    assert payload == {"msg": expected, "lang": "fr"}
