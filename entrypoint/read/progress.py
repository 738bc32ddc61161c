"""A one-line download progress display on stderr, only when stderr is a terminal.

Nothing is printed when stderr is piped or redirected, nor for downloads under ``MIN_TOTAL``.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TextIO

from ..units import format_size

MIN_TOTAL = 4 * 1024 * 1024


class Progress:
    def __init__(
        self,
        label: str,
        total: int,
        stream: TextIO,
        enabled: bool,
        interval: float = 0.25,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.label = label
        self.total = total
        self.done = 0
        self._stream = stream
        self.enabled = enabled and total >= MIN_TOTAL
        self._interval = interval
        self._clock = clock
        self._last = clock()
        self._shown = False

    @classmethod
    def for_stream(cls, label: str, total: int, stream: TextIO) -> Progress:
        try:
            tty = stream.isatty()
        except (AttributeError, ValueError):
            tty = False
        return cls(label, total, stream, tty)

    def update(self, n: int) -> None:
        self.done += n
        if not self.enabled:
            return
        now = self._clock()
        if now - self._last < self._interval:
            return
        self._last = now
        percent = min(100, self.done * 100 // self.total) if self.total else 100
        self._write(
            f"\r{self.label}: {format_size(self.done)} of {format_size(self.total)} ({percent}%)\x1b[K"
        )
        self._shown = True

    def finish(self) -> None:
        if self._shown:
            self._write("\r\x1b[K")
            self._shown = False

    def _write(self, text: str) -> None:
        try:
            self._stream.write(text)
            self._stream.flush()
        except (OSError, ValueError):
            self.enabled = False
