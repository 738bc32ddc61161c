"""The spool directory, made and tried before COMMAND starts.

An unusable ``--spool-dir`` (read-only, a file, ``/proc``, no usable temporary directory at all)
found only once COMMAND runs would cost COMMAND its output; so the directory is created, and a
byte written and removed in it, first. Failing that: ``SpoolDirError``, one line naming the
option and the fix (exit 2, COMMAND not started).
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path
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
        spool = Path(tempfile.mkdtemp(prefix="tekton-uploader-", dir=parent))
    except (OSError, ValueError) as exc:  # also tempfile's "No usable temporary directory"
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
        shutil.rmtree(spool, ignore_errors=True)
        raise SpoolDirError(f"{option}: cannot write in {spool.parent}: {exc.strerror}; {HINT}") from None
    return spool

