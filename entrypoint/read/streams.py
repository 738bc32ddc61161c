"""Streaming an object out of the store: resumed after transient errors, hashed, constant memory.

``ObjectStream`` reads one object in order; when the connection fails mid-way it opens the
object again at the current offset (bounded retries). ``extract_member`` unpacks the one file of
a ``.tgz`` as it streams (gzip members may be concatenated, as in ``<step>-log.tgz``).
"""

from __future__ import annotations

import gzip
import io
import tarfile
import zlib
from typing import BinaryIO, Optional

from ..store import ObjectInfo, ReadableStore, StoreError
from .errors import INTEGRITY, ReadError
from .manifest import Digest
from .progress import Progress
from .retry import Retry

BLOCK = 1024 * 1024


class ObjectStream(io.RawIOBase):
    def __init__(
        self, store: ReadableStore, info: ObjectInfo, retry: Retry, progress: Optional[Progress] = None
    ) -> None:
        self.store = store
        self.info = info
        self.retry = retry
        self.progress = progress
        self.digest = Digest()
        self.pos = 0
        self._raw: Optional[io.RawIOBase] = None

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
        attempt = 0
        while True:
            if self.pos and self.pos >= self.info.size:
                return 0  # a range from the very end is not satisfiable on S3
            try:
                if self._raw is None:
                    self._raw = self.store.open_read(self.info.key, self.pos)
                n = self._raw.readinto(buffer) or 0
            except StoreError as exc:
                self._drop()
                attempt += 1
                self.retry.backoff(f"reading {self.info.key}", exc, attempt)
                continue
            if n:
                self.digest.update(memoryview(buffer)[:n])
                self.pos += n
                if self.progress is not None:
                    self.progress.update(n)
            return n

    def _drop(self) -> None:
        if self._raw is not None:
            self._raw.close()
            self._raw = None

    def close(self) -> None:
        self._drop()
        super().close()


def copy_stream(src: io.RawIOBase, out: BinaryIO) -> int:
    """Everything from ``src`` to ``out`` in blocks; the number of bytes."""
    buf = bytearray(BLOCK)
    view = memoryview(buf)
    total = 0
    while True:
        n = src.readinto(buf)
        if not n:
            return total
        out.write(view[:n])
        total += n


def _corrupt(key: str, exc: BaseException) -> ReadError:
    text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return ReadError(f"{key}: corrupt archive ({text})", INTEGRITY)


_ARCHIVE_ERRORS = (tarfile.TarError, gzip.BadGzipFile, EOFError, zlib.error)


def extract_member(stream: ObjectStream, out: BinaryIO, skip: int = 0) -> tarfile.TarInfo:
    """Write the first regular file of the ``.tgz`` in ``stream`` to ``out``, minus ``skip`` bytes.

    Reads the object to its end (checking every gzip CRC), so ``stream.digest`` covers all of it.
    """
    key = stream.info.key
    buffered = io.BufferedReader(stream, BLOCK)
    gz = gzip.GzipFile(fileobj=buffered, mode="rb")
    try:
        tar = tarfile.open(fileobj=gz, mode="r|")  # noqa: SIM115 - a stream: nothing to close
        member = tar.next()
        while member is not None and not member.isfile():
            member = tar.next()
        if member is None:
            raise ReadError(f"{key}: the archive holds no file", INTEGRITY)
        data = tar.extractfile(member)
        assert data is not None
    except _ARCHIVE_ERRORS as exc:
        raise _corrupt(key, exc) from None
    if member.size < skip:
        raise ReadError(
            f"{key}: holds {member.size} bytes, fewer than the {skip} already printed from the chunks",
            INTEGRITY,
        )
    remaining = member.size
    while remaining:
        try:
            piece = data.read(min(BLOCK, remaining))
        except _ARCHIVE_ERRORS as exc:
            raise _corrupt(key, exc) from None
        if not piece:
            raise ReadError(f"{key}: corrupt archive (the file ends early)", INTEGRITY)
        remaining -= len(piece)
        if skip >= len(piece):
            skip -= len(piece)
            continue
        out.write(piece[skip:] if skip else piece)
        skip = 0
    try:
        while gz.read(BLOCK):  # the rest: tar padding and trailer; verifies the last CRCs
            pass
        while buffered.read(BLOCK):
            pass
    except _ARCHIVE_ERRORS as exc:
        raise _corrupt(key, exc) from None
    return member
