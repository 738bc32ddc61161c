"""The manifest (<step>-manifest.json) and the failure policy options, against both stores."""

from __future__ import annotations

import hashlib
import json
import os
import sys
from pathlib import Path

import pytest
from conftest import StoreView, clean_env, free_port, run_wrapper, untar_single

PREFIX = "artifacts/run-m/task-m/"
IDENTITY = ["--pipelinerun", "run-m", "--pipelinetask", "task-m"]
PY = sys.executable


def results_dir(tmp_path: Path) -> Path:
    results = tmp_path / "results"
    results.mkdir()
    (results / "accuracy").write_bytes(b"0.97")
    (results / "model").write_bytes(os.urandom(300_000))
    os.mkfifo(results / "pipe")
    return results


def test_manifest_lists_every_object_with_size_and_sha256(store: StoreView, tmp_path: Path) -> None:
    results = results_dir(tmp_path)
    cmd = [PY, "-c", "import sys; sys.stdout.write('x' * 100000); sys.stderr.write('err')"]
    proc = run_wrapper(
        [*IDENTITY, "--results-dir", str(results), "--log-chunk-size", "32KiB", "-q", "--", *cmd], store.env
    )
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(store.read(PREFIX + "main-manifest.json"))
    assert (doc["pipelinerun"], doc["pipelinetask"], doc["step"]) == ("run-m", "task-m", "main")
    assert (doc["command_exit_code"], doc["exit_code"], doc["complete"]) == (0, 0, True)
    assert doc["missing"] == []
    listed = {e["key"]: e for e in doc["objects"]}
    assert set(listed) == set(store.keys(PREFIX)) - {PREFIX + "main-manifest.json"}
    for key, entry in listed.items():
        data = store.read(key)
        assert entry["size"] == len(data)
        assert entry["sha256"] == hashlib.sha256(data).hexdigest()
    kinds = sorted(e["kind"] for e in doc["objects"])
    assert kinds == ["log", *["log-chunk"] * 4, "result", "result", "summary"]
    assert doc["results_not_uploaded"] == [
        {"name": "pipe", "reason": "not a regular file in the results directory, or an unusable name"}
    ]
    assert doc["log"]["output_bytes"] == doc["log"]["captured_bytes"] == 100_003
    assert doc["log"]["not_captured_bytes"] == 0 and doc["log"]["gaps"] == []
    assert doc["log"]["spool_limit"] == 1024**3


def test_results_of_a_failed_command_are_uploaded_by_default(store: StoreView, tmp_path: Path) -> None:
    results_dir(tmp_path)
    proc = run_wrapper(
        [*IDENTITY, "--results-dir", str(tmp_path / "results"), "-q", "--", "sh", "-c", "exit 3"], store.env
    )
    assert proc.returncode == 3
    assert untar_single(store.read(PREFIX + "accuracy.tgz")) == ("accuracy", b"0.97")


def test_skip_results_on_failure(store: StoreView, tmp_path: Path) -> None:
    results_dir(tmp_path)
    base = [*IDENTITY, "--results-dir", str(tmp_path / "results"), "--skip-results-on-failure"]
    proc = run_wrapper([*base, "-q", "--", "sh", "-c", "exit 3"], store.env)
    assert proc.returncode == 3
    assert not [k for k in store.keys(PREFIX) if k.endswith(("accuracy.tgz", "model.tgz"))]
    doc = json.loads(store.read(PREFIX + "main-manifest.json"))
    reason = "COMMAND failed and --skip-results-on-failure is set"
    assert doc["results_not_uploaded"] == [
        {"name": n, "reason": reason} for n in ("accuracy", "model", "pipe")
    ]
    assert doc["complete"] is True  # nothing it tried to write is missing
    # COMMAND succeeded: the option changes nothing
    proc = run_wrapper([*base, "-q", "--", "true"], store.env)
    assert proc.returncode == 0
    assert untar_single(store.read(PREFIX + "accuracy.tgz")) == ("accuracy", b"0.97")


