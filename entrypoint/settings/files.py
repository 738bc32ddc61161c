"""The one way the wrapper reads a small file it was pointed at (labels, credentials, keys, CAs).

Only a regular file is read, and at most ``limit`` bytes of it: ``/dev/zero`` would be read for
ever (until the machine runs out of memory) and a FIFO with no writer would block before COMMAND
starts. The file is opened with ``O_NONBLOCK`` and checked with ``fstat`` before any read, so
neither can happen; the caller gets one line naming the option and the fix instead.
"""

from __future__ import annotations

import os
import stat

TYPE_CHECKING = False
if TYPE_CHECKING:
    from _typeshed import StrPath

_KINDS = (
    (stat.S_ISDIR, "a directory"),
    (stat.S_ISFIFO, "a named pipe (FIFO)"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
    (stat.S_ISSOCK, "a socket"),
)


def kind_of(mode: int) -> str:
    return next((name for test, name in _KINDS if test(mode)), "not a regular file")


def read_small_file(path: StrPath, option: str, limit: int, *, truncate: bool = False) -> bytes:
    """The bytes of the regular file ``path``. ``FileNotFoundError`` as it is; any other problem:
    ``ValueError`` naming ``option``. Over ``limit`` bytes: ValueError, or (``truncate``) the first
    ``limit`` bytes only."""
    flags = os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC
    try:
        fd = os.open(path, flags)
    except FileNotFoundError:
        raise
    except OSError as exc:
        raise ValueError(f"{option}: cannot read {path}: {exc.strerror}") from None
    try:
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            raise ValueError(f"{option}: {path} is {kind_of(mode)}, not a regular file; give a regular file")
        chunks: list[bytes] = []
        size = 0
        while size <= limit:
            data = os.read(fd, limit + 1 - size)
            if not data:
                break
            chunks.append(data)
            size += len(data)
    except OSError as exc:
        raise ValueError(f"{option}: cannot read {path}: {exc.strerror}") from None
    finally:
        os.close(fd)
    data = b"".join(chunks)
    if len(data) > limit:
        if truncate:
            return data[:limit]
        raise ValueError(f"{option}: {path} is larger than {_size(limit)}; is it the right file?")
    return data


def check_regular(path: StrPath, option: str) -> None:
    """ValueError naming ``option`` when ``path`` exists and is not a regular file (a missing
    file is the caller's business: it may appear later, as a rotated Secret does)."""
    try:
        mode = os.stat(path).st_mode
    except OSError:
        return
    if not stat.S_ISREG(mode):
        raise ValueError(f"{option}: {path} is {kind_of(mode)}, not a regular file; give a regular file")


def _size(n: int) -> str:
    for unit, factor in (("MiB", 1024**2), ("KiB", 1024)):
        if n >= factor and n % factor == 0:
            return f"{n // factor}{unit}"
    return f"{n} bytes"
