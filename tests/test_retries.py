"""Tekton retries keep their own logs: a retried step (a new pod, the same names) stores attempt
N >= 2 under keys of its own, ``<step>-log.tgz`` is the latest attempt's, and the reader shows
the latest attempt unless told ``--attempt N``. A run without retries keeps its keys exactly.

The wrapper runs as a subprocess against the S3 server and the local store, with ``HOSTNAME`` as
Tekton names the pods (``<taskrun>-pod``, then ``<taskrun>-pod-retryN``); everything is read back.
"""

from __future__ import annotations

import hashlib
import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any, Optional

import pytest
from conftest import WRAPPER, StoreView, run_wrapper, untar_single, wait_until
from test_read import READER, Collector, Objects, read

from entrypoint.formats.layout import Layout, step_object_of
from entrypoint.options.fastparse import parse_argv
from entrypoint.options.wrapper import OPTIONS
from entrypoint.report import Reporter
from entrypoint.settings.podinfo import Attempt, attempt_of
from entrypoint.settings.step import build_config
from entrypoint.settings.store import ConfigError
from entrypoint.wrapper.attempt import settle_attempt

PY = sys.executable
PREFIX = "artifacts/run-1/task-1/"
IDENTITY = ["--pipelinerun", "run-1", "--pipelinetask", "task-1"]
POD = "run-1-task-1-pod"  # Tekton's name for the TaskRun's pod; its retry N: POD-retryN


def lines(n: int, tag: str) -> bytes:
    return b"".join(f"{tag} line {i} {'x' * (i % 53)}\n".encode() for i in range(n))


def emit(data: bytes, code: int) -> list[str]:
    """Writes ``data`` to stdout in small flushed pieces (several chunks), then exits ``code``."""
    script = (
        "import sys\n"
        f"data = {data!r}\n"
        "for i in range(0, len(data), 700):\n"
        "    sys.stdout.buffer.write(data[i:i + 700]); sys.stdout.flush()\n"
        f"sys.exit({code})\n"
    )
    return [PY, "-c", script]


def attempt_run(
    store: StoreView, tmp_path: Path, hostname: str, data: bytes, code: int, *extra: str
) -> subprocess.CompletedProcess[bytes]:
    rdir = tmp_path / "results"
    rdir.mkdir(exist_ok=True)
    (rdir / "digest").write_bytes(hashlib.sha256(data).hexdigest().encode())
    options = [*IDENTITY, "--results-dir", str(rdir), "--log-chunk-size", "1KiB", "-q", *extra]
    proc = run_wrapper([*options, "--", *emit(data, code)], {**store.env, "HOSTNAME": hostname})
    assert proc.returncode == code, proc.stderr
    assert proc.stdout == data
    return proc


def chunk_keys(store: StoreView, folder: str) -> list[str]:
    return [
        k for k in store.keys(PREFIX + folder) if re.fullmatch(re.escape(PREFIX + folder) + r"\d{8}\.log", k)
    ]


def joined(store: StoreView, keys: list[str]) -> bytes:
    return b"".join(store.read(k) for k in keys)


def doc(store: StoreView, name: str) -> Any:
    return json.loads(store.read(PREFIX + name))


def reader_json(args: list[str], store: StoreView) -> Any:
    got = read([*args, "-o", "json"], store.env, timeout=60)
    assert got.returncode == 0, got.stderr
    return json.loads(got.stdout)


# -- a run without retries -------------------------------------------------------------------


def test_a_step_without_retries_keeps_todays_keys(store: StoreView, tmp_path: Path) -> None:
    data = lines(200, "only")
    attempt_run(store, tmp_path, POD, data, 0)
    keys = store.keys(PREFIX)
    chunks = chunk_keys(store, "logs/main/")
    assert len(chunks) > 5 and joined(store, chunks) == data
    assert [k for k in keys if k not in chunks] == [
        PREFIX + "digest.tgz",
        PREFIX + "main-log.tgz",
        PREFIX + "main-manifest.json",
        PREFIX + "main-summary.json",
    ]
    assert chunks[0] == PREFIX + "logs/main/00000000.log"
    assert doc(store, "main-summary.json")["attempt"] == 1
    assert doc(store, "main-manifest.json")["attempt"] == 1
    ls = reader_json(["ls", "run-1/task-1"], store)
    assert "attempts" not in ls
    assert [r["attempt"] for r in reader_json(["summary", "run-1/task-1"], store)] == [1]


