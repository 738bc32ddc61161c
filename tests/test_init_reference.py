"""The wrapper as an init, side by side with Debian's tini and dumb-init (the reference).

Each case runs the same COMMAND under `tekton-uploader --endpoint file://DIR --`, `tini --` and
`dumb-init --` (and, for the inherited signal state, directly). Cases in the manner of tini's
`test/` and dumb-init's `tests/`: exit codes, death by signal -> 128+N, signals forwarded (to the
group), reaping (also as PID 1 of a real PID namespace), cwd, environment, stdin, the signal
state COMMAND inherits. Where the wrapper differs from both on purpose, the test says why; where a
reference differs from the other, the test records it (the table in the README comes from here).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from conftest import WRAPPER, clean_env, require_program, wait_until
from test_supervisor import ECHO_SIGNAL, ZOMBIE_SCRIPT
from ttyrun import PtyRun

PY = sys.executable
INITS = ["tekton-uploader", "tini", "dumb-init"]
FAULTS = ["SIGABRT", "SIGBUS", "SIGFPE", "SIGILL", "SIGSEGV", "SIGSYS", "SIGTRAP"]


def init_prefix(name: str, tmp_path: Path) -> list[str]:
    if name == "tini":
        return [require_program("tini", "Debian package tini"), "--"]
    if name == "dumb-init":
        return [require_program("dumb-init", "Debian package dumb-init"), "--"]
    store = tmp_path / "store"
    results = tmp_path / "results"
    return [*WRAPPER, "--endpoint", f"file://{store}", "--pipelinerun", "r", "--pipelinetask", "t",
            "--results-dir", str(results), "-q", "--"]  # fmt: skip


@pytest.fixture(params=INITS)
def init(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[str, list[str]]:
    return request.param, init_prefix(request.param, tmp_path)


def run(prefix: list[str], command: list[str], **kwargs) -> subprocess.CompletedProcess[bytes]:
    kwargs.setdefault("env", clean_env())
    kwargs.setdefault("stdin", subprocess.DEVNULL)
    return subprocess.run([*prefix, *command], capture_output=True, timeout=60, **kwargs)


class Running:
    """An init with COMMAND running; its stdout lines as they come."""

    def __init__(self, argv: list[str], env: dict[str, str] | None = None) -> None:
        self.proc = subprocess.Popen(
            argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=env or clean_env()
        )
        assert self.proc.stdout is not None
        os.set_blocking(self.proc.stdout.fileno(), False)
        self.out = b""
        self.orphans: list[int] = []  # killed at the end too

    def lines(self) -> list[str]:
        assert self.proc.stdout is not None
        try:
            self.out += self.proc.stdout.read() or b""
        except BlockingIOError:
            pass
        return self.out.decode().splitlines()

    def wait_for(self, predicate: Callable[[list[str]], bool], what: str) -> None:
        wait_until(lambda: predicate(self.lines()), 30, what=what)

    def wait(self) -> int:
        code = self.proc.wait(30)
        self.lines()
        return code

    def kill_all(self) -> None:
        """Kill the init and whatever COMMAND left (an init that died leaves COMMAND orphaned)."""
        import psutil

        try:
            tree = [psutil.Process(self.proc.pid), *psutil.Process(self.proc.pid).children(recursive=True)]
        except psutil.Error:
            tree = []
        for p in tree:
            try:
                p.kill()
            except psutil.Error:
                pass
        for pid in self.orphans:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        self.proc.wait(30)


@pytest.mark.parametrize("code", [0, 1, 3, 126, 127, 255])
def test_exit_code_passes_through(init, code: int) -> None:
    _name, prefix = init
    assert run(prefix, ["sh", "-c", f"exit {code}"]).returncode == code


@pytest.mark.parametrize("name", ["SIGHUP", "SIGINT", "SIGUSR1", "SIGKILL", "SIGSEGV", "SIGTERM"])
def test_death_by_signal_is_128_plus_n(init, name: str) -> None:
    _name, prefix = init
    sig = int(getattr(signal, name))
    assert run(prefix, [PY, "-c", f"import os; os.kill(os.getpid(), {sig})"]).returncode == 128 + sig


@pytest.mark.parametrize("name", ["SIGTERM", "SIGINT", "SIGHUP", "SIGUSR1", "SIGWINCH", "SIGCONT"])
def test_signal_sent_to_the_init_reaches_command(init, name: str) -> None:
    _name, prefix = init
    sig = int(getattr(signal, name))
    r = Running([*prefix, PY, "-c", ECHO_SIGNAL, str(sig)])
    try:
        r.wait_for(lambda lines: "ready" in lines, "COMMAND ready")
        r.proc.send_signal(sig)
        assert r.wait() == 0
    finally:
        r.kill_all()
    assert r.lines() == ["ready", f"got {sig}"]


GROUP = "trap '' USR1; " + f"{PY} -c \"$ECHO\" {int(signal.SIGUSR1)} & {PY} -c \"$ECHO\" {int(signal.SIGUSR1)}; wait"


def test_signal_reaches_command_group(init, tmp_path: Path) -> None:
    """A signal to the init reaches every process of COMMAND's group, as with dumb-init. tini
    signals only its child unless given -g (used here): the Tekton entrypoint signals the step's
    group, and so a COMMAND that is a shell script would leave its children running."""
    name, prefix = init
    if name == "tini":
        prefix = [prefix[0], "-g", "--"]
    r = Running([*prefix, "sh", "-c", GROUP], env=clean_env(ECHO=ECHO_SIGNAL))
    try:
        r.wait_for(lambda lines: lines.count("ready") == 2, "both processes ready")
        r.proc.send_signal(signal.SIGUSR1)
        assert r.wait() == 0
    finally:
        r.kill_all()
    assert r.lines().count(f"got {int(signal.SIGUSR1)}") == 2


def test_orphans_are_reaped_as_pid1_of_a_pid_namespace(init) -> None:
    _name, prefix = init
    unshare = require_program("unshare", "util-linux")
    out = run([unshare, "--pid", "--fork", "--mount-proc", *prefix], [PY, "-c", ZOMBIE_SCRIPT])
    assert out.returncode == 7, out.stderr
    assert b"parent-pid 1\n" in out.stdout and b"zombies 0\n" in out.stdout


def test_sigterm_to_pid1_of_a_pid_namespace_is_forwarded(init) -> None:
    _name, prefix = init
    unshare = require_program("unshare", "util-linux")
    sig = int(signal.SIGTERM)
    r = Running([unshare, "--pid", "--fork", "--mount-proc", *prefix, PY, "-c", ECHO_SIGNAL, str(sig)])
    try:
        r.wait_for(lambda lines: "ready" in lines, "COMMAND ready")
        # unshare --fork forwards nothing: signal the init (PID 1 inside) through its host PID
        pid1 = int(subprocess.check_output(["pgrep", "-P", str(r.proc.pid)]).split()[0])
        os.kill(pid1, sig)
        assert r.wait() == 0
    finally:
        r.kill_all()
    assert r.lines() == ["ready", f"got {sig}"]


def test_cwd_environment_and_stdin_are_command_s(init, tmp_path: Path) -> None:
    _name, prefix = init
    env = clean_env(PROBE_VALUE="a b\tc=d")
    probe = "import os, sys; print(os.getcwd()); print(sorted(os.environ.items())); print(sys.stdin.read())"
    out = run(prefix, [PY, "-c", probe], env=env, cwd=tmp_path, input=b"from stdin", stdin=None)
    assert out.returncode == 0, out.stderr
    cwd, environment, stdin = out.stdout.decode().splitlines()
    assert cwd == str(tmp_path)
    assert environment == str(sorted(env.items()))
    assert stdin == "from stdin"


IGNORED = (signal.SIGHUP, signal.SIGINT, signal.SIGQUIT, signal.SIGTTOU)  # nohup, `cmd &`, ...
BLOCKED = {signal.SIGUSR1, signal.SIGUSR2}
# glibc's posix_spawn leaves its two internal signals (32, 33) ignored in the child; glibc programs
# install their own handlers for them when they need them, and nothing else uses them.
LIBC_INTERNAL = sum(1 << (n - 1) for n in range(32, signal.SIGRTMIN))


def inherit_signal_state() -> None:
    for sig in IGNORED:
        signal.signal(sig, signal.SIG_IGN)
    signal.pthread_sigmask(signal.SIG_BLOCK, BLOCKED)


def signal_state(stdout: bytes) -> dict[str, int]:
    fields = dict(line.split(":") for line in stdout.decode().split("\n") if line.startswith("Sig"))
    return {k: int(v, 16) for k, v in fields.items() if k in ("SigIgn", "SigBlk")}


SHOW_STATE = ["grep", "-E", "^Sig(Ign|Blk)", "/proc/self/status"]


def test_command_inherits_ignored_and_blocked_signals(init) -> None:
    """Started with SIGHUP/INT/QUIT/TTOU ignored and USR1/USR2 blocked, COMMAND has what it would
    have had started directly (tini too); dumb-init unblocks and un-ignores every signal."""
    name, prefix = init
    direct = signal_state(run([], SHOW_STATE, preexec_fn=inherit_signal_state).stdout)
    assert direct["SigBlk"] == sum(1 << (s - 1) for s in BLOCKED)
    got = signal_state(run(prefix, SHOW_STATE, preexec_fn=inherit_signal_state).stdout)
    if name == "dumb-init":
        assert got == {"SigIgn": 0, "SigBlk": 0}
        return
    assert got["SigBlk"] == direct["SigBlk"]
    assert got["SigIgn"] & ~LIBC_INTERNAL == direct["SigIgn"]


def test_command_inherits_the_signal_state_on_a_terminal_too(tmp_path: Path) -> None:
    """On a terminal the wrapper forks and execs itself (see test_terminal.py): the same state."""
    def started() -> None:
        import fcntl
        import termios

        fcntl.ioctl(0, termios.TIOCSCTTY, 0)
        inherit_signal_state()

    direct = signal_state(run([], SHOW_STATE, preexec_fn=inherit_signal_state).stdout)
    pty = PtyRun([*init_prefix("tekton-uploader", tmp_path), *SHOW_STATE], clean_env(), preexec_fn=started)
    assert pty.wait(timeout=30) == 0, pty.output
    assert signal_state(pty.output.replace(b"\r\n", b"\n")) == direct


def test_command_started_under_trap_hup_ignored_survives_hup(init) -> None:
    """`trap "" HUP` (nohup) before the init: COMMAND ignores a HUP as it would run directly."""
    name, prefix = init
    out = run(["sh", "-c", 'trap "" HUP; exec "$@"', "sh", *prefix], ["sh", "-c", "kill -HUP $$; echo alive"])
    if name == "dumb-init":  # it resets every disposition in the child
        assert out.returncode == 128 + signal.SIGHUP
        return
    assert (out.returncode, out.stdout) == (0, b"alive\n"), out.stderr


@pytest.mark.parametrize("name", FAULTS)
def test_fault_signal_sent_to_the_init_is_forwarded(init, name: str) -> None:
    """A fault signal sent with kill(2) reaches COMMAND, as with dumb-init; tini dies of it (the
    default action) and leaves COMMAND running, orphaned."""
    init_name, prefix = init
    sig = int(getattr(signal, name))
    r = Running([*prefix, PY, "-c", ECHO_SIGNAL, str(sig)])
    try:
        r.wait_for(lambda lines: "ready" in lines, "COMMAND ready")
        r.orphans = _children(r.proc.pid)
        r.proc.send_signal(sig)
        code = r.proc.wait(30)
    finally:
        r.kill_all()
    if init_name == "tini":
        assert code == -sig
        return
    assert code == 0
    assert r.lines() == ["ready", f"got {sig}"]


def _children(pid: int) -> list[int]:
    with open(f"/proc/{pid}/task/{pid}/children") as f:
        return [int(p) for p in f.read().split()]


NOT_RUNNABLE = {  # command -> exit code under (tekton-uploader, tini, dumb-init)
    "no-such-command-xyz": (127, 127, 2),
    "": (127, 127, 2),
    "/": (126, 126, 2),
}


@pytest.mark.parametrize("command", sorted(NOT_RUNNABLE))
def test_command_that_cannot_run(init, command: str) -> None:
    """127 not found, 126 not executable, as a shell says (tini too; dumb-init exits 2), with one
    line on stderr."""
    name, prefix = init
    out = run(prefix, [command])
    assert out.returncode == NOT_RUNNABLE[command][INITS.index(name)]
    if name == "tekton-uploader":
        assert out.stderr.decode().count("\n") == 1 and "Traceback" not in out.stderr.decode(), out.stderr


CLOSED = {  # redirection -> exit code of `sh -c 'echo out; echo err >&2; cat'` under each init
    "<&-": (1, None, 1),  # cat: Bad file descriptor (stdin stays closed); tini fails: tcsetpgrp
    ">&-": (0, 1, 1),  # ours: COMMAND's stdout is our capture pipe (the log is stored), not closed
    "2>&-": (0, 0, 0),
}


@pytest.mark.parametrize("redirect", sorted(CLOSED))
def test_init_started_with_a_standard_fd_closed(init, redirect: str, tmp_path: Path) -> None:
    name, prefix = init
    quoted = " ".join(f"'{a}'" for a in prefix)
    script = f"exec {quoted} sh -c 'echo out; echo err >&2; cat' {redirect}"
    out = subprocess.run(["sh", "-c", script], capture_output=True, timeout=60, env=clean_env(),
                         stdin=subprocess.DEVNULL)  # fmt: skip
    expected = CLOSED[redirect][INITS.index(name)]
    if expected is None:  # tini: "[FATAL tini] tcsetpgrp failed: Bad file descriptor", COMMAND not run
        assert out.returncode == 1 and b"tcsetpgrp failed" in out.stderr
        return
    assert out.returncode == expected, out.stderr
    assert b"Traceback" not in out.stderr
    if name == "tekton-uploader":
        from conftest import untar_single

        log = untar_single((tmp_path / "store/mlpipeline/artifacts/r/t/main-log.tgz").read_bytes())[1]
        assert log.startswith(b"out\n") or log.startswith(b"err\n"), log


def test_leftover_ignoring_term_exit_time(init, tmp_path: Path) -> None:
    """COMMAND exits and leaves a process that ignores SIGTERM. The wrapper gives it 2 s (TERM,
    then KILL) and stores the log meanwhile; tini and dumb-init exit at once (not PID 1 here; as
    PID 1 the kernel kills the rest when they exit)."""
    name, prefix = init
    script = "(trap '' TERM; exec sleep 30) </dev/null >/dev/null 2>&1 & echo $!"
    started = time.monotonic()
    out = run(prefix, ["sh", "-c", script])
    elapsed = time.monotonic() - started
    leftover = int(out.stdout.split()[0])
    try:
        assert out.returncode == 0
        if name == "tekton-uploader":
            assert not Path(f"/proc/{leftover}").exists()  # killed and reaped
            assert 2.0 <= elapsed < 15, elapsed
        else:
            assert Path(f"/proc/{leftover}").exists()  # left running
    finally:
        try:
            os.kill(leftover, signal.SIGKILL)
        except ProcessLookupError:
            pass
