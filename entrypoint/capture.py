"""Capture: COMMAND's output goes into a rolling buffer of chunk files in the spool directory.

The hot path (``LogCapture.write``) only appends to the current chunk file. A chunk is *sealed*
when it reaches the chunk size or when the flush interval passes with unsent data; sealed chunks
are handed on (to the uploader and to the log archiver) and never change again. Memory use does
not depend on the log volume: the bytes live on disk until they are stored.
"""

from __future__ import annotations

import os
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

from . import archive
from .payload import Payload


@dataclass
class Chunk:
    seq: int
    path: Path
    size: int
    users: int = 2  # the uploader and the archiver; the file goes when both are done
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def release(self) -> None:
        with self._lock:
            self.users -= 1
            last = self.users == 0
        if last:
            try:
                os.unlink(self.path)
            except FileNotFoundError:
                pass


def write_all(fd: int, data: memoryview) -> None:
    while data:
        n = os.write(fd, data)
        data = data[n:]


class LogCapture:
    def __init__(
        self,
        directory: Path,
        chunk_size: int,
        flush_interval: float,
        on_sealed: Callable[[Chunk], None],
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.directory = directory
        self.chunk_size = chunk_size
        self.flush_interval = flush_interval
        self._on_sealed = on_sealed
        self._clock = clock
        self._fd = -1
        self._seq = 0
        self._size = 0  # bytes in the current chunk
        self._first_unsent: Optional[float] = None
        self.total = 0  # bytes captured so far

    def _path(self, seq: int) -> Path:
        return self.directory / f"{seq:08d}.log"

    def write(self, data: memoryview) -> None:
        while data:
            if self._fd < 0:
                self._fd = os.open(
                    self._path(self._seq), os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600
                )
            piece = data[: self.chunk_size - self._size]
            write_all(self._fd, piece)
            n = len(piece)
            self._size += n
            self.total += n
            if self._first_unsent is None:
                self._first_unsent = self._clock()
            data = data[n:]
            if self._size >= self.chunk_size:
                self.seal()

    def due(self) -> Optional[float]:
        """When the current chunk must be sealed (monotonic seconds), or None if it is empty."""
        if self._first_unsent is None:
            return None
        return self._first_unsent + self.flush_interval

    def tick(self, now: float) -> None:
        due = self.due()
        if due is not None and now >= due:
            self.seal()

    def seal(self) -> None:
        if self._fd < 0 or self._size == 0:
            return
        os.close(self._fd)
        chunk = Chunk(self._seq, self._path(self._seq), self._size)
        self._fd, self._seq, self._size, self._first_unsent = -1, self._seq + 1, 0, None
        self._on_sealed(chunk)

    def close(self) -> None:
        self.seal()
        if self._fd >= 0:
            os.close(self._fd)
            os.unlink(self._path(self._seq))
            self._fd = -1


class LogArchiver:
    """Compresses sealed chunks in the background into gzip members for ``<step>-log.tgz``.

    At the end the archive is gzip(tar header) + the members + gzip(tar trailer): the tar header
    needs the log's total size, which is only known then, and costs nothing to compress late.
    """

    def __init__(self, directory: Path, member_name: str) -> None:
        self.member_name = member_name
        self.members = directory / "log-members.gz"
        self._out = open(self.members, "wb")  # noqa: SIM115 - closed in finish()
        self._queue: queue.Queue[Optional[Chunk]] = queue.Queue()
        self._error: Optional[OSError] = None
        self._thread = threading.Thread(target=self._work, name="log-archiver", daemon=True)
        self._thread.start()

    def add(self, chunk: Chunk) -> None:
        self._queue.put(chunk)

    def _work(self) -> None:
        while True:
            chunk = self._queue.get()
            if chunk is None:
                return
            try:
                if self._error is None:
                    fd = os.open(chunk.path, os.O_RDONLY | os.O_CLOEXEC)
                    try:
                        archive.gzip_file(fd, self._out)
                    finally:
                        os.close(fd)
            except OSError as exc:
                self._error = exc
            finally:
                chunk.release()

    def finish(self, total: int, mtime: float) -> Payload:
        """Wait for the queued chunks, then describe the whole archive (called in a worker)."""
        self._queue.put(None)
        self._thread.join()
        self._out.close()
        if self._error is not None:
            raise self._error
        header = archive.gzip_member(archive.tar_header(self.member_name, total, mtime))
        trailer = archive.gzip_member(archive.tar_trailer(total))
        return Payload.of(header, self.members, trailer)
