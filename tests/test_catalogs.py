"""The French, Swahili and Lingala catalogs: complete, correct, and one SMS each."""

from __future__ import annotations

import re
import shutil

import pytest
from babel.messages.pofile import read_po

from bot import catalogs, keywords
from bot.categories import CODES, label_msgid
from bot.gsm7 import is_gsm7, septets
from bot.languages import LANGUAGES
from bot.messages import MESSAGES, render
from bot.messages import text as message_text
from bot.places import default_gazetteer
from bot.summary import (
    FREE_TEXT_MAX, MORE, PEOPLE_MAX, PERPETRATOR_MAX, PLACE_TEXT_MAX, WHEN_TEXT_MAX, place_label, shorten,
)

CATEGORY_MENU = [[i + 1, "@" + label_msgid(code)] for i, code in enumerate(CODES)]


def test_catalogs_have_no_problems():
    """Missing, empty, fuzzy, obsolete, wrong placeholders, too long: check() lists them all."""
    problems = catalogs.check()
    assert problems == [], "\n".join(problems)


@pytest.mark.parametrize("lang", LANGUAGES)
def test_every_message_is_translated(lang):
    catalog = catalogs.read_catalog(lang)
    translated = {m.context: m.string for m in catalog if m.id and m.string and not m.fuzzy}
    missing = sorted(set(MESSAGES) - set(translated))
    assert not missing, f"{lang}: untranslated {missing}"
    same = sorted(k for k in MESSAGES if translated[k] == MESSAGES[k])
    assert not same, f"{lang}: still in English {same}"


@pytest.mark.parametrize("lang", LANGUAGES)
@pytest.mark.parametrize("msg_id", list(MESSAGES))
def test_every_message_renders_in_one_sms(lang, msg_id):
    """With typical values; the confirmation and its summary with the longest ones."""
    args, options = catalogs.worst_sample(msg_id, lambda m: message_text(m, lang)) or catalogs.sample(msg_id)
    text = render(msg_id, lang, args, options)
    assert "{" not in text and "}" not in text, text
    assert is_gsm7(text), text
    assert septets(text) <= 160, f"{septets(text)}: {text}"


@pytest.mark.parametrize("lang", LANGUAGES)
def test_the_category_menu_fits_one_sms(lang):
    text = render("ask_category", lang, options=CATEGORY_MENU)
    assert text.endswith(" 12 " + render("category.OTHER", lang))
    assert is_gsm7(text) and septets(text) <= 160, f"{septets(text)}: {text}"


@pytest.mark.parametrize("lang", LANGUAGES)
def test_long_confirmation_fits_one_sms(lang):
    """A long place, a time, and a perpetrator at the 40 characters the form keeps."""
    summary = {"msg": "summary", "args": {
        "category": "@" + label_msgid("LOOTING"), "place": "Kasindi-Lubiriha (Beni)",
        "when": "12/03 21h30", "people": "@value.many", "perpetrator": "x" * 40}}
    text = render("confirm", lang, {"summary": summary})
    assert is_gsm7(text) and septets(text) <= 160, f"{septets(text)}: {text}"


@pytest.mark.parametrize("lang", LANGUAGES)
def test_worst_case_confirmation_fits_one_sms(lang):
    """The longest place name of the gazetteer as the summary names it, free text as long
    as an answer keeps it (cut to the summary's limits), the longest label of each kind."""
    records = default_gazetteer()._by_key.values()
    place = max((place_label(r) for r in records), key=septets)
    assert place.endswith(")") and septets(place) >= 30  # a village and its territory
    free = "x" * FREE_TEXT_MAX

    def longest(*candidates):
        shown = [message_text(c[1:], lang) if c.startswith("@") else c for c in candidates]
        return max(shown, key=septets)

    when = ["@" + k for k in MESSAGES if k.startswith("when.")]
    labels = ["@" + label_msgid(code) for code in CODES]
    args = {"category": longest(*labels, "@value.unknown"),
            "place": longest(place, shorten(free, PLACE_TEXT_MAX), "@value.unknown"),
            "when": longest(*when, "31/12 23h59", shorten(free, WHEN_TEXT_MAX), "@value.unknown"),
            "people": longest("@value.many", "@value.unknown", "@value.none", str(PEOPLE_MAX)),
            "perpetrator": longest("@value.armed_men", "@value.unknown", shorten(free, PERPETRATOR_MAX))}
    message = render("confirm", lang, {"summary": {"msg": "summary", "args": args}})
    assert is_gsm7(message) and septets(message) <= 160, f"{septets(message)}: {message}"
    assert septets(message) == septets(catalogs.worst_confirmation(lang))  # what check measures
    assert message.count(MORE) >= 1  # free text, cut, is among the longest values


