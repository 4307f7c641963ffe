"""Inbound messages kept on disk while the database is down, imported when it is back.

Providers do not retry an SMS webhook, so a report that cannot be stored is gone unless
it is kept somewhere that is not the database. One file per message, written atomically
(temporary file, fsync, rename); the sender's number is encrypted in it like in the
database. Importing is idempotent: the message table's unique provider id settles
repeats, and a file is removed only once its message is stored.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from datetime import datetime
from pathlib import Path

from service.channels.base import InboundMessage
from service.privacy import Identity

log = logging.getLogger(__name__)
SUFFIX = ".json"


def write(directory: str | Path, identity: Identity, provider: str, inbound: InboundMessage) -> Path:
    """Keep one inbound message durably; raises OSError if even the disk fails."""
    record = {"provider": provider, "provider_id": inbound.provider_id,
              "sender": identity.encrypt(inbound.sender), "recipient": inbound.recipient,
              "body": inbound.body, "received_at": inbound.received_at.isoformat(),
              "reply_context": inbound.reply_context or {}}  # what a reply must carry back (no number)
    return write_record(directory, f"{provider}:{inbound.provider_id}", record)


def write_record(directory: str | Path, identifier: str, record: dict) -> Path:
    """Keep one JSON record durably under a name derived from `identifier` (the same
    identifier overwrites: a repeat is one file); raises OSError if the disk fails."""
    folder = Path(directory)
    folder.mkdir(parents=True, exist_ok=True)
    name = hashlib.sha256(identifier.encode()).hexdigest()[:32]
    path = folder / (name + SUFFIX)
    temporary = folder / (name + ".tmp")
    with temporary.open("w", encoding="utf-8") as handle:
        json.dump(record, handle, ensure_ascii=False)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(temporary, path)
    descriptor = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(descriptor)  # the rename itself survives a power cut
    finally:
        os.close(descriptor)
    return path


def pending(directory: str | Path, limit: int | None = None) -> list[Path]:
    """Spooled files, oldest first."""
    folder = Path(directory)
    if not folder.is_dir():
        return []
    files = sorted(folder.glob("*" + SUFFIX), key=lambda p: (p.stat().st_mtime, p.name))
    return files[:limit] if limit else files


def read(path: Path, identity: Identity) -> tuple[str, InboundMessage] | None:
    """The provider and message of a spool file; None if it cannot be read back."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None  # another process imported it meanwhile
    try:
        record = json.loads(text)
        sender = identity.decrypt(record["sender"])
        if sender is None:
            raise ValueError("sender not decryptable with the configured keys")
        return record["provider"], InboundMessage(
            provider_id=record["provider_id"], sender=sender, recipient=record.get("recipient"),
            body=record.get("body") or "", received_at=datetime.fromisoformat(record["received_at"]),
            reply_context=dict(record.get("reply_context") or {}))
    except (OSError, ValueError, KeyError, TypeError) as exc:
        log.error("spool file %s unreadable, set aside as .bad for an operator: %s", path.name, exc)
        try:
            path.replace(path.with_suffix(".bad"))
        except FileNotFoundError:
            pass
        return None


def remove(path: Path) -> None:
    try:
        path.unlink()
    except FileNotFoundError:
        pass  # another process imported it at the same time
