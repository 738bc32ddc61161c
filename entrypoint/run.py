"""One run of the wrapper, wired in the direction the data flows:

config -> supervisor (spawn, signals, reaping) -> capture (pump, rolling buffer, spool)
-> uploader (queue, retries) -> store (S3 or a local directory). Results feed the same uploader.
"""

from __future__ import annotations

import datetime
import json
import os
import shutil
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Optional

from . import exitcodes, results
from .capture import Chunk, LogArchiver, LogCapture
from .config import Config
from .payload import Payload
from .report import Reporter
from .store import Store, open_store
from .summary import Summary, TreeSampler, children_cpu
from .supervisor import INTERRUPTS, Policy, SpawnError, Supervisor
from .units import format_size
from .uploader import Job, Uploader

StoreFactory = Callable[[], Store]
EXIT_MARGIN = 2.0  # seconds kept back from the termination grace for exiting cleanly


def _iso(ts: float) -> str:
    return datetime.datetime.fromtimestamp(ts, datetime.timezone.utc).isoformat(timespec="milliseconds")


class Run:
    def __init__(
        self,
        cfg: Config,
        reporter: Reporter,
        store_factory: StoreFactory | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.cfg = cfg
        self.reporter = reporter
        self.clock = clock
        self.store_factory = store_factory or (lambda: open_store(cfg.store))
        self.spool = self._make_spool()
        (self.spool / "chunks").mkdir()
        policy = Policy(
            timeout=cfg.timeout, kill_after=cfg.kill_after, signal_child_only=cfg.signal_child_only
        )
        self.capture = LogCapture(
            self.spool / "chunks", cfg.log_chunk_size, cfg.log_flush_interval, self._sealed, clock
        )
        self.supervisor = Supervisor(cfg.command, self.capture, reporter, clock, policy)
        self.uploader = Uploader(self.store_factory, reporter, clock=clock, notify=self.supervisor.wake)
        self.archiver = LogArchiver(self.spool, f"{cfg.layout.step}.log")
        self.aborted = False

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
                build=lambda: Payload((chunk.path,), chunk.size),
                content_type="text/plain; charset=utf-8",
                on_done=lambda _job: chunk.release(),
            ),
            ordered=True,
        )

    def execute(self) -> int:
        try:
            return self._execute()
        finally:
            shutil.rmtree(self.spool, ignore_errors=True)

    def _execute(self) -> int:
        cfg = self.cfg
        sup = self.supervisor
        sup.install_signals()
        try:
            sup.spawn()
        except SpawnError as exc:
            sup.restore_signals()
            self.reporter.error(str(exc))
            return exc.code
        started_wall = time.time()
        self.uploader.start()  # after the spawn: the S3 client is imported in the background
        sampler = TreeSampler(sup.pid).start()
        if cfg.embedded_default:
            self.reporter.info(f"no --endpoint set: storing objects in {cfg.store.describe()}")

        code = sup.run()

        finished_wall = time.time()
        peak = sampler.stop()
        flush_started = self.clock()
        found, skipped = results.scan(cfg.results_dir, self.reporter)
        jobs = [
            self.uploader.submit(
                Job(
                    key=cfg.layout.result_key(result.name),
                    build=lambda r=result, i=i: results.archive_result(  # type: ignore[misc]
                        r, self.spool, i, cfg.archive_mtime
                    ),
                    content_type="application/gzip",
                )
            )
            for i, result in enumerate(found)
        ]
        self.capture.close()
        total = self.capture.total
        jobs.append(
            self.uploader.submit(
                Job(
                    key=cfg.layout.log_archive_key(),
                    build=lambda: self.archiver.finish(
                        total, finished_wall if cfg.archive_mtime is None else cfg.archive_mtime
                    ),
                    content_type="application/gzip",
                )
            )
        )
        deadline = self._flush_deadline(flush_started)
        self._wait(self.uploader.jobs(), deadline)
        missing = [j for j in self.uploader.jobs() if not j.stored]

        user, system = children_cpu()
        status = sup.status if sup.status is not None else 0
        summary = Summary(
            pipelinerun=cfg.layout.pipelinerun,
            pipelinetask=cfg.layout.pipelinetask,
            step=cfg.layout.step,
            exit_code=code,
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
            results=[r.name for r in found],
            results_skipped=skipped,
            signals_received=list(sup.signals_received),
            objects_missing=[j.key for j in missing],
        )
        if missing and code == 0:
            summary.exit_code = exitcodes.UPLOAD_FAILED
        if not self.aborted:
            data = json.dumps(summary.to_dict(), indent=2).encode() + b"\n"
            summary_job = self.uploader.submit(
                Job(cfg.layout.step_object_key("summary.json"), lambda: Payload.of(data), "application/json")
            )
            self._wait([summary_job], deadline)
            if not summary_job.stored:
                missing.append(summary_job)
        self.uploader.stop()
        sup.restore_signals()
        return self._finish(summary, missing, self.clock() - flush_started)

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

    def _finish(self, summary: Summary, missing: list[Job], flush_seconds: float) -> int:
        for job in missing:
            self.reporter.error(f"not stored: {job.key} ({job.error or 'still uploading at the deadline'})")
        if summary.results_skipped:
            names = ", ".join(map(repr, summary.results_skipped))
            self.reporter.warn(f"{len(summary.results_skipped)} result(s) skipped: {names}")
        stored = [j for j in self.uploader.jobs() if j.stored]
        how = f"signal {summary.signal}" if summary.signal else f"exit code {summary.exit_code}"
        if summary.timed_out:
            how = "timed out"
        self.reporter.info(
            f"{self.cfg.layout.step}: COMMAND ended with {how} after {summary.wall_seconds:.1f}s "
            f"(cpu {summary.cpu_user_seconds:.1f}s user, {summary.cpu_system_seconds:.1f}s sys, "
            f"peak {format_size(summary.peak_rss_bytes or 0)}); stored {len(stored)} object(s), "
            f"{format_size(sum(j.size for j in stored))}, in {flush_seconds:.2f}s after exit"
        )
        if missing and summary.exit_code in (0, exitcodes.UPLOAD_FAILED):
            self.reporter.error(f"{len(missing)} object(s) missing; exiting with {exitcodes.UPLOAD_FAILED}")
            return exitcodes.UPLOAD_FAILED
        return summary.exit_code


def signal_of(status: int) -> Optional[int]:
    return os.WTERMSIG(status) if os.WIFSIGNALED(status) else None
