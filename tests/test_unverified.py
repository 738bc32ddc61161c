"""Integrity where the ETag says nothing (issue 18): a server that neither verifies Content-MD5 nor
returns MD5 ETags (moto, behind a proxy that damages bodies or drops ETags; under SSE-KMS an ETag that
differs is no proof of damage: real servers return no MD5 then). A copy the store could not check is
read back when cheap (one PUT from memory), else recorded ``"verified": false`` in the manifest: a
corrupt copy is never stored as verified."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
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
READER = [sys.executable, "-m", "entrypoint.read"]
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
    assert gets(proxy) == 1  # the damaged copy read back; the second PUT's ETag is the MD5 sent


def test_a_server_without_etags_gets_its_copies_read_back(s3: S3Server, bucket: str, proxy: FaultProxy) -> None:
    proxy.set_mode("no-etag")
    data = os.urandom(300_000)
    stored = store(proxy, bucket).put("plain.bin", Payload.of(data), "")
    assert stored.verified and gets(proxy) == 1
    assert s3.read(bucket, "plain.bin") == data


def test_what_cannot_be_read_back_cheaply_is_unverified(
    s3: S3Server, bucket: str, proxy: FaultProxy, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Over PART_SIZE, a streaming PUT whose ETag says nothing is not read back (it would cost its
    size again): ``verified`` is False, never True by default. A multipart upload is checked by
    its ETag (the MD5 of the parts' MD5s, ``-N``), a damaged part sent again."""
    monkeypatch.setattr(s3mod, "PART_SIZE", 5 * MiB)
    big = tmp_path / "big"
    big.write_bytes(os.urandom(6 * MiB))
    kms = store(proxy, bucket, SSEConfig("kms"))
    assert kms.put("kms-md5.bin", Payload.of(big), "").verified is True  # moto's ETag: the MD5 sent
    proxy.set_mode("no-etag")  # as a real KMS server: no MD5 to compare
    assert kms.put("stream.bin", Payload.of(big), "").verified is False
    proxy.set_mode("pass")
    monkeypatch.setattr(s3mod, "STREAM_PUT_MAX", 5 * MiB)  # multipart from here on
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


@pytest.mark.parametrize("damaged", ["small", "big"])
def test_wrapper_under_sse_kms_never_stores_a_damaged_copy_as_verified(
    s3: S3Server, bucket: str, proxy: FaultProxy, tmp_path: Path, damaged: str
) -> None:
    """small: the first four data PUTs damaged on the way: each small object is read back and sent
    again. big: the 9 MiB result's PUT damaged (a streaming PUT: no cheap read-back): it is listed
    ``"verified": false``, and the reader's SHA-256 check refuses it. Today: the damaged copies are
    stored and listed like good ones."""
    results = tmp_path / "results"
    results.mkdir()
    (results / "small").write_text("0.93\n")
    if damaged == "big":
        (results / "big").write_bytes(os.urandom(9 * MiB))  # random: its .tgz stays over 8 MiB
        proxy.set_mode("corrupt", count=1, match="big.tgz")
    else:
        proxy.set_mode("corrupt", count=4)
    env = s3.env(bucket, OBJECTSTORE_ENDPOINT=proxy.endpoint)
    argv = [*IDENTITY, "--sse", "kms", "--results-dir", str(results)]
    proc = run_wrapper([*argv, "--", sys.executable, "-c", "print('line ' * 50)"], env)
    assert proc.returncode == 0, proc.stderr.decode()
    assert proxy.stats().by_fault == {"corrupt": 1 if damaged == "big" else 4}
    prefix = "artifacts/run-v/task-v/"
    manifest = json.loads(s3.read(bucket, prefix + "main-manifest.json"))
    assert manifest["complete"] is True
    unverified = []
    for item in manifest["objects"]:
        intact = hashlib.sha256(s3.read(bucket, item["key"])).hexdigest() == item["sha256"]
        assert intact or item.get("verified") is False, item["key"]
        if item.get("verified", True) is not True:
            unverified.append(item["key"].removeprefix(prefix))
    if damaged == "small":
        assert unverified == []  # every small one: read back, sent again when damaged
        return
    assert unverified == ["big.tgz"]
    got = subprocess.run(
        [*READER, "get", "run-v/task-v", "big", "-o", str(tmp_path / "big.out")], env=env, capture_output=True
    )
    assert got.returncode == 4, got.stderr  # integrity: the reader checks the manifest's SHA-256
    assert not (tmp_path / "big.out").exists()
