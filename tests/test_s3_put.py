"""The S3 store's streaming single PUT (objects over 8 MiB, up to ``STREAM_PUT_MAX``).

Against the moto server of conftest, through the fault proxy (which counts requests per method),
and against the secure moto server (which checks signatures and records request headers).
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import ACCESS_KEY, REPO, SECRET_KEY, S3Server, clean_env
from faultproxy import Fault, FaultProxy
from secureserver import SecureS3

from entrypoint.report import Reporter
from entrypoint.settings.sse import SSEConfig
from entrypoint.settings.store import Credentials, S3Endpoint, StoreConfig
from entrypoint.store import StoreError
from entrypoint.store import s3 as s3mod
from entrypoint.store.payload import Payload
from entrypoint.transfer.retry import Attempts, Backoff, RetryPolicy

MiB = 1024 * 1024


def quick() -> Attempts:
    return Attempts(Backoff(), RetryPolicy(base=0.001, cap=0.002), Reporter(quiet=True))


def config(netloc: str, bucket: str, key: str = ACCESS_KEY, secret: str = SECRET_KEY, **kw: Any) -> StoreConfig:
    return StoreConfig(
        bucket=bucket,
        endpoint=S3Endpoint(netloc, False),
        credentials=Credentials(key, secret),
        region="us-east-1",
        **kw,
    )


def payload_of(tmp_path: Path, size: int, seed: int = 0) -> tuple[Payload, bytes]:
    """Bytes in memory followed by a spool file, as the uploader builds them."""
    data = random.Random(seed).randbytes(size)
    (tmp_path / "tail").write_bytes(data[1000:])
    return Payload.of(data[:1000], tmp_path / "tail"), data


@pytest.fixture
def proxy(s3: S3Server) -> Iterator[FaultProxy]:
    with FaultProxy("127.0.0.1", s3.port) as p:
        yield p


def test_30_mib_goes_up_in_one_put_byte_exact(
    s3: S3Server, bucket: str, proxy: FaultProxy, tmp_path: Path
) -> None:
    store = s3mod.S3Store(config(proxy.netloc, bucket))
    payload, data = payload_of(tmp_path, 30 * MiB + 7)
    stored = store.put("big/one.tgz", payload, "application/gzip")
    assert dict(proxy.stats().by_method) == {"PUT": 1}
    assert s3.read(bucket, "big/one.tgz") == data
    assert (stored.size, stored.sha256) == (len(data), hashlib.sha256(data).hexdigest())
    stat = s3.client().stat_object(bucket, "big/one.tgz")
    assert stat.content_type == "application/gzip"
    assert (stat.etag or "").strip('"') == hashlib.md5(data).hexdigest()


def test_above_the_streaming_limit_is_multipart(
    s3: S3Server, bucket: str, proxy: FaultProxy, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(s3mod, "STREAM_PUT_MAX", 12 * MiB)
    store = s3mod.S3Store(config(proxy.netloc, bucket))
    payload, data = payload_of(tmp_path, 12 * MiB + 1)
    store.put("multi.bin", payload, "")
    assert dict(proxy.stats().by_method) == {"POST": 2, "PUT": 2}  # create, 2 parts, complete
    assert s3.read(bucket, "multi.bin") == data


@pytest.mark.parametrize("fault", ["reset", "close", 503, 500])
def test_a_failed_streaming_put_is_sent_again_from_a_fresh_reader(
    s3: S3Server, bucket: str, proxy: FaultProxy, tmp_path: Path, fault: Fault
) -> None:
    """The proxy fails the next request as its body streams in: the retry re-reads the payload."""
    store = s3mod.S3Store(config(proxy.netloc, bucket))
    payload, data = payload_of(tmp_path, 20 * MiB, seed=3)
    proxy.fail_next(1, fault)
    attempts = quick()
    stored = store.put("retried.bin", payload, "", attempts)
    assert s3.read(bucket, "retried.bin") == data
    assert stored.sha256 == hashlib.sha256(data).hexdigest()
    assert attempts.retries == 1
    assert [(r.method, r.fault is not None) for r in proxy.requests()] == [("PUT", True), ("PUT", False)]


def test_a_source_that_shrank_is_a_permanent_error(s3: S3Server, bucket: str, tmp_path: Path) -> None:
    path = tmp_path / "shrinks"
    path.write_bytes(b"x" * (10 * MiB))
    payload = Payload.of(path)
    path.write_bytes(b"x" * (9 * MiB))
    with pytest.raises(StoreError) as info:
        s3mod.S3Store(config(s3.netloc, bucket)).put("shrunk.bin", payload, "", quick())
    assert (info.value.code, info.value.transient) == ("SourceChanged", False)


# -- against a server that checks signatures and records headers ------------------------------------


def test_streaming_put_is_signed_with_the_payload_hash_and_carries_sse(
    srv: SecureS3, bkt: str, tmp_path: Path
) -> None:
    payload, data = payload_of(tmp_path, 10 * MiB, seed=5)
    cfg = config(srv.plain.netloc, bkt, srv.admin_key, srv.admin_secret, sse=SSEConfig("s3"))
    since = len(srv.records(srv.plain.port))
    with srv.enforce_auth():
        s3mod.S3Store(cfg).put("sse.bin", payload, "", quick())
    puts = [r for r in srv.records(srv.plain.port)[since:] if r.method == "PUT"]
    assert len(puts) == 1
    headers = puts[0].headers
    assert headers["x-amz-content-sha256"] == hashlib.sha256(data).hexdigest()
    assert "transfer-encoding" not in headers  # Content-Length framing, not chunked
    assert headers["x-amz-server-side-encryption"] == "AES256"
    assert puts[0].access_key() == srv.admin_key
    assert srv.read(bkt, "sse.bin") == data
    assert srv.stat_headers(bkt, "sse.bin").get("x-amz-server-side-encryption") == "AES256"


def test_wrong_secret_is_permanent_after_one_request(srv: SecureS3, bkt: str, tmp_path: Path) -> None:
    payload, _data = payload_of(tmp_path, 10 * MiB, seed=6)
    cfg = config(srv.plain.netloc, bkt, srv.admin_key, "not-the-secret")
    since = len(srv.records(srv.plain.port))
    with srv.enforce_auth(), pytest.raises(StoreError) as info:
        s3mod.S3Store(cfg).put("denied.bin", payload, "", quick())
    error = info.value
    assert (error.code, error.transient, error.whole_store) == ("SignatureDoesNotMatch", False, True)
    assert "not-the-secret" not in str(error)
    assert [r.method for r in srv.records(srv.plain.port)[since:]] == ["PUT"]
    assert "denied.bin" not in srv.keys(bkt)


# -- memory ---------------------------------------------------------------------------------------

MEMORY_PROBE = """
import json, sys
from pathlib import Path
import psutil
from entrypoint.settings.store import Credentials, S3Endpoint, StoreConfig
from entrypoint.store.payload import Payload
from entrypoint.store.s3 import S3Store

