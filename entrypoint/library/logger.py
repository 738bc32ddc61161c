"""``Logger``: a binary file-like object whose bytes end up in object storage, in order.

The counterpart of the Go package's ``Logger`` (an ``io.Writer`` synced to object storage at
``MaxSize`` and on ``Close()``), built on the command line's capture and uploader: bytes go to a
chunk file in a spool directory (``write`` never waits on the network); a chunk is sealed when
the next write would take it past ``max_size`` (so records written whole stay whole) or when
``flush_interval`` passes with unsent data; sealed chunks are uploaded in order by one
background worker as ``<prefix>00000000.log``, ``<prefix>00000001.log``, ... whose
concatenation in key order is exactly what was written.

Signal safety: ``flush_on_signals`` runs its flush in the main thread from a signal handler. If
the signal interrupted this Logger's own critical section in that thread, the flush is deferred
to the moment the section ends, so the handler never sees a half-updated chunk.
"""

from __future__ import annotations

import atexit
import datetime
import io
import os
import shutil
import socket
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Optional, Union

from ..formats.layout import CHUNK_DIGITS, check_name, library_log_prefix, name_problem
from ..spool.capture import LogCapture
from ..spool.chunk import Chunk
from ..store.payload import Payload
from ..transfer.uploader import Job, Uploader
from ..units import parse_duration, parse_size
from . import stores
from .config import ObjectStoreConfig
from .errors import ObjectStoreError, redact
from .textstream import Seconds, TextStream

Size = Union[int, str]
_MAX_FAILED_KEPT = 100


