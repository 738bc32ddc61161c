"""The one interface every store implements, its error type and its result type."""

from __future__ import annotations

import io

from ..records import Record
from .payload import Payload

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Mapping
    from typing import Optional, Protocol, TypeVar

    T = TypeVar("T")
    Metadata = Optional[Mapping[str, str]]
else:
    Protocol = object  # protocols are for type checkers: no typing module at run time (start-up cost)



class StoreError(Exception):
    """A failed store operation.

    ``transient`` errors are worth retrying (network, 5xx, throttling); the others are not and
    carry a message naming the cause and the fix. A permanent error with ``whole_store`` set
    (bad credentials, missing bucket) dooms every other upload too, so nothing more is tried;
    without it only this object is affected (a key the server refuses, an object too large).
    """

    def __init__(self, message: str, *, transient: bool, code: str = "", whole_store: bool = False) -> None:
        super().__init__(message)
        self.transient = transient
        self.code = code
        self.whole_store = whole_store and not transient


class Retry(Protocol):
    """Runs one request, retrying transient StoreErrors with backoff until the deadline.

    Stores call it once per request (a single PUT, each part of a multipart upload), so a
    retry resends only what failed, from bytes the store still holds.
    """

    def __call__(self, request: Callable[[], T], what: str) -> T: ...


def once(request: Callable[[], T], what: str) -> T:
    """A ``Retry`` that does not retry (for tools and tests)."""
    return request()


class Stored(Record):
    """What was written: for the manifest."""

    key: str
    size: int
    sha256: str  # hex digest of the object's bytes as sent
    # False: the store could not check that it holds these bytes (an ETag that is no MD5 digest,
    # an object too large to read back); the manifest says so
    verified: bool = True


class Store(Protocol):
    def describe(self) -> str:
        """Where objects go, for messages (never includes credentials)."""

    def check(self, prefix: str) -> None:
        """Preflight: can we reach the bucket (creating it when configured to)? Raises StoreError."""

    def prepare(self) -> None:
        """Make sure the bucket exists, creating it when configured to. Raises StoreError."""

    def put(
        self, key: str, payload: Payload, content_type: str, retry: Retry = once, metadata: Metadata = None
    ) -> Stored:
        """Store ``payload`` under ``key``; nothing is visible under ``key`` unless complete.
        ``metadata``: user metadata stored with it (S3 ``x-amz-meta-*``), where the store keeps any."""

    def get(self, key: str) -> bytes:
        """The object's bytes (small objects; the read side streams)."""

    def list(self, prefix: str) -> list[str]:
        """Keys under ``prefix``, sorted."""


class ObjectInfo(Record):
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

    def metadata(self, key: str) -> dict[str, str]:
        """One object's user metadata (names without ``x-amz-meta-``); empty where none is kept."""

    def list_objects(self, prefix: str, recursive: bool = True, start_after: str = "") -> list[ObjectInfo]:
        """Objects under ``prefix`` with keys after ``start_after``, sorted by key.

        Not recursive: the objects directly under ``prefix`` and, as ``is_prefix`` entries
        ending in ``/``, the next level of "directories".
        """
