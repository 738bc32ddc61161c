"""The wrapper's own messages on stderr: one line each, prefixed, written atomically.

COMMAND's stderr passes through the same file descriptor, so a message is written with a single
``os.write`` to keep it from being split by COMMAND's output.
"""

from __future__ import annotations

import os
import sys
import threading

from .redact import redact

PREFIX = "tekton-uploader: "


def open_std_fds() -> None:
    """Started with any of fds 0-2 closed: hold it with /dev/null (close-on-exec, so COMMAND sees
    its stdin closed as it was), so that no pipe or file of ours becomes stdin/stdout/stderr, and
    give Python's ``sys.std*`` (None then) a file."""
    for fd, name in enumerate(("stdin", "stdout", "stderr")):
        try:
            os.fstat(fd)
        except OSError:
            got = os.open(os.devnull, os.O_RDWR | os.O_CLOEXEC)
            if got != fd:  # cannot be: the lower ones are open
                os.dup2(got, fd, inheritable=False)
                os.close(got)
        if getattr(sys, name) is None:
            setattr(sys, name, open(fd, "r" if fd == 0 else "w", closefd=False))  # noqa: SIM115


class Reporter:
    def __init__(self, quiet: bool = False, debug: bool = False, fd: int = 2) -> None:
        self.quiet = quiet
        self.verbose = debug
        self._fd = fd
        self._lock = threading.Lock()

    def _emit(self, text: str) -> None:
        data = (PREFIX + redact(text).replace("\n", " ") + "\n").encode("utf-8", "replace")
        with self._lock:
            try:
                os.write(self._fd, data)
            except OSError:
                pass  # stderr gone: nothing to tell, keep working

    def info(self, text: str) -> None:
        if not self.quiet:
            self._emit(text)

    def warn(self, text: str) -> None:
        self._emit(f"warning: {text}")

    def error(self, text: str) -> None:
        self._emit(f"error: {text}")

    def debug(self, text: str) -> None:
        if self.verbose:
            self._emit(f"debug: {text}")
