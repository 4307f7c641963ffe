"""Translators in the console (service/console/translations.py), on real SQLite and
PostgreSQL, always on a copy of locales/ in tmp_path: a Swahili translator fixes a text
beside the French and the .po and .mo are written; a text that drops a placeholder or
needs two SMS is refused with the reason and nothing is written; a Lingala reviewer
confirms a text; voice prompts are uploaded, played and deleted, each in the audit log."""

from __future__ import annotations

import io
import shutil
from pathlib import Path

import pytest
from babel.messages.pofile import read_po
from babel.support import Translations
from sqlalchemy import select

from bot import catalogs
from bot.messages import MESSAGES
from service import prompts
from service.models import AuditEntry
from tests.test_console import (  # noqa: F401  fixtures
    admin, analyst, audit_actions, db, make_operator, post_form, shown, signed_in,
)
from tests.test_recordings import tone

ROOT = Path(__file__).resolve().parent.parent
SW_SUBMITTED = "Asante. Tumepokea ripoti yako {reference}. Tutaichunguza na tutakujibu."


@pytest.fixture
def locales(tmp_path) -> Path:
    copy = tmp_path / "locales"
    shutil.copytree(ROOT / "locales", copy, ignore=shutil.ignore_patterns("*.mo"))
    return copy


@pytest.fixture
def app_config(app_config, tmp_path, locales):
    return {**app_config, "RECORDINGS_DIR": str(tmp_path / "recordings"), "LOCALES_DIR": str(locales),
            "PROMPT_RECORDINGS_DIR": str(tmp_path / "prompts"), "PROMPT_CACHE_DIR": str(tmp_path / "cache")}


@pytest.fixture
def translator(db):
    return make_operator(db, "traductrice", ["translator"])


def po(locales: Path, lang: str) -> Path:
    return locales / lang / "LC_MESSAGES" / "messages.po"


def entry(locales: Path, lang: str, msg_id: str):
    with po(locales, lang).open("rb") as fp:
        catalog = read_po(fp)
    catalogs._restore_previous(catalog)
    return catalog.get(MESSAGES[msg_id], context=msg_id)


def edit(locales: Path, lang: str, change) -> None:
    """Change the copy's catalog as a translator's editor would (test set-up)."""
    with po(locales, lang).open("rb") as fp:
        catalog = read_po(fp)
    change(catalog)
    po(locales, lang).write_bytes(catalogs._po_bytes(catalog, include_previous=True))


def save(client, lang, msg_id, text, **fields):
    path = f"/console/translations/{lang}/{msg_id}"
    page = client.get(path).get_data(as_text=True)
    base = page.split('name="base" value="', 1)[1].split('"', 1)[0]
    import html
    return post_form(client, path, path, text=text, base=html.unescape(base), **fields)


def audit_rows(db, action):
    db.rollback()
    return list(db.scalars(select(AuditEntry).where(AuditEntry.action == action).order_by(AuditEntry.id)))


# --- who may ----------------------------------------------------------------------------

def test_translators_and_administrators_see_the_pages_an_analyst_gets_403(client, db, analyst, translator, admin):
    paths = ("/console/translations", "/console/translations/sw/submitted", "/console/translations/prompts",
             "/console/translations/sw/voice.welcome/audio")
    signed_in(client, "analyste")
    for path in paths:
        assert client.get(path).status_code == 403, path
    assert client.post("/console/translations/sw/submitted",
                       data={"text": "x", "csrf_token": "forged"}).status_code == 400
    post_form(client, "/console/translations", "/console/logout")
    for name in ("traductrice", "admin"):
        signed_in(client, name)
        page = client.get("/console/translations")
        assert page.status_code == 200 and 'href="/console/translations"' in page.get_data(as_text=True)
        post_form(client, "/console/translations", "/console/logout")


# --- the list ---------------------------------------------------------------------------