def unreachable_env() -> dict[str, str]:
    return clean_env(
        OBJECTSTORE_ENDPOINT=f"http://127.0.0.1:{free_port()}",
        OBJECTSTORE_ACCESS_KEY="a",
        OBJECTSTORE_SECRET_KEY="b",
    )


def test_ignore_upload_errors_keeps_commands_exit_code(tmp_path: Path) -> None:
    base = [*IDENTITY, "--results-dir", str(tmp_path), "--flush-timeout", "1s"]
    proc = run_wrapper([*base, "--ignore-upload-errors", "--", "echo", "ran"], unreachable_env())
    assert proc.stdout == b"ran\n"
    assert proc.returncode == 0
    err = proc.stderr.decode()
    assert "object(s) missing; keeping COMMAND's exit code (--ignore-upload-errors)" in err
    assert f"not stored: {PREFIX}main-manifest.json" in err
    proc = run_wrapper([*base, "--ignore-upload-errors", "--", "sh", "-c", "exit 5"], unreachable_env())
    assert proc.returncode == 5


@pytest.mark.parametrize(
    ("argv", "needle"),
    [
        (["--spool-limit", "100KiB"], "--spool-limit: must be at least 1MiB"),
        (["--spool-limit", "lots"], "--spool-limit"),
        (["--preflight", "sometimes"], "--preflight"),
        (["--connect-timeout", "0"], "--connect-timeout: must be greater than 0"),
        (["--read-timeout", "soon"], "--read-timeout"),
    ],
)
def test_bad_reliability_options_are_one_line_exit_2(tmp_path: Path, argv: list[str], needle: str) -> None:
    marker = tmp_path / "ran"
    env = clean_env(OBJECTSTORE_ENDPOINT=f"file://{tmp_path}/s", PIPELINERUN="r", PIPELINETASK="t")
    proc = run_wrapper([*argv, "--", "touch", str(marker)], env, cwd=tmp_path)
    assert proc.returncode == 2
    lines = proc.stderr.decode().splitlines()
    assert len(lines) == 1 and needle in lines[0], lines
    assert not marker.exists()


def test_options_read_their_environment_variables(tmp_path: Path) -> None:
    env = clean_env(
        OBJECTSTORE_ENDPOINT=f"file://{tmp_path}/s",
        PIPELINERUN="r",
        PIPELINETASK="t",
        OBJECTSTORE_SPOOL_LIMIT="1MiB",
        OBJECTSTORE_PREFLIGHT="strict",
        OBJECTSTORE_CREATE_BUCKET="false",
    )
    proc = run_wrapper(["--results-dir", str(tmp_path), "--", "true"], env)
    assert proc.returncode == 2  # strict preflight: the bucket directory is missing, not to be created
    assert "NoSuchBucket" in proc.stderr.decode()
    env["OBJECTSTORE_CREATE_BUCKET"] = "true"
    cmd = [PY, "-c", "import sys; sys.stdout.write('z' * 3_000_000)"]
    proc = run_wrapper(["--results-dir", str(tmp_path), "-q", "--", *cmd], env)
    assert proc.returncode == 0
    doc = json.loads((tmp_path / "s/mlpipeline/artifacts/r/t/main-manifest.json").read_bytes())
    assert doc["log"]["spool_limit"] == 1024 * 1024
    assert doc["log"]["not_captured_bytes"] > 0


def test_summary_times_are_what_datetime_writes() -> None:
    """``started_at``/``finished_at`` are written without ``datetime``: the same strings, rounding
    included (microseconds half to even, then cut to milliseconds)."""
    import datetime
    import random

    from entrypoint.wrapper.final_flush import _iso

    rng = random.Random(16)
    edges = [0.0, 0.0005, 0.9995, 0.9999994, 0.9999995, 1.0000005, 1_700_000_000.9999996, -0.5, -1.0000005]
    values = edges + [rng.uniform(0, 5e9) for _ in range(20_000)] + [rng.randrange(5 * 10**15) / 1e6 for _ in range(20_000)]
    for ts in values:
        assert _iso(ts) == datetime.datetime.fromtimestamp(ts, datetime.timezone.utc).isoformat(timespec="milliseconds")
