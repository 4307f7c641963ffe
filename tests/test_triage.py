"""An alert's triage (service/triage.py) on real SQLite and PostgreSQL: the table
decides, every step is timestamped with its operator and note, and audited."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from service import accounts, triage
from service.models import Alert, AlertEvent, AuditEntry

PASSWORD = "correct horse battery"


@pytest.fixture
def analyst(db):
    operator = accounts.create(db, "analyste", PASSWORD, ["analyst"])
    db.commit()
    return operator


def new_alert(db, status="new", category="ATTACK") -> int:
    alert = Alert(status=status, category=category, channel="sms", reference=None)
    db.add(alert)
    db.commit()
    return alert.id


def test_the_whole_life_of_a_verified_report(db, analyst):
    alert_id = new_alert(db)
    for to, note in (("acknowledged", None), ("verified", "contre-enquête: le chef de poste confirme"),
                     ("dispatched", "patrouille envoyée"), ("closed", None)):
        triage.transition(db, alert_id, to, analyst, note)
        db.commit()
    assert db.get(Alert, alert_id, populate_existing=True).status == "closed"
    steps = triage.history(db, alert_id)
    assert [(e.from_status, e.to_status, name) for e, name in steps] == [
        ("new", "acknowledged", "analyste"), ("acknowledged", "verified", "analyste"),
        ("verified", "dispatched", "analyste"), ("dispatched", "closed", "analyste")]
    assert steps[1][0].note.startswith("contre-enquête") and all(e.at for e, _ in steps)
    audited = db.scalars(select(AuditEntry).where(AuditEntry.target_id == str(alert_id)).order_by(AuditEntry.id)).all()
    assert [a.action for a in audited] == ["alert.acknowledged", "alert.verified", "alert.dispatched", "alert.closed"]
    assert audited[0].before == {"status": "new"} and audited[0].after == {"status": "acknowledged"}


@pytest.mark.parametrize("status, to", [("new", "verified"), ("new", "closed"), ("acknowledged", "dispatched"),
                                        ("closed", "acknowledged"), ("draft", "acknowledged"),
                                        ("verified", "false"), ("new", "nonsense")])
def test_a_step_the_table_does_not_allow_is_refused_and_changes_nothing(db, analyst, status, to):
    alert_id = new_alert(db, status)
    with pytest.raises(triage.InvalidTransition) as refused:
        triage.transition(db, alert_id, to, analyst)
    assert refused.value.allowed == triage.allowed(status)
    db.rollback()
    assert db.get(Alert, alert_id, populate_existing=True).status == status
    assert db.scalar(select(AlertEvent.id).where(AlertEvent.alert_id == alert_id)) is None


@pytest.mark.parametrize("to", triage.NOTE_REQUIRED)
def test_setting_a_report_aside_needs_a_reason(db, analyst, to):
    alert_id = new_alert(db, "acknowledged")
    with pytest.raises(ValueError, match="say why"):
        triage.transition(db, alert_id, to, analyst, "  ")
    db.rollback()
    triage.transition(db, alert_id, to, analyst, "même attaque que la référence 482913")
    db.commit()
    assert db.get(Alert, alert_id, populate_existing=True).status == to


def test_an_incomplete_report_can_be_acknowledged(db, analyst):
    alert_id = new_alert(db, "incomplete")
    triage.transition(db, alert_id, "acknowledged", analyst)
    db.commit()
    assert db.get(Alert, alert_id, populate_existing=True).status == "acknowledged"


def test_two_operators_acknowledging_at_once_make_one_step(app, db, analyst):
    """The second saw "new" too; its update finds the status moved and is refused."""
    from sqlalchemy.orm import Session
    alert_id = new_alert(db)
    other = Session(app.extensions["db"].engine)
    try:
        stale = other.get(Alert, alert_id)
        assert stale.status == "new"
        triage.transition(db, alert_id, "acknowledged", analyst)
        db.commit()
        with pytest.raises(triage.InvalidTransition):
            triage.transition(other, alert_id, "acknowledged", None)
    finally:
        other.close()
    assert len(triage.history(db, alert_id)) == 1


def test_the_inbox_order_puts_immediate_danger_first():
    attack, threat, land, other = (Alert(category=c) for c in ("ATTACK", "THREAT", "LAND_CONFLICT", None))
    assert sorted([other, land, threat, attack], key=triage.urgency) == [attack, threat, land, other]
    assert triage.restricted(Alert(category="SEXUAL_VIOLENCE")) and not triage.restricted(attack)
