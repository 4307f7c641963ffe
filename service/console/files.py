"""The files the console's editors change (the bot's catalogs, the alert flow, the training
examples): one save at a time, and never half a file for a reader.

A save holds an exclusive lock on the file's folder (the file itself is replaced, so a lock
on it would be a lock on the old one) and writes a temporary file beside it, flushed to
disk, then renamed over the old one: a process reading it (bot.messages.LiveFiles) sees
either the old file or the new one.
"""

from __future__ import annotations

import fcntl
import os
import threading
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def locked(folder: Path):
    """Exclusive, across the web workers and threads of every process, until the block ends."""
    fd = os.open(folder, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # releases the lock


def replace(path: Path, data: bytes) -> None:
    """Write `data` as `path` in one step (temporary file, fsync, rename)."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    with tmp.open("wb") as fp:
        fp.write(data)
        fp.flush()
        os.fsync(fp.fileno())
    tmp.replace(path)
