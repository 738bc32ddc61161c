"""The ordered lane's read-ahead and the S3 store's single PUT with digests computed once.

Against the moto server of conftest (a recording HTTP pool in front of it) and against the secure
moto server, which checks SigV4 signatures and records the headers it received.
"""

from __future__ import annotations

import base64
import hashlib
import random
import threading
import uuid
from pathlib import Path
from typing import Any

import pytest
import urllib3
from conftest import ACCESS_KEY, SECRET_KEY, S3Server
from secureserver import SecureS3

from entrypoint.report import Reporter
from entrypoint.settings.store import Credentials, S3Endpoint, StoreConfig
from entrypoint.store import s3 as s3mod
from entrypoint.store.payload import Payload
from entrypoint.transfer.retry import Attempts, Backoff, RetryPolicy
from entrypoint.transfer.uploader import Job, Uploader

MiB = 1024 * 1024
WAIT = 20.0  # generous bound on waits between threads (no timing is measured)
pytestmark = pytest.mark.timeout(120)


def quick() -> Attempts:
    return Attempts(Backoff(), RetryPolicy(base=0.001, cap=0.002), Reporter(quiet=True))


def config(netloc: str, bucket: str, key: str = ACCESS_KEY, secret: str = SECRET_KEY) -> StoreConfig:
    return StoreConfig(
        bucket=bucket,
        endpoint=S3Endpoint(netloc, False),
        credentials=Credentials(key, secret),
        region="us-east-1",
    )


class Pool(urllib3.PoolManager):
    """A real HTTP pool that records PUTs, can damage one body, and runs a hook before each PUT."""

    def __init__(self, corrupt: int = 0) -> None:
        super().__init__(retries=False)
        self.puts: list[tuple[str, dict[str, str], int]] = []  # url, headers, body size
        self.corrupt = corrupt
        self.before_put: Any = None

    def urlopen(self, method: str, url: str, redirect: bool = True, **kw: Any) -> Any:  # type: ignore[override]
        body = kw.get("body")
        if method == "PUT":
            if self.before_put is not None:
                self.before_put(url)
            size = len(body) if isinstance(body, bytes) else -1
            self.puts.append((url, dict(kw.get("headers") or {}), size))
            if isinstance(body, bytes) and body and self.corrupt:
                self.corrupt -= 1
                kw["body"] = bytes([body[0] ^ 0xFF]) + body[1:]  # as if the network flipped a bit
        return super().urlopen(method, url, redirect=redirect, **kw)


def log_text(size: int, seed: int) -> bytes:
    rng = random.Random(seed)
    lines = []
    total = 0
    while total < size:
        line = f"{rng.randrange(10**9)} step output line {rng.random():.6f}\n".encode()
        lines.append(line)
        total += len(line)
    return b"".join(lines)[:size]


# -- the single PUT ---------------------------------------------------------------------------------


def test_single_put_signs_the_sha256_computed_once_and_sends_content_md5(
    s3: S3Server, bucket: str
) -> None:
    pool = Pool()
    store = s3mod.S3Store(config(s3.netloc, bucket), http_client=pool)
    data = log_text(3 * MiB + 5, seed=1)
    stored = store.put("one.log", Payload.of(data), "text/plain")
    assert s3.read(bucket, "one.log") == data
    assert stored.sha256 == hashlib.sha256(data).hexdigest()
    [(_url, headers, size)] = pool.puts
    assert size == len(data)
    assert headers["Content-MD5"] == base64.b64encode(hashlib.md5(data).digest()).decode()
    assert headers["x-amz-content-sha256"] == hashlib.sha256(data).hexdigest()
    assert s3.client().stat_object(bucket, "one.log").content_type == "text/plain"


def test_a_preloaded_payload_is_not_read_again(s3: S3Server, bucket: str, tmp_path: Path) -> None:
    """``preload`` keeps a small payload's bytes and digests: its file may go before the PUT."""
    store = s3mod.S3Store(config(s3.netloc, bucket))
    data = log_text(2 * MiB, seed=2)
    path = tmp_path / "chunk"
    path.write_bytes(data)
    payload = store.preload(Payload.of(path))
    path.unlink()
    stored = store.put("gone.log", payload, "")
    assert s3.read(bucket, "gone.log") == data
    assert stored.sha256 == hashlib.sha256(data).hexdigest()


def test_a_damaged_preloaded_body_is_detected_and_sent_again(s3: S3Server, bucket: str) -> None:
    """moto checks neither Content-MD5 nor the payload hash: the ETag comparison catches it."""
    pool = Pool(corrupt=1)
    store = s3mod.S3Store(config(s3.netloc, bucket), http_client=pool)
    data = log_text(MiB, seed=3)
    attempts = quick()
    store.put("damaged.log", store.preload(Payload.of(data)), "", attempts)
    assert s3.read(bucket, "damaged.log") == data
    assert attempts.retries == 1 and pool.corrupt == 0 and len(pool.puts) == 2


