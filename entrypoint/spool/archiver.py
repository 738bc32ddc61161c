"""The log archiver: compresses each sealed chunk into its member of <step>-log.tgz as the run goes."""

from __future__ import annotations

import os
import threading
from _queue import SimpleQueue  # queue.SimpleQueue, without loading queue (and heapq) after the spawn

from .. import threads
from ..formats import archive
from ..store.payload import GzipMember, Payload
from .budget import SpoolBudget
from .chunk import Chunk

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import BinaryIO, Optional

    from _typeshed import StrPath

HOLD_WAIT = 5.0  # how long the archiver waits for an upload reading a chunk's raw file


class LogArchiver:
    """Compresses sealed chunks in the background into gzip members for ``<step>-log.tgz``.

    At the end the archive is gzip(tar header) + the members + gzip(tar trailer): the tar header
    needs the log's total size, which is only known then, and costs nothing to compress late.
    The members, decompressed one after another, are the log itself: ``plain()`` is the archive's
    member as a payload of its own (the plain-text log for Tekton Results).
    """

    def __init__(self, directory: StrPath, member_name: str, budget: Optional[SpoolBudget] = None) -> None:
        self.member_name = member_name
        self._budget = budget
        self.members = os.path.join(directory, "log-members.gz")  # os.path: no pathlib on the run path
        self._error: Optional[OSError] = None
        self._out: Optional[BinaryIO] = None
        try:  # COMMAND runs already: a lost spool costs the log archive only, never COMMAND's output
            self._out = open(self.members, "wb")  # noqa: SIM115 - closed in finish()
        except OSError as exc:
            self._error = exc
        # each chunk's member is also read on its own (``GzipMember``) by a later upload
        self._queue: SimpleQueue[Optional[Chunk]] = SimpleQueue()
        self._added = self._compressed = 0  # chunks (each written by one thread only)
        self._parts: list[GzipMember] = []  # every member, in log order (``plain()``)
        self._finish_lock = threading.Lock()
        self._finished = False
        self._thread: Optional[threads.Handle] = None

    def start(self) -> None:
        """Compress in the background from now on (the first ``add`` starts it too)."""
        with self._finish_lock:
            if self._thread is None and not self._finished:
                self._thread = threads.start(self._work, "log-archiver", background=True)

    def add(self, chunk: Chunk) -> None:
        if self._thread is None:
            self.start()
        self._added += 1
        self._queue.put(chunk)

    def _work(self) -> None:
        while True:
            chunk = self._queue.get()
            if chunk is None:
                return
            try:
                self._compress(chunk)
            finally:
                self._compressed += 1

    def _compress(self, chunk: Chunk) -> None:
        member: Optional[GzipMember] = None
        out = self._out
        try:
            if self._error is None and out is not None:
                if self._budget is not None:
                    self._budget.start_archiving(chunk.size)
                offset = out.tell()
                fd = os.open(chunk.path, os.O_RDONLY | os.O_CLOEXEC)
                try:
                    size = archive.gzip_file(fd, out)
                finally:
                    os.close(fd)
                out.flush()  # uploads read the member through a file of their own
                part = GzipMember(self.members, offset, out.tell() - offset, size)
                self._parts.append(part)
                if size == chunk.size:
                    member = part
        except OSError as exc:
            self._error = exc
        finally:
            if self._budget is not None:
                self._budget.end_archiving(out.tell() if out is not None else 0)
            chunk.done(archived=True, member=member)
        if member is not None:  # at most one chunk is both compressed and raw (held by its upload)
            chunk.wait_unheld(HOLD_WAIT)

    def idle(self) -> bool:
        """Every chunk added is compressed already: ``finish`` and ``plain`` do not wait."""
        return self._compressed == self._added

    def _complete(self) -> None:
        """Wait for the queued chunks (once; both payloads below may ask, from two workers)."""
        with self._finish_lock:
            if not self._finished:
                if self._thread is not None:  # None: no chunk ever came
                    self._queue.put(None)
                    if not self.idle():  # idle, it touches nothing more: no need to wait for its end
                        self._thread.join()
                if self._out is not None:
                    self._out.close()
                self._finished = True
        if self._error is not None:
            raise self._error

    def plain(self) -> Payload:
        """The whole log, uncompressed: byte for byte the member of ``finish()``'s archive."""
        self._complete()
        return Payload.of(*self._parts)

    def finish(self, total: int, mtime: float) -> Payload:
        """Wait for the queued chunks, then describe the whole archive (called in a worker)."""
        self._complete()
        header = archive.gzip_member(archive.tar_header(self.member_name, total, mtime))
        trailer = archive.gzip_member(archive.tar_trailer(total))
        return Payload.of(header, self.members, trailer)