def test_the_list_shows_the_french_beside_and_filters_missing_fuzzy_and_review(client, db, translator, locales):
    def change(catalog):
        catalog.get(MESSAGES["cancelled"], context="cancelled").string = ""
        catalog.get(MESSAGES["received"], context="received").flags.add("fuzzy")
    edit(locales, "sw", change)
    signed_in(client, "traductrice")
    every = shown(client.get("/console/translations", query_string={"lang": "sw"}))
    assert entry(locales, "fr", "welcome").string in every and entry(locales, "sw", "welcome").string in every
    missing = shown(client.get("/console/translations", query_string={"lang": "sw", "show": "missing"}))
    assert "/console/translations/sw/cancelled" in missing and "/console/translations/sw/welcome" not in missing
    fuzzy = shown(client.get("/console/translations", query_string={"lang": "sw", "show": "fuzzy"}))
    assert "/console/translations/sw/received" in fuzzy and "/console/translations/sw/cancelled" not in fuzzy
    review = shown(client.get("/console/translations", query_string={"lang": "ln", "show": "review"}))
    flagged = {m for _, m, _, _ in catalogs.reviews(["ln"])}
    assert flagged and all(f"/console/translations/ln/{m}\"" in review for m in flagged)
    assert "/console/translations/ln/welcome\"" not in review
    french = shown(client.get("/console/translations", query_string={"lang": "fr"}))
    assert MESSAGES["welcome"] in french  # French is shown beside the English source
    assert "python -m bot.catalogs check" in every and "en quelques secondes" in every


# --- saving -----------------------------------------------------------------------------

def test_a_valid_text_is_saved_to_the_po_compiled_and_audited(client, db, translator, locales):
    before = entry(locales, "sw", "submitted").string
    signed_in(client, "traductrice")
    answer = save(client, "sw", "submitted", SW_SUBMITTED)
    assert answer.status_code == 302
    assert entry(locales, "sw", "submitted").string == SW_SUBMITTED
    assert entry(locales, "sw", "welcome").auto_comments  # the rest of the file is kept, comments too
    with (po(locales, "sw").with_suffix(".mo")).open("rb") as fp:
        assert Translations(fp).pgettext("submitted", MESSAGES["submitted"]) == SW_SUBMITTED
    assert not catalogs._check_language("sw", read_po(po(locales, "sw").open("rb"), locale="sw_CD"))
    [saved] = audit_rows(db, "translation.save")
    assert saved.target_id == "sw/submitted"
    assert saved.before["text"] == before and saved.after["text"] == SW_SUBMITTED
    assert (ROOT / "locales" / "sw" / "LC_MESSAGES" / "messages.po").read_text().count(SW_SUBMITTED) == 0


def test_a_dropped_placeholder_is_refused_with_the_reason_and_nothing_is_written(client, db, translator, locales):
    written = po(locales, "sw").read_bytes()
    signed_in(client, "traductrice")
    answer = save(client, "sw", "submitted", "Asante. Tumepokea ripoti yako.")
    assert answer.status_code == 422
    assert "{reference}" in shown(answer) and "Asante. Tumepokea ripoti yako." in shown(answer)
    assert po(locales, "sw").read_bytes() == written and not po(locales, "sw").with_suffix(".mo").exists()
    assert "translation.save" not in audit_actions(db)


def test_a_text_over_one_sms_is_refused_a_voice_line_is_not(client, db, translator, locales):
    written = po(locales, "sw").read_bytes()
    signed_in(client, "traductrice")
    long = "Tumepokea ujumbe wako, asante sana. " * 5
    answer = save(client, "sw", "received", long.strip())
    assert answer.status_code == 422 and "160" in shown(answer) and "GSM-7" in shown(answer)
    # a label inside the category menu: the menu ask_category is measured with it
    answer = save(client, "sw", "category.OTHER", "Kitu kingine chochote ambacho hakiko kwenye orodha")
    assert answer.status_code == 422 and "ask_category" in shown(answer)
    assert po(locales, "sw").read_bytes() == written
    spoken = "Jambo, hii ni laini ya habari za hatari. " * 5
    assert save(client, "sw", "voice.welcome", spoken.strip()).status_code == 302
    assert entry(locales, "sw", "voice.welcome").string == spoken.strip()


def test_the_review_note_is_cleared_only_by_the_box_and_fuzzy_by_any_save(client, db, translator, locales):
    [(_, msg_id, note, text)] = [r for r in catalogs.reviews(["ln"])][:1]
    def fuzzy(catalog):
        message = catalog.get(MESSAGES[msg_id], context=msg_id)
        message.flags.add("fuzzy")
        message.previous_id = ["an older English text"]
    edit(locales, "ln", fuzzy)
    signed_in(client, "traductrice")
    page = shown(client.get(f"/console/translations/ln/{msg_id}"))
    assert note in page and "an older English text" in page and 'name="confirmed"' in page
    assert save(client, "ln", msg_id, text + " ").status_code in (302, 200)  # only spaces: nothing changes
    kept = entry(locales, "ln", msg_id)
    assert any(c.startswith("review:") for c in kept.user_comments) and not kept.fuzzy and not kept.previous_id
    assert save(client, "ln", msg_id, text, confirmed="1").status_code == 302
    cleared = entry(locales, "ln", msg_id)
    assert cleared.string == text and not any(c.startswith("review:") for c in cleared.user_comments)
    entries = audit_rows(db, "translation.save")
    assert entries[-1].before["review"] == note and entries[-1].after["review"] is None
    assert entries[0].before["fuzzy"] is True and entries[0].after["fuzzy"] is False


