"""``ls``: pipeline runs; a run's tasks; a task's objects with size, time and sha256, and the
attempts of each step Tekton retried."""

from __future__ import annotations

import json
from datetime import datetime, timezone
from typing import Any, Optional, TextIO

from .locate import Reader, Target


def iso(mtime: float) -> str:
    return datetime.fromtimestamp(mtime, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def ls(reader: Reader, target: Optional[Target], out: TextIO, as_json: bool) -> None:
    if target is None:
        names = reader.runs()
        _names(out, as_json, "pipelinerun", names)
    elif target.task is None:
        names = reader.tasks(target.run)
        _names(out, as_json, "pipelinetask", names)
    else:
        _objects(reader, target.run, target.task, out, as_json)


def _names(out: TextIO, as_json: bool, kind: str, names: list[str]) -> None:
    if as_json:
        out.write(json.dumps([{kind: n} for n in names], indent=2) + "\n")
    else:
        out.writelines(f"{n}\n" for n in names)


def _objects(reader: Reader, run: str, task: str, out: TextIO, as_json: bool) -> None:
    view = reader.task(run, task)
    manifests = view.manifests()
    rows: list[dict[str, Any]] = []
    for info in reader.listing(view.prefix, recursive=True):
        expected = manifests.expect(info.key)
        rows.append(
            {
                "key": info.key,
                "name": info.key[len(view.prefix) :],
                "size": info.size,
                "modified": iso(info.mtime),
                "sha256": expected.sha256 if expected is not None else None,
            }
        )
    missing = [{"key": k, "reason": r} for k, r in sorted(manifests.missing.items())]
    attempts = {step: view.attempts(step) for step in view.steps()}
    retried = {step: found for step, found in attempts.items() if found[-1:] not in ([], [1])}
    if as_json:
        doc: dict[str, Any] = {"pipelinerun": run, "pipelinetask": task, "prefix": view.prefix}
        doc["objects"] = rows
        if manifests.sources:
            doc["missing"] = missing
        if retried:
            doc["attempts"] = retried
        out.write(json.dumps(doc, indent=2) + "\n")
        return
    width = max([len("SIZE"), *(len(str(r["size"])) for r in rows)])
    sha_width = 64 if any(r["sha256"] for r in rows) else len("SHA256")
    out.write(f"{'SIZE':>{width}}  {'MODIFIED':<20}  {'SHA256':<{sha_width}}  NAME\n")
    for r in rows:
        out.write(
            f"{r['size']:>{width}}  {r['modified']:<20}  {r['sha256'] or '-':<{sha_width}}  {r['name']}\n"
        )
    for m in missing:
        name = m["key"][len(view.prefix) :] if m["key"].startswith(view.prefix) else m["key"]
        out.write(
            f"{'-':>{width}}  {'MISSING':<20}  {'-':<{sha_width}}  {name}  ({m['reason'] or 'not stored'})\n"
        )
    for step, found in retried.items():
        out.write(
            f"step {step}: attempts {', '.join(map(str, found))} (Tekton retries; the latest is shown "
            f"unless logs or summary get --attempt N)\n"
        )
