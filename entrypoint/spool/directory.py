"""The spool directory, made and tried before COMMAND starts.

An unusable ``--spool-dir`` (read-only, a file, ``/proc``, no usable temporary directory at all)
found only once COMMAND runs would cost COMMAND its output; so the directory is created, and a
byte written and removed in it, first. Failing that: ``SpoolDirError``, one line naming the
option and the fix (exit 2, COMMAND not started).
"""

from __future__ import annotations

import os
from pathlib import Path

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Optional


HINT = "give a writable directory with --spool-dir (OBJECTSTORE_SPOOL_DIR)"


class SpoolDirError(Exception):
    """The spool directory cannot be used; the message is one line naming the option."""


def make_spool(parent: Optional[Path]) -> Path:
    """A new private directory for this run (under ``parent``, else the temporary directory),
    with its ``chunks`` subdirectory, proven writable."""
    option = "--spool-dir" if parent is not None else "spool directory"
    try:
        if parent is not None:
            if parent.exists() and not parent.is_dir():
                raise NotADirectoryError(20, "it is not a directory")
            parent.mkdir(parents=True, exist_ok=True)
        spool = _new_directory(parent if parent is not None else _temporary_directory())
    except (OSError, ValueError) as exc:
        where = f"{parent}" if parent is not None else "a temporary directory"
        reason = getattr(exc, "strerror", None) or str(exc)
        raise SpoolDirError(f"{option}: cannot create {where}: {reason}; {HINT}") from None
    try:
        chunks = spool / "chunks"
        chunks.mkdir()
        probe = chunks / ".probe"
        fd = os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
        try:
            if os.write(fd, b"x") != 1:
                raise OSError(28, "No space left on device")
        finally:
            os.close(fd)
        probe.unlink()
    except OSError as exc:
        remove_spool(spool)
        raise SpoolDirError(f"{option}: cannot write in {spool.parent}: {exc.strerror}; {HINT}") from None
    return spool


def _temporary_directory() -> Path:
    """``$TMPDIR``, else /tmp, /var/tmp, /usr/tmp (tempfile's order on Linux, without importing
    it and its random module: this runs before COMMAND starts)."""
    for candidate in (os.environ.get("TMPDIR"), "/tmp", "/var/tmp", "/usr/tmp"):
        if candidate and os.path.isdir(candidate) and os.access(candidate, os.W_OK | os.X_OK):
            return Path(candidate)
    raise OSError(2, "no usable temporary directory ($TMPDIR, /tmp, /var/tmp, /usr/tmp)")


def _new_directory(parent: Path) -> Path:
    """A new directory only we can enter (mode 0700), with a name nobody can guess."""
    for _ in range(100):
        path = parent / f"tekton-uploader-{os.urandom(6).hex()}"
        try:
            os.mkdir(path, 0o700)
        except FileExistsError:
            continue
        return path
    raise OSError(17, f"no free name for a spool directory in {parent}")


def remove_spool(spool: Path) -> None:
    """Remove the spool directory and what is left in it (files and directories of files, all
    ours), ignoring errors: shutil's rmtree without importing shutil on every step's exit path."""
    for top, dirs, files in os.walk(spool, topdown=False):
        for name in files:
            try:
                os.unlink(os.path.join(top, name))
            except OSError:
                pass
        for name in dirs:
            try:
                os.rmdir(os.path.join(top, name))
            except OSError:
                pass
    try:
        os.rmdir(spool)
    except OSError:
        pass
