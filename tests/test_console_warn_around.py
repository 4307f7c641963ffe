"""A warning around an alert (issue 12, the composer's "radius around an alert on the map"):
the alert's page and its popup on the map lead a broadcaster to the composer with the
radius filled in; never for a restricted report, never for those who may not broadcast."""

from __future__ import annotations

import html
import json
import re

from tests.test_console import db, make_operator, new_alert, signed_in  # noqa: F401  (db: fixture)

NEW = "/console/broadcasts/new"


def field_value(page, name: str) -> str | None:
    found = re.search(rf'name="{name}"[^>]*value="([^"]*)"', page.get_data(as_text=True))
    return found.group(1) if found else None


def map_labels(client) -> dict:
    found = re.search(r"data-labels='([^']*)'", client.get("/console/map").get_data(as_text=True))
    return json.loads(html.unescape(found.group(1)))


def test_the_composer_opens_with_the_radius_around_the_alert(client, db):
    make_operator(db, "diffuseur", ["broadcaster"])
    signed_in(client, "diffuseur")
    page = client.get(f"{NEW}?radius_alert=42&radius_km=15")
    assert (field_value(page, "radius_alert"), field_value(page, "radius_km")) == ("42", "15")
    assert "<details open" in page.get_data(as_text=True)  # the radius part is shown open
    odd = client.get(f'{NEW}?radius_alert=42&radius_km=1e9"><script>')
    assert (field_value(odd, "radius_alert"), field_value(odd, "radius_km")) == ("42", "10")
    assert "<script>" not in odd.get_data(as_text=True).split("</head>")[1].replace(
        '<script src="/console/static/composer.js" defer></script>', "")
    junk = client.get(f"{NEW}?radius_alert=abc")
    assert field_value(junk, "radius_alert") in ("", None)


def test_the_alert_page_and_the_map_offer_it_to_broadcasters_only_and_never_for_restricted_reports(app, db):
    make_operator(db, "chef", ["administrator"])  # triage, broadcast, see_restricted
    make_operator(db, "analyste", ["analyst"])    # triage, no broadcast
    attack = new_alert(db, category="ATTACK")
    rape = new_alert(db, category="SEXUAL_VIOLENCE")
    chef = signed_in(app.test_client(), "chef")
    link = f'href="{NEW}?radius_alert={attack}&amp;radius_km=10"'
    assert link in chef.get(f"/console/alerts/{attack}").get_data(as_text=True)
    assert "radius_alert" not in chef.get(f"/console/alerts/{rape}").get_data(as_text=True)
    labels = map_labels(chef)
    assert labels["compose"] == NEW and "SEXUAL_VIOLENCE" in labels["restricted"]
    assert labels["text"]["broadcast"] == "Avertir les gens autour"
    analyst = signed_in(app.test_client(), "analyste")
    assert "radius_alert" not in analyst.get(f"/console/alerts/{attack}").get_data(as_text=True)
    assert map_labels(analyst)["compose"] is None
