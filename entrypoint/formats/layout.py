"""Object keys, built only from validated name components.

<prefix>/<pipelinerun>/<pipelinetask>/<result>.tgz
<prefix>/<pipelinerun>/<pipelinetask>/<step>/<result>.tgz   (Tekton step results)
<prefix>/<pipelinerun>/<pipelinetask>/<step>-log.tgz
<prefix>/<pipelinerun>/<pipelinetask>/logs/<step>/<chunk>.log
<prefix>/_logs/<id>/<chunk>.log                               (the library's Logger, by default)
<LOGS_PATH>/<namespace>/<result>/<taskrun-uid>/step-<step>.log (--tekton-results-logs: plain text)

``_logs`` cannot be a PipelineRun's name (Kubernetes names start with a letter or digit), so
the reader tells the library's logs from pipeline runs. Loggers before 0.2 wrote to
``<prefix>/logs/<id>/<chunk>.log``; the reader still finds those (``OLD_LIBRARY_LOGS``).
"""

from __future__ import annotations

import re
import unicodedata
import urllib.parse
from typing import NamedTuple

CHUNK_DIGITS = 8
LIBRARY_LOGS = "_logs"
OLD_LIBRARY_LOGS = "logs"  # read, never written
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")

# A step's own objects, named relative to its task's prefix (the reader parses with the same words).
LOG_ARCHIVE = "log.tgz"  # <step>-log.tgz
SUMMARY = "summary.json"  # <step>-summary.json
MANIFEST = "manifest.json"  # <step>-manifest.json, stored last
STEP_OBJECTS = (LOG_ARCHIVE, SUMMARY, MANIFEST)
RESULT_EXT = ".tgz"
CHUNKS = "logs"  # logs/<step>/<chunk>.log


def step_object_name(step: str, what: str) -> str:
    """``<step>-<what>``: one of ``STEP_OBJECTS``, relative to the task prefix."""
    return f"{step}-{what}"


def chunk_dir(step: str) -> str:
    """``logs/<step>/``, relative to the task prefix."""
    return f"{CHUNKS}/{step}/"


def step_of(name: str) -> str | None:
    """The step a task-level object name belongs to (``build-log.tgz`` -> ``build``), or None."""
    for what in STEP_OBJECTS:
        suffix = f"-{what}"
        if name.endswith(suffix) and len(name) > len(suffix):
            return name[: -len(suffix)]
    return None


def result_of(name: str) -> str | None:
    """The result a task-level object name holds (``digest.tgz`` -> ``digest``), or None."""
    if name.endswith(RESULT_EXT) and step_of(name) is None and len(name) > len(RESULT_EXT):
        return name[: -len(RESULT_EXT)]
    return None


def name_problem(value: str) -> str | None:
    """Why ``value`` cannot be one component of an object key, or None when it can."""
    if not value:
        return "is empty"
    if value in (".", ".."):
        return f"is {value!r}"
    if _CONTROL.search(value) or any(unicodedata.category(c) in ("Cc", "Cf", "Cs") for c in value):
        return "contains control characters"
    folded = unicodedata.normalize("NFKC", value)
    if "/" in value or "\\" in value or "/" in folded or "\\" in folded:
        return "contains a path separator"
    if folded in (".", ".."):
        return f"normalises to {folded!r}"
    decoded = _percent_decoded(value)
    if decoded != value:
        unfolded = unicodedata.normalize("NFKC", decoded)
        separator = any(c in text for c in "/\\" for text in (decoded, unfolded))
        if separator or unfolded in (".", "..") or _CONTROL.search(decoded):
            return "percent-encodes a path separator, a control character, '.' or '..'"
    if len(value.encode("utf-8", "surrogateescape")) > 255:
        return "is longer than 255 bytes"
    return None


