"""One upload job: an object to store, built in a worker, and what became of it (for the manifest)."""

from __future__ import annotations

import threading

from ..formats.manifest import Entry
from ..store import Stored
from ..store.payload import Payload

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Optional

    from .retry import Attempts


class Job:
    """(A plain class: ``dataclasses`` costs milliseconds on the wrapper's run path. Two jobs are
    equal only if they are the same job.)"""

    __slots__ = (
        "attempts",
        "build",
        "build_error",
        "cause",
        "content_type",
        "done",
        "error",
        "key",
        "kind",
        "metadata",
        "on_done",
        "prepared",
        "result",
        "retries",
        "retrying",
        "size",
        "stored",
    )

    def __init__(self, key: str, build: Callable[[], Payload], content_type: str = "application/octet-stream",
                 on_done: Optional[Callable[[Job], None]] = None, kind: str = "object",
                 metadata: Optional[dict[str, str]] = None) -> None:
        self.key = key
        self.build = build  # called in the worker: archiving happens off the main thread
        self.content_type = content_type
        self.on_done = on_done
        self.kind = kind  # for the manifest: log-chunk, log, result, manifest
        self.metadata = metadata  # user metadata stored with the object
        self.stored = False
        self.result: Optional[Stored] = None
        self.error = ""
        self.cause = ""  # the code of a whole-store error (reported once on its own) that stopped it
        self.attempts = 0
        self.retries = 0
        self.size = 0
        self.done = threading.Event()
        self.prepared: Optional[Payload] = None  # built and preloaded by the ordered lane's preparer
        self.build_error: Optional[OSError] = None  # the preparer could not read it
        self.retrying: Optional[Attempts] = None  # its first attempt failed on the caller's thread

    def __repr__(self) -> str:
        return f"Job(key={self.key!r}, kind={self.kind!r}, stored={self.stored!r}, error={self.error!r})"

    def reason(self, short: bool = False) -> str:
        """Why the job is not stored (for the manifest; ``short`` for stderr lines)."""
        if short and self.cause:
            return f"{self.cause}, see above"
        if self.error:
            return self.error
        if self.attempts:
            return "still uploading at the flush deadline"
        return "not started before the flush deadline"

    def entry(self) -> Entry:
        """This job as the manifest records it."""
        if self.stored and (r := self.result) is not None:
            return Entry(self.key, self.kind, True, r.size, r.sha256, verified=r.verified)
        return Entry(self.key, self.kind, False, reason=self.reason())