def test_check_measures_the_confirmation_at_its_worst(monkeypatch):
    """Longer free text in the summary, or a longer place name in the gazetteer, and the
    check says which language no longer fits."""
    assert catalogs.check(pot=None) == []
    monkeypatch.setattr(catalogs, "PERPETRATOR_MAX", FREE_TEXT_MAX)
    problems = catalogs.check(pot=None)
    assert {p.split(":")[0] for p in problems if ": confirm: " in p} == set(LANGUAGES)
    assert all(": confirm: " in p or ": summary: " in p for p in problems), problems
    assert all("with the longest values" in p for p in problems), problems
    monkeypatch.setattr(catalogs, "PERPETRATOR_MAX", PERPETRATOR_MAX)
    monkeypatch.setattr(catalogs, "longest_place_label", lambda gaz: "Mukundi-Umunda-Mufukwa-Kilonda-Kasongo (Nyunzu)")
    problems = catalogs.check(pot=None)
    assert problems and all(": confirm: " in p or ": summary: " in p for p in problems), problems
    assert any("Mukundi-Umunda-Mufukwa-Kilonda-Kasongo (Nyunzu)" in p for p in problems)


@pytest.mark.parametrize("lang", LANGUAGES)
def test_submitted_shows_the_reference(lang):
    text = render("submitted", lang, {"reference": "A-7K3M9Q"})
    assert "A-7K3M9Q" in text and septets(text) <= 160


def test_plural_headers():
    expected = {"fr": "nplurals=2; plural=(n > 1);", "sw": "nplurals=2; plural=(n != 1);",
                "ln": "nplurals=2; plural=(n > 1);"}
    for lang in LANGUAGES:
        raw = catalogs.po_path(lang).read_text(encoding="utf-8")
        assert f'"Plural-Forms: {expected[lang]}\\n"' in raw, lang
        with catalogs.po_path(lang).open("rb") as fp:
            assert read_po(fp).plural_forms == expected[lang]
    assert 'plural=(n > 1)' in catalogs.po_path("ln").read_text(encoding="utf-8")


def test_locales_in_headers():
    for lang, locale in {"fr": "fr_CD", "sw": "sw_CD", "ln": "ln_CD"}.items():
        assert f'"Language: {locale}\\n"' in catalogs.po_path(lang).read_text(encoding="utf-8")


@pytest.mark.parametrize("lang, msg_id, expected", [
    ("sw", "language_changed", "Sawa, tutakuandikia kwa Kiswahili."),
    ("ln", "language_changed", "Malamu, tokokomela yo na Lingala."),
    ("sw", "option.yes", "Ndiyo"),
    ("ln", "option.yes", "Iyo"),
    ("sw", "when.yesterday", "Jana"),
    ("ln", "when.yesterday", "Lobi eleki"),
    ("fr", "when.yesterday", "Hier"),
])
def test_render_returns_the_translation(lang, msg_id, expected):
    assert render(msg_id, lang) == expected


@pytest.mark.parametrize("lang", ["sw", "ln"])
def test_render_is_not_english_nor_french(lang):
    for msg_id in ("welcome", "help", "ask_place", "submitted", "error"):
        args, options = catalogs.sample(msg_id)
        text = render(msg_id, lang, args, options)
        assert text != render(msg_id, "fr", args, options)
        assert text != MESSAGES[msg_id].format(**args)


def _command_words(text: str) -> set[str]:
    return set(re.findall(r"\b[A-Z]{2,}\b", text)) - {"OK"}


@pytest.mark.parametrize("msg_id", ["help", "opted_out", "language_menu"])
@pytest.mark.parametrize("lang", LANGUAGES)
def test_command_words_are_real_keywords(lang, msg_id):
    known = {w for words in keywords.WORDS.values() for w in words} | set(keywords.LANGUAGE_WORDS)
    words = _command_words(render(msg_id, lang))
    assert words, f"{lang} {msg_id} names no command word"
    assert words <= known, f"{lang} {msg_id}: {words - known} are not in bot/keywords.py"
    for word in words:
        assert keywords.match(word) is not None, word


@pytest.mark.parametrize("lang, stop, start", [("fr", "STOP", "START"), ("sw", "ACHA", "ANZA"),
                                               ("ln", "TIKA", "BANDA")])
def test_help_and_opt_out_name_the_local_words(lang, stop, start):
    help_words = _command_words(render("help", lang))
    assert {"FR", "SW", "LN", "STOP", stop} <= help_words
    assert keywords.match(stop).intent == keywords.OPT_OUT
    assert {"START", start} <= _command_words(render("opted_out", lang))
    assert keywords.match(start).intent == keywords.OPT_IN


