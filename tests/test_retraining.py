"""Retraining from the console (service/retraining.py, service/console/retrain.py) on real
SQLite and PostgreSQL and a real Redis: the examples file the console writes, asking for a
run (one at a time, on the training queue only), the gate's arithmetic, a run whose Rasa
server is down, and what a restart serves after a refusal. The real training, evaluation
and switch of a running Rasa server, refused and accepted, are in
tests/browser/test_retrain_browser.py."""

from __future__ import annotations

import re
from datetime import timedelta
from pathlib import Path

import pytest
import yaml
from rq import Queue
from sqlalchemy import select

from bot import rasa_project
from service import accounts, retraining, scheduler
from service.console import retrain as page
from service.models import TrainingRun, utcnow
from service.queue import RETRAIN, TRAINING_QUEUE
from tests.test_console import (  # noqa: F401  fixtures
    analyst, audit_actions, db, make_operator, post_form, shown, signed_in,
)


@pytest.fixture
def data_dir(tmp_path) -> Path:
    folder = tmp_path / "nlu-data"
    folder.mkdir()
    return folder


@pytest.fixture
def app_config(app_config, data_dir):
    return {**app_config, "NLU_DATA_DIR": str(data_dir), "RASA_URL": "http://127.0.0.1:9"}


@pytest.fixture
def translator(db):
    return make_operator(db, "traductrice", ["translator"])


@pytest.fixture
def training_queue(app):
    queue = Queue(TRAINING_QUEUE, connection=app.extensions["redis"])
    queue.empty()
    yield queue
    queue.empty()


def add(client, text, intent="report_attack", language="sw"):
    return post_form(client, "/console/retrain", "/console/retrain/examples", text=text, intent=intent,
                     language=language)


# --- the gate's arithmetic ----------------------------------------------------------------

def test_a_language_that_loses_more_than_the_margin_refuses_the_candidate():
    before = {"fr": {"n": 10, "intent": 90.0, "category": 80.0}, "sw": {"n": 10, "intent": 90.0, "category": 80.0},
              "ln": {"n": 10, "intent": 70.0, "category": None}}
    after = {"fr": {"n": 10, "intent": 88.5, "category": 95.0}, "sw": {"n": 10, "intent": 90.0, "category": 70.0},
             "ln": {"n": 10, "intent": 71.0, "category": None}}
    assert retraining.compare(before, after, 2.0) == ["sw category: 80.0 % -> 70.0 % (margin 2 points)"]
    assert retraining.compare(before, after, 10.0) == []  # 10 points lost: within a margin of 10
    assert retraining.compare(before, {"fr": after["fr"], "sw": after["sw"]}, 10.0) == [
        "ln intent: 70.0 % -> none (margin 10 points)"]  # a language the candidate no longer answers


def test_scores_are_per_language_over_the_labelled_messages():
    class Engine:  # answers "greet" to everything: every report is missed
        def parse(self, text):
            return {"intent": {"name": "greet", "confidence": 0.99}, "entities": []}
    messages = [{"text": "habari", "language": "sw", "intent": "greet"},
                {"text": "wameua watu kumi", "language": "sw", "intent": "report_alert", "category": "ATTACK"},
                {"text": "bonjour", "language": "fr", "intent": "greet"}]
    scores = retraining.score(Engine(), messages)
    assert scores["sw"] == {"n": 2, "intent": 50.0, "category": 0.0}
    assert scores["fr"] == {"n": 1, "intent": 100.0, "category": None}


# --- asking for a run -----------------------------------------------------------------------

def test_one_run_at_a_time_on_the_training_queue_only(app, client, db, translator, training_queue):
    signed_in(client, "traductrice")
    answer = post_form(client, "/console/retrain", "/console/retrain/run")
    assert answer.status_code == 302
    run = db.scalars(select(TrainingRun)).one()
    assert (run.status, run.operator_id, run.margin) == ("queued", translator, 2.0)
    jobs = training_queue.get_jobs()
    assert [(j.func_name, j.args) for j in jobs] == [(RETRAIN, (run.id,))]
    assert Queue("alerte", connection=app.extensions["redis"]).count == 0  # never on the replies' queue
    again = post_form(client, "/console/retrain", "/console/retrain/run")
    assert "Un apprentissage est déjà en cours" in shown(client.get(again.location))
    assert db.scalars(select(TrainingRun)).all() == [run] and training_queue.count == 1
    assert "model.retrain" in audit_actions(db)
    page_text = client.get("/console/retrain").get_data(as_text=True)
    assert '<meta http-equiv="refresh"' in page_text and 'id="retrain" disabled' in page_text


def test_a_run_whose_worker_died_is_taken_as_failed_after_the_timeout(app, db, translator):
    operator = db.get(accounts.Operator, translator)
    stale = TrainingRun(status="training", progress=30, margin=2.0, created_at=utcnow() - timedelta(hours=2))
    db.add(stale)
    db.commit()
    fresh = retraining.request(db, operator, {**app.config, "RETRAIN_TIMEOUT": 3600})
    db.commit()
    db.refresh(stale)
    assert stale.status == "failed" and "did not finish" in stale.reason
    assert fresh.status == "queued"
    with pytest.raises(retraining.Busy):
        retraining.request(db, operator, app.config)


def test_only_the_training_worker_takes_the_training_queue():
    assert TRAINING_QUEUE not in scheduler.queue_names()
    assert scheduler.queue_names(("training",)) == [TRAINING_QUEUE]


