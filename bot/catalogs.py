"""The translation catalogs: extract the template, merge it into each language, check them.

``bot.messages.MESSAGES`` is the source: each message id becomes a ``msgctxt`` and its
English text the ``msgid``. Translators edit ``locales/<lang>/LC_MESSAGES/messages.po``
(see ``locales/README.md``)::

    python -m bot.catalogs extract   # MESSAGES -> locales/messages.pot
    python -m bot.catalogs update    # messages.pot -> each language's messages.po
    python -m bot.catalogs check     # what is missing, fuzzy, too long, wrong...
    python -m bot.catalogs review    # the texts a native speaker has still to confirm

``check`` renders every translation with typical arguments, the way ``bot.messages``
does, and reports any SMS over one GSM-7 segment (160 septets). The confirmation, which
embeds the summary, is measured at its worst instead: the longest labels of the
language, the longest place name of the gazetteer and free text at the limits of
``bot.summary``.

A translator comment ``# review: <what to confirm>`` above an entry of a .po file marks
a text that a native speaker has still to confirm; ``update`` keeps it, ``review``
lists them, and the reviewer deletes the line once the text is confirmed.
"""

from __future__ import annotations

import argparse
import io
import string
import sys
from datetime import datetime
from pathlib import Path

from babel.messages.catalog import Catalog, Message
from babel.messages.pofile import PoFileParser, read_po, unescape, write_po

from bot.categories import CODES, label_msgid
from bot.flow import alert_flow
from bot.gsm7 import BASIC, EXTENSION, REPLACEMENTS, septets, to_gsm7
from bot.languages import LANGUAGES, LOCALES
from bot.messages import DOMAIN, LOCALES_DIR, MESSAGES
from bot.places import default_gazetteer
from bot.summary import (
    FREE_TEXT_MAX, PEOPLE_MAX, PERPETRATOR_MAX, PLACE_TEXT_MAX, WHEN_FORMAT, WHEN_TEXT_MAX,
    longest_place_label, shorten,
)

POT_PATH = LOCALES_DIR / f"{DOMAIN}.pot"
PROJECT = "alerte"
SMS_LIMIT = 160

# Plural rules written into each header. Babel writes (n != 1) for Lingala; CLDR's
# rule for Lingala is "one: n in 0..1", like French.
PLURAL_FORMS = {
    "fr": "nplurals=2; plural=(n > 1);",
    "sw": "nplurals=2; plural=(n != 1);",
    "ln": "nplurals=2; plural=(n > 1);",
}

COMMENT_SMS = "SMS: keep under 160 characters after filling placeholders; keep {placeholders} as they are"
COMMENT_LABEL = "menu label: one or two words"
COMMENT_VALUE = "value inside a summary: one or two words"
COMMENT_VOICE = ("voice line: spoken to the caller (an operator's recording, else espeak-ng reads it); "
                 "short spoken sentences, no placeholders: values are played as separate pieces")
# A translator comment starting with this marks a text a native speaker has to confirm.
REVIEW = "review:"

# Extra notes for translators, shown in the .po files as "#." comments.
NOTES = {
    "ask_category": "{options} becomes the 12 category labels: \"1 Attack 2 Armed men ... 12 Other\"",
    "ask_place_choice": "{name} is a place name; {options} becomes \"1 Kasindi (Beni) 2 Kasindi (Lubero)\"",
    "ask_when": "{options} becomes the when.* labels: \"1 Now 2 Today 3 Last night ...\"",
    "ask_correction": "{options} becomes the field.* labels: \"1 What 2 Place 3 When ...\"",
    "confirm": "{summary} is the summary message below; keep \"1\" for yes and \"2\" for correct",
    "summary": "{category} and {when} are menu labels, {place} a place name, "
               "{people} a number or value.*, {perpetrator} a group name or value.*; "
               "inside confirm it must fit one SMS with the longest place name and the longest "
               "free text (check measures it)",
    "ask_people": "asked when no question below fits the kind of report",
    "ask_people_hurt": "asked after a report of an attack or of fighting",
    "ask_people_taken": "asked after a report of kidnapping: people taken away by force "
                        "(not arrested by the police)",
    "ask_people_victims": "asked after a report of rape or sexual violence: say it gently",
    "ask_people_fled": "asked after a report of people fleeing, or displaced people arriving; "
                       "a rough number is fine",
    "submitted": "{reference} looks like A-7K3M9Q",
    "help": "keep the command words FR, SW, LN and STOP exactly; in Swahili add ACHA, in Lingala TIKA",
    "subscription_words": "keep STOP and START exactly; in Swahili add ACHA and ANZA, in Lingala TIKA and BANDA",
    "opted_out": "keep START exactly; in Swahili add ANZA, in Lingala BANDA",
    "language_menu": "keep FR, SW and LN exactly",
    "language_changed": "write this in the language of this file (it confirms the new language)",
}

