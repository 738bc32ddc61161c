"""Tekton's entrypoint as the wrapper's parent: the step ``timeout:`` and the wrapper's own deadline.

In a Tekton step the wrapper is started by Tekton's entrypoint binary, PID 1 of the container:
``/tekton/bin/entrypoint -post_file ... -termination_path ... -timeout 20s -entrypoint
tekton-uploader -- ARGS``. When the step's ``timeout`` passes, the entrypoint SIGKILLs the process
it started (Go's ``exec.CommandContext``): no SIGTERM, no grace, so a wrapper that waited for it
would store neither the log archive nor the results nor the manifest. The entrypoint's timer
starts just before it starts that process, so that process's start time (``/proc/PID/stat``) is
the base of the deadline.

``detect`` reads ``/proc/<ppid>/cmdline`` (and up to two more ancestors: a ``script:`` step's
shell may run the wrapper as its child) and, when it is Tekton's entrypoint with a ``-timeout``,
returns a ``TektonDeadline``: when to SIGTERM COMMAND, its SIGKILL grace, and when the final flush
must end. Two small file reads per ancestor, before COMMAND starts (``cli.execute``); no import
beyond the standard library's ``os`` and ``time``. The wrapper keeps the plan: the supervisor
stops COMMAND at ``stop_at`` (``wrapper/supervisor.py``), the final flush ends by ``flush_end`` and
sets the summary's ``cause`` (``wrapper/final_flush.py``), and the run then waits for the
entrypoint's SIGKILL (``wrapper/run.py``).
"""

from __future__ import annotations

import os
import time

from ..records import Record

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Sequence
    from typing import Optional


CAUSE = "tekton-timeout"  # the summary's "cause" when the wrapper stopped COMMAND for it
ANCESTORS = 3  # parent, grandparent, great-grandparent

# Margins before the step timeout D, each (at most seconds, at most this fraction of D), so a
# short timeout keeps most of its time for COMMAND (together at most 30 % of D, 41 s for D >= 5m):
EXIT_MARGIN = (1.0, 0.05)  # the wrapper's exit (final flush done) -> D
FLUSH_MARGIN = (30.0, 0.15)  # COMMAND's exit -> end of the final flush
KILL_MARGIN = (10.0, 0.10)  # SIGTERM -> SIGKILL of COMMAND (also at most --kill-after)
WAIT_AFTER = 2.0  # after the flush, wait this long past D for Tekton's SIGKILL, then exit 124

# Flags only Tekton's entrypoint takes (pkg/pod/entrypoint.go always passes the first three).
_STEP_FLAGS = frozenset({"post_file", "termination_path", "step_metadata_dir"})
_BOOL_FLAGS = frozenset({"wait_file_content", "breakpoint_on_failure", "debug_before_step"})
_DURATION = r"([0-9]*(?:\.[0-9]*)?)(ns|us|\u00b5s|\u03bcs|ms|s|m|h)"  # compiled on first use
_UNITS = {
    "ns": 1e-9, "us": 1e-6, "\u00b5s": 1e-6, "\u03bcs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0
}  # fmt: skip


class TektonDeadline(Record):
    """The wrapper's plan for a Tekton step timeout; times on the ``clock`` given to ``detect``."""

    step_timeout: float  # D, seconds
    ends_at: float  # when the entrypoint SIGKILLs the wrapper
    stop_at: float  # SIGTERM COMMAND
    kill_after: float  # then SIGKILL it this much later
    flush_end: float  # the final flush ends by then (EXIT_MARGIN before ends_at)
    now: float  # when it was planned


def parse_go_duration(text: str) -> Optional[float]:
    """Seconds of a Go ``time.Duration`` string (``20s``, ``1m30s``, ``1.5h``, ``500ms``, ``0``)."""
    import re  # only under Tekton's entrypoint with a -timeout

    pattern = re.compile(_DURATION)
    sign, body = (text[0], text[1:]) if text[:1] in ("-", "+") else ("", text)
    if body == "0":
        return 0.0
    total, pos = 0.0, 0
    while pos < len(body):
        match = pattern.match(body, pos)
        if match is None or match.group(1) in ("", "."):
            return None
        total += float(match.group(1)) * _UNITS[match.group(2)]
        pos = match.end()
    if not body:
        return None
    return -total if sign == "-" else total


def entrypoint_timeout(argv: Sequence[str]) -> Optional[float]:
    """The ``-timeout`` of a Tekton entrypoint command line (0.0: none given); None: not one.

    Go's flag syntax: ``-flag``/``--flag``, value as ``=VALUE`` or the next argument; flags end
    at ``--`` (the entrypoint's COMMAND follows) or at the first non-flag argument.
    """
    flags: dict[str, str] = {}
    i = 1
    while i < len(argv):
        arg = argv[i]
        if arg == "--" or not arg.startswith("-") or arg == "-":
            break
        name, eq, value = arg.lstrip("-").partition("=")
        if not eq and name not in _BOOL_FLAGS:
            i += 1
            value = argv[i] if i < len(argv) else ""
        flags[name] = value
        i += 1
    if "entrypoint" not in flags or not _STEP_FLAGS & flags.keys():
        return None
    seconds = parse_go_duration(flags.get("timeout", "0"))
    return 0.0 if seconds is None or seconds < 0 else seconds


def margins(step_timeout: float, kill_after: float) -> tuple[float, float, float]:
    """(exit, flush, kill) margins in seconds for a step timeout of ``step_timeout``."""

    def scaled(margin: tuple[float, float]) -> float:
        return min(margin[0], margin[1] * step_timeout)

    return scaled(EXIT_MARGIN), scaled(FLUSH_MARGIN), min(scaled(KILL_MARGIN), kill_after)


def plan(step_timeout: float, elapsed: float, now: float, kill_after: float) -> TektonDeadline:
    """The deadline for a step timeout ``step_timeout`` whose timer started ``elapsed`` s ago."""
    exit_margin, flush_margin, kill = margins(step_timeout, kill_after)
    ends_at = now - elapsed + step_timeout
    flush_end = ends_at - exit_margin
    return TektonDeadline(step_timeout, ends_at, flush_end - flush_margin - kill, kill, flush_end, now)


def detect(
    kill_after: float, clock: Callable[[], float] = time.monotonic, proc: str = "/proc"
) -> Optional[TektonDeadline]:
    """The Tekton step timeout above this process, planned; None when there is none."""
    pid = os.getpid()
    for _ in range(ANCESTORS):
        stat = _stat(proc, pid)
        if stat is None:
            return None
        ppid, started = stat
        if ppid <= 0:
            return None
        step_timeout = entrypoint_timeout(_cmdline(proc, ppid))
        if step_timeout is not None:
            if not step_timeout:
                return None
            elapsed = time.clock_gettime(time.CLOCK_BOOTTIME) - started
            return plan(step_timeout, max(0.0, elapsed), clock(), kill_after)
        pid = ppid
    return None


def _stat(proc: str, pid: int) -> Optional[tuple[int, float]]:
    """(parent PID, start time in seconds since boot) of ``pid``."""
    try:
        with open(f"{proc}/{pid}/stat", "rb") as f:
            data = f.read()
        fields = data[data.rindex(b")") + 2 :].split()
        return int(fields[1]), int(fields[19]) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return None


def _cmdline(proc: str, pid: int) -> list[str]:
    try:
        with open(f"{proc}/{pid}/cmdline", "rb") as f:
            data = f.read()
    except OSError:
        return []
    return data.decode("utf-8", "replace").split("\0")[:-1]
