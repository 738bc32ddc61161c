"""The transfer manager: a queue of upload jobs, worker threads, retries with backoff.

Two lanes: an *ordered* lane (one worker: live log chunks go up in log order) and a *pool*
(several workers: results, archives). Every job retries transient errors with exponential
backoff and full jitter until it succeeds, hits a permanent error, or the flush deadline passes.
The store is created in the background by the first worker that needs it, so importing the S3
client never delays COMMAND.
"""

from __future__ import annotations

import queue
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Optional

from .payload import Payload
from .report import Reporter
from .store import Store, StoreError

Clock = Callable[[], float]


@dataclass(frozen=True)
class RetryPolicy:
    base: float = 0.2  # first backoff cap, seconds
    cap: float = 10.0  # largest backoff between two attempts
    rng: random.Random = field(default_factory=random.Random, compare=False)

    def delay(self, attempt: int) -> float:
        return self.rng.uniform(0, min(self.cap, self.base * (2 ** min(attempt, 30))))


@dataclass
class Job:
    key: str
    build: Callable[[], Payload]  # called in the worker: archiving happens off the main thread
    content_type: str = "application/octet-stream"
    on_done: Optional[Callable[[Job], None]] = None
    stored: bool = False
    error: str = ""
    attempts: int = 0
    size: int = 0
    done: threading.Event = field(default_factory=threading.Event)


_STOP = object()


class Uploader:
    def __init__(
        self,
        store_factory: Callable[[], Store],
        reporter: Reporter,
        workers: int = 4,
        clock: Clock = time.monotonic,
        policy: Optional[RetryPolicy] = None,
        notify: Optional[Callable[[], None]] = None,
    ) -> None:
        self._store_factory = store_factory
        self._reporter = reporter
        self._clock = clock
        self._policy = policy or RetryPolicy()
        self._notify = notify  # called after every finished job (wakes the supervisor's loop)
        self._ordered: queue.Queue[object] = queue.Queue()
        self._pool: queue.Queue[object] = queue.Queue()
        self._workers = workers
        self._threads: list[threading.Thread] = []
        self._store: Optional[Store] = None
        self._store_lock = threading.Lock()
        self._permanent: Optional[StoreError] = None
        self._deadline: Optional[float] = None
        self._changed = threading.Condition()  # wakes backoff sleeps when the deadline moves
        self._generation = 0
        self._lock = threading.Lock()
        self._jobs: list[Job] = []
        self.failed_causes: set[str] = set()

    # -- lifecycle ---------------------------------------------------------------------------
    def start(self) -> None:
        lanes = [("upload-ordered", self._ordered)] + [
            (f"upload-{i}", self._pool) for i in range(self._workers)
        ]
        for name, q in lanes:
            t = threading.Thread(target=self._work, args=(q,), name=name, daemon=True)
            t.start()
            self._threads.append(t)
        # Warm up: build the store (imports the S3 client) and check the bucket in the background.
        threading.Thread(target=self._warm_up, name="store-warm-up", daemon=True).start()

    def submit(self, job: Job, ordered: bool = False) -> Job:
        with self._lock:
            self._jobs.append(job)
        (self._ordered if ordered else self._pool).put(job)
        return job

    def set_deadline(self, deadline: Optional[float]) -> None:
        """From now on, no attempt starts after ``deadline`` (monotonic seconds)."""
        with self._changed:
            self._deadline = deadline
            self._generation += 1
            self._changed.notify_all()

    def wait(self, jobs: list[Job], deadline: Optional[float]) -> bool:
        """Wait for ``jobs`` until ``deadline``; True when all are done (stored or failed)."""
        for job in jobs:
            timeout = None if deadline is None else max(0.0, deadline - self._clock())
            if not job.done.wait(timeout):
                return False
        return True

    def stop(self) -> None:
        """Let the workers finish what is queued, then end."""
        for _ in range(self._workers):
            self._pool.put(_STOP)
        self._ordered.put(_STOP)

    def close(self, deadline: Optional[float]) -> list[Job]:
        """Finish every submitted job by ``deadline``; return the jobs not stored."""
        self.set_deadline(deadline)
        for _ in range(self._workers):
            self._pool.put(_STOP)
        self._ordered.put(_STOP)
        with self._lock:
            jobs = list(self._jobs)
        self.wait(jobs, deadline)
        return [j for j in jobs if not j.stored]

    def jobs(self) -> list[Job]:
        with self._lock:
            return list(self._jobs)

    def forget_done(self) -> None:
        """Stop tracking finished jobs (for long-lived users: the library's Logger)."""
        with self._lock:
            self._jobs = [j for j in self._jobs if not j.done.is_set()]

    # -- workers -----------------------------------------------------------------------------
    def _warm_up(self) -> None:
        try:
            self._ready_store()
        except StoreError as exc:
            if not exc.transient:
                self._note_permanent(exc)

    def _ready_store(self) -> Store:
        """The store, created and its bucket checked once per run (serialised)."""
        if self._permanent is not None:
            raise self._permanent
        if self._store is not None:
            return self._store
        with self._store_lock:
            if self._store is None:
                store = self._store_factory()
                store.prepare()
                self._store = store
            return self._store

    def _note_permanent(self, exc: StoreError) -> None:
        with self._lock:
            first = self._permanent is None
            if first:
                self._permanent = exc
        if first:
            self._reporter.error(f"object storage: {exc} (not retried)")

    def _work(self, q: queue.Queue[object]) -> None:
        while True:
            item = q.get()
            if item is _STOP:
                return
            assert isinstance(item, Job)
            try:
                self._run(item)
            except Exception as exc:  # never let a worker die: the job fails, others go on
                item.error = f"{type(exc).__name__}: {exc}"
            finally:
                if item.on_done is not None:
                    try:
                        item.on_done(item)
                    except Exception as exc:
                        self._reporter.error(f"after uploading {item.key}: {exc}")
                item.done.set()
                if self._notify is not None:
                    self._notify()

    def _expired(self, extra: float = 0.0) -> bool:
        return self._deadline is not None and self._clock() + extra > self._deadline

    def _run(self, job: Job) -> None:
        try:
            payload = job.build()
        except OSError as exc:
            job.error = f"cannot read: {exc.strerror or exc}"
            self._reporter.error(f"{job.key}: {job.error}")
            return
        job.size = payload.size
        while True:
            if self._expired():
                job.error = job.error or "flush deadline passed before it could be stored"
                return
            job.attempts += 1
            try:
                store = self._ready_store()
                store.put(job.key, payload, job.content_type)
                job.stored = True
                job.error = ""
                self._reporter.debug(f"stored {job.key} ({payload.size} bytes, attempt {job.attempts})")
                return
            except StoreError as exc:
                job.error = str(exc)
                if not exc.transient:
                    self._note_permanent(exc)
                    self.failed_causes.add(exc.code or str(exc))
                    return
                delay = self._policy.delay(job.attempts)
                self._reporter.debug(f"retrying {job.key} in {delay:.2f}s after: {exc}")
                if self._expired(delay):
                    return
                self._sleep(delay)

    def _sleep(self, delay: float) -> None:
        """Back off for ``delay`` seconds, or less when the deadline changes meanwhile."""
        with self._changed:
            generation = self._generation
            self._changed.wait_for(lambda: self._generation != generation, timeout=delay)
