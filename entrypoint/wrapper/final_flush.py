"""The final flush, after COMMAND exits, and every deadline it keeps.

Order: the results and the log archive (with the live chunks still queued), then the run summary,
then the manifest, last, built from what happened by then. Deadlines (``Deadlines``, re-read on
every wake-up, so a SIGTERM during the flush shortens them at once): the flush ends at ``end()``,
``--flush-timeout`` after COMMAND exited and never later than a SIGTERM's ``--termination-grace``
minus ``EXIT_MARGIN`` (the kubelet's SIGKILL follows the grace period), nor than
the planned end of a Tekton step timeout's flush (``settings/tekton.py``: the entrypoint
SIGKILLs the step at the timeout, with no warning). The time left between the
flush's start (or a later SIGTERM) and that end is split once: everything but the summary and the
manifest has all but the last ``RESERVE_SHARE`` of it (at most ``RESERVE_MAX``), the summary half of
that reserve, the manifest the rest. The summary and the manifest go up each on a thread of its
own, so that workers stuck on a dead connection cannot keep them from being tried; with a local
store (no network to hang on) they, and the log archive when it is complete, are first tried on
the main thread, and only a transient failure hands them on to a thread (``Uploader.store_here``).
The wrapper exits by the flush's end whatever the store does; a second SIGINT/SIGTERM gives the
flush up at once (the summary and the manifest are then counted missing).
"""

from __future__ import annotations

import json
import os
import time

from ..formats.layout import MANIFEST, SUMMARY
from ..formats.manifest import LogAccount, Manifest
from ..report import Reporter
from ..results import artifacts
from ..results.queue import submit_results
from ..settings.step import Config
from ..settings.tekton import TektonDeadline
from ..spool.archiver import LogArchiver
from ..spool.budget import SpoolBudget
from ..spool.capture import LogCapture
from ..store.payload import Payload
from ..transfer.uploader import Job, Uploader
from ..units import format_size
from .outcome import Cause, Outcome, cause_of, log_account, signal_name
from .pressure import MemoryWatch
from .summary import Summary, children_cpu
from .supervisor import INTERRUPTS

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Sequence
    from typing import Any, Optional, Protocol
else:
    Protocol = object  # protocols are for type checkers: no typing module at run time (start-up cost)

EXIT_MARGIN = 1.0  # seconds kept back from the termination grace for exiting cleanly
RESERVE_SHARE = 1 / 3  # of the time left for the flush, kept for the summary and the manifest
RESERVE_MAX = 10.0  # at most this much of the flush is kept for the summary and the manifest


class Interruptible(Protocol):
    """What the final flush needs of the supervisor: the signals that shorten or end it."""

    terminated_at: Optional[float]  # the first SIGTERM (monotonic)
    interrupts: int  # SIGINT/SIGTERM received so far

    def wait_wakeup(self, timeout: Optional[float]) -> list[int]: ...


class Ended:
    """How COMMAND ended, as the supervisor saw it.

    (A plain class, as every record loaded after the spawn: a ``typing.NamedTuple`` costs ~0.1 ms
    to define, and a COMMAND that ends at once waits for it.)"""

    __slots__ = (
        "code", "finished_wall", "memory", "peak_rss", "signals_received", "started_wall", "status",
        "terminated", "timed_out",
    )  # fmt: skip

    def __init__(
        self,
        code: int,
        status: int,
        timed_out: bool,
        signals_received: Sequence[int],
        started_wall: float,
        finished_wall: float,
        peak_rss: int,
        memory: Optional[MemoryWatch] = None,
        terminated: bool = False,
    ) -> None:
        self.code = code  # as a shell reports it (128+N for signal N), 124 for --timeout
        self.status = status  # the wait status
        self.timed_out, self.signals_received = timed_out, signals_received
        self.started_wall, self.finished_wall = started_wall, finished_wall
        self.peak_rss = peak_rss  # 0: not sampled
        self.memory = memory  # the memory cgroup watch (None: not watched)
        self.terminated = terminated  # the wrapper got SIGTERM before COMMAND's end

    def cause(self, tekton_timeout: bool = False) -> Cause:
        """Why COMMAND ended, from its status, what the wrapper did and the memory cgroup;
        ``tekton_timeout``: stopped ahead of the Tekton step timeout (by its detection)."""
        watch = self.memory
        after = watch.end() if watch is not None else None
        before = watch.first if watch is not None else None
        peak = watch.peak if watch is not None else None
        return cause_of(self.status, self.timed_out, self.terminated, before, after, peak, tekton_timeout)


