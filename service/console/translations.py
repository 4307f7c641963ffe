"""Translators' pages: every SMS and voice text beside the French, what is missing, fuzzy
or waiting for a native speaker, saved back to locales/<lang>/LC_MESSAGES/messages.po;
and the voice prompts' recordings, uploaded and played per message and language.

A text is refused for the reasons ``python -m bot.catalogs check`` (run in CI) would give:
placeholders that differ from the source's, characters SMS cannot carry, and, for an
SMS, more than one GSM-7 segment once filled with the check's sample values (this text,
or any message of the language that embeds it). Voice lines are spoken: no segment limit.

The files are those under the LOCALES_DIR setting (the repository's locales/ by default),
each replaced whole (a temporary file, then os.replace): every process that renders the
bot's replies (the web workers; the action server sends message ids, never text) sees
the new .po and .mo within about two seconds (bot.messages.translations looks at the
files once a second) and never half a file.
"""

from __future__ import annotations

import io
from pathlib import Path

from babel.messages.catalog import Catalog, Message
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from flask import abort, current_app, flash, redirect, render_template, request, send_file, url_for

from bot import catalogs, messages as sms_messages
from bot.gsm7 import septets
from bot.languages import LANGUAGES, LOCALES
from service import audit, prompts
from service.console import bp, files
from service.console.auth import current_operator, requires
from service.console.i18n import _
from service.db import get_session

ORDER = ("sw", "ln", "fr")  # the languages translators work on most come first
SHOW = ("all", "missing", "fuzzy", "review")
UPLOAD_SLACK = 64 * 1024  # the form's other fields around the audio file


def locales_dir() -> Path:
    return Path(current_app.config.get("LOCALES_DIR") or sms_messages.LOCALES_DIR)


def po_file(lang: str) -> Path:
    return locales_dir() / lang / "LC_MESSAGES" / f"{sms_messages.DOMAIN}.po"


def load(lang: str) -> Catalog:
    with po_file(lang).open("rb") as fp:
        catalog = read_po(fp, locale=LOCALES[lang], domain=sms_messages.DOMAIN)
    catalogs._restore_previous(catalog)  # "#| msgid" back to previous_id, as `update` reads it
    return catalog


def entries(catalog: Catalog) -> dict[str, Message]:
    return {m.context: m for m in catalog if m.id and m.context in sms_messages.MESSAGES}


def review_note(message: Message | None) -> str | None:
    """The ``# review: ...`` note of an entry, or None once a native speaker confirmed it."""
    for comment in (message.user_comments if message else []):
        if comment.strip().startswith(catalogs.REVIEW):
            return comment.strip()[len(catalogs.REVIEW):].strip() or "?"
    return None


def translated(message: Message | None) -> str:
    return message.string if message is not None and isinstance(message.string, str) else ""


def state(message: Message | None) -> set[str]:
    found = set()
    if not translated(message).strip():
        found.add("missing")
    if message is not None and message.fuzzy:
        found.add("fuzzy")
    if review_note(message) is not None:
        found.add("review")
    return found


def usable(by_id: dict[str, Message]) -> dict[str, str]:
    """The texts the check measures with: translated, not fuzzy, placeholders right."""
    out = {}
    for msg_id, message in by_id.items():
        text = translated(message)
        if not text.strip() or message.fuzzy:
            continue
        try:
            if catalogs.placeholders(text) == catalogs.placeholders(sms_messages.MESSAGES[msg_id]):
                out[msg_id] = text
        except ValueError:
            continue
    return out