def test_a_run_with_the_rasa_server_down_fails_and_says_why(app, db, monkeypatch, tmp_path):
    monkeypatch.setattr(rasa_project, "MODELS_DIR", tmp_path / "models")
    run = TrainingRun(status="queued", progress=0, margin=2.0)
    db.add(run)
    db.commit()
    assert retraining.run(app, db, run.id) == "failed"
    db.refresh(run)
    assert run.status == "failed" and run.finished_at is not None and "does not answer" in run.reason
    assert retraining.run(app, db, run.id) == "failed"  # a second delivery of the job does nothing
    assert not (tmp_path / "models" / "candidates").exists()  # nothing was trained


def test_a_restart_serves_the_accepted_model_when_the_current_inputs_were_refused(monkeypatch, tmp_path):
    models = tmp_path / "models"
    models.mkdir()
    monkeypatch.setattr(rasa_project, "MODELS_DIR", models)
    trained = []
    monkeypatch.setattr(rasa_project, "train", lambda force=False: trained.append(1) or models / "fresh.tar.gz")
    (models / "alerte-accepted.tar.gz").write_bytes(b"model")
    rasa_project.record_decision(models, serving="alerte-accepted.tar.gz")
    assert rasa_project.model_to_serve() == models / "fresh.tar.gz" and trained == [1]  # nothing refused
    rasa_project.record_decision(models, refused=rasa_project.fingerprint())
    assert rasa_project.model_to_serve() == models / "alerte-accepted.tar.gz" and trained == [1]
    assert rasa_project.decisions(models) == {"serving": "alerte-accepted.tar.gz",
                                              "refused": [rasa_project.fingerprint()]}


# --- the examples -------------------------------------------------------------------------

def test_a_translator_adds_an_example_rasa_can_read_and_it_is_audited(client, db, translator, data_dir):
    signed_in(client, "traductrice")
    answer = add(client, "  wameua\twatu  watatu\x07 huko  kiwanja ")
    assert answer.status_code == 302
    path = data_dir / page.EXAMPLES_FILE
    doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    assert doc["version"] == "3.1"
    (block,) = doc["nlu"]
    assert block["intent"] == "report_attack" and block["intent"] in rasa_project.INTENTS
    (example,) = block["examples"]
    assert example["text"] == "wameua watu watatu huko kiwanja"  # control characters and runs of spaces gone
    assert example["metadata"]["language"] == "sw" and example["metadata"]["by"] == translator
    listing = shown(client.get("/console/retrain"))
    assert "wameua watu watatu huko kiwanja" in listing and "Attaque" in listing
    assert "model.example_added" in audit_actions(db)


def test_duplicates_unknown_intents_and_empty_texts_are_refused(client, db, translator, data_dir):
    signed_in(client, "traductrice")
    add(client, "Wameua watu")
    add(client, "wameua WATU")
    add(client, "habari", intent="not_an_intent")
    add(client, "habari", language="en")
    add(client, " \x00 ")
    add(client, "x" * (page.MAX_EXAMPLE + 1))
    assert [e["text"] for e in page.load_examples(data_dir / page.EXAMPLES_FILE)] == ["Wameua watu"]
    text = shown(client.get("/console/retrain"))
    assert "Cet exemple existe déjà." not in text  # flashed once, then gone


def test_removing_an_example_needs_the_list_as_it_was(client, db, translator, data_dir):
    signed_in(client, "traductrice")
    add(client, "wameua watu")
    add(client, "nabulaki ba soda", intent="greet", language="ln")
    stale = post_form(client, "/console/retrain", "/console/retrain/examples/0/delete", text="something else")
    assert stale.status_code == 409
    post_form(client, "/console/retrain", "/console/retrain/examples/0/delete", text="wameua watu")
    assert [e["text"] for e in page.load_examples(data_dir / page.EXAMPLES_FILE)] == ["nabulaki ba soda"]
    assert "model.example_removed" in audit_actions(db)


def test_only_translators_and_administrators_teach_the_bot(app, db, analyst):
    make_operator(db, "diffuseur", ["broadcaster"])
    make_operator(db, "admin", ["administrator"])
    for name, status in (("analyste", 403), ("diffuseur", 403), ("admin", 200)):
        client = signed_in(app.test_client(), name)
        assert client.get("/console/retrain").status_code == status, name
        assert client.post("/console/retrain/run").status_code in (400, status), name  # no token, no run


def test_the_page_shows_each_runs_scores_and_why_it_was_refused(client, db, translator):
    db.add(TrainingRun(status="refused", step="refused", progress=100, margin=2.0,
                       model_name="alerte-0123456789abcdef.tar.gz",
                       scores={"serving": {"sw": {"n": 12, "intent": 91.7, "category": 90.0}},
                               "candidate": {"sw": {"n": 12, "intent": 58.3, "category": 50.0}},
                               "losses": retraining.losses({"sw": {"intent": 91.7, "category": 90.0}},
                                                           {"sw": {"intent": 58.3, "category": 90.0}}, 2.0)},
                       reason="sw intent: 91.7 % -> 58.3 % (margin 2 points)", finished_at=utcnow()))
    db.commit()
    signed_in(client, "traductrice")
    text = shown(client.get("/console/retrain"))
    assert "refusé : le bot garde l'ancien modèle" in text
    assert "Swahili, type de message : 91.7 % avec le modèle en service, 58.3 % avec le nouveau " \
        "(plus de 2.0 points perdus)" in text
    assert "catégorie de l'alerte" not in text  # the category kept its accuracy
    assert re.search(r"91\.7 % / 58\.3 %", text) and "le bot ne répond pas" in text  # Rasa is down here
    assert '<meta http-equiv="refresh"' not in text  # nothing running: no reloading
