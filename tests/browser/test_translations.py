"""A translator rewrites the Swahili welcome on /console/translations, and the bot says
the new words in the simulator (/console/simulator), through the real Rasa server and
action server: what a reporter texting "habari" would read."""

from __future__ import annotations

import time
import uuid

from selenium.webdriver.common.by import By
from sqlalchemy import select

from bot import messages
from service.models import AuditEntry, Message
from tests.browser.pages import click, flashes, type_into


def bot_says(browser) -> list[str]:
    return [li.find_element(By.CSS_SELECTOR, "span.text").text
            for li in browser.find_elements(By.CSS_SELECTOR, "ol.transcript li.out")]


def say(browser, body: str) -> None:
    type_into(browser, "body", body)
    click(browser, 'form.triage button[type=submit]')  # Send to the bot


def catalog_reads(text: str, timeout: float = 10) -> bool:
    """The bot's catalog in this process (where the live server renders the replies) has it."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if messages.text("welcome", "sw") == text:
            return True
        time.sleep(0.2)
    return False


def test_a_translators_new_welcome_is_what_the_bot_says_in_the_simulator(
        browser, live, login, screenshot, bot, locales_dir):
    before = messages.text("welcome", "sw")
    translator = login(browser, live, roles=("translator", "analyst"))
    click(browser, browser.find_element(By.LINK_TEXT, "Simulateur"))
    say(browser, "habari")
    assert bot_says(browser) == [before]  # the catalog's welcome, in Swahili

    click(browser, browser.find_element(By.LINK_TEXT, "Traductions"))
    assert "/console/translations" in browser.current_url
    screenshot(browser, "translations")
    click(browser, 'a[href="/console/translations/sw/welcome"]')
    assert browser.find_element(By.NAME, "text").get_attribute("value") == before
    new = f"Karibu kwa laini ya hatari ({uuid.uuid4().hex[:6]}). Tuambie nini kimetokea, wapi na lini."
    type_into(browser, "text", new)
    click(browser, 'form.triage button[type=submit]')  # Save
    assert browser.current_url.endswith("/console/translations/sw/welcome")
    assert flashes(browser) == ["Enregistré et compilé. Le bot l'utilise d'ici quelques secondes, sans redémarrage."]
    assert browser.find_element(By.NAME, "text").get_attribute("value") == new
    po = (locales_dir / "sw" / "LC_MESSAGES" / "messages.po").read_text(encoding="utf-8")
    assert f'msgstr "{new}"' in po.replace('"\n"', "")
    with live.session() as db:
        entry = db.scalar(select(AuditEntry).where(AuditEntry.action == "translation.save"))
        assert (entry.operator_id, entry.target_id) == (translator.id, "sw/welcome")

    # no restart: the process that renders the replies (the live server's, this one) reads
    # the changed catalog within a couple of seconds (bot.live_files.LiveFiles)
    assert catalog_reads(new), "the bot still reads the old welcome"

    click(browser, browser.find_element(By.LINK_TEXT, "Simulateur"))
    click(browser, 'form[action$="/simulator/new"] button')  # New conversation
    assert bot_says(browser) == []
    say(browser, "habari")
    assert bot_says(browser) == [new]
    screenshot(browser, "simulator")
    with live.session() as db:
        out = db.scalars(select(Message.body).where(Message.direction == "out", Message.provider == "simulator")
                         .order_by(Message.id)).all()
        assert out == [before, new]
    assert not live.standin.sent  # nothing of the simulator ever leaves for a phone
