"""The broadcast composer (service/console/composer.py) through its pages, on real SQLite
and PostgreSQL and real Redis: a broadcaster writes a warning in three languages, previews
its size, cost and reach, sends it, follows it, cancels it, and reads the answers to its
question. What the console creates is what the API would; never a phone number on a page."""

from __future__ import annotations

import re

import pytest
from sqlalchemy import select

from bot.gsm7 import segments
from service.models import Alert, AuditEntry, Broadcast, Group, Place
from tests.broadcast_factories import API_HEADERS, BENI, BUNIA, GOMA, KAMANGO, TEXTS, subscriber
from tests.conftest import REPORTER
from tests.test_console import audit_actions, csrf, db, make_operator, shown, signed_in  # noqa: F401  (db: fixture)

NEW = "/console/broadcasts/new"
QUESTION_TEXTS = {"fr": "Etes-vous en securite ? 1 Oui 2 Non", "sw": "Muko salama? 1 Ndiyo 2 Hapana",
                  "ln": "Bozali malamu? 1 Iyo 2 Te"}


@pytest.fixture
def identity(app):
    return app.extensions["identity"]


@pytest.fixture
def people(db, identity):
    """Five subscribers: Beni (fr, sw, in the group), Kamango (ln), Goma (sw), Bunia (no language: fr)."""
    return {
        "beni_fr": subscriber(db, identity, "+243990001001", "fr", BENI, groups=["focal points"]),
        "beni_sw": subscriber(db, identity, "+243990001002", "sw", BENI),
        "kamango_ln": subscriber(db, identity, "+243990001003", "ln", KAMANGO, groups=["focal points"]),
        "goma_sw": subscriber(db, identity, "+243990001004", "sw", GOMA),
        "bunia_none": subscriber(db, identity, "+243990001005", None, BUNIA),
    }


@pytest.fixture
def broadcaster(client, db):
    make_operator(db, "diffuseur", ["broadcaster"])
    return signed_in(client, "diffuseur")


def form(**fields) -> dict:
    data = {f"text_{lang}": text for lang, text in TEXTS.items()}
    data.update(priority="urgent", status="Actual", fallback_language="fr", target_all="1")
    data.update(fields)
    return {k: v for k, v in data.items() if v is not None}


def preview(client, **fields):
    data = form(**fields)
    return client.post(NEW, data={**data, "action": "preview", "csrf_token": csrf(client.get(NEW))}), data


def send(client, **fields):
    """Preview, then Send the same form with the token and fingerprint the preview gave."""
    page, data = preview(client, **fields)
    assert page.status_code == 200, shown(page)
    previewed = re.search(r'name="previewed" value="([0-9a-f]+)"', page.get_data(as_text=True)).group(1)
    return client.post(NEW, data={**data, "action": "send", "previewed": previewed, "csrf_token": csrf(page)})


def row(page, lang: str) -> dict:
    """The preview's cells for one language."""
    found = re.search(rf'<tr class="lang-{lang}">(.*?)</tr>', page.get_data(as_text=True), re.S).group(1)
    cells = re.findall(r"<td[^>]*>(.*?)</td>", found, re.S)
    return {"characters": int(cells[1]), "encoding": cells[2], "segments": int(cells[3]),
            "recipients": int(cells[4]), "text": cells[5]}


def fresh(db, model, ident):
    db.rollback()
    return db.get(model, ident)


# --- who may use it ---------------------------------------------------------------------

def test_the_composer_needs_a_login_and_the_broadcast_role(client, db):
    for path in ("/console/broadcasts", NEW, "/console/broadcasts/1"):
        answer = client.get(path)
        assert answer.status_code == 302 and "/console/login?next=" in answer.location
    make_operator(db, "analyste", ["analyst"])
    signed_in(client, "analyste")
    for path in ("/console/broadcasts", NEW, "/console/broadcasts/1"):
        assert client.get(path).status_code == 403, path
    token = csrf(client.get("/console/alerts"))
    assert client.post(NEW, data={**form(), "action": "preview", "csrf_token": token}).status_code == 403
    assert "/console/broadcasts" not in client.get("/console/alerts").get_data(as_text=True)  # not in the nav


