"""The one interface every store implements, and its error type."""

from __future__ import annotations

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
