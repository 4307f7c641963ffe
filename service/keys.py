"""Rotating the secrets that hide reporters' numbers: `alerte keys rotate|generate`.

Put the new secrets first in REPORTER_KEY_SECRET and PHONE_ENCRYPTION_KEY (comma-separated,
the old ones after them), restart, then run `alerte keys rotate`: every stored number is
encrypted again under the newest key, and every reporter whose number can still be decrypted
gets the newest reporter key, on the same row (opt-out, language, conversations and alerts
stay). A reporter whose number was purged cannot be re-keyed: they keep their old key until
they next write, so the old reporter secrets must stay configured. Only counts are printed.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass, fields

from cryptography.fernet import Fernet
from sqlalchemy import select
from sqlalchemy.orm import Session

from service import reporters
from service.models import Reporter
from service.privacy import Identity

BATCH = 500


@dataclass
class Rotation:
    reporters: int = 0  # rows seen
    reencrypted: int = 0  # numbers now under the newest encryption key
    rekeyed: int = 0  # reporters moved to the newest reporter key
    current: int = 0  # decryptable, already under the newest reporter key
    purged: int = 0  # no number kept: their key stays until they write again
    undecryptable: int = 0  # a number no configured key opens (its key was removed too soon)
    conflicts: int = 0  # the newest key already belongs to another row: left as is

    def lines(self) -> list[str]:
        return [f"{f.name}: {getattr(self, f.name)}" for f in fields(self)]


def rotate(session: Session, identity: Identity, batch: int = BATCH) -> Rotation:
    """Re-encrypt every kept number and re-key every reporter whose number is readable;
    commits every `batch` reporters, so it can be stopped and run again."""
    counts, last_id = Rotation(), 0
    while True:
        rows = session.scalars(select(Reporter).where(Reporter.id > last_id)
                               .order_by(Reporter.id).limit(batch)).all()
        if not rows:
            return counts
        for reporter in rows:
            last_id = reporter.id
            counts.reporters += 1
            if not reporter.phone_encrypted:
                counts.purged += 1
                continue
            number = identity.decrypt(reporter.phone_encrypted)
            if number is None:
                counts.undecryptable += 1
                continue
            reporter.phone_encrypted = identity.reencrypt(reporter.phone_encrypted)
            counts.reencrypted += 1
            if reporter.key == identity.key(number):
                counts.current += 1
            elif reporters.rekey(session, identity, reporter, number):
                counts.rekeyed += 1
            else:
                counts.conflicts += 1
        session.commit()


def generate() -> dict[str, str]:
    """Fresh values for the secrets this service reads."""
    return {
        "REPORTER_KEY_SECRET": secrets.token_urlsafe(48),
        "PHONE_ENCRYPTION_KEY": Fernet.generate_key().decode(),
        "RASA_TOKEN": secrets.token_urlsafe(32),
        "API_TOKEN": secrets.token_urlsafe(32),
        "SECRET_KEY": secrets.token_urlsafe(48),
    }


def _run(args) -> int:
    if args.action == "generate":
        values = generate()
        print("# To rotate: put the new value FIRST, before the old ones, comma-separated:")
        print("#   REPORTER_KEY_SECRET=<new>,<old>  PHONE_ENCRYPTION_KEY=<new>,<old>; then `alerte keys rotate`.")
        for name in ("REPORTER_KEY_SECRET", "PHONE_ENCRYPTION_KEY"):
            print(f"{name}={values[name]}")
        print("# Replaceable at any time (restart rasa, web, worker and actions together for RASA_TOKEN):")
        for name in ("RASA_TOKEN", "API_TOKEN"):
            print(f"{name}={values[name]}")
        print("# A new deployment only: the keys derived from SECRET_KEY are always tried last, and")
        print("# changing it orphans every reporter still under them (see docs/DEPLOY.md).")
        print(f"SECRET_KEY={values['SECRET_KEY']}")
        return 0
    from service.app import create_app
    from service.db import get_session
    from service.privacy import identity

    app = create_app()
    with app.app_context():
        counts = rotate(get_session(), identity(), args.batch)
    print("\n".join(counts.lines()))
    if counts.purged:
        print(f"{counts.purged} reporters have no number kept and cannot be re-keyed now: each keeps their "
              "old key until they next write, so keep the old REPORTER_KEY_SECRET values configured "
              "(after the new one).")
    if counts.undecryptable:
        print(f"{counts.undecryptable} numbers could not be decrypted: an older PHONE_ENCRYPTION_KEY is missing.")
    else:
        print("Every kept number is under the newest PHONE_ENCRYPTION_KEY; older ones are needed only "
              "to read backups made before this rotation.")
    return 0


def cli(parser):
    parser.add_argument("action", choices=["rotate", "generate"],
                        help="rotate: re-encrypt numbers and re-key reporters under the newest secrets; "
                             "generate: print fresh secrets")
    parser.add_argument("--batch", type=int, default=BATCH, help="reporters per transaction")
    return _run
