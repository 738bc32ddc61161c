"""One run of the wrapper, wired in the direction the data flows:

config -> supervisor (spawn, signals, reaping) -> capture (pump, rolling buffer, spool)
-> uploader (queue, retries) -> store (S3 or a local directory). Results feed the same uploader.
After COMMAND: results and the log archive, then the run summary, then the manifest (last).
"""

from __future__ import annotations

import datetime
import json
import os
import shutil
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Optional

from . import artifacts, exitcodes, flush
from .capture import Chunk, LogArchiver, LogCapture, SpoolBudget
from .config import Config
from .manifest import Manifest
from .payload import Payload
from .report import Reporter
from .store import Store, open_store
from .summary import Summary, TreeSampler, children_cpu
from .supervisor import INTERRUPTS, Supervisor, policy_of, start
from .units import format_size
from .uploader import Job, Uploader

StoreFactory = Callable[[], Store]
EXIT_MARGIN = 2.0  # seconds kept back from the termination grace for exiting cleanly
PREFLIGHT_TIMEOUT = 30.0  # --preflight strict: how long transient errors are retried


def _iso(ts: float) -> str:
    return datetime.datetime.fromtimestamp(ts, datetime.timezone.utc).isoformat(timespec="milliseconds")


class Run:
    def __init__(
        self,
        cfg: Config,
        reporter: Reporter,
        supervisor: Supervisor | None = None,
        store_factory: StoreFactory | None = None,
        clock: Callable[[], float] = time.monotonic,
        inputs: Sequence[dict[str, Any]] = (),
    ) -> None:
        self.cfg = cfg
        self.inputs = list(inputs)  # Tekton artifact inputs: the results --fetch-result extracted
        self.reporter = reporter
        self.clock = clock
        self.store_factory = store_factory or (lambda: open_store(cfg.store, warn=reporter.warn))
        self.spool = self._make_spool()
        (self.spool / "chunks").mkdir()
        self.budget = SpoolBudget(cfg.spool_limit)
        self.capture = LogCapture(
            self.spool / "chunks",
            cfg.log_chunk_size,
            cfg.log_flush_interval,
            self._sealed,
            clock,
            budget=self.budget,
            backlog=lambda: self.uploader.backlog(),
            on_pause=reporter.warn,
        )
        # COMMAND may already be running (cli.py spawns it before importing this module)
        self.supervisor = supervisor or Supervisor(cfg.command, reporter, clock, policy_of(cfg))
        self.supervisor.sink = self.capture
        self.uploader = Uploader(self.store_factory, reporter, clock=clock, notify=self.supervisor.wake)
        self.archiver = LogArchiver(self.spool, f"{cfg.layout.step}.log", self.budget)
        self.aborted = False
        self.manifest: dict[str, Any] = {}

    def _make_spool(self) -> Path:
        parent = self.cfg.spool_dir
        if parent is not None:
            parent.mkdir(parents=True, exist_ok=True)
        return Path(tempfile.mkdtemp(prefix="tekton-uploader-", dir=parent))

    def _sealed(self, chunk: Chunk) -> None:
        self.archiver.add(chunk)
        self.uploader.submit(
            Job(
                key=self.cfg.layout.chunk_key(chunk.seq),
                build=lambda: Payload((chunk,), chunk.size),  # raw file, or its member once archived
                content_type="text/plain; charset=utf-8",
                on_done=lambda _job: chunk.done(uploaded=True),
                kind="log-chunk",
            ),
            ordered=True,
        )

    def execute(self) -> int:
        try:
            return self._execute()
        finally:
            shutil.rmtree(self.spool, ignore_errors=True)

    def _preflight_strict(self) -> bool:
        """--preflight strict: check the bucket before starting COMMAND; False to stop."""
        error = self.uploader.preflight_strict(self.cfg.layout.task_prefix, PREFLIGHT_TIMEOUT)
        if error is None:
            return True
        self.reporter.error(f"preflight: {error}; COMMAND not started (--preflight strict)")
        return False

    def _execute(self) -> int:
        cfg = self.cfg
        sup = self.supervisor
        if not sup.pid:
            if cfg.preflight == "strict" and not self._preflight_strict():
                return exitcodes.USAGE
            failed = start(sup, self.reporter)
            if failed is not None:
                return failed
        started_wall = time.time()
        # after the spawn: the S3 client is imported (and the bucket checked) in the background
        self.uploader.start(cfg.preflight, cfg.layout.task_prefix)
        sampler = TreeSampler(sup.pid).start()
        if cfg.embedded_default:
            self.reporter.info(f"no --endpoint set: storing objects in {cfg.store.describe()}")

        code = sup.run()

        finished_wall = time.time()
        peak = sampler.stop()
        flush_started = self.clock()
        found, not_uploaded, queued = flush.submit_results(
            cfg, self.uploader, self.spool, self.reporter, code, self.budget
        )
        self.capture.close()
        total = self.capture.total
        self.uploader.submit(
            Job(
                key=cfg.layout.log_archive_key(),
                build=lambda: self.archiver.finish(
                    total, finished_wall if cfg.archive_mtime is None else cfg.archive_mtime
                ),
                content_type="application/gzip",
                kind="log",
            )
        )
        reserve = flush.manifest_reserve(cfg.flush_timeout)
        self._wait(self.uploader.jobs(), self._flush_deadline(flush_started) - reserve)
        self.uploader.abandon()  # what is not stored now is reported missing: no more attempts
        offloaded = self._tekton_outputs(queued)
        missing = [j for j in self.uploader.jobs() if not j.stored]
        final = flush.exit_code(cfg, code, missing)
        account = flush.log_account(self.capture)

        user, system = children_cpu()
        status = sup.status if sup.status is not None else 0
        summary = Summary(
            pipelinerun=cfg.layout.pipelinerun,
            pipelinetask=cfg.layout.pipelinetask,
            step=cfg.layout.step,
            exit_code=final,
            command_exit_code=None if signal_of(status) else os.waitstatus_to_exitcode(status),
            signal=signal_of(status),
            timed_out=sup.timed_out,
            started_at=_iso(started_wall),
            finished_at=_iso(finished_wall),
            wall_seconds=round(finished_wall - started_wall, 3),
            cpu_user_seconds=round(user, 3),
            cpu_system_seconds=round(system, 3),
            peak_rss_bytes=peak or None,
            log_bytes=total,
            results=found,
            results_skipped=[s.name for s in not_uploaded],
            signals_received=list(sup.signals_received),
            objects_missing=[j.key for j in missing],
            extra={
                "log_output_bytes": account.output_bytes,
                "log_not_captured_bytes": account.not_captured_bytes,
                "upload_requests": self.uploader.requests,
                "upload_retries": sum(j.retries for j in self.uploader.jobs()),
                "step_results": [q.result.name for q in queued if q.step],
                "results_offloaded": [o.to_dict() for o in offloaded],
            },
        )
        if not self.aborted:
            deadline = self._flush_deadline(flush_started)
            data = json.dumps(summary.to_dict(), indent=2).encode() + b"\n"
            summary_job = self._store_last(
                "summary.json", data, deadline - reserve / 2, deadline - reserve / 2
            )
            if not summary_job.stored:
                missing.append(summary_job)
            offloads = [o.to_dict() for o in offloaded]
            manifest = Manifest(cfg.layout, cfg.store.bucket, account, code, final, not_uploaded, offloads)
            jobs = self.uploader.jobs()
            self.manifest = manifest.to_dict(jobs)
            manifest_job = self._store_last(
                "manifest.json", manifest.encode(jobs), deadline, self._flush_deadline(flush_started)
            )
            if not manifest_job.stored:
                missing.append(manifest_job)
        self.uploader.stop()
        sup.finish()  # the leftovers' grace ran during the flush
        return self._finish(summary, code, missing, account, self.clock() - flush_started)

    def _store_last(self, suffix: str, data: bytes, deadline: float, wait_until: float) -> Job:
        """Store ``<step>-<suffix>`` (summary, manifest) on its own thread within ``deadline``."""
        kind = suffix.split(".")[0]
        job = Job(
            self.cfg.layout.step_object_key(suffix), lambda: Payload.of(data), "application/json", kind=kind
        )
        self.uploader.start_last(job, deadline)
        self._wait([job], wait_until)
        return job

    def _tekton_outputs(self, queued: list[flush.Queued]) -> list[artifacts.Offloaded]:
        """Offload oversized results, write the provenance file, warn about Tekton's size limit."""
        cfg = self.cfg
        step = cfg.layout.step
        offloaded: list[artifacts.Offloaded] = []
        if cfg.offload_results_over is not None:
            offloaded = artifacts.offload(
                queued, cfg.store.bucket, cfg.offload_results_over, step, self.reporter
            )
        dirs = [(cfg.results_dir, "")]
        if cfg.step_results_dir is not None:
            dirs.append((cfg.step_results_dir, f"{step}/"))
        files = artifacts.sizes(dirs)
        if cfg.artifacts_file is not None:
            written = artifacts.write_provenance(
                cfg.artifacts_file,
                artifacts.outputs(queued, cfg.store.bucket, step),
                self.reporter,
                inputs=self.inputs,
            )
            if written:
                files.append((cfg.artifacts_file.name, written))
        artifacts.warn_if_too_big(files, cfg.offload_results_over is not None, self.reporter)
        return offloaded

    def _flush_deadline(self, started: float) -> float:
        deadline = started + self.cfg.flush_timeout
        term = self.supervisor.terminated_at
        if term is not None:  # the kubelet's SIGKILL follows the grace period
            deadline = min(deadline, term + self.cfg.termination_grace - EXIT_MARGIN)
        return deadline

    def _wait(self, jobs: list[Job], deadline: float) -> None:
        """Wait for ``jobs`` until ``deadline``; an interrupt shortens it, a second one ends it."""
        sup = self.supervisor
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

    def _finish(
        self, summary: Summary, code: int, missing: list[Job], account: Any, flush_seconds: float
    ) -> int:
        final = flush.exit_code(self.cfg, code, missing)
        if summary.results_skipped:
            names = ", ".join(map(repr, summary.results_skipped))
            self.reporter.warn(f"{len(summary.results_skipped)} result(s) skipped: {names}")
        stored = [j for j in self.uploader.jobs() if j.stored]
        how = f"signal {summary.signal}" if summary.signal else f"exit code {code}"
        if summary.timed_out:
            how = "timed out"
        # None: COMMAND ended before the first sample of its memory (every 0.5 s)
        peak = "not sampled" if summary.peak_rss_bytes is None else format_size(summary.peak_rss_bytes)
        self.reporter.info(
            f"{self.cfg.layout.step}: COMMAND ended with {how} after {summary.wall_seconds:.1f}s "
            f"(cpu {summary.cpu_user_seconds:.1f}s user, {summary.cpu_system_seconds:.1f}s sys, "
            f"peak {peak}); stored {len(stored)} object(s), "
            f"{format_size(sum(j.size for j in stored))}, in {flush_seconds:.2f}s after exit"
        )
        flush.report(self.reporter, missing, account, final, code)
        return final


def signal_of(status: int) -> Optional[int]:
    return os.WTERMSIG(status) if os.WIFSIGNALED(status) else None
