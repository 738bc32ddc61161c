"""The capture's spool budget: pause at the limit, exact markers, resume, write errors, backlog."""

from __future__ import annotations

import gzip
import os
import resource
from pathlib import Path

import pytest
from benchmarks.data import log_text
from conftest import wait_until

from entrypoint.spool.archiver import LogArchiver
from entrypoint.spool.budget import SpoolBudget
from entrypoint.spool.capture import MARKER_PREFIX, LogCapture
from entrypoint.spool.chunk import Chunk
from entrypoint.store.payload import GzipMember, Payload

KiB = 1024


class Sink:
    """Collects sealed chunks; ``drain`` plays uploader and archiver for what was sealed so far."""

    def __init__(self, budget: SpoolBudget) -> None:
        self.budget = budget
        self.chunks: list[Chunk] = []
        self.contents: list[bytes] = []

    def __call__(self, chunk: Chunk) -> None:
        self.chunks.append(chunk)
        self.contents.append(Path(chunk.path).read_bytes())

    def drain(self) -> None:
        for chunk in self.chunks:
            chunk.done(uploaded=True)
            chunk.done(archived=True)  # into nothing: as if compressed away
        self.chunks = []

    def log(self) -> bytes:
        return b"".join(self.contents)


def capture(
    tmp_path: Path, limit: int, chunk_size: int = 64 * KiB, backlog: int = 0, now: list[float] | None = None
) -> tuple[LogCapture, Sink]:
    budget = SpoolBudget(limit)
    sink = Sink(budget)
    directory = tmp_path / "chunks"
    directory.mkdir()
    pauses: list[str] = []
    clock = now or [0.0]
    cap = LogCapture(
        directory,
        chunk_size,
        5.0,
        sink,
        clock=lambda: clock[0],
        budget=budget,
        backlog=lambda: backlog,
        on_pause=pauses.append,
    )
    cap.pauses = pauses  # type: ignore[attr-defined]
    return cap, sink


def marker(size: int, reason: str) -> bytes:
    return MARKER_PREFIX + f"{size} bytes of output not captured here: {reason}]\n".encode()


def feed(cap: LogCapture, data: bytes, piece: int = 1000) -> None:
    for i in range(0, len(data), piece):
        cap.write(memoryview(data[i : i + piece]))


def test_below_the_limit_everything_is_captured(tmp_path: Path) -> None:
    cap, sink = capture(tmp_path, limit=1024 * KiB)
    data = bytes(range(256)) * 1000
    for i in range(0, len(data), 10_000):
        feed(cap, data[i : i + 10_000])
        sink.drain()
    cap.close()
    assert sink.log() == data
    assert cap.gaps == [] and cap.not_captured == 0 and cap.output == len(data)


def test_limit_pauses_capture_and_the_end_marker_counts_exactly(tmp_path: Path) -> None:
    cap, sink = capture(tmp_path, limit=100 * KiB)
    data = b"".join(b"line %05d\n" % i for i in range(20_000))  # 200 kB, nothing drained
    feed(cap, data, piece=777)
    cap.close()
    (gap,) = cap.gaps
    assert gap.reason == "spool limit 100.0 KiB reached"
    captured = data[: gap.at]
    assert gap.at + gap.size == len(data) and 0 < gap.at < 50 * KiB
    newline = b"" if captured.endswith(b"\n") else b"\n"
    assert sink.log() == captured + newline + marker(gap.size, gap.reason)
    assert cap.total == len(sink.log())
    assert cap.budget.peak <= 100 * KiB
    assert len(cap.pauses) == 1  # type: ignore[attr-defined]


def test_capture_resumes_with_a_marker_once_uploads_free_the_spool(tmp_path: Path) -> None:
    cap, sink = capture(tmp_path, limit=100 * KiB)
    first = b"a" * 60 * KiB  # more than the spool can hold twice over
    feed(cap, first)
    assert cap.gaps == [] and cap.not_captured > 0  # paused, gap still open
    sink.drain()  # uploaded and archived: room again
    second = b"b" * 5000
    feed(cap, second)
    cap.close()
    (gap,) = cap.gaps
    assert gap.at + gap.size == len(first)
    assert sink.log() == first[: gap.at] + b"\n" + marker(gap.size, gap.reason) + second