def test_a_broadcaster_finds_the_composer_in_the_nav_and_a_post_needs_its_token(broadcaster, db):
    assert 'href="/console/broadcasts"' in broadcaster.get("/console/").get_data(as_text=True)
    page = broadcaster.get(NEW)
    assert page.status_code == 200 and "Nouvelle diffusion" in shown(page)
    assert broadcaster.post(NEW, data={**form(), "action": "preview"}).status_code == 400
    assert broadcaster.post(NEW, data={**form(), "action": "send", "csrf_token": "forged"}).status_code == 400


# --- the preview ------------------------------------------------------------------------

def test_the_preview_counts_a_gsm7_text_and_who_receives_each_language(broadcaster, people):
    long_sw = "Watu wenye silaha wanaelekea Kamango. Nendeni kanisani. " * 3
    page, _ = preview(broadcaster, text_sw=long_sw, transliterate=None)
    assert page.status_code == 200
    fr = row(page, "fr")
    assert fr == {"characters": len(TEXTS["fr"]), "encoding": "GSM-7", "segments": 1, "recipients": 2,
                  "text": "—"}
    sw = row(page, "sw")
    assert sw["encoding"] == "GSM-7" and sw["segments"] == segments(long_sw.strip()) == 2 and sw["recipients"] == 2
    assert row(page, "ln")["recipients"] == 1
    html = page.get_data(as_text=True)
    assert '<td class="recipients-total">5</td>' in html and "7 SMS au total" in html  # 2x1 + 2x2 + 1x1
    assert 'name="action" value="send"' in html


def test_the_preview_counts_an_emoji_or_lingala_letter_as_ucs2_and_shows_the_transliteration(broadcaster, people, db):
    ln = "Bɔkɛngɛ: nzela ya Beni ezali na likama lelo na butu. Bofanda na ndako na bino."
    fr = "Route dangereuse ce soir 🚨 restez chez vous. " * 2
    page, _ = preview(broadcaster, text_ln=ln, text_fr=fr, transliterate=None)
    ucs2 = row(page, "ln")
    assert ucs2["encoding"] == "UCS-2" and ucs2["segments"] == segments(ln) == 2
    emoji = row(page, "fr")
    assert emoji["encoding"] == "UCS-2" and emoji["segments"] == segments(fr.strip()) == 2
    page, _ = preview(broadcaster, text_ln=ln, text_fr=fr, transliterate="1")
    gsm = row(page, "ln")
    assert gsm["encoding"] == "GSM-7" and gsm["segments"] == 1
    assert gsm["text"].startswith("Bokenge: nzela ya Beni") and "translittéré" in gsm["text"]
    assert row(page, "fr")["encoding"] == "GSM-7" and "?" in row(page, "fr")["text"]  # the emoji, replaced
    assert not db.scalars(select(Broadcast)).all()  # a preview stores nothing


def test_a_missing_language_without_fallback_is_refused_naming_it(broadcaster, people, db):
    page, _ = preview(broadcaster, text_ln="", fallback_language="")
    assert page.status_code == 400
    text = shown(page)
    assert "Pas de texte en Lingala" in text and "langue de repli" in text
    assert 'name="action" value="send"' not in page.get_data(as_text=True)
    assert TEXTS["fr"] in text  # what was written is kept
    with_fallback, _ = preview(broadcaster, text_ln="", fallback_language="fr")
    assert with_fallback.status_code == 200 and row(with_fallback, "fr")["recipients"] == 3  # Bunia and Kamango too


def test_a_reporters_number_in_a_text_is_refused_and_not_shown_back(broadcaster, people, db, text_in):
    assert text_in("attaque a Beni").status_code == 200  # REPORTER wrote to us
    page, _ = preview(broadcaster, text_fr=f"Appelez {REPORTER} pour aider")
    assert page.status_code == 422
    html = page.get_data(as_text=True)
    assert "numéro de téléphone d&#39;un informateur" in html or "numéro de téléphone d'un informateur" in shown(page)
    assert REPORTER not in html and REPORTER[4:] not in html and "Appelez [\u2026] pour aider" in shown(page)