HEADER_COMMENT = """\
# {title} for the {project} community alert line.
# Copyright (C) the {project} contributors. Licensed under Apache-2.0.
# Edit the msgstr lines only; see locales/README.md.
#"""

_LANGUAGE_NAMES = {"fr": "French", "sw": "Swahili", "ln": "Lingala"}


def po_path(lang: str) -> Path:
    return LOCALES_DIR / lang / "LC_MESSAGES" / f"{DOMAIN}.po"


def is_label(msg_id: str) -> bool:
    return msg_id.split(".")[0] in ("category", "option", "when", "field")


def comments(msg_id: str) -> list[str]:
    if is_label(msg_id):
        out = [COMMENT_LABEL]
    elif msg_id.startswith("value."):
        out = [COMMENT_VALUE]
    elif msg_id.startswith("voice."):
        out = [COMMENT_VOICE]
    else:
        out = [COMMENT_SMS]
    if msg_id in NOTES:
        out.append(NOTES[msg_id])
    return out


# --- typical arguments, to measure every message as it will be sent ------------------

def _menu(prefix: str) -> list[list]:
    return [[i + 1, "@" + k] for i, k in enumerate(k for k in MESSAGES if k.startswith(prefix))]


SAMPLE_SUMMARY_ARGS = {
    "category": "@" + label_msgid("LOOTING"), "place": "Kitshanga (Masisi)",
    "when": "@when.last_night", "people": "12", "perpetrator": "@value.armed_men",
}

SAMPLES: dict[str, tuple[dict, list | None]] = {
    "ask_category": ({}, [[i + 1, "@" + label_msgid(code)] for i, code in enumerate(CODES)]),
    "ask_place_choice": ({"name": "Kasindi"},
                         [[1, "Kasindi (Beni)"], [2, "Kasindi (Lubero)"], [3, "Kasindi (Mambasa)"]]),
    "ask_when": ({}, _menu("when.")),
    "ask_correction": ({}, _menu("field.")),
    "confirm": ({"summary": {"msg": "summary", "args": SAMPLE_SUMMARY_ARGS}}, None),
    "summary": (SAMPLE_SUMMARY_ARGS, None),
    "submitted": ({"reference": "A-7K3M9Q"}, None),
}


def _shown(lookup, value) -> str:
    """An argument as the summary shows it: a message id's text, or the text itself."""
    if isinstance(value, str) and value.startswith("@") and value[1:] in MESSAGES:
        return lookup(value[1:])
    return str(value)


def summary_worst_values() -> dict[str, list]:
    """Every kind of value each placeholder of the summary can show, at its longest:
    what ``service.actions.form.summary`` writes (labels, the gazetteer's longest place
    name as summary() names it, free text as long as a reporter may write it, cut to the
    limits of bot.summary, a time, the largest number shown)."""
    free = "x" * FREE_TEXT_MAX
    unknown = "@value.unknown"
    when = alert_flow().field("occurred_at")
    return {
        "category": ["@" + label_msgid(code) for code in CODES] + [unknown],
        "place": [longest_place_label(default_gazetteer()), shorten(free, PLACE_TEXT_MAX), unknown],
        "when": ["@when." + o.value for o in when.options]
                + [datetime(2026, 12, 31, 23, 59).strftime(WHEN_FORMAT), shorten(free, WHEN_TEXT_MAX), unknown],
        "people": ["@value.many", "@value.unknown", "@value.none", "-", str(PEOPLE_MAX)],
        "perpetrator": ["@value.armed_men", unknown, shorten(free, PERPETRATOR_MAX)],
    }


