"""Measure understanding per language: `python nlu/evaluate.py [--folds 5] [--config FILE]`.

Held-out: trains (or reuses) a model on nlu/data, starts a Rasa server on loopback,
and runs every message of nlu/tests/heldout.yml, heldout_2.yml, heldout_places.yml and
heldout_places_2.yml (never used for training; the second was written later, before the
data changes it measures; the last two, for places and Congolese SMS phrasing, were
written before the changes they measure, and the fourth is only ever run) through
`bot.understanding.understand`, the function the conversation and the API use. It
reports, per language: intent, category, location, people-count and language
identification accuracy, and a confusion table of categories. Then language
identification on the short messages of nlu/tests/short.yml, with and without the
Rasa model's evidence.

Place by territory, for messages labelled with `territory` (the expected admin2 p-code,
or a list of those acceptable) or `ask: true` (with `candidates`): right when the place
is found and its record's territory (admin2_pcode) is expected, or, for `ask`, when the
answer is a question (status ambiguous) whose choices cover every expected candidate.
A "silent wrong place" is a place found without asking in another territory, or found
without asking where a question was expected (a guess between namesakes); a place found
only at province level, an unnecessary question or no place at all is a miss, not silent.

Cross-validation (--folds K): Rasa's own k-fold on the training data, reported per
language: public intent accuracy, and category accuracy over the report examples (the
training files carry no place, count or language labels).
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import tempfile
import time
from collections import Counter, defaultdict
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bot import rasa_project  # noqa: E402
from bot.engine import RasaEngine  # noqa: E402
from bot.places import default_gazetteer  # noqa: E402
from bot import language as langid  # noqa: E402
from bot.categories import code_for_intent  # noqa: E402
from bot.understanding import for_nlu, public_intent, understand  # noqa: E402
from service import stack  # noqa: E402

NLU = Path(__file__).resolve().parent
ANNOTATION = re.compile(r"\[([^\]]+)\](\([^)]*\)|\{[^}]*\})")


def plain(example: str) -> str:
    return ANNOTATION.sub(r"\1", example)


def train_model(config: Path, out_dir: Path) -> Path:
    if config.resolve() == (NLU / "config.yml").resolve():
        return rasa_project.train()
    rasa_project.write_build()
    started = time.monotonic()
    subprocess.run([str(rasa_project.rasa_bin()), "train", "--config", str(config),
                    "--domain", str(rasa_project.BUILD_DIR / "domain.yml"),
                    "--data", str(NLU / "data"), str(rasa_project.BUILD_DIR / "data"),
                    "--out", str(out_dir), "--fixed-model-name", "variant"],
                   check=True, env=stack.child_env(), stdout=subprocess.DEVNULL)
    print(f"trained {config.name} in {time.monotonic() - started:.0f} s")
    return out_dir / "variant.tar.gz"


def heldout(model: Path, paths: list[Path], short: Path | None) -> None:
    with stack.parsing_rasa(model) as url:
        engine = RasaEngine(url, timeout=30)
        for path in paths:
            print(f"\n== {path.name}")
            report(score(engine, path))
        if short:
            short_messages(engine, short)


def short_messages(engine, path: Path) -> None:
    """Language identification of one-to-three-word messages, where it is hardest:
    decided from the message alone (no previous language to fall back on), with and
    without the Rasa model's evidence."""
    messages = yaml.safe_load(path.read_text(encoding="utf-8"))["messages"]
    hits: dict = defaultdict(Counter)
    for m in messages:
        intent = (engine.parse(for_nlu(m["text"])).get("intent") or {}).get("name")
        with_model = langid.choose(m["text"], previous=None, default="?", intent=intent)
        with langid.without_model_evidence():
            alone = langid.choose(m["text"], previous=None, default="?")
        t = hits[m["language"]]
        t["n"] += 1
        t["with"] += with_model == m["language"]
        t["alone"] += alone == m["language"]
        t["wrong_with"] += with_model not in (m["language"], "?")
        t["wrong_alone"] += alone not in (m["language"], "?")
    print(f"\n== {path.name}: language decided from the message alone (else undecided)")
    for key, label in (("alone", "identifier + markers"), ("with", "+ Rasa model evidence")):
        print(f"{label:<24}" + "".join(
            f"{lang:>4} {pct(hits[lang][key], hits[lang]['n'])} wrong {hits[lang]['wrong_' + key]:<3}"
            for lang in sorted(hits)))


