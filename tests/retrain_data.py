"""Small training and held-out data for tests of the retraining (service/retraining.py):
the first examples of each intent of nlu/data in each language, and the first held-out
messages of each language, so that a real Rasa model trains in seconds (with the
logistic-regression variant, nlu/variants/logreg.yml) and the gate runs on real scores.
"""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
NLU = ROOT / "nlu"
SMALL_CONFIG = NLU / "variants" / "logreg.yml"


def small_data(folder: Path, per_intent: int = 12) -> Path:
    """nlu/data cut to `per_intent` examples per intent and language (the lookup tables whole)."""
    folder.mkdir(parents=True, exist_ok=True)
    for path in sorted((NLU / "data").glob("*.yml")):
        doc = yaml.safe_load(path.read_text(encoding="utf-8"))
        for block in doc.get("nlu") or []:
            if "intent" in block and isinstance(block.get("examples"), str):
                lines = [line for line in block["examples"].splitlines() if line.strip()]
                block["examples"] = "\n".join(lines[:per_intent]) + "\n"
        (folder / path.name).write_text(yaml.safe_dump(doc, sort_keys=False, allow_unicode=True), encoding="utf-8")
    return folder


def small_heldout(path: Path, per_language: int = 12) -> Path:
    messages = yaml.safe_load((NLU / "tests" / "heldout.yml").read_text(encoding="utf-8"))["messages"]
    kept, count = [], defaultdict(int)
    for m in messages:
        if count[m["language"]] < per_language:
            count[m["language"]] += 1
            kept.append(m)
    path.write_text(yaml.safe_dump({"messages": kept}, allow_unicode=True), encoding="utf-8")
    return path


def examples(language: str, intent: str, per_intent: int = 12) -> list[str]:
    """Training texts of one intent in one language (annotations stripped)."""
    import re
    doc = yaml.safe_load((NLU / "data" / f"nlu_{language}.yml").read_text(encoding="utf-8"))
    for block in doc["nlu"]:
        if block.get("intent") == intent:
            lines = [line.strip()[2:] for line in block["examples"].splitlines() if line.strip()]
            return [re.sub(r"\[([^\]]+)\](\([^)]*\)|\{[^}]*\})", r"\1", t) for t in lines]
    return []
