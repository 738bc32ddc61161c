"""The store-facing end-to-end tests against moto, MinIO and SeaweedFS (issue 15, part 1).

One matrix: every test takes ``real_s3`` (``params=["moto", "minio", "seaweedfs"]``, servers from
``realservers.py``) and a fresh bucket on it. The wrapper and the reader run as subprocesses;
every object is read back from the server and compared byte for byte. Where the servers behave
differently the test asserts each server's documented behaviour (``Quirks``, tests/REAL_SERVERS.md).
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import urllib3
from conftest import (
    ACCESS_KEY,
    SECRET_KEY,
    WRAPPER,
    S3Server,
    StoreView,
    run_wrapper,
    untar_single,
    wait_until,
)
from faultproxy import FaultProxy
from realservers import kind_of, minio_server, new_bucket, quirks_of, seaweedfs_server
from test_read import IDENTITY, PREFIX, READER, Collector, gen, gen_cmd, read, wrap

from entrypoint.report import Reporter
from entrypoint.settings.store import Credentials, S3Endpoint, StoreConfig
from entrypoint.store import s3 as s3mod
from entrypoint.store.payload import Payload
from entrypoint.transfer.retry import Attempts, Backoff, RetryPolicy

PY = sys.executable
MiB = 1024 * 1024

pytestmark = [pytest.mark.peers, pytest.mark.timeout(600)]


@pytest.fixture
def view(real_s3: S3Server) -> StoreView:
    """A fresh bucket on the server under test, as the wrapper and the tests see it."""
    name = new_bucket(real_s3)
    return StoreView(kind_of(real_s3), real_s3.env(name), name, real_s3, None)


def manifest(view: StoreView, prefix: str = PREFIX, step: str = "main") -> dict[str, Any]:
    doc: dict[str, Any] = json.loads(view.read(f"{prefix}{step}-manifest.json"))
    return doc


def assert_manifest_matches_store(view: StoreView, prefix: str = PREFIX) -> None:
    """Complete, and every object it lists is stored with that size and SHA-256."""
    doc = manifest(view, prefix)
    assert doc["complete"] is True and doc["missing"] == [], doc
    for entry in doc["objects"]:
        data = view.read(entry["key"])
        assert (len(data), hashlib.sha256(data).hexdigest()) == (entry["size"], entry["sha256"]), entry["key"]
    assert {e["key"] for e in doc["objects"]} == set(view.keys(prefix)) - {f"{prefix}main-manifest.json"}


def chunks(view: StoreView, prefix: str = PREFIX) -> bytes:
    keys = view.keys(f"{prefix}logs/main/")
    assert keys == [f"{prefix}logs/main/{i:08d}.log" for i in range(len(keys))]  # no gap
    return b"".join(view.read(k) for k in keys)


# -- bytes in, the same bytes out ----------------------------------------------------------------


def test_logs_and_results_are_byte_exact(view: StoreView, tmp_path: Path) -> None:
    log = gen(3 * MiB + 5, seed=3)  # binary, several chunks, no trailing newline
    results = {"model": gen(5 * MiB, seed=4), "accuracy": b"0.97", "empty": b"", "modèle-模型": b"u\n"}
    proc = wrap(view, tmp_path, gen_cmd(len(log), seed=3), results, "--log-chunk-size", "1MiB")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == log
    assert chunks(view) == log
    assert len(view.keys(PREFIX + "logs/main/")) == 4
    assert untar_single(view.read(PREFIX + "main-log.tgz")) == ("main.log", log)
    for name, content in results.items():
        assert untar_single(view.read(f"{PREFIX}{name}.tgz")) == (name, content)
    assert_manifest_matches_store(view)


def test_a_20mib_log_and_a_100mib_result(view: StoreView, tmp_path: Path) -> None:
    """The 100 MiB result archive goes up as one streaming PUT; the multipart path is below."""
    log = gen(20 * MiB, seed=11)
    results = tmp_path / "results"
    results.mkdir()
    big = random.Random(12).randbytes(100 * MiB)
    (results / "weights").write_bytes(big)
    proc = run_wrapper(
        [*IDENTITY, "--results-dir", str(results), "-q", "--", *gen_cmd(len(log), seed=11)],
        view.env,
        timeout=500,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == log
    assert chunks(view) == log
    assert untar_single(view.read(PREFIX + "main-log.tgz")) == ("main.log", log)
    assert untar_single(view.read(PREFIX + "weights.tgz")) == ("weights", big)
    assert_manifest_matches_store(view)


class RecordingPool(urllib3.PoolManager):
    """A real HTTP pool that records each request's answer, and can damage one body on purpose."""

    def __init__(self, corrupt: int = 0, **kw: Any) -> None:
        super().__init__(**kw)
        self.corrupt = corrupt
        self.answers: list[tuple[str, str, int, bytes]] = []

    def urlopen(self, method: str, url: str, redirect: bool = True, **kw: Any) -> Any:  # type: ignore[override]
        body = kw.get("body")
        if method == "PUT" and isinstance(body, bytes) and body and self.corrupt:
            self.corrupt -= 1
            kw["body"] = bytes([body[0] ^ 0xFF]) + body[1:]  # as if the network flipped bits
        response = super().urlopen(method, url, redirect=redirect, **kw)
        data = response.data if kw.get("preload_content", True) else b""
        self.answers.append((method, url, response.status, data or b""))
        return response


