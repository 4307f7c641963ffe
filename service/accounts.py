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
* **Per address**: LOGIN_IP_MAX_ATTEMPTS login attempts from one address (an IPv6 /64) in
  LOGIN_IP_WINDOW seconds, counted in Redis by every web worker; more are refused before
  any name or password is looked at (`count_attempt`).
* **Sessions**: a new password, new roles or a disable raise the operator's
  `session_generation`; a console session carries the number it was made with, so every
  older one stops at its next request (`end_sessions`).
* **Errors** (`AccountError`): an English msgid with %-placeholders and its parameters; the
  console translates the msgid (its catalogs hold `MESSAGES`), the command line prints it.
* **First administrator**: `alerte operators create-admin <username>` (the password
  from the terminal, or stdin with --password-stdin).
"""

from __future__ import annotations

import argparse
import getpass
import ipaddress
import sys
from datetime import datetime, timedelta
from typing import NamedTuple

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from redis import Redis
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
LOGIN_IP_MAX_ATTEMPTS = 20  # login attempts from one address in a window (a shared office's mornings fit)
LOGIN_IP_WINDOW = 600  # s, from the address's first attempt
_hasher = PasswordHasher()
_DUMMY = _hasher.hash("not a password of anyone")  # an unknown name costs a verification too


# What AccountError says: msgids of the console's catalogs (locales/*/LC_MESSAGES/console_*.po)
SHORT_PASSWORD = "A password needs at least %(n)d characters."
BAD_USERNAME = "A username is 1 to 64 letters, digits, dots, dashes or underscores."
NO_ROLE = "Choose at least one role."
UNKNOWN_ROLES = "Unknown roles: %(unknown)s. The roles are %(roles)s."
TAKEN = "The username %(name)s is taken."
MESSAGES = (SHORT_PASSWORD, BAD_USERNAME, NO_ROLE, UNKNOWN_ROLES, TAKEN)


class AccountError(ValueError):
    """A request about an account that cannot be met: `msgid` (one of MESSAGES) and its
    `params` for the console to translate; str() is the English, for the command line."""

    def __init__(self, msgid: str, **params):
        super().__init__(msgid % params)
        self.msgid, self.params = msgid, params


def can(operator: Operator | None, permission: str) -> bool:
    if operator is None or not operator.active:
        return False
    granted = set().union(*(PERMISSIONS.get(r, set()) for r in operator.roles or []))
    if permission == "see_restricted":
        return bool(set(operator.roles or []) & set(RESTRICTED_ROLES)) and "see_restricted" in granted
    return permission in granted


def hash_password(password: str) -> str:
    if len(password or "") < PASSWORD_MIN:
        raise AccountError(SHORT_PASSWORD, n=PASSWORD_MIN)
    return _hasher.hash(password)


def _checked_roles(roles) -> list[str]:
    roles = sorted(set(roles))
    unknown = set(roles) - set(ROLES)
    if unknown:
        raise AccountError(UNKNOWN_ROLES, unknown=", ".join(sorted(unknown)), roles=", ".join(ROLES))
    if not roles:
        raise AccountError(NO_ROLE)
    return roles


def create(session: Session, username: str, password: str, roles, display_name: str | None = None) -> Operator:
    username = (username or "").strip().lower()
    if not username or len(username) > 64 or not username.replace(".", "").replace("-", "").replace("_", "").isalnum():
        raise AccountError(BAD_USERNAME)
    roles = _checked_roles(roles)
    if session.scalar(select(Operator.id).where(Operator.username == username)):
        raise AccountError(TAKEN, name=username)
    operator = Operator(username=username, display_name=display_name, password_hash=hash_password(password),
                        roles=roles, active=True, failed_logins=0, created_at=utcnow(),
                        password_changed_at=utcnow(), session_generation=0)
    session.add(operator)
    session.flush()
    return operator


def end_sessions(operator: Operator) -> None:
    """Every console session of this operator made before now stops at its next request."""
    operator.session_generation = (operator.session_generation or 0) + 1


def set_password(operator: Operator, password: str) -> None:
    operator.password_hash = hash_password(password)
    operator.password_changed_at, operator.failed_logins = utcnow(), 0
    end_sessions(operator)


def set_roles(operator: Operator, roles) -> bool:
    """True if they changed (then the operator's sessions end: they carried the old rights)."""
    roles = _checked_roles(roles)
    if roles == sorted(operator.roles or []):
        return False
    operator.roles = roles  # a new list: the JSON column sees the change
    end_sessions(operator)
    return True


def set_active(operator: Operator, active: bool) -> bool:
    """True if it changed; a disable ends the sessions for good (enabling brings none back)."""
    if bool(operator.active) == active:
        return False
    operator.active = active
    if not active:
        end_sessions(operator)
    return True


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


class Attempts(NamedTuple):
    count: int  # this address's attempts in its window, this one included
    retry_after: int  # s until the window ends


def count_attempt(connection: Redis, address: str | None, window: int = LOGIN_IP_WINDOW) -> Attempts:
    """Count one login attempt from `address`; the caller refuses it beyond its limit. The
    window starts at the address's first attempt (SET NX EX, then INCR keeps the expiry)."""
    key = f"alerte:login:{_network(address)}"
    pipe = connection.pipeline()  # MULTI: a key is never left without its expiry
    pipe.set(key, 0, ex=window, nx=True)
    pipe.incr(key)
    pipe.ttl(key)
    _, count, ttl = pipe.execute()
    return Attempts(int(count), max(int(ttl), 1))


def _network(address: str | None) -> str:
    """One IPv4 address, or the /64 of an IPv6 one (a single line is given a whole /64)."""
    try:
        ip = ipaddress.ip_address(address or "")
    except ValueError:
        return "unknown"
    if ip.version == 6:
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        return str(ipaddress.ip_network(f"{ip}/64", strict=False))
    return str(ip)


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
