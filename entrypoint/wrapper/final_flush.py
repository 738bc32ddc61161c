"""The final flush, after COMMAND exits, and every deadline it keeps.

Order: the results and the log archive (with the live chunks still queued), then the run summary,
then the manifest, last, built from what happened by then. Deadlines (``Deadlines``): everything
but the summary and the manifest must be stored by the flush deadline minus a reserve (a tenth of
``--flush-timeout``, at most 10 s); the summary gets half of the reserve, the manifest the rest.
The flush deadline is ``--flush-timeout`` after COMMAND exited, and never later than a SIGTERM's
``--termination-grace`` minus ``EXIT_MARGIN`` (the kubelet's SIGKILL follows the grace period).
The summary and the manifest go up each on a thread of its own, so that workers stuck on a dead
connection cannot keep them from being tried. The wrapper exits by the flush deadline whatever
the store does; a second SIGINT/SIGTERM gives the flush up at once.
"""

from __future__ import annotations

import datetime
import json
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, NamedTuple, Optional, Protocol

from ..formats.layout import MANIFEST, SUMMARY
from ..formats.manifest import LogAccount, Manifest
from ..report import Reporter
from ..results import artifacts
from ..results.queue import submit_results
from ..settings.step import Config
from ..spool.archiver import LogArchiver
from ..spool.budget import SpoolBudget
from ..spool.capture import LogCapture
from ..store.payload import Payload
from ..transfer.uploader import Job, Uploader
from ..units import format_size
from .outcome import Outcome, log_account
from .summary import Summary, children_cpu
from .supervisor import INTERRUPTS

EXIT_MARGIN = 2.0  # seconds kept back from the termination grace for exiting cleanly
RESERVE_MAX = 10.0  # at most this much of the flush is kept for the summary and the manifest


class Interruptible(Protocol):
    """What the final flush needs of the supervisor: the signals that shorten or end it."""

    terminated_at: Optional[float]  # the first SIGTERM (monotonic)
    interrupts: int  # SIGINT/SIGTERM received so far

    def wait_wakeup(self, timeout: Optional[float]) -> list[int]: ...


class Ended(NamedTuple):
    """How COMMAND ended, as the supervisor saw it."""

    code: int  # as a shell reports it (128+N for signal N), 124 for --timeout
    status: int  # the wait status
    timed_out: bool
    signals_received: Sequence[int]
    started_wall: float
    finished_wall: float
    peak_rss: int  # 0: not sampled


class Deadlines:
    """Every deadline of the final flush, from its start and the first SIGTERM."""

    def __init__(self, started: float, flush_timeout: float, grace: float, sup: Interruptible) -> None:
        self.started, self.flush_timeout, self.grace, self._sup = started, flush_timeout, grace, sup
        self.reserve = min(RESERVE_MAX, flush_timeout / 10)

    def end(self) -> float:
        """When the wrapper must be done storing."""
        deadline = self.started + self.flush_timeout
        term = self._sup.terminated_at
        if term is not None:
            deadline = min(deadline, term + self.grace - EXIT_MARGIN)
        return deadline

    def objects(self) -> float:
        return self.end() - self.reserve

    def summary(self) -> float:
        return self.end() - self.reserve / 2