def test_a_text_saved_meanwhile_by_someone_else_is_not_overwritten(client, db, translator, locales):
    signed_in(client, "traductrice")
    path = "/console/translations/sw/submitted"
    answer = post_form(client, path, path, text=SW_SUBMITTED, base="what the page showed before")
    assert answer.status_code == 409 and entry(locales, "sw", "submitted").string != SW_SUBMITTED


# --- voice prompts ----------------------------------------------------------------------

def test_a_prompt_recording_is_uploaded_played_and_deleted_each_audited(client, db, translator, tmp_path):
    signed_in(client, "traductrice")
    page = client.get("/console/translations/sw/voice.welcome").get_data(as_text=True)
    assert 'enctype="multipart/form-data"' in page and "<audio" not in page  # nothing to play yet
    store = prompts.Store(tmp_path / "prompts", tmp_path / "cache")
    placeholder = store.placeholder("voice.welcome", "sw")
    placeholder.parent.mkdir(parents=True)
    placeholder.write_bytes(tone(0.2, 300))
    page = shown(client.get("/console/translations/sw/voice.welcome"))
    assert "<audio controls" in page and "espeak-ng" in page
    audio = tone(8.0)  # larger than MAX_CONTENT_LENGTH (64 KB): uploads have their own limit
    path = "/console/translations/sw/voice.welcome"
    answer = post_form(client, path, path + "/audio", audio=(io.BytesIO(audio), "karibu.wav"))
    assert answer.status_code == 302 and store.recording("voice.welcome", "sw").read_bytes() == audio
    played = client.get(path + "/audio")
    assert played.status_code == 200 and played.data == audio and played.mimetype == "audio/wav"
    assert played.headers["X-Prompt-Source"] == "recording"
    assert "un opérateur" in shown(client.get(path))
    assert post_form(client, path, path + "/audio/delete").status_code == 302
    assert store.recording("voice.welcome", "sw") is None
    assert client.get(path + "/audio").headers["X-Prompt-Source"] == "placeholder"
    actions = [a for a in audit_actions(db) if a.startswith("prompt.")]
    assert actions == ["prompt.upload", "prompt.play", "prompt.delete", "prompt.play"]
    [uploaded] = audit_rows(db, "prompt.upload")
    assert uploaded.target_id == "sw/voice.welcome" and uploaded.after["recording"] == "wav"


def test_a_file_that_is_not_audio_is_refused_with_the_reason(client, db, translator, tmp_path):
    signed_in(client, "traductrice")
    path = "/console/translations/ln/voice.welcome"
    answer = post_form(client, path, path + "/audio", audio=(io.BytesIO(b"%PDF-1.4 not audio" * 20), "x.mp3"))
    assert answer.status_code == 422 and "MP3" in shown(answer)
    assert not (tmp_path / "prompts").exists() or not any((tmp_path / "prompts").rglob("*.*"))
    assert not [a for a in audit_actions(db) if a.startswith("prompt.")]
    assert client.get("/console/translations/sw/not.a.prompt").status_code == 404


def test_the_prompt_list_names_what_each_language_lacks(client, db, translator):
    signed_in(client, "traductrice")
    page = shown(client.get("/console/translations/prompts", query_string={"lang": "ln"}))
    assert "/console/translations/ln/voice.welcome" in page and "Swahili" in page  # read by the Swahili voice
    assert "Rien à jouer" in page


def test_the_pages_are_small_and_need_nothing_from_elsewhere(client, db, translator):
    signed_in(client, "traductrice")
    for path in ("/console/translations?lang=sw", "/console/translations?lang=fr", "/console/translations/prompts",
                 "/console/translations/ln/ask_people_taken", "/console/translations/sw/voice.welcome"):
        page = client.get(path)
        text = page.get_data(as_text=True)
        assert page.status_code == 200 and len(page.data) < 50_000, (path, len(page.data))
        assert "<script" not in text and "http://" not in text and "https://" not in text, path
