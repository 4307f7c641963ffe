"""Generates the Rasa project (domain, rules, endpoints) from the flow, and trains it.

The flow (flows/alert.yml) is the one source of truth; what Rasa needs is written to
nlu/build/ and never edited by hand. Training is skipped when a model built from the
same inputs exists: the model's name is a hash of everything that goes into it.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path
from urllib.parse import urlparse

import yaml

from bot.categories import CODES, intent_for
from bot.flow import Flow, alert_flow

ROOT = Path(__file__).resolve().parent.parent
NLU_DIR = ROOT / "nlu"
BUILD_DIR = NLU_DIR / "build"
MODELS_DIR = NLU_DIR / "models"
# The training data: the repository's nlu/data, or NLU_DATA_DIR (a writable copy where the
# console adds examples; service/retraining.py).
DATA_DIR = Path(os.environ.get("NLU_DATA_DIR") or NLU_DIR / "data")
# What the console's retraining decided (service/retraining.py): the model it switched the
# Rasa server to, and the inputs whose model it refused, so that a restart serves the
# accepted model rather than training the refused inputs again behind the gate's back.
SERVING_FILE = "serving.json"

INTENTS = ["greet", "help", "opt_out", "opt_in", "choose_language", "affirm", "deny",
           "out_of_scope"] + [intent_for(c) for c in CODES]
# Slots the actions keep besides the form's fields (never featurised: rules decide).
HELPER_SLOTS = ["language", "draft_id", "place_candidates", "place_pending", "place_written",
                "correcting", "retries", "description"]
ACTIONS = ["action_greet", "action_help", "action_choose_language", "action_opt_out",
           "action_opt_in", "action_triage", "action_submit_alert"]
# Intents that interrupt a report; the form resumes after help and language changes.
RESUMING = {"help": "action_help", "choose_language": "action_choose_language"}


def domain(flow: Flow) -> dict:
    slots = {
        name: {"type": "any", "influence_conversation": False, "mappings": [{"type": "custom"}]}
        for name in flow.slots + HELPER_SLOTS
    }
    return {
        "version": "3.1",
        "intents": INTENTS,
        "entities": ["armed_group", "language"],
        "slots": slots,
        "forms": {flow.form: {"required_slots": flow.slots}},
        "actions": ACTIONS + [f"validate_{flow.form}"] + [f"action_ask_{s}" for s in flow.slots],
        "session_config": {
            "session_expiration_time": flow.timeout_minutes,
            "carry_over_slots_to_new_session": False,
        },
    }


def rules(flow: Flow) -> dict:
    form = flow.form
    in_form = [{"active_loop": form}]
    out = []
    for code in CODES:
        out.append({"rule": f"a {code} report starts the form", "steps": [
            {"intent": intent_for(code)}, {"action": form}, {"active_loop": form}]})
    out.append({"rule": "the reporter confirmed: save the alert", "condition": in_form, "steps": [
        {"action": form}, {"active_loop": None}, {"slot_was_set": [{"requested_slot": None}]},
        {"action": "action_submit_alert"}]})
    for intent, action in RESUMING.items():
        out.append({"rule": f"{intent}", "steps": [{"intent": intent}, {"action": action}]})
        out.append({"rule": f"{intent} during a report, then go on", "condition": in_form, "steps": [
            {"intent": intent}, {"action": action}, {"action": form}, {"active_loop": form}]})
    out.append({"rule": "opt out", "steps": [{"intent": "opt_out"}, {"action": "action_opt_out"}]})
    out.append({"rule": "opt out during a report", "condition": in_form, "steps": [
        {"intent": "opt_out"}, {"action": "action_opt_out"},
        {"action": "action_deactivate_loop"}, {"active_loop": None}]})
    out.append({"rule": "opt in", "steps": [{"intent": "opt_in"}, {"action": "action_opt_in"}]})
    out.append({"rule": "greet", "steps": [{"intent": "greet"}, {"action": "action_greet"}]})
    for intent in ("affirm", "deny", "out_of_scope", "nlu_fallback"):
        out.append({"rule": f"{intent} outside a report", "steps": [
            {"intent": intent}, {"action": "action_triage"}]})
    return {"version": "3.1", "rules": out}


def endpoints(action_url: str, redis_url: str | None) -> dict:
    """Rasa's endpoints: our action server; conversation state and locks in Redis."""
    result: dict = {"action_endpoint": {"url": action_url}}
    if redis_url:
        parsed = urlparse(redis_url)
        if parsed.scheme in ("redis", "rediss") and parsed.hostname:
            common = {"url": parsed.hostname, "port": parsed.port or 6379,
                      "db": int((parsed.path or "/0").strip("/") or 0)}
            if parsed.password:
                common["password"] = parsed.password
            result["tracker_store"] = {"type": "redis", "key_prefix": "alerte", **common}
            result["lock_store"] = {"type": "redis", "key_prefix": "alerte", **common}
    return result


