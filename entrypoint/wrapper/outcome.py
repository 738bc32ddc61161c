"""The outcome of a run: the wrapper's exit code (computed here only) and the loss report.

COMMAND's code passes through; the upload-failure code (74) replaces a 0 when objects are
missing and ``--ignore-upload-errors`` is not set. Every document the final flush stores (the
summary, then the manifest) records the exit code as it stands when that document is written,
assuming the document itself is stored; a document that is not stored records nothing.

The cause (``cause_of``) says why COMMAND ended, one of ``CAUSES``, with the details that prove
it; the summary records it and the end-of-step line says it in words.
"""

from __future__ import annotations

import os

from .. import exitcodes
from ..formats.manifest import LogAccount
from ..report import Reporter
from ..spool.capture import LogCapture
from ..transfer.uploader import Job
from ..units import format_size
from .cgroup import OOM_COUNTERS, Memory

TYPE_CHECKING = False
if TYPE_CHECKING:
    import signal as _signal
    from typing import Any, Optional
else:
    import _signal  # the C module under signal, whose Signals enum would load enum after the spawn

MISSING_LINES = 10  # "not stored" lines on stderr; the manifest has them all

# Why COMMAND ended (the summary's ``cause``; documented, stable):
# exit            COMMAND exited by itself
# signal          COMMAND was killed by a signal from outside (nothing below explains it)
# oom-kill        the kernel's OOM killer: COMMAND died of SIGKILL while the cgroup counted an OOM kill
# timeout         our --timeout stopped it
# tekton-timeout  stopped ahead of the Tekton step timeout (set by the caller; not detected here)
# terminated      the wrapper got SIGTERM (pod deletion, cancellation, eviction)
CAUSES = ("exit", "signal", "oom-kill", "timeout", "tekton-timeout", "terminated")


class Cause:
    """(Plain classes here: ``dataclasses`` costs milliseconds on the wrapper's run path.)"""

    __slots__ = ("detail", "name", "text")

    def __init__(self, name: str, text: str, detail: Optional[dict[str, Any]] = None) -> None:
        self.name = name  # one of CAUSES
        self.text = text  # in words, for the end-of-step line
        self.detail: dict[str, Any] = {} if detail is None else detail  # what proves it

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Cause):
            return NotImplemented
        return (self.name, self.text, self.detail) == (other.name, other.text, other.detail)

    __hash__ = None  # type: ignore[assignment]  # (its detail is a dict)

    def __repr__(self) -> str:
        return f"Cause(name={self.name!r}, text={self.text!r}, detail={self.detail!r})"


def cause_of(
    status: int,
    timed_out: bool,
    terminated: bool,
    before: Optional[Memory] = None,
    after: Optional[Memory] = None,
    peak: Optional[int] = None,
    tekton_timeout: bool = False,
) -> Cause:
    """Why COMMAND ended: from its wait status, what the wrapper did and saw, and the memory
    cgroup read before and after (None where there is no cgroup to read). ``peak`` is the
    highest usage sampled, used when the cgroup keeps no peak of its own."""
    sig = os.WTERMSIG(status) if os.WIFSIGNALED(status) else None
    how = f"signal {sig}" if sig else f"exit code {os.waitstatus_to_exitcode(status)}"
    detail: dict[str, Any] = {"signal": sig} if sig else {"exit_code": os.waitstatus_to_exitcode(status)}
    moved = after.moved(before) if after is not None else {}
    if after is not None:
        top = max((p for p in (after.peak, peak) if p is not None), default=None)
        detail.update(cgroup=f"v{after.version}", memory_limit_bytes=after.limit, memory_peak_bytes=top)
        if moved:
            detail["counters_moved"] = moved
    if tekton_timeout:
        return Cause("tekton-timeout", f"was stopped ahead of the Tekton step timeout ({how})", detail)
    if timed_out:
        return Cause("timeout", f"was stopped by --timeout ({how})", detail)
    oom = [c for c in OOM_COUNTERS if c in moved]
    if not oom and after is not None and "oom_kill" not in after.counters and "failcnt" in moved:
        oom = ["failcnt"]  # an old v1 kernel without the oom_kill count
    if sig == _signal.SIGKILL and oom and after is not None:
        detail["counter"] = f"{'memory.events' if after.version == 2 else 'memory.oom_control'} {oom[0]}"
        if oom[0] == "failcnt":
            detail["counter"] = "memory.failcnt"
        limit = after.limit
        at = f" at the {format_size(limit)} memory limit" if limit else ""
        top = detail.get("memory_peak_bytes")
        seen = f", peak {format_size(top)}" if top else ""
        return Cause("oom-kill", f"was killed by the kernel's OOM killer{at}{seen}", detail)
    if terminated:
        return Cause("terminated", f"was stopped after the wrapper got SIGTERM ({how})", detail)
    if sig:
        return Cause("signal", f"was killed by {how} ({_signame(sig)})", detail)
    return Cause("exit", f"ended with {how}", detail)


def _signame(sig: int) -> str:
    try:
        return signal_name(sig)
    except ValueError:
        return f"SIG{sig}"


def signal_name(sig: int) -> str:
    """``signal.Signals(sig).name`` without the enum: of the names for ``sig`` (SIGABRT and
    SIGIOT, say), the first in sort order, as the enum's canonical one. ValueError if none."""
    names = [n for n in dir(_signal) if n.startswith("SIG") and not n.startswith("SIG_")]
    names = [n for n in names if getattr(_signal, n) == sig]
    if not names:
        raise ValueError(f"{sig} is not a valid signal")
    return min(names)


class Outcome:
    __slots__ = ("command_code", "ignore_upload_errors", "missing")

    def __init__(self, command_code: int, ignore_upload_errors: bool = False,
                 missing: Optional[list[Job]] = None) -> None:
        self.command_code = command_code  # COMMAND's exit code (128+N for signal N, 124 for --timeout)
        self.ignore_upload_errors = ignore_upload_errors
        self.missing: list[Job] = [] if missing is None else missing

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