def worst_summary_args(lookup) -> dict:
    """The summary's arguments that make it longest in one language (``lookup(msg_id)``
    gives that language's texts): each placeholder at its longest value."""
    return {name: max(values, key=lambda v: septets(to_gsm7(_shown(lookup, v))))
            for name, values in summary_worst_values().items()}


def worst_sample(msg_id: str, lookup) -> tuple[dict, list | None] | None:
    """(args, options) at their longest for the summary and the confirmation that embeds
    it; None for other messages (measured with typical values)."""
    flow = alert_flow()
    if msg_id == flow.summary:
        return worst_summary_args(lookup), None
    if msg_id == flow.confirm_ask:
        return {"summary": {"msg": flow.summary, "args": worst_summary_args(lookup)}}, None
    return None


def placeholders(text: str) -> set[str]:
    """The {names} of a str.format template (ValueError if the braces are malformed)."""
    return {name for _, name, _, _ in string.Formatter().parse(text) if name is not None}


def sample(msg_id: str) -> tuple[dict, list | None]:
    """Typical (args, options) for a message; unknown placeholders get a 12-letter word."""
    if msg_id in SAMPLES:
        args, options = SAMPLES[msg_id]
        return dict(args), options
    names = placeholders(MESSAGES[msg_id]) - {"options"}
    options = _menu("option.") if "options" in placeholders(MESSAGES[msg_id]) else None
    return {name: "Abcdefghijkl" for name in names}, options


def render_with(lookup, msg_id: str, args: dict | None = None, options: list | None = None) -> str:
    """Render like ``bot.messages.render``, with ``lookup(msg_id) -> template`` (no fallback)."""
    def value(v):
        if isinstance(v, dict) and v.get("msg") in MESSAGES:
            return render_with(lookup, v["msg"], v.get("args"), v.get("options"))
        if isinstance(v, str) and v.startswith("@") and v[1:] in MESSAGES:
            return lookup(v[1:])
        return str(v)

    values = {k: value(v) for k, v in (args or {}).items()}
    if options:
        values["options"] = " ".join(f"{n} {value(label)}" for n, label in options)
    return to_gsm7(lookup(msg_id).format(**values))


# --- extract ---------------------------------------------------------------------------

def template() -> Catalog:
    catalog = Catalog(project=PROJECT, version="0.1", copyright_holder=f"the {PROJECT} contributors",
                      msgid_bugs_address="", fuzzy=False,
                      header_comment=HEADER_COMMENT.format(title="Translations template", project=PROJECT))
    for msg_id, source in MESSAGES.items():
        catalog.add(source, context=msg_id, auto_comments=comments(msg_id))
    return catalog


def _po_bytes(catalog: Catalog, **kwargs) -> bytes:
    buf = io.BytesIO()
    write_po(buf, catalog, width=400, no_location=True, omit_header=False, **kwargs)
    return buf.getvalue()


# Header fields a run writes anew (dates) or that only name the Babel release that wrote
# the file: never a reason to call a catalog out of date, nor to rewrite it.
GENERATED_HEADERS = frozenset({"pot-creation-date", "po-revision-date", "generated-by"})


class _Reader(PoFileParser):
    """Babel's .po reader that also keeps each entry's flags as written: ``Message()``
    adds or drops python-format and python-brace-format after its msgid, which would
    hide a file that lacks (or has extra) format flags."""

    def __init__(self, catalog: Catalog) -> None:
        self.written_flags: list[tuple[str, ...]] = []
        super().__init__(catalog)

    def _add_message(self) -> None:
        self.written_flags.append(tuple(self.flags))
        super()._add_message()


