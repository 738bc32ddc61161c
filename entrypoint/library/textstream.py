"""Text on top of a ``Logger`` (``Logger.text()``), for ``logging.StreamHandler`` and ``print(file=...)``."""

from __future__ import annotations

import codecs
import io
from typing import Optional, Protocol, Union

Seconds = Union[float, int, str]  # a duration: seconds, or text such as '5s'


class Binary(Protocol):
    """What a ``TextStream`` writes through: a ``Logger``."""

    @property
    def closed(self) -> bool: ...
    def write(self, data: bytes) -> int: ...
    def flush(self, timeout: Optional[Seconds] = None) -> None: ...


class TextStream(io.TextIOBase):
    """Text on top of a ``Logger``: encodes and writes through; ``flush()`` stays local."""

    def __init__(self, logger: Binary, encoding: str = "utf-8", errors: str = "backslashreplace") -> None:
        super().__init__()
        self.logger = logger
        self._encoding = encoding
        self._errors = errors
        self._encoder = codecs.getincrementalencoder(encoding)(errors)

    @property
    def encoding(self) -> str:  # type: ignore[override]
        return self._encoding

    @property
    def errors(self) -> str:  # type: ignore[override]
        return self._errors

    def writable(self) -> bool:
        return True

    def write(self, text: str) -> int:
        if not isinstance(text, str):
            raise TypeError(f"write() argument must be str, not {type(text).__name__}")
        data = self._encoder.encode(text)
        if data:
            self.logger.write(data)
        return len(text)

    def flush(self) -> None:
        """Nothing is buffered here; storing happens by size, interval, ``sync()`` or close."""
        if self.closed:
            raise ValueError("flush of closed file")

    def sync(self, timeout: Optional[Seconds] = None) -> None:
        """Wait until everything written so far is stored (``Logger.flush``)."""
        self.logger.flush(timeout)

    def close(self) -> None:
        if self.closed:
            return
        try:
            tail = self._encoder.encode("", final=True)
            if tail and not self.logger.closed:
                self.logger.write(tail)
        finally:
            super().close()