# -- a retried step --------------------------------------------------------------------------


def test_a_retried_step_keeps_each_attempt_and_the_reader_tells_them_apart(
    store: StoreView, tmp_path: Path
) -> None:
    first, second = lines(300, "first"), lines(40, "second")  # the retry's log is shorter
    attempt_run(store, tmp_path, POD, first, 3)
    first_archive = store.read(PREFIX + "main-log.tgz")
    attempt_run(store, tmp_path, f"{POD}-retry1", second, 0)

    # The first attempt's chunks are untouched; the retry's are apart, numbered from 0.
    first_chunks, second_chunks = chunk_keys(store, "logs/main/"), chunk_keys(store, "logs/main/attempt-2/")
    assert joined(store, first_chunks) == first
    assert second_chunks[0] == PREFIX + "logs/main/attempt-2/00000000.log"
    assert joined(store, second_chunks) == second
    # <step>-log.tgz is the latest attempt's (what the KFP UI reads), and the retry keeps its own too.
    assert untar_single(store.read(PREFIX + "main-log.tgz")) == ("main.log", second)
    assert store.read(PREFIX + "main-attempt-2-log.tgz") == store.read(PREFIX + "main-log.tgz")
    assert untar_single(first_archive) == ("main.log", first)
    # Summaries and manifests per attempt; the first attempt's stay where they were.
    assert (doc(store, "main-summary.json")["exit_code"], doc(store, "main-summary.json")["attempt"]) == (
        3,
        1,
    )
    retry = doc(store, "main-attempt-2-summary.json")
    assert (retry["exit_code"], retry["attempt"]) == (0, 2)
    manifest = doc(store, "main-attempt-2-manifest.json")
    stored = {o["key"] for o in manifest["objects"]}
    assert {PREFIX + "main-log.tgz", PREFIX + "main-attempt-2-log.tgz", *second_chunks} <= stored
    assert manifest["attempt"] == 2 and manifest["complete"] is True

    # The reader: the latest attempt by default, any with --attempt N, byte for byte, verified.
    for args, want in (([], second), (["--attempt", "2"], second), (["--attempt", "1"], first)):
        got = read(["logs", "run-1/task-1", *args], store.env, timeout=60)
        assert (got.returncode, got.stdout, got.stderr) == (0, want, b""), args
    for args, want, code in (([], second, 0), (["--attempt", "1"], first, 3)):
        got = read(["logs", "run-1/task-1", "--follow", *args], store.env, timeout=60)
        assert (got.returncode, got.stdout) == (code, want), got.stderr
    missing = read(["logs", "run-1/task-1", "--attempt", "3"], store.env, timeout=60)
    assert missing.returncode == 1 and b"no attempt 3; attempts there: 1, 2" in missing.stderr

    rows = reader_json(["summary", "run-1/task-1"], store)
    assert [(r["attempt"], r["attempts"], r["exit_code"]) for r in rows] == [(2, [1, 2], 0)]
    rows = reader_json(["summary", "run-1/task-1", "--attempt", "1"], store)
    assert [(r["attempt"], r["exit_code"]) for r in rows] == [(1, 3)]
    table = read(["summary", "run-1/task-1"], store.env, timeout=60)
    assert b"main (attempt 2)" in table.stdout

    ls = reader_json(["ls", "run-1/task-1"], store)
    assert ls["attempts"] == {"main": [1, 2]}
    digests = {r["name"]: r["sha256"] for r in ls["objects"]}
    # the retry's manifest wins for <step>-log.tgz, which it replaced
    assert digests["main-log.tgz"] == hashlib.sha256(store.read(PREFIX + "main-log.tgz")).hexdigest()
    listing = read(["ls", "run-1/task-1"], store.env, timeout=60)
    assert b"step main: attempts 1, 2" in listing.stdout