class FinalFlush:
    def __init__(
        self,
        cfg: Config,
        reporter: Reporter,
        uploader: Uploader,
        capture: LogCapture,
        archiver: LogArchiver,
        budget: SpoolBudget,
        spool: Path,
        supervisor: Interruptible,
        clock: Callable[[], float],
        inputs: Sequence[dict[str, Any]] = (),
    ) -> None:
        self.cfg, self.reporter, self.uploader = cfg, reporter, uploader
        self.capture, self.archiver, self.budget, self.spool = capture, archiver, budget, spool
        self.sup, self.clock, self.inputs = supervisor, clock, list(inputs)
        self.aborted = False
        self.manifest: dict[str, Any] = {}

    def run(self, ended: Ended) -> int:
        """Store what is left; report; the wrapper's exit code."""
        cfg = self.cfg
        deadlines = Deadlines(self.clock(), cfg.flush_timeout, cfg.termination_grace, self.sup)
        found, not_uploaded, queued = submit_results(
            cfg, self.uploader, self.spool, self.reporter, ended.code, self.budget
        )
        self.capture.close()
        total = self.capture.total
        mtime = ended.finished_wall if cfg.archive_mtime is None else cfg.archive_mtime
        self.uploader.submit(
            Job(
                key=cfg.layout.log_archive_key(),
                build=lambda: self.archiver.finish(total, mtime),
                content_type="application/gzip",
                kind="log",
            )
        )
        if cfg.results_log_key is not None:  # --tekton-results-logs: the same bytes, plain, once
            self.uploader.submit(
                Job(
                    key=cfg.results_log_key,
                    build=self.archiver.plain,
                    content_type="text/plain; charset=utf-8",
                    kind="results-log",
                )
            )
        self._wait(self.uploader.jobs(), deadlines.objects())
        self.uploader.abandon()  # what is not stored now is reported missing: no more attempts
        offloaded = artifacts.tekton_outputs(cfg, queued, self.reporter, self.inputs)
        outcome = Outcome(
            ended.code, cfg.ignore_upload_errors, [j for j in self.uploader.jobs() if not j.stored]
        )
        account = log_account(self.capture)
        offloads = [o.to_dict() for o in offloaded]
        summary = self._summary(ended, outcome, account, found, not_uploaded, queued, offloads)
        if not self.aborted:
            data = json.dumps(summary.to_dict(), indent=2).encode() + b"\n"
            summary_job = self._store_last(SUMMARY, data, deadlines.summary(), deadlines.summary())
            if not summary_job.stored:
                outcome.missing.append(summary_job)
            manifest = Manifest(
                cfg.layout, cfg.store.bucket, account, ended.code, outcome.exit_code, not_uploaded, offloads
            )
            entries = [j.entry() for j in self.uploader.jobs()]
            self.manifest = manifest.to_dict(entries)
            manifest_job = self._store_last(
                MANIFEST, manifest.encode(entries), deadlines.end(), deadlines.end()
            )
            if not manifest_job.stored:
                outcome.missing.append(manifest_job)
        self.uploader.stop()
        self._report(summary, outcome, account, self.clock() - deadlines.started)
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
    ) -> Summary:
        cfg = self.cfg
        user, system = children_cpu()
        signal = os.WTERMSIG(ended.status) if os.WIFSIGNALED(ended.status) else None
        return Summary(
            pipelinerun=cfg.layout.pipelinerun,
            pipelinetask=cfg.layout.pipelinetask,
            step=cfg.layout.step,
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
            },
        )

    def _store_last(self, suffix: str, data: bytes, deadline: float, wait_until: float) -> Job:
        """Store ``<step>-<suffix>`` (summary, manifest) on its own thread within ``deadline``."""
        kind = suffix.split(".")[0]
        job = Job(
            self.cfg.layout.step_object_key(suffix), lambda: Payload.of(data), "application/json", kind=kind
        )
        self.uploader.start_last(job, deadline)
        self._wait([job], wait_until)
        return job

    def _wait(self, jobs: list[Job], deadline: float) -> None:
        """Wait for ``jobs`` until ``deadline``; an interrupt shortens it, a second one ends it."""
        sup = self.sup
        self.uploader.set_deadline(deadline)
        while not self.aborted and not all(j.done.is_set() for j in jobs):
            now = self.clock()
            if now >= deadline:
                return
            self.reporter.debug(
                f"final flush: waiting for {sum(not j.done.is_set() for j in jobs)} object(s)"
            )
            for sig in sup.wait_wakeup(deadline - now):
                if sig not in INTERRUPTS:
                    continue
                if sup.interrupts >= 2:
                    self.reporter.warn("interrupted again: giving up the final flush")
                    self.aborted = True
                    self.uploader.set_deadline(now)
                    return
                grace_end = (sup.terminated_at or now) + self.cfg.termination_grace - EXIT_MARGIN
                if grace_end < deadline:
                    deadline = grace_end
                    self.uploader.set_deadline(deadline)

    def _report(self, summary: Summary, outcome: Outcome, account: LogAccount, flush_seconds: float) -> None:
        if summary.results_skipped:
            names = ", ".join(map(repr, summary.results_skipped))
            self.reporter.warn(f"{len(summary.results_skipped)} result(s) skipped: {names}")
        stored = [j for j in self.uploader.jobs() if j.stored]
        how = f"signal {summary.signal}" if summary.signal else f"exit code {outcome.command_code}"
        ended = f"ended with {how}"
        if summary.timed_out:
            ended = f"was stopped by --timeout ({how})"
        # None: COMMAND ended before the first sample of its memory (every 0.5 s)
        peak = "not sampled" if summary.peak_rss_bytes is None else format_size(summary.peak_rss_bytes)
        self.reporter.info(
            f"{self.cfg.layout.step}: COMMAND {ended} after {summary.wall_seconds:.1f}s "
            f"(cpu {summary.cpu_user_seconds:.1f}s user, {summary.cpu_system_seconds:.1f}s sys, "
            f"peak {peak}); stored {len(stored)} object(s), "
            f"{format_size(sum(j.size for j in stored))}, in {flush_seconds:.2f}s after exit"
        )
        outcome.report(self.reporter, account)


def _iso(ts: float) -> str:
    return datetime.datetime.fromtimestamp(ts, datetime.timezone.utc).isoformat(timespec="milliseconds")
