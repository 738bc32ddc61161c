"""Watch the memory cgroup while COMMAND runs, and flush the live log faster when death is near.

The cgroup is read at the start, on each tick of the summary's sampler thread and at the end;
never on the output path. When usage passes ``--fast-flush-at`` of the limit, or memory
pressure (PSI ``some avg10``) passes ``PRESSURE_HIGH``, or the wrapper got a SIGTERM (pod
deletion or eviction: the kubelet's SIGKILL follows), the capture seals and uploads its live
chunk every ``FAST_INTERVAL`` instead of every ``--log-flush-interval``: an OOM kill of the whole
container (cgroup v2, ``memory.oom.group``) takes the wrapper too, and what is not stored is lost.
The first switch is said once on stderr. After a SIGTERM the fast pace lasts until exit; after
memory alone it lasts while the usage or the pressure stays high.
"""

from __future__ import annotations

import threading

from ..report import Reporter
from ..units import format_size
from .cgroup import Cgroup, Memory

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any, Optional, Protocol
else:
    Protocol = object  # protocols are for type checkers: no typing module at run time (start-up cost)

FAST_INTERVAL = 1.0  # seconds between seals when death is near
PRESSURE_HIGH = 10.0  # PSI some avg10 (percent of the last 10 s some task stalled on memory)


class Paced(Protocol):
    """The capture: its flush interval is what is changed."""

    flush_interval: float


class MemoryWatch:
    def __init__(
        self,
        cgroup: Optional[Cgroup],
        first: Optional[Memory],
        capture: Paced,
        threshold: float,
        reporter: Reporter,
        terminated: Callable[[], bool] = lambda: False,
        wake: Callable[[], None] = lambda: None,
    ) -> None:
        self.cgroup = cgroup
        self.capture = capture
        self.normal = capture.flush_interval
        self.threshold = threshold  # a fraction of the limit
        self.reporter = reporter
        self._terminated = terminated
        self._wake = wake
        self._lock = threading.Lock()
        self.first = first  # read before COMMAND started: the counters' baseline
        self.last = self.first
        self.peak = self.first.current if self.first is not None else None  # highest usage seen
        self.fast_reason: Optional[str] = None  # why the pace went fast the first time
        self.fast_ticks = 0  # ticks spent at the fast pace

    def tick(self) -> None:
        """One look at the cgroup and at SIGTERM; sets the capture's pace (sampler thread)."""
        with self._lock:
            memory = self._read()
            reason = self._reason(memory)
            interval = min(FAST_INTERVAL, self.normal) if reason else self.normal
            if reason:
                self.fast_ticks += 1
            if reason and self.fast_reason is None:
                self.fast_reason = reason
                every = f"every {min(FAST_INTERVAL, self.normal):g}s"
                self.reporter.warn(f"{reason}: uploading the live log {every} while it lasts")
            if interval != self.capture.flush_interval:
                self.capture.flush_interval = interval
                self._wake()  # the loop looks at the new deadline now

    def end(self) -> Optional[Memory]:
        """The last reading, taken now."""
        with self._lock:
            return self._read()

    def _read(self) -> Optional[Memory]:
        if self.cgroup is None:
            return None
        memory = self.cgroup.read()
        if memory is not None:
            self.last = memory
            if memory.current is not None:
                self.peak = max(self.peak or 0, memory.current)
        return memory

    def _reason(self, memory: Optional[Memory]) -> Optional[str]:
        if self._terminated():
            return "SIGTERM received"
        if memory is None:
            return None
        fraction = memory.fraction()
        if fraction is not None and fraction >= self.threshold:
            assert memory.limit is not None
            return f"memory use at {fraction:.0%} of the {format_size(memory.limit)} cgroup limit"
        if memory.pressure is not None and memory.pressure >= PRESSURE_HIGH:
            return f"memory pressure high (PSI some avg10={memory.pressure:g}%)"
        return None

    def summary(self) -> dict[str, Any]:
        """What the summary records of the pace."""
        return {"fast_flush": self.fast_reason, "fast_flush_ticks": self.fast_ticks}
