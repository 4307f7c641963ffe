"""`alerte locales merge`: bring a new release's catalogs into the writable copy where the
console's translators save (LOCALES_DIR), without losing their work.

For each language, every message of the release's catalog (the repository's locales/)
ends up in the copy: a translation saved in the copy is kept while its English source is
unchanged (a changed source takes the release's text, fuzzy if the copy had one, as
`pybabel update` would); a message new in the release comes with the release's text;
a message the release dropped is dropped. Then the .mo files are compiled. Run by the
`migrate` service of compose.yaml before the others start; idempotent.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from babel.messages.catalog import Catalog
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po, write_po

from bot.languages import LANGUAGES
from bot.messages import DOMAIN

RELEASE = Path(__file__).resolve().parent.parent / "locales"


def _read(path: Path, lang: str) -> Catalog | None:
    if not path.is_file():
        return None
    with path.open("rb") as source:
        return read_po(source, locale=lang)


def merge(release_dir: Path, target_dir: Path, languages=LANGUAGES) -> dict[str, dict[str, int]]:
    """Merge each language's release catalog into the target's; counts per language."""
    report = {}
    for lang in languages:
        relative = Path(lang) / "LC_MESSAGES" / f"{DOMAIN}.po"
        release = _read(release_dir / relative, lang)
        if release is None:
            raise FileNotFoundError(f"the release has no {relative}")
        saved = _read(target_dir / relative, lang)
        kept = 0
        if saved is not None:
            for message in release:
                if not message.id:
                    continue
                mine = saved.get(message.id, context=message.context)
                if mine is None or not mine.string or mine.string == message.string:
                    continue
                if mine.previous_id or "fuzzy" in mine.flags:
                    continue  # the copy's own text was already doubtful: the release's wins
                message.string = mine.string
                message.user_comments = list(mine.user_comments)  # e.g. a review note cleared there
                kept += 1
        path = target_dir / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        temporary = path.with_suffix(".po.tmp")
        with temporary.open("wb") as out:
            write_po(out, release, width=100)
        temporary.replace(path)
        with path.with_suffix(".mo").open("wb") as out:
            write_mo(out, release)
        report[lang] = {"messages": sum(1 for m in release if m.id), "kept": kept}
    return report


def cli(parser: argparse.ArgumentParser):
    sub = parser.add_subparsers(dest="action", required=True)
    run = sub.add_parser("merge", help="merge the release's catalogs into LOCALES_DIR, keeping saved translations")
    run.add_argument("--target", help="default: LOCALES_DIR")
    return _run


def _run(args) -> int:
    from service import config
    target = Path(args.target or config.load().get("LOCALES_DIR") or RELEASE)
    if target.resolve() == RELEASE.resolve():
        print("LOCALES_DIR is the release's own locales/: nothing to merge")
        return 0
    for lang, counts in merge(RELEASE, target).items():
        print(f"{lang}: {counts['messages']} messages, {counts['kept']} translations kept from {target}")
    return 0
