"""Revealing a reporter's number, to call them back: the one way out of the encryption.

Identity is hidden everywhere by default (service/privacy.py). A reveal needs the
"reveal_number" permission (service/accounts.py), a stated reason, and leaves an audit
entry, committed before the number is returned: a reveal without its entry cannot
happen. The entry says who, which reporter (by id) and why, never the number.
"""

from __future__ import annotations

from sqlalchemy.orm import Session

from service import accounts, audit
from service.models import Operator, Reporter, utcnow
from service.privacy import Identity
from service.reporters import aware

REASON_MIN = 10  # characters: a few words ("rappel pour préciser le lieu"), not "x"
ACTION = "reporter.reveal_number"


class NumberUnavailable(LookupError):
    """No number can be revealed (the message says why: expired, purged, undecryptable)."""


def number(session: Session, identity: Identity, operator: Operator | None, reporter_id: int, reason: str) -> str:
    """The reporter's E.164 number, for this operator and this reason; audited and committed.

    Raises PermissionError without the right, ValueError for a missing or too short
    reason, LookupError for an unknown reporter, NumberUnavailable when no number is kept.
    """
    if not accounts.can(operator, "reveal_number"):
        raise PermissionError("revealing a reporter's number needs the reveal_number permission")
    reason = " ".join((reason or "").split())
    if len(reason) < REASON_MIN:
        raise ValueError(f"say why the number is needed (at least {REASON_MIN} characters)")
    reporter = session.get(Reporter, reporter_id, populate_existing=True)
    if reporter is None:
        raise LookupError(f"no reporter {reporter_id}")
    revealed = _decrypt(identity, reporter)
    audit.record(session, operator, ACTION, "reporter", reporter.id, reason=reason)
    session.commit()
    return revealed


def _decrypt(identity: Identity, reporter: Reporter) -> str:
    """The kept number, or NumberUnavailable saying why (an expired number is never decrypted)."""
    if not reporter.phone_encrypted:
        raise NumberUnavailable("no number is kept for this reporter (purged after its retention)")
    expires_at = aware(reporter.phone_expires_at)
    if expires_at is not None and expires_at <= utcnow():
        raise NumberUnavailable(f"the kept number expired on {expires_at:%Y-%m-%d}; it is kept only for "
                                "call-backs within its retention, and the reporter's next message renews it")
    revealed = identity.decrypt_unexpired(reporter.phone_encrypted, expires_at)
    if revealed is None:
        raise NumberUnavailable("the kept number cannot be decrypted (its key was rotated away)")
    return revealed