def test_a_radius_around_a_restricted_alert_is_refused_politely(broadcaster, people, db):
    goma = Place(key=GOMA, name="Goma", level="locality", admin1_pcode="CD61", admin2_pcode="CD6101")
    db.add(goma)
    db.commit()
    hidden = Alert(status="new", category="SEXUAL_VIOLENCE", channel="sms", place_id=goma.id)
    attack = Alert(status="new", category="ATTACK", channel="sms", place_id=goma.id)
    db.add_all([hidden, attack])
    db.commit()
    refused, _ = preview(broadcaster, target_all=None, radius_alert=str(hidden.id), radius_km="10")
    assert refused.status_code == 400 and "restricted" in shown(refused)
    assert "ne peut pas être envoyée telle quelle" in shown(refused)
    around, _ = preview(broadcaster, target_all=None, radius_alert=str(attack.id), radius_km="10")
    assert around.status_code == 200 and row(around, "sw")["recipients"] == 1  # Goma's


def test_send_needs_a_preview_of_the_very_same_form(broadcaster, people, db):
    page, data = preview(broadcaster)
    previewed = re.search(r'name="previewed" value="([0-9a-f]+)"', page.get_data(as_text=True)).group(1)
    changed = broadcaster.post(NEW, data={**data, "text_fr": "Autre texte", "action": "send",
                                          "previewed": previewed, "csrf_token": csrf(page)})
    assert changed.status_code == 409 and "a changé depuis son aperçu" in shown(changed)
    assert not db.scalars(select(Broadcast)).all()


# --- sending ----------------------------------------------------------------------------

def test_send_creates_what_the_api_would_with_its_targets_and_is_audited(client, broadcaster, people, db):
    focal = db.scalar(select(Group).where(Group.name == "focal points"))
    fields = dict(target_all=None, provinces="CD54", territories=["CD6109"], groups=str(focal.id),
                  send_at="2099-01-01T08:00", expires_at="2099-01-01T20:00", status="Exercise", transliterate="1",
                  text_ln="Nzela ezali na likama lelo. Bofanda na ndakɔ.")
    answer = send(broadcaster, **fields)
    assert answer.status_code == 302
    bid = int(answer.location.rsplit("/", 1)[1])
    made = fresh(db, Broadcast, bid)
    api = client.post("/api/v1/broadcasts", headers=API_HEADERS, json={
        "texts": {**TEXTS, "ln": fields["text_ln"]}, "fallback_language": "fr", "priority": "urgent",
        "status": "Exercise", "transliterate": True, "send_at": "2099-01-01T06:00:00+00:00",
        "expires_at": "2099-01-01T18:00:00+00:00",  # in UTC: SQLite stores a +02:00 time without its offset
        "targets": {"provinces": ["CD54"], "territories": ["CD6109"], "groups": [focal.id]}})
    assert api.status_code == 201, api.json
    twin = fresh(db, Broadcast, api.json["id"])
    for name in ("texts", "original_texts", "fallback_language", "targets", "priority", "cap_status", "cap",
                 "question", "state", "send_at", "expires_at"):
        assert getattr(made, name) == getattr(twin, name), name
    assert made.texts["ln"].endswith("ndako.") and made.targets["names"]["CD6109"] == "Beni"
    entry = db.scalar(select(AuditEntry).where(AuditEntry.action == "broadcast.create"))
    assert entry.target_id == str(bid) and entry.operator_id is not None
    assert entry.after["identifier"] == made.identifier and entry.after["recipients"] == 4
    page = shown(broadcaster.get(answer.location))
    assert "La diffusion est créée." in page and made.identifier in page and "Programmée" in page
    assert "2099-01-01 08:00" in page


def test_cancel_withdraws_what_was_not_sent_and_is_audited(app, broadcaster, people, db):
    from service import broadcast_sending
    from service.inbox import Services
    bid = int(send(broadcaster).location.rsplit("/", 1)[1])
    with app.app_context():
        broadcast_sending.fanout(Services.current(), bid)
    page = broadcaster.get(f"/console/broadcasts/{bid}")
    html = page.get_data(as_text=True)
    assert '<meta http-equiv="refresh" content="10">' in html and "/cancel" in html
    assert re.search(r'status-queued"><td>en file</td><td>5</td>', html)
    done = broadcaster.post(f"/console/broadcasts/{bid}/cancel", data={"csrf_token": csrf(page)})
    assert done.status_code == 302
    after = broadcaster.get(done.location)
    text = shown(after)
    assert "5 messages pas encore envoyés ont été retirés" in text and "Annulée" in text
    assert "http-equiv" not in after.get_data(as_text=True) and "/cancel" not in after.get_data(as_text=True)
    assert fresh(db, Broadcast, bid).state == "canceled"
    entry = db.scalar(select(AuditEntry).where(AuditEntry.action == "broadcast.cancel"))
    assert entry.target_id == str(bid) and entry.before == {"state": "sending"}
    assert entry.after == {"state": "canceled", "withdrawn": 5}
    again = broadcaster.post(f"/console/broadcasts/{bid}/cancel", data={"csrf_token": csrf(after)})
    assert "rien à annuler" in shown(broadcaster.get(again.location))
    assert audit_actions(db).count("broadcast.cancel") == 1


