"""Flow editors in the console (service/console/flows.py), on real SQLite and PostgreSQL,
always on a copy of flows/ in tmp_path: a translator reorders the questions and the
answers of a menu and bot/flow.py reads the saved file; a flow the loader refuses is not
written and the editor reads why; each save keeps the replaced file in the history, from
which it is restored byte for byte; every save and restore is in the audit log."""

from __future__ import annotations

import hashlib
import html
import re
import shutil
from pathlib import Path

import pytest
from sqlalchemy import select

import service.console.flows  # noqa: F401  the pages, until "flows" is in service.console.PAGES
from bot.flow import load
from service.models import AuditEntry
from tests.test_console import (  # noqa: F401  fixtures
    analyst, audit_actions, db, make_operator, shown, signed_in,
)

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def flows(tmp_path) -> Path:
    copy = tmp_path / "flows"
    shutil.copytree(ROOT / "flows", copy)
    return copy


@pytest.fixture
def app_config(app_config, flows):
    return {**app_config, "FLOWS_DIR": str(flows)}


@pytest.fixture
def editor(db):
    return make_operator(db, "redactrice", ["translator"])


def token_and_base(client, path="/console/flows"):
    page = client.get(path).get_data(as_text=True)
    token = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)
    base = re.search(r'name="base" value="([^"]+)"', page).group(1)
    return token, base


def change(client, **fields):
    token, base = token_and_base(client)
    return client.post("/console/flows", data={"csrf_token": token, "base": base, **fields})


def names(path: Path) -> list[str]:
    return [f.name for f in load(path).fields]


def audit_rows(db, action):
    db.rollback()
    return list(db.scalars(select(AuditEntry).where(AuditEntry.action == action).order_by(AuditEntry.id)))


def test_an_analyst_may_not_edit_the_flow(client, analyst, flows):
    signed_in(client, "analyste")
    assert client.get("/console/flows").status_code == 403
    assert client.get("/console/flows/history").status_code == 403
    assert client.post("/console/flows", data={"op": "move_field"}).status_code in (400, 403)


def test_the_page_shows_the_fields_and_says_changes_apply_without_a_restart(client, editor, flows):
    signed_in(client, "redactrice")
    with client.session_transaction() as cookie:
        cookie["console_lang"] = "en"
    page = shown(client.get("/console/flows"))
    for name in ("category", "place", "occurred_at", "people_affected", "perpetrator"):
        assert f"<code>{name}</code>" in page
    assert "when.last_night" in page and "ask_people_hurt" in page
    assert "within a few seconds, without a restart" in page and "alerte train" not in page


def test_a_reorder_is_saved_and_read_back_by_the_bot_loader(client, db, editor, flows):
    signed_in(client, "redactrice")
    original = (flows / "alert.yml").read_bytes()
    answer = change(client, op="move_field", field="perpetrator", direction="up")
    assert answer.status_code == 302
    assert names(flows / "alert.yml") == ["category", "place", "occurred_at", "perpetrator", "people_affected"]
    assert change(client, op="move_option", field="occurred_at", option="1", direction="up").status_code == 302
    when = load(flows / "alert.yml").field("occurred_at")
    assert [(o.number, o.value) for o in when.options][:2] == [(1, "today"), (2, "now")]
    text = (flows / "alert.yml").read_text(encoding="utf-8")
    assert "# The alert conversation" in text and "# resolved against the gazetteer" in text  # comments kept
    kept = sorted((flows / ".history").iterdir())
    assert len(kept) == 2 and re.fullmatch(r"alert-\d{8}T\d{12}Z-redactrice\.yml", kept[0].name)
    assert kept[0].read_bytes() == original
    saves = audit_rows(db, "flow.save")
    assert [r.after["op"] for r in saves] == ["move_field", "move_option"]
    assert saves[0].before["sha256"] == hashlib.sha256(original).hexdigest()
    assert saves[0].before["yaml"] == original.decode("utf-8")
    assert saves[1].after["yaml"] == text and saves[1].target_id == "alert"


