"""The transfer manager: a queue of upload jobs, worker threads, retries, the preflight check.

Two lanes: an *ordered* lane (one worker: live log chunks go up in log order; a chunk that cannot
be stored yet waits, and the ones after it wait on disk behind it) and a *pool* (several workers:
results, archives). The ordered lane is a two-stage pipeline: a *preparer* thread reads the next
chunk ahead (``Store.preload``: its bytes and MD5/SHA-256 digests) while the sender thread has the
current one on the wire, so the CPU work per chunk (decompressing its gzip member, hashing)
overlaps the server's; requests still go out one at a time, in log order, each only after the one
before it is stored, so a reader never sees chunk N+1 while chunk N is missing. Threads start
with the work: the ordered lane's two with the first chunk, a pool worker per job up to
``workers`` (a COMMAND that ends at once, with no output, starts none). With a local store,
``store_here`` makes a job's first attempt on the caller's thread (no hand-off to a worker and
back); a transient failure sends it on to a thread, retried from where it is.

Every request retries transient errors with exponential backoff and full jitter (``retry.py``)
until it succeeds, hits a permanent error, or the flush deadline passes. A permanent error that
concerns the whole store (credentials, bucket) is reported once and fails every other job without
another request. The store is created in the background by the first worker that needs it, so
importing the S3 client never delays COMMAND.

Memory: each worker holds at most one part (``store.s3.PART_SIZE``, 8 MiB) of one object, and
the ordered lane at most ``PREPARED_AHEAD`` prepared chunk besides the one being sent; the
queues hold small Job records (one per sealed chunk: their number is bounded by the spool limit
over the chunk size, see ``spool/capture.py``).
"""

from __future__ import annotations

import functools
import threading
import time
from _queue import SimpleQueue  # queue.SimpleQueue, without loading queue (and heapq) after the spawn

from .. import threads
from ..formats.layout import NotSent
from ..report import Reporter
from ..store import Store, StoreError
from ..store.payload import Payload
from .access import StoreAccess
from .job import Job
from .retry import Attempts, Backoff, Deferred, RetryPolicy

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any, Optional

    Clock = Callable[[], float]

__all__ = ["Job", "Uploader"]


_STOP = object()
PREPARED_AHEAD = 1  # ordered jobs prepared (in memory, up to 8 MiB each) besides the one being sent


