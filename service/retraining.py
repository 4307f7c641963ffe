"""Retraining the understanding from the console, behind an accuracy gate.

An operator asks for a run (``request``); a worker of its own (`alerte worker --queues
training`, so that minutes of training never hold a reporter's reply back) takes the job
(``run``) and:

1. trains a candidate from the current flow (FLOWS_DIR) and training data (NLU_DATA_DIR,
   where the console adds examples) into nlu/models/candidates/, never beside the models
   a restart would load;
2. scores it on the held-out files (RETRAIN_HELDOUT, never trained on), message by message
   through ``bot.understanding.understand`` as the conversation does, on a Rasa server of
   its own on loopback; and scores the model serving now the same way, through the
   running server;
3. switches the running server to it (Rasa's ``PUT /model``) only if no language lost more
   than RETRAIN_MARGIN percentage points of intent or category accuracy; otherwise the
   old model keeps serving, the candidate is deleted, and the run says why, per language.

What was decided is recorded beside the models (bot/rasa_project.py ``record_decision``),
so that a restarted Rasa serves the accepted model and never the refused inputs. One run
at a time; each step is in the row (status, step, progress), which the console's page
reloads. A run whose worker died is taken as failed after RETRAIN_TIMEOUT.
"""

from __future__ import annotations

import logging
import re
import shutil
import subprocess
import tempfile
import time
from collections import Counter, defaultdict
from datetime import timedelta
from pathlib import Path

import yaml
from sqlalchemy import select, update

from bot import rasa_project
from bot.engine import EngineUnavailable, RasaEngine
from bot.understanding import understand
from service import audit, stack
from service.queue import RETRAIN, TRAINING_QUEUE
from service.models import TrainingRun, utcnow

log = logging.getLogger(__name__)

ACTIVE = ("queued", "training", "evaluating")
FINISHED = ("accepted", "refused", "failed")
METRICS = ("intent", "category")
DEFAULT_HELDOUT = ("heldout.yml", "heldout_2.yml")
TRAIN_SHARE, EVALUATE_SHARE = 60, 38  # percent of the progress bar; the switch is the rest
# Rasa's log while training: one "Finished training component" per pipeline component
# and policy (its graph also has a few nodes of its own), so the bar moves as it learns.
FINISHED_COMPONENT = re.compile(r"Finished training component '([^']+)'")


class Busy(RuntimeError):
    """Another run is not finished."""


# --------------------------------------------------------------------- configuration

def config_file(config: dict) -> Path:
    return Path(config.get("RETRAIN_CONFIG") or rasa_project.NLU_DIR / "config.yml")


def data_dir(config: dict) -> Path:
    return Path(config.get("NLU_DATA_DIR") or rasa_project.DATA_DIR)


def heldout_files(config: dict) -> list[Path]:
    names = config.get("RETRAIN_HELDOUT")
    if names:
        return [Path(n.strip()) for n in str(names).split(",") if n.strip()]
    return [rasa_project.NLU_DIR / "tests" / name for name in DEFAULT_HELDOUT]


def candidates_dir() -> Path:
    return rasa_project.MODELS_DIR / "candidates"


def rasa_engine(config: dict, timeout: float = 30) -> RasaEngine:
    return RasaEngine(config["RASA_URL"], timeout=timeout, token=config.get("RASA_TOKEN"))


# --------------------------------------------------------------------- asking for a run

def recent(db, limit: int = 10) -> list[TrainingRun]:
    return list(db.scalars(select(TrainingRun).order_by(TrainingRun.id.desc()).limit(limit)))


def expire_stale(db, timeout: int) -> None:
    """A run unfinished long after it began belongs to a worker that died: failed."""
    cutoff = utcnow() - timedelta(seconds=timeout)
    db.execute(update(TrainingRun).where(TrainingRun.status.in_(ACTIVE), TrainingRun.created_at < cutoff)
               .values(status="failed", reason="stopped: the training worker did not finish in time",
                       finished_at=utcnow()))


def request(db, operator, config: dict) -> TrainingRun:
    """A new run, queued (the caller enqueues it after the commit). Refused (Busy)
    while another is unfinished."""
    expire_stale(db, config["RETRAIN_TIMEOUT"])
    if db.scalars(select(TrainingRun.id).where(TrainingRun.status.in_(ACTIVE)).limit(1)).first():
        raise Busy("a retraining is already running")
    run = TrainingRun(status="queued", step="queued", progress=0, margin=float(config["RETRAIN_MARGIN"]),
                      operator_id=operator.id if operator else None)
    db.add(run)
    db.flush()
    audit.record(db, operator, "model.retrain", "training_run", run.id,
                 after={"margin": run.margin, "config": config_file(config).name,
                        "heldout": [p.name for p in heldout_files(config)]})
    return run


