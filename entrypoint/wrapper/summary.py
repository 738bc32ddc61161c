"""The run summary: COMMAND's wall time, CPU time and peak memory of its process tree.

CPU time comes from ``getrusage(RUSAGE_CHILDREN)`` once everything is reaped (the wrapper is a
subreaper, so orphaned descendants count too). Peak RSS is the largest sum of the tree's resident
memory seen by a sampler thread (every 0.5 s; None for a COMMAND that ends before the first sample).
The same thread calls ``on_tick`` after each sample (the memory cgroup watch). ``cause`` says why
COMMAND ended (``outcome.CAUSES``) and ``cause_detail`` what proves it.
"""

from __future__ import annotations

import resource
import threading
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any, Optional

from .. import threads
from . import proctree

SAMPLE_INTERVAL = 0.5


class TreeSampler:
    """Samples the resident memory of a process and its descendants in a background thread."""

    def __init__(
        self, pid: int, interval: float = SAMPLE_INTERVAL, on_tick: Callable[[], None] = lambda: None
    ) -> None:
        self.pid = pid
        self.interval = interval
        self.on_tick = on_tick
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="tree-sampler", daemon=True)

    def start(self) -> TreeSampler:
        self._thread.start()
        return self

    def stop(self) -> int:
        self._stop.set()
        self._thread.join(timeout=2)
        return self.peak

    def _run(self) -> None:
        threads.settle("sampler", background=True)
        while not self._stop.is_set():
            self.on_tick()
            pids = proctree.tree(self.pid)
            if proctree.state(self.pid) in ("", "Z", "X"):
                return
            self.peak = max(self.peak, proctree.rss(pids))
            self._stop.wait(self.interval)


@dataclass
class Summary:
    pipelinerun: str
    pipelinetask: str
    step: str
    exit_code: int
    command_exit_code: Optional[int]  # None when COMMAND was killed by a signal
    signal: Optional[int]
    timed_out: bool
    started_at: str
    finished_at: str
    wall_seconds: float
    cpu_user_seconds: float
    cpu_system_seconds: float
    peak_rss_bytes: Optional[int]  # None: COMMAND ended before the first sample
    log_bytes: int
    cause: str = "exit"  # why COMMAND ended: one of outcome.CAUSES
    cause_detail: dict[str, Any] = field(default_factory=dict)  # signal, memory limit and peak, counter
    results: list[str] = field(default_factory=list)
    results_skipped: list[str] = field(default_factory=list)
    signals_received: list[int] = field(default_factory=list)
    objects_missing: list[str] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data.update(data.pop("extra"))
        return data


def children_cpu() -> tuple[float, float]:
    """(user, system) CPU seconds of all reaped descendants.

    (``ru_maxrss`` is not used: a child spawned with vfork shares the wrapper's memory until it
    execs, so its peak would be the wrapper's own.)
    """
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime, usage.ru_stime
