"""The audit log for administrators: newest first, filtered, and its CSV export (audited)."""

from __future__ import annotations

import json
from datetime import datetime

from flask import Response, render_template, request
from sqlalchemy import select

from service import audit
from service.console import bp
from service.console.auth import current_operator, requires
from service.db import get_session
from service.models import Operator

PAGE = 100


def _filters(db) -> tuple[dict, dict]:
    """(what the form shows, audit.entries' arguments)."""
    args = request.args
    shown = {k: args.get(k, "").strip()[:64] for k in ("operator", "action", "target_type", "target_id")}
    query = {}
    if shown["operator"]:
        operator_id = db.scalar(select(Operator.id).where(Operator.username == shown["operator"].lower()))
        query["operator_id"] = operator_id if operator_id is not None else -1  # no one: nothing
    for key in ("action", "target_type", "target_id"):
        if shown[key]:
            query[key] = shown[key]
    if args.get("before", "").isdigit():
        query["before_id"] = int(args["before"])
    return shown, query


@bp.get("/audit", endpoint="audit_log")
@requires("audit")
def audit_page():
    db = get_session()
    shown, query = _filters(db)
    rows = audit.entries(db, **query, limit=PAGE + 1)
    return render_template("console/audit.html", rows=rows[:PAGE], shown=shown, more=len(rows) > PAGE,
                           shown_args={k: v for k, v in shown.items() if v},
                           last_id=rows[PAGE - 1][0].id if len(rows) > PAGE else None, as_json=_json)


@bp.get("/audit.csv", endpoint="audit_csv")
@requires("audit")
def audit_export():
    db = get_session()
    shown, query = _filters(db)
    query.pop("before_id", None)
    rows = audit.entries(db, **query, limit=None)
    audit.record(db, current_operator(), "audit.export", "audit_log", None,
                 after={"filters": {k: v for k, v in shown.items() if v}, "rows": len(rows)})
    db.commit()
    name = f"audit-{datetime.now().strftime('%Y%m%d-%H%M')}.csv"
    return Response(audit.to_csv(rows), mimetype="text/csv",
                    headers={"Content-Disposition": f'attachment; filename="{name}"'})


def _json(value) -> str:
    return "" if value is None else json.dumps(value, ensure_ascii=False, sort_keys=True)