def too_long(texts: dict[str, str]) -> dict[str, tuple[int, str]]:
    """Every SMS of a language over one segment with the check's values: id -> (septets, text)."""
    def lookup(msg_id: str) -> str:
        return texts.get(msg_id, sms_messages.MESSAGES[msg_id])

    over = {}
    for msg_id in texts:
        if msg_id.startswith("voice."):
            continue
        args, options = catalogs.worst_sample(msg_id, lookup) or catalogs.sample(msg_id)
        try:
            rendered = catalogs.render_with(lookup, msg_id, args, options)
        except (KeyError, IndexError, ValueError):
            continue  # a neighbour that does not render is the check's to report
        if septets(rendered) > catalogs.SMS_LIMIT:
            over[msg_id] = (septets(rendered), rendered)
    return over


def refusals(msg_id: str, text: str, others: dict[str, str]) -> list[str]:
    """Why `text` cannot be the translation of `msg_id` (empty: it can); `others` are the
    language's usable texts, to measure the messages that embed this one."""
    source = sms_messages.MESSAGES[msg_id]
    if not text:
        return [_("Write a translation: an empty text is not saved.")]
    problems = []
    if text == source:
        problems.append(_("This is the English text: the service would send the French instead."))
    try:
        found, expected = catalogs.placeholders(text), catalogs.placeholders(source)
    except ValueError as exc:
        return problems + [_("Malformed braces (%(error)s): write placeholders as {name}.", error=str(exc))]
    if found != expected:
        problems.append(_("The placeholders %(found)s differ from the source's %(expected)s: keep each {name} "
                          "exactly as in the source.", found=_braces(found), expected=_braces(expected)))
        return problems
    bad = catalogs._outside_gsm7(text)
    if bad:
        problems.append(_("Characters that cannot be sent by SMS: %(chars)s", chars=" ".join(sorted(bad))))
    if not msg_id.startswith("voice."):
        before = too_long(others)
        for other, (count, rendered) in too_long({**others, msg_id: text}).items():
            if other == msg_id or other not in before:
                problems.append(_("%(id)s would take %(count)d GSM-7 characters with the check's sample values, "
                                  "over one SMS of %(limit)d: %(sms)s", id=other, count=count,
                                  limit=catalogs.SMS_LIMIT, sms=rendered))
    return problems


def _braces(names) -> str:
    return " ".join("{%s}" % n for n in sorted(names)) or "—"


# --- writing the catalog ----------------------------------------------------------------

def locked(lang: str):
    """One save at a time per catalog (two translators, several workers)."""
    return files.locked(po_file(lang).parent)


def write(lang: str, catalog: Catalog) -> None:
    """The .po as `bot.catalogs update` writes it, then its .mo beside it."""
    po = po_file(lang)
    files.replace(po, catalogs._po_bytes(catalog, include_previous=True))
    with po.open("rb") as fp:  # compiled from what was written, as the service will read it
        written = read_po(fp, locale=LOCALES[lang], domain=sms_messages.DOMAIN)
    out = io.BytesIO()
    write_mo(out, written)
    files.replace(po.with_suffix(".mo"), out.getvalue())


def _snapshot(message: Message) -> dict:
    return {"text": translated(message), "fuzzy": bool(message.fuzzy), "review": review_note(message)}


# --- pages ------------------------------------------------------------------------------

def _lang_or_404(lang: str) -> str:
    if lang not in LANGUAGES:
        abort(404)
    return lang


def _reference(lang: str) -> tuple[str, dict[str, str]]:
    """The text shown beside a translation: French, or the English source beside French."""
    if lang == "fr":
        return "en", dict(sms_messages.MESSAGES)
    return "fr", {k: translated(m) for k, m in entries(load("fr")).items()}


@bp.get("/translations", endpoint="translations")
@requires("translate")
def index():
    lang = request.args.get("lang") if request.args.get("lang") in LANGUAGES else ORDER[0]
    show = request.args.get("show") if request.args.get("show") in SHOW else "all"
    by_id = entries(load(lang))
    reference_lang, reference = _reference(lang)
    rows, counts = [], {name: 0 for name in SHOW}
    for msg_id in sms_messages.MESSAGES:
        message = by_id.get(msg_id)
        flags = state(message)
        counts["all"] += 1
        for name in flags:
            counts[name] += 1
        if show == "all" or show in flags:
            rows.append((msg_id, reference.get(msg_id) or "", translated(message), flags))
    return render_template("console/translations.html", catalog_lang=lang, show=show, rows=rows, counts=counts,
                           languages=ORDER, shows=SHOW, reference_lang=reference_lang)


