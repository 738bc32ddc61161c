"""flush_on_signals: the logger's data is stored before a signal ends the process, and the
signal then takes the course it would have taken (real processes, real signals, moto)."""

from __future__ import annotations

import signal
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from conftest import ACCESS_KEY, SECRET_KEY, S3Server, wait_until

from entrypoint import Logger, ObjectStoreConfig, flush_on_signals

CHILD = """
import logging, signal, sys
from entrypoint import ObjectStoreConfig, ObjectStoreHandler, flush_on_signals

mode, prefix = sys.argv[1], sys.argv[2]
handler = ObjectStoreHandler(ObjectStoreConfig.from_env(), prefix=prefix, flush_interval=0)
log = logging.getLogger("app")
log.setLevel(logging.INFO)
log.propagate = False
log.addHandler(handler)
if mode == "own-handler":
    def on_hup(signum, frame):
        log.info("own handler ran for %s", signal.Signals(signum).name)
        print("handled", flush=True)
    signal.signal(signal.SIGHUP, on_hup)
elif mode == "ignored":
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
flush_on_signals(handler)
for i in range(2000):
    log.info("line %05d", i)
print("ready", flush=True)
if mode in ("own-handler", "ignored"):
    sys.stdin.readline()  # the test says when to go on
    log.info("after the signal")
    sys.exit(0)
while True:
    signal.pause()
"""

LINES = "".join(f"line {i:05d}\n" for i in range(2000))


def start_child(tmp_path: Path, s3: S3Server, bucket: str, mode: str) -> tuple[subprocess.Popen[str], str]:
    script = tmp_path / "child.py"
    script.write_text(CHILD)
    prefix = f"child-{uuid.uuid4().hex[:8]}"
    env = s3.env(bucket, OBJECTSTORE_FLUSH_TIMEOUT="30s")
    proc = subprocess.Popen(
        [sys.executable, str(script), mode, prefix],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    assert proc.stdout is not None
    assert proc.stdout.readline() == "ready\n", proc.stderr.read() if proc.stderr else ""
    return proc, prefix


def stored(s3: S3Server, bucket: str, prefix: str) -> str:
    return b"".join(s3.read(bucket, k) for k in s3.keys(bucket, f"{prefix}/")).decode()


def test_sigterm_stores_the_log_then_the_process_dies_of_sigterm(
    tmp_path: Path, s3: S3Server, bucket: str
) -> None:
    proc, prefix = start_child(tmp_path, s3, bucket, "default")
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == -signal.SIGTERM, err  # not 0 as in the Go example: the signal goes on
    assert err == ""
    assert stored(s3, bucket, prefix) == LINES  # atexit does not run on SIGTERM: the handler stored it


def test_sigint_stores_the_log_then_raises_keyboard_interrupt(
    tmp_path: Path, s3: S3Server, bucket: str
) -> None:
    proc, prefix = start_child(tmp_path, s3, bucket, "default")
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert "KeyboardInterrupt" in err
    assert proc.returncode == -signal.SIGINT  # Python's own way of dying of an uncaught ^C
    assert stored(s3, bucket, prefix) == LINES


def test_the_programs_own_handler_runs_after_the_flush(tmp_path: Path, s3: S3Server, bucket: str) -> None:
    proc, prefix = start_child(tmp_path, s3, bucket, "own-handler")
    assert proc.stdin is not None and proc.stdout is not None
    proc.send_signal(signal.SIGHUP)
    assert proc.stdout.readline() == "handled\n"
    assert stored(s3, bucket, prefix) == LINES  # flushed before the program's handler was called
    proc.stdin.write("go on\n")
    proc.stdin.flush()
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    assert stored(s3, bucket, prefix) == LINES + "own handler ran for SIGHUP\nafter the signal\n"


def test_an_ignored_signal_flushes_and_stays_ignored(tmp_path: Path, s3: S3Server, bucket: str) -> None:
    proc, prefix = start_child(tmp_path, s3, bucket, "ignored")
    assert proc.stdin is not None
    proc.send_signal(signal.SIGHUP)
    wait_until(lambda: stored(s3, bucket, prefix) == LINES, timeout=30, what="the flush on SIGHUP")
    assert proc.poll() is None
    proc.stdin.write("go on\n")
    proc.stdin.flush()
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    assert stored(s3, bucket, prefix) == LINES + "after the signal\n"


def test_a_signal_inside_a_write_is_handled_when_the_write_is_done(s3: S3Server, bucket: str) -> None:
    cfg = ObjectStoreConfig(
        service_endpoint=s3.endpoint, default_bucket_name=bucket, access_key=ACCESS_KEY, secret_key=SECRET_KEY
    )
    logger = Logger(cfg, prefix="defer", flush_interval=0)
    calls: list[int] = []
    old = signal.signal(signal.SIGUSR1, lambda signum, frame: calls.append(signum))
    restore = flush_on_signals(logger, [signal.SIGUSR1], at_exit=False)
    try:
        logger.write(b"before ")
        logger._enter()  # as if the signal interrupted a write in this (the main) thread
        try:
            signal.raise_signal(signal.SIGUSR1)  # runs the Python handler before returning
            assert calls == []
            assert s3.keys(bucket, "defer/") == []
        finally:
            logger._exit()
        assert calls == [signal.SIGUSR1]  # flushed, then the previous handler was called
        assert s3.read(bucket, "defer/00000000.log") == b"before "
        restore()
        assert signal.getsignal(signal.SIGUSR1) is not None
        signal.raise_signal(signal.SIGUSR1)
        assert calls == [signal.SIGUSR1, signal.SIGUSR1]
        assert s3.keys(bucket, "defer/") == ["defer/00000000.log"]
    finally:
        signal.signal(signal.SIGUSR1, old)
        logger.close()


def test_flush_on_signals_needs_the_main_thread(tmp_path: Path) -> None:
    import threading

    logger = Logger(ObjectStoreConfig(service_endpoint=f"file://{tmp_path}"))
    errors: list[BaseException] = []

    def install() -> None:
        try:
            flush_on_signals(logger, at_exit=False)
        except ValueError as exc:
            errors.append(exc)

    thread = threading.Thread(target=install)
    thread.start()
    thread.join()
    logger.close()
    assert len(errors) == 1 and "main thread" in str(errors[0])


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT, signal.SIGHUP])
def test_restore_puts_the_previous_handlers_back(tmp_path: Path, sig: signal.Signals) -> None:
    before = signal.getsignal(sig)
    logger = Logger(ObjectStoreConfig(service_endpoint=f"file://{tmp_path}"))
    restore = flush_on_signals(logger, [sig], at_exit=False)
    assert signal.getsignal(sig) is not before
    restore()
    assert signal.getsignal(sig) == before
    logger.close()