class Logger(io.RawIOBase):
    """Write bytes; they are stored under ``prefix`` in chunks of at most ``max_size`` bytes.

    ``Logger(config, ...)`` starts at once; ``Logger(max_size=...)`` then
    ``load_defaults(config)`` mirrors the Go API. Thread-safe. ``flush()`` waits until
    everything written so far is stored; ``close()`` flushes and stops (also at interpreter exit
    unless ``close_at_exit=False``). Use ``text()`` for a text stream, e.g. for
    ``logging.StreamHandler``.
    """

    def __init__(
        self,
        config: Optional[ObjectStoreConfig] = None,
        *,
        max_size: Optional[Size] = None,
        flush_interval: Optional[Seconds] = None,
        prefix: Optional[str] = None,
        flush_timeout: Optional[Seconds] = None,
        content_type: str = "text/plain; charset=utf-8",
        close_at_exit: bool = True,
    ) -> None:
        super().__init__()
        self._max_size_arg = max_size
        self._interval_arg = flush_interval
        self._prefix_arg = prefix
        self._timeout_arg = flush_timeout
        self.content_type = content_type
        self.close_at_exit = close_at_exit
        self.config: Optional[ObjectStoreConfig] = None
        self.max_size = 0
        self.flush_interval = 0.0
        self.flush_timeout = 0.0
        self.prefix = ""
        self._lock = threading.RLock()
        self._owner: Optional[int] = None
        self._depth = 0
        self._deferred: list[Callable[[], None]] = []
        self._loaded = False
        self._enabled = True
        self._is_closed = False
        self._capture: Optional[LogCapture] = None
        self._uploader: Optional[Uploader] = None
        self._spool: Optional[Path] = None
        self._sealed_bytes = 0
        self._pending: list[Job] = []  # submitted, outcome not yet looked at
        self._failed: list[Job] = []  # not stored, not yet reported (the first few)
        self._failed_count = 0
        self._jobs_lock = threading.Lock()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._ticker: Optional[threading.Thread] = None
        if config is not None:
            self.load_defaults(config)

    def __repr__(self) -> str:
        state = "closed" if self._is_closed else "open" if self._loaded else "not loaded"
        return f"Logger(prefix={self.prefix!r}, max_size={self.max_size}, {state})"

    # -- setup -------------------------------------------------------------------------------
    def load_defaults(self, config: ObjectStoreConfig) -> None:
        """Connect to the store ``config`` describes and start the background uploads.

        Does not wait on the network: the bucket is checked (and created when
        ``config.create_bucket``) in the background; problems are reported on stderr and raised
        by ``flush()`` and ``close()``. A bad config raises ``ObjectStoreConfigError`` here.
        """
        self._enter()
        try:
            if self._is_closed:
                raise ValueError("load_defaults() on a closed Logger")
            if self._loaded:
                raise ValueError("Logger is already loaded")
            self._configure(config)
            if config.enable:
                self._start(config)
            else:
                self._enabled = False
            self._loaded = True
        finally:
            self._exit()
        if self.close_at_exit:
            atexit.register(self._close_at_exit)

    def _configure(self, config: ObjectStoreConfig) -> None:
        max_size = self._max_size_arg if self._max_size_arg is not None else config.log_chunk_size
        self.max_size = parse_size(max_size) if isinstance(max_size, str) else int(max_size)
        if self.max_size < 1:
            raise ValueError(f"max_size must be at least 1 byte, not {self.max_size}")
        interval = self._interval_arg if self._interval_arg is not None else config.log_flush_interval
        self.flush_interval = _seconds("flush_interval", interval)
        timeout = self._timeout_arg if self._timeout_arg is not None else config.flush_timeout
        self.flush_timeout = _seconds("flush_timeout", timeout)
        prefix = self._prefix_arg if self._prefix_arg is not None else default_prefix(config.key_prefix)
        self.prefix = normalise_prefix(prefix)
        self.config = config

    def _start(self, config: ObjectStoreConfig) -> None:
        store = stores.open_for(config)  # validates; the S3 client is not contacted yet
        if config.spool_dir:
            Path(config.spool_dir).mkdir(parents=True, exist_ok=True)
        self._spool = Path(tempfile.mkdtemp(prefix="tekton-uploader-log-", dir=config.spool_dir or None))
        interval = self.flush_interval if self.flush_interval > 0 else float("inf")
        self._capture = LogCapture(self._spool, self.max_size, interval, self._sealed)
        self._uploader = Uploader(lambda: store, stores.ScrubbingReporter(config), workers=1)
        self._uploader.start()
        if self.flush_interval > 0:
            self._ticker = threading.Thread(target=self._tick_loop, name="logger-flush", daemon=True)
            self._ticker.start()

    # -- the file-like interface ---------------------------------------------------------------
    def writable(self) -> bool:
        return True

    @property
    def closed(self) -> bool:
        return self._is_closed

    def write(self, data: Any) -> int:
        """Append ``data`` (bytes-like); never waits on the network. Returns ``len(data)``."""
        if isinstance(data, str):
            raise TypeError("Logger.write() takes bytes, not str; use Logger.text() for text")
        view = memoryview(data)
        if view.ndim != 1 or view.itemsize != 1:
            view = view.cast("B")
        n = len(view)
        self._enter()
        try:
            if self._is_closed:
                raise ValueError("write to a closed Logger")
            if not self._loaded:
                raise ValueError("Logger is not loaded: call load_defaults(config) first")
            capture = self._capture
            if n and capture is not None:
                pending = capture.total - self._sealed_bytes
                if pending and pending + n > self.max_size:
                    capture.seal()  # keep what was written in one call in one object
                    pending = 0
                capture.write(view)
                if not pending:
                    self._wake.set()  # the flush interval starts now
        finally:
            self._exit()
        return n

    def flush(self, timeout: Optional[Seconds] = None) -> None:
        """Store everything written so far; wait up to ``timeout`` s (default ``flush_timeout``).

        Raises ``ObjectStoreError`` naming the objects not stored (uploads still pending keep
        being retried in the background). No-op on a closed or disabled Logger.
        """
        self._enter()
        try:
            if self._is_closed or self._capture is None or self._uploader is None:
                return
            self._capture.seal()
            uploader = self._uploader
        finally:
            self._exit()
        with self._jobs_lock:
            jobs = list(self._pending)
        limit = self.flush_timeout if timeout is None else _seconds("timeout", timeout)
        done = uploader.wait(jobs, time.monotonic() + limit)
        uploader.forget_done()
        if not done:
            waiting = [j.key for j in jobs if not j.done.is_set()]
            raise self._error(
                f"{len(waiting)} log object(s) not stored within {limit:g} s, still retrying: "
                f"{_first(waiting, jobs)}",
                waiting,
                transient=True,
            )
        self._raise_failures()

    def close(self, timeout: Optional[Seconds] = None) -> None:
        """Store what is left and stop; waits up to ``timeout`` s (default ``flush_timeout``).

        Raises ``ObjectStoreError`` listing the objects that could not be stored by then.
        """
        self._enter()
        try:
            if self._is_closed:
                return
            self._is_closed = True
            if self._capture is not None:
                self._capture.close()
        finally:
            self._exit()
        try:
            atexit.unregister(self._close_at_exit)
            missing: list[Job] = []
            if self._uploader is not None:
                self._stop.set()
                self._wake.set()
                limit = self.flush_timeout if timeout is None else _seconds("timeout", timeout)
                missing = self._uploader.close(time.monotonic() + limit)
                if self._spool is not None:
                    shutil.rmtree(self._spool, ignore_errors=True)
            with self._jobs_lock:
                self._collect()
                known = {j.key for j in missing}
                count = len(missing) + sum(j.key not in known for j in self._failed)
                count += self._failed_count - len(self._failed)
                missing += [j for j in self._failed if j.key not in known]
                self._failed, self._failed_count = [], 0
        finally:
            super().close()
        if missing:
            keys = [j.key for j in missing]
            raise self._error(
                f"{count} log object(s) not stored: {_describe(missing[0])}", keys, transient=False
            )

    def text(self, encoding: str = "utf-8", errors: str = "backslashreplace") -> TextStream:
        """A text stream over this Logger, e.g. ``logging.StreamHandler(logger.text())``.

        Its ``flush()`` does not wait on the network (``StreamHandler`` flushes after every
        record); ``sync()`` does. Closing it leaves the Logger open.
        """
        return TextStream(self, encoding, errors)

    # -- background ----------------------------------------------------------------------------
    def _sealed(self, chunk: Chunk) -> None:
        """Called by the capture, inside the critical section, for each sealed chunk."""
        assert self._uploader is not None
        self._sealed_bytes += chunk.size
        job = Job(
            key=f"{self.prefix}{chunk.seq:0{CHUNK_DIGITS}d}.log",
            build=lambda: Payload((chunk.path,), chunk.size),
            content_type=self.content_type,
            on_done=lambda _job: chunk.done(uploaded=True, archived=True),  # no archiver here
        )
        with self._jobs_lock:
            self._collect()
            self._pending.append(job)
        self._uploader.forget_done()
        self._uploader.submit(job, ordered=True)

    def _collect(self) -> None:
        """Look at finished uploads (holding ``_jobs_lock``): keep failures for flush()/close()."""
        pending = []
        for job in self._pending:
            if not job.done.is_set():
                pending.append(job)
            elif not job.stored:
                self._failed_count += 1
                if len(self._failed) < _MAX_FAILED_KEPT:
                    self._failed.append(job)
        self._pending = pending

    def _raise_failures(self) -> None:
        with self._jobs_lock:
            self._collect()
            failed, count = self._failed, self._failed_count
            self._failed, self._failed_count = [], 0
        if failed:
            raise self._error(
                f"{count} log object(s) could not be stored: {_describe(failed[0])}",
                [j.key for j in failed],
                transient=False,
            )

    def _tick_loop(self) -> None:
        """Seal the current chunk ``flush_interval`` after its first unsent byte."""
        while not self._stop.is_set():
            self._wake.clear()
            self._enter()
            try:
                if self._is_closed or self._capture is None:
                    return
                now = time.monotonic()
                self._capture.tick(now)
                due = self._capture.due()
            finally:
                self._exit()
            self._wake.wait(None if due is None else max(0.0, due - now))

    def _close_at_exit(self) -> None:
        try:
            self.close()
        except ObjectStoreError as exc:
            stores.ScrubbingReporter(self.config or ObjectStoreConfig()).error(str(exc))

    def _error(self, message: str, keys: list[str], transient: bool) -> ObjectStoreError:
        secrets = self.config.secrets() if self.config is not None else []
        return ObjectStoreError(redact(message, secrets), keys=keys, transient=transient)

    # -- the critical section (signal-safe, see the module docstring) ---------------------------
    def _enter(self) -> None:
        self._lock.acquire()
        self._depth += 1
        self._owner = threading.get_ident()

    def _exit(self) -> None:
        self._depth -= 1
        actions: list[Callable[[], None]] = []
        if self._depth == 0:
            self._owner = None
            if self._deferred:
                actions, self._deferred = self._deferred, []
        self._lock.release()
        for action in actions:
            action()

    def call_when_safe(self, action: Callable[[], None]) -> None:
        """Run ``action`` now, or, when called (from a signal handler) inside this thread's
        critical section, as soon as that section ends."""
        if self._owner == threading.get_ident():
            self._deferred.append(action)
        else:
            action()




