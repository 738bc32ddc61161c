"""Bounded retries of store calls for the reader: a count of attempts, the one backoff policy.

The delays come from ``transfer.retry.RetryPolicy`` (full jitter, capped), as the wrapper's
uploads do; the reader differs only in what bounds the retries (a count, ``--retries``, rather
than a flush deadline) and in saying each retry on stderr.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TypeVar

from ..store import StoreError
from ..transfer.retry import RetryPolicy
from .errors import from_store_error

T = TypeVar("T")


@dataclass
class Retry:
    """``retries`` more attempts after the first, for transient errors; then a ``ReadError``."""

    where: str  # the store, for messages
    retries: int = 4
    notify: Callable[[str], None] = lambda _message: None
    sleep: Callable[[float], None] = time.sleep
    policy: RetryPolicy = field(default_factory=RetryPolicy)

    def backoff(self, what: str, exc: StoreError, attempt: int) -> None:
        """After failed attempt number ``attempt``: wait, or raise when the budget is spent."""
        if not exc.transient:
            raise exc
        if attempt > self.retries:
            raise from_store_error(exc, self.where, attempt) from None
        delay = self.policy.delay(attempt, exc)
        self.notify(f"{what}: {exc}; retrying in {delay:.1f}s ({attempt}/{self.retries})")
        self.sleep(delay)

    def call(self, what: str, fn: Callable[[], T]) -> T:
        """``fn()``, retried; permanent ``StoreError``s are raised unchanged (callers handle NoSuchKey)."""
        attempt = 0
        while True:
            attempt += 1
            try:
                return fn()
            except StoreError as exc:
                self.backoff(what, exc, attempt)
