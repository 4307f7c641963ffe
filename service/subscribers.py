"""Subscribers to safety broadcasts: subscribe, leave, groups, counts; the CLI
`alerte subscribers import|counts` (the CSV import itself: service/subscriber_import.py).

A subscriber is a reporter who chose to receive warnings: their number stays the reporter's
(encrypted, never in clear here), their place is copied from the gazetteer so targeting is
one query. Consent is the basis for keeping an active subscriber's number past the usual
retention; opting out (STOP) stays the reporter's and is honoured at send time, so nothing
here ever opts anyone back in. Reports, errors and counts never carry a number.
"""

from __future__ import annotations

import json
import logging
import re
import sys
import unicodedata
from pathlib import Path
from typing import Iterable

from sqlalchemy import and_, func, insert, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from bot.languages import LANGUAGES, NATIVE_NAMES, normalise as normalise_language
from bot.places import Gazetteer, PlaceRecord, default_gazetteer
from service import reporters
from service.models import Group, Reporter, Subscriber, subscriber_groups, utcnow
from service.privacy import Identity

log = logging.getLogger(__name__)

STATUSES = ("pending", "active", "left")
CONSENT_METHODS = ("sms", "import", "api")
GROUP_NAME_MAX = 64
DESCRIPTION_MAX = 200
NOTE_MAX = 200
SOURCE_MAX = 64
PLACE_KEY = re.compile(r"^(cd\d{2,}|gn:\d+|x:[a-z0-9-]+)$", re.IGNORECASE)
DIGIT_RUN = re.compile(r"\d{6,}")


def _fold(text: str) -> str:
    text = unicodedata.normalize("NFKD", text or "")
    return "".join(c for c in text if not unicodedata.combining(c)).strip().lower()


LANGUAGE_NAMES = {**{_fold(name): code for code, name in NATIVE_NAMES.items()},
                  "francais": "fr", "french": "fr", "swahili": "sw", "kiswahili": "sw", "lingala": "ln"}


class Invalid(ValueError):
    """A value we cannot store, named by its field; the message never holds a number."""

    def __init__(self, field_name: str, message: str):
        super().__init__(f"{field_name}: {message}")
        self.field = field_name


def shown(value: str) -> str:
    """A cell as an error or a report may echo it: not if it looks like a phone number
    (a column mix-up)."""
    return "(a value that looks like a number)" if DIGIT_RUN.search(value or "") else value


def quoted(value: str) -> str:
    shown_value = shown(value)
    return shown_value if shown_value != value else repr(value)


# --- places and languages -----------------------------------------------------------------

def place_fields(record: PlaceRecord | None) -> dict:
    """The subscriber's place columns from a gazetteer record; coordinates only where the
    gazetteer has them."""
    if record is None:
        return dict.fromkeys(("place_key", "place_name", "admin1_pcode", "admin2_pcode", "lat", "lon"))
    admin2 = record.key if record.level == "adm2" else record.admin2_pcode if record.level == "locality" else None
    return {"place_key": record.key, "place_name": record.name,
            "admin1_pcode": record.key if record.level == "adm1" else record.admin1_pcode,
            "admin2_pcode": admin2, "lat": record.lat, "lon": record.lon}


def describe(record: PlaceRecord) -> str:
    """A candidate as an operator can tell it apart: name, territory, province, key."""
    if record.level == "adm1":
        return f"{record.name} (province) {record.key}"
    if record.level == "adm2":
        return f"{record.name} (territory, {record.admin1_name}) {record.key}"
    where = ", ".join(filter(None, (record.admin2_name and f"territory {record.admin2_name}", record.admin1_name)))
    return f"{record.name} ({where}) {record.key}"


