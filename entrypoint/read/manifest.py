"""Expected sizes and sha256 digests of stored objects, from the step manifests.

A manifest ``<step>-manifest.json`` (written by the wrapper as a step's last object) is JSON::

    {"objects": [{"key": "...", "size": 123, "sha256": "hex"}, ...],
     "missing": [{"key": "...", "reason": "..."}, ...]}

Keys are bucket-relative (``<prefix>/<run>/<task>/...``); keys relative to the task are accepted
too. The reader hashes every object as it streams it and compares at the end (``verify``).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import Any, Optional

from .errors import INTEGRITY, ReadError


@dataclass(frozen=True)
class Expected:
    key: str
    size: Optional[int]
    sha256: Optional[str]
    source: str  # the manifest that says so


@dataclass
class Manifests:
    """All manifests of one task, merged by key."""

    objects: dict[str, Expected] = field(default_factory=dict)
    missing: dict[str, str] = field(default_factory=dict)  # key -> reason
    sources: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)  # unreadable manifests, for a warning

    def add(self, source: str, data: bytes, task_prefix: str) -> None:
        try:
            doc = json.loads(data)
            if not isinstance(doc, dict):
                raise ValueError("not a JSON object")
            objects = [_expected(o, source, task_prefix) for o in doc.get("objects") or []]
            missing = [_missing(m, task_prefix) for m in doc.get("missing") or []]
        except (ValueError, TypeError, AttributeError) as exc:
            self.problems.append(f"{source}: unreadable manifest ({exc}); not verifying against it")
            return
        self.sources.append(source)
        for item in objects:
            self.objects[item.key] = item
        self.missing.update(missing)

    def expect(self, key: str) -> Optional[Expected]:
        return self.objects.get(key)


def _full_key(key: Any, task_prefix: str) -> str:
    if not isinstance(key, str) or not key:
        raise ValueError(f"bad key {key!r}")
    return key if key.startswith(task_prefix) else task_prefix + key.lstrip("/")


def _expected(item: Any, source: str, task_prefix: str) -> Expected:
    size = item.get("size")
    sha = item.get("sha256")
    if size is not None and (not isinstance(size, int) or size < 0):
        raise ValueError(f"bad size {size!r}")
    if sha is not None and (not isinstance(sha, str) or len(sha) != 64):
        raise ValueError(f"bad sha256 {sha!r}")
    return Expected(_full_key(item["key"], task_prefix), size, sha.lower() if sha else None, source)


def _missing(item: Any, task_prefix: str) -> tuple[str, str]:
    if isinstance(item, str):
        return _full_key(item, task_prefix), ""
    return _full_key(item["key"], task_prefix), str(item.get("reason") or item.get("error") or "")


class Digest:
    """Size and sha256 of the bytes seen so far."""

    def __init__(self) -> None:
        self._sha = hashlib.sha256()
        self.size = 0

    def update(self, data: bytes | memoryview) -> None:
        self._sha.update(data)
        self.size += len(data)

    def hexdigest(self) -> str:
        return self._sha.hexdigest()


def verify(key: str, digest: Digest, expected: Optional[Expected]) -> bool:
    """Raise ``ReadError`` (INTEGRITY) when ``digest`` contradicts the manifest; True if checked."""
    if expected is None:
        return False
    sizes = ""
    if expected.size is not None and expected.size != digest.size:
        sizes = f" ({expected.size} bytes expected, {digest.size} read)"
    if expected.sha256 is not None and expected.sha256 != digest.hexdigest():
        raise ReadError(
            f"sha256 mismatch for {key}{sizes}: {expected.source} says {expected.sha256}, "
            f"the store gave {digest.hexdigest()}; the object is damaged or was replaced",
            INTEGRITY,
        )
    if sizes:
        raise ReadError(
            f"size mismatch for {key}{sizes} according to {expected.source}; "
            "the object is damaged or was replaced",
            INTEGRITY,
        )
    return True