def score(engine, path: Path) -> dict:
    gaz = default_gazetteer()
    messages = yaml.safe_load(path.read_text(encoding="utf-8"))["messages"]
    tallies: dict = defaultdict(Counter)
    confusion: Counter = Counter()
    misses = []
    for m in messages:
        lang = m["language"]
        u = understand(m["text"], engine)
        t = tallies[lang]
        t["n"] += 1
        t["intent"] += u.intent == m["intent"]
        if u.intent != m["intent"]:
            misses.append(("intent", lang, m["text"], m["intent"], u.intent))
        t["language"] += u.language == lang
        if m.get("category"):
            t["category_n"] += 1
            t["category"] += u.category == m["category"]
            confusion[(m["category"], u.category or "-")] += 1
        if "territory" in m or m.get("ask"):
            t["territory_n"] += 1
            ok, silent, got = place_by_territory(m, u.place)
            t["territory"] += ok
            t["silent"] += silent
            if not ok:
                expected = ("ask among " if m.get("ask") else "") + "/".join(expected_territories(m))
                misses.append(("silent wrong place" if silent else "place", lang, m["text"], expected, got))
        elif m.get("place"):
            t["place_n"] += 1
            expected = gaz.resolve(m["place"])
            got = u.place.place.key if u.place.status == "found" else None
            ok = expected.status == "found" and got == expected.place.key
            t["place"] += ok
            if not ok:
                misses.append(("place", lang, m["text"], m["place"], got))
        if m.get("people") is not None:
            t["people_n"] += 1
            t["people"] += bool(u.people and u.people.number == m["people"])
        if m.get("category") and u.category != m["category"]:
            misses.append(("category", lang, m["text"], m["category"], u.category))
        if u.language != lang:
            misses.append(("language", lang, m["text"], lang, u.language))
    return {"tallies": tallies, "confusion": confusion, "misses": misses}


def expected_territories(m: dict) -> list[str]:
    codes = m.get("candidates") if m.get("ask") else m.get("territory")
    return [codes] if isinstance(codes, str) else list(codes or ())


def place_by_territory(m: dict, res) -> tuple[bool, bool, str]:
    """(right, silent wrong, what was got) for a message labelled with territories."""
    expected = expected_territories(m)
    if res.status == "found":
        rec = res.place
        got = f"found {rec.name} {rec.admin2_pcode or rec.key}"
        if m.get("ask"):
            return False, True, got
        right = rec.admin2_pcode in expected
        return right, not right and rec.admin2_pcode is not None, got
    if res.status == "ambiguous":
        offered = {code for c in res.candidates for code in (c.admin2_pcodes or (c.admin2_pcode,)) if code}
        got = "ambiguous " + "/".join(f"{c.name} {c.admin2_pcode}" for c in res.candidates)
        return bool(m.get("ask")) and set(expected) <= offered, False, got
    return False, False, "no place"


def pct(hit: int, n: int) -> str:
    return f"{100 * hit / n:5.1f}% ({hit}/{n})" if n else "   n/a"