def test_pot_matches_messages():
    with catalogs.POT_PATH.open("rb") as fp:
        pot = read_po(fp)
    assert {m.context: m.id for m in pot if m.id} == MESSAGES
    comments = {m.context: m.auto_comments for m in pot if m.id}
    assert catalogs.COMMENT_SMS in comments["welcome"]
    assert catalogs.COMMENT_LABEL in comments[label_msgid("ATTACK")]


# --- the tooling itself, on a copy of the catalogs --------------------------------------

@pytest.fixture
def scratch(tmp_path, monkeypatch):
    """A copy of locales/ that update() and check() work on (bot.messages is left alone)."""
    shutil.copytree(catalogs.LOCALES_DIR, tmp_path / "locales",
                    ignore=shutil.ignore_patterns("*.mo", "*.tmp"))
    monkeypatch.setattr(catalogs, "LOCALES_DIR", tmp_path / "locales")
    return tmp_path / "locales"


def test_changed_english_keeps_translation_as_fuzzy(scratch, monkeypatch):
    messages = dict(MESSAGES, error="Sorry, something went wrong. Please try again later.",
                    brand_new="A new message for {name}.")
    monkeypatch.setattr(catalogs, "MESSAGES", messages)
    pot = scratch / "messages.pot"
    catalogs.extract(pot)
    catalogs.update(pot)
    sw = catalogs.read_catalog("sw")
    error = next(m for m in sw if m.context == "error")
    assert error.fuzzy and error.string.startswith("Samahani")
    assert error.previous_id == ["Sorry, there is a problem. Please try again later."]
    assert not sw.obsolete
    assert sw.plural_forms == "nplurals=2; plural=(n != 1);"
    assert catalogs.read_catalog("ln").plural_forms == "nplurals=2; plural=(n > 1);"
    catalogs.update(pot)  # a second run keeps the old English for the reviewer
    text = catalogs.po_path("sw").read_text(encoding="utf-8")
    assert text.count('#| msgid "Sorry, there is a problem. Please try again later."') == 1
    problems = catalogs.check(pot=pot)
    for lang in LANGUAGES:
        assert f"{lang}: error: fuzzy (review the translation, then remove the fuzzy flag)" in problems
        assert f"{lang}: brand_new: not translated" in problems


def test_removed_message_becomes_obsolete(scratch, monkeypatch):
    monkeypatch.setattr(catalogs, "MESSAGES", {k: v for k, v in MESSAGES.items() if k != "acknowledged"})
    pot = scratch / "messages.pot"
    catalogs.extract(pot)
    catalogs.update(pot)
    assert any("acknowledged" in p and "obsolete" in p for p in catalogs.check(pot=pot))
    catalogs.update(pot, drop_obsolete=True)
    assert catalogs.check(pot=pot) == []


def test_check_finds_bad_translations(scratch):
    path = catalogs.po_path("ln")
    text = path.read_text(encoding="utf-8")
    text = text.replace('msgstr "Nini esalemi? {options}"', 'msgstr "Nini esalemi? {choices}"')
    text = text.replace('msgstr "Lobi eleki"', 'msgstr ""')
    text = text.replace("plural=(n > 1)", "plural=(n != 1)")
    path.write_text(text, encoding="utf-8")
    problems = catalogs.check(pot=None)
    assert any(p.startswith("ln: ask_category: placeholders") for p in problems)
    assert "ln: when.yesterday: not translated" in problems
    assert any(p.startswith("ln: header Plural-Forms") for p in problems)
    assert not any(p.startswith(("fr:", "sw:")) for p in problems)


def test_check_finds_too_long_menu(scratch):
    path = catalogs.po_path("fr")
    text = path.read_text(encoding="utf-8").replace('msgstr "Autre"', 'msgstr "Autre chose encore"')
    path.write_text(text, encoding="utf-8")
    assert any(p.startswith("fr: ask_category: 1") and "over 160" in p for p in catalogs.check(pot=None))