def test_spool_write_failure_is_a_gap_not_a_crash(tmp_path: Path) -> None:
    now = [0.0]
    cap, sink = capture(tmp_path, limit=1 << 30, now=now)
    feed(cap, b"x" * 5000)
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    resource.setrlimit(resource.RLIMIT_FSIZE, (6000, hard))  # the chunk file cannot grow past 6000
    try:
        feed(cap, b"y" * 2000)  # the first 1000 fit, the next write fails
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
    feed(cap, b"w" * 500)  # not retried within a second of the failure
    now[0] += 1.5
    feed(cap, b"z" * 1000)
    cap.close()
    (gap,) = cap.gaps
    assert gap.reason == "spool write failed: File too large"
    assert (gap.at, gap.size) == (6000, 1500)
    assert sink.log() == b"x" * 5000 + b"y" * 1000 + b"\n" + marker(1500, gap.reason) + b"z" * 1000
    assert cap.pauses == [  # type: ignore[attr-defined]
        "spool write failed: File too large: capture paused at byte 6000 of the output (which still "
        "passes through); a marker line in the log will say how many bytes are missing"
    ]


@pytest.mark.parametrize(("backlog", "sealed"), [(0, True), (1, True), (2, False)])
def test_interval_seals_only_while_uploads_keep_up(tmp_path: Path, backlog: int, sealed: bool) -> None:
    cap, sink = capture(tmp_path, limit=1 << 30, backlog=backlog)
    feed(cap, b"data")
    due = cap.due()
    assert due is not None
    cap.tick(due + 0.001)
    assert bool(sink.contents) == sealed
    if not sealed:
        later = cap.due()
        assert later is not None and later > due  # looks again one interval later, no busy loop


def test_budget_counts_a_chunk_raw_until_archived_then_only_its_compressed_copy(tmp_path: Path) -> None:
    budget = SpoolBudget(1 << 30)
    paths = [tmp_path / "a", tmp_path / "b"]
    for p in paths:
        p.write_bytes(b"x" * 10_000)
    budget.written = 20_000
    a, b = (Chunk(i, p, 10_000, budget) for i, p in enumerate(paths))
    overhead = 20 + 1024  # the most 20 kB can outgrow their size when compressed
    assert budget.used() == 20_000 + overhead
    budget.start_archiving(10_000)  # a is being compressed: room for its whole compressed copy
    assert budget.used() == 20_000 + overhead + 10_000 + 10 + 1024
    budget.end_archiving(3_000)
    a.done(archived=True, member=GzipMember(tmp_path / "members", 0, 3_000, 10_000))
    assert not paths[0].exists()  # not uploaded yet: the upload will read the member
    assert budget.used() == 10_000 + 10 + 1024 + 3_000
    a.done(uploaded=True)
    assert budget.used() == 10_000 + 10 + 1024 + 3_000
    held = b.open()  # an upload reads b raw: b stays while it does
    budget.start_archiving(10_000)
    budget.end_archiving(6_000)
    b.done(archived=True, member=GzipMember(tmp_path / "members", 3_000, 3_000, 10_000))
    assert paths[1].exists() and budget.used() == 10_000 + 6_000
    assert held.read() == b"x" * 10_000
    held.close()
    assert not paths[1].exists() and budget.used() == 6_000
    assert budget.peak == 20_000 + overhead + 10_000 + 10 + 1024


def test_without_a_member_the_raw_chunk_stays_until_uploaded(tmp_path: Path) -> None:
    budget = SpoolBudget(1 << 30)
    path = tmp_path / "c"
    path.write_bytes(b"y" * 100)
    budget.written = 100
    chunk = Chunk(0, path, 100, budget)
    chunk.done(archived=True)  # archiving failed (or no archiver): the upload needs the file
    assert path.exists() and budget.used() == 100
    assert Payload((chunk,), chunk.size).read_all() == b"y" * 100
    chunk.done(uploaded=True)
    assert not path.exists() and budget.used() == 0


def archived_chunks(tmp_path: Path, data: bytes, chunk_size: int) -> tuple[list[Chunk], LogArchiver]:
    """``data`` captured in chunks of ``chunk_size`` and compressed by a real LogArchiver."""
    budget = SpoolBudget(1 << 30)
    chunks: list[Chunk] = []
    (tmp_path / "chunks").mkdir()
    cap = LogCapture(tmp_path / "chunks", chunk_size, 5.0, chunks.append, budget=budget)
    feed(cap, data, piece=4096)
    cap.close()
    archiver = LogArchiver(tmp_path, "main.log", budget)
    for chunk in chunks:
        archiver.add(chunk)
    # ``archived`` is set just before the raw file is deleted: wait for both
    done = lambda: all(c.archived and not (c.member and os.path.exists(c.path)) for c in chunks)  # noqa: E731
    wait_until(done, timeout=30, what="archiving")
    return chunks, archiver


