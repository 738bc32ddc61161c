"""Integrity where the ETag says nothing (issue 18): a server that neither verifies Content-MD5 nor
returns MD5 ETags (moto, behind a proxy that damages bodies or drops ETags; SSE-KMS, whose ETags are
not MD5 digests). A copy the store could not check is read back when cheap (one PUT from memory),
else recorded ``"verified": false`` in the manifest: a corrupt copy is never stored as verified."""

from __future__ import annotations

import hashlib
import json
import os
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import ACCESS_KEY, SECRET_KEY, S3Server, run_wrapper
from faultproxy import FaultProxy

from entrypoint.formats.layout import Layout
from entrypoint.formats.manifest import Entry, LogAccount, Manifest
from entrypoint.read.manifest import Manifests
from entrypoint.report import Reporter
from entrypoint.settings.sse import SSEConfig
from entrypoint.settings.store import Credentials, S3Endpoint, StoreConfig
from entrypoint.store import s3 as s3mod
from entrypoint.store.payload import Payload
from entrypoint.transfer.retry import Attempts, Backoff, RetryPolicy

MiB = 1024 * 1024
IDENTITY = ["--pipelinerun", "run-v", "--pipelinetask", "task-v"]
pytestmark = pytest.mark.timeout(180)


@pytest.fixture
def proxy(s3: S3Server) -> Iterator[FaultProxy]:
    with FaultProxy("127.0.0.1", s3.port) as p:
        yield p


def quick() -> Attempts:
    return Attempts(Backoff(), RetryPolicy(base=0.001, cap=0.002), Reporter(quiet=True))


def store(proxy: FaultProxy, bucket: str, sse: SSEConfig | None = None) -> s3mod.S3Store:
    cfg = StoreConfig(
        bucket=bucket,
        endpoint=S3Endpoint(proxy.netloc, False),
        credentials=Credentials(ACCESS_KEY, SECRET_KEY),
        region="us-east-1",
        sse=sse,
    )
    return s3mod.S3Store(cfg)


def gets(proxy: FaultProxy) -> int:
    return sum(1 for r in proxy.requests() if r.method == "GET")


def test_a_damaged_copy_under_sse_kms_is_read_back_and_sent_again(
    s3: S3Server, bucket: str, proxy: FaultProxy
) -> None:
    """Today: ETags are not compared under SSE-KMS, the damaged copy stays, and is called stored."""
    data = os.urandom(MiB)
    proxy.set_mode("corrupt", count=1)
    attempts = quick()
    stored = store(proxy, bucket, SSEConfig("kms")).put("kms.bin", Payload.of(data), "", attempts)
    assert proxy.stats().by_fault == {"corrupt": 1}  # the damage did happen
    assert s3.read(bucket, "kms.bin") == data
    assert stored.verified and attempts.retries == 1
    assert gets(proxy) == 2  # one read-back per PUT


def test_a_server_without_etags_gets_its_copies_read_back(s3: S3Server, bucket: str, proxy: FaultProxy) -> None:
    proxy.set_mode("no-etag")
    data = os.urandom(300_000)
    stored = store(proxy, bucket).put("plain.bin", Payload.of(data), "")
    assert stored.verified and gets(proxy) == 1
    assert s3.read(bucket, "plain.bin") == data


def test_what_cannot_be_read_back_cheaply_is_unverified(
    s3: S3Server, bucket: str, proxy: FaultProxy, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Over PART_SIZE, a streaming PUT or a multipart upload whose ETag says nothing is not read
    back (it would cost its size again): ``verified`` is False, never True by default."""
    monkeypatch.setattr(s3mod, "PART_SIZE", 5 * MiB)
    big = tmp_path / "big"
    big.write_bytes(os.urandom(6 * MiB))
    kms = store(proxy, bucket, SSEConfig("kms"))
    assert kms.put("stream.bin", Payload.of(big), "").verified is False
    monkeypatch.setattr(s3mod, "STREAM_PUT_MAX", 5 * MiB)  # multipart from here on
    assert kms.put("multi.bin", Payload.of(big), "").verified is False
    assert store(proxy, bucket).put("multi-plain.bin", Payload.of(big), "").verified is True  # md5-of-md5s-N
    assert gets(proxy) == 0
    proxy.set_mode("corrupt", count=1)
    attempts = quick()
    assert store(proxy, bucket).put("multi-damaged.bin", Payload.of(big), "", attempts).verified is True
    assert attempts.retries == 1 and s3.read(bucket, "multi-damaged.bin") == big.read_bytes()


def test_the_manifest_says_unverified_and_readers_take_old_and_new_manifests() -> None:
    layout = Layout("artifacts", "r", "t", "main")
    manifest = Manifest(layout, "b", LogAccount(0, 0), 0, 0)
    sha = "a" * 64
    entries = [
        Entry("artifacts/r/t/x.tgz", "result", True, 3, sha),
        Entry("artifacts/r/t/y.tgz", "result", True, 3, sha, verified=False),
    ]
    doc = manifest.to_dict(entries)
    assert [o.get("verified") for o in doc["objects"]] == [None, False]
    for data in (manifest.encode(entries), json.dumps({"objects": [{"key": "x.tgz", "size": 3, "sha256": sha}]}).encode()):
        found = Manifests()
        found.add("m", data, "artifacts/r/t/")
        assert found.problems == [] and found.expect("artifacts/r/t/x.tgz") is not None


def test_wrapper_under_sse_kms_never_stores_a_damaged_copy_as_verified(
    s3: S3Server, bucket: str, proxy: FaultProxy, tmp_path: Path
) -> None:
    """Every PUT's body damaged on the way for the first four: each small object is read back and
    sent again; the 9 MiB result (a streaming PUT) cannot be read back cheaply and is listed
    ``"verified": false``. Today: the damaged copies are stored and listed like good ones."""
    results = tmp_path / "results"
    results.mkdir()
    (results / "small").write_text("0.93\n")
    (results / "big").write_bytes(os.urandom(9 * MiB))  # random: its .tgz stays over 8 MiB
    proxy.set_mode("corrupt", count=4)
    env = s3.env(bucket, OBJECTSTORE_ENDPOINT=proxy.endpoint)
    argv = [*IDENTITY, "--sse", "kms", "--results-dir", str(results)]
    proc = run_wrapper([*argv, "--", sys.executable, "-c", "print('line ' * 50)"], env)
    assert proc.returncode == 0, proc.stderr.decode()
    assert proxy.stats().by_fault == {"corrupt": 4}
    prefix = "artifacts/run-v/task-v/"
    manifest = json.loads(s3.read(bucket, prefix + "main-manifest.json"))
    assert manifest["complete"] is True
    flags = {}
    for item in manifest["objects"]:
        stored = s3.read(bucket, item["key"])
        if item.get("verified", True):
            assert hashlib.sha256(stored).hexdigest() == item["sha256"], item["key"]
        flags[item["key"].removeprefix(prefix)] = item.get("verified", True)
    assert flags.pop("big.tgz") is False
    assert set(flags.values()) == {True}, flags  # every small one: read back, sent again if damaged
