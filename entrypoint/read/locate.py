"""Finding things in the store: pipeline runs, their tasks, and a task's objects.

Keys: ``<prefix>/<run>/<task>/<result>.tgz``, ``<step>-log.tgz``, ``<step>-summary.json``,
``<step>-manifest.json`` and ``logs/<step>/<seq>.log``; a Tekton retry's (attempt N >= 2)
``<step>-attempt-N-*`` and ``logs/<step>/attempt-N/<seq>.log``. Anything missing is a
``ReadError`` (NOT_FOUND) that names what exists nearby.
"""

from __future__ import annotations

import difflib
import json
from dataclasses import dataclass, field
from typing import Any, Optional

from ..formats.layout import (
    ATTEMPT,
    CHUNKS,
    LIBRARY_LOGS,
    LOG_ARCHIVE,
    MANIFEST,
    OLD_LIBRARY_LOGS,
    SUMMARY,
    attempt_dir_of,
    chunk_dir,
    chunk_seq,
    name_problem,
    result_of,
    step_object_name,
    step_object_of,
    step_of,
)
from ..report import Reporter
from ..store import ObjectInfo, ReadableStore, StoreError
from .errors import NOT_FOUND, USAGE, ReadError, from_store_error
from .manifest import Manifests
from .progress import Progress
from .retry import Retry
from .streams import ObjectStream

SMALL = 16 * 1024 * 1024  # manifests and summaries are read whole; refuse anything bigger


@dataclass(frozen=True)
class Target:
    run: str
    task: Optional[str] = None

    def __str__(self) -> str:
        return self.run if self.task is None else f"{self.run}/{self.task}"


def parse_target(text: str, need_task: bool) -> Target:
    """``RUN`` or ``RUN/TASK``; a ``ReadError`` (USAGE) naming the problem otherwise."""
    what = "PIPELINERUN/PIPELINETASK" if need_task else "PIPELINERUN[/PIPELINETASK]"
    parts = text.strip("/").split("/") if text else []
    if not parts or len(parts) > 2 or (need_task and len(parts) != 2):
        raise ReadError(f"{text!r} is not {what} (for example my-run/build)", USAGE)
    for kind, value in zip(("pipelinerun", "pipelinetask"), parts):
        problem = name_problem(value)
        if problem:
            raise ReadError(f"{kind} {value!r} {problem}", USAGE)
    return Target(parts[0], parts[1] if len(parts) == 2 else None)


def nearby(name: str, candidates: list[str], plural: str) -> str:
    """``did you mean x? <plural> there: a, b, c``, for an error message."""
    if not candidates:
        return f"there are no {plural}"
    shown = ", ".join(candidates[:10]) + (f", ... ({len(candidates)} in all)" if len(candidates) > 10 else "")
    close = difflib.get_close_matches(name, candidates, n=3, cutoff=0.6)
    hint = f"did you mean {' or '.join(close)}? " if close else ""
    return f"{hint}{plural} there: {shown}"