def find_place(name_or_key: str | None, gazetteer: Gazetteer | None = None) -> tuple[PlaceRecord | None, str | None]:
    """A place by key (CD6102, gn:123, x:slug) or by name; else None and why, naming the
    candidates of an ambiguous name so the operator can give its key."""
    gazetteer = gazetteer or default_gazetteer()
    text = (name_or_key or "").strip()
    if not text:
        return None, "no place given"
    if PLACE_KEY.match(text):
        record = gazetteer.get(text.upper() if text[:2].lower() == "cd" else text.lower())
        return (record, None) if record else (None, f"no place has the key {quoted(text)}")
    resolution = gazetteer.resolve(text)
    if resolution.status == "found":
        return resolution.place, None
    if resolution.status == "ambiguous":
        return None, (f"{quoted(text)} could be " + "; ".join(describe(c) for c in resolution.candidates)
                      + ": give the key of the one meant")
    return None, f"unknown place {quoted(text)}"


def parse_language(value: str | None) -> str | None:
    """fr, sw or ln from a code (fr, fr_CD, swc...) or a name (français, Kiswahili, lingala)."""
    text = _fold(value or "")
    if not text:
        return None
    code = normalise_language(text) or LANGUAGE_NAMES.get(text)
    if code is None:
        raise Invalid("language", f"unknown language {quoted(value.strip())}; one of {', '.join(LANGUAGES)} "
                                  "(or français, swahili, lingala)")
    return code


# --- groups -------------------------------------------------------------------------------

def group_name(name) -> str:
    """A group's name as stored: trimmed, 1 to 64 characters."""
    text = name.strip() if isinstance(name, str) else ""
    if not text or len(text) > GROUP_NAME_MAX:
        raise Invalid("groups", f"a group name has 1 to {GROUP_NAME_MAX} characters")
    return text


def find_group(session: Session, name: str) -> Group | None:
    """The group of that name, compared case-insensitively in Python (SQLite's lower()
    knows only ASCII, and groups are few)."""
    wanted = name.strip().casefold()
    return next((g for g in session.scalars(select(Group)) if g.name.casefold() == wanted), None)


def ensure_group(session: Session, name: str, description: str | None = None) -> Group:
    """The group of that name, created if there is none."""
    name = group_name(name)
    if description is not None and len(description) > DESCRIPTION_MAX:
        raise Invalid("description", f"at most {DESCRIPTION_MAX} characters")
    group = find_group(session, name)
    if group is not None:
        return group
    group = Group(name=name, description=description)
    try:
        with session.begin_nested():
            session.add(group)
            session.flush()
    except IntegrityError:  # created at the same moment elsewhere
        group = session.scalar(select(Group).where(Group.name == name))
    return group


def add_to_group(session: Session, group: Group, subscriber_ids: Iterable[int]) -> dict:
    """Add subscribers to a group by id: {"added", "already", "unknown": [ids]}."""
    ids = sorted({int(i) for i in subscriber_ids})
    known, members = set(), set()
    for start in range(0, len(ids), 500):
        chunk = ids[start:start + 500]
        known |= set(session.scalars(select(Subscriber.id).where(Subscriber.id.in_(chunk))))
        members |= set(session.scalars(select(subscriber_groups.c.subscriber_id).where(
            subscriber_groups.c.group_id == group.id, subscriber_groups.c.subscriber_id.in_(chunk))))
    new = [i for i in ids if i in known and i not in members]
    if new:
        session.execute(insert(subscriber_groups), [{"subscriber_id": i, "group_id": group.id} for i in new])
    return {"added": len(new), "already": len(members), "unknown": [i for i in ids if i not in known]}


def group_names(session: Session, subscriber_ids: list[int]) -> dict[int, list[str]]:
    """Each subscriber's group names, in one query for a page of subscribers."""
    names: dict[int, list[str]] = {i: [] for i in subscriber_ids}
    if subscriber_ids:
        rows = session.execute(select(subscriber_groups.c.subscriber_id, Group.name)
                               .join(Group, Group.id == subscriber_groups.c.group_id)
                               .where(subscriber_groups.c.subscriber_id.in_(subscriber_ids)).order_by(Group.name))
        for subscriber_id, name in rows:
            names[subscriber_id].append(name)
    return names


# --- subscribing --------------------------------------------------------------------------

