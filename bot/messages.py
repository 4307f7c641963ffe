"""Every user-facing string, by message id, and its rendering in a language.

Each message has an id (the gettext context, ``msgctxt``) and an English source text
(the ``msgid``); the French, Swahili and Lingala texts live in ``locales/<lang>/
LC_MESSAGES/messages.po``. Dialogue actions never send text: they send a payload
``{"msg": id, "lang": code, "args": {...}}`` and the channel renders it here, so the
voice line can render the same ids as recorded prompts.

Placeholders use ``str.format`` names. ``{options}`` is filled from an ``options`` list
of ``[number, message id]`` pairs and renders as "1 Attaque 2 Enlevement".
"""

from __future__ import annotations

import os
import struct
import threading
from pathlib import Path

from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from babel.support import NullTranslations, Translations

from bot.categories import CODES, label_msgid
from bot.gsm7 import safe_text, to_gsm7
from bot.languages import DEFAULT_LANGUAGE, LANGUAGES
from bot.live_files import LiveFiles

# The catalogs: the repository's locales/, or LOCALES_DIR (a writable copy in production,
# where translators save from the console; every process reloads a changed catalog, LiveFiles)
LOCALES_DIR = Path(os.environ.get("LOCALES_DIR") or Path(__file__).resolve().parent.parent / "locales")
DOMAIN = "messages"


