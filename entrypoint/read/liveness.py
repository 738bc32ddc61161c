"""Is a step that stored only live chunks still running? (``formats/live.py``: each chunk promises
the step's next object within ``next-within`` seconds.)

``logs --follow`` gives up when nothing new came for ``--stale-after`` (default: three times the
latest chunk's promise) and exits ``GONE``; ``summary`` shows such a step as ``stale``. Chunks of
wrappers before the promise carry none: then the step is taken as running, as before.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Optional

from ..formats import live
from ..formats.layout import chunk_seq
from ..store import ObjectInfo, StoreError
from ..units import format_duration
from .errors import GONE
from .locate import Reader

NEVER = 0.0  # --stale-after 0: wait for ever


def promise(reader: Reader, key: str) -> Optional[float]:
    """The ``next-within`` promise stored with chunk ``key`` (one HEAD), or None."""
    try:
        metadata = reader.retry.call(f"reading {key}", lambda: reader.store.metadata(key))
    except StoreError:
        return None  # unknown: no verdict
    return live.promised(metadata)


class Staleness:
    """For ``logs --follow``: when the step last stored something new, and when to give up."""

    def __init__(self, reader: Reader, stale_after: Optional[float], clock: Callable[[], float]) -> None:
        self.reader = reader
        self.stale_after = stale_after  # None: from the chunks' promise; NEVER: wait for ever
        self.clock = clock
        self.since = clock()
        self._limits: dict[str, Optional[float]] = {}

    def progressed(self) -> None:
        self.since = self.clock()

    def limit(self, last_key: str) -> Optional[float]:
        if self.stale_after is not None:
            return None if self.stale_after == NEVER else self.stale_after
        if last_key not in self._limits:  # one HEAD per chunk the follower went idle on
            seconds = promise(self.reader, last_key)
            self._limits[last_key] = None if seconds is None else live.stale_after(seconds)
        return self._limits[last_key]

    def gone(self, last_key: str, what: str) -> Optional[str]:
        """The one line to say when the step seems gone (nothing new for the limit), else None."""
        if not last_key:
            return None  # before its first chunk: --wait decides
        limit = self.limit(last_key)
        idle = self.clock() - self.since
        if limit is None or idle < limit:
            return None
        why = (
            f"--stale-after {format_duration(limit)}"
            if self.stale_after is not None
            else f"its last chunk promised the next within {format_duration(limit / live.STALE_PROMISES)}"
        )
        return (
            f"{what} seems gone: nothing new stored for {format_duration(round(idle, 1))} ({why}); "
            f"was its pod or wrapper killed? exiting {GONE} (--stale-after 0 waits for ever)"
        )


def stale(reader: Reader, chunk_prefix: str, objects: list[ObjectInfo], now: Optional[float] = None) -> bool:
    """For ``summary``: the step's latest chunk under ``chunk_prefix`` is older than three of its
    promises (its modification time against this machine's clock)."""
    chunks = [o for o in objects if o.key.startswith(chunk_prefix)]
    chunks = [o for o in chunks if not o.is_prefix and chunk_seq(o.key[len(chunk_prefix) :]) is not None]
    if not chunks:
        return False
    latest = max(chunks, key=lambda o: o.key)
    seconds = promise(reader, latest.key)
    if seconds is None or not latest.mtime:
        return False
    return (time.time() if now is None else now) - latest.mtime > live.stale_after(seconds)
