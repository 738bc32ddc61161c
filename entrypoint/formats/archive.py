"""gzip-compressed tar archives with exactly one member, built without holding data in memory.

A tar member is header + data padded to 512 bytes; an archive ends with two zero blocks. gzip
members concatenate into one valid gzip stream, so a log archive can be assembled at the end from
pieces compressed while the step was running: gzip(header) + gzip(chunk 1) + ... + gzip(trailer).
"""

from __future__ import annotations

import functools
import importlib
import os
from types import ModuleType

TYPE_CHECKING = False
if TYPE_CHECKING:
    from pathlib import Path
    from typing import Any, BinaryIO


@functools.cache
def deflate_module() -> tuple[ModuleType, str, int]:
    """ISA-L's deflate when installed (on log text ~3x zlib's speed at level 1, with a better
    ratio; levels are 0-3 and 1 is as fast as 0), else zlib at level 1 (~3x faster than level 6
    for ~15% larger output). Both by measurement: ``python -m tests.benchmarks --cases compression``.
    Loaded on first use: nothing of it is needed before COMMAND is running.
    """
    try:
        return importlib.import_module("isal.isal_zlib"), "isal", 1
    except ImportError:
        import zlib

        return zlib, "zlib", 1


def _compressobj(level: int | None) -> Any:
    module, _, default = deflate_module()
    return module.compressobj(default if level is None else level, module.DEFLATED, 31)


BLOCK = 512
_OCTAL_11 = 8**11  # a ustar size or mtime field holds 11 octal digits
_READ = 1024 * 1024


def tar_header(name: str, size: int, mtime: float, mode: int = 0o644) -> bytes:
    """The header block(s) of a regular-file member: safe relative name, root-owned, 0644.

    What fits one ustar block (a name of at most 100 ASCII characters, size and mtime below
    8**11) is built here, byte for byte as ``tarfile`` writes it, without loading ``tarfile``
    (it pulls shutil, bz2, lzma: milliseconds of a short step's exit); anything else is
    ``tarfile``'s, with its PAX headers."""
    when = int(mtime)
    if name.isascii() and len(name) <= 100 and 0 <= size < _OCTAL_11 and 0 <= when < _OCTAL_11:
        return _ustar_header(name.encode("ascii"), size, when, mode)
    import tarfile  # only at the end of a run: keeps it off the start-up path

    info = tarfile.TarInfo(name)
    info.size = size
    info.mtime = int(mtime)
    info.mode = mode
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    info.type = tarfile.REGTYPE
    return info.tobuf(tarfile.PAX_FORMAT, encoding="utf-8", errors="surrogateescape")


def _ustar_header(name: bytes, size: int, mtime: int, mode: int) -> bytes:
    """One ustar block of a root-owned regular file, as ``tarfile.TarInfo.tobuf(PAX_FORMAT)``."""
    head = b"".join(
        (
            name.ljust(100, b"\0"),
            b"%07o\0" % (mode & 0o7777),
            b"0000000\0" * 2,  # uid, gid
            b"%011o\0" % size,
            b"%011o\0" % mtime,
        )
    )
    tail = b"0" + bytes(100) + b"ustar\x0000" + bytes(32 + 32 + 8 + 8 + 155 + 12)  # type, link, magic...
    checksum = sum(head) + 8 * ord(" ") + sum(tail)  # the checksum field counts as spaces
    return head + b"%06o\0 " % checksum + tail


def tar_trailer(size: int) -> bytes:
    """Padding after ``size`` bytes of member data, then the end-of-archive marker."""
    return b"\0" * (-size % BLOCK) + b"\0" * (2 * BLOCK)


def gzip_member(data: bytes, level: int | None = None) -> bytes:
    comp = _compressobj(level)
    member: bytes = comp.compress(data) + comp.flush()
    return member


def gzip_file(src: int, out: BinaryIO, level: int | None = None) -> int:
    """Compress everything readable from fd ``src`` into one gzip member on ``out``; bytes read."""
    comp = _compressobj(level)
    total = 0
    while True:
        data = os.read(src, _READ)
        if not data:
            break
        total += len(data)
        out.write(comp.compress(data))
    out.write(comp.flush())
    return total


def write_tgz(src: int, name: str, size: int, mtime: float, out: BinaryIO, level: int | None = None) -> None:
    """Write a one-member .tgz of ``size`` bytes read from fd ``src`` (exactly that many)."""
    comp = _compressobj(level)
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


def tgz_bytes(name: str, data: bytes, mtime: float, level: int | None = None) -> bytes:
    """A one-member .tgz of ``data``, in memory (the library's ``Writer``)."""
    comp = _compressobj(level)
    size = len(data)
    head = comp.compress(tar_header(name, size, mtime))
    return b"".join((head, comp.compress(data), comp.compress(tar_trailer(size)), comp.flush()))


def read_single_member(path: Path) -> tuple[str, bytes]:
    """For tests and the read side: the one member's name and bytes."""
    import tarfile

    with tarfile.open(path, "r:gz") as tar:
        members = tar.getmembers()
        if len(members) != 1:
            raise ValueError(f"{path}: expected one member, found {len(members)}")
        extracted = tar.extractfile(members[0])
        assert extracted is not None
        return members[0].name, extracted.read()
