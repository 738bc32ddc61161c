"""The one interface every store implements, and its error type."""

from __future__ import annotations

import io
from dataclasses import dataclass
from typing import Protocol

from ..payload import Payload


class StoreError(Exception):
    """A failed store operation.

    ``transient`` errors are worth retrying (network, 5xx, throttling); the others are not
    (bad credentials, missing bucket) and carry a message naming the cause and the fix.
    """

    def __init__(self, message: str, *, transient: bool, code: str = "") -> None:
        super().__init__(message)
        self.transient = transient
        self.code = code


class Store(Protocol):
    def describe(self) -> str:
        """Where objects go, for messages (never includes credentials)."""

    def prepare(self) -> None:
        """Check the bucket once per run, creating it when configured to."""

    def put(self, key: str, payload: Payload, content_type: str) -> None:
        """Store ``payload`` under ``key``; nothing is visible under ``key`` unless complete."""

    def get(self, key: str) -> bytes:
        """The object's bytes (small objects; the read side streams)."""

    def list(self, prefix: str) -> list[str]:
        """Keys under ``prefix``, sorted."""


@dataclass(frozen=True)
class ObjectInfo:
    """One listed object; ``is_prefix`` marks a "directory" of a non-recursive listing."""

    key: str
    size: int = 0
    mtime: float = 0.0  # seconds since the epoch
    is_prefix: bool = False


class ReadableStore(Store, Protocol):
    """What the read side needs on top of ``Store``: streaming reads and listings with metadata.

    Errors are ``StoreError``; a missing object has ``code == "NoSuchKey"``, a missing bucket
    ``code == "NoSuchBucket"``.
    """

    def open_read(self, key: str, offset: int = 0) -> io.RawIOBase:
        """A stream of the object's bytes from ``offset``; reads raise ``StoreError``."""

    def stat(self, key: str) -> ObjectInfo:
        """Size and modification time of one object."""

    def list_objects(self, prefix: str, recursive: bool = True, start_after: str = "") -> list[ObjectInfo]:
        """Objects under ``prefix`` with keys after ``start_after``, sorted by key.

        Not recursive: the objects directly under ``prefix`` and, as ``is_prefix`` entries
        ending in ``/``, the next level of "directories".
        """
