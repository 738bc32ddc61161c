"""Capture: COMMAND's output goes into a rolling buffer of chunk files in the spool directory.

The hot path (``LogCapture.write``) appends to the current chunk file after one integer
comparison against the spool headroom. A chunk is *sealed* when it reaches the chunk size or
when the flush interval passes with unsent data; sealed chunks are handed on (to the uploader and
to the log archiver) and never change again. Memory use does not depend on the log volume: the
bytes live on disk until they are stored.

Disk use is capped by the spool limit (``SpoolBudget``: chunk files not yet deleted plus the
compressed log archive built so far). A chunk's raw file goes as soon as the archiver has
compressed it into its gzip member of the log archive (and no upload is reading the raw file):
an upload that starts later sends the chunk by decompressing that member, so a backlog of chunks
waiting for the store costs its compressed size on disk, not its raw size. When the next write
would pass the limit, capture pauses (the output still passes through, untouched, by the
supervisor), the bytes skipped are counted, and when room comes back or at the end, a marker
line in the log states exactly how many bytes are missing at that point. A failing spool write
(disk full) is handled the same way. While log chunks are queued behind one still being
retried, chunks are sealed by size only, so a long store outage adds no more chunks than the
spool limit divided by the chunk size.
"""

from __future__ import annotations

import io
import os
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO, Optional

from ..formats import archive
from ..transfer.payload import GzipMember, Payload
from ..units import format_size

MARKER_PREFIX = b"[tekton-uploader: "
BACKLOG_SEAL_BY_SIZE_ONLY = 2  # ordered uploads pending (one in flight, one waiting)
WRITE_RETRY_INTERVAL = 1.0  # after a failed spool write, capture is tried again this much later
RESUME_FREE = 8  # a paused capture resumes with 1/RESUME_FREE of the spool free
HOLD_WAIT = 5.0  # how long the archiver waits for an upload reading a chunk's raw file


def worst_compressed(n: int) -> int:
    """The most disk ``n`` bytes take once gzip-compressed (deflate adds ~0.03 % to random data)."""
    return n + n // 1000 + 1024 if n > 0 else 0


def _overhead(n: int) -> int:
    """The most a raw byte count grows by when gzip-compressed."""
    return worst_compressed(n) - n


class SpoolBudget:
    """Bytes the capture keeps on disk, counted so that the limit holds at every moment.

    A captured byte lives in its chunk file until the archiver has compressed it into the log
    archive (and no upload reads the file then; or, if archiving failed, until it is uploaded),
    and in compressed form in the archive from then on. A chunk not archived yet is counted raw
    plus the most its compressed copy can outgrow it by (so archiving it never adds to the count);
    the chunk being compressed also counts room for its whole compressed copy (the raw file stays
    until the copy is complete). Counters are updated under a lock, in an order that never
    counts less than is on disk; the capture thread's ``written`` has that thread as only writer.
    """

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.written = 0  # chunk bytes written (capture thread)
        self.archived_out = 0  # compressed log archive bytes
        self.archiving = 0  # size of the chunk being compressed right now
        self._archived_in = 0  # chunk bytes done with by the archiver (compressed, or given up)
        self._released = 0  # chunk bytes deleted
        self._results = 0  # bytes held by result archives (built after COMMAND exits)
        self._lock = threading.Lock()
        self._room = threading.Condition(self._lock)
        self.peak = 0

    def start_archiving(self, n: int) -> None:
        with self._lock:
            self.archiving = n

    def end_archiving(self, archive_size: int) -> None:
        """The chunk being compressed is complete in the archive, now ``archive_size`` bytes."""
        with self._lock:
            self.archived_out = archive_size
            self.archiving = 0
            self._room.notify_all()

    def settle(self, n: int) -> None:
        """``n`` chunk bytes are done with by the archiver."""
        with self._lock:
            self._archived_in += n

    def release(self, n: int) -> None:
        """``n`` chunk bytes were deleted."""
        with self._lock:
            self._released += n
            self._room.notify_all()

    def capacity(self, chunk_size: int, behind: bool = False) -> int:
        """How many more bytes may be captured: each costs its raw byte plus its worst compression
        overhead, and room stays free for one chunk's compressed copy (the archiver's working
        copy, or the copy of a chunk an upload still reads raw: the archiver waits for that upload
        to let go of the raw file before it compresses another chunk). While the store is
        ``behind``, the backlog leaves ``reserve()`` free too: the compressed log archive only
        grows, so without it an outage could fill the spool for good, and capture would never
        resume once the store caught up."""
        free = self.limit - self.used() - worst_compressed(chunk_size) - 1024
        if behind:
            free -= self.reserve(chunk_size)
        return max(0, free) * 1000 // 1001

    def reserve(self, chunk_size: int) -> int:
        """Kept free while the store is behind: enough to resume capture (``RESUME_FREE``)."""
        return self.limit // RESUME_FREE + worst_compressed(chunk_size) + 2048

    def used(self) -> int:
        with self._lock:
            return self._used()

    def _used(self) -> int:
        raw = self.written - self._released
        pending = self.written - self._archived_in
        used = raw + self.archived_out + _overhead(pending) + worst_compressed(self.archiving) + self._results
        if used > self.peak:
            self.peak = used
        return used

    def hold(self, n: int) -> None:
        """Wait until ``n`` more bytes (a result archive about to be written) fit under the limit,
        then count them. When no other result holds any, it goes ahead even over the limit: results
        are then archived one at a time, and every one of them in turn."""
        with self._room:
            while self._results and self._used() + n > self.limit:
                self._room.wait()
            self._results += n
            self._used()

    def drop(self, n: int) -> None:
        """``n`` bytes held by ``hold`` are no longer on disk."""
        with self._room:
            self._results -= n
            self._room.notify_all()