def test_a_chunk_uploaded_from_its_compressed_member_reads_back_byte_exact(tmp_path: Path) -> None:
    data = log_text(3 * 1024 * KiB + 123)
    chunks, archiver = archived_chunks(tmp_path, data, 1024 * KiB)
    assert len(chunks) == 4
    assert not any(os.path.exists(c.path) for c in chunks)  # raw files gone once compressed
    assert all(c.member is not None for c in chunks)
    assert os.stat(archiver.members).st_size < len(data) // 2  # the spool holds them compressed
    payloads = [Payload((c,), c.size) for c in chunks]
    assert b"".join(p.read_all() for p in payloads) == data
    with payloads[1].open() as reader:  # read in pieces, as the S3 client does per part
        pieces = [reader.read(100_000) for _ in range(11)]
    assert [len(x) for x in pieces] == [100_000] * 10 + [1024 * KiB - 1_000_000]
    assert b"".join(pieces) == data[1024 * KiB : 2 * 1024 * KiB]
    payload = archiver.finish(len(data), 0.0)  # the log archive is still whole
    assert gzip.decompress(payload.read_all())[512 : 512 + len(data)] == data


def test_a_corrupt_member_is_an_error_not_a_short_upload(tmp_path: Path) -> None:
    data = log_text(200 * KiB)
    (chunk,), archiver = archived_chunks(tmp_path, data, 1024 * KiB)
    assert chunk.member is not None
    cut = GzipMember(chunk.member.path, chunk.member.offset, chunk.member.length // 2, chunk.size)
    with pytest.raises(OSError, match="gave"):
        Payload((cut,), cut.size).read_all()
    archiver.finish(len(data), 0.0)


def paused_at(tmp_path: Path, behind: list[bool]) -> tuple[LogCapture, Sink]:
    """1000 KiB spool, nothing uploaded or archived: where does capture pause?"""
    budget = SpoolBudget(1000 * KiB)
    sink = Sink(budget)
    tmp_path.mkdir(exist_ok=True)
    (tmp_path / "chunks").mkdir()
    cap = LogCapture(
        tmp_path / "chunks", 64 * KiB, 5.0, sink, budget=budget, backlog=lambda: 2 if behind[0] else 0
    )
    feed(cap, b"z" * 2000 * KiB)
    return cap, sink


def test_while_the_store_is_behind_the_backlog_leaves_room_to_resume(tmp_path: Path) -> None:
    keeping_up, _ = paused_at(tmp_path / "a", [False])
    behind = [True]
    cap, sink = paused_at(tmp_path / "b", behind)
    assert cap.not_captured > 0 and keeping_up.not_captured > 0
    assert cap.total < keeping_up.total  # paused earlier: the reserve stays free
    assert cap.budget.limit - cap.budget.used() >= cap.budget.reserve(64 * KiB)
    sink.drain()  # the store catches up (chunks archived, into nothing, and uploaded)
    behind[0] = False
    feed(cap, b"after\n")
    cap.close()
    (gap,) = cap.gaps
    assert gap.at + gap.size == 2000 * KiB
    assert sink.log() == b"z" * gap.at + b"\n" + marker(gap.size, gap.reason) + b"after\n"


def test_result_archives_wait_for_room_but_one_always_goes_ahead() -> None:
    import threading

    budget = SpoolBudget(1_000_000)
    budget.hold(2_000_000)  # alone: goes ahead even over the limit, so no result is ever stuck
    budget.drop(2_000_000)
    budget.hold(600_000)
    second = threading.Thread(target=budget.hold, args=(600_000,), daemon=True)
    second.start()
    second.join(0.3)
    assert second.is_alive() and budget.used() == 600_000  # waits: both do not fit
    budget.drop(600_000)  # the first archive was stored and deleted
    second.join(5)
    assert not second.is_alive() and budget.used() == 600_000
    assert budget.peak == 2_000_000
