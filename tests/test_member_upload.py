"""Log chunks sent from their gzip member in the log archive (raw file already deleted)."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from benchmarks.data import log_text
from conftest import S3Server
from faultproxy import FaultProxy
from test_spool import archived_chunks
from test_uploader import RecordingPool, quick, store_config

from entrypoint.store import s3 as s3mod
from entrypoint.store.payload import Payload

MiB = 1024 * 1024


@pytest.fixture
def proxy(s3: S3Server) -> Iterator[FaultProxy]:
    with FaultProxy("127.0.0.1", s3.port) as p:
        yield p


def test_chunks_sent_from_their_members_read_back_byte_exact(
    s3: S3Server, bucket: str, tmp_path: Path
) -> None:
    data = log_text(2 * MiB + 777, seed=5)
    chunks, archiver = archived_chunks(tmp_path, data, MiB)
    assert not any(os.path.exists(c.path) for c in chunks) and all(c.member for c in chunks)
    store = s3mod.S3Store(store_config(s3, bucket))
    for c in chunks:
        stored = store.put(f"logs/{c.seq:08d}.log", Payload((c,), c.size), "text/plain", quick())
        assert stored.size == c.size
    back = [s3.read(bucket, f"logs/{c.seq:08d}.log") for c in chunks]
    assert [len(b) for b in back] == [MiB, MiB, 777]
    assert b"".join(back) == data
    archiver.finish(len(data), 0.0)


def test_a_member_upload_reset_mid_request_is_sent_again_whole(
    s3: S3Server, bucket: str, proxy: FaultProxy, tmp_path: Path
) -> None:
    data = log_text(MiB, seed=6)
    (chunk,), archiver = archived_chunks(tmp_path, data, MiB)
    assert not os.path.exists(chunk.path) and chunk.member is not None
    store = s3mod.S3Store(store_config(s3, bucket, netloc=proxy.netloc))
    proxy.fail_next(2, "reset")
    attempts = quick()
    stored = store.put("logs/00000000.log", Payload((chunk,), chunk.size), "text/plain", attempts)
    assert attempts.retries >= 2
    assert s3.read(bucket, "logs/00000000.log") == data
    assert stored.sha256 == hashlib.sha256(data).hexdigest()
    archiver.finish(len(data), 0.0)


def test_a_streamed_member_upload_reset_mid_request_rereads_the_member(
    s3: S3Server, bucket: str, proxy: FaultProxy, tmp_path: Path
) -> None:
    data = log_text(11 * MiB + 5, seed=7)  # over 8 MiB: one streaming PUT, read from the payload
    (chunk,), archiver = archived_chunks(tmp_path, data, 12 * MiB)
    assert not os.path.exists(chunk.path) and chunk.member is not None
    store = s3mod.S3Store(store_config(s3, bucket, netloc=proxy.netloc))
    proxy.fail_next(1, "reset")
    attempts = quick()
    stored = store.put("logs/big.log", Payload((chunk,), chunk.size), "text/plain", attempts)
    assert attempts.retries == 1
    assert s3.read(bucket, "logs/big.log") == data
    assert stored.sha256 == hashlib.sha256(data).hexdigest()
    archiver.finish(len(data), 0.0)


def test_a_damaged_multipart_member_upload_is_detected_and_sent_again(
    s3: S3Server, bucket: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(s3mod, "PART_SIZE", 5 * MiB)
    monkeypatch.setattr(s3mod, "STREAM_PUT_MAX", 5 * MiB)
    data = log_text(11 * MiB + 5, seed=7)
    (chunk,), archiver = archived_chunks(tmp_path, data, 12 * MiB)
    assert not os.path.exists(chunk.path) and chunk.member is not None
    pool = RecordingPool(corrupt=1)  # one part's body damaged on the way: the ETag check catches it
    store = s3mod.S3Store(store_config(s3, bucket), http_client=pool)
    attempts = quick()
    store.put("logs/big.log", Payload((chunk,), chunk.size), "text/plain", attempts)
    assert pool.corrupt == 0 and attempts.retries == 1
    assert s3.read(bucket, "logs/big.log") == data
    archiver.finish(len(data), 0.0)


def test_an_attempt_reading_the_raw_file_holds_it_and_the_next_attempt_reads_the_member(
    tmp_path: Path,
) -> None:
    from conftest import wait_until

    from entrypoint.spool.archiver import LogArchiver
    from entrypoint.spool.budget import SpoolBudget
    from entrypoint.spool.capture import LogCapture
    from entrypoint.spool.chunk import Chunk

    data = log_text(300_000, seed=9)
    budget = SpoolBudget(1 << 30)
    chunks: list[Chunk] = []
    (tmp_path / "chunks").mkdir()
    cap = LogCapture(tmp_path / "chunks", 1 << 20, 5.0, chunks.append, budget=budget)
    cap.write(memoryview(data))
    cap.close()
    (chunk,) = chunks
    payload = Payload((chunk,), chunk.size)
    first = payload.open()  # attempt 1 starts before the chunk is archived: reads the raw file
    assert first.read(1000) == data[:1000]
    archiver = LogArchiver(tmp_path, "main.log", budget)
    archiver.add(chunk)
    wait_until(lambda: chunk.archived, timeout=30, what="archiving")
    assert os.path.exists(chunk.path)  # held by attempt 1: not deleted under it
    assert first.read(10**6) == data[1000:]
    first.close()  # attempt 1 failed (say): the raw file is not needed any more
    assert not os.path.exists(chunk.path) and chunk.member is not None
    assert budget.used() == chunk.member.length  # only the compressed copy is left
    assert payload.read_all() == data  # attempt 2 decompresses the member
    assert payload.read_all() == data  # and so does attempt 3
    archiver.finish(len(data), 0.0)


def test_the_plain_log_goes_up_multipart_from_the_members_equal_to_the_archives_member(
    s3: S3Server, bucket: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """--tekton-results-logs: ``LogArchiver.plain()`` is the whole log decompressed from the
    chunks' members; over ``STREAM_PUT_MAX`` (5 GiB is far above it) the store's multipart path
    sends it. Both payloads (plain and archive) may be built, in either order, from two workers."""
    from conftest import untar_single

    monkeypatch.setattr(s3mod, "PART_SIZE", 5 * MiB)
    monkeypatch.setattr(s3mod, "STREAM_PUT_MAX", 5 * MiB)
    data = log_text(13 * MiB + 11, seed=8)
    chunks, archiver = archived_chunks(tmp_path, data, 3 * MiB)
    assert len(chunks) == 5 and not any(os.path.exists(c.path) for c in chunks)
    plain = archiver.plain()
    archive = archiver.finish(len(data), 0.0)
    assert archiver.plain().size == plain.size == len(data)  # asked again: the same payload
    pool = RecordingPool()
    store = s3mod.S3Store(store_config(s3, bucket), http_client=pool)
    stored = store.put("logs/ns/r/uid/step-main.log", plain, "text/plain", quick())
    assert stored.sha256 == hashlib.sha256(data).hexdigest()
    assert sum("uploadId=" in url and method == "PUT" for method, url, _, _ in pool.seen) == 3  # 3 parts
    assert s3.read(bucket, "logs/ns/r/uid/step-main.log") == data
    assert untar_single(archive.read_all()) == ("main.log", data)