class Reader:
    """The store, the key prefix and the retry policy: everything a command reads goes through here."""

    def __init__(self, store: ReadableStore, prefix: str, retry: Retry, console: Reporter) -> None:
        self.store = store
        self.prefix = prefix.strip("/")
        self.retry = retry
        self.console = console

    @property
    def where(self) -> str:
        return self.store.describe()

    @property
    def base(self) -> str:
        return f"{self.prefix}/" if self.prefix else ""

    def task_prefix(self, run: str, task: str) -> str:
        return f"{self.base}{run}/{task}/"

    def listing(self, prefix: str, recursive: bool = False, start_after: str = "") -> list[ObjectInfo]:
        try:
            return self.retry.call(
                f"listing {prefix or '/'}", lambda: self.store.list_objects(prefix, recursive, start_after)
            )
        except StoreError as exc:
            raise from_store_error(exc, self.where) from None

    def _children(self, prefix: str) -> list[str]:
        return [o.key[len(prefix) :].rstrip("/") for o in self.listing(prefix) if o.is_prefix]

    def runs(self) -> list[str]:
        """Pipeline runs: not the library's logs (``library-logs`` lists those)."""
        runs = [name for name in self._children(self.base) if name != LIBRARY_LOGS]
        if OLD_LIBRARY_LOGS in runs and self._holds_library_logs(f"{self.base}{OLD_LIBRARY_LOGS}/"):
            runs.remove(OLD_LIBRARY_LOGS)
        return runs

    def _holds_library_logs(self, prefix: str) -> bool:
        """``<prefix><id>/<chunk>.log`` (a Logger's, before 0.2) rather than a run's tasks."""
        children = [o.key for o in self.listing(prefix) if o.is_prefix]
        if not children:
            return False
        below = self.listing(children[0])
        return any(not o.is_prefix and chunk_seq(o.key[len(children[0]) :]) is not None for o in below)

    def tasks(self, run: str) -> list[str]:
        tasks = self._children(f"{self.base}{run}/")
        if not tasks:
            runs = self.runs()
            raise ReadError(
                f"no pipelinerun {run!r} under {self.base or '/'} in {self.where}; "
                f"{nearby(run, runs, 'pipelineruns')}",
                NOT_FOUND,
            )
        return tasks

    def task(self, run: str, task: str) -> TaskView:
        prefix = self.task_prefix(run, task)
        top = self.listing(prefix)
        if not top:
            tasks = self.tasks(run)  # raises when the run is missing too
            raise ReadError(
                f"pipelinerun {run!r} has no pipelinetask {task!r}; {nearby(task, tasks, 'tasks')}",
                NOT_FOUND,
            )
        return TaskView(self, run, task, prefix, top)

    def open(self, info: ObjectInfo, progress: Optional[Progress] = None) -> ObjectStream:
        return ObjectStream(self.store, info, self.retry, progress)

    def progress(self, label: str, total: int) -> Progress:
        return Progress.for_stream(label, total, self.console.stream)

    def read_small(self, info: ObjectInfo) -> bytes:
        if info.size > SMALL:
            raise ReadError(f"{info.key}: {info.size} bytes is too large for a metadata file", NOT_FOUND)
        with self.open(info) as stream:
            try:
                return stream.read()
            except StoreError as exc:
                raise from_store_error(exc, self.where) from None


