"""Retraining from the console, for real (issue 12): a translator adds examples and presses
"Retrain now"; the training worker (a real RQ worker on the training queue) trains a real
Rasa model, scores it and the serving model on held-out messages, and the running Rasa
server switches only when no language lost accuracy.

Small data so that it takes seconds (tests/retrain_data.py: a dozen examples per intent
and language, the logistic-regression variant of the config, a dozen held-out messages per
language) on a Rasa server of this test's own, never the session's. First a candidate
taught that Swahili reports are greetings: refused, the old model keeps serving; then one
good example more: accepted, the server serves the candidate. Once, on PostgreSQL: the
database side is tested on both backends by tests/test_retraining.py.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest
import requests
from selenium.common.exceptions import WebDriverException
from selenium.webdriver.common.by import By
from sqlalchemy import select

from bot import rasa_project
from service import scheduler, stack
from service.console import retrain as page
from service.models import TrainingRun
from tests import retrain_data
from tests.browser.pages import click, text_of, type_into



class SmallRasa:
    def __init__(self, folder: Path):
        self.folder = folder
        self.data = retrain_data.small_data(folder / "data")
        self.heldout = retrain_data.small_heldout(folder / "heldout.yml")
        self.models = folder / "models"
        self.models.mkdir()
        self.port = stack.free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.process = None

    def start(self) -> None:
        rasa_project.write_build()
        import subprocess
        subprocess.run(rasa_project.train_command(retrain_data.SMALL_CONFIG, self.data, self.models,
                                                  "alerte-initial"),
                       check=True, env=stack.child_env(), stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
        endpoints = stack.write_endpoints(self.folder / "endpoints.yml", "http://127.0.0.1:9/webhook", None)
        self.process = stack.start_rasa(self.models / "alerte-initial.tar.gz", endpoints, self.port,
                                        self.folder / "rasa.log")
        stack.wait_http(f"{self.url}/status", 300, self.process, ok=stack.rasa_ready)

    def serving(self) -> str:
        return Path(requests.get(f"{self.url}/status", timeout=10).json()["model_file"]).name


@pytest.fixture
def small_rasa(live, tmp_path, monkeypatch):
    if live.backend != "postgresql":
        pytest.skip("one real retraining per session (PostgreSQL); both backends: tests/test_retraining.py")
    server = SmallRasa(tmp_path)
    server.start()
    monkeypatch.setattr(rasa_project, "MODELS_DIR", server.models)
    monkeypatch.setitem(live.app.config, "RASA_URL", server.url)
    monkeypatch.setitem(live.app.config, "NLU_DATA_DIR", str(server.data))
    monkeypatch.setitem(live.app.config, "RETRAIN_CONFIG", str(retrain_data.SMALL_CONFIG))
    monkeypatch.setitem(live.app.config, "RETRAIN_HELDOUT", str(server.heldout))
    monkeypatch.setitem(live.app.config, "RETRAIN_MARGIN", 2.0)
    yield server
    stack.stop(server.process)


def retrain_and_wait(browser, live) -> tuple[TrainingRun, set[str]]:
    """Press the button, run the training worker (a real RQ worker, on the training queue
    only) until the job is done, while the page, which reloads itself every 5 s while a
    run is unfinished, is watched from another thread; returns the run and the states
    the page showed meanwhile."""
    click(browser, "#retrain")
    seen: set[str] = set()
    done = threading.Event()

    def watch() -> None:
        while not done.is_set():
            try:
                seen.add(browser.find_element(By.CSS_SELECTOR, "tr.run td.status").text)
            except WebDriverException:  # the page is reloading
                pass
            time.sleep(0.5)

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    try:
        scheduler.work(live.app, burst=True, roles=("training",))
    finally:
        done.set()
        watcher.join(10)
    with live.session() as db:
        run = db.scalars(select(TrainingRun).order_by(TrainingRun.id.desc())).first()
    assert run is not None and run.status in ("accepted", "refused"), (run and run.reason, seen)
    browser.refresh()
    return run, seen


def test_a_retraining_that_loses_swahili_is_refused_and_one_that_does_not_is_accepted(
        browser, live, login, small_rasa, screenshot):
    login(browser, live, roles=("translator",))
    browser.get(f"{live.url}/console/retrain")
    assert small_rasa.serving() == "alerte-initial.tar.gz"
    assert "alerte-initial.tar.gz" in text_of(browser, "#serving")

    # Taught wrong: every Swahili report of the training data said to be a greeting.
    wrong = [{"intent": "greet", "text": text, "language": "sw", "by": None, "at": None}
             for intent in ("report_attack", "report_armed_presence", "report_abduction", "report_looting",
                            "report_displacement", "report_clash")
             for text in retrain_data.examples("sw", intent, per_intent=40)]
    page.write_examples(small_rasa.data / page.EXAMPLES_FILE, wrong)
    browser.refresh()
    refused, seen = retrain_and_wait(browser, live)
    assert seen & {"apprentissage en cours", "mesure sur les messages de contrôle"}, seen  # progress shown
    assert refused.status == "refused", refused.reason
    assert refused.reason.startswith("sw intent:") or "sw intent:" in refused.reason
    assert refused.scores["candidate"]["sw"]["intent"] < refused.scores["serving"]["sw"]["intent"] - 2
    assert small_rasa.serving() == "alerte-initial.tar.gz"  # the old model keeps serving
    assert not (small_rasa.models / "candidates" / refused.model_name).exists()
    assert refused.fingerprint in rasa_project.decisions(small_rasa.models)["refused"]
    shown = text_of(browser)
    assert "refusé : le bot garde l'ancien modèle" in shown
    assert "Swahili, type de message :" in shown, shown  # said in the console's words
    screenshot(browser, "retrain-refused")

    # Taught right: the wrong examples removed, one good one added through the form.
    page.write_examples(small_rasa.data / page.EXAMPLES_FILE, [])
    browser.refresh()
    type_into(browser, "text", "watu wenye silaha wameua wakulima wawili shambani leo asubuhi")
    browser.find_element(By.CSS_SELECTOR, "select[name=intent] option[value=report_attack]").click()
    browser.find_element(By.CSS_SELECTOR, "select[name=language] option[value=sw]").click()
    click(browser, "form.triage button[type=submit]")
    assert "wameua wakulima wawili" in text_of(browser, "table.examples")
    accepted, _ = retrain_and_wait(browser, live)
    assert accepted.status == "accepted", accepted.reason
    assert accepted.reason is None and accepted.serving_before == "alerte-initial.tar.gz"
    assert small_rasa.serving() == accepted.model_name  # the running server switched
    assert (small_rasa.models / accepted.model_name).is_file()
    assert rasa_project.decisions(small_rasa.models)["serving"] == accepted.model_name
    assert accepted.model_name in text_of(browser, "#serving")
    assert "accepté : le bot utilise le nouveau modèle" in text_of(browser)
    screenshot(browser, "retrain")