def test_the_detail_shows_delivery_counts_and_the_tally_of_answers(app, broadcaster, people, db, text_in):
    from tests.test_broadcasts import run
    answer = send(broadcaster, target_all=None, provinces="CD61", answer_1="en sécurité", answer_2="pas en sécurité",
                  **{f"text_{k}": v for k, v in QUESTION_TEXTS.items()})
    bid = int(answer.location.rsplit("/", 1)[1])
    assert run(app, bid) == "done"
    text_in("1", sender="+243990001001")
    text_in("2", sender="+243990001002")
    text_in("2", sender="+243990001004")
    page = broadcaster.get(f"/console/broadcasts/{bid}")
    html = page.get_data(as_text=True)
    assert "Envoyée" in shown(page) and "http-equiv" not in html
    delivered = dict(re.findall(r'<tr class="status-(\w+)"><td>[^<]*</td><td>(\d+)</td>', html))
    assert sum(int(n) for n in delivered.values()) == 4 and set(delivered) <= {"sent", "delivered", "handed"}
    assert re.search(r'answer-1"><td>1 · en sécurité</td><td>1</td>', html)
    assert re.search(r'answer-2"><td>2 · pas en sécurité</td><td>2</td>', html)
    areas = re.findall(r"<tr><td>(\w+) <small>(CD\d+)</small></td>\s*<td>(\d)</td><td>(\d)</td></tr>", html)
    assert ("Beni", "CD6109", "1", "1") in areas and ("Goma", "CD6101", "0", "1") in areas
    assert "3 réponses de 4 personnes" in shown(page)
    listing = broadcaster.get("/console/broadcasts").get_data(as_text=True)
    assert f'href="/console/broadcasts/{bid}"' in listing


# --- light, local, no number ------------------------------------------------------------

def test_the_pages_are_small_local_and_never_show_a_number(app, client, broadcaster, people, db, text_in):
    from tests.test_broadcasts import run
    text_in("attaque a Beni")
    bid = int(send(broadcaster, answer_1="oui", answer_2="non").location.rsplit("/", 1)[1])
    run(app, bid)
    js = broadcaster.get("/console/static/composer.js")
    css = broadcaster.get("/console/static/composer.css")
    base_css = broadcaster.get("/console/static/console.css")
    assert js.status_code == 200 and "javascript" in js.mimetype and css.status_code == 200
    assert "160" in js.get_data(as_text=True) and "153" in js.get_data(as_text=True)
    preview_page, _ = preview(broadcaster)
    sizes = {}
    for name, page in (("list", broadcaster.get("/console/broadcasts")), ("new", broadcaster.get(NEW)),
                       ("preview", preview_page), ("detail", broadcaster.get(f"/console/broadcasts/{bid}"))):
        html = page.get_data(as_text=True)
        sizes[name] = len(page.data)
        assert page.status_code == 200, name
        assert len(page.data) + len(css.data) + len(base_css.data) + len(js.data) < 50_000, name
        scripts = re.findall(r"<script[^>]*>(.*?)</script>", html, re.S)
        assert all(s.strip() == "" for s in scripts), name  # no inline script: the CSP forbids it
        assert re.findall(r"<script[^>]*>", html) in ([], ['<script src="/console/static/composer.js" defer>']), name
        assert "http://" not in html and "https://" not in html and " on" "click=" not in html, name
        assert "default-src 'self'" in page.headers["Content-Security-Policy"]
        for digits in [REPORTER] + [f"+2439900010{n:02d}" for n in range(1, 6)]:
            assert digits not in html and digits[4:] not in html, (name, digits)
        assert "test-api-token" not in html
    print("page sizes", sizes, "js", len(js.data), "css", len(css.data))
