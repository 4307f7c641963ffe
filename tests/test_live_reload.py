"""Catalogs and the flow reload in running processes (bot.live_files.LiveFiles): a text a
translator saves, a question an editor moves, reach the next reply of the web service
and of the real action server without a restart; a flow file broken by hand keeps the
last good flow, and the conversation goes on. Always on copies in tmp_path."""

from __future__ import annotations

import asyncio
import copy
import io
import logging
import os
import shutil
import time
import uuid
from pathlib import Path

import pytest
import requests
import yaml
from babel.messages.pofile import read_po, write_po
from rasa_sdk import Tracker
from rasa_sdk.executor import CollectingDispatcher
from sqlalchemy import create_engine

from bot import flow as bot_flow, live_files, messages, rasa_project
from service import stack
from service.actions import form
from service.actions.form import REQUESTED, next_question
from service.models import Base

ROOT = Path(__file__).resolve().parent.parent
WAIT = 6.0  # a change is seen within CHECK_SECONDS + SETTLE_SECONDS; slack for a slow machine


@pytest.fixture
def locales(tmp_path, monkeypatch) -> Path:
    copy = tmp_path / "locales"
    shutil.copytree(ROOT / "locales", copy, ignore=shutil.ignore_patterns("*.mo", "*.tmp"))
    monkeypatch.setattr(messages, "LOCALES_DIR", copy)
    return copy


@pytest.fixture
def flows(tmp_path, monkeypatch) -> Path:
    copy = tmp_path / "flows"
    shutil.copytree(ROOT / "flows", copy)
    monkeypatch.setattr(bot_flow, "FLOWS_DIR", copy)
    return copy


