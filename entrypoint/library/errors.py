"""The library's exceptions; their messages pass through the one redactor (``entrypoint.redact``)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from ..redact import MASK, scrub

__all__ = ["MASK", "ObjectStoreConfigError", "ObjectStoreError", "redact"]


class ObjectStoreError(Exception):
    """Object storage could not do what was asked.

    ``keys`` names the objects that were not stored (if any); ``transient`` says whether trying
    again later may help (network trouble, throttling) or not (credentials, bucket, names).
    """

    def __init__(self, message: str, *, keys: Sequence[str] = (), transient: bool = False) -> None:
        super().__init__(message)
        self.keys = list(keys)
        self.transient = transient


class ObjectStoreConfigError(ObjectStoreError, ValueError):
    """An ``ObjectStoreConfig`` value is invalid; the message names the field and the fix."""


def redact(text: str, secrets: Iterable[str]) -> str:
    """``text`` with every occurrence of each secret of a config replaced by ``***``."""
    return scrub(text, secrets)