def store_for(server: S3Server, bucket: str, pool: urllib3.PoolManager | None = None) -> s3mod.S3Store:
    cfg = StoreConfig(
        bucket=bucket,
        endpoint=S3Endpoint(server.netloc, False),
        credentials=Credentials(ACCESS_KEY, SECRET_KEY),
        region="us-east-1",
        create_bucket=False,
    )
    return s3mod.S3Store(cfg, http_client=pool)


def attempts() -> Attempts:
    return Attempts(Backoff(), RetryPolicy(base=0.01, cap=0.05), Reporter(quiet=True))


@pytest.fixture
def small_parts(monkeypatch: pytest.MonkeyPatch) -> None:
    """5 MiB parts, and multipart from there on: the multipart path without gigabytes."""
    monkeypatch.setattr(s3mod, "PART_SIZE", 5 * MiB)
    monkeypatch.setattr(s3mod, "STREAM_PUT_MAX", 5 * MiB)


def test_multipart_upload_is_byte_exact_and_its_etag_checked(
    real_s3: S3Server, view: StoreView, tmp_path: Path, small_parts: None
) -> None:
    data = random.Random(5).randbytes(12 * MiB + 3)
    (tmp_path / "big").write_bytes(data)
    pool = RecordingPool()
    store = store_for(real_s3, view.bucket, pool)
    tries = attempts()
    stored = store.put("big.bin", Payload.of(tmp_path / "big"), "application/gzip", tries)
    assert view.read("big.bin") == data
    assert stored.sha256 == hashlib.sha256(data).hexdigest()
    parts = [a for a in pool.answers if a[0] == "PUT" and "partNumber=" in a[1]]
    assert [status for _m, _u, status, _d in parts] == [200, 200, 200]
    assert tries.retries == 0  # the server's multipart ETag is md5(part md5s)-N, as S3's
    assert not store.trust_server_checksums


# -- integrity: a body damaged on the way ----------------------------------------------------------


@pytest.mark.parametrize("size", [100_000, 11 * MiB])
def test_a_body_damaged_in_flight_is_refused_by_the_server_or_caught_by_the_etag(
    real_s3: S3Server, view: StoreView, tmp_path: Path, small_parts: None, size: int
) -> None:
    """MinIO and SeaweedFS check Content-MD5 and the signed SHA-256 themselves: the damaged request
    is refused (400 BadDigest / XAmzContentSHA256Mismatch) with the wrapper's own ETag check turned
    off. moto checks neither; there the ETag comparison is what catches it."""
    data = random.Random(size).randbytes(size)
    (tmp_path / "data").write_bytes(data)
    pool = RecordingPool(corrupt=1)
    store = store_for(real_s3, view.bucket, pool)
    quirks = quirks_of(real_s3)
    store.trust_server_checksums = quirks.checks_content_md5  # the server's check alone
    tries = attempts()
    store.put("damaged.bin", Payload.of(tmp_path / "data"), "", tries)
    assert pool.corrupt == 0  # the damage did happen
    assert view.read("damaged.bin") == data
    assert tries.retries == 1
    first = next(a for a in pool.answers if a[0] == "PUT")
    if quirks.checks_content_md5:
        assert first[2] == 400, first
        assert any(code in first[3] for code in (b"BadDigest", b"XAmzContentSHA256Mismatch")), first[3]
    else:
        assert first[2] == 200  # accepted: the ETag (MD5 of the damaged bytes) gave it away


