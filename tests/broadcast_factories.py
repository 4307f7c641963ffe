"""Small factories for broadcast tests: a subscriber in one call, a broadcast request."""

from __future__ import annotations

from bot.places import default_gazetteer
from service import reporters
from service.models import Group, Subscriber, utcnow

API_HEADERS = {"Authorization": "Bearer test-api-token"}
BENI = "gn:219057"  # Beni town, Nord-Kivu
KAMANGO = "gn:214718"  # Kamango, Beni territory (not its namesake in Maniema)
GOMA = "gn:216281"
BUNIA = "gn:217695"
BUKAVU = "gn:217831"
TEXTS = {"fr": "Route Beni-Kasindi dangereuse ce soir. Restez chez vous.",
         "sw": "Barabara Beni-Kasindi ni hatari leo usiku. Bakia nyumbani.",
         "ln": "Nzela Beni-Kasindi ezali na likama lelo na butu. Bofanda na ndako."}


def subscriber(session, identity, number: str, language: str | None, place_key: str, *, groups=(),
               channel: str = "twilio", status: str = "active", opted_out: bool = False) -> Subscriber:
    reporter = reporters.seen(session, identity, number)
    reporter.opted_out = opted_out
    record = default_gazetteer().get(place_key)
    row = Subscriber(reporter_id=reporter.id, status=status, language=language, place_key=record.key,
                     place_name=record.name, admin1_pcode=record.admin1_pcode,
                     admin2_pcode=record.admin2_pcode, lat=record.lat, lon=record.lon, channel=channel,
                     consent_at=utcnow(), consent_method="api", consent_note="test", source="test")
    for name in groups:
        group = session.query(Group).filter_by(name=name).one_or_none() or Group(name=name)
        row.groups.append(group)
    session.add(row)
    session.commit()
    return row


def request(**fields) -> dict:
    body = {"texts": dict(TEXTS), "targets": {"all": True}, "priority": "urgent", "status": "Actual"}
    body.update(fields)
    return body