def write_build(flow: Flow | None = None) -> Path:
    flow = flow or alert_flow()
    (BUILD_DIR / "data").mkdir(parents=True, exist_ok=True)
    _dump(BUILD_DIR / "domain.yml", domain(flow))
    _dump(BUILD_DIR / "data" / "rules.yml", rules(flow))
    return BUILD_DIR


def _dump(path: Path, data: dict) -> None:
    text = "# Generated from flows/ by bot/rasa_project.py: do not edit.\n"
    text += yaml.safe_dump(data, sort_keys=False, allow_unicode=True)
    if not path.exists() or path.read_text(encoding="utf-8") != text:
        path.write_text(text, encoding="utf-8")


def training_inputs(config: Path | None = None, data_dir: Path | None = None) -> list[Path]:
    files = [config or NLU_DIR / "config.yml", BUILD_DIR / "domain.yml",
             *sorted((BUILD_DIR / "data").glob("*.yml"))]
    files += sorted((data_dir or DATA_DIR).glob("*.yml"))
    return files


def fingerprint(config: Path | None = None, data_dir: Path | None = None) -> str:
    """A hash of every input, by name (in the repository, else its folder's) and content."""
    digest = hashlib.sha256()
    for path in training_inputs(config, data_dir):
        resolved = path.resolve()
        name = (resolved.relative_to(ROOT).as_posix() if resolved.is_relative_to(ROOT)
                else f"{path.parent.name}/{path.name}")
        digest.update(name.encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()[:16]


def model_path() -> Path:
    return MODELS_DIR / f"alerte-{fingerprint()}.tar.gz"


def train_command(config: Path, data_dir: Path, out_dir: Path, name: str) -> list[str]:
    return [str(rasa_bin()), "train", "--config", str(config), "--domain", str(BUILD_DIR / "domain.yml"),
            "--data", str(data_dir), str(BUILD_DIR / "data"), "--out", str(out_dir),
            "--fixed-model-name", name]


def decisions(models_dir: Path | None = None) -> dict:
    """The retraining's record: {"serving": file name, "refused": [fingerprints]}."""
    path = (models_dir or MODELS_DIR) / SERVING_FILE
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def record_decision(models_dir: Path, serving: str | None = None, refused: str | None = None) -> None:
    data = decisions(models_dir)
    if serving:
        data["serving"] = serving
    if refused:
        data["refused"] = sorted(set(data.get("refused", [])) | {refused})
    tmp = models_dir / (SERVING_FILE + ".tmp")
    tmp.write_text(json.dumps(data, indent=1), encoding="utf-8")
    tmp.replace(models_dir / SERVING_FILE)


def model_to_serve() -> Path:
    """The model a (re)started Rasa server loads: the one trained from the current inputs,
    unless the console's retraining refused exactly these inputs; then the model it accepted
    last keeps serving (trained from the current inputs only when there is none)."""
    write_build()
    record = decisions()
    accepted = MODELS_DIR / record.get("serving", "-")
    if fingerprint() in record.get("refused", []) and accepted.is_file():
        print(f"[train] the console's retraining refused these inputs: serving {accepted.name}",
              file=sys.stderr)
        return accepted
    return train()


def rasa_bin() -> Path:
    return Path(os.environ.get("RASA_VENV", ROOT / ".venv-rasa")) / "bin" / "rasa"


def train(force: bool = False) -> Path:
    """Train the model unless one exists for exactly these inputs; returns its path."""
    write_build()
    target = model_path()
    if target.exists() and not force:
        return target
    MODELS_DIR.mkdir(parents=True, exist_ok=True)
    cmd = train_command(NLU_DIR / "config.yml", DATA_DIR, MODELS_DIR, target.name[: -len(".tar.gz")])
    env = dict(os.environ, RASA_TELEMETRY_ENABLED="false")
    subprocess.run(cmd, check=True, env=env, cwd=ROOT, stdout=sys.stderr)  # stdout: just the path
    keep = {target.name, decisions().get("serving")}
    for old in MODELS_DIR.glob("alerte-*.tar.gz"):
        if old.name not in keep:
            old.unlink()
    return target


def cli(parser):
    """`alerte train`: generate the Rasa project from the flow and train when inputs changed."""
    parser.add_argument("--force", action="store_true", help="train even if a model for these inputs exists")

    def run(args) -> int:
        print(train(force=args.force))
        return 0
    return run


if __name__ == "__main__":
    print(train(force="--force" in sys.argv))