def test_the_wrapper_sends_again_a_body_damaged_in_flight(
    real_s3: S3Server, view: StoreView, tmp_path: Path
) -> None:
    """End to end through the fault proxy, which inverts the first body byte of the first PUT of
    one result (tests/faultproxy.py ``corrupt``): MinIO and SeaweedFS refuse that PUT themselves
    (400: Content-MD5 / signed SHA-256); moto stores it, and the wrapper's ETag check catches it.
    Either way the wrapper sends it again, and the stored result is byte-exact."""
    model = gen(MiB, seed=51)
    with FaultProxy("127.0.0.1", real_s3.port) as proxy:
        proxy.set_mode("corrupt", count=1, match="model.tgz")
        env = {**view.env, "OBJECTSTORE_ENDPOINT": proxy.endpoint}
        proxied = StoreView(view.kind, env, view.bucket, real_s3, None)
        proc = wrap(proxied, tmp_path, ["true"], {"model": model})
        puts = [(r.fault, r.status) for r in proxy.requests() if r.method == "PUT" and "model.tgz" in r.target]
    assert proc.returncode == 0, proc.stderr
    first = 400 if quirks_of(real_s3).checks_content_md5 else 200
    assert puts == [("corrupt", first), (None, 200)], puts
    assert untar_single(view.read(PREFIX + "model.tgz")) == ("model", model)
    assert_manifest_matches_store(view)
    assert json.loads(view.read(PREFIX + "main-summary.json"))["upload_retries"] == 1


# -- the bucket, preflight, credentials ------------------------------------------------------------


def test_a_missing_bucket_is_created_or_refused_in_one_line(real_s3: S3Server, tmp_path: Path) -> None:
    name = f"new-{random.Random().getrandbits(40):010x}"
    proc = run_wrapper(
        [*IDENTITY, "--results-dir", str(tmp_path), "--preflight", "strict", "-q", "--", "echo", "hi"],
        real_s3.env(name),
    )
    assert proc.returncode == 0, proc.stderr
    assert real_s3.client().bucket_exists(name)
    assert real_s3.read(name, PREFIX + "logs/main/00000000.log") == b"hi\n"

    other = name + "-no"
    proc = run_wrapper(
        [*IDENTITY, "--results-dir", str(tmp_path), "--preflight", "strict", "--", "echo", "hi"],
        real_s3.env(other, OBJECTSTORE_CREATE_BUCKET="false"),
    )
    lines = proc.stderr.decode().splitlines()
    assert proc.returncode == 2 and proc.stdout == b""  # checked before COMMAND: not run
    assert len(lines) == 1 and "NoSuchBucket" in lines[0] and "--create-bucket" in lines[0], lines
    assert not real_s3.client().bucket_exists(other)

    # No preflight: SeaweedFS would create the bucket on the first PUT by itself (autoCreateBucket);
    # --no-create-bucket still means no bucket is made, on every server.
    proc = run_wrapper(
        [*IDENTITY, "--results-dir", str(tmp_path), "--preflight", "off", "--", "echo", "hi"],
        real_s3.env(other, OBJECTSTORE_CREATE_BUCKET="false"),
    )
    err = proc.stderr.decode()
    assert (proc.returncode, proc.stdout) == (74, b"hi\n"), err
    causes = [line for line in err.splitlines() if "NoSuchBucket: bucket" in line]
    assert len(causes) == 1 and "--create-bucket" in causes[0], err
    assert not real_s3.client().bucket_exists(other)