def subscription(session: Session, reporter: Reporter) -> Subscriber | None:
    return session.scalar(select(Subscriber).where(Subscriber.reporter_id == reporter.id))


def subscribe(session: Session, reporter: Reporter, *, language: str | None, place: PlaceRecord | None,
              channel: str | None, consent_method: str, consent_note: str | None, source: str | None,
              groups: Iterable[str | Group] = ()) -> Subscriber:
    """Make the reporter an active subscriber, consenting now. On an existing subscription
    (a left one too) a None language, place or channel keeps what it has; groups are added
    to theirs. Opt-out is not touched: STOP stays honoured at send time.

    Args:
        consent_method: sms | import | api; import and api need a consent_note saying who
            collected consent and how.
    """
    note = checked_consent(consent_method, consent_note)
    if language is not None and language not in LANGUAGES:
        raise Invalid("language", f"one of {', '.join(LANGUAGES)}")
    wanted = [g if isinstance(g, Group) else group_name(g) for g in groups]  # all checked before any write
    subscriber = subscription(session, reporter)
    if subscriber is None:
        subscriber = Subscriber(reporter_id=reporter.id, status="active")
        try:
            with session.begin_nested():
                session.add(subscriber)
                session.flush()
        except IntegrityError:  # the same person subscribed at the same moment elsewhere
            subscriber = subscription(session, reporter)
    consent_now(subscriber, consent_method, note, source, language=language, place=place, channel=channel)
    for item in wanted:
        group = item if isinstance(item, Group) else ensure_group(session, item)
        if group not in subscriber.groups:
            subscriber.groups.append(group)
    session.flush()
    return subscriber


def checked_consent(method: str, note: str | None) -> str:
    if method not in CONSENT_METHODS:
        raise Invalid("consent_method", f"one of {', '.join(CONSENT_METHODS)}")
    note = (note or "").strip()
    if method != "sms" and not note:
        raise Invalid("consent_note", "required: who collected consent and how")
    if len(note) > NOTE_MAX:
        raise Invalid("consent_note", f"at most {NOTE_MAX} characters")
    return note


def consent_now(subscriber: Subscriber, method: str, note: str, source: str | None, *, language: str | None,
             place: PlaceRecord | None, channel: str | None) -> None:
    """Active, consenting now; a None language, place or channel keeps what it has."""
    subscriber.status = "active"
    subscriber.consent_at = utcnow()
    subscriber.consent_method = method
    subscriber.consent_note = note or None
    subscriber.source = (source or method)[:SOURCE_MAX]
    if language is not None:
        subscriber.language = language
    if place is not None:
        for name, value in place_fields(place).items():
            setattr(subscriber, name, value)
    if channel:
        subscriber.channel = channel


def enrol(session: Session, identity: Identity, channels, number: str, **fields) -> tuple[Subscriber, bool]:
    """Subscribe the person behind a number (E.164), created as a reporter if new; returns
    the subscription and whether it is new. Without a channel given, an existing one that
    is still configured stays, else the channel for the recipient's network."""
    reporter = reporters.seen(session, identity, number)
    created = subscription(session, reporter) is None
    subscriber = subscribe(session, reporter, **fields)
    if not subscriber.channel or subscriber.channel not in channels:
        subscriber.channel = channels.for_recipient(number).name
    return subscriber, created


def leave(session: Session, subscriber: Subscriber) -> None:
    """No more broadcasts; the number's usual retention (from the last contact) applies again."""
    subscriber.status = "left"
    session.flush()


def as_json(subscriber: Subscriber, opted_out: bool, groups: list[str]) -> dict:
    """A subscription as the API shows it: never the number, never the reporter key."""
    return {"id": subscriber.id, "status": subscriber.status, "language": subscriber.language,
            "place": {"key": subscriber.place_key, "name": subscriber.place_name,
                      "admin1": subscriber.admin1_pcode, "admin2": subscriber.admin2_pcode},
            "groups": groups, "channel": subscriber.channel,
            "consent": {"at": _iso(subscriber.consent_at), "method": subscriber.consent_method},
            "opted_out": bool(opted_out), "created_at": _iso(subscriber.created_at)}