def report(result: dict) -> None:
    rows = [("intent", "n"), ("category", "category_n"), ("location", "place_n"),
            ("people", "people_n"), ("language id", "n")]
    keys = {"intent": "intent", "category": "category", "location": "place", "people": "people",
            "language id": "language"}
    langs = sorted(result["tallies"])
    print(f"{'held-out':<13}" + "".join(f"{lang:>20}" for lang in langs))
    for label, denom in rows:
        print(f"{label:<13}" + "".join(
            f"{pct(result['tallies'][lang][keys[label]], result['tallies'][lang][denom]):>20}" for lang in langs))
    if any(result["tallies"][lang]["territory_n"] for lang in langs):  # files labelled with territories
        print(f"{'place (terr.)':<13}" + "".join(
            f"{pct(result['tallies'][lang]['territory'], result['tallies'][lang]['territory_n']):>20}"
            for lang in langs))
        print(f"{'silent wrong':<13}" + "".join(
            f"{result['tallies'][lang]['silent']:>11} of {result['tallies'][lang]['territory_n']:<5}" for lang in langs))
    print("\ncategory confusion (expected -> predicted: count), errors only:")
    for (exp, got), n in sorted(result["confusion"].items()):
        if exp != got:
            print(f"  {exp:<16} -> {got:<16} {n}")
    print("\nmisses:")
    for kind, lang, text, exp, got in result["misses"]:
        print(f"  [{kind}/{lang}] {text!r}: expected {exp}, got {got}")


def cross_validate(config: Path, folds: int) -> None:
    """Rasa's k-fold on the training data, then accuracy per language from its errors."""
    rasa_project.write_build()
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "results"
        started = time.monotonic()
        subprocess.run([str(rasa_project.rasa_bin()), "test", "nlu", "--nlu", str(NLU / "data"),
                        "--config", str(config), "--cross-validation", "--folds", str(folds),
                        "--out", str(out), "--no-plot"],
                       check=True, env=stack.child_env(), stdout=subprocess.DEVNULL)
        print(f"{folds}-fold cross-validation took {time.monotonic() - started:.0f} s")
        errors = json.loads((out / "intent_errors.json").read_text()) if (out / "intent_errors.json").exists() else []
    by_text = {}
    for f in sorted((NLU / "data").glob("nlu_*.yml")):
        lang = f.stem.split("_")[1]
        for block in yaml.safe_load(f.read_text(encoding="utf-8")).get("nlu", []):
            for line in (block.get("examples") or "").splitlines():
                if line.strip().startswith("- "):
                    by_text[plain(line.strip()[2:]).strip()] = (lang, block["intent"])
    totals, reports = Counter(), Counter()
    for lang, intent in by_text.values():
        totals[lang] += 1
        reports[lang] += code_for_intent(intent) is not None
    wrong_intent, wrong_category = Counter(), Counter()
    for e in errors:
        lang, true = by_text.get(e["text"].strip(), ("?", e.get("intent")))
        predicted = (e.get("intent_prediction") or {}).get("name")
        if public_intent(predicted) != public_intent(true):
            wrong_intent[lang] += 1
        if code_for_intent(true) and predicted != true:
            wrong_category[lang] += 1
    langs = sorted(totals)
    print(f"{'cross-validation':<20}" + "".join(f"{lang:>10}" for lang in langs))
    print(f"{'intent (public)':<20}" + "".join(
        f"{100 * (totals[lang] - wrong_intent[lang]) / totals[lang]:9.1f}%" for lang in langs))
    print(f"{'category (reports)':<20}" + "".join(
        f"{100 * (reports[lang] - wrong_category[lang]) / reports[lang]:9.1f}%" for lang in langs))
    print("(the training files carry no place, count or language labels beyond their file: "
          "location, people and language id are measured on the held-out files only)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", type=Path, default=NLU / "config.yml")
    parser.add_argument("--heldout", type=Path, action="append",
                        help="held-out file(s); default: all four in nlu/tests")
    parser.add_argument("--short", type=Path, default=NLU / "tests" / "short.yml",
                        help="short messages for language identification")
    parser.add_argument("--folds", type=int, default=0, help="also run k-fold cross-validation")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        started = time.monotonic()
        model = train_model(args.config, Path(tmp))
        print(f"model {model.name}: {model.stat().st_size / 1e6:.1f} MB (ready in {time.monotonic() - started:.0f} s)")
        heldout(model, args.heldout or [NLU / "tests" / "heldout.yml", NLU / "tests" / "heldout_2.yml",
                                        NLU / "tests" / "heldout_places.yml",
                                        NLU / "tests" / "heldout_places_2.yml"],
                args.short)
    if args.folds:
        cross_validate(args.config, args.folds)


if __name__ == "__main__":
    main()
