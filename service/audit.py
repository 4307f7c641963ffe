"""The audit log: every operator action, who, what, on what, when, before and after.

`record` adds the entry to the caller's session, so it commits (or rolls back) with the
action itself: an action without its entry cannot happen. Values are what the console
shows, never a reporter's number (a reveal records that it happened and why, not what
was revealed). Administrators read it in the console and export it as CSV.
"""

from __future__ import annotations

import csv
import io
import json
from datetime import datetime, timezone

from sqlalchemy import select
from sqlalchemy.orm import Session

from service.models import AuditEntry, Operator, utcnow

CSV_COLUMNS = ("id", "at", "operator", "action", "target_type", "target_id", "before", "after", "reason")


def record(session: Session, operator: Operator | None, action: str, target_type: str | None = None,
           target_id=None, before: dict | None = None, after: dict | None = None,
           reason: str | None = None) -> AuditEntry:
    entry = AuditEntry(at=utcnow(), operator_id=operator.id if operator is not None else None, action=action[:64],
                       target_type=target_type, target_id=None if target_id is None else str(target_id)[:64],
                       before=before, after=after, reason=(reason or None) and reason[:2000])
    session.add(entry)
    return entry


def entries(session: Session, *, operator_id: int | None = None, action: str | None = None,
            target_type: str | None = None, target_id=None, since: datetime | None = None,
            before_id: int | None = None, limit: int = 200) -> list[tuple[AuditEntry, str | None]]:
    """Newest first, with each entry's operator name (None: the system or the command line)."""
    query = select(AuditEntry, Operator.username).outerjoin(Operator, AuditEntry.operator_id == Operator.id)
    if operator_id is not None:
        query = query.where(AuditEntry.operator_id == operator_id)
    if action:
        query = query.where(AuditEntry.action == action)
    if target_type:
        query = query.where(AuditEntry.target_type == target_type)
    if target_id is not None:
        query = query.where(AuditEntry.target_id == str(target_id))
    if since is not None:
        query = query.where(AuditEntry.at >= since)
    if before_id is not None:
        query = query.where(AuditEntry.id < before_id)
    return [tuple(row) for row in session.execute(query.order_by(AuditEntry.id.desc()).limit(limit))]


def to_csv(rows) -> str:
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(CSV_COLUMNS)
    for entry, username in rows:
        at = entry.at if entry.at.tzinfo else entry.at.replace(tzinfo=timezone.utc)
        writer.writerow([entry.id, at.isoformat(), username or "", entry.action, entry.target_type or "",
                         entry.target_id or "", _json(entry.before), _json(entry.after), entry.reason or ""])
    return out.getvalue()


def _json(value) -> str:
    return "" if value is None else json.dumps(value, ensure_ascii=False, sort_keys=True)
