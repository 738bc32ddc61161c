"""A sealed chunk of the log: its raw file in the spool, or its gzip member once archived."""

from __future__ import annotations

import io
import os
import threading

from ..store.payload import GzipMember
from .budget import SpoolBudget

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import BinaryIO, Optional

    from _typeshed import StrPath


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


class Chunk:
    """A sealed chunk: a payload source (``size``, ``open()``) for its upload.

    ``open()`` reads the raw file while it exists (holding it: it is not deleted while read),
    else the chunk's gzip member in the log archive. The raw file is deleted once archived into
    a member and not held, or (no member: archiving failed or there is no archiver) once both
    uploaded and archived. (A plain class: ``dataclasses`` costs milliseconds on the run path.)
    """

    __slots__ = (
        "_cond",
        "_holds",
        "_removed",
        "archived",
        "budget",
        "last",
        "member",
        "path",
        "seq",
        "size",
        "uploaded",
    )

    def __init__(self, seq: int, path: StrPath, size: int, budget: Optional[SpoolBudget] = None,
                 last: bool = False) -> None:
        self.seq = seq
        self.path = path
        self.size = size
        self.budget = budget
        self.last = last  # sealed at the end of COMMAND's output
        self.uploaded = False
        self.archived = False
        self.member: Optional[GzipMember] = None
        self._holds = 0
        self._removed = False
        self._cond = threading.Condition()

    def __repr__(self) -> str:
        return f"Chunk(seq={self.seq!r}, path={self.path!r}, size={self.size!r}, last={self.last!r})"

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