@dataclass
class TaskView:
    """One task's objects, as listed when it was looked up (``refresh`` lists again)."""

    reader: Reader
    run: str
    task: str
    prefix: str
    top: list[ObjectInfo]  # directly under the task: results, archives, summaries, "logs/"
    _manifests: Optional[Manifests] = field(default=None, repr=False)
    _attempts: dict[str, list[int]] = field(default_factory=dict, repr=False)  # by step, per listing

    def __str__(self) -> str:
        return f"{self.run}/{self.task}"

    def refresh(self) -> None:
        self.top = self.reader.listing(self.prefix)
        self._manifests = None
        self._attempts = {}

    def files(self) -> dict[str, ObjectInfo]:
        """Objects directly under the task, by name."""
        return {o.key[len(self.prefix) :]: o for o in self.top if not o.is_prefix}

    def file(self, name: str) -> Optional[ObjectInfo]:
        return self.files().get(name)

    def results(self) -> list[str]:
        return sorted(r for r in map(result_of, self.files()) if r is not None)

    def chunk_prefix(self, step: str, attempt: int = 1) -> str:
        return f"{self.prefix}{chunk_dir(step, attempt)}"

    def attempts(self, step: str) -> list[int]:
        """The attempts of ``step`` that stored anything (Tekton retries), oldest first."""
        if step not in self._attempts:
            self._attempts[step] = self._find_attempts(step)
        return self._attempts[step]

    def _find_attempts(self, step: str) -> list[int]:
        found = {a for s, a, _what in filter(None, map(step_object_of, self.files())) if s == step}
        chunks = self.chunk_prefix(step)
        if any(o.is_prefix and o.key == f"{self.prefix}{CHUNKS}/" for o in self.top):
            # chunk names are digits, which sort before "attempt-": this lists the retries' folders only
            for o in self.reader.listing(chunks, start_after=f"{chunks}{ATTEMPT}"):
                number = attempt_dir_of(o.key[len(chunks) :].rstrip("/")) if o.is_prefix else None
                if number is not None:
                    found.add(number)
            if 1 not in found and self._has_first_chunks(chunks, found):
                found.add(1)
        return sorted(found)

    def _has_first_chunks(self, chunks: str, found: set[int]) -> bool:
        """Chunks of the first attempt under ``logs/<step>/`` (listed only when retries are there)."""
        if not found:
            return bool(self.reader.listing(chunks))
        listed = self.reader.listing(chunks)
        return any(not o.is_prefix and chunk_seq(o.key[len(chunks) :]) is not None for o in listed)

    def attempt(self, step: str, wanted: Optional[int] = None) -> int:
        """``wanted`` when the step has it (else NOT_FOUND naming those it has), or its latest attempt
        (1 when nothing is stored yet)."""
        attempts = self.attempts(step)
        if wanted is None:
            return attempts[-1] if attempts else 1
        if wanted not in attempts:
            have = ", ".join(map(str, attempts)) or "none"
            raise ReadError(
                f"step {step!r} of {self} has no attempt {wanted}; attempts there: {have}", NOT_FOUND
            )
        return wanted

    def step_file(self, step: str, what: str, attempt: int = 1) -> Optional[ObjectInfo]:
        """One of the step's own objects (``LOG_ARCHIVE``, ``SUMMARY``, ``MANIFEST``) of ``attempt``."""
        return self.file(step_object_name(step, what, attempt))

    def log_archive(self, step: str, attempt: int = 1) -> Optional[ObjectInfo]:
        """``attempt``'s whole log. The first attempt's ``<step>-log.tgz`` is the latest attempt's
        once a retry stored anything (a retry replaces it at its end): then there is none."""
        if attempt == 1 and self.attempts(step)[-1:] not in ([], [1]):
            return None
        return self.step_file(step, LOG_ARCHIVE, attempt)

    def ended(self, step: str, attempt: int = 1) -> bool:
        """``attempt`` is over: its archive or manifest is stored, or a later attempt stored anything."""
        if self.step_file(step, MANIFEST, attempt) is not None:
            return True
        if any(a > attempt for a in self.attempts(step)):
            return True
        return self.log_archive(step, attempt) is not None

    def steps(self) -> list[str]:
        found = {step for step in map(step_of, self.files()) if step is not None}
        logs = f"{self.prefix}{CHUNKS}/"
        if any(o.is_prefix and o.key == logs for o in self.top):
            found.update(o.key[len(logs) :].rstrip("/") for o in self.reader.listing(logs) if o.is_prefix)
        return sorted(found)

    def manifests(self) -> Manifests:
        """Every step's manifests merged, each step's attempts in order (a retry's entry for
        ``<step>-log.tgz`` wins over the first attempt's)."""
        if self._manifests is None:
            manifests = Manifests()
            found = [(step_object_of(name), info) for name, info in self.files().items()]
            ordered = [(f[:2], info) for f, info in found if f is not None and f[2] == MANIFEST]
            for _order, info in sorted(ordered, key=lambda item: item[0]):
                manifests.add(info.key, self.reader.read_small(info), self.prefix)
            for problem in manifests.problems:
                self.reader.console.warn(problem)
            self._manifests = manifests
        return self._manifests

    def summary(self, step: str, attempt: int = 1) -> Optional[dict[str, Any]]:
        """The step's ``<step>-summary.json`` (of ``attempt``), or None (absent or unreadable: warned)."""
        info = self.step_file(step, SUMMARY, attempt)
        if info is None:
            return None
        try:
            doc = json.loads(self.reader.read_small(info))
        except ValueError as exc:
            self.reader.console.warn(f"{info.key}: unreadable summary ({exc})")
            return None
        if not isinstance(doc, dict):
            self.reader.console.warn(f"{info.key}: unreadable summary (not a JSON object)")
            return None
        return doc
