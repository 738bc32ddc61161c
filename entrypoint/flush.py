"""After COMMAND exits: results, the log archive, the wait for uploads, the manifest, the exit code.

Deadlines: everything but the manifest must be stored by ``--flush-timeout`` minus a reserve
(a tenth of it, at most 10 s); the manifest, built from what happened by then, gets the reserve
and goes up on a thread of its own, so a stuck connection cannot keep it from being tried. The
wrapper exits by the flush deadline whatever the store does.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

from . import exitcodes, results
from .capture import LogArchiver, LogCapture
from .config import Config
from .manifest import LogAccount, Manifest, Skipped
from .payload import Payload
from .report import Reporter
from .uploader import Job, Uploader

MANIFEST_RESERVE_MAX = 10.0
MISSING_LINES = 10  # "not stored" lines on stderr; the manifest has them all


@dataclass
class Outcome:
    """What the final flush achieved (for the run summary)."""

    exit_code: int
    missing: list[Job] = field(default_factory=list)
    manifest_stored: bool = False
    not_captured_bytes: int = 0
    manifest: dict[str, Any] = field(default_factory=dict)


def manifest_reserve(flush_timeout: float) -> float:
    return min(MANIFEST_RESERVE_MAX, flush_timeout / 10)


class FinalFlush:
    def __init__(
        self,
        cfg: Config,
        reporter: Reporter,
        uploader: Uploader,
        capture: LogCapture,
        archiver: LogArchiver,
        spool: Path,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.cfg = cfg
        self.reporter = reporter
        self.uploader = uploader
        self.capture = capture
        self.archiver = archiver
        self.spool = spool
        self.clock = clock

    def submit_results(self, code: int) -> list[Skipped]:
        """Queue each result file; the ones not uploaded, with the reason."""
        cfg = self.cfg
        if code != 0 and cfg.skip_results_on_failure:
            try:
                names = sorted(p.name for p in cfg.results_dir.iterdir())
            except OSError:
                names = []
            if names:
                self.reporter.info(
                    f"COMMAND failed: {len(names)} result(s) not uploaded (--skip-results-on-failure)"
                )
            return [Skipped(n, "COMMAND failed and --skip-results-on-failure is set") for n in names]
        found, skipped = results.scan(cfg.results_dir, self.reporter)
        for i, result in enumerate(found):
            self.uploader.submit(
                Job(
                    key=cfg.layout.result_key(result.name),
                    build=lambda r=result, i=i: results.archive_result(r, self.spool, i),  # type: ignore[misc]
                    content_type="application/gzip",
                    kind="result",
                )
            )
        if skipped:
            self.reporter.warn(f"{len(skipped)} result(s) skipped: {', '.join(map(repr, skipped))}")
        return [
            Skipped(n, "not a regular file in the results directory, or an unusable name") for n in skipped
        ]

    def run(self, code: int, finished: float, deadline: Optional[float] = None) -> Outcome:
        """``code``: COMMAND's; ``finished``: wall-clock time it exited. Returns the wrapper's code."""
        cfg = self.cfg
        end = deadline if deadline is not None else self.clock() + cfg.flush_timeout
        skipped = self.submit_results(code)
        self.capture.close()
        total = self.capture.total
        self.uploader.submit(
            Job(
                key=cfg.layout.log_archive_key(),
                build=lambda: self.archiver.finish(total, finished),
                content_type="application/gzip",
                kind="log",
            )
        )
        missing = self.uploader.close(end - manifest_reserve(cfg.flush_timeout))

        exit_code = code
        if missing and code == 0 and not cfg.ignore_upload_errors:
            exit_code = exitcodes.UPLOAD_FAILED
        account = LogAccount(
            output_bytes=self.capture.output,
            captured_bytes=self.capture.total,
            gaps=list(self.capture.gaps),
            spool_limit=self.capture.budget.limit,
            spool_peak=self.capture.budget.peak,
        )
        manifest = Manifest(cfg.layout, cfg.store.bucket, account, code, exit_code, skipped)
        jobs = self.uploader.jobs()
        data = manifest.encode(jobs)
        job = Job(
            key=cfg.layout.step_object_key("manifest.json"),
            build=lambda: Payload.of(data),
            content_type="application/json",
            kind="manifest",
        )
        self.uploader.run_last(job, end)
        if not job.stored:
            missing.append(job)
            if code == 0 and not cfg.ignore_upload_errors:
                exit_code = exitcodes.UPLOAD_FAILED

        self._report(missing, account, exit_code, code)
        return Outcome(exit_code, missing, job.stored, account.not_captured_bytes, manifest.to_dict(jobs))

    def _report(self, missing: list[Job], account: LogAccount, exit_code: int, code: int) -> None:
        for job in missing[:MISSING_LINES]:
            self.reporter.error(f"not stored: {job.key} ({job.reason()})")
        if len(missing) > MISSING_LINES:
            self.reporter.error(f"... and {len(missing) - MISSING_LINES} more not stored (see the manifest)")
        if account.not_captured_bytes:
            reasons = sorted({g.reason for g in account.gaps})
            self.reporter.warn(
                f"{account.not_captured_bytes} bytes of output were not captured in the log "
                f"({'; '.join(reasons)}); it has a marker line at each gap"
            )
        if not missing:
            return
        if exit_code == exitcodes.UPLOAD_FAILED:
            self.reporter.error(f"{len(missing)} object(s) missing; exiting with {exitcodes.UPLOAD_FAILED}")
        elif code == 0:
            self.reporter.warn(
                f"{len(missing)} object(s) missing; keeping COMMAND's exit code (--ignore-upload-errors)"
            )
