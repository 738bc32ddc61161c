"""Re-sendable upload sources: bytes, spool files and other sources, alone or concatenated.

The uploader may send a payload several times (retries), so a payload is never a one-shot
stream: ``open()`` gives a fresh reader each time. Readers return whole requested sizes, which
keeps the S3 client from building parts out of many small pieces.

Besides bytes and whole files, a part may be any ``Source`` (a size and an ``open()``), e.g. a
``GzipMember``: one gzip member inside a file, decompressed on the fly (a log chunk whose raw
file was deleted once it was compressed into the log archive).

``Payload.hashed()`` reads a payload once ahead of its upload, computing its MD5 (for
``Content-MD5``) and SHA-256 (for the manifest and the request signature) and, for a small one,
keeping its bytes: the ordered upload lane prepares the next log chunk this way while the current
one is on the wire (``transfer/uploader.py``), so the store's request needs no pass over the bytes of its own.
"""

from __future__ import annotations

import io
import os

from ..records import Record

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Sequence
    from typing import BinaryIO, Protocol, Union

    from _typeshed import StrPath
else:
    Protocol = object  # protocols are for type checkers: no typing module at run time (start-up cost)



class Source(Protocol):
    """A re-openable part: ``size`` bytes, read afresh from the start by each ``open()``."""

    @property
    def size(self) -> int: ...

    def open(self) -> BinaryIO: ...


if TYPE_CHECKING:
    Part = Union[bytes, StrPath, Source]  # a path: the file's bytes


_COMPRESSED_READ = 256 * 1024
_HASH_READ = 1024 * 1024  # bytes per read while hashing a payload that is not kept in memory


class GzipMember:
    """The ``length`` bytes at ``offset`` of ``path`` are one gzip member of ``size`` bytes of data.

    (A plain class, as every record loaded after the spawn: a ``typing.NamedTuple`` costs ~0.1 ms
    to define, and a COMMAND that ends at once waits for it.)"""

    __slots__ = ("length", "offset", "path", "size")

    def __init__(self, path: StrPath, offset: int, length: int, size: int) -> None:
        self.path, self.offset, self.length, self.size = path, offset, length, size

    def open(self) -> BinaryIO:
        return GzipMemberReader(self)  # type: ignore[return-value]


class GzipMemberReader(io.RawIOBase):
    """Decompresses a ``GzipMember`` as it is read; an error if it does not give ``size`` bytes."""

    def __init__(self, member: GzipMember) -> None:
        self._member = member
        self._fd = os.open(member.path, os.O_RDONLY | os.O_CLOEXEC)
        from ..formats import archive  # not on the start-up path

        module, _, _ = archive.deflate_module()
        self._inflate = module.decompressobj(31)
        self._pos = 0  # compressed bytes read
        self._out = 0  # bytes given out
        self._tail = b""  # compressed input not consumed yet

    def readable(self) -> bool:
        return True

    def read(self, size: int | None = -1) -> bytes:
        member = self._member
        wanted = member.size - self._out if size is None or size < 0 else min(size, member.size - self._out)
        pieces = []
        while wanted > 0:
            if not self._tail:
                n = min(_COMPRESSED_READ, member.length - self._pos)
                self._tail = os.pread(self._fd, n, member.offset + self._pos) if n > 0 else b""
                self._pos += len(self._tail)
                if not self._tail:
                    break
            piece = self._inflate.decompress(self._tail, wanted)
            self._tail = self._inflate.unconsumed_tail
            if self._inflate.eof and self._inflate.unused_data:
                break
            pieces.append(piece)
            wanted -= len(piece)
            self._out += len(piece)
            if self._inflate.eof:
                break
        data = b"".join(pieces)
        if wanted > 0 and self._out < member.size:
            raise OSError(
                f"{member.path}: gzip member at {member.offset} gave {self._out} of {member.size} bytes"
            )
        return data

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
        data = self.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1
        super().close()


class Digests:
    """Of the bytes a payload's reader gave (``size`` of them: a source may have changed size)."""

    __slots__ = ("md5", "sha256", "size")

    def __init__(self, md5: bytes, sha256: bytes, size: int) -> None:
        self.md5, self.sha256, self.size = md5, sha256, size


class Payload(Record):
    parts: tuple[Part, ...]
    size: int
    digests: Digests | None = None  # set by ``hashed()``: the store need not compute them

    @classmethod
    def of(cls, *parts: Part) -> Payload:
        return cls(tuple(parts), sum(_size(p) for p in parts))

    def hashed(self, keep: bool) -> Payload:
        """This payload with its digests, from one read of it; ``keep``: its bytes in memory
        (one ``bytes`` part), else the same parts (re-read when sent)."""
        import hashlib  # OpenSSL: only for a store that needs the digests ahead (S3)

        md5, sha256 = hashlib.md5(), hashlib.sha256()
        with self.open() as reader:
            if keep:
                data = reader.read(self.size)
                md5.update(data)
                sha256.update(data)
                return Payload((data,), self.size, Digests(md5.digest(), sha256.digest(), len(data)))
            size = 0
            while piece := reader.read(_HASH_READ):
                md5.update(piece)
                sha256.update(piece)
                size += len(piece)
        return Payload(self.parts, self.size, Digests(md5.digest(), sha256.digest(), size))

    def open(self) -> PayloadReader:
        return PayloadReader(self.parts)

    def read_all(self) -> bytes:
        with self.open() as reader:
            return reader.read()


def _size(part: Part) -> int:
    if isinstance(part, bytes):
        return len(part)
    if isinstance(part, (str, os.PathLike)):  # os.PathLike, not pathlib: no pathlib on the run path
        return os.stat(part).st_size
    return part.size


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
        elif isinstance(part, (str, os.PathLike)):
            fd = os.open(part, os.O_RDONLY | os.O_CLOEXEC)
            self._current = open(fd, "rb", buffering=1024 * 1024)  # noqa: SIM115
        else:
            self._current = part.open()
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
