"""A real server dies mid-run: MinIO SIGKILLed and restarted on the same port and data directory.

Each test has a MinIO of its own (data on disk under ``tmp_path``). The wrapper runs a COMMAND that
prints numbered lines until told to stop; the server is SIGKILLed while chunks are being stored,
stays down for the outage (the one sleep here: it *is* the outage), and is started again on the
same port and directory. Afterwards nothing may be lost: the chunks, the log archive, the results
and the manifest are read back and compared byte for byte with what COMMAND printed and wrote.
"""

from __future__ import annotations

import hashlib
import json
import random
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import WRAPPER, untar_single, wait_until
from realservers import RealServer, minio_server, new_bucket

PY = sys.executable
pytestmark = pytest.mark.peers  # scripts/test runs these once the peers are built
RUN, TASK = "run-k", "task-k"
PREFIX = f"artifacts/{RUN}/{TASK}/"
CHUNKS = f"{PREFIX}logs/main/"
MiB = 1024 * 1024


@pytest.fixture
def own_minio(tmp_path: Path) -> Iterator[RealServer]:
    server = minio_server(tmp_path / "minio" / "data")
    try:
        yield server
    finally:
        server.stop()


def printer(stop: Path) -> str:
    """COMMAND: numbered pseudo-random lines, 100 every 50 ms, until ``stop`` exists; then 'end'."""
    return (
        "import os, random, sys, time\n"
        "rng = random.Random(7)\n"
        "i = 0\n"
        f"while not os.path.exists({str(stop)!r}):\n"
        "    for _ in range(100):\n"
        "        sys.stdout.write('%08d %s\\n' % (i, ''.join(rng.choice('abcdefghij') for _ in range(60))))\n"
        "        i += 1\n"
        "    sys.stdout.flush(); time.sleep(0.05)\n"
        "print('end')\n"
    )


def expected_output(lines: int) -> bytes:
    rng = random.Random(7)
    body = b"".join(
        b"%08d %s\n" % (i, "".join(rng.choice("abcdefghij") for _ in range(60)).encode())
        for i in range(lines)
    )
    return body + b"end\n"


def stored_chunks(server: RealServer, bucket: str) -> dict[str, bytes]:
    return {k: server.read(bucket, k) for k in server.keys(bucket, CHUNKS)}


def outage(server: RealServer, tmp_path: Path, seconds: float, command_ends_during_outage: bool) -> None:
    bucket = new_bucket(server)
    results = tmp_path / "results"
    results.mkdir()
    files = {"model": random.Random(1).randbytes(3 * MiB), "score": b"0.91"}
    for name, data in files.items():
        (results / name).write_bytes(data)
    stop = tmp_path / "stop"
    args = [
        "--pipelinerun",
        RUN,
        "--pipelinetask",
        TASK,
        "--results-dir",
        str(results),
        "--log-chunk-size",
        "64KiB",
        "--log-flush-interval",
        "200ms",
        "-q",
    ]
    out = tmp_path / "stdout"
    with open(out, "wb") as sink:
        proc = subprocess.Popen(
            [*WRAPPER, *args, "--", PY, "-c", printer(stop)],
            env=server.env(bucket),
            stdout=sink,
            stderr=subprocess.PIPE,
        )
    try:
        wait_until(lambda: len(server.keys(bucket, CHUNKS)) >= 3, timeout=60, what="three chunks stored")
        before = stored_chunks(server, bucket)
        server.kill()
        killed = time.monotonic()
        if command_ends_during_outage:
            stop.touch()  # COMMAND ends while the store is down: the final flush has to wait
        time.sleep(seconds)  # the outage itself
        assert proc.poll() is None, "the wrapper gave up during the outage"
        server.start()  # same port, same data directory
        restarted = time.monotonic()
        if not command_ends_during_outage:
            # COMMAND ran through the outage; let it go on until the store has caught up
            wait_until(lambda: len(server.keys(bucket, CHUNKS)) > 3, timeout=120, what="chunks after restart")
            stop.touch()
        _, err = proc.communicate(timeout=300)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, err.decode()
    assert restarted - killed >= seconds
    output = out.read_bytes()
    assert output.endswith(b"end\n")
    assert output == expected_output(output.count(b"\n") - 1)  # COMMAND's output passed through whole
    chunks = stored_chunks(server, bucket)
    assert list(chunks) == [f"{CHUNKS}{i:08d}.log" for i in range(len(chunks))]  # no gap
    assert b"".join(chunks.values()) == output
    assert {k: chunks[k] for k in before} == before  # what was on disk before the kill survived it
    assert untar_single(server.read(bucket, PREFIX + "main-log.tgz")) == ("main.log", output)
    for name, data in files.items():
        assert untar_single(server.read(bucket, f"{PREFIX}{name}.tgz")) == (name, data)
    doc = json.loads(server.read(bucket, PREFIX + "main-manifest.json"))
    assert doc["complete"] is True and doc["missing"] == [], doc
    for entry in doc["objects"]:
        data = server.read(bucket, entry["key"])
        assert (len(data), hashlib.sha256(data).hexdigest()) == (entry["size"], entry["sha256"]), entry["key"]
    assert {e["key"] for e in doc["objects"]} == set(server.keys(bucket, PREFIX)) - {
        PREFIX + "main-manifest.json"
    }
    summary = json.loads(server.read(bucket, PREFIX + "main-summary.json"))
    assert summary["upload_retries"] > 0  # the outage was felt: uploads failed and were sent again
    assert summary["objects_missing"] == []


@pytest.mark.timeout(300)
def test_minio_killed_for_5s_while_the_step_ends_loses_nothing(own_minio: RealServer, tmp_path: Path) -> None:
    outage(own_minio, tmp_path, 5.0, command_ends_during_outage=True)


@pytest.mark.slow
@pytest.mark.timeout(420)
def test_minio_killed_for_60s_mid_run_loses_nothing(own_minio: RealServer, tmp_path: Path) -> None:
    outage(own_minio, tmp_path, 60.0, command_ends_during_outage=False)
