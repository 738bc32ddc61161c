"""The termination message file (Kubernetes ``terminationMessagePath``; Tekton's ``/tekton/termination``).

Tekton reads it as a JSON list of ``{"key", "value", "type"}`` entries (its results) and its own
entrypoint adds its entries to those already there, so the wrapper adds one entry, keyed
``TERMINATION_KEY``, to the list it finds (or starts one). A file that is not such a list is left
alone: it belongs to someone else.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ..report import Reporter

TERMINATION_KEY = "tekton-uploader-cause"
RESULT_TYPE = 1  # Tekton's TaskRunResultType


def note_termination(path: Path, text: str, reporter: Reporter) -> bool:
    """Add ``text`` to the termination message at ``path``; False (with a warning) when it cannot."""
    try:
        raw = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raw = ""
    except OSError as exc:
        reporter.warn(f"--termination-log: cannot read {path}: {exc.strerror or exc}")
        return False
    entries: Any = []
    if raw.strip():
        try:
            entries = json.loads(raw)
        except ValueError:
            entries = None
        if not isinstance(entries, list):
            reporter.warn(f"--termination-log: {path} is not a JSON list of entries; left as it is")
            return False
    entries = [e for e in entries if not (isinstance(e, dict) and e.get("key") == TERMINATION_KEY)]
    entries.append({"key": TERMINATION_KEY, "value": text, "type": RESULT_TYPE})
    try:
        path.write_text(json.dumps(entries, separators=(",", ":")), encoding="utf-8")
    except OSError as exc:
        reporter.warn(f"--termination-log: cannot write {path}: {exc.strerror or exc}")
        return False
    return True
