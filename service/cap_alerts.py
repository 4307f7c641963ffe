"""A broadcast as an OASIS CAP 1.2 alert, and the Atom feed of active ones.

What goes in: the texts (as written, before any transliteration), the areas named by
the targets (p-codes as geocodes, a circle for a radius) and CAP's fields. What never
does: who reported, an alert's id or details, or a point finer than a village's
(service/cap.py publishes a circle's centre to about 1 km; targeting itself uses the
exact point, which is never published).
"""

from __future__ import annotations

from datetime import datetime
from urllib.parse import urlsplit

from sqlalchemy import select

from bot import messages
from bot.languages import LANGUAGES
from bot.places import default_gazetteer
from service import cap
from service.broadcasts import aware
from service.models import Broadcast, utcnow
from service.targeting import Targets

HEADLINE = 100  # a first sentence this short is the headline when none is given


def sender(config) -> str:
    if config.get("CAP_SENDER"):
        return str(config["CAP_SENDER"])
    host = urlsplit(str(config.get("PUBLIC_BASE_URL") or "")).hostname or "localhost"
    return f"alerte@{host}"


def area_names():
    """p-code -> name, for tallies by area."""
    return _Names()


class _Names:
    def get(self, code, default=None):
        record = default_gazetteer().get(code) if code else None
        return record.name if record else default


def _areas(broadcast: Broadcast, lang: str) -> tuple:
    targets = Targets.from_json(broadcast.targets)
    names = targets.names
    areas = []
    if targets.everyone:
        areas.append(cap.Area(messages.text("cap.all_areas", lang)))
    for code in targets.provinces + targets.territories:
        areas.append(cap.Area(names.get(code, code), geocodes=((cap.PCODE, code),)))
    gazetteer = default_gazetteer()
    for key in targets.localities:
        record = gazetteer.get(key)
        where = ", ".join(n for n in (names.get(key, key), record.admin2_name if record else None) if n)
        # a locality has no p-code of its own: its GeoNames id where it has one (never
        # its territory's p-code, which would name the whole territory)
        geocodes = (("GeoNames", key[3:]),) if key.startswith("gn:") else ()
        areas.append(cap.Area(where, geocodes=geocodes))
    if targets.radius:
        radius = targets.radius
        around = radius.get("place") or f"{radius['lat']:.2f}, {radius['lon']:.2f}"
        areas.append(cap.Area(f"{radius['km']:g} km: {around}", circles=((radius["lat"], radius["lon"], radius["km"]),)))
    return tuple(areas)


def to_cap(broadcast: Broadcast, config, web: str | None = None) -> cap.CapAlert:
    options = broadcast.cap or {}
    texts = broadcast.original_texts or broadcast.texts
    infos = []
    for lang in sorted(texts, key=lambda code: LANGUAGES.index(code) if code in LANGUAGES else len(LANGUAGES)):
        text = texts[lang]
        headline = (options.get("headline") or {}).get(lang) or _headline(text)
        instruction = (options.get("instruction") or {}).get(lang) or text
        infos.append(cap.Info(language=lang, event=messages.text("cap.event", lang),
                              urgency=options.get("urgency", "Expected"), severity=options.get("severity", "Moderate"),
                              certainty=options.get("certainty", "Likely"), headline=headline, description=text,
                              instruction=instruction, expires=aware(broadcast.expires_at),
                              sender_name=messages.text("cap.sender_name", lang), areas=_areas(broadcast, lang),
                              web=web))
    sent = aware(broadcast.started_at or broadcast.send_at)
    if broadcast.state == "canceled":
        original = f"{sender(config)},{broadcast.identifier},{cap.cap_time(sent)}"
        return cap.CapAlert(identifier=f"{broadcast.identifier}-cancel", sender=sender(config),
                            sent=aware(broadcast.canceled_at) or utcnow(), status=broadcast.cap_status,
                            msg_type="Cancel", scope="Public", infos=tuple(infos), references=original)
    return cap.CapAlert(identifier=broadcast.identifier, sender=sender(config), sent=sent,
                        status=broadcast.cap_status, msg_type="Alert", scope="Public", infos=tuple(infos))


def _headline(text: str) -> str:
    """The text's first sentence when it is short, cut as CAP headlines are (cap.headline)."""
    first = text.split("\n")[0].strip()
    for stop in (". ", "! ", "? "):
        if stop in first[:HEADLINE]:
            first = first[:first.index(stop) + 1]
            break
    return cap.headline(first)


def document(broadcast: Broadcast, config, web: str | None = None) -> bytes:
    return cap.alert_xml(to_cap(broadcast, config, web))


def active(session, now: datetime | None = None) -> list[Broadcast]:
    """Broadcasts in effect: started or sent, not expired, not canceled; newest first."""
    now = now or utcnow()
    return list(session.scalars(select(Broadcast).where(
        Broadcast.state.in_(("sending", "sent")), Broadcast.expires_at > now, Broadcast.send_at <= now)
        .order_by(Broadcast.send_at.desc(), Broadcast.id.desc()).limit(200)))


def feed(session, config, cap_url_for) -> bytes:
    now = utcnow()
    entries = []
    for broadcast in active(session, now):
        alert = to_cap(broadcast, config)
        first = alert.infos[0]
        entries.append(cap.FeedEntry(id=f"urn:cap:{alert.sender}:{alert.identifier}", title=first.headline,
                                     updated=aware(broadcast.started_at or broadcast.send_at),
                                     cap_url=_absolute(config, cap_url_for(broadcast)), summary=first.description))
    base = str(config.get("PUBLIC_BASE_URL") or "").rstrip("/")
    return cap.atom_feed(entries, feed_id=f"urn:cap-feed:{sender(config)}", title="Alerte: active safety warnings",
                         self_url=base + "/api/v1/cap/feed", updated=entries[0].updated if entries else now)


def _absolute(config, path: str) -> str:
    return path if "://" in path else str(config.get("PUBLIC_BASE_URL") or "").rstrip("/") + path
