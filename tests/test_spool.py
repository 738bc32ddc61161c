"""The capture's spool budget: pause at the limit, exact markers, resume, write errors, backlog."""

from __future__ import annotations

import resource
from pathlib import Path

import pytest

from entrypoint.capture import MARKER_PREFIX, Chunk, LogCapture, SpoolBudget

KiB = 1024


class Sink:
    """Collects sealed chunks; ``drain`` plays uploader and archiver for what was sealed so far."""

    def __init__(self, budget: SpoolBudget) -> None:
        self.budget = budget
        self.chunks: list[Chunk] = []
        self.contents: list[bytes] = []

    def __call__(self, chunk: Chunk) -> None:
        self.chunks.append(chunk)
        self.contents.append(chunk.path.read_bytes())

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


def test_budget_reserves_the_archive_copy_only_while_a_chunk_is_neither_uploaded_nor_archived(
    tmp_path: Path,
) -> None:
    budget = SpoolBudget(1 << 30)
    paths = [tmp_path / "a", tmp_path / "b"]
    for p in paths:
        p.write_bytes(b"x" * 10_000)
    budget.written = 20_000
    a, b = (Chunk(i, p, 10_000, budget) for i, p in enumerate(paths))
    reserve = 20_000 + 20 + 1024
    assert budget.used() == 20_000 + reserve
    a.done(uploaded=True)  # its archive copy will replace it: no reserve
    assert budget.used() == 20_000 + 10_000 + 10 + 1024
    budget.archived_out = 4_000  # b archived first: its real compressed size counts
    b.done(archived=True)
    assert budget.used() == 20_000 + 4_000
    budget.archived_out = 7_000  # a archived too: its file goes
    a.done(archived=True)
    assert not paths[0].exists() and paths[1].exists()
    assert budget.used() == 10_000 + 7_000
    b.done(uploaded=True)
    assert not paths[1].exists()
    assert budget.used() == 7_000
    assert budget.peak == 20_000 + reserve