def replace(path: Path, data: bytes) -> None:
    """As the console writes: a temporary file beside it, then os.replace."""
    tmp = path.with_name(f".{path.name}.test.tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def translate(locales: Path, lang: str, msg_id: str, text: str) -> None:
    po = locales / lang / "LC_MESSAGES" / "messages.po"
    with po.open("rb") as fp:
        catalog = read_po(fp, locale=lang)
    catalog.get(messages.MESSAGES[msg_id], context=msg_id).string = text
    out = io.BytesIO()
    write_po(out, catalog)
    replace(po, out.getvalue())


def edit_flow(flows: Path, change) -> None:
    path = flows / "alert.yml"
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    change(data)
    replace(path, yaml.safe_dump(data, sort_keys=False, allow_unicode=True).encode("utf-8"))


def field(data: dict, name: str) -> dict:
    return next(f for f in data["fields"] if f["name"] == name)


def place_first(data: dict) -> None:
    data["fields"].insert(0, data["fields"].pop(data["fields"].index(field(data, "place"))))


def eventually(probe, timeout: float = WAIT):
    """probe()'s first truthy value, polled as requests would come; fails after `timeout`."""
    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if value or time.monotonic() > deadline:
            assert value, f"not seen within {timeout} s"
            return value
        time.sleep(0.1)


# --- the catalogs -------------------------------------------------------------------------

def test_a_translation_saved_on_disk_is_the_next_text_without_a_restart(locales):
    before = messages.text("submitted", "sw")
    assert "{reference}" in before
    new = "Asante sana. Ripoti {reference} imepokelewa, tutakujibu."
    translate(locales, "sw", "submitted", new)
    started = time.monotonic()
    eventually(lambda: messages.text("submitted", "sw") == new)
    assert time.monotonic() - started < live_files.CHECK_SECONDS + live_files.SETTLE_SECONDS + 1
    assert messages.render("submitted", "sw", {"reference": "482913"}) == new.format(reference="482913")
    assert messages.text("submitted", "ln") != new  # each language its own catalog
    # compiled once by this process (the console compiles it itself), never read half-written
    assert (locales / "sw" / "LC_MESSAGES" / "messages.mo").is_file()
    assert not list(locales.glob("*/LC_MESSAGES/.*.tmp"))


def test_between_two_looks_a_request_costs_no_stat(locales, monkeypatch):
    messages.text("welcome", "fr")  # loaded
    looked = []
    real = live_files.LiveFiles._stat
    monkeypatch.setattr(live_files.LiveFiles, "_stat", lambda self: looked.append(1) or real(self))
    started = time.monotonic()
    count = 0
    while time.monotonic() - started < 0.5:
        messages.text("welcome", "fr")
        count += 1
    assert count > 1000 and len(looked) <= 1


def test_a_broken_catalog_keeps_the_last_good_one_and_says_why(locales, caplog):
    good = messages.text("welcome", "sw")
    mo = locales / "sw" / "LC_MESSAGES" / "messages.mo"
    assert mo.is_file()
    caplog.set_level(logging.ERROR, logger="bot.live_files")
    mo.write_bytes(b"\xde\x12\x04\x95 cut short")  # a .mo copied by hand, truncated
    time.sleep(live_files.CHECK_SECONDS + live_files.SETTLE_SECONDS + 0.2)
    for _ in range(3):
        assert messages.text("welcome", "sw") == good
        time.sleep(live_files.CHECK_SECONDS)
    errors = [r for r in caplog.records if "cannot be used" in r.getMessage()]
    assert len(errors) == 1 and str(mo.parent / "messages.po") in errors[0].getMessage()  # once, not each second
    new = "Habari, hii ni laini ya tahadhari. Tuambie kilichotokea, wapi na lini."
    translate(locales, "sw", "welcome", new)  # the next save recompiles it
    eventually(lambda: messages.text("welcome", "sw") == new)


# --- the flow -----------------------------------------------------------------------------

def test_a_moved_question_is_the_next_order_without_a_restart(flows):
    flow = bot_flow.alert_flow()
    assert flow.slots[:2] == ["category", "place"]
    trained = rasa_project.domain(flow)  # the domain Rasa was trained with
    edit_flow(flows, place_first)
    moved = eventually(lambda: bot_flow.alert_flow().slots[0] == "place" and bot_flow.alert_flow())
    assert moved.slots[:2] == ["place", "category"]
    # Rasa's trained form would ask the category first: the validation names the place
    assert next_question(moved, {}, trained) == [{"event": "slot", "timestamp": None, "name": REQUESTED,
                                                  "value": "place"}]
    assert next_question(moved, {"place": "text:Kiwanja"}, trained)[0]["value"] == "category"
    assert next_question(flow, {}, trained) == []  # the same order: Rasa chooses, as before


def test_an_invalid_flow_keeps_the_last_good_one_and_the_next_save_is_read(flows, caplog):
    good = bot_flow.alert_flow()
    caplog.set_level(logging.ERROR, logger="bot.live_files")
    path = flows / "alert.yml"
    text = path.read_text(encoding="utf-8")
    path.write_text(text.replace("fields:", "fields: [oops", 1), encoding="utf-8")  # by hand, in place
    time.sleep(live_files.CHECK_SECONDS + live_files.SETTLE_SECONDS + 0.2)
    assert bot_flow.alert_flow() is good
    replace(path, text.replace("ask: ask_place", "ask: no_such_message").encode("utf-8"))  # YAML, refused
    time.sleep(live_files.CHECK_SECONDS + live_files.SETTLE_SECONDS + 0.2)
    assert bot_flow.alert_flow() is good
    reasons = [r.getMessage() for r in caplog.records if "cannot be used" in r.getMessage()]
    assert len(reasons) == 2 and "no_such_message" in reasons[1]
    replace(path, text.encode("utf-8"))
    edit_flow(flows, place_first)
    assert eventually(lambda: bot_flow.alert_flow().slots[0] == "place")


FILLED = {"category": "ATTACK", "place": "text:Kiwanja", "occurred_at": {"at": None, "option": "today", "text": None},
          "people_affected": {"n": 2, "many": False}}


def without_perpetrator(data: dict) -> None:
    data["fields"].remove(field(data, "perpetrator"))


def test_a_field_removed_by_hand_is_not_asked_and_its_ask_action_asks_the_next_question(flows):
    trained = rasa_project.domain(bot_flow.alert_flow())
    edit_flow(flows, without_perpetrator)
    flow = eventually(lambda: "perpetrator" not in bot_flow.alert_flow().slots and bot_flow.alert_flow())
    assert next_question(flow, dict(FILLED), trained)[0]["value"] == "confirmed"
    # Rasa chose the question before the file changed: the reporter is asked the next one
    tracker = Tracker("reporter-key", {"language": "fr", **FILLED}, {"text": "", "metadata": {}},
                      [], False, None, {}, None)
    dispatcher = CollectingDispatcher()
    events = asyncio.run(form.Ask_perpetrator().run(dispatcher, tracker, trained))
    assert [e["value"] for e in events if e["name"] == REQUESTED] == ["confirmed"]
    assert [m["custom"]["msg"] for m in dispatcher.messages] == [flow.confirm_ask]


def test_a_field_the_trained_model_lacks_is_skipped_and_logged(flows, caplog, monkeypatch):
    monkeypatch.setattr(form, "_untrained_logged", set())  # logged once per process
    full = bot_flow.alert_flow()
    data = yaml.safe_load((flows / "alert.yml").read_text(encoding="utf-8"))
    smaller = copy.deepcopy(data)
    without_perpetrator(smaller)
    trained = rasa_project.domain(bot_flow.parse(smaller))  # trained before perpetrator was added
    caplog.set_level(logging.ERROR, logger="service.actions.form")
    assert next_question(full, dict(FILLED), trained) == []  # Rasa's own next question: the confirmation
    assert any("perpetrator" in r.getMessage() and "alerte train" in r.getMessage() for r in caplog.records)
    assert "action_ask_perpetrator" in {a().name() for a in form.AskFieldAction.__subclasses__()}


def test_a_flow_missing_at_start_still_fails_loudly(tmp_path, monkeypatch):
    monkeypatch.setattr(bot_flow, "FLOWS_DIR", tmp_path / "nowhere")
    with pytest.raises(FileNotFoundError):
        bot_flow.alert_flow()


# --- the real action server ---------------------------------------------------------------

@pytest.fixture
def action_server(tmp_path, flows, locales):
    database = f"sqlite:///{tmp_path / 'actions.db'}"
    engine = create_engine(database)
    Base.metadata.create_all(engine)
    engine.dispose()
    port = stack.free_port()
    log = tmp_path / "actions.log"
    env = stack.child_env(DATABASE_URL=database, FLOWS_DIR=str(flows), LOCALES_DIR=str(locales))
    process = stack.start_actions(port, log, env)
    try:
        stack.wait_http(f"http://127.0.0.1:{port}/health", 120, process)
    except Exception:
        stack.stop(process)
        raise RuntimeError(log.read_text()[-3000:])
    yield f"http://127.0.0.1:{port}", process, log
    stack.stop(process)


def call(url: str, action: str, domain: dict, slots: dict | None = None, text: str = "") -> dict:
    tracker = {"sender_id": f"reporter-{uuid.uuid4().hex[:6]}", "slots": {"language": "sw", **(slots or {})},
               "latest_message": {"text": text, "intent": {}, "entities": [], "metadata": {}},
               "events": [], "paused": False, "followup_action": None, "active_loop": {"name": "alert_form"},
               "latest_action_name": "action_listen"}
    answer = requests.post(f"{url}/webhook", json={"next_action": action, "sender_id": tracker["sender_id"],
                                                   "tracker": tracker, "domain": domain,
                                                   "version": "3.6.21"}, timeout=30)
    assert answer.ok, answer.text
    return answer.json()


def test_the_running_action_server_follows_the_saved_flow_and_its_reply_the_saved_text(
        action_server, flows, locales):
    url, process, log = action_server
    domain = rasa_project.domain(bot_flow.alert_flow())  # as trained, before the edits

    def asked() -> dict:
        [reply] = call(url, "action_ask_place", domain)["responses"]
        return reply["custom"]

    assert asked() == {"msg": "ask_place", "lang": "sw"}
    # an editor words the place question differently (set_ask), a translator rewrites its Swahili
    edit_flow(flows, lambda data: field(data, "place").update(ask="subscribe_place"))
    new = "Ni kijiji au mji gani? Andika jina lake, tafadhali."
    translate(locales, "sw", "subscribe_place", new)
    reply = eventually(lambda: asked()["msg"] == "subscribe_place" and asked())
    assert reply == {"msg": "subscribe_place", "lang": "sw"}
    # the channel renders that reply in the web service: with the text just saved
    eventually(lambda: messages.render_payload(reply, "fr") == new)
    # the questions reordered: the trained form asks the category first, the server names the place
    edit_flow(flows, place_first)

    def requested() -> list:
        events = call(url, "validate_alert_form", domain)["events"]
        return [e["value"] for e in events if e.get("name") == REQUESTED]

    assert eventually(lambda: requested() == ["place"])
    # a hand edit that breaks the file: the server keeps the last good flow and says why
    path = flows / "alert.yml"
    path.write_text(path.read_text(encoding="utf-8").replace("fields:", "fields: [oops", 1), encoding="utf-8")
    time.sleep(live_files.CHECK_SECONDS + live_files.SETTLE_SECONDS + 0.5)
    assert requested() == ["place"] and asked()["msg"] == "subscribe_place"
    assert process.poll() is None  # the same process all along, never restarted
    eventually(lambda: "cannot be used" in log.read_text())
