"""Bounded retries of store calls: transient errors only, exponential backoff with jitter."""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TypeVar

from ..store import StoreError
from .errors import from_store_error

T = TypeVar("T")


@dataclass
class Retry:
    """``retries`` more attempts after the first, for transient errors; then a ``ReadError``."""

    where: str  # the store, for messages
    retries: int = 4
    base: float = 0.5
    cap: float = 5.0
    notify: Callable[[str], None] = lambda _message: None
    sleep: Callable[[float], None] = time.sleep
    rng: random.Random = field(default_factory=random.Random)

    def delay(self, attempt: int) -> float:
        top = min(self.cap, self.base * 2 ** min(attempt - 1, 30))
        return self.rng.uniform(top / 2, top)

    def backoff(self, what: str, exc: StoreError, attempt: int) -> None:
        """After failed attempt number ``attempt``: wait, or raise when the budget is spent."""
        if not exc.transient:
            raise exc
        if attempt > self.retries:
            raise from_store_error(exc, self.where, attempt) from None
        delay = self.delay(attempt)
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
