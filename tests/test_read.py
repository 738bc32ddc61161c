"""Tests of ``tekton-uploader-read`` (a subprocess), against the moto server and the local store.

Objects are written by the real wrapper; where a case needs objects the wrapper does not write
yet (manifests, summaries) or a damaged store, the test writes them itself through the store.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import subprocess
import sys
import tarfile
import threading
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Optional

import psutil
import pytest
from conftest import (
    ACCESS_KEY,
    SECRET_KEY,
    WRAPPER,
    S3Server,
    StoreView,
    clean_env,
    free_port,
    run_wrapper,
    wait_until,
)
from faultproxy import FaultProxy

from entrypoint.read.progress import Progress
from entrypoint.read.retry import Retry
from entrypoint.read.streams import ObjectStream
from entrypoint.store import LocalStore, ObjectInfo, StoreError

READER = [sys.executable, "-m", "entrypoint.read"]
PREFIX = "artifacts/run-1/task-1/"
IDENTITY = ["--pipelinerun", "run-1", "--pipelinetask", "task-1"]
PY = sys.executable
MiB = 1024 * 1024


def gen(n: int, seed: int = 1) -> bytes:
    import random

    return random.Random(seed).randbytes(n)


def gen_cmd(n: int, seed: int = 1) -> list[str]:
    return [PY, "-c", f"import random,sys; sys.stdout.buffer.write(random.Random({seed}).randbytes({n}))"]


def read(
    args: list[str], env: dict[str, str], timeout: float = 120, **kw: Any
) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run([*READER, *args], env=env, capture_output=True, timeout=timeout, **kw)


def wrap(
    store: StoreView,
    tmp_path: Path,
    command: list[str],
    results: Optional[dict[str, bytes]] = None,
    *extra: str,
) -> subprocess.CompletedProcess[bytes]:
    rdir = tmp_path / "results"
    rdir.mkdir(exist_ok=True)
    for name, content in (results or {}).items():
        (rdir / name).write_bytes(content)
    return run_wrapper([*IDENTITY, "--results-dir", str(rdir), "-q", *extra, "--", *command], store.env)


def tgz(name: str, data: bytes) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        info = tarfile.TarInfo(name)
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


class Objects:
    """Write access to the store behind a StoreView, to set up cases the wrapper does not make."""

    def __init__(self, store: StoreView) -> None:
        self.store = store
        endpoint = store.env["OBJECTSTORE_ENDPOINT"]
        self.root: Optional[Path] = None
        self.client: Any = None
        if endpoint.startswith("file://"):
            self.root = Path(urllib.parse.urlsplit(endpoint).path) / store.bucket
        else:
            from minio import Minio

            netloc = urllib.parse.urlsplit(endpoint).netloc
            self.client = Minio(netloc, ACCESS_KEY, SECRET_KEY, secure=False, region="us-east-1")

    def put(self, key: str, data: bytes) -> None:
        if self.root is not None:
            path = self.root / key
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)
        else:
            self.client.put_object(self.store.bucket, key, io.BytesIO(data), len(data))

    def delete(self, key: str) -> None:
        if self.root is not None:
            (self.root / key).unlink()
        else:
            self.client.remove_object(self.store.bucket, key)

    def manifest(self, prefix: str, step: str = "main") -> None:
        """A ``<step>-manifest.json`` of every object under ``prefix``, as the wrapper will write it."""
        objects = []
        for key in self.store.keys(prefix):
            if key == f"{prefix}{step}-manifest.json":
                continue  # the wrapper's own: a manifest does not list itself
            data = self.store.read(key)
            objects.append({"key": key, "size": len(data), "sha256": hashlib.sha256(data).hexdigest()})
        doc = {"objects": objects, "missing": []}
        self.put(f"{prefix}{step}-manifest.json", json.dumps(doc).encode())


def error_line(proc: subprocess.CompletedProcess[bytes]) -> str:
    """The reader's one error line (and nothing that looks like a traceback)."""
    text = proc.stderr.decode()
    assert "Traceback" not in text, text
    lines = [line for line in text.splitlines() if "error:" in line]
    assert len(lines) == 1, text
    return lines[0]


