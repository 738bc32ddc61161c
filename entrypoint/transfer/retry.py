"""Retries: exponential backoff with full jitter, a cap per attempt, one deadline for all.

``Backoff`` is shared by every upload worker: it holds the flush deadline and wakes sleeping
workers early when the deadline moves or when any request succeeds after failures (the store
is back: everyone waiting may try again at once instead of sleeping out a long backoff).
``Attempts`` is the per-job retry loop a store runs each request through.
"""

from __future__ import annotations

import threading
import time

from ..report import Reporter
from ..store import StoreError

TYPE_CHECKING = False
if TYPE_CHECKING:
    import random
    from collections.abc import Callable
    from typing import Optional, TypeVar

    T = TypeVar("T")
    Clock = Callable[[], float]


class RetryPolicy:
    __slots__ = ("base", "cap", "network_cap", "rng")

    def __init__(self, base: float = 0.25, cap: float = 5.0, network_cap: float = 2.0,
                 rng: Optional[random.Random] = None) -> None:
        self.base = base  # the first backoff is drawn from [0, base]
        self.cap = cap  # no wait between two attempts is longer than this (the server is busy)
        self.network_cap = network_cap  # ... or this when the server could not be reached at all
        self.rng = rng  # made on the first retry: ``random`` loads in milliseconds a run rarely needs

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, RetryPolicy):
            return NotImplemented
        return (self.base, self.cap, self.network_cap) == (other.base, other.cap, other.network_cap)

    def __hash__(self) -> int:
        return hash((self.base, self.cap, self.network_cap))

    def __repr__(self) -> str:
        return f"RetryPolicy(base={self.base!r}, cap={self.cap!r}, network_cap={self.network_cap!r})"

    def delay(self, failures: int, error: Optional[StoreError] = None) -> float:
        """Full jitter: uniform in [0, min(cap, base * 2**(failures-1))].

        Connection failures cost the server nothing, so they get the shorter cap: the store is
        noticed sooner when it comes back. Throttling and 5xx answers get the longer one.
        """
        cap = self.network_cap if error is not None and error.code == "Network" else self.cap
        if self.rng is None:
            import random

            self.rng = random.Random()
        return self.rng.uniform(0, min(cap, self.base * (2 ** min(max(failures - 1, 0), 30))))


class DeadlinePassed(StoreError):
    def __init__(self, last: Optional[StoreError]) -> None:
        reason = f"flush deadline passed; last error: {last}" if last else "flush deadline passed"
        super().__init__(reason, transient=True, code=last.code if last else "Deadline")
        self.last = last


class Deferred(Exception):
    """The first attempt of an ``Attempts(first_only=True)`` failed transiently: call it again
    (where it may wait) to go on, as if it had never stopped."""


class Backoff:
    def __init__(self, clock: Clock = time.monotonic) -> None:
        self._clock = clock
        self._cond = threading.Condition()
        self._generation = 0
        self._deadline: Optional[float] = None
        self._failing = False

    @property
    def deadline(self) -> Optional[float]:
        return self._deadline

    def set_deadline(self, deadline: Optional[float]) -> None:
        """From now on no attempt starts after ``deadline`` (monotonic seconds)."""
        with self._cond:
            self._deadline = deadline
            self._wake()

    def expired(self, extra: float = 0.0) -> bool:
        deadline = self._deadline
        return deadline is not None and self._clock() + extra > deadline

    def failed(self) -> None:
        self._failing = True

    def succeeded(self) -> None:
        if self._failing:
            with self._cond:
                self._failing = False
                self._wake()

    def _wake(self) -> None:
        self._generation += 1
        self._cond.notify_all()

    def sleep(self, delay: float) -> None:
        """Wait ``delay`` seconds, less if the deadline moves or the store answers again."""
        with self._cond:
            generation = self._generation
            self._cond.wait_for(lambda: self._generation != generation, timeout=delay)


class Attempts:
    """The retry loop of one upload job (a ``store.base.Retry``)."""

    def __init__(
        self,
        backoff: Backoff,
        policy: RetryPolicy,
        reporter: Reporter,
        on_attempt: Callable[[], None] = lambda: None,
        on_transient: Callable[[StoreError], None] = lambda _exc: None,
        doomed: Callable[[], Optional[StoreError]] = lambda: None,
        first_only: bool = False,
    ) -> None:
        self.backoff = backoff
        self.policy = policy
        self.reporter = reporter
        self.on_attempt = on_attempt
        self.on_transient = on_transient
        self.doomed = doomed  # a whole-store permanent error seen elsewhere: stop at once
        self.retries = 0
        self.first_only = first_only  # a transient failure of the first attempt raises Deferred
        self._deferred: Optional[StoreError] = None  # that failure: the next call backs off first

    def __call__(self, request: Callable[[], T], what: str) -> T:
        failures = 0
        last = self._deferred
        if last is not None:  # the first attempt failed where it could not wait: back off now
            self._deferred = None
            failures = 1
            self._back_off(failures, last, what)
        while True:
            fatal = self.doomed()
            if fatal is not None:
                raise fatal
            if self.backoff.expired():
                raise DeadlinePassed(last)
            self.on_attempt()
            try:
                result = request()
            except StoreError as exc:
                if not exc.transient:
                    raise
                last = exc
                failures += 1
                self.retries += 1
                self.backoff.failed()
                self.on_transient(exc)
                if self.first_only:
                    self.first_only = False
                    self._deferred = exc
                    raise Deferred(what) from None
                self._back_off(failures, exc, what)
                continue
            self.backoff.succeeded()
            return result

    def _back_off(self, failures: int, exc: StoreError, what: str) -> None:
        delay = self.policy.delay(failures, exc)
        if self.backoff.expired(delay):
            raise DeadlinePassed(exc) from None
        self.reporter.debug(f"retry {failures} of {what} in {delay:.2f}s after: {exc}")
        self.backoff.sleep(delay)
