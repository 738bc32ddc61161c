"""Interactive use on a terminal: COMMAND owns the terminal from its first instruction.

The wrapper runs on a pseudo-terminal as its controlling terminal, as under `podman run -it`.
"""

from __future__ import annotations

import sys

import pytest
from conftest import WRAPPER, clean_env, wait_until
from ttyrun import PtyRun

READ_AT_ONCE = ["sh", "-c", "read x; echo got:$x"]


def local_env(tmp_path) -> dict[str, str]:
    return clean_env(
        OBJECTSTORE_ENDPOINT=f"file://{tmp_path / 'store'}",
        PIPELINERUN="r",
        PIPELINETASK="t",
        OBJECTSTORE_RESULTS_DIR=str(tmp_path / "results"),
        OBJECTSTORE_QUIET="true",
    )


def test_command_reading_the_terminal_at_once_never_hangs(tmp_path) -> None:
    """COMMAND is in its own group and the terminal's foreground group before it execs: a
    COMMAND that reads at once is never stopped by SIGTTIN (50 runs, none may hang)."""
    env = local_env(tmp_path)
    hung = 0
    for i in range(50):
        run = PtyRun([*WRAPPER, "--", *READ_AT_ONCE], env)
        run.send(f"line{i}\n".encode())
        code = run.wait(timeout=20)
        if code is None:
            hung += 1
            continue
        assert code == 0, run.output
        assert f"got:line{i}".encode() in run.output, run.output
    assert hung == 0, f"{hung} of 50 runs hung"


def test_output_is_captured_on_a_terminal_too(tmp_path) -> None:
    """COMMAND's stdout and stderr are pipes to the wrapper even on a terminal (so they are
    captured); stdin stays the terminal. README, interactive use."""
    env = local_env(tmp_path)
    probe = "import os; print([os.isatty(fd) for fd in (0, 1, 2)], flush=True)"
    run = PtyRun([*WRAPPER, "--", sys.executable, "-c", probe], env)
    assert run.wait(timeout=30) == 0
    assert b"[True, False, False]" in run.output
    log = tmp_path / "store" / "mlpipeline" / "artifacts" / "r" / "t" / "main-log.tgz"
    assert log.exists()


@pytest.mark.parametrize(
    "command", [["sh", "-c", "echo ready; exec sleep 30"], ["sh", "-c", "echo ready; sleep 30; echo after"]]
)
def test_ctrl_z_on_a_command_does_not_hang_the_terminal(tmp_path, command: list[str]) -> None:
    """^Z on the terminal stops COMMAND's foreground job. Nobody could resume it (COMMAND's
    output is not the terminal, so a shell in COMMAND has no job control, and the wrapper's parent
    may be a container runtime): the wrapper resumes it with SIGCONT and says so; ^C then ends it as
    usual. (tini hangs here; dumb-init too, unless COMMAND is a shell with job control.)"""
    env = local_env(tmp_path)
    env.pop("OBJECTSTORE_QUIET")
    run = PtyRun([*WRAPPER, "--", *command], env)
    assert run.read_until(lambda out: b"ready" in out, 20), run.output
    run.send(b"\x1a")  # ^Z
    assert run.read_until(lambda out: b"is resumed" in out, 20), run.output
    run.send(b"\x03")  # ^C
    assert run.wait(timeout=20) == 130, run.output


@pytest.mark.parametrize("shell", ["sh", "bash"])
def test_ctrl_z_in_an_interactive_shell(tmp_path, shell: str) -> None:
    """A shell with job control (dash, bash: they take the terminal from stdin) stops the job on
    ^Z and gives its prompt back; the wrapper leaves the stopped (background) job to it."""
    env = local_env(tmp_path)
    env["PS1"] = "prompt> "
    run = PtyRun([*WRAPPER, "--", shell, "--norc", "-i"] if shell == "bash" else [*WRAPPER, "--", shell, "-i"], env)
    assert run.read_until(lambda out: b"prompt> " in out, 20), run.output
    run.send(b"sleep 30\n")
    wait_until(lambda: run.foreground() == "sleep", 20, what="sleep in the foreground")
    run.output = b""
    run.send(b"\x1a")  # ^Z
    assert run.read_until(lambda out: b"Stopped" in out and b"prompt> " in out, 20), run.output
    run.send(b"exit 3\n")  # "You have stopped jobs."
    assert run.read_until(lambda out: out.count(b"prompt> ") == 2, 20), run.output
    run.send(b"exit 3\n")
    assert run.wait(timeout=20) == 3, run.output
    assert b"is resumed" not in run.output
