"""``--chains-outputs``: Tekton Chains' type-hinted results for the stored objects.

Chains finds a TaskRun's artifacts in object results named ``*ARTIFACT_OUTPUTS`` (and
``*ARTIFACT_INPUTS``) with a non-empty ``uri`` and a ``digest`` ``<alg>:<hex>``. Once the results
are stored, each stored result ``R`` gets the result file ``R-ARTIFACT_OUTPUTS`` next to it:
``{"uri":"s3://B/K","digest":"sha256:HEX","isBuildArtifact":"true"}`` (HEX: of the stored
``.tgz``, the digest of the manifest and of ``--artifacts-file``), and each ``--fetch-result``
the file ``R-ARTIFACT_INPUTS`` in the results directory (the object read, its sha256). Tekton
reads only the results a Task declares, so the Task declares the ones it wants (object results
with ``uri`` and ``digest`` properties); the others are files nobody reads. They are never
archived as results (``files.is_chains_hint``) and count toward Tekton's 4096-byte limit.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ..report import Reporter
from .files import CHAINS_INPUTS, CHAINS_OUTPUTS, replace_file
from .queue import Queued


def hint(uri_: str, sha256: str, build_artifact: bool) -> bytes:
    """One type-hinted object result, compact (it counts against the termination message)."""
    value = {"uri": uri_, "digest": f"sha256:{sha256}"}
    if build_artifact:
        value["isBuildArtifact"] = "true"
    return json.dumps(value, separators=(",", ":")).encode()


def write_chains_results(
    queued: Sequence[Queued],
    bucket: str,
    results_dir: Path,
    inputs: Sequence[dict[str, Any]],
    reporter: Reporter,
) -> list[str]:
    """Write the type-hinted results; the names written."""
    files: dict[Path, bytes] = {}
    for q in queued:
        if q.job.stored and q.job.result is not None:
            path = Path(q.directory) / f"{q.result.name}{CHAINS_OUTPUTS}"
            files[path] = hint(f"s3://{bucket}/{q.job.key}", q.job.result.sha256, build_artifact=True)
    for entry in inputs:
        values = entry.get("values") or []
        if not values:
            continue
        path = results_dir / f"{entry['name']}{CHAINS_INPUTS}"
        if len(values) > 1:
            reporter.warn(
                f"--chains-outputs: {len(values)} fetched results are named {entry['name']!r}; "
                f"{path.name} names the first ({values[0]['uri']})"
            )
        files.setdefault(path, hint(values[0]["uri"], values[0]["digest"]["sha256"], build_artifact=False))
    written: list[str] = []
    for path, data in files.items():
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            replace_file(path, data)
        except OSError as exc:
            reporter.warn(f"--chains-outputs: cannot write {path} ({exc.strerror or exc})")
            continue
        written.append(path.name)
    if written:
        reporter.info(f"wrote {len(written)} Tekton Chains result(s): {', '.join(written)}")
    return written