netloc, bucket, key, secret, path = sys.argv[1:]
store = S3Store(StoreConfig(bucket=bucket, endpoint=S3Endpoint(netloc, False),
                            credentials=Credentials(key, secret), region="us-east-1"))
store.put("warm-up", Payload.of(b"x"), "")
before = psutil.Process().memory_info().rss  # after imports and the first request
stored = store.put("huge.bin", Payload.of(Path(path)), "")
# the kernel's high-water mark of this process image (ru_maxrss would include the forked parent's)
status = Path("/proc/self/status").read_text()
peak = int(status.split("VmHWM:")[1].split()[0]) * 1024
print(json.dumps({"before": before, "peak": peak, "sha256": stored.sha256}))
"""


def test_a_200_mib_streaming_put_keeps_memory_flat(s3: S3Server, bucket: str, tmp_path: Path) -> None:
    path = tmp_path / "huge"
    digest = hashlib.sha256()
    with path.open("wb") as out:
        for _ in range(200):
            block = os.urandom(MiB)
            digest.update(block)
            out.write(block)
    proc = subprocess.run(
        [sys.executable, "-c", MEMORY_PROBE, s3.netloc, bucket, ACCESS_KEY, SECRET_KEY, str(path)],
        cwd=REPO,
        env=clean_env(),
        capture_output=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr.decode()
    got = json.loads(proc.stdout)
    try:
        assert got["sha256"] == digest.hexdigest()
        assert hashlib.sha256(s3.read(bucket, "huge.bin")).hexdigest() == digest.hexdigest()
        # holding the object would add 200 MiB; streaming adds a few 1 MiB reads and buffers
        assert got["peak"] - got["before"] < 40 * MiB, got
        assert got["peak"] < 100 * MiB, got
    finally:
        s3.client().remove_object(bucket, "huge.bin")  # moto keeps objects in memory
