"""The spool directory, made and tried before COMMAND starts.

An unusable ``--spool-dir`` (read-only, a file, ``/proc``, no usable temporary directory at all)
found only once COMMAND runs would cost COMMAND its output; so the directory is created, and a
byte written and removed in it, first. Failing that: ``SpoolDirError``, one line naming the
option and the fix (exit 2, COMMAND not started).
"""

from __future__ import annotations

import os

from ..records import path_text

TYPE_CHECKING = False
if TYPE_CHECKING:
    from pathlib import Path
    from typing import Optional

    from _typeshed import StrPath


HINT = "give a writable directory with --spool-dir (OBJECTSTORE_SPOOL_DIR)"


class SpoolDirError(Exception):
    """The spool directory cannot be used; the message is one line naming the option."""


def make_spool(parent: Optional[StrPath]) -> Path:
    """A new private directory for this run (under ``parent``, else the temporary directory),
    with its ``chunks`` subdirectory, proven writable."""
    from pathlib import Path

    return Path(make_spool_dir(parent))


def make_spool_dir(parent: Optional[StrPath]) -> str:
    """``make_spool``, the directory as text: this runs before COMMAND starts (without pathlib)."""
    option = "--spool-dir" if parent is not None else "spool directory"
    given = path_text(os.fspath(parent)) if parent is not None else None
    try:
        if given is not None:
            if os.path.exists(given) and not os.path.isdir(given):
                raise NotADirectoryError(20, "it is not a directory")
            os.makedirs(given, exist_ok=True)
        spool = _new_directory(given if given is not None else _temporary_directory())
    except (OSError, ValueError) as exc:
        where = given if given is not None else "a temporary directory"
        reason = getattr(exc, "strerror", None) or str(exc)
        raise SpoolDirError(f"{option}: cannot create {where}: {reason}; {HINT}") from None
    try:
        chunks = os.path.join(spool, "chunks")
        os.mkdir(chunks)
        probe = os.path.join(chunks, ".probe")
        fd = os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
        try:
            if os.write(fd, b"x") != 1:
                raise OSError(28, "No space left on device")
        finally:
            os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        remove_spool(spool)
        where = os.path.dirname(spool)
        raise SpoolDirError(f"{option}: cannot write in {where}: {exc.strerror}; {HINT}") from None
    return spool


def _temporary_directory() -> str:
    """``$TMPDIR``, else /tmp, /var/tmp, /usr/tmp (tempfile's order on Linux, without importing
    it and its random module: this runs before COMMAND starts)."""
    for candidate in (os.environ.get("TMPDIR"), "/tmp", "/var/tmp", "/usr/tmp"):
        if candidate and os.path.isdir(candidate) and os.access(candidate, os.W_OK | os.X_OK):
            return path_text(candidate)
    raise OSError(2, "no usable temporary directory ($TMPDIR, /tmp, /var/tmp, /usr/tmp)")


def _new_directory(parent: str) -> str:
    """A new directory only we can enter (mode 0700), with a name nobody can guess."""
    for _ in range(100):
        path = os.path.join(parent, f"tekton-uploader-{os.urandom(6).hex()}")
        try:
            os.mkdir(path, 0o700)
        except FileExistsError:
            continue
        return path
    raise OSError(17, f"no free name for a spool directory in {parent}")


def remove_spool(spool: StrPath) -> None:
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
