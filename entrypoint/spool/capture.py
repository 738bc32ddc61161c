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
spool limit divided by the chunk size. With a ``heartbeat`` (the wrapper's: ``formats/live.py``)
a chunk is sealed at least that often, an empty one when COMMAND was silent, and ``close`` seals
a last chunk (``Chunk.last``), empty if need be (not when there was no chunk at all), so a reader
can tell a silent step from a gone one.
"""

from __future__ import annotations

import os
import time

from ..formats.manifest import Gap
from ..units import format_size
from .budget import RESUME_FREE, SpoolBudget
from .chunk import Chunk

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Optional

    from _typeshed import StrPath

MARKER_PREFIX = b"[tekton-uploader: "
BACKLOG_SEAL_BY_SIZE_ONLY = 2  # ordered uploads pending (one in flight, one waiting)
WRITE_RETRY_INTERVAL = 1.0  # after a failed spool write, capture is tried again this much later


def write_all(fd: int, data: memoryview) -> None:
    while data:
        n = os.write(fd, data)
        data = data[n:]


class LogCapture:
    def __init__(
        self,
        directory: StrPath,
        chunk_size: int,
        flush_interval: float,
        on_sealed: Callable[[Chunk], None],
        clock: Callable[[], float] = time.monotonic,
        budget: Optional[SpoolBudget] = None,
        backlog: Callable[[], int] = lambda: 0,
        on_pause: Optional[Callable[[str], None]] = None,
        heartbeat: Optional[float] = None,
    ) -> None:
        self.directory = os.fspath(directory)  # text, os.path: no pathlib on the run path
        self.chunk_size = chunk_size
        self.flush_interval = flush_interval
        self._on_sealed = on_sealed
        self._clock = clock
        self.budget = budget or SpoolBudget(1 << 62)
        self._backlog = backlog
        self._on_pause = on_pause or (lambda _text: None)
        self.heartbeat = heartbeat
        self._last_sealed = clock()
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

    def _path(self, seq: int) -> str:
        return os.path.join(self.directory, f"{seq:08d}.log")

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
        """When the current chunk must be sealed (monotonic seconds), or None if it is empty (and
        no heartbeat is due)."""
        due = None if self._first_unsent is None else self._first_unsent + self.flush_interval
        if self.heartbeat is not None:
            beat = self._last_sealed + self.heartbeat
            due = beat if due is None else min(due, beat)
        return due

    def tick(self, now: float) -> None:
        due = self.due()
        if due is None or now < due:
            return
        if self._backlog() >= BACKLOG_SEAL_BY_SIZE_ONLY:
            # the store is behind: keep filling this chunk (chunks are queued: no heartbeat), look again later
            self._first_unsent = None if self._first_unsent is None else now
            self._last_sealed = now
            return
        self.seal(empty=self.heartbeat is not None)

    def seal(self, empty: bool = False, last: bool = False) -> None:
        """Hand on the current chunk; ``empty``: an empty one too (a heartbeat, or the last)."""
        if self._size == 0 and not empty:
            return
        self.budget.used()  # notes the peak
        if self._fd >= 0:
            os.close(self._fd)
        if self._size == 0 and self._fd >= 0:
            os.unlink(self._path(self._seq))
        chunk = Chunk(self._seq, self._path(self._seq), self._size, self.budget, last=last)
        self._fd, self._seq, self._size, self._first_unsent = -1, self._seq + 1, 0, None
        self._last_sealed = self._clock()
        self._on_sealed(chunk)

    def close(self) -> None:
        if self._gap_at >= 0:
            self._end_gap(self.output)
            if self._gap_at >= 0:  # not even the marker fits: the gap runs to the end
                self.gaps.append(Gap(self._gap_at, self.output - self._gap_at, self._gap_reason))
                self._gap_at = -1
        self.seal(empty=self.heartbeat is not None and self._seq > 0, last=True)  # no output: no chunk
        if self._fd >= 0:
            os.close(self._fd)
            os.unlink(self._path(self._seq))
            self._fd = -1


