"""A broadcaster writes a warning in French, Swahili and Lingala in the composer: the
counter under each text follows the typing (characters, GSM-7 or UCS-2, SMS parts), the
preview gives each language's reach, Send now creates the broadcast, and the worker's
jobs take each subscriber's text, in their language, to the Twilio stand-in."""

from __future__ import annotations

from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from sqlalchemy import select

from service.models import AuditEntry, Broadcast, Message
from tests.broadcast_factories import BENI, BUNIA, GOMA, KAMANGO, subscriber
from tests.browser.pages import click, flashes, text_of, wait

TEXTS = {"fr": "Route Beni-Kasindi dangereuse ce soir. Restez chez vous.",
         "sw": "Barabara Beni-Kasindi ni hatari leo usiku. Bakia nyumbani.",
         "ln": "Nzela Beni-Kasindi ezali na likama lelo na butu. Bofanda na ndako."}
PEOPLE = {"+243990009001": ("fr", BENI), "+243990009002": ("sw", GOMA), "+243990009003": ("ln", KAMANGO),
          "+243990009004": (None, BUNIA)}  # no language: the fallback, French


def counter(browser, lang: str) -> str:
    return browser.find_element(By.ID, f"count_{lang}").text


def typed(browser, lang: str, text: str, before: str) -> str:
    """Type into a language's text; the counter's text once it changed."""
    browser.find_element(By.NAME, f"text_{lang}").send_keys(text)
    wait(browser).until(lambda b: counter(b, lang) != before)
    return counter(browser, lang)


def test_a_broadcaster_composes_in_three_languages_and_sends_to_every_subscriber(
        browser, live, login, screenshot):
    with live.session() as db:
        for number, (lang, place_key) in PEOPLE.items():
            subscriber(db, live.app.extensions["identity"], number, lang, place_key)
    login(browser, live, roles=("broadcaster",))
    click(browser, browser.find_element(By.LINK_TEXT, "Diffusions"))
    click(browser, f'a[href="/console/broadcasts/new"]')
    assert counter(browser, "fr") == ""

    first = typed(browser, "fr", "Route", "")
    assert first == "5 caractères · GSM-7 · 5/160 · 1 SMS"
    whole = typed(browser, "fr", TEXTS["fr"][len("Route"):], first)
    assert whole == f"{len(TEXTS['fr'])} caractères · GSM-7 · {len(TEXTS['fr'])}/160 · 1 SMS"
    typed(browser, "sw", TEXTS["sw"], "")
    lingala = typed(browser, "ln", "Nzela ezali na likama ɛ", "")  # ɛ is not GSM-7: UCS-2
    assert "UCS-2" in lingala and "/70 · 1 SMS" in lingala and "ucs2" in \
        browser.find_element(By.ID, "count_ln").get_attribute("class")
    area = browser.find_element(By.NAME, "text_ln")
    area.send_keys(Keys.CONTROL, "a")
    area.send_keys(TEXTS["ln"])  # typed over: GSM-7 again
    wait(browser).until(lambda b: "GSM-7" in counter(b, "ln"))
    assert counter(browser, "ln") == f"{len(TEXTS['ln'])} caractères · GSM-7 · {len(TEXTS['ln'])}/160 · 1 SMS"
    browser.find_element(By.CSS_SELECTOR, 'select[name="fallback_language"] option[value="fr"]').click()
    browser.find_element(By.CSS_SELECTOR, 'input[name="target_all"]').click()
    screenshot(browser, "composer")

    click(browser, 'button[name="action"][value="preview"]')
    recipients = {lang: browser.find_element(By.CSS_SELECTOR, f"tr.lang-{lang} td.recipients").text
                  for lang in TEXTS}
    assert recipients == {"fr": "2", "sw": "1", "ln": "1"}  # French: its subscriber and the one without
    assert text_of(browser, "td.recipients-total") == "4"
    click(browser, 'button[name="action"][value="send"]')  # Send now
    assert "/console/broadcasts/" in browser.current_url
    assert "La diffusion est créée." in " ".join(flashes(browser))

    for _ in range(20):  # fan-out, then the senders' slices
        live.run_jobs()
        if len(live.standin.sent) >= len(PEOPLE):
            break
    got = {m.to: m.body for m in live.standin.sent}
    assert got == {"+243990009001": TEXTS["fr"], "+243990009002": TEXTS["sw"], "+243990009003": TEXTS["ln"],
                   "+243990009004": TEXTS["fr"]}
    with live.session() as db:
        [broadcast] = db.scalars(select(Broadcast)).all()
        assert broadcast.texts == TEXTS and broadcast.fallback_language == "fr"
        sent = db.scalars(select(Message).where(Message.broadcast_id == broadcast.id)).all()
        assert sorted(m.status for m in sent) == ["sent"] * 4
        assert db.scalar(select(AuditEntry.target_id).where(AuditEntry.action == "broadcast.create")) \
            == str(broadcast.id)