def _edit_page(lang: str, msg_id: str, text: str | None = None, problems=(), status: int = 200):
    message = entries(load(lang)).get(msg_id) if msg_id in sms_messages.MESSAGES else None
    reference_lang, reference = _reference(lang) if msg_id in sms_messages.MESSAGES else ("", {})
    audio = None
    if msg_id in prompts.prompt_ids():
        audio = prompts.resolve(msg_id, lang, current_app.config)
    return render_template(
        "console/translation.html", catalog_lang=lang, msg_id=msg_id, message=message,
        source=sms_messages.MESSAGES.get(msg_id), reference_lang=reference_lang, reference=reference.get(msg_id),
        text=translated(message) if text is None else text, flags=state(message), note=review_note(message),
        problems=problems, is_prompt=msg_id in prompts.prompt_ids(), audio=audio,
        spoken=msg_id.startswith("voice."), limit=catalogs.SMS_LIMIT,
        upload_max=current_app.config["PROMPT_UPLOAD_MAX"]), status


@bp.get("/translations/<lang>/<msg_id>", endpoint="translation")
@requires("translate")
def edit(lang: str, msg_id: str):
    _lang_or_404(lang)
    if msg_id not in sms_messages.MESSAGES and msg_id not in prompts.prompt_ids():
        abort(404)
    return _edit_page(lang, msg_id)


@bp.post("/translations/<lang>/<msg_id>")
@requires("translate")
def save(lang: str, msg_id: str):
    _lang_or_404(lang)
    if msg_id not in sms_messages.MESSAGES:
        abort(404)
    text = request.form.get("text", "").replace("\r\n", "\n").strip()
    confirmed = request.form.get("confirmed") == "1"
    with locked(lang):
        catalog = load(lang)
        by_id = entries(catalog)
        message = by_id.get(msg_id)
        if message is None:
            return _edit_page(lang, msg_id, text, [_("This message is not in the catalog yet: run "
                                                     "`python -m bot.catalogs update` first.")], 409)
        if request.form.get("base", "") != translated(message):
            return _edit_page(lang, msg_id, text, [_("Someone saved this text while you were editing it: "
                                                     "compare with the text now saved, then send again.")], 409)
        others = usable({k: m for k, m in by_id.items() if k != msg_id})
        problems = refusals(msg_id, text, others)
        if problems:
            return _edit_page(lang, msg_id, text, problems, 422)
        before = _snapshot(message)
        message.string = text
        message.flags.discard("fuzzy")
        message.previous_id = []  # the old English is kept only while the entry is fuzzy
        if confirmed:
            message.user_comments = [c for c in message.user_comments
                                     if not c.strip().startswith(catalogs.REVIEW)]
        after = _snapshot(message)
        if after == before:
            flash(_("Nothing changed."))
            return redirect(url_for("console.translation", lang=lang, msg_id=msg_id))
        db = get_session()
        audit.record(db, current_operator(), "translation.save", "translation", f"{lang}/{msg_id}",
                     before=before, after=after)
        db.flush()
        write(lang, catalog)
        db.commit()
    flash(_("Saved and compiled. The bot uses it within a few seconds, without a restart."))
    return redirect(url_for("console.translation", lang=lang, msg_id=msg_id))


# --- voice prompts ----------------------------------------------------------------------

def _prompt_or_404(lang: str, prompt_id: str) -> None:
    _lang_or_404(lang)
    if prompt_id not in prompts.prompt_ids():
        abort(404)


