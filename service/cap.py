"""OASIS CAP 1.2 documents and the Atom feed that lists them: pure functions, no storage.

A CAP document is what other alerting systems (radio stations, humanitarian platforms,
aggregators) read; it is checked against the OASIS schema shipped in ``data/cap`` so
the service never publishes a document they would reject.
"""

from __future__ import annotations

import re
import threading
from dataclasses import dataclass
from datetime import datetime, timezone
from functools import lru_cache
from pathlib import Path

from lxml import etree

from bot.gsm7 import safe_text
from bot.parsing import EAST

CAP_NS = "urn:oasis:names:tc:emergency:cap:1.2"
ATOM_NS = "http://www.w3.org/2005/Atom"
CAP_MIME = "application/cap+xml"
SCHEMA = Path(__file__).resolve().parent.parent / "data" / "cap" / "CAP-v1.2.xsd"

# The geocode valueName for OCHA's administrative p-codes (COD-AB, e.g. CD6109 for the
# territory of Beni): the same codes as data/places, the ones humanitarian partners use.
PCODE = "OCHA-PCODE"
CATEGORY = "Security"  # every alert of this line is about armed violence
HEADLINE_LIMIT = 160  # CAP 1.2 recommends a headline of less than 160 characters
# CAP 1.2 3.3.2: identifier and sender carry no spaces, commas or restricted characters,
# otherwise a later Update's or Cancel's <references> cannot name them.
NOT_IN_ID = re.compile(r"[\s,<&]")


@dataclass(frozen=True)
class Area:
    description: str  # areaDesc, e.g. "Beni, Nord-Kivu"
    geocodes: tuple[tuple[str, str], ...] = ()  # (valueName, value), e.g. (PCODE, "CD6109")
    circles: tuple[tuple[float, float, float], ...] = ()  # (lat, lon, radius in km)


@dataclass(frozen=True)
class Info:
    language: str  # "fr", "sw", "ln", written as given
    event: str
    urgency: str  # Immediate | Expected | Future | Past | Unknown
    severity: str  # Extreme | Severe | Moderate | Minor | Unknown
    certainty: str  # Observed | Likely | Possible | Unlikely | Unknown
    headline: str
    description: str
    instruction: str | None
    expires: datetime
    sender_name: str | None = None
    areas: tuple[Area, ...] = ()
    web: str | None = None
    response_types: tuple[str, ...] = ()  # Shelter | Evacuate | Prepare | Avoid | AllClear ...


@dataclass(frozen=True)
class CapAlert:
    identifier: str
    sender: str
    sent: datetime
    status: str  # Actual | Exercise | System | Test | Draft
    msg_type: str  # Alert | Update | Cancel
    scope: str  # Public | Restricted | Private
    infos: tuple[Info, ...]
    note: str | None = None
    references: str | None = None  # for Update and Cancel: "sender,identifier,sent" ...


@dataclass(frozen=True)
class FeedEntry:
    id: str
    title: str
    updated: datetime
    cap_url: str
    summary: str | None = None


def cap_time(value: datetime) -> str:
    """The time as CAP wants it: seconds, explicit +02:00 (the schema rejects "Z").

    A naive datetime is taken as UTC, as the service stores times.
    """
    if value.tzinfo is None:
        value = value.replace(tzinfo=timezone.utc)
    return value.astimezone(EAST).replace(microsecond=0).isoformat(timespec="seconds")


def reference(alert: CapAlert) -> str:
    """How an Update or a Cancel names this alert in its <references>."""
    return f"{alert.sender},{alert.identifier},{cap_time(alert.sent)}"


def headline(text: str) -> str:
    """The headline under 160 characters, cut on a word boundary with "…"."""
    text = safe_text(text).strip()
    if len(text) < HEADLINE_LIMIT:
        return text
    head = text[:HEADLINE_LIMIT - 1]
    space = max(head.rfind(" "), head.rfind("\n"))
    head = head[:space] if space > 0 else head[:HEADLINE_LIMIT - 2]
    return head.rstrip(" ,;:.-–—\n") + "…"


MIN_RADIUS_KM = 1.0


def circle(lat: float, lon: float, radius_km: float) -> str:
    """ "lat,lon radius": the centre to 2 decimals (about 1.1 km), the radius at least
    MIN_RADIUS_KM, so a published warning locates a village's area, never a household
    (an operator's point may be someone's home; widening a warning area is safe)."""
    if not (-90 <= lat <= 90 and -180 <= lon <= 180 and radius_km >= 0):
        raise ValueError(f"not a circle: {lat}, {lon}, {radius_km} km")
    radius = f"{max(radius_km, MIN_RADIUS_KM):.3f}".rstrip("0").rstrip(".")
    return f"{lat:.2f},{lon:.2f} {radius}"