def _content(data: bytes) -> tuple:
    """What a catalog says, whatever Babel release wrote it and whenever: the header
    comment, the header fields but the generated ones, then every entry (obsolete ones
    too) in file order with its context, msgid, msgstr, flags, comments and previous msgid.
    Line wrapping, escaping and the order of flags do not count."""
    catalog = Catalog(domain=DOMAIN)
    reader = _Reader(catalog)
    reader.parse(io.BytesIO(data))
    headers = tuple((name, value) for name, value in catalog.mime_headers
                    if name.lower() not in GENERATED_HEADERS)

    def entry(m: Message) -> tuple:
        return (m.context, m.id, m.string, tuple(sorted(m.flags)), tuple(m.auto_comments),
                tuple(m.user_comments), tuple(m.previous_id), tuple(m.locations))

    return (catalog.header_comment, headers, catalog.fuzzy,
            tuple(entry(m) for m in catalog if m.id),
            tuple(entry(m) for m in catalog.obsolete.values()),
            tuple(tuple(sorted(flags)) for flags in reader.written_flags))


def _same_content(new: bytes, path: Path) -> bool:
    """True if the file holds the same catalog as ``new`` (see ``_content``)."""
    if not path.exists():
        return False
    return _content(new) == _content(path.read_bytes())


def _write(path: Path, data: bytes) -> bool:
    if _same_content(data, path):
        return False
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_bytes(data)
    tmp.replace(path)
    return True


def extract(path: Path | str = POT_PATH) -> Catalog:
    """Build the template from MESSAGES and write it (only if its content changed)."""
    catalog = template()
    _write(Path(path), _po_bytes(catalog))
    return catalog


# --- update ----------------------------------------------------------------------------

def _fix_header(catalog: Catalog, lang: str) -> None:
    catalog.locale = LOCALES[lang]
    catalog.mime_headers = [("Plural-Forms", PLURAL_FORMS[lang])]
    catalog.header_comment = HEADER_COMMENT.format(
        title=f"{_LANGUAGE_NAMES.get(lang, lang)} translations", project=PROJECT)
    catalog.project, catalog.version = PROJECT, "0.1"
    catalog.language_team = f"{_LANGUAGE_NAMES.get(lang, lang)} ({LOCALES[lang]})"
    catalog.fuzzy = False


def read_catalog(lang: str) -> Catalog:
    with po_path(lang).open("rb") as fp:
        catalog = read_po(fp, locale=LOCALES[lang], domain=DOMAIN)
    _restore_previous(catalog)
    return catalog


def _restore_previous(catalog: Catalog) -> None:
    """Babel reads ``#| msgid "..."`` back as a user comment; make it ``previous_id`` again
    (kept only while the entry is fuzzy, as msgmerge does)."""
    for message in catalog:
        previous = [c for c in message.user_comments if c.startswith("|")]
        if not previous:
            continue
        message.user_comments = [c for c in message.user_comments if not c.startswith("|")]
        old = next((c[1:].strip()[len("msgid"):].strip() for c in previous
                    if c[1:].strip().startswith("msgid ")), None)
        if message.fuzzy and old:
            message.previous_id = [unescape(old)]


def update(pot: Path | str = POT_PATH, langs=LANGUAGES, drop_obsolete: bool = False) -> list[Path]:
    """Merge the template into each language's .po, keeping translations; returns files changed.

    Messages are matched by their id (msgctxt). When the English text of an id changed,
    the old translation is kept, marked fuzzy, with the old English as ``#| msgid``.
    Entries whose id disappeared stay as obsolete (``#~``) unless ``drop_obsolete``.
    """
    pot_bytes = Path(pot).read_bytes()
    changed = []
    for lang in langs:
        # A fresh template each time: Catalog.update() adds the template's own Message
        # objects for new ids, so a shared template would leak one language into the next.
        tmpl = read_po(io.BytesIO(pot_bytes), domain=DOMAIN)
        path = po_path(lang)
        if path.exists():
            catalog = read_catalog(lang)
        else:
            catalog = Catalog(locale=LOCALES[lang], domain=DOMAIN, fuzzy=False)
        previous = {m.context: m.previous_id for m in catalog if m.id and m.previous_id}
        catalog.update(tmpl, no_fuzzy_matching=True, update_header_comment=False)
        for message in catalog:  # update() forgets the old English of entries still fuzzy
            if message.id and message.fuzzy and not message.previous_id and message.context in previous:
                message.previous_id = previous[message.context]
        # Same id, new English text: keep the translation for review instead of losing it.
        by_context = {m.context: key for key, m in catalog.obsolete.items() if m.context}
        for message in list(catalog):
            if not message.id or message.string or message.context not in by_context:
                continue
            old = catalog.obsolete.pop(by_context[message.context])
            message.string = old.string
            message.previous_id = [old.id]
            message.flags.add("fuzzy")
            if old.user_comments:
                message.user_comments = list(old.user_comments)
        if drop_obsolete:
            catalog.obsolete.clear()
        _fix_header(catalog, lang)
        if _write(path, _po_bytes(catalog, include_previous=True)):
            changed.append(path)
    return changed


