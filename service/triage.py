"""An alert's life after the reporter confirms it: the transition table, in the domain.

    new ─▶ acknowledged ─▶ verified ─────────▶ dispatched ─▶ closed
                       ├─▶ unverifiable ─┐     (response dispatched)
                       ├─▶ false ────────┼──▶ closed
                       └─▶ duplicate ────┘

"verified" is the seed's cross-check (contre-enquête). An incomplete report (the
reporter stopped before confirming) can be acknowledged too: a partial report of an
attack is still an attack. Every step is an AlertEvent (from, to, operator, note, when)
and an audit entry, in the same transaction as the status; a step the table does not
allow is refused with the allowed ones. The console shows only allowed buttons, but the
table here is what decides.
"""

from __future__ import annotations

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from bot.categories import BY_CODE
from service import audit
from service.models import Alert, AlertEvent, Operator, utcnow

TRANSITIONS: dict[str, tuple[str, ...]] = {
    "new": ("acknowledged",),
    "incomplete": ("acknowledged",),
    "acknowledged": ("verified", "unverifiable", "false", "duplicate"),
    "verified": ("dispatched",),
    "unverifiable": ("closed", "verified"),  # new facts may still confirm it
    "false": ("closed",),
    "duplicate": ("closed",),
    "dispatched": ("closed",),
    "closed": (),
}
TRIAGE_STATUSES = tuple(TRANSITIONS)
NOTE_REQUIRED = ("false", "duplicate", "unverifiable")  # say why a report is set aside
URGENCY = {"immediate": 0, "short": 1, "structural": 2, "none": 3}  # the inbox's order


class InvalidTransition(ValueError):
    def __init__(self, current: str, wanted: str):
        allowed = TRANSITIONS.get(current, ())
        super().__init__(f"an alert {current!r} cannot become {wanted!r}; allowed: "
                         f"{', '.join(allowed) if allowed else 'none'}")
        self.current, self.wanted, self.allowed = current, wanted, allowed


def allowed(status: str) -> tuple[str, ...]:
    return TRANSITIONS.get(status, ())


def restricted(alert: Alert) -> bool:
    category = BY_CODE.get(alert.category or "")
    return bool(category and category.restricted)


def urgency(alert: Alert) -> int:
    category = BY_CODE.get(alert.category or "")
    return URGENCY[category.horizon] if category else URGENCY["none"]


def transition(session: Session, alert_id: int, to: str, operator: Operator | None, note: str | None = None) -> AlertEvent:
    """Move one alert, or raise InvalidTransition (also when another operator moved it
    first: the update is conditional on the status this operator saw)."""
    alert = session.get(Alert, alert_id, populate_existing=True)
    if alert is None:
        raise LookupError(f"no alert {alert_id}")
    current = alert.status
    note = (note or "").strip() or None
    if to not in allowed(current):
        raise InvalidTransition(current, to)
    if to in NOTE_REQUIRED and not note:
        raise ValueError(f"say why the report is {to}")
    moved = session.execute(update(Alert).where(Alert.id == alert_id, Alert.status == current)
                            .values(status=to, updated_at=utcnow()).execution_options(synchronize_session=False))
    if not moved.rowcount:
        session.rollback()
        fresh = session.get(Alert, alert_id, populate_existing=True)
        raise InvalidTransition(fresh.status, to)
    event = AlertEvent(alert_id=alert_id, from_status=current, to_status=to,
                       operator_id=operator.id if operator is not None else None, note=note, at=utcnow())
    session.add(event)
    audit.record(session, operator, f"alert.{to}", "alert", alert_id, before={"status": current},
                 after={"status": to}, reason=note)
    session.flush()
    session.refresh(alert)
    return event


def history(session: Session, alert_id: int) -> list[tuple[AlertEvent, str | None]]:
    """The alert's steps, oldest first, with each operator's name."""
    return [tuple(row) for row in session.execute(
        select(AlertEvent, Operator.username).outerjoin(Operator, AlertEvent.operator_id == Operator.id)
        .where(AlertEvent.alert_id == alert_id).order_by(AlertEvent.id))]