def alert_xml(alert: CapAlert) -> bytes:
    """The alert as a CAP 1.2 document (UTF-8, with declaration), elements in schema order."""
    for name in ("identifier", "sender"):
        if not getattr(alert, name) or NOT_IN_ID.search(getattr(alert, name)):
            raise ValueError(f"CAP {name} must be non-empty, without spaces, commas, < or &")
    root = etree.Element(f"{{{CAP_NS}}}alert", nsmap={None: CAP_NS})
    _add(root, "identifier", alert.identifier)
    _add(root, "sender", alert.sender)
    _add(root, "sent", cap_time(alert.sent))
    _add(root, "status", alert.status)
    _add(root, "msgType", alert.msg_type)
    _add(root, "scope", alert.scope)
    _add(root, "note", alert.note)
    _add(root, "references", alert.references)
    for info in alert.infos:
        _info(root, info)
    return etree.tostring(root, xml_declaration=True, encoding="UTF-8", pretty_print=True)


def _info(parent: etree._Element, info: Info) -> None:
    el = _add(parent, "info")
    _add(el, "language", info.language)
    _add(el, "category", CATEGORY)
    _add(el, "event", info.event)
    for response in info.response_types:
        _add(el, "responseType", response)
    _add(el, "urgency", info.urgency)
    _add(el, "severity", info.severity)
    _add(el, "certainty", info.certainty)
    _add(el, "expires", cap_time(info.expires))
    _add(el, "senderName", info.sender_name)
    _add(el, "headline", headline(info.headline))
    _add(el, "description", info.description)
    _add(el, "instruction", info.instruction)
    _add(el, "web", info.web)
    for area in info.areas:
        area_el = _add(el, "area")
        _add(area_el, "areaDesc", area.description)
        for lat, lon, radius in area.circles:
            _add(area_el, "circle", circle(lat, lon, radius))
        for name, value in area.geocodes:
            geocode = _add(area_el, "geocode")
            _add(geocode, "valueName", name)
            _add(geocode, "value", value)


def _add(parent: etree._Element, tag: str, text: str | None = "", ns: str = CAP_NS):
    """A child element with the text XML can carry; nothing when the text is None."""
    if text is None:
        return None
    el = etree.SubElement(parent, f"{{{ns}}}{tag}")
    if text:
        el.text = safe_text(text)
    return el


def _parser() -> etree.XMLParser:
    # Never expand entities, read a DTD or reach the network while reading a document.
    return etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False)


_VALIDATING = threading.Lock()


@lru_cache(maxsize=1)
def schema() -> etree.XMLSchema:
    """The OASIS CAP 1.2 schema shipped in data/cap, loaded once."""
    return etree.XMLSchema(etree.parse(str(SCHEMA), _parser()))


def validate(document: bytes) -> list[str]:
    """[] if the document is a CAP 1.2 alert the schema accepts, else what is wrong."""
    try:
        tree = etree.fromstring(document, _parser()).getroottree()
    except etree.XMLSyntaxError as error:
        return [f"not well-formed XML: {error}"]
    if tree.docinfo.doctype:
        return ["a CAP document carries no DOCTYPE"]
    # The schema also declares valueName and value as global elements: only alert is a document.
    if tree.getroot().tag != f"{{{CAP_NS}}}alert":
        return [f"the root element is {tree.getroot().tag}, not a CAP 1.2 alert"]
    cap_schema = schema()
    with _VALIDATING:  # the schema keeps the last validation's errors: one at a time
        if cap_schema.validate(tree):
            return []
        return [f"line {e.line}: {e.message}" for e in cap_schema.error_log]


def atom_feed(entries: list[FeedEntry], *, feed_id: str, title: str, self_url: str,
              updated: datetime, author: str = "alerte") -> bytes:
    """An Atom feed of CAP documents, entries in the order given (newest first).

    Args:
        entries: one per published alert, each linking to its CAP document.
        feed_id: the feed's permanent IRI.
        title: the feed's title.
        self_url: where the feed itself is published (link rel="self").
        updated: when the feed last changed.
        author: the feed's author name, which every entry inherits.
    """
    feed = etree.Element(f"{{{ATOM_NS}}}feed", nsmap={None: ATOM_NS})
    _add(feed, "id", feed_id, ATOM_NS)
    _add(feed, "title", title, ATOM_NS)
    _add(feed, "updated", cap_time(updated), ATOM_NS)
    etree.SubElement(feed, f"{{{ATOM_NS}}}link", rel="self", type="application/atom+xml",
                     href=safe_text(self_url))
    _add(_add(feed, "author", ns=ATOM_NS), "name", author, ATOM_NS)
    for entry in entries:
        el = _add(feed, "entry", ns=ATOM_NS)
        _add(el, "id", entry.id, ATOM_NS)
        _add(el, "title", entry.title, ATOM_NS)
        _add(el, "updated", cap_time(entry.updated), ATOM_NS)
        etree.SubElement(el, f"{{{ATOM_NS}}}link", rel="alternate", type=CAP_MIME,
                         href=safe_text(entry.cap_url))
        _add(el, "summary", entry.summary, ATOM_NS)
    return etree.tostring(feed, xml_declaration=True, encoding="UTF-8", pretty_print=True)