# --- check -----------------------------------------------------------------------------

def _outside_gsm7(text: str) -> set[str]:
    """Characters that to_gsm7 cannot transliterate (they would be sent as "?")."""
    return {ch for ch in text if ch not in BASIC and ch not in EXTENSION and ch not in REPLACEMENTS
            and to_gsm7(ch) == "?"}


def check(langs=LANGUAGES, pot: Path | str | None = POT_PATH) -> list[str]:
    """Every problem in the catalogs, one line each ("lang: id: what"); empty if all is well."""
    problems: list[str] = []
    if pot is not None:
        pot = Path(pot)
        if not pot.exists():
            problems.append(f"{pot.name}: missing; run `python -m bot.catalogs extract`")
        elif not _same_content(_po_bytes(template()), pot):
            problems.append(f"{pot.name}: out of date with bot/messages.py; "
                            "run `python -m bot.catalogs extract` then `update`")
    for lang in langs:
        if not po_path(lang).exists():
            problems.append(f"{lang}: {po_path(lang).relative_to(LOCALES_DIR.parent)} is missing; "
                            "run `python -m bot.catalogs update`")
            continue
        problems += _check_language(lang, read_catalog(lang))
    return problems


def _check_language(lang: str, catalog: Catalog) -> list[str]:
    problems: list[str] = []
    header = dict((k.lower(), v) for k, v in catalog.mime_headers)
    if catalog.plural_forms != PLURAL_FORMS[lang]:
        problems.append(f"{lang}: header Plural-Forms is {catalog.plural_forms!r}, "
                        f"expected {PLURAL_FORMS[lang]!r}")
    if header.get("language") != LOCALES[lang]:
        problems.append(f"{lang}: header Language is {header.get('language')!r}, expected {LOCALES[lang]!r}")

    by_context: dict[str, Message] = {}
    for message in catalog:
        if not message.id:
            continue
        if message.context not in MESSAGES:
            problems.append(f"{lang}: {message.context or message.id!r}: not a message of bot/messages.py; "
                            "run `python -m bot.catalogs update`")
            continue
        by_context[message.context] = message
    for message in catalog.obsolete.values():
        problems.append(f"{lang}: {message.context or message.id!r}: obsolete entry; delete it "
                        "(or run `python -m bot.catalogs update --drop-obsolete`)")

    usable: dict[str, str] = {}
    for msg_id, source in MESSAGES.items():
        message = by_context.get(msg_id)
        where = f"{lang}: {msg_id}"
        if message is None:
            problems.append(f"{where}: missing; run `python -m bot.catalogs update`")
            continue
        if message.id != source:
            problems.append(f"{where}: the English text changed; run `python -m bot.catalogs update` "
                            "and review the translation")
            continue
        translated = message.string if isinstance(message.string, str) else ""
        if not translated.strip():
            problems.append(f"{where}: not translated")
            continue
        if message.fuzzy:
            problems.append(f"{where}: fuzzy (review the translation, then remove the fuzzy flag)")
        if translated == source:
            problems.append(f"{where}: same as the English text (the service would fall back to French)")
        if translated != translated.strip():
            problems.append(f"{where}: leading or trailing spaces")
        try:
            found, expected = placeholders(translated), placeholders(source)
        except ValueError as exc:
            problems.append(f"{where}: malformed braces ({exc}); write placeholders as {{name}}")
            continue
        if found != expected:
            problems.append(f"{where}: placeholders {sorted(found)} differ from the source's {sorted(expected)}")
            continue
        bad = _outside_gsm7(translated)
        if bad:
            problems.append(f"{where}: characters that cannot be sent by SMS: {''.join(sorted(bad))}")
        usable[msg_id] = translated

    def lookup(msg_id: str) -> str:
        return usable.get(msg_id, MESSAGES[msg_id])

    for msg_id in usable:
        worst = worst_sample(msg_id, lookup)
        args, options = worst or sample(msg_id)
        try:
            text = render_with(lookup, msg_id, args, options)
        except (KeyError, IndexError, ValueError) as exc:
            problems.append(f"{lang}: {msg_id}: does not render ({exc!r})")
            continue
        n = septets(text)
        if n > SMS_LIMIT:
            values = "the longest values (bot/summary.py)" if worst else "typical values"
            problems.append(f"{lang}: {msg_id}: {n} GSM-7 characters with {values}, "
                            f"over {SMS_LIMIT}: {text!r}")
    return problems