class Deadlines:
    """Every deadline of the final flush, from its start and the first SIGTERM."""

    def __init__(
        self,
        started: float,
        flush_timeout: float,
        grace: float,
        sup: Interruptible,
        hard_end: Optional[float] = None,
    ) -> None:
        self.started, self.flush_timeout, self.grace, self._sup = started, flush_timeout, grace, sup
        self.hard_end = hard_end  # a Tekton step timeout's flush end: its SIGKILL follows

    def end(self) -> float:
        """When the wrapper must be done storing."""
        deadline = self.started + self.flush_timeout
        if self.hard_end is not None:
            deadline = min(deadline, self.hard_end)
        term = self._sup.terminated_at
        if term is not None:
            deadline = min(deadline, term + self.grace - EXIT_MARGIN)
        return deadline

    def reserve(self) -> float:
        """The summary's and the manifest's share of the time the flush has (from its start, or
        from a SIGTERM during it): taken once, from the end."""
        term = self._sup.terminated_at
        since = self.started if term is None else max(self.started, term)
        return min(RESERVE_MAX, max(0.0, self.end() - since) * RESERVE_SHARE)

    def objects(self) -> float:
        return self.end() - self.reserve()

    def summary(self) -> float:
        return self.end() - self.reserve() / 2


class FinalFlush:
    def __init__(
        self,
        cfg: Config,
        reporter: Reporter,
        uploader: Uploader,
        capture: LogCapture,
        archiver: LogArchiver,
        budget: SpoolBudget,
        spool: str,
        supervisor: Interruptible,
        clock: Callable[[], float],
        inputs: Sequence[dict[str, Any]] = (),
        tekton: Optional[TektonDeadline] = None,
    ) -> None:
        self.cfg, self.reporter, self.uploader = cfg, reporter, uploader
        self.tekton = tekton  # Tekton's entrypoint SIGKILLs the step at tekton.ends_at
        self.stopped_for_tekton = False  # COMMAND was stopped by the deadline planned for it
        self.capture, self.archiver, self.budget, self.spool = capture, archiver, budget, spool
        self.sup, self.clock, self.inputs = supervisor, clock, list(inputs)
        self.aborted = False
        # a local directory: no network to hang on, so objects are first tried on this thread
        self.here = cfg.store.endpoint is None
        self.deadlines: Optional[Deadlines] = None
        self.manifest: dict[str, Any] = {}

    def run(self, ended: Ended) -> int:
        """Store what is left; report; the wrapper's exit code."""
        cfg = self.cfg
        tekton = self.tekton
        hard_end = None if tekton is None else tekton.flush_end
        deadlines = Deadlines(self.clock(), cfg.flush_timeout, cfg.termination_grace, self.sup, hard_end)
        self.deadlines = deadlines
        self.stopped_for_tekton = tekton is not None and cfg.timeout is None and ended.timed_out
        found, not_uploaded, queued = submit_results(
            cfg, self.uploader, self.spool, self.reporter, ended.code, self.budget
        )
        cause = ended.cause(tekton_timeout=self.stopped_for_tekton)
        if cause.name == "oom-kill" and cfg.termination_log is not None:
            from .termination import note_termination  # seldom needed: not loaded on every exit

            note_termination(cfg.termination_log, f"{cfg.layout.step}: COMMAND {cause.text}", self.reporter)
        self.capture.close()
        total = self.capture.total
        mtime = ended.finished_wall if cfg.archive_mtime is None else cfg.archive_mtime
        # with a local store and the archive complete (nothing to wait for), stored right here
        submit = self.uploader.store_here if self.here and self.archiver.idle() else self.uploader.submit
        for key in cfg.layout.log_archive_keys():  # a retry's own, then <step>-log.tgz (the latest's)
            submit(
                Job(
                    key=key,
                    build=lambda: self.archiver.finish(total, mtime),
                    content_type="application/gzip",
                    kind="log",
                )
            )
        if cfg.results_log_key is not None:  # --tekton-results-logs: the same bytes, plain, once
            submit(
                Job(
                    key=cfg.results_log_key,
                    build=self.archiver.plain,
                    content_type="text/plain; charset=utf-8",
                    kind="results-log",
                )
            )
        self._wait(self.uploader.jobs(), deadlines.objects)
        self.uploader.abandon()  # what is not stored now is reported missing: no more attempts
        offloaded = artifacts.tekton_outputs(cfg, queued, self.reporter, self.inputs)
        outcome = Outcome(
            ended.code, cfg.ignore_upload_errors, [j for j in self.uploader.jobs() if not j.stored]
        )
        account = log_account(self.capture)
        offloads = [o.to_dict() for o in offloaded]
        summary = self._summary(ended, outcome, account, found, not_uploaded, queued, offloads, cause)
        if not self.aborted:
            data = json.dumps(summary.to_dict(), indent=2).encode() + b"\n"
            summary_job = self._store_last(SUMMARY, data, deadlines.summary)
            if not summary_job.stored:
                outcome.missing.append(summary_job)
        else:
            self._not_tried(SUMMARY, outcome)
        if not self.aborted:
            manifest = Manifest(
                cfg.layout, cfg.store.bucket, account, ended.code, outcome.exit_code, not_uploaded, offloads
            )
            entries = [j.entry() for j in self.uploader.jobs()]
            self.manifest = manifest.to_dict(entries)
            manifest_job = self._store_last(MANIFEST, manifest.encode(entries), deadlines.end)
            if not manifest_job.stored:
                outcome.missing.append(manifest_job)
        else:
            self._not_tried(MANIFEST, outcome)
        self.uploader.stop()
        self._report(summary, outcome, account, self.clock() - deadlines.started, cause)
        return outcome.exit_code

    def _summary(
        self,
        ended: Ended,
        outcome: Outcome,
        account: LogAccount,
        found: list[str],
        not_uploaded: Sequence[Any],
        queued: Sequence[Any],
        offloads: list[dict[str, Any]],
        cause: Cause,
    ) -> Summary:
        cfg = self.cfg
        user, system = children_cpu()
        signal = os.WTERMSIG(ended.status) if os.WIFSIGNALED(ended.status) else None
        return Summary(
            pipelinerun=cfg.layout.pipelinerun,
            pipelinetask=cfg.layout.pipelinetask,
            step=cfg.layout.step,
            attempt=cfg.layout.attempt,
            exit_code=outcome.exit_code,
            command_exit_code=None if signal else os.waitstatus_to_exitcode(ended.status),
            signal=signal,
            timed_out=ended.timed_out,
            started_at=_iso(ended.started_wall),
            finished_at=_iso(ended.finished_wall),
            wall_seconds=round(ended.finished_wall - ended.started_wall, 3),
            cpu_user_seconds=round(user, 3),
            cpu_system_seconds=round(system, 3),
            peak_rss_bytes=ended.peak_rss or None,
            log_bytes=account.captured_bytes,
            cause=cause.name,
            cause_detail=cause.detail,
            results=found,
            results_skipped=[s.name for s in not_uploaded],
            signals_received=list(ended.signals_received),
            objects_missing=[j.key for j in outcome.missing],
            extra={
                "log_output_bytes": account.output_bytes,
                "log_not_captured_bytes": account.not_captured_bytes,
                "upload_requests": self.uploader.requests,
                "upload_retries": sum(j.retries for j in self.uploader.jobs()),
                "step_results": [q.result.name for q in queued if q.step],
                "results_offloaded": offloads,
                **(ended.memory.summary() if ended.memory is not None else {}),
            },
        )

    def _last_job(self, suffix: str, data: bytes) -> Job:
        kind = suffix.split(".")[0]
        return Job(
            self.cfg.layout.step_object_key(suffix), lambda: Payload.of(data), "application/json", kind=kind
        )

    def _not_tried(self, suffix: str, outcome: Outcome) -> None:
        """Given up before ``suffix`` was tried: it is counted missing all the same."""
        job = self._last_job(suffix, b"")
        job.error = "not tried: the final flush was interrupted again"
        outcome.missing.append(job)

    def _store_last(self, suffix: str, data: bytes, deadline: Callable[[], float]) -> Job:
        """Store ``<step>-<suffix>`` (summary, manifest) on its own thread within ``deadline()``
        (a local store: first tried right here)."""
        job = self._last_job(suffix, data)
        if self.here:
            self.uploader.store_here(job, deadline())
        else:
            self.uploader.start_last(job, deadline())
        self._wait([job], deadline)
        return job

    def _wait(self, jobs: list[Job], deadline: Callable[[], float]) -> None:
        """Wait for ``jobs`` until ``deadline()`` (re-read on every wake-up: an interrupt shortens
        it); a second interrupt ends the wait and the flush."""
        sup = self.sup
        while not self.aborted and not all(j.done.is_set() for j in jobs):
            now, until = self.clock(), deadline()
            self.uploader.set_deadline(until)
            if now >= until:
                return
            self.reporter.debug(
                f"final flush: waiting for {sum(not j.done.is_set() for j in jobs)} object(s)"
            )
            for sig in sup.wait_wakeup(until - now):
                if sig not in INTERRUPTS:
                    continue
                if sup.interrupts >= 2:
                    self.reporter.warn("interrupted again: giving up the final flush")
                    self.aborted = True
                    self.uploader.set_deadline(now)
                    return
                left = max(0.0, self.deadlines.end() - self.clock()) if self.deadlines else 0.0
                self.reporter.info(
                    f"{signal_name(sig)} during the final flush: storing what is left within "
                    f"{left:.1f}s; a second one gives it up"
                )

    def _report(
        self, summary: Summary, outcome: Outcome, account: LogAccount, flush_seconds: float, cause: Cause
    ) -> None:
        if summary.results_skipped:
            names = ", ".join(map(repr, summary.results_skipped))
            self.reporter.warn(f"{len(summary.results_skipped)} result(s) skipped: {names}")
        stored = [j for j in self.uploader.jobs() if j.stored]
        ended = cause.text
        # None: COMMAND ended before the first sample of its memory (every 0.5 s)
        peak = "not sampled" if summary.peak_rss_bytes is None else format_size(summary.peak_rss_bytes)
        layout = self.cfg.layout
        step = layout.step if layout.attempt == 1 else f"{layout.step} (attempt {layout.attempt})"
        self.reporter.info(
            f"{step}: COMMAND {ended} after {summary.wall_seconds:.1f}s "
            f"(cpu {summary.cpu_user_seconds:.1f}s user, {summary.cpu_system_seconds:.1f}s sys, "
            f"peak {peak}); stored {len(stored)} object(s), "
            f"{format_size(sum(j.size for j in stored))}, in {flush_seconds:.2f}s after exit"
        )
        outcome.report(self.reporter, account)


def _iso(ts: float) -> str:
    """``ts`` in ISO 8601, UTC, to the millisecond: what ``datetime.fromtimestamp(ts, timezone.utc)
    .isoformat(timespec="milliseconds")`` writes (microseconds rounded half to even, then cut),
    without loading ``datetime`` after the spawn."""
    whole = float(int(ts))
    micros = round((ts - whole) * 1e6)
    if micros >= 1_000_000:
        whole, micros = whole + 1, micros - 1_000_000
    elif micros < 0:
        whole, micros = whole - 1, micros + 1_000_000
    t = time.gmtime(whole)
    return (
        f"{t.tm_year:04d}-{t.tm_mon:02d}-{t.tm_mday:02d}T{t.tm_hour:02d}:{t.tm_min:02d}:{t.tm_sec:02d}"
        f".{micros // 1000:03d}+00:00"
    )
