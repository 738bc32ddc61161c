"""``logs``: a step's log from ``<step>-log.tgz``, else its live chunks in order; ``--follow``.

Output is the log's bytes exactly, streamed block by block (memory does not grow with the log).

Following polls the task's top level (one listing) and the chunks after the last one printed
(one listing from that key on). The step has ended when its log archive or its manifest
appears. The live chunks are uploaded in order but the archive may land first, so the rest
of the log is taken from the archive, skipping the bytes already printed from the chunks.
The step's exit code comes from ``<step>-summary.json`` (``{"exit_code": N, ...}``), which the
wrapper stores after the step's other objects: following waits for it (``--summary-wait``).

A Tekton retry (attempt N >= 2) has objects of its own (``<step>-attempt-N-*``, chunks under
``logs/<step>/attempt-N/``): the latest attempt is shown unless ``attempt`` is given, so while a
retry runs its chunks are followed, never the earlier attempt's. The first attempt's log, once a
retry stored anything, is its chunks (the retry replaces ``<step>-log.tgz`` at its end).
"""

from __future__ import annotations

import datetime
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import BinaryIO, Optional

from ..formats.layout import MANIFEST, SUMMARY, step_object_name
from ..formats.layout import chunk_seq as layout_chunk_seq
from ..store import ObjectInfo
from ..units import format_duration
from .errors import GONE, INTEGRITY, NOT_FOUND, OK, ReadError
from .liveness import Staleness
from .locate import Reader, TaskView, nearby
from .manifest import Manifests, verify
from .progress import Progress
from .streams import copy_stream, extract_member


def chunk_seq(info: ObjectInfo, chunk_prefix: str) -> Optional[int]:
    """The sequence number of a chunk key ``.../logs/<step>/00000012.log``; None for other keys."""
    return None if info.is_prefix else layout_chunk_seq(info.key[len(chunk_prefix) :])


def chunks_of(
    reader: Reader, view: TaskView, step: str, start_after: str = "", attempt: int = 1
) -> list[tuple[int, ObjectInfo]]:
    prefix = view.chunk_prefix(step, attempt)
    found = []
    for info in reader.listing(prefix, recursive=True, start_after=start_after):
        seq = chunk_seq(info, prefix)
        if seq is not None:
            found.append((seq, info))
    return sorted(found, key=lambda item: item[0])


def no_log(view: TaskView, step: str) -> ReadError:
    return ReadError(f"no log of step {step!r} for {view}; {nearby(step, view.steps(), 'steps')}", NOT_FOUND)


def print_archive(reader: Reader, view: TaskView, archive: ObjectInfo, out: BinaryIO, skip: int = 0) -> None:
    progress = reader.progress(archive.key.rpartition("/")[2], archive.size)
    with reader.open(archive, progress) as stream:
        extract_member(stream, out, skip)
        progress.finish()
        verify(archive.key, stream.digest, view.manifests().expect(archive.key))


def print_chunks(
    reader: Reader,
    label: str,
    chunks: list[tuple[int, ObjectInfo]],
    out: BinaryIO,
    first: int = 0,
    manifests: Optional[Manifests] = None,
    flush: bool = False,
) -> tuple[bool, int]:
    """Print chunks in order: (False after a warning when sequence numbers are missing, bytes).

    Each chunk is checked against ``manifests`` when given.
    """
    complete = True
    total = 0
    expected = first
    progress: Optional[Progress] = None
    if not flush:
        progress = reader.progress(label, sum(info.size for _seq, info in chunks))
    for seq, info in chunks:
        if seq != expected:
            reader.console.warn(
                f"log chunks {expected:08d} to {seq - 1:08d} are not in the store: the log has a gap"
            )
            complete = False
        expected = seq + 1
        with reader.open(info, progress) as stream:
            total += copy_stream(stream, out)
            if manifests is not None:
                verify(info.key, stream.digest, manifests.expect(info.key))
        if flush:
            out.flush()
    if progress is not None:
        progress.finish()
    return complete, total