@pytest.mark.parametrize("preflight", ["warn", "strict"])
def test_wrong_credentials_are_one_clear_line_without_a_retry_storm(
    real_s3: S3Server, view: StoreView, tmp_path: Path, preflight: str
) -> None:
    """MinIO and SeaweedFS refuse a wrong secret key. moto's server accepts any credentials (it
    checks none unless told to: tests/test_faults.py covers that with an IAM user); there the step
    is simply stored, which this test asserts too, so the difference stays visible."""
    marker = tmp_path / "ran"
    results = tmp_path / "results"
    results.mkdir()
    for i in range(5):
        (results / f"r{i}").write_bytes(b"x" * 10)
    with FaultProxy("127.0.0.1", real_s3.port) as proxy:
        env = {
            **view.env,
            "OBJECTSTORE_ENDPOINT": proxy.endpoint,
            "OBJECTSTORE_SECRET_KEY": "wrong-secret-do-not-print",
        }
        program = f"import pathlib; print('working', flush=True); pathlib.Path({str(marker)!r}).touch()"
        proc = run_wrapper(
            [*IDENTITY, "--results-dir", str(results), "--preflight", preflight, "--", PY, "-c", program],
            env,
            timeout=120,
        )
        requests = proxy.stats().requests
    err = proc.stderr.decode()
    assert "wrong-secret-do-not-print" not in err
    if not quirks_of(real_s3).checks_signatures:
        assert proc.returncode == 0, err
        assert untar_single(view.read(PREFIX + "r0.tgz")) == ("r0", b"x" * 10)
        return
    causes = [line for line in err.splitlines() if "check --secret-key" in line]
    assert len(causes) == 1, err  # the cause and the fix, in one line
    assert "SignatureDoesNotMatch" in causes[0]
    assert requests == 1, err  # the preflight alone: uploads waited for its verdict (no retry storm)
    if preflight == "strict":
        assert (proc.returncode, proc.stdout, marker.exists()) == (2, b"", False)
        assert "COMMAND not started" in causes[0]
    else:
        assert (proc.returncode, proc.stdout, marker.exists()) == (74, b"working\n", True)


def test_unknown_access_key_is_one_clear_line(real_s3: S3Server, view: StoreView, tmp_path: Path) -> None:
    env = {**view.env, "OBJECTSTORE_ACCESS_KEY": "AKIANOTAREALKEY00000"}
    proc = run_wrapper(
        [*IDENTITY, "--results-dir", str(tmp_path), "--preflight", "strict", "--", "true"], env
    )
    if not quirks_of(real_s3).checks_signatures:
        assert proc.returncode == 0, proc.stderr
        return
    lines = proc.stderr.decode().splitlines()
    assert proc.returncode == 2, lines
    assert len(lines) == 1 and "InvalidAccessKeyId" in lines[0] and "--access-key" in lines[0], lines


# -- server-side encryption ------------------------------------------------------------------------


def test_sse_s3_objects_are_encrypted_and_read_back(
    real_s3: S3Server, view: StoreView, tmp_path: Path
) -> None:
    log = gen(2 * MiB, seed=21)
    results = {"model": gen(MiB, seed=22)}
    proc = wrap(
        view, tmp_path, gen_cmd(len(log), seed=21), results, "--sse", "s3", "--log-chunk-size", "1MiB"
    )
    assert proc.returncode == 0, proc.stderr
    assert chunks(view) == log
    assert untar_single(view.read(PREFIX + "model.tgz")) == ("model", results["model"])
    assert_manifest_matches_store(view)
    stat = real_s3.client().stat_object(view.bucket, PREFIX + "model.tgz")
    assert stat.metadata.get("x-amz-server-side-encryption") == "AES256", dict(stat.metadata)


def test_sse_s3_on_minio_without_a_kms_is_one_clear_line(tmp_path: Path) -> None:
    """MinIO as KFP deploys it has no KMS: it answers every encrypted PUT with NotImplemented. The
    wrapper says what is missing in one line, retries nothing, and still passes COMMAND through."""
    server = minio_server(tmp_path / "minio" / "data", kms=False)
    try:
        bucket = new_bucket(server)
        with FaultProxy("127.0.0.1", server.port) as proxy:
            env = {**server.env(bucket), "OBJECTSTORE_ENDPOINT": proxy.endpoint}
            proc = run_wrapper(
                [*IDENTITY, "--results-dir", str(tmp_path / "results"), "--sse", "s3", "--", "echo", "hi"],
                env,
            )
            requests = proxy.stats().requests
        assert server.keys(bucket) == []
    finally:
        server.stop()
    err = proc.stderr.decode()
    assert (proc.returncode, proc.stdout) == (74, b"hi\n"), err
    causes = [line for line in err.splitlines() if "NotImplemented: the server refuses" in line]
    assert len(causes) == 1, err
    assert "SSE-S3" in causes[0] and "KMS" in causes[0] and "unset --sse" in causes[0]
    assert requests <= 3, err  # the preflight list, the first PUT: then nothing more is tried