class _HeldFile(io.BufferedReader):
    """A chunk's raw file opened by an upload: the chunk keeps it until this is closed."""

    def __init__(self, fd: int, chunk: Chunk) -> None:
        super().__init__(io.FileIO(fd, "rb", closefd=True), 1024 * 1024)
        self._chunk: Optional[Chunk] = chunk

    def close(self) -> None:
        try:
            super().close()
        finally:
            chunk, self._chunk = self._chunk, None
            if chunk is not None:
                chunk.let_go()


@dataclass(eq=False)
class Chunk:
    """A sealed chunk: a payload source (``size``, ``open()``) for its upload.

    ``open()`` reads the raw file while it exists (holding it: it is not deleted while read),
    else the chunk's gzip member in the log archive. The raw file is deleted once archived into
    a member and not held, or (no member: archiving failed or there is no archiver) once both
    uploaded and archived.
    """

    seq: int
    path: Path
    size: int
    budget: Optional[SpoolBudget] = None
    uploaded: bool = False
    archived: bool = False
    member: Optional[GzipMember] = None
    _holds: int = 0
    _removed: bool = False
    _cond: threading.Condition = field(default_factory=threading.Condition, repr=False)

    def done(
        self, uploaded: bool = False, archived: bool = False, member: Optional[GzipMember] = None
    ) -> None:
        """The uploader or the archiver (with the chunk's ``member``, if any) is done with it."""
        with self._cond:
            newly_archived = archived and not self.archived
            self.uploaded |= uploaded
            if newly_archived:
                self.archived = True
                self.member = member
                if self.budget is not None:
                    self.budget.settle(self.size)
            self._remove_if_unneeded()

    def open(self) -> BinaryIO:
        with self._cond:
            if not self._removed:
                fd = os.open(self.path, os.O_RDONLY | os.O_CLOEXEC)
                self._holds += 1
                return _HeldFile(fd, self)
            member = self.member
        if member is None:  # removed without a member only once uploaded: not read again
            raise OSError(f"{self.path}: chunk no longer on disk")
        return member.open()

    def let_go(self) -> None:
        """An upload closed the raw file."""
        with self._cond:
            self._holds -= 1
            self._remove_if_unneeded()
            self._cond.notify_all()

    def wait_unheld(self, timeout: float) -> None:
        """Until no upload reads the raw file, or ``timeout`` seconds. A chunk up to 8 MiB (the
        default size) is read into memory once per attempt, so the wait is brief; a larger one
        streams from the file for its whole request: then the archiver goes on after ``timeout``
        (the raw file still goes when that upload lets go), and until then the spool may hold one
        chunk more than the budget planned for."""
        with self._cond:
            self._cond.wait_for(lambda: not self._holds or self._removed, timeout)

    def _remove_if_unneeded(self) -> None:
        """Holding ``_cond``: delete the raw file when nothing needs it any more."""
        if self._removed or self._holds or not self.archived:
            return
        if self.member is None and not self.uploaded:
            return
        self._removed = True
        try:
            os.unlink(self.path)
        except FileNotFoundError:
            pass
        if self.budget is not None:
            self.budget.release(self.size)