def test_following_a_running_retry_never_shows_the_earlier_attempt(store: StoreView, tmp_path: Path) -> None:
    attempt_run(store, tmp_path, POD, lines(300, "stale"), 1)
    script = "import sys\nfor line in sys.stdin:\n    sys.stdout.write(line); sys.stdout.flush()\nsys.exit(0)"
    options = [*IDENTITY, "--results-dir", str(tmp_path / "results"), "-q", "--log-flush-interval", "200ms"]
    wrapper = subprocess.Popen(
        [*WRAPPER, *options, "--", PY, "-c", script],
        env={**store.env, "HOSTNAME": f"{POD}-retry1"},
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    reader: Optional[subprocess.Popen[bytes]] = None
    try:
        assert wrapper.stdin is not None and wrapper.stdout is not None
        wrapped = Collector(wrapper.stdout)
        wrapper.stdin.write(b"fresh one\n")
        wrapper.stdin.flush()
        wait_until(lambda: store.keys(PREFIX + "logs/main/attempt-2/"), timeout=20, what="the retry's chunk")
        reader = subprocess.Popen(
            [*READER, "logs", "run-1/task-1", "-f", "--interval", "100ms"],
            env=store.env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        followed = Collector(reader.stdout)
        wait_until(
            lambda: followed.data == b"fresh one\n", timeout=20, what="the retry's first line followed"
        )
        assert reader.poll() is None  # the retry runs: still following, the stale attempt's end ignored
        wrapper.stdin.write(b"fresh two\n")
        wrapper.stdin.close()
        assert wrapper.wait(timeout=60) == 0
        assert reader.wait(timeout=60) == 0  # the retry's exit code, not the first attempt's 1
        assert followed.join() == wrapped.join() == b"fresh one\nfresh two\n"
    finally:
        for proc in (wrapper, reader):
            if proc is not None and proc.poll() is None:
                proc.kill()


# -- learning the attempt --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("hostname", "expected"),
    [
        ("run-1-task-1-pod", Attempt(1, "pod name")),
        ("run-1-task-1-pod-retry1", Attempt(2, "pod name")),
        ("run-1-task-1-pod-retry12", Attempt(13, "pod name")),
        # a long TaskRun name is shortened before Tekton's suffix, which stays whole
        ("a" * 20 + "0123456789abcdef0123456789abcdef-pod-retry3", Attempt(4, "pod name")),
        ("worker-node-7", Attempt(1, "default")),  # not a pod name (hostNetwork: the node's)
    ],
)
def test_the_attempt_comes_from_the_pod_name(hostname: str, expected: Attempt) -> None:
    assert attempt_of(None, {"HOSTNAME": hostname}, in_tekton=False) == expected
    assert attempt_of("auto", {"HOSTNAME": hostname}, in_tekton=False) == expected


def test_an_unknown_hostname_in_a_tekton_step_asks_the_store() -> None:
    assert attempt_of("auto", {"HOSTNAME": "node-7"}, in_tekton=True) == Attempt(1, "default", ask_store=True)
    assert attempt_of("auto", {"HOSTNAME": "x-pod-retry1"}, in_tekton=True).ask_store is False


def test_attempt_option_overrides_and_is_checked(store: StoreView, tmp_path: Path) -> None:
    assert attempt_of("3", {"HOSTNAME": "x-pod-retry1"}, in_tekton=True) == Attempt(3, "--attempt")
    for bad in ("0", "-1", "two", "10001"):
        with pytest.raises(ConfigError, match=r"--attempt: .* is not auto or a whole number from 1 to 10000"):
            attempt_of(bad, {}, in_tekton=False)
    proc = run_wrapper([*IDENTITY, "--attempt", "0", "--", PY, "-c", "print('never')"], store.env)
    assert proc.returncode == 2 and proc.stdout == b""
    assert b"--attempt: '0' is not auto or a whole number" in proc.stderr
    # OBJECTSTORE_ATTEMPT, like every option: attempt 4 of a step, whatever the pod name says
    env = {**store.env, "OBJECTSTORE_ATTEMPT": "4", "HOSTNAME": POD}
    proc = run_wrapper(
        [*IDENTITY, "--results-dir", str(tmp_path), "-q", "--", PY, "-c", "print('four')"], env
    )
    assert proc.returncode == 0, proc.stderr
    assert untar_single(store.read(PREFIX + "main-attempt-4-log.tgz")) == ("main.log", b"four\n")
    assert store.read(PREFIX + "logs/main/attempt-4/00000000.log") == b"four\n"


def test_a_step_name_that_reads_as_a_retry_is_refused(store: StoreView) -> None:
    proc = run_wrapper([*IDENTITY, "--step", "build-attempt-2", "--", PY, "-c", "print('never')"], store.env)
    assert proc.returncode == 2 and proc.stdout == b""
    assert b"--step: step 'build-attempt-2' ends in -attempt-<digits>" in proc.stderr
    with pytest.raises(ValueError, match="ends in -attempt-<digits>"):
        Layout("artifacts", "run-1", "task-1", "x-attempt-12")


def test_step_object_names_parse_back() -> None:
    assert step_object_of("build-log.tgz") == ("build", 1, "log.tgz")
    assert step_object_of("build-attempt-2-log.tgz") == ("build", 2, "log.tgz")
    assert step_object_of("my-step-attempt-10-manifest.json") == ("my-step", 10, "manifest.json")
    assert step_object_of("build-attempt-2-summary.json") == ("build", 2, "summary.json")
    assert step_object_of("model.tgz") is None
    layout = Layout("artifacts", "run-1", "task-1", "main", 3)
    assert layout.chunk_key(7) == PREFIX + "logs/main/attempt-3/00000007.log"
    assert layout.log_archive_keys() == (PREFIX + "main-attempt-3-log.tgz", PREFIX + "main-log.tgz")
    assert layout.step_object_key("summary.json") == PREFIX + "main-attempt-3-summary.json"
    first = Layout("artifacts", "run-1", "task-1", "main")
    assert (first.chunk_key(7), first.log_archive_keys()) == (
        PREFIX + "logs/main/00000007.log",
        (PREFIX + "main-log.tgz",),
    )


def test_the_store_is_the_second_signal(store: StoreView, tmp_path: Path) -> None:
    """A Tekton step whose hostname is not a pod name: the step's objects already stored say
    which attempt this is (the one after the latest)."""

    def settled() -> int:
        parsed = parse_argv([*IDENTITY, "--", "true"], {**store.env, "HOSTNAME": "node-7"}, OPTIONS)
        assert parsed is not None
        cfg = build_config(parsed.values, parsed.command)
        cfg = settle_attempt(
            cfg._replace(attempt=Attempt(1, "default", ask_store=True)), Reporter(quiet=True)
        )
        assert cfg.layout.attempt == cfg.attempt.number and cfg.attempt.source == "store"
        return cfg.attempt.number

    assert settled() == 1  # nothing stored yet
    attempt_run(store, tmp_path, "node-7", lines(20, "one"), 1)
    assert settled() == 2
    attempt_run(store, tmp_path, "node-7", lines(20, "two"), 1, "--attempt", "2")
    assert settled() == 3


def test_following_a_killed_attempt_ends_when_its_retry_has_started(store: StoreView, tmp_path: Path) -> None:
    """The first attempt was SIGKILLed (chunks only: no summary, no manifest, no archive); its
    retry runs. Following the first attempt prints its chunks and does not wait for a summary
    that will never come (--summary-wait 10m; the reader's timeout below is far shorter)."""
    objects = Objects(store)
    killed = [b"killed part one\n", b"killed part two\n"]
    for seq, data in enumerate(killed):
        objects.put(f"{PREFIX}logs/main/{seq:08d}.log", data)
    objects.put(f"{PREFIX}logs/main/attempt-2/00000000.log", b"retry running\n")
    args = ["logs", "run-1/task-1", "-f", "--summary-wait", "10m", "--interval", "100ms"]
    got = read([*args, "--attempt", "1"], store.env, timeout=60)
    assert (got.returncode, got.stdout) == (0, b"".join(killed)), got.stderr
    assert b"no recorded exit code" in got.stderr
    got = read(["logs", "run-1/task-1"], store.env, timeout=60)  # the latest: the retry's, so far
    assert (got.returncode, got.stdout) == (0, b"retry running\n")
