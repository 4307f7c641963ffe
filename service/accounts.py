"""Operators of the console: roles, what each may do, passwords and lock-out.

* **Roles** (`ROLES`): administrator, analyst (triage, verification, response),
  broadcaster, translator (translations, prompts, flows). What a role may do is the
  table `PERMISSIONS`, here, not in templates: the views ask `can(operator, "...")`.
* **Restricted reports** (sexual violence, bot/categories.py `restricted`) are seen
  only by the roles in RESTRICTED_ROLES (administrator and analyst by default).
* **Passwords**: argon2id (argon2-cffi's defaults), rehashed when those change; at
  least PASSWORD_MIN characters. Never logged.
* **Lock-out**: LOGIN_MAX_FAILURES wrong passwords in a row (the setting of the same
  name) lock the account for LOGIN_LOCKOUT seconds; a right password during the lock is refused too, and a wrong
  one for an unknown name costs the same time as for a known one.
* **First administrator**: `alerte operators create-admin <username>` (the password
  from the terminal, or stdin with --password-stdin).
"""

from __future__ import annotations

import argparse
import getpass
import sys
from datetime import datetime, timedelta

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import select
from sqlalchemy.orm import Session

from service.models import Operator, utcnow
from service.reporters import aware

ROLES = ("administrator", "analyst", "broadcaster", "translator")
PERMISSIONS = {
    "administrator": {"triage", "reveal_number", "broadcast", "translate", "audit", "manage_operators",
                      "export", "see_restricted"},
    "analyst": {"triage", "reveal_number", "export", "see_restricted"},
    "broadcaster": {"broadcast"},
    "translator": {"translate"},
}
RESTRICTED_ROLES = ("administrator", "analyst")
PASSWORD_MIN = 12
LOGIN_MAX_FAILURES = 5
LOGIN_LOCKOUT = 900  # s
_hasher = PasswordHasher()
_DUMMY = _hasher.hash("not a password of anyone")  # an unknown name costs a verification too


class AccountError(ValueError):
    """A request about an account that cannot be met (the message says why)."""


def can(operator: Operator | None, permission: str) -> bool:
    if operator is None or not operator.active:
        return False
    granted = set().union(*(PERMISSIONS.get(r, set()) for r in operator.roles or []))
    if permission == "see_restricted":
        return bool(set(operator.roles or []) & set(RESTRICTED_ROLES)) and "see_restricted" in granted
    return permission in granted


def hash_password(password: str) -> str:
    if len(password or "") < PASSWORD_MIN:
        raise AccountError(f"a password needs at least {PASSWORD_MIN} characters")
    return _hasher.hash(password)


def create(session: Session, username: str, password: str, roles, display_name: str | None = None) -> Operator:
    username = (username or "").strip().lower()
    if not username or len(username) > 64 or not username.replace(".", "").replace("-", "").replace("_", "").isalnum():
        raise AccountError("a username is 1 to 64 letters, digits, dots, dashes or underscores")
    roles = sorted(set(roles))
    unknown = set(roles) - set(ROLES)
    if unknown or not roles:
        raise AccountError(f"roles must be some of {', '.join(ROLES)}")
    if session.scalar(select(Operator.id).where(Operator.username == username)):
        raise AccountError(f"the username {username!r} is taken")
    operator = Operator(username=username, display_name=display_name, password_hash=hash_password(password),
                        roles=roles, active=True, failed_logins=0, created_at=utcnow(),
                        password_changed_at=utcnow())
    session.add(operator)
    session.flush()
    return operator


def authenticate(session: Session, username: str, password: str, now: datetime | None = None, *,
                 max_failures: int = LOGIN_MAX_FAILURES, lockout: float = LOGIN_LOCKOUT) -> Operator | None:
    """The operator if the password is right and the account open; counts failures. The
    caller commits (the failure count must be kept even when the login is refused)."""
    now = now or utcnow()
    operator = session.scalar(select(Operator).where(Operator.username == (username or "").strip().lower())
                              .with_for_update())
    if operator is None:
        _verify(_DUMMY, password)
        return None
    if aware(operator.locked_until) and aware(operator.locked_until) > now:
        _verify(_DUMMY, password)
        return None
    if not operator.active or not _verify(operator.password_hash, password):
        operator.failed_logins = (operator.failed_logins or 0) + 1
        if operator.failed_logins >= max_failures:
            operator.locked_until, operator.failed_logins = now + timedelta(seconds=lockout), 0
        return None
    operator.failed_logins, operator.locked_until, operator.last_login_at = 0, None, now
    if _hasher.check_needs_rehash(operator.password_hash):
        operator.password_hash = _hasher.hash(password)
    return operator


def locked(operator: Operator, now: datetime | None = None) -> bool:
    return bool(operator.locked_until) and aware(operator.locked_until) > (now or utcnow())


def _verify(hashed: str, password: str) -> bool:
    try:
        return _hasher.verify(hashed, password or "")
    except (VerificationError, InvalidHashError):
        return False


# --- command line: `alerte operators create-admin|create|list` ---------------------------

def cli(parser: argparse.ArgumentParser):
    sub = parser.add_subparsers(dest="action", required=True)
    admin = sub.add_parser("create-admin", help="create an administrator (the first one, or another)")
    admin.add_argument("username")
    admin.add_argument("--password-stdin", action="store_true", help="read the password from stdin")
    other = sub.add_parser("create", help="create an operator with roles")
    other.add_argument("username")
    other.add_argument("--roles", required=True, help=f"comma-separated: {', '.join(ROLES)}")
    other.add_argument("--password-stdin", action="store_true")
    sub.add_parser("list", help="operators, their roles and state (no passwords)")
    return _run


def _run(args) -> int:
    from service.app import create_app
    from service.db import get_session

    app = create_app()
    with app.app_context():
        session = get_session()
        if args.action == "list":
            for o in session.scalars(select(Operator).order_by(Operator.username)):
                state = "locked" if locked(o) else ("active" if o.active else "disabled")
                print(f"{o.username}\t{','.join(o.roles or [])}\t{state}")
            return 0
        password = sys.stdin.readline().rstrip("\n") if args.password_stdin else getpass.getpass("password: ")
        if not args.password_stdin and getpass.getpass("again: ") != password:
            print("the two passwords differ", file=sys.stderr)
            return 2
        roles = ["administrator"] if args.action == "create-admin" else args.roles.split(",")
        try:
            operator = create(session, args.username, password, [r.strip() for r in roles])
        except AccountError as exc:
            print(str(exc), file=sys.stderr)
            return 2
        from service import audit
        audit.record(session, None, "operator.create", "operator", operator.id,
                     after={"username": operator.username, "roles": operator.roles}, reason="command line")
        session.commit()
        print(f"created {operator.username} ({', '.join(operator.roles)})")
    return 0