# -- round trip ----------------------------------------------------------------------------------


def test_round_trip_logs_and_results_byte_exact(store: StoreView, tmp_path: Path) -> None:
    log = gen(3 * MiB + 5, seed=3)  # several chunks, binary, no trailing newline
    results = {"model": gen(5 * MiB, seed=4), "accuracy": b"0.97", "empty": b"", "modèle-模型": b"u\n"}
    proc = wrap(store, tmp_path, gen_cmd(len(log), seed=3), results, "--log-chunk-size", "1MiB")
    assert proc.returncode == 0, proc.stderr
    assert len(store.keys(PREFIX + "logs/main/")) == 4

    got = read(["logs", "run-1/task-1"], store.env)
    assert got.returncode == 0, got.stderr
    assert got.stdout == log
    assert got.stderr == b""  # stderr is not a terminal: no progress, nothing extra
    for name, content in results.items():
        got = read(["get", "run-1/task-1", name], store.env)
        assert got.returncode == 0, got.stderr
        assert got.stdout == content
        assert got.stderr == b""
    target = tmp_path / "out" / "model.bin"
    target.parent.mkdir()
    got = read(["get", "run-1/task-1", "model.tgz", "-o", str(target)], store.env)
    assert got.returncode == 0, got.stderr
    assert target.read_bytes() == results["model"]
    assert os.listdir(target.parent) == ["model.bin"]  # no temporary file left behind


def test_logs_from_live_chunks_when_there_is_no_archive(store: StoreView, tmp_path: Path) -> None:
    log = gen(3 * MiB, seed=5)
    assert wrap(store, tmp_path, gen_cmd(len(log), seed=5), None, "--log-chunk-size", "1MiB").returncode == 0
    Objects(store).delete(PREFIX + "main-log.tgz")  # as while the step is still running
    got = read(["logs", "run-1/task-1"], store.env)
    assert got.returncode == 0, got.stderr
    assert got.stdout == log


def test_ls_lists_runs_tasks_and_objects(store: StoreView, tmp_path: Path) -> None:
    assert wrap(store, tmp_path, ["echo", "hi"], {"answer": b"42"}).returncode == 0
    run_wrapper(
        [
            "--pipelinerun",
            "run-2",
            "--pipelinetask",
            "lint",
            "--results-dir",
            str(tmp_path),
            "-q",
            "--",
            "true",
        ],
        store.env,
    )
    got = read(["ls"], store.env)
    assert (got.returncode, got.stdout) == (0, b"run-1\nrun-2\n"), got.stderr
    got = read(["ls", "run-1"], store.env)
    assert (got.returncode, got.stdout) == (0, b"task-1\n"), got.stderr
    got = read(["ls", "run-1", "--json"], store.env)
    assert json.loads(got.stdout) == [{"pipelinetask": "task-1"}]

    got = read(["ls", "run-1/task-1", "--json"], store.env)
    assert got.returncode == 0, got.stderr
    doc = json.loads(got.stdout)
    sizes = {o["name"]: o["size"] for o in doc["objects"]}
    assert sorted(sizes) == [
        "answer.tgz",
        "logs/main/00000000.log",
        "main-log.tgz",
        "main-manifest.json",
        "main-summary.json",
    ]
    for name, size in sizes.items():
        assert size == len(store.read(PREFIX + name))
    digests = {o["name"]: o["sha256"] for o in doc["objects"]}  # from the wrapper's manifest
    assert digests.pop("main-manifest.json") is None  # the manifest does not list itself
    assert digests == {n: hashlib.sha256(store.read(PREFIX + n)).hexdigest() for n in digests}
    assert all(o["modified"].endswith("Z") for o in doc["objects"])

    got = read(["ls", "run-1/task-1"], store.env)
    lines = got.stdout.decode().splitlines()
    assert lines[0].split() == ["SIZE", "MODIFIED", "SHA256", "NAME"]
    assert [line.split()[-1] for line in lines[1:]] == sorted(sizes)


