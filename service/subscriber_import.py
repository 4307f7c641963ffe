"""Subscribers from a CSV file (focal points, protection committee members collected by
operators): every row checked first and rejected by line number, without its number;
a bad header or a file over MAX_ROWS imports nothing; the rest written BATCH rows per
transaction in a few statements (row by row when someone signs up meanwhile). Opt-out
is never undone by an import. Used by POST /api/v1/subscribers (text/csv) and
`alerte subscribers import`.
"""

from __future__ import annotations

import csv
import io
import logging
import re
from dataclasses import asdict, dataclass, field

from sqlalchemy import insert, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from bot.places import Gazetteer, default_gazetteer
from service import reporters
from service.models import Group, Reporter, Subscriber, subscriber_groups, utcnow
from service.privacy import Identity, InvalidNumber, normalise
from service.subscribers import (
    Invalid, _fold, checked_consent, consent_now, enrol, ensure_group, find_place, group_name, parse_language,
    quoted, shown,
)

log = logging.getLogger(__name__)
MAX_ROWS = 100_000  # a file with more is refused whole: split it
BATCH = 500  # rows per transaction of an import
# how a CSV column may be headed (folded: lower case, no accents) -> our name
COLUMNS = {"phone": "phone", "telephone": "phone", "tel": "phone", "numero": "phone",
           "language": "language", "langue": "language", "place": "place", "lieu": "place",
           "groups": "groups", "group": "groups", "groupes": "groups", "groupe": "groups",
           "channel": "channel", "canal": "channel"}


@dataclass
class ImportReport:
    created: int = 0
    updated: int = 0
    rejected: list[dict] = field(default_factory=list)  # {"row": line number, "reason": text}
    opted_out: int = 0  # imported people who had said STOP: subscribed, not sent to until START
    ignored_columns: list[str] = field(default_factory=list)

    def as_json(self) -> dict:
        return asdict(self)

    def lines(self) -> list[str]:
        out = [f"created: {self.created}", f"updated: {self.updated}", f"rejected: {len(self.rejected)}",
               f"opted out (kept so, not sent to): {self.opted_out}"]
        if self.ignored_columns:
            out.append("ignored columns: " + ", ".join(self.ignored_columns))
        return out + [f"line {r['row']}: {r['reason']}" for r in self.rejected]


class BadFile(ValueError):
    """The file as a whole cannot be imported (header, size, CSV syntax); nothing is."""

    def __init__(self, line: int, message: str):
        super().__init__(message)
        self.line = line


def _read(text: str) -> tuple[dict[str, int], int, list[str], list[tuple[int, list[str]]]]:
    """(our column -> index, header width, ignored header names, [(line number, cells)]) of a CSV text
    with or without BOM, its delimiter (comma or semicolon) taken from the header line."""
    text = text.lstrip("\ufeff")
    first = text.split("\n", 1)[0]
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=";" if first.count(";") > first.count(",") else ",")
    try:
        header = next(reader, None)
        if not header or not any(h.strip() for h in header):
            raise BadFile(1, "bad header: the file is empty or its first line is blank")
        columns, ignored = {}, []
        for i, name in enumerate(header):
            ours = COLUMNS.get(_fold(name))
            if ours is None:
                ignored += [shown(name.strip())] if name.strip() else []
            elif ours in columns:
                raise BadFile(1, f"bad header: two columns are {ours}")
            else:
                columns[ours] = i
        if "phone" not in columns:
            raise BadFile(1, "bad header: no phone column (columns: phone, language, place, groups, channel)")
        rows = []
        for cells in reader:
            if any(c.strip() for c in cells):
                rows.append((reader.line_num, cells))
                if len(rows) > MAX_ROWS:
                    raise BadFile(reader.line_num, f"more than {MAX_ROWS} rows: nothing imported; split the file")
    except csv.Error as exc:
        raise BadFile(reader.line_num, f"not readable as CSV ({exc}): nothing imported") from None
    return columns, len(header), ignored, rows


def import_csv(session: Session, identity: Identity, channels, text: str, *, source: str, consent_note: str,
               gazetteer: Gazetteer | None = None, batch: int = BATCH) -> ImportReport:
    """Subscribe everyone in a CSV (phone, language, place, groups, channel), consent
    collected outside by whoever `consent_note` names. Every row is checked before it is
    written; a bad row is reported by line number and skipped. Written and committed
    `batch` rows at a time (a few queries per batch, not per row), so a large file is never
    one long transaction; importing it again is safe (its rows become updates)."""
    note = checked_consent("import", consent_note)
    gazetteer = gazetteer or default_gazetteer()
    report = ImportReport()
    try:
        columns, width, report.ignored_columns, rows = _read(text)
    except BadFile as exc:
        report.rejected.append({"row": exc.line, "reason": str(exc)})
        return report
    first_row_of: dict[str, int] = {}  # the number's key -> the line it first appeared on
    places: dict[str, tuple] = {}
    groups: dict[str, Group] = {}
    checked: list[tuple[str, dict]] = []
    for line, cells in rows:
        values = {name: (cells[i].strip() if i < len(cells) else "") for name, i in columns.items()}
        try:
            if any(c.strip() for c in cells[width:]):
                raise Invalid("row", "more cells than the header has columns")
            e164, fields = _check_row(values, identity, channels, gazetteer, places, first_row_of, line)
        except Invalid as exc:
            report.rejected.append({"row": line, "reason": str(exc)})
            continue
        for i, name in enumerate(fields["groups"]):
            if name.casefold() not in groups:
                groups[name.casefold()] = ensure_group(session, name)
            fields["groups"][i] = groups[name.casefold()]
        checked.append((e164, fields))
        if len(checked) == batch:
            _write(session, identity, channels, checked, note, source, report)
            session.commit()
            checked = []
    if checked:
        _write(session, identity, channels, checked, note, source, report)
    session.commit()
    log.info("subscribers import (%s): %d created, %d updated, %d rejected", source, report.created,
             report.updated, len(report.rejected))
    return report


