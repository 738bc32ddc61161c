"""``logs``: a step's log from ``<step>-log.tgz``, else its live chunks in order; ``--follow``.

Output is the log's bytes exactly, streamed block by block (memory does not grow with the log).

Following polls the task's top level (one listing) and the chunks after the last one printed
(one listing from that key on). The step has ended when its log archive or its manifest
appears. The live chunks are uploaded in order but the archive may land first, so the rest
of the log is taken from the archive, skipping the bytes already printed from the chunks.
The step's exit code comes from ``<step>-summary.json`` (``{"exit_code": N, ...}``), which the
wrapper stores after the step's other objects: following waits for it (``--summary-wait``).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import BinaryIO, Optional

from ..store import ObjectInfo
from .errors import INTEGRITY, NOT_FOUND, OK, ReadError
from .locate import Reader, TaskView, nearby
from .manifest import verify
from .progress import Progress
from .streams import copy_stream, extract_member


def chunk_seq(info: ObjectInfo, chunk_prefix: str) -> Optional[int]:
    """The sequence number of a chunk key ``.../logs/<step>/00000012.log``; None for other keys."""
    name = info.key[len(chunk_prefix) :]
    stem, dot, ext = name.partition(".")
    if info.is_prefix or dot != "." or ext != "log" or not stem.isdigit():
        return None
    return int(stem)


def chunks_of(
    reader: Reader, view: TaskView, step: str, start_after: str = ""
) -> list[tuple[int, ObjectInfo]]:
    prefix = view.chunk_prefix(step)
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
    view: TaskView,
    chunks: list[tuple[int, ObjectInfo]],
    out: BinaryIO,
    first: int = 0,
    check: bool = True,
    flush: bool = False,
) -> tuple[bool, int]:
    """Print chunks in order: (False after a warning when sequence numbers are missing, bytes)."""
    complete = True
    total = 0
    expected = first
    progress: Optional[Progress] = None
    if not flush:
        progress = reader.progress(f"log of {view}", sum(info.size for _seq, info in chunks))
    manifests = view.manifests() if check else None
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


def print_log(reader: Reader, view: TaskView, step: str, out: BinaryIO) -> int:
    archive = view.file(f"{step}-log.tgz")
    if archive is not None:
        print_archive(reader, view, archive, out)
        return OK
    chunks = chunks_of(reader, view, step)
    if not chunks:
        raise no_log(view, step)
    complete, _size = print_chunks(reader, view, chunks, out)
    if not complete:
        return INTEGRITY
    return OK


@dataclass
class Follow:
    """``logs --follow``: print as chunks arrive; return the step's exit code once it ended."""

    reader: Reader
    view: TaskView
    step: str
    out: BinaryIO
    interval: float = 1.0
    summary_wait: float = 300.0  # once the log is complete, how long to wait for the summary
    sleep: Callable[[float], None] = time.sleep
    clock: Callable[[], float] = time.monotonic

    def run(self) -> int:
        step, view = self.step, self.view
        printed = 0  # log bytes printed so far
        next_seq = 0
        last_key = ""
        waiting_said = False
        while True:
            view.refresh()
            files = view.files()
            archive = files.get(f"{step}-log.tgz")
            ended = archive is not None or f"{step}-manifest.json" in files
            if archive is not None:
                break  # the archive has everything: print what the chunks have not yet
            chunks = chunks_of(self.reader, view, step, last_key)
            ready = []
            for seq, info in chunks:
                if seq != next_seq:
                    break  # a gap: wait for it (uploads are in order) or for the end
                ready.append((seq, info))
                next_seq += 1
            if ready:
                _, size = print_chunks(
                    self.reader, view, ready, self.out, first=ready[0][0], check=False, flush=True
                )
                printed += size
                last_key = ready[-1][1].key
            elif next_seq == 0 and not waiting_said and not ended:
                self.reader.console.note_tty(f"waiting for the first log chunk of step {step!r} of {view}")
                waiting_said = True
            if ended:
                break
            self.sleep(self.interval)
        complete = True
        if archive is not None:
            print_archive(self.reader, view, archive, self.out, skip=printed)
        else:
            rest = chunks_of(self.reader, view, step, last_key)
            if next_seq == 0 and not rest:
                raise no_log(view, step)
            complete, _size = print_chunks(self.reader, view, rest, self.out, first=next_seq, flush=True)
        self.out.flush()
        code = self.exit_code()
        return code if complete or code != OK else INTEGRITY

    def exit_code(self) -> int:
        """The step's recorded exit code; 0 (with a note) when it has no summary.

        The wrapper stores the summary after every other object of the step (results can take a
        while), and within its flush deadline; the manifest, when there is one, comes last.
        """
        step, view = self.step, self.view
        deadline = self.clock() + self.summary_wait
        said = False
        while view.file(f"{step}-summary.json") is None and view.file(f"{step}-manifest.json") is None:
            if self.clock() >= deadline:
                break
            if not said:
                self.reader.console.note_tty(f"log complete; waiting for {step}-summary.json (the exit code)")
                said = True
            self.sleep(max(0.0, min(self.interval, deadline - self.clock())))
            view.refresh()
        summary = view.summary(step)
        code = summary.get("exit_code") if summary is not None else None
        if isinstance(code, int) and not isinstance(code, bool) and 0 <= code <= 255:
            return code
        self.reader.console.note(
            f"step {step!r} of {view} has no recorded exit code ({step}-summary.json); exiting 0"
        )
        return OK
