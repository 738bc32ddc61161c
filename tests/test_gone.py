"""A step whose wrapper was SIGKILLed (issue 18): ``logs -f`` says once that it seems gone and exits 6
instead of waiting for ever; ``summary`` says ``stale``, not ``running``. A live step shows it is
alive: each chunk promises the next within a heartbeat (12 flush intervals), an empty chunk when
COMMAND is silent, the last one within --flush-timeout (``formats/live.py``)."""

from __future__ import annotations

import io
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import WRAPPER, S3Server, wait_until

from entrypoint.formats import live
from entrypoint.read.console import Console
from entrypoint.read.errors import GONE
from entrypoint.read.locate import Reader
from entrypoint.read.logs import Follow
from entrypoint.read.retry import Retry
from entrypoint.store.local import LocalStore
from entrypoint.store.payload import Payload

READER = [sys.executable, "-m", "entrypoint.read"]
TASK = "artifacts/run-g/task-g/"
CHUNKS = TASK + "logs/main/"
pytestmark = pytest.mark.timeout(180)


def wrapper(s3: S3Server, bucket: str, tmp_path: Path, script: str) -> subprocess.Popen[bytes]:
    argv = [
        *WRAPPER,
        *("--pipelinerun", "run-g", "--pipelinetask", "task-g", "--results-dir", str(tmp_path / "none")),
        *("--log-flush-interval", "20ms", "--flush-timeout", "30s", "--", "sh", "-c", script),
    ]
    return subprocess.Popen(argv, env=s3.env(bucket), cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def chunk_keys(s3: S3Server, bucket: str) -> list[str]:
    return [k for k in s3.keys(bucket, CHUNKS)]


def test_follow_on_a_sigkilled_wrapper_says_gone_and_summary_says_stale(
    s3: S3Server, bucket: str, tmp_path: Path
) -> None:
    """Today: ``logs -f`` prints the log, then waits for ever; ``summary`` says ``running``."""
    proc = wrapper(s3, bucket, tmp_path, "echo $$ > pid; echo hello; exec sleep 600")
    try:
        wait_until(lambda: chunk_keys(s3, bucket), 60, what="the first chunk")
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(30)
        env = s3.env(bucket)
        follow = subprocess.run(
            [*READER, "logs", "-f", "run-g/task-g", "--interval", "20ms"], env=env, capture_output=True, timeout=120
        )
        lines = follow.stderr.decode().splitlines()
        assert follow.returncode == GONE == 6, lines
        assert follow.stdout == b"hello\n"  # what the step stored (heartbeats add nothing)
        assert len(lines) == 1 and "step 'main' of run-g/task-g seems gone" in lines[0], lines
        assert "--stale-after 0 waits for ever" in lines[0]
        summary = subprocess.run([*READER, "summary", "run-g"], env=env, capture_output=True, timeout=60)
        assert summary.returncode == 0, summary.stderr
        row = summary.stdout.decode().splitlines()[1].split()
        assert row[:3] == ["task-g", "main", "stale"], summary.stdout
    finally:
        proc.kill()
        proc.wait(30)
        if (tmp_path / "pid").exists():
            try:
                os.kill(int((tmp_path / "pid").read_text()), signal.SIGKILL)
            except ProcessLookupError:
                pass


def test_a_silent_step_stores_empty_chunks_that_promise_the_next(s3: S3Server, bucket: str, tmp_path: Path) -> None:
    """While COMMAND is silent the wrapper stores an empty chunk every 12 flush intervals; every
    chunk says within how long the next comes; the log stays byte-exact."""
    proc = wrapper(s3, bucket, tmp_path, "echo a; while [ ! -e go ]; do sleep 0.05; done; echo b")
    try:
        wait_until(lambda: len(chunk_keys(s3, bucket)) >= 4, 60, what="empty chunks while COMMAND is silent")
        (tmp_path / "go").touch()
        assert proc.wait(60) == 0, proc.stderr.read() if proc.stderr else ""
    finally:
        proc.kill()
        proc.wait(30)
    keys = chunk_keys(s3, bucket)
    client = s3.client()
    assert b"".join(s3.read(bucket, k) for k in keys) == b"a\nb\n"
    assert [s3.read(bucket, k) for k in keys[1:-1]] == [b""] * (len(keys) - 2)  # the heartbeats
    promises = [live.promised(client.stat_object(bucket, k).metadata) for k in keys]
    assert promises[:-1] == [12 * 0.02] * (len(keys) - 1)
    assert promises[-1] == 30.0  # the last chunk: the archive and manifest come within --flush-timeout
    from conftest import untar_single

    assert untar_single(s3.read(bucket, TASK + "main-log.tgz")) == ("main.log", b"a\nb\n")


class Clock:
    """Fake time for ``Follow``: its sleeps advance it; after ``limit`` seconds it stops the test."""

    def __init__(self, limit: float) -> None:
        self.now = 0.0
        self.limit = limit

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds
        if self.now > self.limit:
            raise TimeoutError("still following")


@pytest.mark.parametrize(
    ("metadata", "stale_after", "gone_at"),
    [
        (live.promise(2.0), None, 6.0),  # three promises
        (live.promise(2.0), 10.0, 10.0),  # --stale-after 10s
        (live.promise(2.0), 0.0, None),  # --stale-after 0: for ever
        (None, None, None),  # a chunk of an older wrapper promises nothing: for ever, as before
        (None, 4.0, 4.0),
    ],
)
def test_stale_after_and_the_chunks_promise(
    tmp_path: Path, metadata: dict[str, str] | None, stale_after: float | None, gone_at: float | None
) -> None:
    store = LocalStore(tmp_path, "b")
    store.put(CHUNKS + "00000000.log", Payload.of(b"x\n"), metadata=metadata)
    if metadata is not None and not store.metadata(CHUNKS + "00000000.log"):
        pytest.skip("this file system keeps no user extended attributes (the local store's metadata)")
    clock = Clock(limit=3600.0)
    errors = io.StringIO()
    reader = Reader(store, "artifacts", Retry("test", retries=1, sleep=clock.sleep), Console(errors))
    out = io.BytesIO()
    follow = Follow(
        reader, "run-g", "task-g", "main", out, interval=0.5, stale_after=stale_after, sleep=clock.sleep, clock=clock
    )
    if gone_at is None:
        with pytest.raises(TimeoutError):
            follow.run()
        assert errors.getvalue() == ""
    else:
        assert follow.run() == GONE
        assert gone_at <= clock.now < gone_at + 0.5
        assert errors.getvalue().count("\n") == 1 and "seems gone" in errors.getvalue()
    assert out.getvalue() == b"x\n"
