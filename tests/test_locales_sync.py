"""`alerte locales merge`: a release's catalogs into the translators' copy, keeping what
they saved (service/locales_sync.py)."""

from __future__ import annotations

import shutil

from babel.messages.pofile import read_po, write_po

from service import locales_sync

PO = ("sw", "LC_MESSAGES", "messages.po")


def _catalog(root):
    with root.joinpath(*PO).open("rb") as source:
        return read_po(source, locale="sw")


def _save(root, catalog):
    with root.joinpath(*PO).open("wb") as out:
        write_po(out, catalog, width=100)


def test_saved_translations_are_kept_new_messages_arrive_and_dropped_ones_go(tmp_path):
    target = tmp_path / "locales"
    shutil.copytree(locales_sync.RELEASE, target)
    copy = _catalog(target)
    keys = [(m.id, m.context) for m in copy if m.id and m.string]
    edited, removed, doubtful = keys[0], keys[1], keys[2]
    copy.get(*edited).string = "Maneno ya mtafsiri"  # saved by a translator in the console
    copy.delete(*removed)  # a message this copy never had (an older release)
    copy.add("Old text", "Maandishi ya zamani", context="old.gone")
    copy.get(*doubtful).string = "shaka"
    copy.get(*doubtful).flags.add("fuzzy")
    _save(target, copy)

    report = locales_sync.merge(locales_sync.RELEASE, target, languages=("sw",))
    merged, release = _catalog(target), _catalog(locales_sync.RELEASE)
    assert merged.get(*edited).string == "Maneno ya mtafsiri"
    assert merged.get(*removed).string == release.get(*removed).string
    assert merged.get(*doubtful).string == release.get(*doubtful).string
    assert "fuzzy" not in merged.get(*doubtful).flags
    assert merged.get("Old text", context="old.gone") is None
    assert report["sw"]["kept"] == 1
    assert target.joinpath("sw", "LC_MESSAGES", "messages.mo").stat().st_size > 0
    assert locales_sync.merge(locales_sync.RELEASE, target, languages=("sw",))["sw"]["kept"] == 1  # idempotent
    assert _catalog(target).get(*edited).string == "Maneno ya mtafsiri"