def _translations(catalog: Catalog) -> dict[str, str]:
    return {m.context: m.string for m in catalog
            if m.id and m.context in MESSAGES and isinstance(m.string, str) and m.string.strip()
            and not m.fuzzy}


def worst_confirmation(lang: str) -> str:
    """The confirmation at its longest in a language, as sent (English where a text is
    missing: check reports that)."""
    translated = _translations(read_catalog(lang))

    def lookup(msg_id: str) -> str:
        return translated.get(msg_id, MESSAGES[msg_id])

    args, options = worst_sample(alert_flow().confirm_ask, lookup)
    return render_with(lookup, alert_flow().confirm_ask, args, options)


# --- review ----------------------------------------------------------------------------

def reviews(langs=LANGUAGES) -> list[tuple[str, str, str, str]]:
    """(lang, id, what to confirm, text) of every entry marked ``# review: ...``."""
    out = []
    for lang in langs:
        if not po_path(lang).exists():
            continue
        for message in read_catalog(lang):
            if not message.id:
                continue
            for comment in message.user_comments:
                if comment.strip().startswith(REVIEW):
                    note = comment.strip()[len(REVIEW):].strip()
                    out.append((lang, message.context or "", note, message.string or ""))
    return out


# --- command line ----------------------------------------------------------------------

def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bot.catalogs", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("extract", help="write locales/messages.pot from bot/messages.py")
    up = sub.add_parser("update", help="merge messages.pot into each language's messages.po")
    up.add_argument("--drop-obsolete", action="store_true", help="delete entries no longer used")
    sub.add_parser("check", help="list missing, fuzzy, wrong or too long translations")
    rev = sub.add_parser("review", help="list the texts a native speaker has still to confirm")
    rev.add_argument("langs", nargs="*", metavar="LANG", help="fr, sw or ln (all by default)")
    args = parser.parse_args(argv)
    root = LOCALES_DIR.parent
    if args.command == "extract":
        catalog = extract()
        print(f"{POT_PATH.relative_to(root)}: {len(catalog)} messages")
    elif args.command == "update":
        changed = update(drop_obsolete=args.drop_obsolete)
        for path in changed:
            print(f"updated {path.relative_to(root)}")
        if not changed:
            print("catalogs already up to date")
    elif args.command == "review":
        unknown = sorted(set(args.langs) - set(LANGUAGES))
        if unknown:
            parser.error(f"unknown languages {unknown}; choose among {', '.join(LANGUAGES)}")
        found = reviews(args.langs or LANGUAGES)
        for lang, msg_id, note, text in found:
            print(f"{lang}: {msg_id}: {text!r}\n    {note}")
        print(f"{len(found)} text(s) to be confirmed by a native speaker")
    else:
        problems = check()
        for problem in problems:
            print(problem)
        if problems:
            print(f"{len(problems)} problem(s)", file=sys.stderr)
            return 1
        longest = ", ".join(f"{lang} {septets(worst_confirmation(lang))}" for lang in LANGUAGES)
        print(f"OK: {len(MESSAGES)} messages in {', '.join(LANGUAGES)}; the longest confirmation "
              f"takes {longest} of {SMS_LIMIT} GSM-7 characters")
        waiting = len(reviews())
        if waiting:
            print(f"{waiting} text(s) await a native speaker's review: python -m bot.catalogs review")
    return 0


if __name__ == "__main__":
    sys.exit(main())
