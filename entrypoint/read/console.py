"""The reader's own messages on stderr: one line each, prefixed. Progress is separate (progress.py)."""

from __future__ import annotations

import sys
from typing import TextIO

PREFIX = "tekton-uploader-read: "


class Console:
    def __init__(self, stream: TextIO | None = None) -> None:
        self._stream = stream

    @property
    def stream(self) -> TextIO:
        return self._stream if self._stream is not None else sys.stderr

    def is_tty(self) -> bool:
        try:
            return self.stream.isatty()
        except (AttributeError, ValueError):
            return False

    def _emit(self, text: str) -> None:
        try:
            self.stream.write(PREFIX + " ".join(text.splitlines()) + "\n")
            self.stream.flush()
        except (OSError, ValueError):
            pass  # stderr gone: nothing to tell

    def note(self, text: str) -> None:
        self._emit(text)

    def note_tty(self, text: str) -> None:
        """Only for a person watching: nothing extra when stderr is piped or redirected."""
        if self.is_tty():
            self._emit(text)

    def warn(self, text: str) -> None:
        self._emit(f"warning: {text}")

    def error(self, text: str) -> None:
        self._emit(f"error: {text}")
