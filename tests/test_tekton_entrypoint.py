"""The wrapper under Tekton's own entrypoint binary, PID 1 of a PID namespace, as in a step container.

Each test runs ``unshare --pid --fork --mount-proc`` with a small shell as PID 1 that builds a
private root (every top-level directory bind-mounted, plus the test's own ``/tekton``) and execs
Tekton's entrypoint (built from tektoncd/pipeline by ``peers.tekton_entrypoint``) into it, with
the argv the Tekton controller gives a step (pkg/pod/entrypoint.go): ``-post_file``,
``-termination_path``, ``-step_metadata_dir``, ``-results``, optionally ``-timeout``, and
``-entrypoint tekton-uploader -- ARGS``. The entrypoint reads ``/tekton/results`` and watches
``/tekton/downward/cancel`` at those absolute paths, hence the private root; nothing is mounted
outside the namespace. Every test reads the stored objects back.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

import psutil
import pytest
from conftest import S3Server, StoreView, clean_env, require_program, untar_single, wait_until
from peers import tekton_entrypoint

PY = sys.executable
pytestmark = pytest.mark.peers  # scripts/test runs these once the peers are built
RUN, TASK = "run-1", "task-1"
PREFIX = f"artifacts/{RUN}/{TASK}/"

# PID 1 until it execs the entrypoint: a private root with the step's /tekton in it.
POD_SH = r"""
set -eu
root=$1; shift
new=$root/rootfs
mkdir "$new"
mount -t tmpfs tekton-step "$new"
for entry in /*; do
    name=${entry#/}
    if [ -L "$entry" ]; then cp -P "$entry" "$new/$name"
    elif [ -d "$entry" ] && [ "$name" != tekton ]; then mkdir "$new/$name"; mount --rbind "$entry" "$new/$name"
    fi
done
mkdir "$new/tekton"
mount --bind "$root/tekton" "$new/tekton"
cd "$new"
exec chroot "$new" "$@"
"""


def wrapper_exe() -> list[str]:
    """The wrapper as a step's ``command:`` names it (the console script), and its leading args."""
    script = Path(PY).parent / "tekton-uploader"
    return [str(script)] if script.exists() else [PY, "-m", "entrypoint"]


class Step:
    """One step container: its /tekton directory on the host, the running PID namespace."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.tekton = root / "tekton"
        for sub in ("results", "run/0/status", "downward", "steps"):
            (self.tekton / sub).mkdir(parents=True)
        self.proc: subprocess.Popen[bytes] | None = None

    def start(
        self,
        wrapper_args: Sequence[str],
        command: Sequence[str],
        env: dict[str, str],
        results: Sequence[str] = (),
        timeout: str | None = None,
    ) -> Step:
        unshare = require_program("unshare", "util-linux")
        require_program("chroot", "coreutils")
        binary = tekton_entrypoint()
        exe, *lead = wrapper_exe()
        argv = ["-post_file", "/tekton/run/0/out", "-termination_path", "/tekton/termination"]
        argv += ["-step_metadata_dir", "/tekton/run/0/status"]
        if timeout is not None:
            argv += ["-timeout", timeout]
        if results:
            argv += ["-results", ",".join(results)]
        argv += ["-entrypoint", exe, "--", *lead, *wrapper_args, "--", *command]
        env = {**env, "PIPELINERUN": RUN, "PIPELINETASK": TASK}
        self.out = (self.root / "stdout").open("wb")
        self.err = (self.root / "stderr").open("wb")
        self.proc = subprocess.Popen(
            [unshare, "--pid", "--fork", "--mount-proc", "--", "sh", "-c", POD_SH, "sh", str(self.root),
             str(binary), *argv],
            stdout=self.out,
            stderr=self.err,
            env=env,
        )  # fmt: skip
        return self

    def pid1(self) -> psutil.Process:
        """The entrypoint, PID 1 inside, by its host PID."""
        assert self.proc is not None

        def found() -> psutil.Process | None:
            for child in psutil.Process(self.proc.pid).children():  # type: ignore[union-attr]
                try:
                    if child.cmdline()[:1] == [str(tekton_entrypoint())]:
                        return child
                except psutil.Error:
                    pass
            return None

        return wait_until(found, timeout=30, what="the entrypoint as PID 1")

    def wait(self, timeout: float = 120) -> int:
        assert self.proc is not None
        try:
            return self.proc.wait(timeout=timeout)
        finally:
            self.out.close()
            self.err.close()

    def stdout(self) -> bytes:
        return (self.root / "stdout").read_bytes()

    def stderr(self) -> str:
        return (self.root / "stderr").read_text(errors="replace")

    def termination(self) -> dict[str, str]:
        """The entrypoint's termination message (what the controller reads), key -> value."""
        entries = json.loads((self.tekton / "termination").read_text())
        return {e["key"]: e["value"] for e in entries}

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


@pytest.fixture
def step(tmp_path: Path) -> Iterator[Step]:
    s = Step(tmp_path / "pod")
    try:
        yield s
    finally:
        s.kill()


@pytest.fixture
def local(tmp_path: Path) -> StoreView:
    root = tmp_path / "store"
    env = clean_env(OBJECTSTORE_ENDPOINT=f"file://{root}", OBJECTSTORE_BUCKET="mlpipeline")
    return StoreView("local", env, "mlpipeline", None, root)


@pytest.fixture
def moto(s3: S3Server, bucket: str) -> StoreView:
    return StoreView("s3", s3.env(bucket), bucket, s3, None)


def log_of(store: StoreView) -> bytes:
    return untar_single(store.read(PREFIX + "main-log.tgz"))[1]


def summary_of(store: StoreView) -> dict[str, object]:
    data: dict[str, object] = json.loads(store.read(PREFIX + "main-summary.json"))
    return data


def result_of(store: StoreView, name: str) -> bytes:
    member, data = untar_single(store.read(f"{PREFIX}{name}.tgz"))
    assert member == name
    return data


# -- results, exit codes ------------------------------------------------------------------------


def test_results_reach_the_termination_message_and_the_store(step: Step, store: StoreView) -> None:
    script = "printf 0.93 > /tekton/results/accuracy; printf model-v1 > /tekton/results/model; echo trained"
    results = ["accuracy", "model", "absent"]
    step.start(["-q"], ["sh", "-c", script], store.env, results=results, timeout="10m")
    assert step.wait() == 0, step.stderr()  # a step timeout not reached changes nothing
    message = step.termination()
    assert message["accuracy"] == "0.93" and message["model"] == "model-v1"
    assert "absent" not in message
    assert result_of(store, "accuracy") == b"0.93"
    assert result_of(store, "model") == b"model-v1"
    assert log_of(store) == b"trained\n" == step.stdout()
    assert (step.tekton / "run/0/out").exists()  # the next step may start
    assert (step.tekton / "run/0/status/exitCode").read_text() == "0"
    manifest = json.loads(store.read(PREFIX + "main-manifest.json"))
    assert manifest["exit_code"] == 0
    summary = summary_of(store)
    assert summary["timed_out"] is False and summary["cause"] == "exit"


@pytest.mark.parametrize("code", [0, 3, 137])
def test_exit_codes_pass_through(step: Step, local: StoreView, code: int) -> None:
    script = {0: "echo ok", 3: "echo failing; exit 3", 137: "echo killed; kill -9 $$"}[code]
    step.start(["-q"], ["sh", "-c", script], local.env, results=["r"])
    assert step.wait() == code, step.stderr()
    assert (step.tekton / ("run/0/out.err" if code else "run/0/out")).exists()
    summary = summary_of(local)
    assert summary["exit_code"] == code
    assert summary["signal"] == (9 if code == 137 else None)
    assert log_of(local) == step.stdout()
    assert summary["cause"] == ("signal" if code == 137 else "exit")  # no Tekton timeout here


# -- SIGTERM to PID 1 ---------------------------------------------------------------------------

TERM_COUNTER = r"""
import os, signal, sys, time
count = []
signal.signal(signal.SIGTERM, lambda *_: count.append(1))
print("waiting", flush=True)
open("/tekton/results/ready", "w").close()
while not count:
    time.sleep(0.05)
time.sleep(1.0)  # a second SIGTERM (a double forward) would arrive meanwhile
with open("/tekton/results/sigterms", "w") as f:
    f.write(str(len(count)))
print("stopping after", len(count), "SIGTERM", flush=True)
sys.exit(143)
"""


def test_sigterm_to_pid1_reaches_command_once_and_the_flush_completes(step: Step, moto: StoreView) -> None:
    step.start([], [PY, "-c", TERM_COUNTER], moto.env, results=["sigterms", "ready"])
    pid1 = step.pid1()
    wait_until((step.tekton / "results/ready").exists, timeout=60, what="COMMAND ready")
    sent = time.monotonic()
    pid1.send_signal(signal.SIGTERM)  # what the kubelet does on deletion, timeout, cancellation
    code = step.wait(timeout=60)
    took = time.monotonic() - sent
    assert code == 143, step.stderr()
    assert took < 30, f"SIGTERM -> exit took {took:.1f}s, beyond the 30 s default grace"
    assert result_of(moto, "sigterms") == b"1"
    assert step.termination()["sigterms"] == "1"
    assert log_of(moto) == b"waiting\nstopping after 1 SIGTERM\n" == step.stdout()
    summary = summary_of(moto)
    assert summary["signals_received"].count(signal.SIGTERM) == 1  # type: ignore[attr-defined]
    assert summary["objects_missing"] == []
    assert json.loads(moto.read(PREFIX + "main-manifest.json"))["exit_code"] == 143


# -- the step timeout: SIGKILL at D, anticipated ------------------------------------------------


def test_step_timeout_is_anticipated_and_everything_is_stored(step: Step, moto: StoreView) -> None:
    script = "echo started; printf partial > /tekton/results/progress; exec sleep 120"
    started = time.monotonic()
    step.start(["--step", "main"], ["sh", "-c", script], moto.env, results=["progress"], timeout="20s")
    code = step.wait(timeout=90)
    took = time.monotonic() - started
    # the entrypoint ended the step itself, at its timeout, as without the wrapper
    assert code == 1, step.stderr()
    assert took >= 20
    assert step.termination()["Reason"] == "TimeoutExceeded"
    assert step.termination()["progress"] == "partial"
    assert (step.tekton / "run/0/out.err").exists()
    assert "before the Tekton step timeout (20s)" in step.stderr()
    assert log_of(moto) == b"started\n"
    assert result_of(moto, "progress") == b"partial"
    summary = summary_of(moto)
    assert summary["cause"] == "tekton-timeout"
    assert summary["timed_out"] is True and summary["objects_missing"] == []
    manifest = json.loads(moto.read(PREFIX + "main-manifest.json"))
    assert manifest["exit_code"] == 124


def test_explicit_timeout_wins_over_the_step_timeout(step: Step, local: StoreView) -> None:
    step.start(["--timeout", "1s", "--kill-after", "1s"], ["sleep", "120"], local.env, timeout="10m")
    assert step.wait(timeout=60) == 124, step.stderr()  # the wrapper's own timeout, no waiting for D
    summary = summary_of(local)
    assert summary["timed_out"] is True
    assert summary["cause"] == "timeout"  # ours, not the Tekton step timeout
    assert "--timeout passed" in step.stderr()


def test_a_timeout_past_the_step_timeout_is_warned_about(step: Step, local: StoreView) -> None:
    step.start(["--timeout", "1h"], ["true"], local.env, timeout="30s")
    assert step.wait(timeout=60) == 0, step.stderr()
    assert "--timeout 3600s leaves too little of the Tekton step timeout (30s)" in step.stderr()
    assert summary_of(local)["exit_code"] == 0


def test_without_the_anticipation_the_step_timeout_loses_the_objects(step: Step, local: StoreView) -> None:
    """The failure mode --tekton-timeout auto exists for: SIGKILL at D, nothing after COMMAND."""
    script = "echo started; printf partial > /tekton/results/progress; exec sleep 120"
    step.start(["--tekton-timeout", "off"], ["sh", "-c", script], local.env, results=["progress"], timeout="5s")
    assert step.wait(timeout=60) == 1, step.stderr()
    assert step.termination()["Reason"] == "TimeoutExceeded"
    assert step.termination()["progress"] == "partial"  # Tekton reads it from disk itself
    assert local.keys(PREFIX + "main-") == []  # no log archive, summary or manifest
    assert local.keys(PREFIX + "progress") == []


# -- keep-pod-on-cancel: /tekton/downward/cancel -------------------------------------------------

TICKER = r"""
import sys, time
for i in range(100000):
    print(f"line {i:06d}", flush=True)
    time.sleep(0.02)
"""


def test_cancel_file_kills_without_warning_and_only_live_chunks_survive(step: Step, local: StoreView) -> None:
    step.start(["--log-flush-interval", "500ms"], [PY, "-c", TICKER], local.env, results=["r"])
    chunks = PREFIX + "logs/main/"
    wait_until(lambda: len(local.keys(chunks)) >= 2, timeout=60, what="two live log chunks stored")
    (step.tekton / "downward/cancel").write_text("true")  # what the downward API volume shows
    assert step.wait(timeout=60) == 9, step.stderr()  # the entrypoint exits with SIGKILL's number
    assert step.termination()["Reason"] == "Cancelled"
    assert (step.tekton / "run/0/status/exitCode").read_text() == "killed"
    stored = b"".join(local.read(k) for k in local.keys(chunks))
    assert stored and step.stdout().startswith(stored)  # a byte-exact prefix of the output
    assert local.keys(PREFIX + "main-") == []  # no archive, summary or manifest: SIGKILL, no warning
    assert not any(p.device == "tekton-step" for p in psutil.disk_partitions(all=True))  # none leaked