def test_a_preloaded_streaming_payload_keeps_its_file_and_is_byte_exact(
    s3: S3Server, bucket: str, tmp_path: Path
) -> None:
    """Over ``PART_SIZE`` only the digests are computed ahead; the body streams from the file."""
    store = s3mod.S3Store(config(s3.netloc, bucket))
    data = log_text(9 * MiB, seed=4)
    path = tmp_path / "big"
    path.write_bytes(data)
    payload = store.preload(Payload.of(path))
    assert payload.parts == (path,) and payload.digests is not None
    stored = store.put("big.log", payload, "")
    assert s3.read(bucket, "big.log") == data
    assert stored.sha256 == hashlib.sha256(data).hexdigest()


def test_single_put_passes_signature_checks(srv: SecureS3) -> None:
    bkt = srv.make_bucket(f"o-{uuid.uuid4().hex[:12]}")
    data = log_text(MiB + 1, seed=5)
    since = len(srv.records(srv.plain.port))
    with srv.enforce_auth():
        store = s3mod.S3Store(config(srv.plain.netloc, bkt, srv.admin_key, srv.admin_secret))
        store.put("signed.log", store.preload(Payload.of(data)), "", quick())
        store.put("signed-2.log", Payload.of(data[:1000]), "", quick())
    puts = [r for r in srv.records(srv.plain.port)[since:] if r.method == "PUT"]
    assert len(puts) == 2
    assert puts[0].headers["x-amz-content-sha256"] == hashlib.sha256(data).hexdigest()
    assert puts[0].headers["content-md5"] == base64.b64encode(hashlib.md5(data).digest()).decode()
    assert puts[0].access_key() == srv.admin_key
    assert srv.read(bkt, "signed.log") == data
    assert srv.read(bkt, "signed-2.log") == data[:1000]


# -- the ordered lane -------------------------------------------------------------------------------


def test_ordered_lane_reads_the_next_chunk_while_one_is_sent_and_stores_in_order(
    s3: S3Server, bucket: str, tmp_path: Path
) -> None:
    """Chunk 1 is prepared while chunk 0's PUT is held; no PUT starts before the chunk before it
    is stored (readable), and the chunks concatenated in key order are the log."""
    pool = Pool()
    store = s3mod.S3Store(config(s3.netloc, bucket), http_client=pool)
    log = log_text(6 * MiB + 123, seed=6)
    size = MiB
    pieces = [log[i : i + size] for i in range(0, len(log), size)]
    keys = [f"logs/main/{i:08d}.log" for i in range(len(pieces))]
    built = [threading.Event() for _ in pieces]
    seen_ahead: list[bool] = []
    order_ok: list[bool] = []

    def before_put(url: str) -> None:
        key = url.split(f"/{bucket}/", 1)[1]
        n = keys.index(key)
        if n > 0:  # the chunk before is stored already: a reader never sees a hole
            order_ok.append(s3.read(bucket, keys[n - 1]) == pieces[n - 1])
        if n == 0:  # hold chunk 0's request until chunk 1 has been read ahead
            seen_ahead.append(built[1].wait(WAIT))

    pool.before_put = before_put

    def build(n: int) -> Payload:
        path = tmp_path / f"{n:08d}.log"
        path.write_bytes(pieces[n])
        built[n].set()
        return Payload.of(path)

    uploader = Uploader(lambda: store, Reporter(quiet=True), policy=RetryPolicy(base=0.001, cap=0.002))
    uploader.start(preflight="off")
    for n, key in enumerate(keys):
        uploader.submit(Job(key, lambda n=n: build(n)), ordered=True)
    assert uploader.close(None) == []
    assert seen_ahead == [True]
    assert order_ok == [True] * (len(keys) - 1)
    assert [url.split(f"/{bucket}/", 1)[1] for url, _h, _s in pool.puts] == keys
    assert s3.keys(bucket, "logs/main/") == keys
    assert b"".join(s3.read(bucket, k) for k in keys) == log
    assert all(j.result is not None and j.prepared is None for j in uploader.jobs())


def test_a_chunk_that_cannot_be_read_ahead_fails_alone(s3: S3Server, bucket: str, tmp_path: Path) -> None:
    store = s3mod.S3Store(config(s3.netloc, bucket))
    uploader = Uploader(lambda: store, Reporter(quiet=True), policy=RetryPolicy(base=0.001, cap=0.002))
    uploader.start(preflight="off")
    jobs = [
        uploader.submit(Job("c/0", lambda: Payload.of(b"zero\n")), ordered=True),
        uploader.submit(Job("c/1", lambda: Payload.of(tmp_path / "vanished")), ordered=True),
        uploader.submit(Job("c/2", lambda: Payload.of(b"two\n")), ordered=True),
    ]
    missing = uploader.close(None)
    assert missing == [jobs[1]] and "cannot read" in jobs[1].error
    assert s3.keys(bucket, "c/") == ["c/0", "c/2"]