def _percent_decoded(value: str, rounds: int = 3) -> str:
    """``value`` URL-decoded until it stops changing (a layer that decodes once, or twice, must
    not see a separator or a dot-segment either)."""
    for _ in range(rounds):
        decoded = urllib.parse.unquote(value, errors="surrogateescape")
        if decoded == value:
            break
        value = decoded
    return value


def check_name(what: str, value: str) -> str:
    """Return ``value`` or raise ValueError naming ``what`` and the problem."""
    problem = name_problem(value)
    if problem:
        raise ValueError(f"{what} {value!r} {problem}")
    return value


class _Names(NamedTuple):
    prefix: str
    pipelinerun: str
    pipelinetask: str
    step: str


class Layout(_Names):
    """Where a step's objects go; every name is checked (ValueError naming the bad one)."""

    __slots__ = ()

    def __new__(cls, prefix: str, pipelinerun: str, pipelinetask: str, step: str) -> Layout:
        for part in prefix.split("/") if prefix else ():
            check_name("key prefix segment", part)
        check_name("pipelinerun", pipelinerun)
        check_name("pipelinetask", pipelinetask)
        check_name("step", step)
        return super().__new__(cls, prefix, pipelinerun, pipelinetask, step)

    @property
    def task_prefix(self) -> str:
        parts = [self.prefix] if self.prefix else []
        return "/".join([*parts, self.pipelinerun, self.pipelinetask]) + "/"

    def result_key(self, result: str) -> str:
        return f"{self.task_prefix}{check_name('result', result)}{RESULT_EXT}"

    def step_result_key(self, result: str) -> str:
        """A Tekton step result: ``<step>/<result>.tgz`` under the task."""
        return f"{self.task_prefix}{self.step}/{check_name('result', result)}{RESULT_EXT}"

    def log_archive_key(self) -> str:
        return self.step_object_key(LOG_ARCHIVE)

    def chunk_prefix(self) -> str:
        return f"{self.task_prefix}{chunk_dir(self.step)}"

    def chunk_key(self, seq: int) -> str:
        return f"{self.chunk_prefix()}{seq:0{CHUNK_DIGITS}d}.log"

    def step_object_key(self, suffix: str) -> str:
        """``<step>-<suffix>`` next to the log archive (one of ``STEP_OBJECTS``)."""
        return f"{self.task_prefix}{step_object_name(self.step, suffix)}"


def results_log_key(logs_path: str, namespace: str, result: str, record: str, step: str) -> str:
    """Tekton Results' blob log of one step: ``<LOGS_PATH>/<namespace>/<result>/<record>/step-<step>.log``.

    Results' blob reader (``LOGS_TYPE=blob``) lists ``LOGS_PATH/<parent>/<result>/<record>/``
    (parent: the namespace; record: the TaskRun's UID) and concatenates every object under it.
    ``logs_path`` is ``LOGS_PATH`` without its leading ``/``. ValueError names a bad component.
    """
    parts = [p for p in logs_path.strip("/").split("/") if p]
    for part in parts:
        check_name("Tekton Results logs path segment", part)
    names = [
        check_name("namespace", namespace),
        check_name("Tekton Results result", result),
        check_name("TaskRun UID", record),
        check_name("step log name", f"step-{step}.log"),
    ]
    return "/".join([*parts, *names])


def library_log_prefix(key_prefix: str, log_id: str) -> str:
    """``<key_prefix>/_logs/<log_id>/``: where a library ``Logger`` stores its chunks by default."""
    parts = [p for p in key_prefix.strip("/").split("/") if p]
    for part in parts:
        check_name("key prefix segment", part)
    return "/".join([*parts, LIBRARY_LOGS, check_name("log id", log_id)]) + "/"


def chunk_seq(name: str) -> int | None:
    """The sequence number of a chunk file name ``00000012.log``; None for any other name."""
    stem, dot, ext = name.partition(".")
    if dot != "." or ext != "log" or not stem.isdigit():
        return None
    return int(stem)
