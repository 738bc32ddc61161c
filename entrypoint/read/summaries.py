"""``summary``: per task and step, the exit code and its cause, duration, CPU, peak memory, bytes stored and
objects missing, from ``<step>-summary.json`` where the wrapper wrote one, and from the listing.

A step retried by Tekton shows its latest attempt (``<step>-attempt-N-summary.json``), or the one
asked for; the row names it (``attempt``, and ``attempts``: every attempt stored).
"""

from __future__ import annotations

import json
from typing import Any, Optional, TextIO

from ..formats.layout import ATTEMPT, LOG_ARCHIVE, RESULT_EXT, STEP_OBJECTS, chunk_dir, step_object_name
from ..store import ObjectInfo
from ..units import format_size
from .errors import NOT_FOUND, ReadError
from .liveness import stale
from .locate import Reader, TaskView

COLUMNS = ("TASK", "STEP", "EXIT", "CAUSE", "DURATION", "CPU", "PEAK MEM", "STORED", "MISSING")


def _number(doc: Optional[dict[str, Any]], *names: str) -> Optional[float]:
    """The first of ``names`` that is a number, as recorded (an integer stays an integer)."""
    for name in names:
        value = (doc or {}).get(name)
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return value
    return None


def step_row(
    view: TaskView, step: str, steps: list[str], objects: list[ObjectInfo], attempt: Optional[int] = None
) -> dict[str, Any]:
    number = view.attempt(step, attempt)
    summary = view.summary(step, number)
    own = [
        f"{view.prefix}{chunk_dir(step, number)}",
        *(f"{view.prefix}{step_object_name(step, s, number)}" for s in STEP_OBJECTS),
    ]
    results = (summary or {}).get("results")
    if isinstance(results, list):
        own += [f"{view.prefix}{r}{RESULT_EXT}" for r in results if isinstance(r, str)]
    elif len(steps) == 1:  # a single step: the task's results are its results
        own += [f"{view.prefix}{r}{RESULT_EXT}" for r in view.results()]
    later = f"{view.prefix}{chunk_dir(step)}{ATTEMPT}"
    mine = [o for o in objects if any(o.key.startswith(k) for k in own)]
    if number == 1:  # the retries' chunk folders are under the first attempt's
        mine = [o for o in mine if not o.key.startswith(later)]
        if view.log_archive(step, 1) is None:  # <step>-log.tgz is a retry's now
            mine = [o for o in mine if o.key != f"{view.prefix}{step_object_name(step, LOG_ARCHIVE)}"]
    stored = sum(o.size for o in mine)
    code = (summary or {}).get("exit_code")
    if summary is None:
        status: Any = "?" if view.ended(step, number) else "running"
        if status == "running" and stale(view.reader, f"{view.prefix}{chunk_dir(step, number)}", objects):
            status = "stale"  # its last chunk is older than three of its promises: killed?
    else:
        status = code if isinstance(code, int) else "?"
    missing_value = (summary or {}).get("objects_missing")
    missing: Optional[int] = None
    if isinstance(missing_value, list):
        missing = len(missing_value)
    elif isinstance(missing_value, int):
        missing = missing_value
    elif view.manifests().sources:
        step_keys = [k for k in view.manifests().missing if any(k.startswith(o) for o in own)]
        missing = len(step_keys)
    cause = (summary or {}).get("cause")
    user = _number(summary, "cpu_user_seconds")
    system = _number(summary, "cpu_system_seconds")
    return {
        "pipelinerun": view.run,
        "pipelinetask": view.task,
        "step": step,
        "attempt": number,
        "attempts": view.attempts(step),
        "exit_code": status,
        "cause": cause if isinstance(cause, str) else None,
        "wall_seconds": _number(summary, "wall_seconds", "duration_seconds"),
        "cpu_seconds": None if user is None and system is None else (user or 0.0) + (system or 0.0),
        "peak_rss_bytes": _number(summary, "peak_rss_bytes"),
        "bytes_stored": stored,
        "objects_missing": missing,
        "summary": summary is not None,
    }


def rows_for(reader: Reader, view: TaskView, attempt: Optional[int] = None) -> list[dict[str, Any]]:
    steps = view.steps()
    objects = reader.listing(view.prefix, recursive=True)
    shown = [s for s in steps if attempt is None or attempt in view.attempts(s)]
    return [step_row(view, step, steps, objects, attempt) for step in shown]


def duration(seconds: Optional[float]) -> str:
    if seconds is None:
        return "-"
    if seconds < 60:
        return f"{seconds:.1f}s"
    minutes, rest = divmod(round(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m{rest:02d}s" if hours else f"{minutes}m{rest:02d}s"


def table(rows: list[dict[str, Any]], out: TextIO) -> None:
    cells = [COLUMNS] + [
        (
            r["pipelinetask"],
            r["step"] if r["attempts"][-1:] in ([], [1]) else f"{r['step']} (attempt {r['attempt']})",
            str(r["exit_code"]),
            r["cause"] or "-",
            duration(r["wall_seconds"]),
            duration(r["cpu_seconds"]),
            "-" if r["peak_rss_bytes"] is None else format_size(r["peak_rss_bytes"]),
            format_size(r["bytes_stored"]),
            "-" if r["objects_missing"] is None else str(r["objects_missing"]),
        )
        for r in rows
    ]
    widths = [max(len(row[i]) for row in cells) for i in range(len(COLUMNS))]
    for row in cells:
        out.write("  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip() + "\n")


def summary(
    reader: Reader, run: str, task: Optional[str], out: TextIO, as_json: bool, attempt: Optional[int] = None
) -> None:
    tasks = [task] if task is not None else reader.tasks(run)
    rows: list[dict[str, Any]] = []
    for name in tasks:
        rows += rows_for(reader, reader.task(run, name), attempt)
    if attempt is not None and not rows:
        raise ReadError(f"no step of {run}{'/' + task if task else ''} has an attempt {attempt}", NOT_FOUND)
    if as_json:
        out.write(json.dumps(rows, indent=2) + "\n")
    else:
        table(rows, out)