def print_log(
    reader: Reader, view: TaskView, step: str, out: BinaryIO, attempt: Optional[int] = None
) -> int:
    """The log of ``attempt`` (default: the latest)."""
    number = view.attempt(step, attempt)
    archive = view.log_archive(step, number)
    if archive is not None:
        print_archive(reader, view, archive, out)
        return OK
    chunks = chunks_of(reader, view, step, attempt=number)
    if not chunks:
        raise no_log(view, step)
    complete, _size = print_chunks(reader, f"log of {view}", chunks, out, manifests=view.manifests())
    if not complete:
        return INTEGRITY
    return OK


@dataclass
class Follow:
    """``logs --follow``: print as chunks arrive; return the step's exit code once it ended.

    Started before the step stored anything (the task, or its first chunk, not in the store
    yet), it waits up to ``wait`` seconds for them, saying so in one line; then NOT_FOUND.
    """

    reader: Reader
    run_name: str
    task_name: str
    step: str
    out: BinaryIO
    interval: float = 1.0
    summary_wait: float = 300.0  # once the log is complete, how long to wait for the summary
    wait: float = 600.0  # how long to wait for the step's first log object
    stale_after: Optional[float] = None  # nothing new this long: gone (None: 3 promises; 0: never)
    sleep: Callable[[float], None] = time.sleep
    clock: Callable[[], float] = time.monotonic
    attempt: Optional[int] = None  # which attempt (Tekton retries); None: the latest
    _said: bool = False

    def _waiting(self) -> None:
        if not self._said:
            self.reader.console.note(
                f"waiting up to {format_duration(self.wait)} for step {self.step!r} of "
                f"{self.run_name}/{self.task_name} to store its log (--wait)"
            )
            self._said = True

    def _task(self, deadline: float) -> TaskView:
        """The task's view, once the task has stored anything (or ``Reader.task``'s error)."""
        prefix = self.reader.task_prefix(self.run_name, self.task_name)
        while True:
            top = self.reader.listing(prefix)
            if top:
                return TaskView(self.reader, self.run_name, self.task_name, prefix, top)
            if self.clock() >= deadline:
                return self.reader.task(self.run_name, self.task_name)  # raises, naming what exists
            self._waiting()
            self.sleep(max(0.0, min(self.interval, deadline - self.clock())))

    def run(self) -> int:
        step = self.step
        deadline = self.clock() + self.wait
        view = self._task(deadline)
        number = self.attempt if self.attempt is not None else view.attempt(step)  # a given one may be due
        printed = 0  # log bytes printed so far
        next_seq = 0
        last_key = ""
        first = True
        staleness = Staleness(self.reader, self.stale_after, self.clock)
        while True:
            if not first:
                view.refresh()
            first = False
            if next_seq == 0 and self.attempt is None:
                number = view.attempt(step)  # nothing printed yet: a retry may have started
            archive = view.log_archive(step, number)
            ended = view.ended(step, number)
            if archive is not None:
                break  # the archive has everything: print what the chunks have not yet
            chunks = chunks_of(self.reader, view, step, last_key, number)
            ready = []
            for seq, info in chunks:
                if seq != next_seq:
                    break  # a gap: wait for it (uploads are in order) or for the end
                ready.append((seq, info))
                next_seq += 1
            if ready:
                _, size = print_chunks(
                    self.reader, f"log of {view}", ready, self.out, first=ready[0][0], flush=True
                )
                printed += size
                last_key = ready[-1][1].key
                staleness.progressed()
            elif not ended and (gone := staleness.gone(last_key, f"step {step!r} of {view}")):
                self.out.flush()
                self.reader.console.warn(gone)
                return GONE
            elif next_seq == 0 and not ended and not chunks:
                if self.clock() >= deadline:
                    raise ReadError(
                        f"{no_log(view, step)} (waited {format_duration(self.wait)}, --wait)", NOT_FOUND
                    )
                self._waiting()
            if ended:
                break
            self.sleep(self.interval)
        complete = True
        if archive is not None:
            print_archive(self.reader, view, archive, self.out, skip=printed)
        else:
            rest = chunks_of(self.reader, view, step, last_key, number)
            if next_seq == 0 and not rest:
                raise no_log(view, step)
            complete, _size = print_chunks(
                self.reader,
                f"log of {view}",
                rest,
                self.out,
                first=next_seq,
                manifests=view.manifests(),
                flush=True,
            )
        self.out.flush()
        code = self.exit_code(view, number)
        return code if complete or code != OK else INTEGRITY

    def exit_code(self, view: TaskView, attempt: int = 1) -> int:
        """The step's recorded exit code; 0 (with a note) when it has no summary.

        The wrapper stores the summary after every other object of the step (results can take a
        while), and within its flush deadline; the manifest, when there is one, comes last.
        """
        step = self.step
        deadline = self.clock() + self.summary_wait
        said = False
        summary_name = step_object_name(step, SUMMARY, attempt)
        manifest_name = step_object_name(step, MANIFEST, attempt)
        while view.file(summary_name) is None and view.file(manifest_name) is None:
            if self.clock() >= deadline or max(view.attempts(step), default=0) > attempt:  # a retry: over
                break
            if not said:
                self.reader.console.note_tty(f"log complete; waiting for {summary_name} (the exit code)")
                said = True
            self.sleep(max(0.0, min(self.interval, deadline - self.clock())))
            view.refresh()
        summary = view.summary(step, attempt)
        code = summary.get("exit_code") if summary is not None else None
        if isinstance(code, int) and not isinstance(code, bool) and 0 <= code <= 255:
            return code
        self.reader.console.note(
            f"step {step!r} of {view} has no recorded exit code ({summary_name}); exiting 0"
        )
        return OK


