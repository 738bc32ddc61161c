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


FIELDS = (
    "pipelinerun",
    "pipelinetask",
    "step",
    "exit_code",
    "command_exit_code",
    "signal",
    "timed_out",
    "started_at",
    "finished_at",
    "wall_seconds",
    "cpu_user_seconds",
    "cpu_system_seconds",
    "peak_rss_bytes",
    "log_bytes",
    "attempt",
    "cause",
    "cause_detail",
    "results",
    "results_skipped",
    "signals_received",
    "objects_missing",
    "extra",
)


class Summary:
    """What ``<step>-summary.json`` holds, in this order (``extra``'s keys come last, at the top level).

    (A plain class: ``dataclasses`` costs milliseconds on the wrapper's run path.)
    """

    __slots__ = FIELDS

    def __init__(
        self,
        *,
        pipelinerun: str,
        pipelinetask: str,
        step: str,
        exit_code: int,
        command_exit_code: Optional[int],
        signal: Optional[int],
        timed_out: bool,
        started_at: str,
        finished_at: str,
        wall_seconds: float,
        cpu_user_seconds: float,
        cpu_system_seconds: float,
        peak_rss_bytes: Optional[int],
        log_bytes: int,
        attempt: int = 1,
        cause: str = "exit",
        cause_detail: Optional[dict[str, Any]] = None,
        results: Optional[list[str]] = None,
        results_skipped: Optional[list[str]] = None,
        signals_received: Optional[list[int]] = None,
        objects_missing: Optional[list[str]] = None,
        extra: Optional[dict[str, Any]] = None,
    ) -> None:
        self.pipelinerun = pipelinerun
        self.pipelinetask = pipelinetask
        self.step = step
        self.exit_code = exit_code
        self.command_exit_code = command_exit_code  # None when COMMAND was killed by a signal
        self.signal = signal
        self.timed_out = timed_out
        self.started_at = started_at
        self.finished_at = finished_at
        self.wall_seconds = wall_seconds
        self.cpu_user_seconds = cpu_user_seconds
        self.cpu_system_seconds = cpu_system_seconds
        self.peak_rss_bytes = peak_rss_bytes  # None: COMMAND ended before the first sample
        self.log_bytes = log_bytes
        self.attempt = attempt  # which attempt of the step (Tekton retries), from 1
        self.cause = cause  # why COMMAND ended: one of outcome.CAUSES
        # signal, memory limit and peak, counter
        self.cause_detail: dict[str, Any] = {} if cause_detail is None else cause_detail
        self.results: list[str] = [] if results is None else results
        self.results_skipped: list[str] = [] if results_skipped is None else results_skipped
        self.signals_received: list[int] = [] if signals_received is None else signals_received
        self.objects_missing: list[str] = [] if objects_missing is None else objects_missing
        self.extra: dict[str, Any] = {} if extra is None else extra

    def to_dict(self) -> dict[str, Any]:
        data = {name: _plain(getattr(self, name)) for name in FIELDS if name != "extra"}
        data.update(_plain(self.extra))
        return data


def _plain(value: Any) -> Any:
    """A deep copy of JSON-like data (what ``dataclasses.asdict`` made of the fields)."""
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(_plain(v) for v in value)
    return value


def children_cpu() -> tuple[float, float]:
    """(user, system) CPU seconds of all reaped descendants.

    (``ru_maxrss`` is not used: a child spawned with vfork shares the wrapper's memory until it
    execs, so its peak would be the wrapper's own.)
    """
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime, usage.ru_stime