MESSAGES: dict[str, str] = {
    # conversation
    "welcome": "Hello, this is the alert line. Tell us what happened, where and when.",
    "ask_category": "What happened? Reply with a number: {options}",
    "ask_place": "Where did it happen? Write the name of the village or town.",
    "ask_place_choice": "Which {name}? Reply with a number: {options}",
    "place_unknown": "We do not know this place. Write a big town near it, or send 0 to keep what you wrote.",
    "ask_when": "When did it happen? {options}",
    "ask_people": "How many people were killed, hurt or taken? Send a number, 0 if nobody.",
    # the people question after each kind of report (flows/alert.yml, ask_for)
    "ask_people_hurt": "How many people were killed or hurt? Send a number, 0 if nobody.",
    "ask_people_taken": "How many people were taken away? Send a number, 0 if nobody.",
    "ask_people_victims": "How many people are victims? Send a number.",
    "ask_people_fled": "About how many people fled or arrived? Send a number.",
    "ask_perpetrator": "Who did it, if you know? Write the group, or send 0 if you do not know.",
    "confirm": "{summary} Is this right? 1 Yes 2 Correct",
    "summary": "{category}, {place}, {when}. People: {people}. By: {perpetrator}.",
    "ask_correction": "What should we correct? {options}",
    "invalid_choice": "Please reply with one of the numbers.",
    "not_understood": "Sorry, we did not understand.",
    "submitted": "Thank you. Alert {reference} is recorded. Our team will check it and answer you.",
    "cancelled": "OK, nothing was sent. Write to us again if something happens.",
    "received": "We received your message. We will answer you soon.",
    "help": "Tell us what happened, where and when. To change language send FR, SW or LN. To stop send STOP.",
    "language_menu": "Choose your language: send FR for French, SW for Swahili, LN for Lingala.",
    "language_changed": "OK, we will write to you in French.",
    "opted_out": "You will get no more messages from us. Send START to come back.",
    "subscription_words": "To stop our messages send STOP. To get them again send START.",
    "opted_in": "Welcome back. You will get our messages again.",
    "out_of_scope": "This line is for security alerts. Tell us what happened, where and when.",
    "acknowledged": "OK. Write to us if something happens.",
    "error": "Sorry, there is a problem. Please try again later.",
    # sign-up for safety broadcasts (bot/subscription.py); "which one?" is ask_place_choice
    "subscribe_consent": "Alert line: receive free safety warnings for your area. We keep your number "
                         "only to send them and give it to nobody. 1 Agree 2 Refuse. STOP ends everything.",
    "subscribe_place": "Which village or town do you live in? Write its name.",
    "subscribe_place_unknown": "We do not know this place. Write the name of a big town near you.",
    "subscribe_place_area": "We still do not know it. Write the name of your territory or province, "
                            "for example Masisi or Nord-Kivu.",
    "subscribe_language": "In which language do you want our messages? Reply with a number: {options}",
    "subscribed": "You are registered for safety warnings for {place}. To stop send STOP.",
    "subscribe_refused": "OK, you are not registered. Send JOIN if you change your mind.",
    "subscribe_ended": "We could not finish your registration. Send JOIN again later.",
    # broadcasts
    "broadcast_answer_thanks": "Thank you, we received your answer.",
    # telling the reporter how their report goes (service/notify.py): the reference and
    # reassurance only, never what the report says (a phone may be seen by others)
    "triage.acknowledged": "We received your report {reference}. We are looking into it.",
    "triage.dispatched": "We told those who can help about your report {reference}. Take care of yourself.",
    # CAP 1.2 documents of a broadcast: the event name, the sender, the area sent to everyone
    "cap.event": "Security warning",
    "cap.sender_name": "Community alert line",
    "cap.all_areas": "Eastern DR Congo",
    # the voice line (bot/voice.py): recorded prompts, played one after the other. A menu
    # choice is three prompts, "Attack" "press" "one": never a value inside a prompt.
    "voice.language": "French",  # the name of each catalog's own language, in it
    "voice.press": "press",
    "voice.more": "More choices",
    "voice.welcome": "Hello, this is the alert line. Tell us what happened, we will answer you.",
    "voice.keys_help": "At any question, press 0 to hear it again, or star to go back.",
    "voice.ask_category": "What happened?",
    "voice.ask_province": "Where did it happen? Choose the province.",
    "voice.ask_territory": "Choose the territory.",
    "voice.record_place": "After the beep, say the name of the village or place, then press hash.",
    "voice.ask_when": "When did it happen?",
    "voice.ask_people": "How many people were killed, hurt or taken?",
    "voice.ask_people_hurt": "How many people were killed or hurt?",
    "voice.ask_people_taken": "How many people were taken away?",
    "voice.ask_people_victims": "How many people are victims?",
    "voice.ask_people_fled": "About how many people fled or arrived?",
    "voice.type_number": "Type the number, then press hash. If you do not know, just wait.",
    "voice.record_message": "After the beep, tell us in a few words what happened and who did it. "
                            "Press hash when you have finished.",
    "voice.summary": "You told us:",
    "voice.confirm": "Is this right?",
    "voice.change": "Change",
    "voice.ask_correction": "What should we change?",
    "voice.field.message": "Your message",
    "voice.all": "Everything, from the start",
    "voice.thanks": "Thank you. Your report is recorded. Our team will check it.",
    "voice.reference_is": "Your report number is",
    "voice.reference_again": "I repeat:",
    "voice.goodbye": "Goodbye.",
    "voice.no_answer": "We did not hear you. Call us again when you can.",
    "voice.fallback": "We could not reach the system. After the beep, tell us what happened, where "
                      "and when. It will be handled.",
    "voice.fallback_thanks": "Thank you, your message is recorded. It will be handled.",
    **{f"voice.digit.{d}": str(d) for d in range(10)},  # each digit said as a word
    # values in summaries and menus
    "value.unknown": "unknown",
    "value.many": "many",
    "value.none": "nobody",
    "value.armed_men": "armed men",
    "value.soldiers": "soldiers",
    "option.yes": "Yes",
    "option.no": "No",
    "when.now": "Now",
    "when.today": "Today",
    "when.last_night": "Last night",
    "when.yesterday": "Yesterday",
    "when.earlier": "Before",
    "field.category": "What",
    "field.place": "Place",
    "field.occurred_at": "When",
    "field.people_affected": "Number",
    "field.perpetrator": "Who",
    # short category labels: they share one SMS as a 12-item menu, so one or two words
    label_msgid("ATTACK"): "Attack",
    label_msgid("ARMED_PRESENCE"): "Armed men",
    label_msgid("CLASH"): "Fighting",
    label_msgid("ABDUCTION"): "Kidnapping",
    label_msgid("SEXUAL_VIOLENCE"): "Rape",
    label_msgid("LOOTING"): "Looting/burning",
    label_msgid("DISPLACEMENT"): "People fleeing",
    label_msgid("HATE_SPEECH"): "Hate speech",
    label_msgid("LAND_CONFLICT"): "Land/cattle",
    label_msgid("EXTORTION"): "Roadblock/tax",
    label_msgid("THREAT"): "Threat",
    label_msgid("OTHER"): "Other",
}

