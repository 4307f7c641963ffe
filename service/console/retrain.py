"""Teaching the bot (issue 12): the examples operators add to the training data, and the
retraining behind its accuracy gate (service/retraining.py), with its progress.

Translators and flow editors (`translate`) use it. An example is a message as reporters
write it with the intent it means; it goes to NLU_DATA_DIR/console.yml (Rasa's training
format, one file the console owns; the other training files are the developers'), with
its language and who added it, and counts only after a retraining the gate accepted.
Every change and every run is in the audit log.
"""

from __future__ import annotations

import unicodedata
from pathlib import Path

import yaml
from flask import abort, current_app, flash, redirect, render_template, request, url_for

from bot.categories import CODES, intent_for
from bot.languages import LANGUAGES
from service import audit, retraining
from service.console import bp, files
from service.console.auth import current_operator, requires
from service.console.i18n import N_, _, category_label
from service.db import get_session
from service.models import utcnow

EXAMPLES_FILE = "console.yml"
MAX_EXAMPLE = 300  # characters: an SMS or two
OTHER_INTENTS = {
    "greet": N_("Greeting"), "help": N_("Asking for help"), "opt_out": N_("Stop messages"),
    "opt_in": N_("Messages again"), "affirm": N_("Yes"), "deny": N_("No"),
    "out_of_scope": N_("Not about an alert"),
}
STATUS_LABELS = {
    "queued": N_("waiting for the training worker"), "training": N_("training"),
    "evaluating": N_("measuring on the held-out messages"), "switching": N_("switching the bot to it"),
    "accepted": N_("accepted: the bot uses the new model"),
    "refused": N_("refused: the bot keeps the old model"), "failed": N_("failed: the bot keeps the old model"),
}
MEASURES = {"intent": N_("what the message is"), "category": N_("category of the report")}


def intents() -> list[tuple[str, str]]:
    """(intent, label) in the order the page offers them: reports first."""
    reports = [(intent_for(code), category_label(code)) for code in CODES]
    return reports + [(name, _(label)) for name, label in OTHER_INTENTS.items()]


def examples_file() -> Path:
    return retraining.data_dir(current_app.config) / EXAMPLES_FILE


def load_examples(path: Path) -> list[dict]:
    """[{intent, text, language, by, at}] from the console's training file."""
    if not path.is_file():
        return []
    data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    out = []
    for block in data.get("nlu") or []:
        for example in block.get("examples") or []:
            meta = example.get("metadata") or {}
            out.append({"intent": block.get("intent"), "text": str(example.get("text", "")).strip(),
                        "language": meta.get("language"), "by": meta.get("by"), "at": meta.get("at")})
    return out


def write_examples(path: Path, examples: list[dict]) -> None:
    by_intent: dict[str, list] = {}
    for e in examples:
        by_intent.setdefault(e["intent"], []).append(
            {"text": e["text"], "metadata": {"language": e["language"], "by": e["by"], "at": e["at"]}})
    doc = {"version": "3.1", "nlu": [{"intent": i, "examples": ex} for i, ex in by_intent.items()]}
    text = ("# Examples added in the operator console (service/console/retrain.py): edited there.\n"
            + yaml.safe_dump(doc, sort_keys=False, allow_unicode=True))
    files.replace(path, text.encode("utf-8"))


def clean_text(raw: str) -> str:
    """One line of printable text: control characters dropped, spaces collapsed."""
    kept = "".join(" " if unicodedata.category(c)[0] in "CZ" else c for c in raw or "")
    return " ".join(kept.split())


def _serving() -> str | None:
    try:
        return retraining.serving_model(retraining.rasa_engine(current_app.config, timeout=3))
    except Exception:  # noqa: BLE001  the page still shows the runs when Rasa is down
        return None


@bp.route("/retrain")
@requires("translate")
def retrain():
    db = get_session()
    runs = retraining.recent(db)
    active = any(r.status in retraining.ACTIVE for r in runs)
    examples = load_examples(examples_file())
    labels = dict(intents())
    return render_template("console/retrain.html", runs=runs, active=active, examples=list(enumerate(examples)),
                           intents=intents(), labels=labels, languages=LANGUAGES, serving=_serving(),
                           status_label=lambda s: _(STATUS_LABELS.get(s, s)), max_example=MAX_EXAMPLE,
                           measure_label=lambda m: _(MEASURES.get(m, m)),
                           margin=current_app.config["RETRAIN_MARGIN"],
                           heldout=[p.name for p in retraining.heldout_files(current_app.config)])


@bp.route("/retrain/run", methods=["POST"])
@requires("translate")
def retrain_run():
    db = get_session()
    try:
        run = retraining.request(db, current_operator(), current_app.config)
    except retraining.Busy:
        db.rollback()
        flash(_("A retraining is already running: wait for its result."))
        return redirect(url_for("console.retrain"))
    db.commit()
    retraining.enqueue(current_app.extensions["redis"], run.id, current_app.config["RETRAIN_TIMEOUT"])
    flash(_("Retraining started. This page shows its progress; the bot keeps its model until the result."))
    return redirect(url_for("console.retrain"))


@bp.route("/retrain/examples", methods=["POST"])
@requires("translate")
def retrain_add():
    text = clean_text(request.form.get("text", ""))
    intent, language = request.form.get("intent", ""), request.form.get("language", "")
    problems = []
    if not text:
        problems.append(_("Write the message as a reporter would."))
    elif len(text) > MAX_EXAMPLE:
        problems.append(_("An example is at most %(n)s characters.", n=MAX_EXAMPLE))
    if intent not in dict(intents()):
        problems.append(_("Choose what the message means."))
    if language not in LANGUAGES:
        problems.append(_("Choose the message's language."))
    if problems:
        for p in problems:
            flash(p)
        return redirect(url_for("console.retrain"))
    path = examples_file()
    path.parent.mkdir(parents=True, exist_ok=True)
    operator = current_operator()
    with files.locked(path.parent):
        examples = load_examples(path)
        if any(e["text"].casefold() == text.casefold() for e in examples):
            flash(_("This example is already there."))
            return redirect(url_for("console.retrain"))
        examples.append({"intent": intent, "text": text, "language": language, "by": operator.id,
                         "at": utcnow().isoformat(timespec="seconds")})
        write_examples(path, examples)
    db = get_session()
    audit.record(db, operator, "model.example_added", "training_example", None,
                 after={"intent": intent, "language": language, "text": text})
    db.commit()
    flash(_("Example added. It counts after the next accepted retraining."))
    return redirect(url_for("console.retrain"))


@bp.route("/retrain/examples/<int:index>/delete", methods=["POST"])
@requires("translate")
def retrain_delete(index: int):
    path = examples_file()
    with files.locked(path.parent):
        examples = load_examples(path)
        if index >= len(examples) or examples[index]["text"] != request.form.get("text"):
            abort(409)  # the list changed since the page was drawn
        removed = examples.pop(index)
        write_examples(path, examples)
    db = get_session()
    audit.record(db, current_operator(), "model.example_removed", "training_example", None,
                 before={k: removed[k] for k in ("intent", "language", "text")})
    db.commit()
    flash(_("Example removed. It stops counting after the next accepted retraining."))
    return redirect(url_for("console.retrain"))

