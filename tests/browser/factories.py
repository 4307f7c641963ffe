"""Rows the browser tests start from: villages with their coordinates, reporters with a
kept number, confirmed alerts. Each in one call, committed, as the pages will read them."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from service import reporters
from service.models import Alert, Place

# villages of Nord-Kivu and Ituri where they are (coordinates rounded), under keys of these tests
KIWANJA = dict(key="gn:kiwanja", name="Kiwanja", lat=-1.05, lon=29.45, admin2=("CD6104", "Rutshuru"))
RUBARE = dict(key="gn:rubare", name="Rubare", lat=-1.10, lon=29.40, admin2=("CD6104", "Rutshuru"))
OICHA = dict(key="gn:oicha", name="Oicha", lat=0.70, lon=29.52, admin2=("CD6102", "Beni"))
BUNIA = dict(key="gn:bunia", name="Bunia", lat=1.56, lon=30.25, admin1=("CD54", "Ituri"),
             admin2=("CD5401", "Djugu"))


def place(db, key: str, name: str, lat=None, lon=None, admin1=("CD61", "Nord-Kivu"),
          admin2=("CD6104", "Rutshuru"), level: str = "locality") -> int:
    row = Place(key=key, name=name, level=level, lat=lat, lon=lon, admin1_pcode=admin1[0], admin1_name=admin1[1],
                admin2_pcode=admin2[0], admin2_name=admin2[1])
    db.add(row)
    db.commit()
    return row.id


def reporter(db, live, number: str, language: str | None = None) -> int:
    """A reporter whose number is kept (encrypted), as after their first SMS."""
    row = reporters.seen(db, live.app.extensions["identity"], number)
    row.language = language
    db.commit()
    return row.id


def alert(db, category: str = "ATTACK", status: str = "new", hours_ago: float = 1, **fields) -> int:
    when = datetime.now(timezone.utc) - timedelta(hours=hours_ago)
    row = Alert(category=category, status=status, channel=fields.pop("channel", "sms"), created_at=when,
                submitted_at=when, **fields)
    db.add(row)
    db.commit()
    return row.id