@dataclass(frozen=True)
class Gap:
    """Output not captured: ``size`` bytes after ``at`` bytes of COMMAND's output."""

    at: int
    size: int
    reason: str


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
        budget: Optional[SpoolBudget] = None,
        backlog: Callable[[], int] = lambda: 0,
        on_pause: Optional[Callable[[str], None]] = None,
    ) -> None:
        self.directory = directory
        self.chunk_size = chunk_size
        self.flush_interval = flush_interval
        self._on_sealed = on_sealed
        self._clock = clock
        self.budget = budget or SpoolBudget(1 << 62)
        self._backlog = backlog
        self._on_pause = on_pause or (lambda _text: None)
        self._fd = -1
        self._seq = 0
        self._size = 0  # bytes in the current chunk
        self._first_unsent: Optional[float] = None
        self._headroom = 0  # bytes that may be captured before looking at the budget again
        self._last_newline = True
        self._gap_at = -1  # output offset where the current gap began; -1: capturing
        self._gap_reason = ""
        self._retry_write_at = 0.0  # after a failed spool write, when to try writing again
        self._warned: set[str] = set()
        self.total = 0  # bytes captured so far (the log, markers included)
        self.output = 0  # bytes COMMAND wrote
        self.gaps: list[Gap] = []

    @property
    def not_captured(self) -> int:
        return sum(g.size for g in self.gaps) + (self.output - self._gap_at if self._gap_at >= 0 else 0)

    def _path(self, seq: int) -> Path:
        return self.directory / f"{seq:08d}.log"

    def write(self, data: memoryview) -> None:
        n = len(data)
        self.output += n
        if n <= self._headroom:
            self._headroom -= n
            self._capture(data)
        else:
            self._write_tight(data)

    def _write_tight(self, data: memoryview) -> None:
        """The slow path: out of headroom, or paused."""
        n = len(data)
        behind = self._backlog() >= BACKLOG_SEAL_BY_SIZE_ONLY
        room = self.budget.capacity(self.chunk_size, behind)
        if self._gap_at >= 0:
            if room < n + self.budget.limit // RESUME_FREE:
                return
            if self._retry_write_at and self._clock() < self._retry_write_at:
                return
            self._end_gap(self.output - n)
            if self._gap_at >= 0:  # the marker itself could not be written
                return
            room = self.budget.capacity(self.chunk_size, behind)
        if n > room:
            self._begin_gap(self.output - n, f"spool limit {format_size(self.budget.limit)} reached")
            return
        # one chunk at a time: whether the store is behind is looked at again after each chunk
        self._headroom = min(room - n, self.chunk_size)
        self._capture(data)

    def _capture(self, data: memoryview, gap_at: Optional[int] = None) -> None:
        """Append to the current chunk; on a write error, a gap starts (at ``gap_at`` if given)."""
        while data:
            try:
                if self._fd < 0:
                    self._fd = os.open(
                        self._path(self._seq), os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600
                    )
                piece = data[: self.chunk_size - self._size]
                write_all(self._fd, piece)
            except OSError as exc:
                self._undo_partial_write()
                at = self.output - len(data) if gap_at is None else gap_at
                self._begin_gap(at, f"spool write failed: {exc.strerror or exc}")
                self._retry_write_at = self._clock() + WRITE_RETRY_INTERVAL
                return
            n = len(piece)
            self._size += n
            self.total += n
            self.budget.written += n
            self._last_newline = piece[-1] == 10
            if self._first_unsent is None:
                self._first_unsent = self._clock()
            data = data[n:]
            if self._size >= self.chunk_size:
                self.seal()

    def _undo_partial_write(self) -> None:
        if self._fd < 0:
            return
        try:
            os.ftruncate(self._fd, self._size)
            os.lseek(self._fd, self._size, os.SEEK_SET)
        except OSError:
            pass

    def _begin_gap(self, at: int, reason: str) -> None:
        """Stop capturing from output offset ``at`` (bytes from there on are counted, not kept)."""
        self._gap_at = at
        self._gap_reason = reason
        self._headroom = -1  # every write takes the slow path while paused
        self._retry_write_at = 0.0
        self.seal()  # what was captured goes up now
        if reason in self._warned:
            return
        self._warned.add(reason)
        self._on_pause(
            f"{reason}: capture paused at byte {at} of the output (which still passes through); "
            "a marker line in the log will say how many bytes are missing"
        )

    def _end_gap(self, end: int) -> None:
        """Resume at output offset ``end``: a marker line states exactly how many bytes are missing."""
        gap = Gap(self._gap_at, end - self._gap_at, self._gap_reason)
        self.gaps.append(gap)
        self._gap_at = -1
        self._headroom = 0
        marker = (
            (b"" if self._last_newline else b"\n")
            + MARKER_PREFIX
            + (f"{gap.size} bytes of output not captured here: {gap.reason}]\n".encode())
        )
        self._capture(memoryview(marker), gap_at=end)

    def due(self) -> Optional[float]:
        """When the current chunk must be sealed (monotonic seconds), or None if it is empty."""
        if self._first_unsent is None:
            return None
        return self._first_unsent + self.flush_interval

    def tick(self, now: float) -> None:
        due = self.due()
        if due is None or now < due:
            return
        if self._backlog() >= BACKLOG_SEAL_BY_SIZE_ONLY:
            self._first_unsent = now  # the store is behind: keep filling this chunk, look again later
            return
        self.seal()

    def seal(self) -> None:
        if self._fd < 0 or self._size == 0:
            return
        self.budget.used()  # notes the peak
        os.close(self._fd)
        chunk = Chunk(self._seq, self._path(self._seq), self._size, self.budget)
        self._fd, self._seq, self._size, self._first_unsent = -1, self._seq + 1, 0, None
        self._on_sealed(chunk)

    def close(self) -> None:
        if self._gap_at >= 0:
            self._end_gap(self.output)
            if self._gap_at >= 0:  # not even the marker fits: the gap runs to the end
                self.gaps.append(Gap(self._gap_at, self.output - self._gap_at, self._gap_reason))
                self._gap_at = -1
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

    def __init__(self, directory: Path, member_name: str, budget: Optional[SpoolBudget] = None) -> None:
        self.member_name = member_name
        self._budget = budget
        self.members = directory / "log-members.gz"
        self._out = open(self.members, "wb")  # noqa: SIM115 - closed in finish()
        # each chunk's member is also read on its own (``GzipMember``) by a later upload
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
            member: Optional[GzipMember] = None
            try:
                if self._error is None:
                    if self._budget is not None:
                        self._budget.start_archiving(chunk.size)
                    offset = self._out.tell()
                    fd = os.open(chunk.path, os.O_RDONLY | os.O_CLOEXEC)
                    try:
                        size = archive.gzip_file(fd, self._out)
                    finally:
                        os.close(fd)
                    self._out.flush()  # uploads read the member through a file of their own
                    if size == chunk.size:
                        member = GzipMember(self.members, offset, self._out.tell() - offset, size)
            except OSError as exc:
                self._error = exc
            finally:
                if self._budget is not None:
                    self._budget.end_archiving(self._out.tell())
                chunk.done(archived=True, member=member)
            if member is not None:  # at most one chunk is both compressed and raw (held by its upload)
                chunk.wait_unheld(HOLD_WAIT)

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
