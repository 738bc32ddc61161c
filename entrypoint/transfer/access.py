"""The store as the uploader reaches it: created once, in the background, checked by the preflight.

A permanent error that concerns the whole store (credentials, bucket) is recorded once
(``permanent``) and reported once; uploads wait for the preflight's verdict before their first
request (``_await_verdict``), so a misconfiguration costs the preflight's one request, not one
per worker.
"""

from __future__ import annotations

import threading

from ..report import Reporter
from ..store import Store, StoreError
from .retry import Attempts, Backoff, DeadlinePassed, RetryPolicy

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Optional

VERDICT_POLL = 0.5  # s: how often a job waiting for the preflight looks at the flush deadline


class StoreAccess:
    def __init__(
        self,
        store_factory: Callable[[], Store],
        reporter: Reporter,
        clock: Callable[[], float],
        policy: RetryPolicy,
    ) -> None:
        self._store_factory = store_factory
        self._reporter = reporter
        self._clock = clock
        self._policy = policy
        self._store: Optional[Store] = None
        self._store_lock = threading.Lock()
        self.permanent: Optional[StoreError] = None
        self._lock = threading.Lock()
        self._abandoned = False  # the flush gave up: no more attempts
        self._verdict = threading.Event()  # the preflight has answered (or there is none)
        self.awaiting_verdict = 0  # jobs waiting for it now (tests watch this)
        self.requests = 0  # attempts made, all jobs

    def store(self) -> Store:
        """The store, created once per run (serialised); no network involved."""
        if self._store is not None:
            return self._store
        with self._store_lock:
            if self._store is None:
                try:
                    self._store = self._store_factory()
                except StoreError:
                    raise
                except Exception as exc:  # e.g. the S3 client failed to import
                    raise StoreError(
                        f"cannot set up the store: {type(exc).__name__}: {exc}",
                        transient=False,
                        code="Unexpected",
                        whole_store=True,
                    ) from None
            return self._store

    def _warm_up(self) -> None:
        try:
            self.store()
        except StoreError as exc:
            self._note_permanent(exc)

    def _preflight_warn(self, prefix: str) -> None:
        """In the background while COMMAND runs: report a misconfiguration within seconds."""
        try:
            self._check(prefix)
        finally:
            self._verdict.set()

    def _check(self, prefix: str) -> None:
        with self._lock:
            self.requests += 1
        try:
            self.store().check(prefix)
        except StoreError as exc:
            if exc.transient:
                self._reporter.warn(
                    f"object storage not reachable yet ({exc}); uploads keep retrying; "
                    "check --endpoint (OBJECTSTORE_ENDPOINT) and the network"
                )
            elif exc.whole_store and exc.code != "AccessDenied":
                self._note_permanent(exc)
            else:  # AccessDenied on a listing: write-only credentials may still upload
                self._reporter.warn(f"preflight: {exc}; uploads will be tried anyway")
            return
        self._reporter.debug("preflight: bucket reachable")

    def preflight_strict(self, prefix: str, timeout: float) -> Optional[StoreError]:
        """Before COMMAND starts: None when the bucket is usable, else the error (transient
        errors are retried for ``timeout`` seconds)."""
        backoff = Backoff(self._clock)
        backoff.set_deadline(self._clock() + timeout)
        attempts = Attempts(backoff, self._policy, self._reporter)
        try:
            attempts(lambda: self.store().check(prefix), "preflight")
        except DeadlinePassed as exc:
            last = exc.last
            return StoreError(
                f"object storage unreachable for {timeout:.0f}s ({last or 'no answer'})",
                transient=True,
                code=exc.code,
            )
        except StoreError as exc:
            return exc
        return None

    def _note_permanent(self, exc: StoreError) -> StoreError:
        """Record the first whole-store error (reported once); return the one recorded."""
        with self._lock:
            first = self.permanent is None
            if first:
                self.permanent = exc
        if first:
            self._reporter.error(f"object storage: {exc} (not retried)")
        assert self.permanent is not None
        return self.permanent

    def _await_verdict(self, backoff: Backoff) -> None:
        """Before a job's first request: wait for the background preflight's answer. It is one
        request, bounded by the connect and read timeouts, and costs nothing when the store is
        healthy; when the store refuses us, no upload has gone out beside it (no burst of 403s,
        whatever the machine's speed). The flush deadline and ``abandon`` end the wait."""
        if self._verdict.is_set():
            return
        with self._lock:
            self.awaiting_verdict += 1
        try:
            while not self._verdict.wait(VERDICT_POLL):
                if self._abandoned or backoff.expired():
                    return
        finally:
            with self._lock:
                self.awaiting_verdict -= 1
