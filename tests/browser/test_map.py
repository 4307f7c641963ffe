"""The map (/console/map) draws with no network at all: the province and territory
outlines and the alerts come from the console itself, drawn by the vendored Leaflet, and
the browser asked nothing of anywhere but loopback. Its own proof that it has no network:
a page elsewhere does not load."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from selenium.common.exceptions import WebDriverException
from selenium.webdriver.common.by import By

from service import incidents
from tests.browser import factories
from tests.browser.pages import wait

PLACES = Path(__file__).resolve().parents[2] / "data" / "places"


def outlines(level: str) -> int:
    """The shipped outlines of provinces (adm1) or territories (adm2): one path each."""
    data = json.loads((PLACES / f"boundaries_{level}.geojson").read_text(encoding="utf-8"))
    return sum(1 for f in data["features"] if f.get("geometry"))


def requests_seen(browser) -> tuple[list[str], list[tuple[str, str]]]:
    """What the browser asked for since the last look (Chrome's network log), and what failed."""
    asked, failed, urls = [], [], {}
    for entry in browser.get_log("performance"):
        event = json.loads(entry["message"])["message"]
        params = event.get("params", {})
        if event["method"] == "Network.requestWillBeSent":
            urls[params["requestId"]] = params["request"]["url"]
            asked.append(params["request"]["url"])
        elif event["method"] == "Network.loadingFailed":
            failed.append((urls.get(params["requestId"], "?"), params.get("errorText", "")))
    return asked, failed


def count(browser, css: str) -> int:
    return browser.execute_script("return document.querySelectorAll(arguments[0]).length", css)


def test_the_map_draws_outlines_alerts_and_incidents_with_nothing_from_the_network(
        browser, live, login, screenshot):
    with pytest.raises(WebDriverException, match=r"net::ERR_(PROXY_CONNECTION_FAILED|NAME_NOT_RESOLVED)"):
        browser.get("http://tile.openstreetmap.org/6/37/32.png")  # the network, were there one
    asked, failed = requests_seen(browser)
    assert any(url.startswith("http://tile.openstreetmap.org/") and "ERR_" in error for url, error in failed), \
        (asked, failed)

    with live.session() as db:
        kiwanja = factories.place(db, **factories.KIWANJA)
        oicha = factories.place(db, **factories.OICHA)
        bunia = factories.place(db, **factories.BUNIA)
        rutshuru = factories.place(db, "CD6104", "Rutshuru", level="adm2")  # an area, not a point
        one, two = (factories.reporter(db, live, f"+24399001000{n}") for n in (1, 2))
        factories.alert(db, place_id=kiwanja, reporter_id=one, hours_ago=2, reference="620001")
        factories.alert(db, place_id=kiwanja, reporter_id=two, hours_ago=1, reference="620002")
        factories.alert(db, category="DISPLACEMENT", place_id=oicha, hours_ago=50, reference="620003")
        factories.alert(db, category="CLASH", place_id=bunia, hours_ago=200, reference="620004")
        factories.alert(db, category="THREAT", place_id=rutshuru, hours_ago=3, reference="620005")
        factories.alert(db, category="OTHER", hours_ago=4, reference="620006", place_text="pres du marche")
        incidents.backfill(db)
        db.commit()
    login(browser, live, roles=("analyst",))
    requests_seen(browser)  # forget the login's, and what the console said before
    browser.get_log("browser")
    browser.get(f"{live.url}/console/map")
    provinces, territories = outlines("adm1"), outlines("adm2")
    wait(browser).until(lambda b: count(b, "#map path.mk.dot") == 4)
    assert count(browser, "#map path.adm1") == provinces == 5
    assert count(browser, "#map path.adm2") == territories
    assert count(browser, "#map path.mk.ring") == 1  # Kiwanja's two reports, one incident
    assert count(browser, "#map .province-label") == provinces
    assert count(browser, "#map .leaflet-tile") == 0  # no tiles: outlines only
    assert browser.find_element(By.CSS_SELECTOR, "p.count").text.startswith(
        "6 alertes · 4 sur la carte, 2 sans point")  # the area-only and the placeless ones counted
    assert browser.find_element(By.ID, "map-status").text == ""  # no "could not load"
    screenshot(browser, "map")

    loaded = browser.execute_script(
        "return performance.getEntriesByType('resource').map(function (e) { return e.name; })")
    assert any("/map/boundaries/adm1.geojson" in u for u in loaded) and \
        any("/map/alerts.geojson" in u for u in loaded) and any("leaflet.js" in u for u in loaded)
    assert all(u.startswith(f"{live.url}/") for u in loaded), loaded
    asked, failed = requests_seen(browser)
    assert asked and all(u.startswith(f"{live.url}/") or u.startswith("data:") for u in asked), asked
    assert not failed, failed
    errors = [e for e in browser.get_log("browser") if e["level"] == "SEVERE"]
    assert not errors, errors  # not even the icon: the console serves its own
