"""What COMMAND writes before the capture is wired: held in memory, in arrival order.

The supervisor's loop pumps from the moment of the spawn, while ``wrapper/run.py`` is still being
imported and wired (tens of milliseconds); the bytes read meanwhile are kept here and replayed into
the capture when it arrives. The loop stops reading (so COMMAND waits) once ``EARLY_LIMIT`` is held.
"""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Optional


EARLY_LIMIT = 8 * 1024 * 1024  # bytes held before the loop stops reading


class Early:
    """COMMAND's output until the capture is wired (the first tens of milliseconds), in memory."""

    def __init__(self) -> None:
        self.parts: list[bytes] = []
        self.size = 0

    def write(self, data: memoryview) -> None:
        self.parts.append(bytes(data))
        self.size += len(data)

    def due(self) -> Optional[float]:
        return None

    def tick(self, now: float) -> None:
        pass
