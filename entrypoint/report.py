"""Our own messages on stderr, the one mechanism for the wrapper, the library and the reader:
one line each (line breaks in a message become spaces), prefixed, secrets redacted.

COMMAND's stderr passes through the same file descriptor, so a message is written with a single
``os.write`` to keep it from being split by COMMAND's output. The reader's ``Console``
(``read/console.py``) is a ``Reporter`` with its own prefix; given a ``stream`` (a test's), lines
go there instead of the file descriptor.
"""

from __future__ import annotations

import os
import sys
from _thread import allocate_lock

from .redact import redact

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Optional, TextIO


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
    def __init__(
        self,
        quiet: bool = False,
        debug: bool = False,
        fd: int = 2,
        prefix: str = PREFIX,
        stream: Optional[TextIO] = None,
    ) -> None:
        self.quiet = quiet
        self.verbose = debug
        self.prefix = prefix
        self._fd = fd
        self._stream = stream
        self._lock = allocate_lock()

    @property
    def stream(self) -> TextIO:
        """Where a progress display goes (the reader's): the given stream, else stderr."""
        return self._stream if self._stream is not None else sys.stderr

    def is_tty(self) -> bool:
        try:
            return self.stream.isatty() if self._stream is not None else os.isatty(self._fd)
        except (AttributeError, ValueError, OSError):
            return False

    def _emit(self, text: str) -> None:
        line = self.prefix + " ".join(redact(text).splitlines()) + "\n"
        with self._lock:
            try:
                if self._stream is not None:
                    self._stream.write(line)
                    self._stream.flush()
                else:
                    os.write(self._fd, line.encode("utf-8", "replace"))
            except (OSError, ValueError):
                pass  # stderr gone: nothing to tell, keep working

    def info(self, text: str) -> None:
        if not self.quiet:
            self._emit(text)

    note = info  # the reader's word for it

    def note_tty(self, text: str) -> None:
        """Only for a person watching: nothing extra when stderr is piped or redirected."""
        if self.is_tty():
            self.info(text)

    def warn(self, text: str) -> None:
        self._emit(f"warning: {text}")

    def error(self, text: str) -> None:
        self._emit(f"error: {text}")

    def debug(self, text: str) -> None:
        if self.verbose:
            self._emit(f"debug: {text}")
