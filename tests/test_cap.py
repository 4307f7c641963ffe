"""CAP 1.2 documents and their Atom feed: what partners' systems will read from us."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
from lxml import etree

from service import cap
from service.cap import PCODE, Area, CapAlert, FeedEntry, Info

NS = {"cap": cap.CAP_NS, "atom": cap.ATOM_NS}
SENT = datetime(2026, 3, 1, 8, 30, 15, 987654, tzinfo=timezone.utc)
EXPIRES = datetime(2026, 3, 2, 8, 30, tzinfo=timezone.utc)
BENI = Area("Beni, Nord-Kivu", geocodes=((PCODE, "CD6109"),),
            circles=((0.491349, 29.473149, 15),))
GOMA = Area("Goma, Nord-Kivu", geocodes=((PCODE, "CD6101"),))


def info(language: str = "fr", **changes) -> Info:
    fields = dict(
        language=language, event="Attaque armée", urgency="Immediate", severity="Severe",
        certainty="Likely", headline="Attaque signalée près de Beni",
        description="Des hommes armés ont été vus à l'entrée de la ville.",
        instruction="Évitez la route de Kasindi.", expires=EXPIRES,
        sender_name="Ligne d'alerte communautaire", areas=(BENI, GOMA),
        web="https://alerte.example.org/alerts/a-1")
    fields.update(changes)
    return Info(**fields)


def alert(**changes) -> CapAlert:
    fields = dict(identifier="alerte-2026-0001", sender="alerte@alerte.example.org", sent=SENT,
                  status="Actual", msg_type="Alert", scope="Public", infos=(info(),))
    fields.update(changes)
    return CapAlert(**fields)


def three_languages() -> CapAlert:
    return alert(infos=(
        info("fr", description="Des coups de feu à l'est de Beni 🔥\x07 ; restez à l'abri."),
        info("sw", event="Shambulio", headline="Shambulio karibu na Beni",
             description="Watu wenye silaha wameonekana; kaeni nyumbani.", instruction=None,
             response_types=("Shelter",)),
        info("ln", event="Etumba", headline="Etumba pene na Beni",
             description="Bato ya bibundeli bamonani; botikala na ndako.",
             instruction="Bokima nzela ya Kasindi.", sender_name=None, web=None),
    ))


def parsed(document: bytes) -> etree._Element:
    return etree.fromstring(document)


def test_an_alert_in_french_swahili_and_lingala_is_valid_cap():
    document = cap.alert_xml(three_languages())

    assert document.startswith(b"<?xml version='1.0' encoding='UTF-8'?>")
    assert cap.validate(document) == []
    root = parsed(document)
    assert root.tag == f"{{{cap.CAP_NS}}}alert"
    assert root.findtext("cap:sent", namespaces=NS) == "2026-03-01T10:30:15+02:00"
    infos = root.findall("cap:info", NS)
    assert [i.findtext("cap:language", namespaces=NS) for i in infos] == ["fr", "sw", "ln"]
    for each in infos:
        assert [c.text for c in each.findall("cap:category", NS)] == ["Security"]
        assert each.findtext("cap:expires", namespaces=NS) == "2026-03-02T10:30:00+02:00"
        area = each.find("cap:area", NS)
        assert area.findtext("cap:areaDesc", namespaces=NS) == "Beni, Nord-Kivu"
        assert area.findtext("cap:circle", namespaces=NS) == "0.49,29.47 15"
        assert area.findtext("cap:geocode/cap:valueName", namespaces=NS) == PCODE
        assert area.findtext("cap:geocode/cap:value", namespaces=NS) == "CD6109"
    french, swahili, lingala = infos
    # accents, apostrophe and emoji kept; the control character dropped
    assert french.findtext("cap:description", namespaces=NS) == \
        "Des coups de feu à l'est de Beni 🔥 ; restez à l'abri."
    assert french.findtext("cap:instruction", namespaces=NS) == "Évitez la route de Kasindi."
    assert french.findtext("cap:senderName", namespaces=NS) == "Ligne d'alerte communautaire"
    assert swahili.findtext("cap:responseType", namespaces=NS) == "Shelter"
    assert swahili.find("cap:instruction", NS) is None
    assert lingala.find("cap:senderName", NS) is None and lingala.find("cap:web", NS) is None


def test_elements_come_in_the_schema_order():
    root = parsed(cap.alert_xml(alert(note="Exercice de la ligne", references=None)))
    names = [etree.QName(el).localname for el in root]
    assert names == ["identifier", "sender", "sent", "status", "msgType", "scope", "note", "info"]
    names = [etree.QName(el).localname for el in root.find("cap:info", NS)]
    assert names == ["language", "category", "event", "urgency", "severity", "certainty",
                     "expires", "senderName", "headline", "description", "instruction", "web",
                     "area", "area"]


def test_times_are_in_eastern_congo_time_to_the_second():
    assert cap.cap_time(datetime(2026, 7, 1, 23, 59, 59, 999999)) == "2026-07-02T01:59:59+02:00"
    kinshasa = timezone(timedelta(hours=1))
    assert cap.cap_time(datetime(2026, 1, 1, 12, 0, tzinfo=kinshasa)) == "2026-01-01T13:00:00+02:00"


def test_a_document_with_utc_z_times_is_rejected():
    document = cap.alert_xml(alert())
    edited = document.replace(b"+02:00", b"Z")
    assert edited != document

    errors = cap.validate(edited)

    assert errors and any("sent" in e for e in errors) and any("expires" in e for e in errors)


def test_a_document_with_an_unknown_status_is_rejected():
    document = cap.alert_xml(alert()).replace(b"<status>Actual</status>", b"<status>Real</status>")

    errors = cap.validate(document)

    assert len(errors) == 1 and "status" in errors[0] and "Real" in errors[0]


def test_what_is_not_a_cap_alert_is_rejected():
    assert cap.validate(b"<alert") != []
    assert cap.validate(f'<value xmlns="{cap.CAP_NS}">x</value>'.encode()) != []
    # an external entity is neither read nor accepted
    with_entity = (b'<?xml version="1.0"?><!DOCTYPE alert [<!ENTITY x SYSTEM "file:///etc/hostname">]>'
                   + f'<alert xmlns="{cap.CAP_NS}"><identifier>&x;</identifier></alert>'.encode())
    assert cap.validate(with_entity) == ["a CAP document carries no DOCTYPE"]


def test_a_cancel_referencing_the_alert_is_valid():
    original = alert()
    cancel = alert(identifier="alerte-2026-0002", msg_type="Cancel",
                   sent=SENT + timedelta(hours=3), references=cap.reference(original),
                   note="Fausse alerte", infos=())

    document = cap.alert_xml(cancel)

    assert cap.validate(document) == []
    root = parsed(document)
    assert root.findtext("cap:msgType", namespaces=NS) == "Cancel"
    assert root.findtext("cap:references", namespaces=NS) == \
        "alerte@alerte.example.org,alerte-2026-0001,2026-03-01T10:30:15+02:00"


def test_a_long_headline_is_cut_on_a_word_under_160_characters():
    words = "Attaque signalée sur la route entre Beni et Butembo, évitez les déplacements "
    long = (words * 4)[:300]
    assert len(long) == 300

    document = cap.alert_xml(alert(infos=(info(headline=long),)))

    assert cap.validate(document) == []
    headline = parsed(document).findtext("cap:info/cap:headline", namespaces=NS)
    assert len(headline) < 160 and headline.endswith("…")
    kept = headline[:-1]
    assert long.startswith(kept) and long[len(kept)] in " ,"
    assert cap.headline("Attaque à Beni") == "Attaque à Beni"
    assert len(cap.headline("x" * 300)) < 160  # one word too long is cut anyway


def test_circles_never_locate_a_household():
    assert cap.circle(-1.6789123, 29.2284567, 2.5) == "-1.68,29.23 2.5"  # about 1 km
    assert cap.circle(-1.6789123, 29.2284567, 0.05) == "-1.68,29.23 1"  # never a radius of a few houses
    with pytest.raises(ValueError):
        cap.circle(91, 29.2, 1)


def test_identifiers_that_references_could_not_name_are_refused():
    with pytest.raises(ValueError):
        cap.alert_xml(alert(identifier="alerte 1"))
    with pytest.raises(ValueError):
        cap.alert_xml(alert(sender="alerte,rdc"))


def test_the_atom_feed_lists_cap_documents_newest_first():
    entries = [
        FeedEntry(id="urn:alerte:2", title="Shambulio karibu na Beni",
                  updated=datetime(2026, 3, 2, 9, 0, tzinfo=timezone.utc),
                  cap_url="https://alerte.example.org/cap/2.xml", summary="Kaeni nyumbani"),
        FeedEntry(id="urn:alerte:1", title="Attaque à l'est de Beni",
                  updated=datetime(2026, 3, 1, 9, 0, tzinfo=timezone.utc),
                  cap_url="https://alerte.example.org/cap/1.xml"),
    ]

    document = cap.atom_feed(entries, feed_id="urn:alerte:feed", title="Alertes Nord-Kivu",
                             self_url="https://alerte.example.org/cap/feed.atom",
                             updated=datetime(2026, 3, 2, 9, 0, tzinfo=timezone.utc))

    feed = parsed(document)
    assert feed.tag == f"{{{cap.ATOM_NS}}}feed"
    assert feed.findtext("atom:id", namespaces=NS) == "urn:alerte:feed"
    assert feed.findtext("atom:updated", namespaces=NS) == "2026-03-02T11:00:00+02:00"
    assert feed.find("atom:link[@rel='self']", NS).get("href") == \
        "https://alerte.example.org/cap/feed.atom"
    assert feed.findtext("atom:author/atom:name", namespaces=NS) == "alerte"
    found = feed.findall("atom:entry", NS)
    assert [e.findtext("atom:id", namespaces=NS) for e in found] == ["urn:alerte:2", "urn:alerte:1"]
    assert [e.findtext("atom:title", namespaces=NS) for e in found] == \
        ["Shambulio karibu na Beni", "Attaque à l'est de Beni"]
    for entry, given in zip(found, entries):
        link = entry.find("atom:link", NS)
        assert (link.get("rel"), link.get("type"), link.get("href")) == \
            ("alternate", "application/cap+xml", given.cap_url)
    assert found[0].findtext("atom:summary", namespaces=NS) == "Kaeni nyumbani"
    assert found[1].find("atom:summary", NS) is None


def test_the_oasis_schema_is_shipped_and_loaded_once():
    assert cap.SCHEMA.is_file()
    assert "<!-- Copyright OASIS Open 2010 All Rights Reserved -->" in cap.SCHEMA.read_text("utf-8")
    assert (cap.SCHEMA.parent / "SOURCES.md").is_file()

    first = cap.schema()
    cap.validate(cap.alert_xml(alert()))
    assert cap.schema() is first
    assert cap.schema.cache_info().misses <= 1
