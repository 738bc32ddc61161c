"""Recognising Tekton's entrypoint above the wrapper and planning for its step timeout.

The real entrypoint as PID 1 is in test_tekton_entrypoint.py; here the command lines and the
``/proc`` entries are written by the test, so every shape is covered without a PID namespace.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest
from conftest import clean_env, run_wrapper

from entrypoint.settings.step import Config
from entrypoint.settings.tekton import (
    EXIT_MARGIN,
    FLUSH_MARGIN,
    KILL_MARGIN,
    detect,
    entrypoint_timeout,
    margins,
    parse_go_duration,
    plan,
)
from entrypoint.wrapper.final_flush import Deadlines
from entrypoint.wrapper.policy import policy_of

# What pkg/pod/entrypoint.go gives the second step of a Task with a step timeout.
CONTROLLER_ARGV = [
    "/tekton/bin/entrypoint",
    "-wait_file", "/tekton/run/0/out",
    "-post_file", "/tekton/run/1/out",
    "-termination_path", "/tekton/termination",
    "-step_metadata_dir", "/tekton/run/1/status",
    "-timeout", "1m30s",
    "-results", "accuracy,model",
    "-entrypoint", "tekton-uploader",
    "--",
    "--timeout", "5s", "--", "python", "-timeout", "3s",
]  # fmt: skip


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("20s", 20.0),
        ("1m0s", 60.0),
        ("1h0m0s", 3600.0),
        ("1m30s", 90.0),
        ("1.5s", 1.5),
        ("500ms", 0.5),
        ("2h45m", 9900.0),
        (".5s", 0.5),
        ("0", 0.0),
        ("0s", 0.0),
        ("-1s", -1.0),
        ("10", None),  # Go wants a unit
        ("", None),
        ("s", None),
        ("1x", None),
        ("1s ", None),
    ],
)
def test_go_durations(text: str, seconds: float | None) -> None:
    assert parse_go_duration(text) == seconds


def test_the_controllers_command_line_gives_its_timeout_not_the_wrappers() -> None:
    assert entrypoint_timeout(CONTROLLER_ARGV) == 90.0


@pytest.mark.parametrize(
    "flags",
    [
        ["-timeout=20s"],
        ["--timeout", "20s"],
        ["--timeout=20s"],
        ["-wait_file_content", "-timeout", "20s"],  # a bool flag takes no value
    ],
)
def test_go_flag_forms(flags: list[str]) -> None:
    argv = ["entrypoint", *flags, "-post_file", "/tekton/run/0/out", "-entrypoint", "x", "--", "a"]
    assert entrypoint_timeout(argv) == 20.0


def test_no_step_timeout_is_zero() -> None:
    argv = [a for a in CONTROLLER_ARGV if a not in ("-timeout", "1m30s")]
    assert entrypoint_timeout(argv) == 0.0
    assert entrypoint_timeout(["entrypoint", "-timeout", "-5s", "-post_file", "p", "-entrypoint", "x"]) == 0.0


@pytest.mark.parametrize(
    "argv",
    [
        ["/tekton/bin/entrypoint", "-timeout", "20s", "--", "x"],  # named so, but none of its flags
        ["sh", "-c", "tekton-uploader -- x"],
        ["tini", "--", "tekton-uploader", "-entrypoint", "-post_file", "-timeout", "20s"],
        ["make", "-timeout", "20s", "-entrypoint", "x"],  # -entrypoint alone is not enough
        [],
    ],
)
def test_other_parents_are_not_the_entrypoint(argv: list[str]) -> None:
    assert entrypoint_timeout(argv) is None


def test_margins_are_capped_and_scale_down_for_short_timeouts() -> None:
    assert margins(20, kill_after=20) == pytest.approx((1.0, 3.0, 2.0))
    assert margins(3600, kill_after=20) == (EXIT_MARGIN[0], FLUSH_MARGIN[0], KILL_MARGIN[0])
    assert margins(3600, kill_after=4)[2] == 4  # never more grace than --kill-after
    for step_timeout in (0.5, 2, 10, 60, 300, 86400):
        assert sum(margins(step_timeout, 20)) <= 0.3 * step_timeout + 1e-9


def test_plan_counts_from_the_wrappers_start() -> None:
    deadline = plan(20, elapsed=0.5, now=100.0, kill_after=20)
    assert deadline.ends_at == pytest.approx(119.5)
    assert deadline.flush_end == pytest.approx(118.5)
    assert deadline.stop_at == pytest.approx(113.5)  # SIGTERM, 2 s kill grace, 3 s flush, 1 s exit
    assert deadline.kill_after == pytest.approx(2.0)


def fake_proc(root: Path, chain: list[tuple[int, int, list[str]]], started_ago: float) -> None:
    """Write ``/proc/PID/{stat,cmdline}`` for (pid, ppid, argv), each started ``started_ago`` s ago."""
    ticks = os.sysconf("SC_CLK_TCK")
    start = int((time.clock_gettime(time.CLOCK_BOOTTIME) - started_ago) * ticks)
    for pid, ppid, argv in chain:
        (root / str(pid)).mkdir(parents=True)
        rest = ["S", str(ppid), *["0"] * 17, str(start), "0"]
        (root / str(pid) / "stat").write_text(f"{pid} (a (weird) name) {' '.join(rest)}\n")
        (root / str(pid) / "cmdline").write_bytes(b"".join(a.encode() + b"\0" for a in argv))


def test_detect_the_parent(tmp_path: Path) -> None:
    me = os.getpid()
    fake_proc(tmp_path, [(me, 1, ["tekton-uploader"]), (1, 0, CONTROLLER_ARGV)], started_ago=10)
    deadline = detect(20, clock=lambda: 1000.0, proc=str(tmp_path))
    assert deadline is not None
    assert deadline.step_timeout == 90
    assert deadline.ends_at == pytest.approx(1080.0, abs=0.1)  # 90 s after our start, 10 s ago


def test_detect_through_a_script_shell(tmp_path: Path) -> None:
    """``script:`` steps: the entrypoint runs the script, whose shell runs the wrapper."""
    me = os.getpid()
    chain = [(me, 7, ["tekton-uploader"]), (7, 1, ["sh", "/tekton/scripts/script-0"]), (1, 0, CONTROLLER_ARGV)]
    fake_proc(tmp_path, chain, started_ago=0)
    deadline = detect(20, clock=lambda: 0.0, proc=str(tmp_path))
    assert deadline is not None and deadline.ends_at == pytest.approx(90.0, abs=0.1)


def test_detect_nothing(tmp_path: Path) -> None:
    me = os.getpid()
    fake_proc(tmp_path, [(me, 7, ["x"]), (7, 8, ["sh"]), (8, 9, ["sh"]), (9, 1, ["sh"]), (1, 0, CONTROLLER_ARGV)], 0)
    assert detect(20, proc=str(tmp_path)) is None  # too far up
    assert detect(20, proc=str(tmp_path / "missing")) is None
    no_timeout = [a for a in CONTROLLER_ARGV if a not in ("-timeout", "1m30s")]
    other = tmp_path / "other"
    fake_proc(other, [(me, 1, ["x"]), (1, 0, no_timeout)], 0)
    assert detect(20, proc=str(other)) is None


def test_the_plan_becomes_the_stop_policy_unless_timeout_is_given() -> None:
    deadline = plan(20, elapsed=0.0, now=100.0, kill_after=20)
    cfg = Config._make([None] * len(Config._fields))._replace(kill_after=20.0, signal_child_only=False)
    policy = policy_of(cfg, deadline)
    assert policy.stop_at == deadline.stop_at == pytest.approx(114.0)  # absolute: a preflight may come first
    assert policy.kill_after == pytest.approx(2.0) and policy.timeout is None
    assert "Tekton step timeout (20s)" in policy.timeout_warning
    explicit = policy_of(cfg._replace(timeout=5.0), deadline)
    assert explicit.timeout == 5.0 and explicit.stop_at is None and explicit.kill_after == 20.0
    assert policy_of(cfg, None).stop_at is None


class NoSignals:
    terminated_at: float | None = None
    interrupts = 0

    def wait_wakeup(self, timeout: float | None) -> list[int]:
        return []


def test_the_final_flush_ends_before_the_step_timeouts_sigkill() -> None:
    deadline = plan(20, elapsed=0.0, now=100.0, kill_after=20)
    flush = Deadlines(116.5, flush_timeout=300, grace=30, sup=NoSignals(), hard_end=deadline.flush_end)
    assert flush.end() == pytest.approx(119.0)  # the exit margin before D, not 300 s later
    assert flush.reserve() == pytest.approx(2.5 / 3)  # a third of what is left, for summary and manifest
    assert flush.objects() == pytest.approx(119.0 - 2.5 / 3)
    assert Deadlines(116.5, 300, 30, NoSignals()).end() == pytest.approx(416.5)  # no step timeout


@pytest.mark.parametrize("given", [["--tekton-timeout", "sometimes"], ["--tekton-timeout=on"]])
def test_a_bad_mode_is_one_line_and_exit_2(tmp_path: Path, given: list[str]) -> None:
    env = clean_env(OBJECTSTORE_ENDPOINT=f"file://{tmp_path}", PIPELINERUN="r", PIPELINETASK="t")
    proc = run_wrapper([*given, "--", "sh", "-c", "touch started"], env, cwd=tmp_path)
    assert proc.returncode == 2
    lines = proc.stderr.decode().splitlines()
    assert len(lines) == 1 and "--tekton-timeout" in lines[0] and "auto" in lines[0], lines
    assert not (tmp_path / "started").exists()


def test_the_mode_from_the_environment(tmp_path: Path) -> None:
    env = clean_env(OBJECTSTORE_ENDPOINT=f"file://{tmp_path}", PIPELINERUN="r", PIPELINETASK="t")
    proc = run_wrapper(["--", "true"], {**env, "OBJECTSTORE_TEKTON_TIMEOUT": "never"})
    assert proc.returncode == 2
    assert b"--tekton-timeout" in proc.stderr and b"OBJECTSTORE_TEKTON_TIMEOUT" in proc.stderr
    assert run_wrapper(["-q", "--", "true"], {**env, "OBJECTSTORE_TEKTON_TIMEOUT": "OFF"}).returncode == 0