class Uploader(StoreAccess):
    def __init__(
        self,
        store_factory: Callable[[], Store],
        reporter: Reporter,
        workers: int = 4,
        clock: Clock = time.monotonic,
        policy: Optional[RetryPolicy] = None,
        notify: Optional[Callable[[], None]] = None,
    ) -> None:
        super().__init__(store_factory, reporter, clock, policy or RetryPolicy())
        self._backoff = Backoff(clock)
        self._notify = notify  # called after every finished job (wakes the supervisor's loop)
        self._ordered: SimpleQueue[object] = SimpleQueue()
        self._ready: SimpleQueue[object] = SimpleQueue()  # ordered jobs, prepared, for the sender
        self._ahead = threading.Semaphore(PREPARED_AHEAD + 1)  # prepared and not finished yet
        self._pool: SimpleQueue[object] = SimpleQueue()
        self._workers = workers
        self._threads: list[threads.Handle] = []
        self._started = False  # start() was called: jobs start the lanes' threads
        self._stopping = False  # stop() was called: no thread starts any more
        self._ordered_lane = False  # its two threads are started
        self._pool_workers = 0  # pool workers started
        self._jobs: list[Job] = []
        self._ordered_pending = 0
        self._last_backoff: Optional[Backoff] = None
        self.failed_causes: set[str] = set()  # codes of the permanent errors met

    # -- lifecycle ---------------------------------------------------------------------------
    def start(
        self,
        preflight: str = "off",
        probe_prefix: str = "",
        warm_up: bool = True,
        here: bool = False,
        ordered_lane: bool = False,
    ) -> None:
        """Take jobs from now on: each lane's threads start with its first job (a step that
        uploads no live log starts no ordered lane; a pool worker starts per job, up to
        ``workers``). ``warm_up``: build the store (import the S3 client) in the background now.
        ``here``: the preflight check runs on the calling thread (a local store, and nothing to
        overlap it with: COMMAND is gone). ``ordered_lane``: its threads start now, on the calling
        thread (the first live chunk is sealed on the pump's, which must not wait for them)."""
        with self._lock:
            self._started = True
            ordered, pool = ordered_lane or self._ordered_pending > 0, self._pool.qsize()
        self._lanes(ordered, pool)
        if preflight != "warn":
            self._verdict.set()
            if warm_up:
                threads.start(self._warm_up, "store-warm-up")  # on the final flush's path in a short step
        elif here:
            self._preflight_warn(probe_prefix)
        else:  # build the store and check it in the background
            threads.start(lambda: self._preflight_warn(probe_prefix), "store-warm-up")

    def _lanes(self, ordered: bool, pool: int) -> None:
        """Start the ordered lane's threads if ``ordered`` and up to ``pool`` more pool workers."""
        with self._lock:
            if not self._started or self._stopping:
                return
            start_ordered = ordered and not self._ordered_lane
            self._ordered_lane = self._ordered_lane or start_ordered
            first = self._pool_workers
            self._pool_workers = min(self._workers, first + pool)
        names = [("upload-ordered", self._ready)] if start_ordered else []
        names += [(f"upload-{i}", self._pool) for i in range(first, self._pool_workers)]
        for name, q in names:
            self._threads.append(threads.start(functools.partial(self._work, q), name, background=True))
        if start_ordered:
            self._threads.append(threads.start(self._prepare_ordered, "upload-prepare", background=True))

    def submit(self, job: Job, ordered: bool = False) -> Job:
        with self._lock:
            self._jobs.append(job)
            if ordered:
                self._ordered_pending += 1
        (self._ordered if ordered else self._pool).put(job)
        self._lanes(ordered, 0 if ordered else 1)
        return job

    def backlog(self) -> int:
        """Ordered jobs (log chunks) submitted and not finished yet."""
        return self._ordered_pending

    def set_deadline(self, deadline: Optional[float]) -> None:
        """From now on, no attempt starts after ``deadline`` (monotonic seconds)."""
        self._backoff.set_deadline(deadline)
        if self._last_backoff is not None:
            self._last_backoff.set_deadline(deadline)

    def abandon(self) -> None:
        """Queued and retrying jobs make no further attempt (they are being reported missing)."""
        self._abandoned = True
        self._backoff.set_deadline(self._clock())

    def wait(self, jobs: list[Job], deadline: Optional[float]) -> bool:
        """Wait for ``jobs`` until ``deadline``; True when all are done (stored or failed)."""
        for job in jobs:
            timeout = None if deadline is None else max(0.0, deadline - self._clock())
            if not job.done.wait(timeout):
                return False
        return True

    def stop(self) -> None:
        """Let the workers finish what is queued, then end."""
        with self._lock:
            self._stopping = True
            workers = self._pool_workers
        for _ in range(workers):
            self._pool.put(_STOP)
        self._ordered.put(_STOP)

    def close(self, deadline: Optional[float]) -> list[Job]:
        """Finish every submitted job by ``deadline``; return the jobs not stored."""
        self.set_deadline(deadline)
        self.stop()
        with self._lock:
            jobs = list(self._jobs)
        self.wait(jobs, deadline)
        return [j for j in jobs if not j.stored]

    def start_last(self, job: Job, deadline: float) -> Job:
        """Upload ``job`` on a thread of its own (workers may be stuck on a dead connection),
        with its own ``deadline``; wait for ``job.done``."""
        with self._lock:
            self._jobs.append(job)
        backoff = self._last(deadline)
        threads.start(functools.partial(self._finish, job, backoff), "upload-last")
        return job

    def _last(self, deadline: float) -> Backoff:
        backoff = Backoff(self._clock)
        backoff.set_deadline(deadline)
        self._last_backoff = backoff
        return backoff

    def store_here(self, job: Job, last: Optional[float] = None) -> Job:
        """Make ``job``'s first attempt on the calling thread, sparing two thread hand-offs: for a
        store with no network to hang on (a local directory). Should it fail for now, the job
        goes on, retried from where it is, where waiting costs the caller nothing: in the pool
        (as ``submit``), or with ``last``, its deadline, on a thread of its own (as ``start_last``).
        So it does too while the preflight has not answered (the caller never waits for it)."""
        if not self._verdict.is_set():
            return self.submit(job) if last is None else self.start_last(job, last)
        with self._lock:
            self._jobs.append(job)
        backoff = self._backoff if last is None else self._last(last)
        if self._finish(job, backoff, here=True):
            return job
        if last is not None:
            threads.start(functools.partial(self._finish, job, backoff), "upload-last")
        else:
            self._pool.put(job)
            self._lanes(False, 1)
        return job

    def jobs(self) -> list[Job]:
        with self._lock:
            return list(self._jobs)

    def forget_done(self) -> None:
        """Stop tracking finished jobs (for long-lived users: the library's Logger)."""
        with self._lock:
            self._jobs = [j for j in self._jobs if not j.done.is_set()]

    # -- workers -----------------------------------------------------------------------------
    def _prepare_ordered(self) -> None:
        """The ordered lane's first stage: build and preload each job, in order, for the sender."""
        while True:
            item = self._ordered.get()
            if item is _STOP:
                self._ready.put(_STOP)
                return
            assert isinstance(item, Job)
            self._ahead.acquire()  # released by the sender once the job is finished
            if self.permanent is None and not self._abandoned:
                try:
                    item.prepared = self._preload(item.build())
                except OSError as exc:
                    item.build_error = exc
                except Exception:
                    item.prepared = None  # e.g. the store cannot be set up: the sender reports it
            self._ready.put(item)

    def _preload(self, payload: Payload) -> Payload:
        self._await_verdict(self._backoff)  # no reading ahead for a store that refuses us
        if self.permanent is not None:
            return payload
        preload: Any = getattr(self.store(), "preload", None)
        return payload if preload is None else preload(payload)

    def _work(self, q: SimpleQueue[object]) -> None:
        ordered = q is self._ready
        while True:
            item = q.get()
            if item is _STOP:
                return
            assert isinstance(item, Job)
            try:
                self._finish(item, self._backoff, ordered=ordered)
            finally:
                if ordered:
                    item.prepared = None  # the job record stays (manifest): not its bytes
                    self._ahead.release()

    def _finish(self, job: Job, backoff: Backoff, ordered: bool = False, here: bool = False) -> bool:
        """Run ``job`` to its end; False when ``here`` (its first attempt only) left it to retry."""
        deferred = False
        try:
            self._run(job, backoff, here)
        except Deferred:
            deferred = True
        except Exception as exc:  # never let a worker die: the job fails, others go on
            job.error = f"{type(exc).__name__}: {exc}"
        finally:
            if not deferred:
                self._done(job, ordered)
        return not deferred

    def _done(self, job: Job, ordered: bool) -> None:
        if ordered:
            with self._lock:
                self._ordered_pending -= 1
        if job.on_done is not None:
            try:
                job.on_done(job)
            except Exception as exc:
                self._reporter.error(f"after uploading {job.key}: {exc}")
        job.done.set()
        if self._notify is not None:
            self._notify()

    def _gone(self) -> Optional[StoreError]:
        if not self._abandoned:
            return None
        return StoreError("flush deadline passed", transient=True, code="Deadline")

    def _attempted(self, job: Job) -> None:
        job.attempts += 1
        with self._lock:
            self.requests += 1

    def _run(self, job: Job, backoff: Backoff, here: bool = False) -> None:
        if self.permanent is not None:
            job.error = str(self.permanent)
            job.cause = self.permanent.code
            return
        if backoff is self._backoff and self._abandoned and job.retrying is None:
            job.error = "not started before the flush deadline"
            return
        try:
            if job.build_error is not None:
                raise job.build_error
            payload = job.prepared or job.build()
        except NotSent as exc:
            job.error = str(exc)
            self._reporter.error(f"{job.key if len(job.key) <= 80 else job.key[:60] + '...'}: {job.error}")
            return
        except OSError as exc:
            job.error = f"cannot read: {exc.strerror or exc}"
            self._reporter.error(f"{job.key}: {job.error}")
            return
        job.size = payload.size
        self._await_verdict(backoff)
        attempts = job.retrying or Attempts(
            backoff,
            self._policy,
            self._reporter,
            on_attempt=lambda: self._attempted(job),
            doomed=lambda: self.permanent or (self._gone() if backoff is self._backoff else None),
            first_only=here,
        )
        job.retrying = None
        try:
            stored = self.store().put(job.key, payload, job.content_type, attempts, job.metadata)
        except Deferred:  # to be retried elsewhere (``store_here``), from where it is
            job.retrying, job.prepared = attempts, payload
            raise
        except StoreError as exc:
            job.error = str(exc)
            if not exc.transient:
                self.failed_causes.add(exc.code or str(exc))
            if exc.whole_store:
                job.cause = exc.code
                self._note_permanent(exc)
            elif not exc.transient:
                self._reporter.error(f"{job.key}: {exc} (not retried)")
            return
        finally:
            job.retries = attempts.retries
        job.result = stored
        job.size = stored.size
        job.stored = True
        job.error = ""
        self._reporter.debug(f"stored {job.key} ({stored.size} bytes, attempt {job.attempts})")
