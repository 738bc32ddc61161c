"""One upload job: an object to store, built in a worker, and what became of it (for the manifest)."""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Optional

from ..formats.manifest import Entry
from ..store import Stored
from ..store.payload import Payload


@dataclass
class Job:
    key: str
    build: Callable[[], Payload]  # called in the worker: archiving happens off the main thread
    content_type: str = "application/octet-stream"
    on_done: Optional[Callable[[Job], None]] = None
    kind: str = "object"  # for the manifest: log-chunk, log, result, manifest
    metadata: Optional[dict[str, str]] = None  # user metadata stored with the object
    stored: bool = False
    result: Optional[Stored] = None
    error: str = ""
    cause: str = ""  # the code of a whole-store error (reported once on its own) that stopped it
    attempts: int = 0
    retries: int = 0
    size: int = 0
    done: threading.Event = field(default_factory=threading.Event)
    prepared: Optional[Payload] = None  # built and preloaded by the ordered lane's preparer
    build_error: Optional[OSError] = None  # the preparer could not read it

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