def enqueue(connection, run_id: int, timeout: int):
    from rq import Queue
    return Queue(TRAINING_QUEUE, connection=connection).enqueue(RETRAIN, run_id, job_id=f"retrain-{run_id}",
                                                       job_timeout=timeout, result_ttl=3600)


# --------------------------------------------------------------------- the run

def _set(db, run_id: int, **values) -> None:
    db.execute(update(TrainingRun).where(TrainingRun.id == run_id).values(**values))
    db.commit()


def run(app, db, run_id: int) -> str:
    """The job: train, evaluate, decide, switch. Returns the run's final status."""
    config = app.config
    claimed = db.execute(update(TrainingRun).where(TrainingRun.id == run_id, TrainingRun.status == "queued")
                         .values(status="training", step="training", progress=1, started_at=utcnow()))
    db.commit()
    if claimed.rowcount != 1:  # run already (a job queued twice, a worker restarted)
        return db.get(TrainingRun, run_id).status if db.get(TrainingRun, run_id) else "missing"
    margin = db.get(TrainingRun, run_id).margin
    candidate: Path | None = None
    try:
        live = rasa_engine(config)
        serving = serving_model(live)
        _set(db, run_id, serving_before=serving)
        candidate, fingerprint = train(config, lambda pct: _set(db, run_id, progress=pct))
        _set(db, run_id, status="evaluating", step="evaluating", progress=TRAIN_SHARE,
             model_name=candidate.name, fingerprint=fingerprint)
        messages = load_heldout(heldout_files(config))
        total = 2 * len(messages) or 1
        done = [0]

        def tick() -> None:
            done[0] += 1
            if done[0] % 10 == 0 or done[0] == total:
                _set(db, run_id, progress=TRAIN_SHARE + EVALUATE_SHARE * done[0] // total)

        before = score(live, messages, tick)
        after = score_model(candidate, messages, tick)
        lost = losses(before, after, margin)
        scores = {"serving": before, "candidate": after, "losses": lost}
        if lost:
            candidate.unlink(missing_ok=True)
            rasa_project.record_decision(rasa_project.MODELS_DIR, refused=fingerprint)
            _finish(db, run_id, "refused", scores, "; ".join(describe(lost, margin)))
            return "refused"
        _set(db, run_id, step="switching", progress=TRAIN_SHARE + EVALUATE_SHARE, scores=scores)
        switch(config, live, candidate)
        _finish(db, run_id, "accepted", scores, None)
        return "accepted"
    except Exception as exc:  # noqa: BLE001  any failure: the old model keeps serving, and says why
        log.exception("retraining run %s failed", run_id)
        db.rollback()
        if candidate is not None and candidate.parent == candidates_dir():
            candidate.unlink(missing_ok=True)
        _finish(db, run_id, "failed", None, f"{type(exc).__name__}: {exc}"[:2000])
        return "failed"


def _finish(db, run_id: int, status: str, scores, reason) -> None:
    values = {"status": status, "step": status, "progress": 100, "reason": reason, "finished_at": utcnow()}
    if scores is not None:
        values["scores"] = scores
    _set(db, run_id, **values)


def serving_model(engine: RasaEngine) -> str | None:
    """The file name of the model the running Rasa server has loaded."""
    try:
        return Path(engine.model_file() or "").name or None
    except EngineUnavailable as exc:
        raise EngineUnavailable(f"the Rasa server does not answer: {exc}") from exc


def train(config: dict, progress) -> tuple[Path, str]:
    """Train a candidate into candidates/ and return its path and the inputs' fingerprint."""
    rasa_project.write_build()
    cfg, data = config_file(config), data_dir(config)
    fingerprint = rasa_project.fingerprint(cfg, data)
    out = candidates_dir()
    out.mkdir(parents=True, exist_ok=True)
    name = f"alerte-{fingerprint}"
    steps = _component_count(cfg)
    done = 0
    cmd = rasa_project.train_command(cfg, data, out, name)
    with tempfile.TemporaryFile("w+", encoding="utf-8", errors="replace") as logfile:
        proc = subprocess.Popen(cmd, cwd=rasa_project.ROOT, env=stack.child_env(), stdout=logfile,
                                stderr=subprocess.STDOUT)
        read = 0
        while proc.poll() is None:
            time.sleep(1)
            logfile.seek(read)
            chunk = logfile.read()
            read += len(chunk.encode("utf-8", errors="replace"))
            found = len(FINISHED_COMPONENT.findall(chunk))
            if found:
                done += found
                progress(max(1, min(TRAIN_SHARE - 1, TRAIN_SHARE * done // steps)))
        if proc.returncode != 0:
            logfile.seek(0)
            tail = logfile.read()[-1500:]
            raise RuntimeError(f"rasa train exited with {proc.returncode}: {tail}")
    model = out / f"{name}.tar.gz"
    if not model.is_file():
        raise RuntimeError("rasa train wrote no model")
    return model, fingerprint


def _component_count(cfg: Path) -> int:
    data = yaml.safe_load(cfg.read_text(encoding="utf-8")) or {}
    return len(data.get("pipeline") or []) + len(data.get("policies") or [])


# --------------------------------------------------------------------- evaluation

def load_heldout(paths: list[Path]) -> list[dict]:
    messages = []
    for path in paths:
        for m in (yaml.safe_load(path.read_text(encoding="utf-8")) or {}).get("messages") or []:
            if m.get("text") and m.get("language") and m.get("intent"):
                messages.append(m)
    return messages


def score(engine, messages: list[dict], tick=lambda: None) -> dict:
    """Accuracy per language, in percent: the public intent of every message, and the
    category of those labelled with one, as the conversation understands them."""
    tallies: dict = defaultdict(Counter)
    for m in messages:
        u = understand(m["text"], engine)
        t = tallies[m["language"]]
        t["n"] += 1
        t["intent"] += u.intent == m["intent"]
        if m.get("category"):
            t["category_n"] += 1
            t["category"] += u.category == m["category"]
        tick()
    return {lang: {"n": t["n"],
                   "intent": round(100 * t["intent"] / t["n"], 1),
                   "category": round(100 * t["category"] / t["category_n"], 1) if t["category_n"] else None}
            for lang, t in sorted(tallies.items())}


def score_model(model: Path, messages: list[dict], tick=lambda: None) -> dict:
    """Score a model file on a Rasa server of its own (loopback, no action server)."""
    with stack.parsing_rasa(model) as url:
        return score(RasaEngine(url, timeout=30), messages, tick)


def losses(before: dict, after: dict, margin: float) -> list[dict]:
    """What the candidate lost beyond the margin: {language, metric, before, after} per
    language and measure (after None: the candidate no longer answers that language)."""
    out = []
    for lang, old in sorted(before.items()):
        new = after.get(lang) or {}
        for metric in METRICS:
            if old.get(metric) is None:
                continue
            got = new.get(metric)
            if got is None or old[metric] - got > margin:
                out.append({"language": lang, "metric": metric, "before": old[metric], "after": got})
    return out


def describe(lost: list[dict], margin: float) -> list[str]:
    """Losses (``losses``) as lines of text: the run's reason, the logs."""
    return [f"{x['language']} {x['metric']}: {x['before']:.1f} % -> "
            f"{'none' if x['after'] is None else format(x['after'], '.1f') + ' %'} (margin {margin:g} points)"
            for x in lost]


def compare(before: dict, after: dict, margin: float) -> list[str]:
    """What the candidate lost beyond the margin, one line per language and measure."""
    return describe(losses(before, after, margin), margin)


# --------------------------------------------------------------------- the switch

def switch(config: dict, engine: RasaEngine, candidate: Path) -> Path:
    """Move the candidate beside the served models, load it in the running Rasa server,
    check it is loaded, and record it as the one a restart serves."""
    models = rasa_project.MODELS_DIR
    target = models / candidate.name
    shutil.move(str(candidate), target)
    seen_as = Path(config.get("RASA_MODELS_PATH") or models) / target.name
    try:
        engine.load_model(str(seen_as))
        loaded = serving_model(engine)
        if loaded != target.name:
            raise RuntimeError(f"the Rasa server serves {loaded}, not {target.name}")
    except Exception:
        if serving_model_or_none(engine) != target.name:  # not loaded: not kept either
            target.unlink(missing_ok=True)
        raise
    rasa_project.record_decision(models, serving=target.name)
    return target


def serving_model_or_none(engine: RasaEngine) -> str | None:
    try:
        return serving_model(engine)
    except EngineUnavailable:
        return None
