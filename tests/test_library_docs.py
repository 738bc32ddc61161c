"""The four Python blocks of README.md's "Use as a library" section run exactly as printed.

Each block is taken from the document and run unchanged, alone, in an empty directory with a
clean environment (the embedded local directory store ``./objectstore``, as the README says):
once as a script and once pasted into an interactive ``python3`` (whose parser is stricter about
blank lines). The objects they store are read back.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest
from conftest import REPO, clean_env

DOC = REPO / "README.md"
BUCKET = "testing-bucket"


def blocks() -> list[str]:
    section = DOC.read_text().split("## Use as a library", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```python\n(.*?)```", section, flags=re.S)


def run_block(index: int, cwd: Path, how: str) -> subprocess.CompletedProcess[str]:
    code = blocks()[index]
    env = clean_env()
    if how == "script":
        argv = [sys.executable, "-c", code]
        stdin = None
    else:  # pasted into the interactive interpreter, then Ctrl-D
        argv = [sys.executable, "-i", "-q"]
        stdin = code
    proc = subprocess.run(argv, input=stdin, cwd=cwd, env=env, capture_output=True, text=True, timeout=120)
    errors = proc.stderr.replace(">>> ", "").replace("... ", "").strip()
    assert proc.returncode == 0 and errors == "", proc.stderr
    return proc


def stored(cwd: Path) -> dict[str, bytes]:
    root = cwd / "objectstore" / BUCKET
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def member(path: Path) -> tuple[str, bytes]:
    with tarfile.open(path) as tar:
        (info,) = tar.getmembers()
        data = tar.extractfile(info)
        assert data is not None
        return info.name, data.read()


HOW = ["script", "pasted"]


def test_there_are_four_blocks() -> None:
    assert len(blocks()) == 4


@pytest.mark.parametrize("how", HOW)
def test_block_1_connects(tmp_path: Path, how: str) -> None:
    proc = run_block(0, tmp_path, how)
    assert proc.stdout == f"Connected: Writer(local directory {tmp_path}/objectstore/{BUCKET})\n"
    assert (tmp_path / "objectstore" / BUCKET).is_dir()  # create_bucket=True


@pytest.mark.parametrize("how", HOW)
def test_block_2_stores_task_results(tmp_path: Path, how: str) -> None:
    proc = run_block(1, tmp_path, how)
    assert proc.stdout.splitlines() == [
        "stored artifacts/demo-run/train/accuracy.tgz",
        "stored artifacts/demo-run/train/loss.tgz",
        "[{'name': 'accuracy', 'value': '0.92'}, {'name': 'loss', 'value': '0.31'}]",
    ]
    assert sorted(stored(tmp_path)) == ["artifacts/demo-run/train/accuracy.tgz", "artifacts/demo-run/train/loss.tgz"]
    root = tmp_path / "objectstore" / BUCKET
    assert member(root / "artifacts/demo-run/train/accuracy.tgz") == ("accuracy", b"0.92")
    assert member(root / "artifacts/demo-run/train/loss.tgz") == ("loss", b"0.31")


@pytest.mark.parametrize("how", HOW)
def test_block_3_logs_through_a_handler(tmp_path: Path, how: str) -> None:
    proc = run_block(2, tmp_path, how)
    messages = [
        "First log msg with object store logger.",
        "stored at exit at the latest (logging.shutdown() closes the handler)",
    ]
    assert proc.stdout.splitlines() == messages  # the stdout handler
    objects = stored(tmp_path)
    assert objects and all(re.fullmatch(r"artifacts/_logs/[^/]+/\d{8}\.log", k) for k in objects)
    records = [json.loads(line) for line in b"".join(objects.values()).decode().splitlines()]
    assert [r["message"] for r in records] == messages
    assert {r["level"] for r in records} == {"INFO"}


@pytest.mark.parametrize("how", HOW)
def test_block_4_logs_through_the_file_like_logger(tmp_path: Path, how: str) -> None:
    run_block(3, tmp_path, how)
    objects = stored(tmp_path)
    assert objects and all(re.fullmatch(r"artifacts/_logs/[^/]+/\d{8}\.log", k) for k in objects)
    assert b"".join(objects.values()) == b"via the file-like Logger\n"