def test_main_check_exit_code(capsys):
    assert catalogs.main(["check"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("OK:")
    for lang in LANGUAGES:
        assert f" {lang} {septets(catalogs.worst_confirmation(lang))}" in out.split("\n")[0]


# --- texts waiting for a native speaker ---------------------------------------------------

def test_review_comments_are_kept_by_update_and_listed(scratch, monkeypatch, capsys):
    path = catalogs.po_path("sw")
    text = path.read_text(encoding="utf-8")
    for msg_id in ("acknowledged", "error"):
        text = text.replace(f'msgctxt "{msg_id}"', f'# review: is {msg_id} clear?\nmsgctxt "{msg_id}"', 1)
    path.write_text(text, encoding="utf-8")
    pot = scratch / "messages.pot"
    assert catalogs.update(pot, langs=["sw"]) == []  # nothing to change: the comments are content
    assert path.read_text(encoding="utf-8") == text
    assert catalogs.check(pot=pot) == []  # a text to review is not a problem
    found = {(lang, msg_id): note for lang, msg_id, note, _ in catalogs.reviews()}
    assert found[("sw", "acknowledged")] == "is acknowledged clear?"
    assert found[("sw", "error")] == "is error clear?"
    # the English changes: the translation turns fuzzy and keeps its review note
    monkeypatch.setattr(catalogs, "MESSAGES", dict(MESSAGES, error="Sorry, something went wrong."))
    catalogs.extract(pot)
    catalogs.update(pot, langs=["sw"])
    error = next(m for m in catalogs.read_catalog("sw") if m.context == "error")
    assert error.fuzzy and "review: is error clear?" in error.user_comments
    assert catalogs.main(["review", "sw"]) == 0
    out = capsys.readouterr().out
    assert "sw: error: " in out and "is acknowledged clear?" in out
    with pytest.raises(SystemExit):
        catalogs.main(["review", "xx"])


# --- freshness: the content of a catalog, not the Babel release or the day that wrote it --

def test_pot_written_by_another_babel_release_is_up_to_date(scratch):
    pot = scratch / "messages.pot"
    text = re.sub(r'"Generated-By: Babel [^"\\]*\\n"', '"Generated-By: Babel 9.9.9\\\\n"',
                  pot.read_text(encoding="utf-8"))
    text = re.sub(r'"POT-Creation-Date: [^"\\]*\\n"', '"POT-Creation-Date: 1999-01-01 00:00+0000\\\\n"', text)
    assert "Babel 9.9.9" in text and "1999-01-01" in text
    pot.write_text(text, encoding="utf-8")
    assert catalogs.check(pot=pot) == []
    catalogs.extract(pot)  # nothing to write: the file is left as it is
    assert pot.read_text(encoding="utf-8") == text


@pytest.mark.parametrize("edit", [
    ('msgctxt "welcome"', 'msgctxt "welcome_back"'),                       # a context
    ('msgid "{}"'.format(MESSAGES["when.yesterday"]), 'msgid "Yesterday!"'),  # a msgid
    ("#. " + catalogs.COMMENT_LABEL, "#. one word"),                        # an auto-comment
    ("#, python-brace-format\n", ""),                                       # a flag as written
    ('msgctxt "welcome"', '#, fuzzy\nmsgctxt "welcome"'),                   # a flag
    ('msgctxt "welcome"', '# a note\nmsgctxt "welcome"'),                   # a translator comment
    ('"Project-Id-Version: alerte 0.1\\n"', '"Project-Id-Version: alerte 0.2\\n"'),  # a header
    ("# Edit the msgstr lines only", "# Edit anything"),                    # the header comment
])
def test_pot_with_other_content_is_out_of_date(scratch, edit):
    pot = scratch / "messages.pot"
    text = pot.read_text(encoding="utf-8")
    old, new = edit
    assert old in text
    pot.write_text(text.replace(old, new, 1), encoding="utf-8")
    assert any(p.startswith("messages.pot: out of date") for p in catalogs.check(pot=pot))
    catalogs.extract(pot)
    assert pot.read_text(encoding="utf-8") != text.replace(old, new, 1)
    assert catalogs.check(pot=pot) == []


def test_po_written_by_another_babel_release_is_not_rewritten(scratch):
    path = catalogs.po_path("sw")
    text = re.sub(r'"Generated-By: Babel [^"\\]*\\n"', '"Generated-By: Babel 9.9.9\\\\n"',
                  path.read_text(encoding="utf-8"))
    path.write_text(text, encoding="utf-8")
    assert catalogs.update(scratch / "messages.pot", langs=["sw"]) == []
    assert path.read_text(encoding="utf-8") == text
    edited = text.replace('msgstr "Jana"', 'msgstr "Jana tu"')
    path.write_text(edited, encoding="utf-8")
    assert catalogs.update(scratch / "messages.pot", langs=["sw"]) == []  # a translation is kept
    path.write_text(edited.replace("plural=(n != 1)", "plural=(n > 1)"), encoding="utf-8")
    assert catalogs.update(scratch / "messages.pot", langs=["sw"]) == [path]  # the header is fixed
