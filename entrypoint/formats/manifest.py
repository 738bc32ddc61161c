"""``<step>-manifest.json``: what the step stored, what it could not, and why. Uploaded last.

Every object written for the step is listed with its key, size and SHA-256 (of the bytes sent),
and ``"verified": false`` when the store could not confirm it holds those bytes (an ETag that is no
MD5 digest, under SSE-KMS or SSE-C, on an object too large to read back; absent: confirmed);
every object that could not be written is listed with the reason; output the capture could not
keep (spool limit, spool write errors) is accounted for byte-exactly. A reader can check a
step's objects against it, and its absence means the step never finished its final flush.
"""

from __future__ import annotations

import json

from .layout import Layout

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterable, Sequence
    from typing import Any, Optional

VERSION = 1


class Gap:
    """Output not captured: ``size`` bytes after ``at`` bytes of COMMAND's output.

    (A plain class, as every record loaded after the spawn: a ``typing.NamedTuple`` costs ~0.1 ms
    to define, and a COMMAND that ends at once waits for it.)"""

    __slots__ = ("at", "reason", "size")

    def __init__(self, at: int, size: int, reason: str) -> None:
        self.at, self.size, self.reason = at, size, reason


class Entry:
    """One object of the step: stored (``size``, ``sha256``), or not (``reason``)."""

    __slots__ = ("key", "kind", "reason", "sha256", "size", "stored", "verified")

    def __init__(self, key: str, kind: str, stored: bool, size: int = 0, sha256: str = "", reason: str = "",
                 verified: bool = True) -> None:
        self.key, self.kind, self.stored, self.size, self.sha256 = key, kind, stored, size, sha256
        self.reason = reason
        self.verified = verified  # False: the store could not check the copy it holds (``"verified": false``)


class LogAccount:
    __slots__ = ("captured_bytes", "gaps", "output_bytes", "spool_limit", "spool_peak")

    def __init__(self, output_bytes: int, captured_bytes: int, gaps: Sequence[Gap] = (), spool_limit: int = 0,
                 spool_peak: int = 0) -> None:
        self.output_bytes = output_bytes  # what COMMAND wrote to stdout and stderr
        self.captured_bytes = captured_bytes  # what the log holds (markers included)
        self.gaps, self.spool_limit, self.spool_peak = gaps, spool_limit, spool_peak

    @property
    def not_captured_bytes(self) -> int:
        return sum(g.size for g in self.gaps)


class Skipped:
    __slots__ = ("name", "reason")

    def __init__(self, name: str, reason: str) -> None:
        self.name, self.reason = name, reason


class Manifest:
    """(A plain class, as every record on the wrapper's run path: ``dataclasses`` costs milliseconds.)"""

    __slots__ = (
        "bucket",
        "command_exit_code",
        "exit_code",
        "layout",
        "log",
        "results_not_uploaded",
        "results_offloaded",
    )

    def __init__(self, layout: Layout, bucket: str, log: LogAccount, command_exit_code: int, exit_code: int,
                 results_not_uploaded: Optional[list[Skipped]] = None,
                 results_offloaded: Optional[list[dict[str, Any]]] = None) -> None:
        self.layout = layout
        self.bucket = bucket
        self.log = log
        self.command_exit_code = command_exit_code
        self.exit_code = exit_code
        self.results_not_uploaded: list[Skipped] = results_not_uploaded or []
        self.results_offloaded: list[dict[str, Any]] = results_offloaded or []  # --offload-results-over

    def to_dict(self, entries: Iterable[Entry]) -> dict[str, Any]:
        written = []
        missing = []
        for e in sorted(entries, key=lambda e: e.key):
            if e.stored:
                item: dict[str, Any] = {"key": e.key, "size": e.size, "sha256": e.sha256, "kind": e.kind}
                if not e.verified:
                    item["verified"] = False
                written.append(item)
            else:
                missing.append({"key": e.key, "kind": e.kind, "reason": e.reason})
        log = self.log
        return {
            "manifest_version": VERSION,
            "bucket": self.bucket,
            "pipelinerun": self.layout.pipelinerun,
            "pipelinetask": self.layout.pipelinetask,
            "step": self.layout.step,
            "attempt": self.layout.attempt,
            "command_exit_code": self.command_exit_code,
            "exit_code": self.exit_code,
            "complete": not missing and not log.gaps,
            "objects": written,
            "missing": missing,
            "results_not_uploaded": [{"name": s.name, "reason": s.reason} for s in self.results_not_uploaded],
            "results_offloaded": list(self.results_offloaded),
            "log": {
                "output_bytes": log.output_bytes,
                "captured_bytes": log.captured_bytes,
                "not_captured_bytes": log.not_captured_bytes,
                "gaps": [{"at": g.at, "bytes": g.size, "reason": g.reason} for g in log.gaps],
                "spool_limit": log.spool_limit,
                "spool_peak_bytes": log.spool_peak,
            },
        }

    def encode(self, entries: Iterable[Entry]) -> bytes:
        return (json.dumps(self.to_dict(entries), indent=1, ensure_ascii=False) + "\n").encode()
