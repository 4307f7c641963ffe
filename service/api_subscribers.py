"""JSON API for broadcast subscribers and their groups (service/subscribers.py holds the rules).

Never a number and never a reporter key in an answer or an error: a subscriber is shown by
id, place, language, groups and consent.
"""

from __future__ import annotations

from flask import Blueprint, current_app, jsonify, request
from sqlalchemy import case, func, select

from bot.languages import LANGUAGES
from service import api, subscriber_import, subscribers
from service.db import get_session
from service.models import Group, Reporter, Subscriber, subscriber_groups
from service.privacy import InvalidNumber, identity, normalise

bp = Blueprint("api_subscribers", __name__)
bp.before_request(api.require_token)
_error = api._error

CSV_MAX_BYTES = 16 * 1024 * 1024  # a CSV import may be far above the app's MAX_CONTENT_LENGTH
MAX_MEMBER_IDS = 10_000
JSON_SHAPE = ('send JSON {"phone", "language", "place", "groups": [...], "consent_note", "channel"?}, '
              "or a CSV with Content-Type: text/csv and ?consent_note=")


def _unit(value: str, level: str) -> str:
    """A province (adm1) or territory (adm2) filter by p-code or by name, as its p-code."""
    record, error = subscribers.find_place(value)
    if record is None or record.level != level:
        kind = "province" if level == "adm1" else "territory"
        raise subscribers.Invalid(kind, error or f"{subscribers.quoted(value)} is not a {kind}")
    return record.key


@bp.get("/api/v1/subscribers")
def list_subscribers():
    session, args = get_session(), request.args
    query = select(Subscriber, Reporter.opted_out).join(Reporter, Reporter.id == Subscriber.reporter_id)
    try:
        if args.get("province"):
            query = query.where(Subscriber.admin1_pcode == _unit(args["province"], "adm1"))
        if args.get("territory"):
            query = query.where(Subscriber.admin2_pcode == _unit(args["territory"], "adm2"))
    except subscribers.Invalid as exc:
        return _error(400, str(exc))
    if args.get("language"):
        if args["language"] not in LANGUAGES:
            return _error(400, f"language: one of {', '.join(LANGUAGES)}")
        query = query.where(Subscriber.language == args["language"])
    if args.get("group"):
        group = _group(session, args["group"])
        if group is None:
            return _error(400, f"group: no group {subscribers.quoted(args['group'])}")
        query = query.where(Subscriber.id.in_(select(subscriber_groups.c.subscriber_id)
                                              .where(subscriber_groups.c.group_id == group.id)))
    if args.get("status"):
        if args["status"] not in subscribers.STATUSES:
            return _error(400, f"status: one of {', '.join(subscribers.STATUSES)}")
        query = query.where(Subscriber.status == args["status"])
    try:
        limit = min(max(int(args.get("limit", 100)), 1), api.PAGE_MAX)
        after = int(args.get("after", 0))
    except ValueError:
        return _error(400, "limit and after must be numbers")
    rows = session.execute(query.where(Subscriber.id > after).order_by(Subscriber.id).limit(limit)).all()
    names = subscribers.group_names(session, [s.id for s, _ in rows])
    return jsonify({"counts": subscribers.counts(session),
                    "subscribers": [subscribers.as_json(s, opted_out, names[s.id]) for s, opted_out in rows],
                    "next": rows[-1][0].id if len(rows) == limit else None})


def _group(session, value: str) -> Group | None:
    """A group by id or by name."""
    if value.isdigit():
        return session.get(Group, int(value))
    return subscribers.find_group(session, value)


@bp.post("/api/v1/subscribers")
def create_subscriber():
    """One person as JSON (consent recorded as "api"), or many as a CSV import."""
    if request.mimetype in ("text/csv", "application/csv"):
        return _import_csv()
    body = request.get_json(silent=True)
    if not isinstance(body, dict):
        return _error(400, JSON_SHAPE)
    try:
        number, fields = _subscriber_fields(body)
    except subscribers.Invalid as exc:
        return _error(400, str(exc))
    session = get_session()
    try:
        subscriber, created = subscribers.enrol(session, identity(), current_app.extensions["channels"], number,
                                                consent_method="api", source="api", **fields)
    except subscribers.Invalid as exc:
        session.rollback()
        return _error(400, str(exc))
    session.commit()
    shown = subscribers.as_json(subscriber, subscriber.reporter.opted_out,
                                subscribers.group_names(session, [subscriber.id])[subscriber.id])
    return jsonify({"subscriber": shown}), 201 if created else 200


