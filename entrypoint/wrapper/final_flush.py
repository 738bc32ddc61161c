"""Pieces of the final flush (after COMMAND exits): results, the manifest, the loss report.

Deadlines (see ``Run``): everything but the run summary and the manifest must be stored by the
flush deadline minus a reserve (a tenth of ``--flush-timeout``, at most 10 s). Then the summary
and, last, the manifest (built from what happened by then) go up, each on a thread of its own so
that workers stuck on a dead connection cannot keep them from being tried. The wrapper exits by
the flush deadline whatever the store does.
"""

from __future__ import annotations

from .. import exitcodes
from ..formats.manifest import LogAccount
from ..report import Reporter
from ..settings.step import Config
from ..spool.capture import LogCapture
from ..transfer.uploader import Job

MANIFEST_RESERVE_MAX = 10.0
MISSING_LINES = 10  # "not stored" lines on stderr; the manifest has them all


def manifest_reserve(flush_timeout: float) -> float:
    return min(MANIFEST_RESERVE_MAX, flush_timeout / 10)










def log_account(capture: LogCapture) -> LogAccount:
    return LogAccount(
        output_bytes=capture.output,
        captured_bytes=capture.total,
        gaps=list(capture.gaps),
        spool_limit=capture.budget.limit,
        spool_peak=capture.budget.peak,
    )


def exit_code(cfg: Config, code: int, missing: list[Job]) -> int:
    """The wrapper's exit code: COMMAND's, or the upload-failure code when COMMAND succeeded."""
    if missing and code == 0 and not cfg.ignore_upload_errors:
        return exitcodes.UPLOAD_FAILED
    return code


def report(reporter: Reporter, missing: list[Job], account: LogAccount, final: int, code: int) -> None:
    for job in missing[:MISSING_LINES]:
        reporter.error(f"not stored: {job.key} ({job.reason(short=True)})")
    if len(missing) > MISSING_LINES:
        reporter.error(f"... and {len(missing) - MISSING_LINES} more not stored (see the manifest)")
    if account.not_captured_bytes:
        reasons = "; ".join(sorted({g.reason for g in account.gaps}))
        reporter.warn(
            f"{account.not_captured_bytes} bytes of output were not captured in the log ({reasons}); "
            "the log has a marker line at each gap"
        )
    if not missing:
        return
    if final == exitcodes.UPLOAD_FAILED and code == 0:
        reporter.error(f"{len(missing)} object(s) missing; exiting with {exitcodes.UPLOAD_FAILED}")
    elif code == 0:
        reporter.warn(
            f"{len(missing)} object(s) missing; keeping COMMAND's exit code (--ignore-upload-errors)"
        )