assert all(label_msgid(code) in MESSAGES for code in CODES)


def _catalog_path(lang: str, suffix: str) -> Path:
    return LOCALES_DIR / lang / "LC_MESSAGES" / f"{DOMAIN}.{suffix}"


def compile_catalog(lang: str) -> Path:
    """Build the .mo from the .po when it is missing or older (.mo files are not committed)."""
    return _compile(lang, _catalog_path(lang, "po"), _catalog_path(lang, "mo"))


def _compile(lang: str, po: Path, mo: Path) -> Path:
    if not mo.exists() or mo.stat().st_mtime_ns < po.stat().st_mtime_ns:
        with po.open("rb") as src:
            catalog = read_po(src, locale=lang)
        # a name of its own: several processes may compile the same catalog at once
        tmp = mo.with_name(f".{mo.name}.{os.getpid()}.{threading.get_ident()}.tmp")
        with tmp.open("wb") as out:
            write_mo(out, catalog)
        tmp.replace(mo)
    return mo


# what a catalog that cannot be read raises: no file, a .po babel refuses, a .mo gettext refuses
CATALOG_ERRORS = (OSError, ValueError, struct.error)
_catalogs: dict[tuple[Path, str], LiveFiles[NullTranslations]] = {}


def _read_mo(mo: Path) -> NullTranslations:
    with mo.open("rb") as fp:
        return Translations(fp, domain=DOMAIN)


def translations(lang: str) -> NullTranslations:
    """The language's catalog as last saved (compiled first when the .mo is older than the .po)."""
    if lang not in LANGUAGES:
        lang = DEFAULT_LANGUAGE
    live = _catalogs.get((LOCALES_DIR, lang))
    if live is None:
        po, mo = _catalog_path(lang, "po"), _catalog_path(lang, "mo")
        live = _catalogs.setdefault((LOCALES_DIR, lang), LiveFiles(
            f"catalog {po}", (po, mo), lambda: _read_mo(mo), CATALOG_ERRORS,
            prepare=lambda: _compile(lang, po, mo)))
    return live.get()


def text(msg_id: str, lang: str) -> str:
    """The translated text of a message id, falling back to French, never to English."""
    source = MESSAGES[msg_id]
    for candidate in (lang, DEFAULT_LANGUAGE):
        translated = translations(candidate).pgettext(msg_id, source)
        if translated != source:
            return translated
    return source


def render(msg_id: str, lang: str, args: dict | None = None, options: list | None = None) -> str:
    """The SMS text of a message in a language, transliterated to GSM-7.

    Arguments and option labels are stripped of what XML 1.0 and GSM-7 cannot carry
    (``bot.gsm7.safe_text``), and so is the whole text (``to_gsm7``)."""
    values = {k: _value(v, lang) for k, v in (args or {}).items()}
    if options:
        values["options"] = " ".join(f"{n} {_value(label, lang)}" for n, label in options)
    template = text(msg_id, lang) if msg_id in MESSAGES else MESSAGES["error"]
    try:
        rendered = template.format(**values)
    except (KeyError, IndexError, ValueError):  # a placeholder the caller did not fill
        try:
            rendered = template.format_map(_Blank(values))
        except (IndexError, ValueError):
            rendered = text(msg_id, DEFAULT_LANGUAGE).format_map(_Blank(values))
    return to_gsm7(rendered)


def render_payload(payload: dict, default_lang: str) -> str:
    """Render one reply payload from the dialogue engine (see module docstring)."""
    if "msg" in payload:
        lang = payload.get("lang") or default_lang
        return render(payload["msg"], lang, payload.get("args"), payload.get("options"))
    return to_gsm7(str(payload.get("text", "")))


def _value(value, lang: str) -> str:
    """An argument may itself be a message id ("@when.today") or a payload to render;
    anything else is what a reporter wrote, echoed: never with control characters."""
    if isinstance(value, dict) and value.get("msg") in MESSAGES:
        return render(value["msg"], lang, value.get("args"), value.get("options"))
    if isinstance(value, str) and value.startswith("@") and value[1:] in MESSAGES:
        return text(value[1:], lang)
    return safe_text(str(value))


class _Blank(dict):
    def __missing__(self, key):
        return ""
