"""Re-sendable upload sources: bytes and spool files, alone or concatenated.

The uploader may send a payload several times (retries), so a payload is never a one-shot
stream: ``open()`` gives a fresh reader each time. Readers return whole requested sizes, which
keeps the S3 client from building parts out of many small pieces.
"""

from __future__ import annotations

import io
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Union

Part = Union[bytes, Path]


@dataclass(frozen=True)
class Payload:
    parts: tuple[Part, ...]
    size: int

    @classmethod
    def of(cls, *parts: Part) -> Payload:
        size = sum(len(p) if isinstance(p, bytes) else p.stat().st_size for p in parts)
        return cls(tuple(parts), size)

    def open(self) -> PayloadReader:
        return PayloadReader(self.parts)

    def read_all(self) -> bytes:
        with self.open() as reader:
            return reader.read()


class PayloadReader(io.RawIOBase):
    """Reads the parts one after another; ``read(n)`` returns n bytes unless at the end."""

    def __init__(self, parts: Sequence[Part]) -> None:
        self._parts = list(parts)
        self._current: BinaryIO | None = None

    def readable(self) -> bool:
        return True

    def _next(self) -> bool:
        """Open the next part; False when there is none left."""
        if not self._parts:
            return False
        part = self._parts.pop(0)
        if isinstance(part, bytes):
            self._current = io.BytesIO(part)
        else:
            fd = os.open(part, os.O_RDONLY | os.O_CLOEXEC)
            self._current = open(fd, "rb", buffering=1024 * 1024)  # noqa: SIM115
        return True

    def read(self, size: int | None = -1) -> bytes:
        pieces = []
        wanted = -1 if size is None or size < 0 else size
        while wanted != 0:
            if self._current is None and not self._next():
                break
            assert self._current is not None
            piece = self._current.read(wanted)
            if not piece:
                self._close_current()
                continue
            pieces.append(piece)
            if wanted > 0:
                wanted -= len(piece)
        return b"".join(pieces)

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
        data = self.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)

    def _close_current(self) -> None:
        if self._current is not None:
            self._current.close()
            self._current = None

    def close(self) -> None:
        self._close_current()
        self._parts = []
        super().close()