def _write(session: Session, identity: Identity, channels, checked: list[tuple[str, dict]], note: str,
           source: str, report: ImportReport) -> None:
    """Subscribe a batch of checked rows (numbers unique within it): reporters, then
    subscriptions, then group memberships, each in one or two statements. Someone who
    writes to us or signs up by SMS during the import makes a batch insert fail: that
    batch is then written one row at a time, which copes with it."""
    people = _reporters_for(session, identity, [e164 for e164, _ in checked])
    existing = {s.reporter_id: s for s in session.scalars(
        select(Subscriber).where(Subscriber.reporter_id.in_([r.id for r in people.values()])))}
    written = []
    for e164, fields in checked:
        reporter = people[e164]
        subscriber = existing.get(reporter.id) or Subscriber(reporter_id=reporter.id)
        consent_now(subscriber, "import", note, source, language=fields["language"], place=fields["place"],
                 channel=fields["channel"])
        if not subscriber.channel or subscriber.channel not in channels:
            subscriber.channel = channels.for_recipient(e164).name
        written.append((subscriber, reporter.id not in existing, reporter, fields["groups"]))
    session.flush()  # the updates, outside the savepoint that only the inserts may need to undo
    try:
        with session.begin_nested():
            session.add_all(s for s, created, _, _ in written if created)
            session.flush()
    except IntegrityError:
        for e164, fields in checked:
            subscriber, created = enrol(session, identity, channels, e164, consent_method="import",
                                        consent_note=note, source=source, **fields)
            _count(report, created, subscriber.reporter)
        return
    links = subscriber_groups.c
    members = {(s, g) for s, g in session.execute(select(links.subscriber_id, links.group_id)
                                                   .where(links.subscriber_id.in_([s.id for s, *_ in written])))}
    new = {(s.id, g.id) for s, _, _, wanted in written for g in wanted} - members
    if new:
        session.execute(insert(subscriber_groups), [{"subscriber_id": s, "group_id": g} for s, g in sorted(new)])
    for subscriber, created, reporter, _ in written:
        _count(report, created, reporter)


def _count(report: ImportReport, created: bool, reporter: Reporter) -> None:
    if created:
        report.created += 1
    else:
        report.updated += 1
    report.opted_out += bool(reporter.opted_out)


def _reporters_for(session: Session, identity: Identity, numbers: list[str]) -> dict[str, Reporter]:
    """The reporter of each number, created if new, its kept number refreshed as
    reporters.seen() does; in one query and one insert for the batch."""
    keys = {number: identity.keys(number) for number in numbers}
    found = {r.key: r for r in session.scalars(select(Reporter).where(
        Reporter.key.in_([k for ks in keys.values() for k in ks])))}
    people, fresh, now = {}, [], utcnow()
    for number, (newest, *older) in keys.items():
        if newest not in found and any(k in found for k in older):
            people[number] = reporters.seen(session, identity, number)  # re-keyed on the same row
            continue
        reporter = found.get(newest)
        if reporter is None:
            reporter = Reporter(key=newest, opted_out=False)
            fresh.append(number)
        reporter.phone_encrypted = identity.encrypt(number)
        reporter.phone_expires_at = identity.expiry(now)
        reporter.last_seen_at = now
        people[number] = reporter
    session.flush()  # the refreshed numbers, outside the savepoint that only the inserts may need to undo
    try:
        with session.begin_nested():
            session.add_all(people[number] for number in fresh)
            session.flush()
    except IntegrityError:  # one of them wrote to us for the first time meanwhile
        for number in fresh:
            people[number] = reporters.seen(session, identity, number)
    return people


def _check_row(values: dict, identity: Identity, channels, gazetteer: Gazetteer, places: dict,
               first_row_of: dict, line: int) -> tuple[str, dict]:
    """A row's number and subscription fields, or Invalid naming the first problem."""
    if not values["phone"]:
        raise Invalid("phone", "missing")
    try:
        e164 = normalise(values["phone"])
    except InvalidNumber:
        raise Invalid("phone", "not a possible phone number") from None
    key = identity.key(e164)
    if key in first_row_of:
        raise Invalid("phone", f"the same number as line {first_row_of[key]}")
    first_row_of[key] = line
    language = parse_language(values.get("language"))
    place = None
    if values.get("place"):
        wanted = values["place"]
        if wanted.casefold() not in places:
            places[wanted.casefold()] = find_place(wanted, gazetteer)
        place, error = places[wanted.casefold()]
        if error:
            raise Invalid("place", error)
    names = [group_name(n) for n in re.split(r"[;|]", values.get("groups", "")) if n.strip()]
    channel = values.get("channel") or None
    if channel and channel not in channels:
        raise Invalid("channel", f"unknown channel {quoted(channel)}; one of {', '.join(c.name for c in channels)}")
    return e164, {"language": language, "place": place, "channel": channel, "groups": names}