def test_sse_s3_on_seaweedfs_without_a_key_is_retried_to_the_deadline_and_named(tmp_path: Path) -> None:
    """SeaweedFS without ``s3.sse.key`` answers every SSE-S3 PUT with 500 InternalError, which
    cannot be told from a passing fault: the wrapper keeps retrying (nothing is given up early)
    until the flush deadline, and every line about a missing object names the likely cause."""
    server = seaweedfs_server(tmp_path / "seaweedfs" / "data", sse_key=False)
    try:
        bucket = new_bucket(server)
        proc = run_wrapper(
            [
                *IDENTITY,
                "--results-dir",
                str(tmp_path / "results"),
                "--sse",
                "s3",
                "--flush-timeout",
                "15s",  # how long it retries: the test takes this long
                "--",
                "echo",
                "hi",
            ],
            server.env(bucket),
        )
        assert server.keys(bucket) == []
    finally:
        server.stop()
    err = proc.stderr.decode()
    assert (proc.returncode, proc.stdout) == (74, b"hi\n"), err
    missing = [line for line in err.splitlines() if "not stored:" in line]
    # Each object refused names the likely cause; on a loaded machine one may not have had its
    # first answer before the deadline, and its line says that instead.
    named = [line for line in missing if "InternalError" in line]
    assert named and all("s3.sse.key" in line for line in named), err
    assert all(line in named or "deadline" in line for line in missing), err


# -- the read CLI ----------------------------------------------------------------------------------


def test_read_cli_ls_logs_get_and_summary(view: StoreView, tmp_path: Path) -> None:
    log = gen(3 * MiB, seed=31)
    results = {"model": gen(2 * MiB, seed=32), "answer": b"42"}
    proc = wrap(
        view,
        tmp_path,
        ["sh", "-c", f"{PY} -c '{gen_cmd(len(log), seed=31)[-1]}'; exit 3"],
        results,
        "--log-chunk-size",
        "1MiB",
    )
    assert proc.returncode == 3, proc.stderr
    got = read(["ls"], view.env)
    assert (got.returncode, got.stdout) == (0, b"run-1\n"), got.stderr
    got = read(["ls", "run-1"], view.env)
    assert (got.returncode, got.stdout) == (0, b"task-1\n"), got.stderr
    got = read(["ls", "run-1/task-1", "--json"], view.env)
    assert got.returncode == 0, got.stderr
    sizes = {o["name"]: o["size"] for o in json.loads(got.stdout)["objects"]}
    assert {n for n in sizes if not n.startswith("logs/")} == {
        "answer.tgz",
        "model.tgz",
        "main-log.tgz",
        "main-manifest.json",
        "main-summary.json",
    }
    assert all(size == len(view.read(PREFIX + n)) for n, size in sizes.items())

    got = read(["logs", "run-1/task-1"], view.env)
    assert (got.returncode, got.stdout, got.stderr) == (0, log, b"")
    for name, content in results.items():
        got = read(["get", "run-1/task-1", name], view.env)
        assert (got.returncode, got.stdout) == (0, content), got.stderr
    target = tmp_path / "model.bin"
    got = read(["get", "run-1/task-1", "model", "-o", str(target)], view.env)
    assert got.returncode == 0 and target.read_bytes() == results["model"], got.stderr

    rows = json.loads(read(["summary", "run-1", "--json"], view.env).stdout)
    assert [(r["pipelinetask"], r["step"], r["exit_code"], r["objects_missing"]) for r in rows] == [
        ("task-1", "main", 3, 0)
    ]
    assert rows[0]["bytes_stored"] == sum(len(view.read(k)) for k in view.keys(PREFIX))
    got = read(["summary", "run-1"], view.env)
    assert got.returncode == 0 and got.stdout.split(b"\n")[1].split()[:3] == [b"task-1", b"main", b"3"]


