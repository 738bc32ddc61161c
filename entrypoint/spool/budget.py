"""The spool budget: the disk the capture keeps, counted so that --spool-limit holds at every moment."""

from __future__ import annotations

import threading

RESUME_FREE = 8  # a paused capture resumes with 1/RESUME_FREE of the spool free


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


