"""A value built from files, rebuilt in each process when one of them changes: the bot's
catalogs (bot/messages.py) and the alert flow (bot/flow.py), which operators edit in the
console while the web service and the action server run."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Generic, TypeVar

CHECK_SECONDS = 1.0  # how often a process looks at its catalogs and flow files: one stat each
SETTLE_SECONDS = 1.0  # a file changed more recently may still be being written (an editor saving in place)

log = logging.getLogger(__name__)
T = TypeVar("T")


class LiveFiles(Generic[T]):
    """A value built from files, rebuilt in this process when one of them changes.

    The files are looked at (one stat each: inode, mtime, size) at most once every
    CHECK_SECONDS, so a request costs a clock read. A changed file is read once it has
    settled (the same stat twice in a row, or unchanged for SETTLE_SECONDS): the console
    replaces files whole (temporary file, os.replace), but a hand edit may be written in
    place. The new value replaces the old in one assignment; a rebuild that fails (a
    broken file) keeps the last good value and logs the error once per version of the
    files. Only the first build raises: a process never starts without its value.
    """

    def __init__(self, what: str, paths: tuple[Path, ...], build: Callable[[], T],
                 errors: tuple[type[BaseException], ...], prepare: Callable[[], object] | None = None):
        self.what, self.paths, self._build, self._errors, self._prepare = what, paths, build, errors, prepare
        self._lock = threading.Lock()
        self._current: tuple[T, tuple] | None = None  # (value, the files' stat when it was read)
        self._checked = float("-inf")
        self._seen: tuple | None = None  # a changed stat waiting to settle
        self._refused: tuple | None = None  # the stat of files that failed to build

    def get(self) -> T:
        current = self._current
        if current is not None and time.monotonic() - self._checked < CHECK_SECONDS:
            return current[0]
        with self._lock:
            return self._refresh()

    def _stat(self) -> tuple:
        out = []
        for path in self.paths:
            try:
                st = path.stat()
                out.append((st.st_ino, st.st_mtime_ns, st.st_size))
            except FileNotFoundError:
                out.append(None)
        return tuple(out)

    def _settled(self, key: tuple) -> bool:
        if key == self._seen:
            return True
        newest = max((s[1] for s in key if s is not None), default=0)
        return time.time_ns() - newest >= SETTLE_SECONDS * 1e9

    def _refresh(self) -> T:
        current = self._current
        now = time.monotonic()
        if current is not None and now - self._checked < CHECK_SECONDS:
            return current[0]  # another thread looked meanwhile
        self._checked = now
        key = self._stat()
        if current is not None and (key == current[1] or key == self._refused):
            return current[0]
        if current is not None and not self._settled(key):
            self._seen = key
            return current[0]
        self._seen = None
        try:
            if self._prepare is not None:
                self._prepare()
            key = self._stat()  # before reading: a change after it is seen at the next look
            value = self._build()
        except self._errors as exc:
            if current is None:
                raise
            self._refused = key
            log.error("%s: the changed file cannot be used, keeping the one read before: %s", self.what, exc)
            return current[0]
        if current is not None:
            log.info("%s: reloaded", self.what)
        self._refused = None
        self._current = (value, key)
        return value