def test_read_cli_follows_a_live_step(view: StoreView, tmp_path: Path) -> None:
    script = (
        "import sys\nfor line in sys.stdin:\n    sys.stdout.write(line.upper()); sys.stdout.flush()\n"
        "sys.exit(5)"
    )
    options = [*IDENTITY, "--results-dir", str(tmp_path), "-q", "--log-flush-interval", "200ms"]
    wrapper = subprocess.Popen(
        [*WRAPPER, *options, "--", PY, "-c", script],
        env=view.env,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    reader: subprocess.Popen[bytes] | None = None
    try:
        assert wrapper.stdin is not None and wrapper.stdout is not None
        wrapped = Collector(wrapper.stdout)
        wrapper.stdin.write(b"line one\n")
        wrapper.stdin.flush()
        wait_until(lambda: view.keys(PREFIX + "logs/main/"), timeout=30, what="first chunk")
        reader = subprocess.Popen(
            [*READER, "logs", "run-1/task-1", "--follow", "--interval", "100ms"],
            env=view.env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        followed = Collector(reader.stdout)
        wait_until(lambda: followed.data == b"LINE ONE\n", timeout=30, what="first line followed")
        wrapper.stdin.write(b"line two\n")
        wrapper.stdin.flush()
        wait_until(lambda: followed.data == b"LINE ONE\nLINE TWO\n", timeout=30, what="second line")
        assert reader.poll() is None  # the step still runs: still following
        wrapper.stdin.write(b"last\n")
        wrapper.stdin.close()
        assert wrapper.wait(timeout=60) == 5
        code = reader.wait(timeout=60)
        assert followed.join() == wrapped.join() == b"LINE ONE\nLINE TWO\nLAST\n"
        assert reader.stderr is not None
        assert (code, reader.stderr.read()) == (5, b"")  # the step's code, from its summary
    finally:
        for proc in (wrapper, reader):
            if proc is not None and proc.poll() is None:
                proc.kill()
                proc.wait()


# -- results between tasks -------------------------------------------------------------------------


def test_offloaded_results_come_back_with_fetch_result(view: StoreView, tmp_path: Path) -> None:
    big, small = gen(6 * MiB, seed=41), b"small value"
    produce = tmp_path / "produce"
    produce.mkdir()
    (tmp_path / "big").write_bytes(big)
    proc = run_wrapper(
        [
            "--pipelinerun",
            "run-1",
            "--pipelinetask",
            "produce",
            "--results-dir",
            str(produce),
            "--offload-results-over",
            "3KiB",
            "-q",
            "--",
            "sh",
            "-c",
            f"cp {tmp_path}/big {produce}/big && printf '{small.decode()}' > {produce}/small",
        ],
        view.env,
    )
    assert proc.returncode == 0, proc.stderr
    uri = f"s3://{view.bucket}/artifacts/run-1/produce/big.tgz"
    assert (produce / "big").read_bytes() == uri.encode()  # what Tekton sees: the URI
    assert (produce / "small").read_bytes() == small
    assert untar_single(view.read("artifacts/run-1/produce/big.tgz")) == ("big", big)

    inputs = tmp_path / "in"
    out = tmp_path / "consumed"
    proc = run_wrapper(
        [
            "--pipelinerun",
            "run-1",
            "--pipelinetask",
            "consume",
            "--results-dir",
            str(tmp_path / "consume"),
            "--fetch-result",
            f"produce/big={inputs}/big",
            "--fetch-result",
            f"{uri}={inputs}/by-uri",
            "--fetch-result",
            f"produce/small={inputs}/small",
            "-q",
            "--",
            "sh",
            "-c",
            f"cat {inputs}/big {inputs}/by-uri {inputs}/small > {out}",
        ],
        view.env,
    )
    assert proc.returncode == 0, proc.stderr
    assert out.read_bytes() == big + big + small


# -- load ------------------------------------------------------------------------------------------


def test_sixteen_wrappers_into_one_bucket(view: StoreView, tmp_path: Path) -> None:
    procs = {}
    for n in range(16):
        results = tmp_path / f"results{n}"
        results.mkdir()
        for r in range(5):
            (results / f"res{r}").write_bytes(random.Random(n * 100 + r).randbytes(1000 * (r + 1) * (n + 1)))
        program = f"import random, sys; sys.stdout.write(random.Random({n}).randbytes(MiB).hex())".replace(
            "MiB", str(MiB)
        )
        args = ["--pipelinerun", "load", "--pipelinetask", f"t{n}", "--results-dir", str(results)]
        with open(os.devnull, "wb") as devnull:
            procs[n] = subprocess.Popen(
                [*WRAPPER, *args, "--log-chunk-size", "256KiB", "-q", "--", PY, "-c", program],
                env=view.env,
                stdout=devnull,
                stderr=subprocess.PIPE,
            )
    errors = {n: p.communicate(timeout=400)[1].decode() for n, p in procs.items()}
    assert {n: p.returncode for n, p in procs.items()} == {n: 0 for n in procs}, errors
    for n in range(16):
        prefix = f"artifacts/load/t{n}/"
        expected = random.Random(n).randbytes(MiB).hex().encode()
        assert chunks(view, prefix) == expected
        assert untar_single(view.read(prefix + "main-log.tgz"))[1] == expected
        for r in range(5):
            data = random.Random(n * 100 + r).randbytes(1000 * (r + 1) * (n + 1))
            assert untar_single(view.read(f"{prefix}res{r}.tgz")) == (f"res{r}", data)
        assert_manifest_matches_store(view, prefix)