def _iso(value):
    return None if value is None else reporters.aware(value).isoformat()


# --- counts -------------------------------------------------------------------------------

def counts(session: Session, gazetteer: Gazetteer | None = None) -> dict:
    """How many subscribers, by status and, for the active ones, by language, province,
    territory and group; GROUP BY queries only. opted_out: active but said STOP."""
    gazetteer = gazetteer or default_gazetteer()
    active = Subscriber.status == "active"
    by_status = dict(session.execute(select(Subscriber.status, func.count()).group_by(Subscriber.status)).all())
    opted_out = session.scalar(select(func.count()).select_from(Subscriber)
                               .join(Reporter, Reporter.id == Subscriber.reporter_id)
                               .where(active, Reporter.opted_out.is_(True)))

    def by(column):
        return session.execute(select(column, func.count()).where(active).group_by(column)
                               .order_by(func.count().desc(), column)).all()

    def unit(pcode, count, **extra):
        record = gazetteer.get(pcode)
        return {"pcode": pcode, "name": record.name if record else None, **extra, "count": count}

    groups = session.execute(
        select(Group.id, Group.name, func.count(Subscriber.id)).select_from(Group)
        .outerjoin(subscriber_groups, subscriber_groups.c.group_id == Group.id)
        .outerjoin(Subscriber, and_(Subscriber.id == subscriber_groups.c.subscriber_id, active))
        .group_by(Group.id, Group.name).order_by(Group.name)).all()
    return {
        "active": by_status.get("active", 0), "pending": by_status.get("pending", 0),
        "left": by_status.get("left", 0), "opted_out": opted_out or 0,
        "by_language": {language or "none": count for language, count in by(Subscriber.language)},
        "by_province": [unit(pcode, count) for pcode, count in by(Subscriber.admin1_pcode)],
        "by_territory": [unit(pcode, count, province=(gazetteer.get(pcode).admin1_pcode if gazetteer.get(pcode)
                                                      else None)) for pcode, count in by(Subscriber.admin2_pcode)],
        "by_group": [{"id": gid, "name": name, "count": count} for gid, name, count in groups],
    }


# --- command line -------------------------------------------------------------------------

def cli(parser):
    sub = parser.add_subparsers(dest="subscribers_command", required=True)
    imp = sub.add_parser("import", help="subscribe everyone in a CSV file (phone, language, place, groups, channel)")
    imp.add_argument("file")
    imp.add_argument("--consent-note", required=True,
                     help='who collected consent and how, e.g. "Protection committee Beni, paper form 2026-11"')
    imp.add_argument("--source", help="where the list comes from (default: csv:<file name>)")
    sub.add_parser("counts", help="subscribers by status, language, province, territory and group (JSON)")
    return _run


def _run(args) -> int:
    from service.app import create_app  # the CLI builds the web app; the domain functions do not need it
    from service.db import get_session
    from service.privacy import identity

    text = None
    if args.subscribers_command == "import":
        if not args.consent_note.strip():
            print("alerte subscribers: --consent-note must say who collected consent and how", file=sys.stderr)
            return 2
        try:
            text = Path(args.file).read_bytes().decode("utf-8")
        except OSError as exc:
            print(f"alerte subscribers: {exc}", file=sys.stderr)
            return 2
        except UnicodeDecodeError:
            print(f"alerte subscribers: {args.file} is not UTF-8 text", file=sys.stderr)
            return 2
    app = create_app()
    with app.app_context():
        session = get_session()
        if text is None:
            print(json.dumps(counts(session), ensure_ascii=False, indent=2))
            return 0
        from service.subscriber_import import import_csv

        report = import_csv(session, identity(), app.extensions["channels"], text,
                            source=args.source or f"csv:{Path(args.file).name}", consent_note=args.consent_note)
    print("\n".join(report.lines()))
    return 0