def test_empty_bucket_lists_nothing(store: StoreView) -> None:
    Objects(store).put("unrelated/key", b"x")  # the bucket exists (local: its directory)
    got = read(["ls"], store.env)
    assert (got.returncode, got.stdout, got.stderr) == (0, b"", b"")


# -- follow --------------------------------------------------------------------------------------


class Collector:
    """Reads a pipe in a thread; ``data`` is everything read so far."""

    def __init__(self, stream: Any) -> None:
        self.data = b""
        self._stream = stream
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while True:
            piece = os.read(self._stream.fileno(), 65536)
            if not piece:
                return
            self.data += piece

    def join(self) -> bytes:
        self._thread.join(timeout=30)
        return self.data


def test_follow_prints_lines_as_they_are_flushed_and_exits_when_the_step_ends(
    store: StoreView, tmp_path: Path
) -> None:
    script = (
        "import sys\nfor line in sys.stdin:\n    sys.stdout.write(line.upper()); sys.stdout.flush()\n"
        "sys.exit(5)"
    )
    options = [*IDENTITY, "--results-dir", str(tmp_path), "-q", "--log-flush-interval", "200ms"]
    wrapper = subprocess.Popen(
        [*WRAPPER, *options, "--", PY, "-c", script],
        env=store.env,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    reader: Optional[subprocess.Popen[bytes]] = None
    try:
        assert wrapper.stdin is not None and wrapper.stdout is not None
        wrapped = Collector(wrapper.stdout)
        wrapper.stdin.write(b"line one\n")
        wrapper.stdin.flush()
        wait_until(lambda: store.keys(PREFIX + "logs/main/"), timeout=20, what="first chunk")
        reader = subprocess.Popen(
            [*READER, "logs", "run-1/task-1", "--follow", "--interval", "100ms"],
            env=store.env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        followed = Collector(reader.stdout)
        wait_until(lambda: followed.data == b"LINE ONE\n", timeout=20, what="first line followed")
        wrapper.stdin.write(b"line two\n")
        wrapper.stdin.flush()
        wait_until(lambda: followed.data == b"LINE ONE\nLINE TWO\n", timeout=20, what="second line followed")
        assert reader.poll() is None  # the step is still running: still following
        wrapper.stdin.write(b"last\n")
        wrapper.stdin.close()
        assert wrapper.wait(timeout=60) == 5
        ended = time.monotonic()
        code = reader.wait(timeout=60)
        assert time.monotonic() - ended < 30  # generous: it polls every 100 ms
        assert followed.join() == wrapped.join() == b"LINE ONE\nLINE TWO\nLAST\n"
        assert reader.stderr is not None
        assert (code, reader.stderr.read()) == (5, b"")  # the step's code, from main-summary.json
    finally:
        for proc in (wrapper, reader):
            if proc is not None and proc.poll() is None:
                proc.kill()
                proc.wait()


def test_follow_takes_the_rest_from_the_archive_and_exits_with_the_recorded_code(store: StoreView) -> None:
    objects = Objects(store)
    objects.put(PREFIX + "logs/main/00000000.log", b"alpha\n")
    reader = subprocess.Popen(
        [*READER, "logs", "run-1/task-1", "-f", "--interval", "100ms"],
        env=store.env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        followed = Collector(reader.stdout)
        wait_until(lambda: followed.data == b"alpha\n", timeout=20, what="first chunk followed")
        objects.put(PREFIX + "logs/main/00000002.log", b"gamma\n")  # out of order: must wait for 1
        objects.put(PREFIX + "logs/main/00000001.log", b"beta\n")
        wait_until(lambda: followed.data == b"alpha\nbeta\ngamma\n", timeout=20, what="chunks in order")
        # The step ends; its last chunk never made it, the archive has everything.
        objects.put(PREFIX + "main-summary.json", json.dumps({"exit_code": 7, "wall_seconds": 1.0}).encode())
        objects.put(PREFIX + "main-log.tgz", tgz("main.log", b"alpha\nbeta\ngamma\ndelta\n"))
        assert reader.wait(timeout=30) == 7
        assert followed.join() == b"alpha\nbeta\ngamma\ndelta\n"
    finally:
        if reader.poll() is None:
            reader.kill()
            reader.wait()


def test_follow_without_a_summary_exits_0_and_says_so(store: StoreView) -> None:
    objects = Objects(store)  # as written by a wrapper that records no summary
    objects.put(PREFIX + "logs/main/00000000.log", b"old\n")
    objects.put(PREFIX + "main-log.tgz", tgz("main.log", b"old\n"))
    started = time.monotonic()
    got = read(["logs", "run-1/task-1", "-f", "--interval", "100ms", "--summary-wait", "500ms"], store.env)
    assert (got.returncode, got.stdout) == (0, b"old\n"), got.stderr
    assert "no recorded exit code" in got.stderr.decode()
    assert time.monotonic() - started < 30


def test_follow_ends_at_the_manifest_when_the_archive_is_missing(store: StoreView) -> None:
    objects = Objects(store)
    objects.put(PREFIX + "logs/main/00000000.log", b"one\n")
    objects.put(PREFIX + "logs/main/00000001.log", b"two\n")
    objects.put(PREFIX + "main-summary.json", b'{"exit_code": 0}')
    objects.put(PREFIX + "main-manifest.json", json.dumps({"objects": [], "missing": []}).encode())
    got = read(["logs", "run-1/task-1", "-f", "--interval", "100ms"], store.env, timeout=60)
    assert (got.returncode, got.stdout) == (0, b"one\ntwo\n"), got.stderr


def test_follow_of_a_finished_step_prints_the_archive(store: StoreView, tmp_path: Path) -> None:
    assert wrap(store, tmp_path, ["sh", "-c", "echo done; exit 4"]).returncode == 4
    got = read(["logs", "run-1/task-1", "--follow"], store.env, timeout=60)
    assert (got.returncode, got.stdout) == (4, b"done\n"), got.stderr


# -- missing things ------------------------------------------------------------------------------


def test_missing_run_task_result_and_step_name_what_exists(store: StoreView, tmp_path: Path) -> None:
    assert wrap(store, tmp_path, ["echo", "hi"], {"model": b"m", "metrics": b"x"}).returncode == 0

    got = read(["logs", "run-2/task-1"], store.env)
    assert got.returncode == 1
    line = error_line(got)
    assert "no pipelinerun 'run-2'" in line and "did you mean run-1?" in line

    got = read(["ls", "run-2"], store.env)
    assert got.returncode == 1 and "pipelineruns there: run-1" in error_line(got)

    got = read(["get", "run-1/task-2", "model"], store.env)
    assert got.returncode == 1
    assert "has no pipelinetask 'task-2'" in error_line(got) and "task-1" in error_line(got)

    got = read(["get", "run-1/task-1", "modle"], store.env)
    assert got.returncode == 1
    line = error_line(got)
    assert "no result 'modle'" in line and "did you mean model?" in line and "metrics, model" in line

    got = read(["logs", "run-1/task-1", "--step", "build"], store.env)
    assert got.returncode == 1
    assert "no log of step 'build'" in error_line(got) and "steps there: main" in error_line(got)
    assert got.stdout == b""


def test_missing_bucket(store: StoreView) -> None:
    env = {**store.env, "OBJECTSTORE_BUCKET": "no-such-bucket-here"}
    got = read(["ls"], env)
    assert got.returncode == 1
    assert "bucket does not exist" in error_line(got) and "--bucket" in error_line(got)


def test_bad_usage_is_exit_2(store: StoreView) -> None:
    for args in (
        ["logs", "-f", "run-1"],
        ["logs", "a/b/c"],
        ["get", "run-1/task-1"],
        ["logs", "r/t", "--step", "a/b"],
    ):
        got = read(args, store.env)
        assert got.returncode == 2, (args, got.stderr)
        error_line(got)
    got = read(["--no-such-option", "ls"], store.env)
    assert got.returncode == 2 and "--no-such-option" in error_line(got)


def test_a_gap_in_the_chunks_is_reported(store: StoreView) -> None:
    objects = Objects(store)
    objects.put(PREFIX + "logs/main/00000000.log", b"zero\n")
    objects.put(PREFIX + "logs/main/00000002.log", b"two\n")
    got = read(["logs", "run-1/task-1"], store.env)
    assert got.returncode == 4
    assert got.stdout == b"zero\ntwo\n"
    assert "log chunks 00000001 to 00000001 are not in the store" in got.stderr.decode()


def test_output_to_an_unwritable_place_is_exit_5(store: StoreView, tmp_path: Path) -> None:
    assert wrap(store, tmp_path, ["true"], {"model": b"m"}).returncode == 0
    got = read(["get", "run-1/task-1", "model", "-o", str(tmp_path / "no" / "dir" / "file")], store.env)
    assert got.returncode == 5 and "-o: cannot write" in error_line(got)


# -- integrity -----------------------------------------------------------------------------------


def test_manifest_checksums_are_verified(store: StoreView, tmp_path: Path) -> None:
    model = gen(2 * MiB, seed=6)
    assert wrap(store, tmp_path, ["echo", "the log"], {"model": model}).returncode == 0
    objects = Objects(store)
    objects.manifest(PREFIX)

    assert read(["get", "run-1/task-1", "model"], store.env).stdout == model
    assert read(["logs", "run-1/task-1"], store.env).stdout == b"the log\n"
    listed = json.loads(read(["ls", "run-1/task-1", "--json"], store.env).stdout)["objects"]
    by_name = {o["name"]: o["sha256"] for o in listed}
    assert by_name["model.tgz"] == hashlib.sha256(store.read(PREFIX + "model.tgz")).hexdigest()
    assert by_name["main-manifest.json"] is None  # the manifest does not list itself

    # A valid archive with other content: only the checksum can tell.
    objects.put(PREFIX + "model.tgz", tgz("model", b"tampered"))
    got = read(["get", "run-1/task-1", "model"], store.env)
    assert got.returncode == 4
    line = error_line(got)
    assert "sha256 mismatch" in line and PREFIX + "model.tgz" in line and "main-manifest.json" in line
    target = tmp_path / "model.bin"
    got = read(["get", "run-1/task-1", "model", "-o", str(target)], store.env)
    assert got.returncode == 4 and "sha256 mismatch" in error_line(got)
    assert not target.exists()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".model.bin")] == []

    objects.put(PREFIX + "main-log.tgz", tgz("main.log", b"the LOG\n"))
    got = read(["logs", "run-1/task-1"], store.env)
    assert got.returncode == 4 and "sha256 mismatch" in error_line(got)

    # Without the archive the chunks are checked one by one (same size, one byte changed).
    objects.delete(PREFIX + "main-log.tgz")
    objects.put(PREFIX + "logs/main/00000000.log", b"the lug\n")
    got = read(["logs", "run-1/task-1"], store.env)
    assert got.returncode == 4
    assert "sha256 mismatch for " + PREFIX + "logs/main/00000000.log" in error_line(got)


def test_corrupt_archive_is_detected_without_a_manifest(store: StoreView, tmp_path: Path) -> None:
    log = gen(MiB, seed=7)
    assert wrap(store, tmp_path, gen_cmd(len(log), seed=7)).returncode == 0
    data = bytearray(store.read(PREFIX + "main-log.tgz"))
    data[len(data) // 2] ^= 0xFF
    Objects(store).put(PREFIX + "main-log.tgz", bytes(data))
    got = read(["logs", "run-1/task-1"], store.env)
    assert got.returncode == 4
    assert "corrupt archive" in error_line(got)


# -- summary -------------------------------------------------------------------------------------


def test_summary_table_and_json(store: StoreView, tmp_path: Path) -> None:
    assert wrap(store, tmp_path, ["sh", "-c", "echo x; exit 3"], {"model": b"m"}).returncode == 3
    objects = Objects(store)
    summary = {
        "exit_code": 3,
        "wall_seconds": 75.0,
        "cpu_user_seconds": 1.25,
        "cpu_system_seconds": 0.25,
        "peak_rss_bytes": 10 * MiB,
        "objects_missing": [],
        "results": ["model"],
    }
    objects.put(PREFIX + "main-summary.json", json.dumps(summary).encode())
    objects.put("artifacts/run-1/task-2/logs/main/00000000.log", b"still running\n")
    got = read(["summary", "run-1"], store.env)
    assert got.returncode == 0, got.stderr
    lines = [line.split() for line in got.stdout.decode().splitlines()]
    assert lines[0] == ["TASK", "STEP", "EXIT", "DURATION", "CPU", "PEAK", "MEM", "STORED", "MISSING"]
    assert lines[1][:8] == ["task-1", "main", "3", "1m15s", "1.5s", "10.0", "MiB", lines[1][7]]
    assert lines[1][-1] == "0"
    assert lines[2][:3] == ["task-2", "main", "running"]

    got = read(["summary", "run-1/task-1", "-o", "json"], store.env)
    assert f'"peak_rss_bytes": {10 * MiB},' in got.stdout.decode()  # an integer stays an integer
    rows = json.loads(got.stdout)
    assert rows == json.loads(read(["summary", "run-1/task-1", "--json"], store.env).stdout)
    assert len(rows) == 1
    row = rows[0]
    stored = sum(len(store.read(k)) for k in store.keys(PREFIX))
    assert row["bytes_stored"] == stored
    assert (row["exit_code"], row["wall_seconds"], row["cpu_seconds"]) == (3, 75.0, 1.5)
    assert (row["peak_rss_bytes"], row["objects_missing"]) == (10 * MiB, 0)


def test_summary_of_what_the_wrapper_recorded(store: StoreView, tmp_path: Path) -> None:
    proc = wrap(store, tmp_path, ["sh", "-c", "echo x; exit 3"], {"model": b"m"})
    assert proc.returncode == 3, proc.stderr
    recorded = json.loads(store.read(PREFIX + "main-summary.json"))
    rows = json.loads(read(["summary", "run-1", "--json"], store.env).stdout)
    assert len(rows) == 1
    row = rows[0]
    assert (row["pipelinetask"], row["step"], row["exit_code"], row["summary"]) == ("task-1", "main", 3, True)
    assert row["wall_seconds"] == recorded["wall_seconds"]
    assert row["cpu_seconds"] == pytest.approx(recorded["cpu_user_seconds"] + recorded["cpu_system_seconds"])
    assert row["objects_missing"] == 0
    assert row["bytes_stored"] == sum(len(store.read(k)) for k in store.keys(PREFIX))


def test_summary_without_summary_files(store: StoreView, tmp_path: Path) -> None:
    assert wrap(store, tmp_path, ["true"]).returncode == 0
    Objects(store).delete(PREFIX + "main-summary.json")  # as from a wrapper that writes none
    rows = json.loads(read(["summary", "run-1", "--json"], store.env).stdout)
    assert [(r["pipelinetask"], r["step"], r["exit_code"], r["summary"]) for r in rows] == [
        ("task-1", "main", "?", False)
    ]


# -- store trouble -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def auth_s3() -> Iterator[str]:
    """A second moto server that checks credentials (moto does not by default)."""
    port = free_port()
    env = clean_env(INITIAL_NO_AUTH_ACTION_COUNT="0")
    proc = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=env,
    )

    def up() -> bool:
        assert proc.poll() is None, "moto server exited"
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/moto-api/", timeout=1):
                return True
        except OSError:
            return False

    try:
        wait_until(up, timeout=30, what="moto server with authentication")
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def test_bad_credentials_are_one_clear_line(auth_s3: str) -> None:
    env = clean_env(
        OBJECTSTORE_ENDPOINT=auth_s3,
        OBJECTSTORE_ACCESS_KEY="AKIANOTAREALKEY00000",
        OBJECTSTORE_SECRET_KEY="not-the-secret-xyz",
    )
    started = time.monotonic()
    got = read(["ls"], env)
    assert got.returncode == 3
    line = error_line(got)
    assert "InvalidAccessKeyId" in line and "--access-key" in line
    assert "not-the-secret-xyz" not in got.stderr.decode()
    assert "retrying" not in got.stderr.decode()  # permanent: not retried
    assert time.monotonic() - started < 30


def test_unreachable_store_gives_up_after_bounded_retries() -> None:
    env = clean_env(
        OBJECTSTORE_ENDPOINT=f"http://127.0.0.1:{free_port()}",
        OBJECTSTORE_ACCESS_KEY=ACCESS_KEY,
        OBJECTSTORE_SECRET_KEY=SECRET_KEY,
    )
    started = time.monotonic()
    got = read(["logs", "run-1/task-1", "--retries", "2"], env)
    assert got.returncode == 3
    assert time.monotonic() - started < 60
    line = error_line(got)
    assert "cannot reach http://127.0.0.1:" in line and "after 3 attempts" in line
    assert got.stderr.decode().count("retrying in") == 2


def test_transient_errors_are_retried(s3: S3Server, bucket: str, tmp_path: Path) -> None:
    store = StoreView("s3", s3.env(bucket), bucket, s3, None)
    log = gen(2 * MiB, seed=8)
    assert wrap(store, tmp_path, gen_cmd(len(log), seed=8), {"model": b"weights"}).returncode == 0
    with FaultProxy("127.0.0.1", s3.port) as proxy:
        env = {**store.env, "OBJECTSTORE_ENDPOINT": proxy.endpoint}
        proxy.fail_next(3, status=503)
        got = read(["logs", "run-1/task-1"], env)
        assert got.returncode == 0, got.stderr
        assert got.stdout == log
        assert got.stderr.decode().count("retrying in") == 3
        assert proxy.stats().faults == 3
        proxy.fail_next(3, status=500)
        got = read(["get", "run-1/task-1", "model"], env)
        assert (got.returncode, got.stdout) == (0, b"weights"), got.stderr


class FlakyStore(LocalStore):
    """A local store whose object streams fail once, transiently, after ``fail_at`` bytes."""

    def __init__(self, root: Path, fail_at: int) -> None:
        super().__init__(root, "b")
        self.fail_at = fail_at
        self.opens: list[int] = []

    def open_read(self, key: str, offset: int = 0) -> io.RawIOBase:
        self.opens.append(offset)
        inner = super().open_read(key, offset)
        if len(self.opens) > 1:
            return inner
        store = self

        class Failing(io.RawIOBase):
            pos = offset

            def readable(self) -> bool:
                return True

            def readinto(self, buffer: Any) -> int:
                if self.pos >= store.fail_at:
                    raise StoreError("connection problem: reset", transient=True)
                view = memoryview(buffer)[: store.fail_at - self.pos]
                n = inner.readinto(view)
                self.pos += n
                return n

            def close(self) -> None:
                inner.close()
                super().close()

        return Failing()


def test_a_stream_broken_midway_resumes_at_its_offset(tmp_path: Path) -> None:
    data = gen(3 * MiB + 11, seed=9)
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "obj").write_bytes(data)
    store = FlakyStore(tmp_path, fail_at=MiB + 3)
    notes: list[str] = []
    retry = Retry("test", retries=2, notify=notes.append, sleep=lambda _s: None)
    stream = ObjectStream(store, ObjectInfo("obj", len(data)), retry)
    assert stream.read() == data
    assert store.opens == [0, MiB + 3]
    assert stream.digest.hexdigest() == hashlib.sha256(data).hexdigest()
    assert len(notes) == 1 and "reset" in notes[0]


