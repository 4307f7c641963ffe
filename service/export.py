"""CSV export of alerts for other early-warning and humanitarian tools, with HXL hashtags.

Row 1 is the human header, row 2 the HXL hashtags of docs/DOMAIN.md, exactly those
columns. Never a number, a reporter key or a reference a reporter could be matched by
(#meta +id is our alert id). Places are the gazetteer's (a village's published point,
never a phone's position). The free description can name people: its column is kept
empty unless the caller asks for it (by role), and then phone numbers are masked.
Sexual violence is left out unless the caller may see it (`include_restricted`).
A cell starting with = + - @ (or a tab or carriage return) gets a leading quote, so a
spreadsheet never runs it as a formula; numbers (a negative latitude) stay numbers.
"""

from __future__ import annotations

import csv
import io
import re
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Iterator, Mapping

from sqlalchemy import select
from sqlalchemy.orm import Session

from bot.categories import BY_CODE
from bot.parsing import EAST
from service import reporters
from service.logging import REDACTED, redact
from service.models import Alert, Place
from service.triage import TRIAGE_STATUSES

COLUMNS = (
    ("Date", "#date +occurred"),
    ("Province", "#adm1 +name"),
    ("Territory p-code", "#adm2 +code"),
    ("Place", "#loc +name"),
    ("Latitude", "#geo +lat"),
    ("Longitude", "#geo +lon"),
    ("Category", "#event +type"),
    ("People killed, hurt or taken", "#affected +killed"),
    ("Armed group", "#group +name"),
    ("Description", "#description"),
    ("Id", "#meta +id"),
)
HEADER = tuple(c[0] for c in COLUMNS)
HXL = tuple(c[1] for c in COLUMNS)
STATUSES = TRIAGE_STATUSES  # never "draft": a report not yet confirmed
CHANNELS = ("sms", "voice", "operator")
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
SPACED_NUMBER = re.compile(r"\+?\d(?:[ .\-]?\d){8,14}")  # "+243 99 000 0001", "099-000-0001"


@dataclass
class Filters:
    """The alerts API's filters (service/api.py), for exports and the console."""

    category: str | None = None
    status: str | None = None
    channel: str | None = None
    language: str | None = None
    since: datetime | None = None  # created_at, like the API
    until: datetime | None = None
    province: str | None = None  # adm1 p-code
    territory: str | None = None  # adm2 p-code

    @classmethod
    def from_args(cls, args: Mapping[str, str]) -> "Filters":
        """From query arguments; ValueError with a message for the caller to show."""
        found = cls()
        if args.get("category"):
            found.category = args["category"].strip().upper()
            if found.category not in BY_CODE:
                raise ValueError(f"unknown category; one of {', '.join(BY_CODE)}")
        if args.get("status"):
            found.status = args["status"].strip()
            if found.status not in STATUSES:
                raise ValueError(f"status must be one of {', '.join(STATUSES)}")
        if args.get("channel"):
            found.channel = args["channel"].strip()
            if found.channel not in CHANNELS:
                raise ValueError(f"channel must be one of {', '.join(CHANNELS)}")
        if args.get("language"):
            found.language = args["language"].strip()
        for name in ("since", "until"):
            if args.get(name):
                try:
                    setattr(found, name, _when(args[name]))
                except ValueError:
                    raise ValueError(f"{name} must be an ISO 8601 date or time") from None
        found.province = (args.get("province") or args.get("admin1") or "").strip().upper() or None
        found.territory = (args.get("territory") or args.get("admin2") or "").strip().upper() or None
        return found

    def apply(self, query):
        if self.category:
            query = query.where(Alert.category == self.category)
        if self.status:
            query = query.where(Alert.status == self.status)
        if self.channel:
            query = query.where(Alert.channel == self.channel)
        if self.language:
            query = query.where(Alert.language == self.language)
        if self.since:
            query = query.where(Alert.created_at >= self.since)
        if self.until:
            query = query.where(Alert.created_at < self.until)
        if self.province:
            query = query.where((Place.admin1_pcode == self.province) | (Place.key == self.province))
        if self.territory:
            query = query.where((Place.admin2_pcode == self.territory) | (Place.key == self.territory))
        return query


def _when(raw: str) -> datetime:
    value = datetime.fromisoformat(raw.strip().replace("Z", "+00:00"))
    return value if value.tzinfo else value.replace(tzinfo=timezone.utc)


def safe(value) -> str | int | float:
    """A cell a spreadsheet shows as text, never runs (module docstring)."""
    if value is None:
        return ""
    if isinstance(value, (int, float)):
        return value
    text = str(value)
    return "'" + text if text.startswith(FORMULA_START) else text


def masked(text: str) -> str:
    """A description with anything like a phone number masked, written with spaces or not."""
    return SPACED_NUMBER.sub(REDACTED, redact(text))


def row_of(alert: Alert, place: Place | None, include_descriptions: bool = False) -> list:
    occurred = alert.occurred_at
    territory = None
    if place is not None:
        territory = place.key if place.level == "adm2" else place.admin2_pcode
    cells = [
        _utc(occurred).astimezone(EAST).date().isoformat() if occurred else None,
        place.admin1_name if place is not None else None,
        territory,
        place.name if place is not None and place.level == "locality" else None,
        place.lat if place is not None else None,
        place.lon if place is not None else None,
        alert.category,
        alert.people_affected,
        alert.perpetrator,
        masked(alert.description) if include_descriptions and alert.description else None,
        alert.id,
    ]
    return [safe(c) for c in cells]


def rows(session: Session, filters: Filters | None = None, include_restricted: bool = False,
         include_descriptions: bool = False, batch: int = 500) -> Iterator[list]:
    """The header, the hashtags, then one row per alert (oldest first), read in batches."""
    yield list(HEADER)
    yield list(HXL)
    query = reporters.real_alerts(select(Alert, Place).outerjoin(Place, Alert.place_id == Place.id)
                                  .where(Alert.status != "draft"))  # never the console simulator's
    if not include_restricted:
        hidden = [c.code for c in BY_CODE.values() if c.restricted]
        query = query.where(Alert.category.is_(None) | Alert.category.not_in(hidden))
    query = (filters or Filters()).apply(query).order_by(Alert.id)
    for alert, place in session.execute(query.execution_options(yield_per=batch)):
        yield row_of(alert, place, include_descriptions)


def lines(session: Session, **kwargs) -> Iterator[str]:
    """The CSV text, line by line, for a streamed response."""
    out = io.StringIO()
    writer = csv.writer(out)
    for row in rows(session, **kwargs):
        writer.writerow(row)
        yield out.getvalue()
        out.seek(0)
        out.truncate()


def to_csv(session: Session, **kwargs) -> str:
    return "".join(lines(session, **kwargs))


def _utc(value: datetime) -> datetime:
    return value.replace(tzinfo=timezone.utc) if value.tzinfo is None else value.astimezone(timezone.utc)
