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

from .. import threads
from ..records import Record
from . import proctree

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Mapping, Sequence
    from typing import Any, Optional


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
        self._sampling = threading.Lock()  # held for each sample

    def start(self) -> TreeSampler:
        threads.start(self._run, "sampler", background=True)
        return self

    def stop(self) -> int:
        """The peak seen (0: never sampled, or not started). No sample starts after this; one under
        way is waited for (at most 2 s), not the thread's end, which would cost a thread switch."""
        self._stop.set()
        if self._sampling.acquire(timeout=2):
            self._sampling.release()
        return self.peak

    def _run(self) -> None:
        while True:
            with self._sampling:
                if self._stop.is_set():
                    return
                self.on_tick()
                pids = proctree.tree(self.pid)
                if proctree.state(self.pid) in ("", "Z", "X"):
                    return
                self.peak = max(self.peak, proctree.rss(pids))
            self._stop.wait(self.interval)


class Summary(Record):
    """What ``<step>-summary.json`` holds, in this order (``extra``'s keys come last, at the top level).

    (A ``Record``: ``dataclasses`` and ``typing`` cost milliseconds on the wrapper's run path. It is
    built once, complete, and never changed: the empty defaults are not shared with anything that writes.)
    """

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
    attempt: int = 1  # which attempt of the step (Tekton retries), from 1
    cause: str = "exit"  # why COMMAND ended: one of outcome.CAUSES
    cause_detail: Mapping[str, Any] = {}  # signal, memory limit and peak, counter
    results: Sequence[str] = ()
    results_skipped: Sequence[str] = ()
    signals_received: Sequence[int] = ()
    objects_missing: Sequence[str] = ()
    extra: Mapping[str, Any] = {}

    def to_dict(self) -> dict[str, Any]:
        data = self._asdict()
        data.update(data.pop("extra"))
        return data


def children_cpu() -> tuple[float, float]:
    """(user, system) CPU seconds of all reaped descendants.

    (``ru_maxrss`` is not used: a child spawned with vfork shares the wrapper's memory until it
    execs, so its peak would be the wrapper's own.)
    """
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime, usage.ru_stime
