"""Two reports of one event, grouped apart (an attack in Kiwanja, people fleeing from
Rubare, 8 km away), merged by an analyst on /console/incidents: one line, two alerts
from two sources. The dashboard then counts them."""

from __future__ import annotations

import re

from selenium.webdriver.common.by import By
from sqlalchemy import select

from service import incidents
from service.models import Alert, AuditEntry, Incident
from tests.browser import factories
from tests.browser.pages import click, flashes, text_of


def listed(browser) -> dict[int, list[str]]:
    """Each incident of the list: its alerts and sources counts."""
    rows = {}
    for row in browser.find_elements(By.CSS_SELECTOR, "table.incidents tbody tr"):
        link = row.find_element(By.CSS_SELECTOR, "a").get_attribute("href")
        rows[int(re.search(r"/incidents/(\d+)$", link).group(1))] = [
            c.text for c in row.find_elements(By.CSS_SELECTOR, "td.n")] + [row.get_attribute("class") or ""]
    return rows


def test_an_analyst_merges_two_reports_into_one_incident_and_sees_two_sources(browser, live, login, screenshot):
    with live.session() as db:
        kiwanja = factories.place(db, **factories.KIWANJA)
        rubare = factories.place(db, **factories.RUBARE)
        bunia = factories.place(db, **factories.BUNIA)
        one, two = (factories.reporter(db, live, f"+24399000800{n}") for n in (1, 2))
        attack = factories.alert(db, place_id=kiwanja, reporter_id=one, hours_ago=5, reference="510001")
        fleeing = factories.alert(db, category="DISPLACEMENT", place_id=rubare, reporter_id=two, hours_ago=4,
                                  reference="510002")
        factories.alert(db, category="ARMED_PRESENCE", place_id=bunia, reporter_id=one, hours_ago=30,
                        reference="510003")
        incidents.backfill(db)  # the sweep's grouping
        db.commit()
        target, other = (db.get(Alert, a).incident_id for a in (attack, fleeing))
    assert target != other
    login(browser, live, roles=("analyst",))
    browser.get(f"{live.url}/console/incidents")
    before = listed(browser)
    assert before[target][:2] == ["1", "1"] and before[other][:2] == ["1", "1"] and len(before) == 3

    click(browser, f'a[href="/console/incidents/{target}"]')
    offered = browser.find_element(By.CSS_SELECTOR, f'input[name="other"][value="{other}"]')  # nearby, same days
    offered.click()
    merge = browser.find_element(By.CSS_SELECTOR, f'form[action$="/incidents/{target}/merge"]')
    merge.find_element(By.NAME, "reason").send_keys("même attaque, vue de Rubare")
    click(browser, merge.find_element(By.CSS_SELECTOR, "button[type=submit]"))
    assert browser.current_url.endswith(f"/console/incidents/{target}")
    said = " ".join(flashes(browser))
    assert f"Fusionnés dans cet incident : #{other}." in said and "2 alertes venant de 2 sources" in said
    assert "2 sources distinctes" in text_of(browser, "dl.fields")
    assert {a.get_attribute("href").rsplit("/", 1)[1] for a in
            browser.find_elements(By.CSS_SELECTOR, "table.alerts a")} == {str(attack), str(fleeing)}

    click(browser, browser.find_element(By.LINK_TEXT, "Incidents"))
    after = listed(browser)
    assert other not in after and after[target] == ["2", "2", "corroborated"]  # one line, two sources
    screenshot(browser, "incidents")
    with live.session() as db:
        merged = db.get(Incident, target)
        assert (merged.alert_count, merged.source_count) == (2, 2)
        assert db.get(Incident, other).merged_into_id == target
        assert {db.get(Alert, a).incident_id for a in (attack, fleeing)} == {target}
        entry = db.scalar(select(AuditEntry).where(AuditEntry.action == "incident.merge"))
        assert entry.reason == "même attaque, vue de Rubare" and entry.after["merged"] == [other]

    click(browser, browser.find_element(By.LINK_TEXT, "Tableau de bord"))
    assert browser.find_element(By.TAG_NAME, "h1").text == "Tableau de bord"
    assert browser.find_elements(By.CSS_SELECTOR, "main svg"), "no chart drawn"
    screenshot(browser, "dashboard")
