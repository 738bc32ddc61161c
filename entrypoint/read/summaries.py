"""``summary``: per task and step, the exit code and its cause, duration, CPU, peak memory, bytes stored and
objects missing, from ``<step>-summary.json`` where the wrapper wrote one, and from the listing.
"""

from __future__ import annotations

import json
from typing import Any, Optional, TextIO

from ..formats.layout import RESULT_EXT, STEP_OBJECTS, chunk_dir, step_object_name
from ..store import ObjectInfo
from ..units import format_size
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


def step_row(view: TaskView, step: str, steps: list[str], objects: list[ObjectInfo]) -> dict[str, Any]:
    summary = view.summary(step)
    files = view.files()
    own = [
        f"{view.prefix}{chunk_dir(step)}",
        *(f"{view.prefix}{step_object_name(step, s)}" for s in STEP_OBJECTS),
    ]
    results = (summary or {}).get("results")
    if isinstance(results, list):
        own += [f"{view.prefix}{r}{RESULT_EXT}" for r in results if isinstance(r, str)]
    elif len(steps) == 1:  # a single step: the task's results are its results
        own += [f"{view.prefix}{r}{RESULT_EXT}" for r in view.results()]
    stored = sum(o.size for o in objects if any(o.key.startswith(k) for k in own))
    code = (summary or {}).get("exit_code")
    if summary is None:
        status: Any = "?" if f"{step}-log.tgz" in files else "running"
        if status == "running" and stale(view.reader, f"{view.prefix}{chunk_dir(step)}", objects):
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
        "exit_code": status,
        "cause": cause if isinstance(cause, str) else None,
        "wall_seconds": _number(summary, "wall_seconds", "duration_seconds"),
        "cpu_seconds": None if user is None and system is None else (user or 0.0) + (system or 0.0),
        "peak_rss_bytes": _number(summary, "peak_rss_bytes"),
        "bytes_stored": stored,
        "objects_missing": missing,
        "summary": summary is not None,
    }


def rows_for(reader: Reader, view: TaskView) -> list[dict[str, Any]]:
    steps = view.steps()
    objects = reader.listing(view.prefix, recursive=True)
    return [step_row(view, step, steps, objects) for step in steps]


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
            r["step"],
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


def summary(reader: Reader, run: str, task: Optional[str], out: TextIO, as_json: bool) -> None:
    tasks = [task] if task is not None else reader.tasks(run)
    rows: list[dict[str, Any]] = []
    for name in tasks:
        rows += rows_for(reader, reader.task(run, name))
    if as_json:
        out.write(json.dumps(rows, indent=2) + "\n")
    else:
        table(rows, out)