@bp.url_value_preprocessor
def _upload_size(endpoint, values) -> None:
    """An upload may be larger than MAX_CONTENT_LENGTH: set before the CSRF check reads the form."""
    if endpoint == "console.translation_audio_upload":
        request.max_content_length = current_app.config["PROMPT_UPLOAD_MAX"] + UPLOAD_SLACK


@bp.get("/translations/prompts", endpoint="translation_prompts")
@requires("translate")
def prompt_list():
    lang = request.args.get("lang") if request.args.get("lang") in LANGUAGES else ORDER[0]
    store = prompts.store(current_app.config)
    found = {code: prompts.inventory(code, store) for code in ORDER}
    return render_template("console/translation_prompts.html", catalog_lang=lang, found=found, languages=ORDER,
                           voices=prompts.VOICES)


@bp.get("/translations/<lang>/<prompt_id>/audio", endpoint="translation_audio")
@requires("translate")
def play(lang: str, prompt_id: str):
    _prompt_or_404(lang, prompt_id)
    found = prompts.resolve(prompt_id, lang, current_app.config)
    if found is None:
        abort(404)
    if request.headers.get("Range", "bytes=0-").startswith("bytes=0-"):  # a listen, not each chunk of it
        db = get_session()
        audit.record(db, current_operator(), "prompt.play", "prompt", f"{lang}/{prompt_id}",
                     after={"source": "placeholder" if found.placeholder else "recording"})
        db.commit()
    answer = send_file(found.path, mimetype=found.mimetype, conditional=True, max_age=0)
    answer.headers["X-Prompt-Source"] = "placeholder" if found.placeholder else "recording"
    return answer


@bp.post("/translations/<lang>/<prompt_id>/audio", endpoint="translation_audio_upload")
@requires("translate")
def upload(lang: str, prompt_id: str):
    _prompt_or_404(lang, prompt_id)
    limit = current_app.config["PROMPT_UPLOAD_MAX"]
    sent = request.files.get("audio")
    data = sent.read(limit + 1) if sent else b""
    if not data:
        return _edit_page(lang, prompt_id, problems=[_("Choose a WAV or MP3 file to send.")], status=422)
    store = prompts.store(current_app.config)
    replaced = store.recording(prompt_id, lang)
    try:
        ext, seconds = prompts.audio_format(data, limit)
    except prompts.PromptError as exc:
        return _edit_page(lang, prompt_id, problems=[_("This file is refused: %(reason)s", reason=str(exc))],
                          status=422)
    db = get_session()
    audit.record(db, current_operator(), "prompt.upload", "prompt", f"{lang}/{prompt_id}",
                 before={"recording": replaced.suffix[1:] if replaced else None},
                 after={"recording": ext, "seconds": seconds, "bytes": len(data)})
    db.flush()
    store.save(prompt_id, lang, data, limit)
    db.commit()
    flash(_("Recording saved (%(format)s, %(seconds)s s): the line plays it from now on.", format=ext.upper(),
            seconds=seconds))
    return redirect(url_for("console.translation", lang=lang, msg_id=prompt_id))


@bp.post("/translations/<lang>/<prompt_id>/audio/delete", endpoint="translation_audio_delete")
@requires("translate")
def delete(lang: str, prompt_id: str):
    _prompt_or_404(lang, prompt_id)
    store = prompts.store(current_app.config)
    found = store.recording(prompt_id, lang)
    if found is None:
        flash(_("There is no recording to delete."), "error")
        return redirect(url_for("console.translation", lang=lang, msg_id=prompt_id))
    db = get_session()
    audit.record(db, current_operator(), "prompt.delete", "prompt", f"{lang}/{prompt_id}",
                 before={"recording": found.suffix[1:]}, after={"recording": None})
    db.flush()
    store.delete(prompt_id, lang)
    db.commit()
    flash(_("Recording deleted: the placeholder plays again."))
    return redirect(url_for("console.translation", lang=lang, msg_id=prompt_id))