def test_the_question_and_who_is_asked_change(client, editor, flows):
    signed_in(client, "redactrice")
    assert change(client, op="set_ask", field="perpetrator", ask="ask_people").status_code == 302
    assert load(flows / "alert.yml").field("perpetrator").ask == "ask_people"
    assert change(client, op="set_only_for", field="perpetrator", only_for=["CLASH", "ATTACK"]).status_code == 302
    assert load(flows / "alert.yml").field("perpetrator").only_for == ("ATTACK", "CLASH")
    assert change(client, op="set_only_for", field="perpetrator").status_code == 302
    assert load(flows / "alert.yml").field("perpetrator").only_for == ()


@pytest.mark.parametrize("fields, reason", [
    ({"op": "set_only_for", "field": "perpetrator", "only_for": ["ATTACK", "PICNIC"]},
     "unknown categories in only_for"),
    ({"op": "set_only_for", "field": "people_affected", "only_for": ["ATTACK"]},
     "not in only_for"),  # ask_for names CLASH, ABDUCTION...: the loader's own reason
    ({"op": "set_ask", "field": "place", "ask": "no_such_message"}, "no_such_message"),
])
def test_a_flow_the_loader_refuses_is_not_written(client, db, editor, flows, fields, reason):
    signed_in(client, "redactrice")
    original = (flows / "alert.yml").read_bytes()
    answer = change(client, **fields)
    assert answer.status_code == 422 and reason in shown(answer)
    assert (flows / "alert.yml").read_bytes() == original
    assert not (flows / ".history").exists() and not list(flows.glob(".*.tmp"))
    assert audit_rows(db, "flow.save") == []


def test_the_last_answer_of_a_menu_cannot_be_removed(client, editor, flows):
    signed_in(client, "redactrice")
    for _ in range(4):
        assert change(client, op="remove_option", field="occurred_at", option="0").status_code == 302
    assert [o.value for o in load(flows / "alert.yml").field("occurred_at").options] == ["earlier"]
    before = (flows / "alert.yml").read_bytes()
    answer = change(client, op="remove_option", field="occurred_at", option="0")
    assert answer.status_code == 422 and "occurred_at" in shown(answer)
    assert (flows / "alert.yml").read_bytes() == before


def test_the_loader_reason_is_shown_when_the_candidate_is_invalid(client, editor, flows, monkeypatch):
    from bot import flow as bot_flow
    signed_in(client, "redactrice")
    original = (flows / "alert.yml").read_bytes()
    token, base = token_and_base(client)

    def refuse(path):
        raise bot_flow.FlowError(f"{path}: field 2: type must be one of category")
    monkeypatch.setattr(bot_flow, "load", refuse)  # the page itself shows the file as broken
    answer = client.post("/console/flows", data={"csrf_token": token, "base": base, "op": "move_field",
                                                 "field": "place", "direction": "down"})
    assert answer.status_code == 422 and "alert.yml: field 2: type must be one of category" in shown(answer)
    assert (flows / "alert.yml").read_bytes() == original


def test_a_stale_form_is_refused(client, editor, flows):
    signed_in(client, "redactrice")
    token, base = token_and_base(client)
    assert change(client, op="move_field", field="place", direction="down").status_code == 302
    answer = client.post("/console/flows", data={"csrf_token": token, "base": base, "op": "move_field",
                                                 "field": "category", "direction": "down"})
    assert answer.status_code == 409
    assert names(flows / "alert.yml")[0] == "category"


def test_history_shows_the_diff_and_a_rollback_restores_the_exact_file(client, db, editor, flows):
    signed_in(client, "redactrice")
    original = (flows / "alert.yml").read_bytes()
    assert change(client, op="move_field", field="category", direction="down").status_code == 302
    moved = (flows / "alert.yml").read_bytes()
    page = client.get("/console/flows/history")
    text = html.unescape(page.get_data(as_text=True))
    assert page.status_code == 200 and "--- alert-" in text and "+++ alert.yml" in text and re.search(r"^[-+]  - name: (category|place)", text, re.M)
    name = re.search(r'/console/flows/history/(alert-[^/"]+\.yml)/rollback', text).group(1)
    token, base = token_and_base(client, "/console/flows/history")
    answer = client.post(f"/console/flows/history/{name}/rollback", data={"csrf_token": token, "base": base})
    assert answer.status_code == 302
    assert (flows / "alert.yml").read_bytes() == original
    kept = sorted(p.read_bytes() for p in (flows / ".history").iterdir())
    assert sorted([original, moved]) == kept  # the rollback is itself kept: it can be undone
    rollbacks = audit_rows(db, "flow.rollback")
    assert len(rollbacks) == 1 and rollbacks[0].after["restored"] == name
    assert rollbacks[0].after["sha256"] == hashlib.sha256(original).hexdigest()
    assert rollbacks[0].before["sha256"] == hashlib.sha256(moved).hexdigest()
    assert audit_actions(db)[-2:] == ["flow.save", "flow.rollback"]


