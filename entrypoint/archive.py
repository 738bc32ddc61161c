"""gzip-compressed tar archives with exactly one member, built without holding data in memory.

A tar member is header + data padded to 512 bytes; an archive ends with two zero blocks. gzip
members concatenate into one valid gzip stream, so a log archive can be assembled at the end from
pieces compressed while the step was running: gzip(header) + gzip(chunk 1) + ... + gzip(trailer).
"""

from __future__ import annotations

import os
import tarfile
import zlib
from pathlib import Path
from typing import BinaryIO

BLOCK = 512
LEVEL = 1  # chosen by measurement: level 1 compresses logs ~3x faster than 6 for ~10-15% larger output
_READ = 1024 * 1024


def tar_header(name: str, size: int, mtime: float, mode: int = 0o644) -> bytes:
    """The header block(s) of a regular-file member: safe relative name, root-owned, 0644."""
    info = tarfile.TarInfo(name)
    info.size = size
    info.mtime = int(mtime)
    info.mode = mode
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    info.type = tarfile.REGTYPE
    return info.tobuf(tarfile.PAX_FORMAT, encoding="utf-8", errors="surrogateescape")


def tar_trailer(size: int) -> bytes:
    """Padding after ``size`` bytes of member data, then the end-of-archive marker."""
    return b"\0" * (-size % BLOCK) + b"\0" * (2 * BLOCK)


def gzip_member(data: bytes, level: int = LEVEL) -> bytes:
    comp = zlib.compressobj(level, zlib.DEFLATED, 31)
    return comp.compress(data) + comp.flush()


def gzip_file(src: int, out: BinaryIO, level: int = LEVEL) -> int:
    """Compress everything readable from fd ``src`` into one gzip member on ``out``; bytes read."""
    comp = zlib.compressobj(level, zlib.DEFLATED, 31)
    total = 0
    while True:
        data = os.read(src, _READ)
        if not data:
            break
        total += len(data)
        out.write(comp.compress(data))
    out.write(comp.flush())
    return total


def write_tgz(src: int, name: str, size: int, mtime: float, out: BinaryIO, level: int = LEVEL) -> None:
    """Write a one-member .tgz of ``size`` bytes read from fd ``src`` (exactly that many)."""
    comp = zlib.compressobj(level, zlib.DEFLATED, 31)
    out.write(comp.compress(tar_header(name, size, mtime)))
    remaining = size
    while remaining:
        data = os.read(src, min(_READ, remaining))
        if not data:
            raise OSError(f"{name}: file shrank while being archived")
        remaining -= len(data)
        out.write(comp.compress(data))
    out.write(comp.compress(tar_trailer(size)))
    out.write(comp.flush())


def tgz_bytes(name: str, data: bytes, mtime: float, level: int = LEVEL) -> bytes:
    """A one-member .tgz of ``data``, in memory (the library's ``Writer``)."""
    comp = zlib.compressobj(level, zlib.DEFLATED, 31)
    size = len(data)
    head = comp.compress(tar_header(name, size, mtime))
    return b"".join((head, comp.compress(data), comp.compress(tar_trailer(size)), comp.flush()))


def read_single_member(path: Path) -> tuple[str, bytes]:
    """For tests and the read side: the one member's name and bytes."""
    with tarfile.open(path, "r:gz") as tar:
        members = tar.getmembers()
        if len(members) != 1:
            raise ValueError(f"{path}: expected one member, found {len(members)}")
        extracted = tar.extractfile(members[0])
        assert extracted is not None
        return members[0].name, extracted.read()
