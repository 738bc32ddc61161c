"""The outcome of a run: the wrapper's exit code (computed here only) and the loss report.

COMMAND's code passes through; the upload-failure code (74) replaces a 0 when objects are
missing and ``--ignore-upload-errors`` is not set. Every document the final flush stores (the
summary, then the manifest) records the exit code as it stands when that document is written,
assuming the document itself is stored; a document that is not stored records nothing.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .. import exitcodes
from ..formats.manifest import LogAccount
from ..report import Reporter
from ..spool.capture import LogCapture
from ..transfer.uploader import Job

MISSING_LINES = 10  # "not stored" lines on stderr; the manifest has them all


@dataclass
class Outcome:
    command_code: int  # COMMAND's exit code (128+N for signal N, 124 for --timeout)
    ignore_upload_errors: bool = False
    missing: list[Job] = field(default_factory=list)

    @property
    def exit_code(self) -> int:
        """The wrapper's exit code: COMMAND's, or 74 when COMMAND succeeded and objects are missing."""
        if self.missing and self.command_code == 0 and not self.ignore_upload_errors:
            return exitcodes.UPLOAD_FAILED
        return self.command_code

    def report(self, reporter: Reporter, account: LogAccount) -> None:
        """The lines on stderr about what was not stored or not captured."""
        missing = self.missing
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
        if not missing or self.command_code != 0:
            return
        if self.exit_code == exitcodes.UPLOAD_FAILED:
            reporter.error(f"{len(missing)} object(s) missing; exiting with {exitcodes.UPLOAD_FAILED}")
        else:
            reporter.warn(
                f"{len(missing)} object(s) missing; keeping COMMAND's exit code (--ignore-upload-errors)"
            )


def log_account(capture: LogCapture) -> LogAccount:
    """What the capture kept of COMMAND's output, for the manifest and the report."""
    return LogAccount(
        output_bytes=capture.output,
        captured_bytes=capture.total,
        gaps=list(capture.gaps),
        spool_limit=capture.budget.limit,
        spool_peak=capture.budget.peak,
    )