class _Tail:
    """Remembers the last byte written through it (to end a section with a newline)."""

    def __init__(self, out: BinaryIO) -> None:
        self.out = out
        self.last = b"\n"

    def write(self, data: bytes) -> int:
        if data:
            self.last = bytes(data[-1:])
        return self.out.write(data)

    def flush(self) -> None:
        self.out.flush()


def _started(reader: Reader, view: TaskView, step: str) -> float:
    """When the step started: its summary's ``started_at``, else its oldest log object's time."""
    recorded = (view.summary(step) or {}).get("started_at")
    if isinstance(recorded, str):
        try:
            return datetime.datetime.fromisoformat(recorded.replace("Z", "+00:00")).timestamp()
        except ValueError:
            pass
    objects = reader.listing(view.chunk_prefix(step), recursive=True)
    return min((o.mtime for o in objects), default=float("inf"))


def print_run(reader: Reader, run: str, steps: Optional[list[str]], out: BinaryIO) -> int:
    """``logs RUN``: every task's log (each of its steps, or ``steps``), in the order they started
    (the summary's ``started_at``, else the oldest log chunk), each headed
    ``==> TASK (step STEP) <==`` as ``tail`` heads files.

    A step without a log is a warning and makes the exit code NOT_FOUND; a gap makes it INTEGRITY.
    """
    order: list[tuple[float, str, float, str, TaskView]] = []
    for task in reader.tasks(run):
        view = reader.task(run, task)
        names = steps if steps is not None else view.steps()
        started = {step: _started(reader, view, step) for step in view.steps()}
        first = min(started.values(), default=float("inf"))
        order += [(first, task, started.get(step, first), step, view) for step in names]
    order.sort(key=lambda item: item[:4])
    tail = _Tail(out)
    worst = OK
    for index, (_first, _task, _started_at, step, view) in enumerate(order):
        if tail.last != b"\n":
            tail.write(b"\n")
        tail.write((b"\n" if index else b"") + f"==> {view.task} (step {step}) <==\n".encode())
        try:
            code = print_log(reader, view, step, tail)  # type: ignore[arg-type]
        except ReadError as exc:
            if exc.code != NOT_FOUND:
                raise
            reader.console.warn(str(exc))
            code = NOT_FOUND
        if code == INTEGRITY or (code == NOT_FOUND and worst == OK):
            worst = code
    tail.flush()
    return worst