# -- streaming, memory, pipes, progress ----------------------------------------------------------


def peak_rss(proc: subprocess.Popen[bytes]) -> int:
    """The largest resident set size seen while ``proc`` runs (psutil samples and VmHWM)."""
    ps = psutil.Process(proc.pid)
    peak = 0
    stop = threading.Event()
    while proc.poll() is None:
        try:
            peak = max(peak, ps.memory_info().rss)
            with open(f"/proc/{proc.pid}/status") as f:
                for line in f:
                    if line.startswith("VmHWM:"):
                        peak = max(peak, int(line.split()[1]) * 1024)
        except (psutil.Error, OSError, ValueError):
            pass
        stop.wait(0.01)
    return peak


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(MiB):
            h.update(block)
    return h.hexdigest()


@pytest.mark.slow
def test_200mb_log_streams_with_bounded_memory(s3: S3Server, bucket: str, tmp_path: Path) -> None:
    n = 200 * MiB
    env = s3.env(bucket)
    wrapper = subprocess.run(
        [*WRAPPER, *IDENTITY, "--results-dir", str(tmp_path), "-q", "--", *gen_cmd(n, seed=10)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        timeout=300,
    )
    assert wrapper.returncode == 0, wrapper.stderr
    expected = hashlib.sha256(gen(n, seed=10)).hexdigest()
    out = tmp_path / "log"
    peaks = []
    for source in ("archive", "chunks"):
        if source == "chunks":
            s3.client().remove_object(bucket, PREFIX + "main-log.tgz")
        with open(out, "wb") as f:
            proc = subprocess.Popen(
                [*READER, "logs", "run-1/task-1"], env=env, stdout=f, stderr=subprocess.PIPE
            )
            peaks.append(peak_rss(proc))
            _, err = proc.communicate(timeout=300)
        assert proc.returncode == 0, err
        assert out.stat().st_size == n
        assert sha256_file(out) == expected
    print(f"reader peak RSS for a 200 MiB log: {[p // MiB for p in peaks]} MiB (archive, chunks)")
    # Python, click and the S3 client take ~40-60 MiB; holding the log would take 200 MiB more.
    assert max(peaks) < 100 * MiB, [p // MiB for p in peaks]


def test_a_closed_pipe_ends_the_reader_quietly(store: StoreView, tmp_path: Path) -> None:
    assert wrap(store, tmp_path, gen_cmd(8 * MiB, seed=11)).returncode == 0
    proc = subprocess.Popen(
        [*READER, "logs", "run-1/task-1"], env=store.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    assert proc.stdout is not None and proc.stderr is not None
    assert len(proc.stdout.read(10)) == 10
    proc.stdout.close()
    assert proc.wait(timeout=60) == 141
    assert proc.stderr.read() == b""


class FakeTty(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_progress_only_on_a_terminal_and_for_large_downloads() -> None:
    now = [0.0]
    tty = FakeTty()
    progress = Progress("model", 10 * MiB, tty, enabled=True, clock=lambda: now[0])
    for _ in range(10):
        now[0] += 1
        progress.update(MiB)
    progress.finish()
    text = tty.getvalue()
    assert "model: 5.0 MiB of 10.0 MiB (50%)" in text
    assert text.endswith("\r\x1b[K")

    piped = io.StringIO()
    progress = Progress.for_stream("model", 10 * MiB, piped)
    progress.update(10 * MiB)
    progress.finish()
    assert piped.getvalue() == ""

    small = FakeTty()
    progress = Progress.for_stream("small", MiB, small)
    now[0] += 10
    progress.update(MiB)
    progress.finish()
    assert small.getvalue() == ""


def test_both_commands_share_the_store_options() -> None:
    from entrypoint.cli import click_command

    command = click_command()
    from entrypoint.read.cli import group

    def options(cmd: Any) -> dict[str, tuple[tuple[str, ...], Any, Any]]:
        return {p.name: (tuple(p.opts), p.envvar, p.default) for p in cmd.params}

    wrapper = options(command)
    reader = options(group)  # the group's, listed once in its --help
    for key in ("endpoint", "bucket", "access_key", "secret_key", "session_token", "region"):
        assert reader[key] == wrapper[key], key
    assert reader["path_style"] == wrapper["path_style"]
    assert reader["key_prefix"] == wrapper["key_prefix"]
    assert "create_bucket" not in reader  # the reader never creates a bucket
    for name, sub in group.commands.items():  # accepted after the subcommand too, not listed there
        hidden = {p.name: p for p in sub.params if getattr(p, "hidden", False)}
        assert set(reader) - {"version"} <= set(hidden), name
        assert all(tuple(hidden[k].opts) == reader[k][0] for k in set(reader) - {"version"}), name
