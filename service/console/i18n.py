"""The console's languages: French first, English; Babel catalogs under locales/<lang>/
LC_MESSAGES/console.po and console_<page>.po (merged), compiled to .mo at start if the
image or setup.sh did not (the .mo files are not committed).

Templates get `_`/`gettext`/`ngettext` once (jinja2.ext.i18n, newstyle); each call asks the
request's language, so two operators in two languages never share a catalog on a thread.
"""

from __future__ import annotations

import os
from datetime import datetime, timezone
from pathlib import Path

from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from babel.support import NullTranslations, Translations
from flask import current_app, has_request_context, session

from bot import messages as sms_messages
from bot.categories import CODES, label_msgid
from bot.parsing import EAST
from service.config import ROOT

LANGUAGES = ("fr", "en")
DOMAIN = "console"
LOCALES_DIR = ROOT / "locales"
SESSION_KEY = "console_lang"
ENDONYMS = {"fr": "Français", "en": "English"}  # the switch names a language in itself


def N_(text: str) -> str:
    """Marks a string for extraction; translated where it is shown."""
    return text


STATUS_LABELS = {
    "new": N_("New"), "incomplete": N_("Incomplete"), "acknowledged": N_("Acknowledged"),
    "verified": N_("Verified"), "unverifiable": N_("Unverifiable"), "false": N_("False"),
    "duplicate": N_("Duplicate"), "dispatched": N_("Dispatched"), "closed": N_("Closed"),
}
CHANNEL_LABELS = {"sms": N_("SMS"), "voice": N_("Voice"), "operator": N_("Operator")}
LANGUAGE_LABELS = {"fr": N_("French"), "sw": N_("Swahili"), "ln": N_("Lingala"), "en": N_("English")}
ROLE_LABELS = {"administrator": N_("administrator"), "analyst": N_("analyst"), "broadcaster": N_("broadcaster"),
               "translator": N_("translator")}
KIND_LABELS = {"place-name": N_("place name"), "message": N_("message"), "fallback": N_("whole report")}


def catalog_files(lang: str) -> list[Path]:
    """console.po, then one console_<page>.po per group of pages (each written on its own,
    so that two pages' translators never edit one file), merged into one catalog."""
    folder = LOCALES_DIR / lang / "LC_MESSAGES"
    main = folder / f"{DOMAIN}.po"
    return [main] + sorted(p for p in folder.glob(f"{DOMAIN}_*.po"))


def compile_catalog(lang: str) -> Path:
    """Build the .mo files from the .po files when missing or older; the main one's path."""
    for po in catalog_files(lang)[1:]:
        _compile(po, lang)
    return _compile(catalog_files(lang)[0], lang)


def _compile(po: Path, lang: str) -> Path:
    mo = po.with_suffix(".mo")
    if not mo.exists() or mo.stat().st_mtime < po.stat().st_mtime:
        with po.open("rb") as src:
            catalog = read_po(src, locale=lang)
        tmp = mo.with_name(f".{mo.name}.{os.getpid()}.tmp")  # several workers may start at once
        with tmp.open("wb") as out:
            write_mo(out, catalog)
        tmp.replace(mo)
    return mo


def init_app(app) -> None:
    catalogs = {}
    for lang in LANGUAGES:
        with compile_catalog(lang).open("rb") as fp:
            catalogs[lang] = Translations(fp, domain=DOMAIN)
        for po in catalog_files(lang)[1:]:
            with po.with_suffix(".mo").open("rb") as fp:
                catalogs[lang].merge(Translations(fp, domain=DOMAIN))
    app.extensions["console_translations"] = catalogs
    app.jinja_env.add_extension("jinja2.ext.i18n")
    app.jinja_env.globals.update(
        lang=language, other_languages=lambda: [(code, ENDONYMS[code]) for code in LANGUAGES if code != language()],
        roles=lambda operator: ", ".join(label(ROLE_LABELS, r) for r in operator.roles or []),
        category_label=category_label, status_label=lambda v: label(STATUS_LABELS, v),
        channel_label=lambda v: label(CHANNEL_LABELS, v), language_label=lambda v: label(LANGUAGE_LABELS, v),
        kind_label=lambda v: label(KIND_LABELS, v))
    app.jinja_env.filters["local_time"] = local_time
    # Jinja formats the variables itself (escaping them): give it the bare lookups
    app.jinja_env.install_gettext_callables(lambda text: _translations().gettext(text),
                                            lambda one, many, n: _translations().ngettext(one, many, n),
                                            newstyle=True)


def language() -> str:
    """The operator's choice in the session, else CONSOLE_LANGUAGE."""
    if has_request_context():
        chosen = session.get(SESSION_KEY)
        if chosen in LANGUAGES:
            return chosen
    default = current_app.config.get("CONSOLE_LANGUAGE")
    return default if default in LANGUAGES else LANGUAGES[0]


def _translations() -> NullTranslations:
    return current_app.extensions["console_translations"][language()]


def gettext(text: str, **variables) -> str:
    translated = _translations().gettext(text)
    return translated % variables if variables else translated


def ngettext(singular: str, plural: str, n: int, **variables) -> str:
    variables.setdefault("num", n)
    return _translations().ngettext(singular, plural, n) % variables


_ = gettext


def category_label(code: str | None) -> str:
    """The SMS catalogs' label of a category (the one place that names them), in French or English."""
    if code not in CODES:
        return gettext("no category")
    msgid = label_msgid(code)
    return sms_messages.text(msgid, "fr") if language() == "fr" else sms_messages.MESSAGES[msgid]


def local_time(value: datetime | None) -> str:
    """A stored time as operators read it: eastern DRC's clock (+02:00), to the minute."""
    if value is None:
        return "—"
    aware = value if value.tzinfo else value.replace(tzinfo=timezone.utc)  # SQLite keeps no offset
    return aware.astimezone(EAST).strftime("%Y-%m-%d %H:%M")


def label(table: dict, value: str | None) -> str:
    return gettext(table[value]) if value in table else (value or "—")