def _subscriber_fields(body: dict) -> tuple[str, dict]:
    """The number and subscribe() fields of a JSON body; Invalid names the field, never the number."""
    if not isinstance(body.get("phone"), str) or not body["phone"].strip():
        raise subscribers.Invalid("phone", "required, as a string")
    try:
        number = normalise(body["phone"])
    except InvalidNumber:
        raise subscribers.Invalid("phone", "not a possible phone number") from None
    for name in ("language", "place", "consent_note", "channel"):
        if body.get(name) is not None and not isinstance(body[name], str):
            raise subscribers.Invalid(name, "must be a string")
    if not (body.get("consent_note") or "").strip():
        raise subscribers.Invalid("consent_note", "required: who collected consent and how")
    place = None
    if body.get("place"):
        place, error = subscribers.find_place(body["place"])
        if error:
            raise subscribers.Invalid("place", error)
    groups = body.get("groups") or []
    if not isinstance(groups, list) or not all(isinstance(g, str) for g in groups):
        raise subscribers.Invalid("groups", "a list of group names")
    channel = body.get("channel") or None
    channels = current_app.extensions["channels"]
    if channel and channel not in channels:
        raise subscribers.Invalid("channel", f"unknown channel {subscribers.quoted(channel)}; "
                                             f"one of {', '.join(c.name for c in channels)}")
    return number, {"language": subscribers.parse_language(body.get("language")), "place": place,
                    "channel": channel, "groups": groups, "consent_note": body["consent_note"]}


def _import_csv():
    request.max_content_length = CSV_MAX_BYTES  # before the body is read; above it Flask answers 413
    note = (request.args.get("consent_note") or "").strip()
    if not note:
        return _error(400, "consent_note: required as a query parameter (who collected consent and how)")
    try:
        text = request.get_data().decode("utf-8")
    except UnicodeDecodeError:
        return _error(400, "the CSV must be UTF-8 text")
    try:
        report = subscriber_import.import_csv(get_session(), identity(), current_app.extensions["channels"], text,
                                        source=request.args.get("source") or "api:csv", consent_note=note)
    except subscribers.Invalid as exc:
        return _error(400, str(exc))
    return jsonify({"report": report.as_json()})


# --- groups -------------------------------------------------------------------------------

def _group_json(group: Group, members: int, active: int) -> dict:
    return {"id": group.id, "name": group.name, "description": group.description, "members": members,
            "active": active}


@bp.get("/api/v1/groups")
def list_groups():
    session = get_session()
    active = func.coalesce(func.sum(case((Subscriber.status == "active", 1), else_=0)), 0)
    rows = session.execute(
        select(Group, func.count(Subscriber.id), active)
        .outerjoin(subscriber_groups, subscriber_groups.c.group_id == Group.id)
        .outerjoin(Subscriber, Subscriber.id == subscriber_groups.c.subscriber_id)
        .group_by(Group.id).order_by(Group.name)).all()
    return jsonify({"groups": [_group_json(g, members, active) for g, members, active in rows]})


@bp.post("/api/v1/groups")
def create_group():
    body = request.get_json(silent=True)
    if not isinstance(body, dict) or not isinstance(body.get("name"), str):
        return _error(400, 'send JSON {"name", "description"?}')
    if body.get("description") is not None and not isinstance(body["description"], str):
        return _error(400, "description: must be a string")
    session = get_session()
    try:
        name = subscribers.group_name(body["name"])
        existing = subscribers.find_group(session, name)
        if existing is not None:
            return jsonify({"error": f"a group named {existing.name!r} exists", "id": existing.id}), 409
        group = subscribers.ensure_group(session, name, body.get("description"))
    except subscribers.Invalid as exc:
        return _error(400, str(exc).replace("groups:", "name:", 1))
    session.commit()
    return jsonify({"group": _group_json(group, 0, 0)}), 201


@bp.post("/api/v1/groups/<int:group_id>/members")
def add_members(group_id: int):
    body = request.get_json(silent=True)
    ids = body.get("subscriber_ids") if isinstance(body, dict) else None
    if not isinstance(ids, list) or not all(isinstance(i, int) and not isinstance(i, bool) for i in ids):
        return _error(400, 'send JSON {"subscriber_ids": [1, 2, ...]}')
    if len(ids) > MAX_MEMBER_IDS:
        return _error(400, f"subscriber_ids: at most {MAX_MEMBER_IDS} per request")
    session = get_session()
    group = session.get(Group, group_id)
    if group is None:
        return _error(404, "no such group")
    result = subscribers.add_to_group(session, group, ids)
    session.commit()
    return jsonify({"group": group.id, **result})