def default_prefix(key_prefix: str) -> str:
    """``<key_prefix>/_logs/<UTC time>-<host>-<pid>/``: new for each Logger, sorting by start time.

    ``tekton-uploader-read library-logs`` lists and prints them.
    """
    stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y%m%dT%H%M%S.%fZ")
    host = socket.gethostname()
    if name_problem(host) or len(host) > 100:
        host = "host"
    return library_log_prefix(key_prefix, f"{stamp}-{host}-{os.getpid()}")


def normalise_prefix(prefix: str) -> str:
    """``a/b`` or ``/a/b/`` -> ``a/b/``; each segment must be a plain name (``ValueError``)."""
    stripped = prefix.strip("/")
    if not stripped:
        return ""
    for part in stripped.split("/"):
        check_name("log prefix segment", part)
    return stripped + "/"


def _seconds(what: str, value: Seconds) -> float:
    seconds = parse_duration(value) if isinstance(value, str) else float(value)
    if seconds < 0:
        raise ValueError(f"{what} must not be negative")
    return seconds


def _describe(job: Job) -> str:
    return f"{job.key} ({job.error or 'still uploading at the deadline'})"


def _first(keys: list[str], jobs: list[Job]) -> str:
    for job in jobs:
        if job.key == keys[0]:
            return _describe(job)
    return keys[0]