def test_a_rollback_to_a_version_the_loader_refuses_is_not_written(client, db, editor, flows):
    signed_in(client, "redactrice")
    (flows / ".history").mkdir()
    bad = flows / ".history" / "alert-20260101T000000000000Z-someone.yml"
    bad.write_text((flows / "alert.yml").read_text().replace("ask: ask_place\n", "ask: gone_message\n"))
    current = (flows / "alert.yml").read_bytes()
    token, base = token_and_base(client, "/console/flows/history")
    answer = client.post(f"/console/flows/history/{bad.name}/rollback", data={"csrf_token": token, "base": base})
    assert answer.status_code == 422 and "gone_message" in shown(answer)
    assert (flows / "alert.yml").read_bytes() == current and audit_rows(db, "flow.rollback") == []
    assert client.post("/console/flows/history/..%2Falert.yml/rollback",
                       data={"csrf_token": token, "base": base}).status_code == 404


def test_saves_and_rollbacks_need_the_csrf_token(client, db, editor, flows):
    signed_in(client, "redactrice")
    original = (flows / "alert.yml").read_bytes()
    _, base = token_and_base(client)
    answer = client.post("/console/flows", data={"base": base, "op": "move_field", "field": "place",
                                                 "direction": "down"})
    assert answer.status_code == 400
    (flows / ".history").mkdir()
    shutil.copy(flows / "alert.yml", flows / ".history" / "alert-20260101T000000000000Z-someone.yml")
    assert client.post("/console/flows/history/alert-20260101T000000000000Z-someone.yml/rollback",
                       data={"base": base, "csrf_token": "forged"}).status_code == 400
    assert (flows / "alert.yml").read_bytes() == original and audit_rows(db, "flow.save") == []


def test_a_removed_answer_is_added_back_at_the_end_and_no_unknown_one_can_be(client, db, editor, flows):
    signed_in(client, "redactrice")
    assert change(client, op="remove_option", field="occurred_at", option="2").status_code == 302  # last_night
    flow = load(flows / "alert.yml")
    assert [o.value for o in flow.field("occurred_at").options] == ["now", "today", "yesterday", "earlier"]
    page = client.get("/console/flows").get_data(as_text=True)
    assert '<option value="last_night">last_night (when.last_night)</option>' in page
    assert change(client, op="add_option", field="occurred_at", value="last_night").status_code == 302
    options = load(flows / "alert.yml").field("occurred_at").options
    assert [(o.number, o.value, o.label) for o in options][-1] == (5, "last_night", "when.last_night")
    for value in ("last_night", "next_week", ""):  # already there; one the bot could not read; none
        before = (flows / "alert.yml").read_bytes()
        answer = change(client, op="add_option", field="occurred_at", value=value)
        assert answer.status_code == 422 and "peut reprendre" in shown(answer)
        assert (flows / "alert.yml").read_bytes() == before
    last = audit_rows(db, "flow.save")[-1].after
    assert (last["op"], last["field"], last["option"]) == ("add_option", "occurred_at", "last_night")


def test_the_question_for_a_kind_of_report_is_set_and_cleared(client, editor, flows):
    signed_in(client, "redactrice")
    assert change(client, op="set_ask_for", field="people_affected", category="ATTACK",
                  ask="ask_people_victims").status_code == 302
    field = load(flows / "alert.yml").field("people_affected")
    assert field.question("ATTACK") == "ask_people_victims" and field.question("CLASH") == "ask_people_hurt"
    assert change(client, op="set_ask_for", field="people_affected", category="CLASH", ask="").status_code == 302
    field = load(flows / "alert.yml").field("people_affected")
    assert field.question("CLASH") == "ask_people"  # the field's own question again
    for fields in ({"category": "ATTACK", "ask": "no_such_message"}, {"category": "NOPE", "ask": "ask_people"}):
        before = (flows / "alert.yml").read_bytes()
        assert change(client, op="set_ask_for", field="people_affected", **fields).status_code == 422
        assert (flows / "alert.yml").read_bytes() == before
