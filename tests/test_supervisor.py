"""The supervisor with real processes and real signals: PID 1, reaping, deadlines, forwarding."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from conftest import WRAPPER, S3Server, clean_env, require_program, untar_single, wait_until

PREFIX = "artifacts/r/t/"
PY = sys.executable


RUNNING: list[Wrapper] = []


@pytest.fixture(autouse=True)
def no_leftover_wrappers():
    """A failed test must not leave its wrapper (or COMMAND) running."""
    yield
    import psutil

    while RUNNING:
        w = RUNNING.pop()
        if w.proc.poll() is None:
            for child in psutil.Process(w.proc.pid).children(recursive=True):
                child.kill()
            w.kill()


class Wrapper:
    """A running wrapper whose stdout and stderr lines are collected by threads."""

    def __init__(
        self, argv: list[str], env: dict[str, str], new_session: bool = False, prefix: list[str] | None = None
    ):
        self.proc = subprocess.Popen(
            [*(prefix or []), *WRAPPER, *argv],
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            start_new_session=new_session,
        )
        RUNNING.append(self)
        self.out: list[str] = []
        self.err: list[str] = []
        self._threads = [
            threading.Thread(target=self._collect, args=(self.proc.stdout, self.out), daemon=True),
            threading.Thread(target=self._collect, args=(self.proc.stderr, self.err), daemon=True),
        ]
        for t in self._threads:
            t.start()

    @staticmethod
    def _collect(stream, into: list[str]) -> None:
        for line in stream:
            into.append(line.decode(errors="replace"))

    def wait_line(self, text: str, stream: str = "out", timeout: float = 30) -> None:
        lines = self.out if stream == "out" else self.err
        wait_until(lambda: any(text in line for line in lines), timeout, what=f"{text!r} on std{stream}")

    def wait(self, timeout: float = 60) -> int:
        code = self.proc.wait(timeout)
        for t in self._threads:
            t.join(10)
        return code

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


@pytest.fixture
def local(tmp_path: Path):
    root = tmp_path / "store"
    env = clean_env(OBJECTSTORE_ENDPOINT=f"file://{root}", PIPELINERUN="r", PIPELINETASK="t")

    def read(key: str) -> bytes:
        return (root / "mlpipeline" / key).read_bytes()

    return env, read, ["--results-dir", str(tmp_path / "results")]


ZOMBIE_SCRIPT = r"""
import os, sys, time
def zombies():
    found = []
    for pid in os.listdir('/proc'):
        if not pid.isdigit():
            continue
        try:
            stat = open(f'/proc/{pid}/stat').read()
        except OSError:
            continue
        state = stat.rsplit(')', 1)[1].split()[0]
        ppid = int(stat.rsplit(')', 1)[1].split()[1])
        if state == 'Z' and ppid == os.getppid():
            found.append(pid)
    return found
print('parent-pid', os.getppid(), flush=True)
for _ in range(5):
    pid = os.fork()
    if pid == 0:
        if os.fork() == 0:
            os._exit(0)          # grandchild: orphaned, re-parented to the wrapper, exits
        os._exit(0)
    os.waitpid(pid, 0)
deadline = time.monotonic() + 10
while zombies() and time.monotonic() < deadline:
    time.sleep(0.05)             # behaviour under test: the wrapper must reap them meanwhile
print('zombies', len(zombies()), flush=True)
sys.exit(7)
"""


@pytest.mark.parametrize("as_pid1", [True, False], ids=["pid1-namespace", "subreaper"])
def test_orphans_are_reaped_no_zombie_left(local, as_pid1: bool) -> None:
    env, read, opts = local
    prefix = []
    if as_pid1:
        prefix = [require_program("unshare", "util-linux"), "--pid", "--fork", "--mount-proc"]
    w = Wrapper([*opts, "-q", "--", PY, "-c", ZOMBIE_SCRIPT], env, prefix=prefix)
    assert w.wait() == 7, w.err
    assert "zombies 0\n" in w.out
    if as_pid1:
        assert "parent-pid 1\n" in w.out
    assert b"zombies 0" in untar_single(read(PREFIX + "main-log.tgz"))[1]


def test_pid1_forwards_sigterm_and_flushes(local) -> None:
    env, read, opts = local
    unshare = require_program("unshare", "util-linux")
    script = (
        "import os,signal,sys\n"
        "signal.signal(signal.SIGTERM, lambda *a: (print('trapped TERM as child of', os.getppid(), flush=True), sys.exit(0)))\n"
        "print('ready', flush=True)\nwhile True: signal.pause()\n"
    )
    w = Wrapper(
        [*opts, "-q", "--", PY, "-c", script], env, prefix=[unshare, "--pid", "--fork", "--mount-proc"]
    )
    w.wait_line("ready")
    # unshare --fork forwards nothing: signal the wrapper (PID 1 inside) through its host PID
    wrapper_pid = int(subprocess.check_output(["pgrep", "-P", str(w.proc.pid)]).split()[0])
    os.kill(wrapper_pid, signal.SIGTERM)
    assert w.wait() == 0
    assert "trapped TERM as child of 1\n" in w.out
    assert untar_single(read(PREFIX + "main-log.tgz"))[1] == b"ready\ntrapped TERM as child of 1\n"


def test_command_ignoring_sigterm_is_killed_after_kill_after(local) -> None:
    env, read, opts = local
    script = "import signal\nsignal.signal(signal.SIGTERM, signal.SIG_IGN)\nprint('ready', flush=True)\nwhile True: signal.pause()\n"
    w = Wrapper([*opts, "-q", "--kill-after", "1s", "--", PY, "-c", script], env)
    w.wait_line("ready")
    sent = time.monotonic()
    w.proc.send_signal(signal.SIGTERM)
    assert w.wait() == 137
    elapsed = time.monotonic() - sent
    assert 0.9 <= elapsed < 15, elapsed
    assert untar_single(read(PREFIX + "main-log.tgz"))[1] == b"ready\n"
    summary = json.loads(read(PREFIX + "main-summary.json"))
    assert summary["signal"] == 9 and summary["exit_code"] == 137
    assert signal.SIGTERM in summary["signals_received"]


COUNT_TERM = r"""
import signal, sys, time
count = 0
def on_term(*_):
    global count
    count += 1
signal.signal(signal.SIGTERM, on_term)
print('ready', flush=True)
while count == 0:
    signal.pause()
time.sleep(1.0)  # behaviour under test: a duplicate TERM would arrive meanwhile
print('count', count, flush=True)
"""


@pytest.mark.parametrize("child_only", [False, True], ids=["group", "signal-child-only"])
def test_tekton_group_signal_reaches_command_once(local, child_only: bool) -> None:
    env, _read, opts = local
    extra = ["--signal-child-only"] if child_only else []
    w = Wrapper([*opts, "-q", *extra, "--", PY, "-c", COUNT_TERM], env, new_session=True)
    w.wait_line("ready")
    os.killpg(w.proc.pid, signal.SIGTERM)  # what Tekton's entrypoint does to its step's group
    assert w.wait() == 0
    assert "count 1\n" in w.out


def test_timeout_stops_command_and_flushes(local) -> None:
    env, read, opts = local
    script = "import signal\nprint('started', flush=True)\nwhile True: signal.pause()\n"
    started = time.monotonic()
    w = Wrapper([*opts, "--timeout", "1s", "--", PY, "-c", script], env)
    assert w.wait() == 124
    elapsed = time.monotonic() - started
    assert 1.0 <= elapsed < 15, elapsed
    assert any("--timeout passed" in line for line in w.err)
    assert untar_single(read(PREFIX + "main-log.tgz"))[1] == b"started\n"
    summary = json.loads(read(PREFIX + "main-summary.json"))
    assert summary["timed_out"] is True and summary["exit_code"] == 124 and summary["signal"] == 15


def test_timeout_escalates_to_sigkill(local) -> None:
    env, _read, opts = local
    script = "import signal\nsignal.signal(signal.SIGTERM, signal.SIG_IGN)\nwhile True: signal.pause()\n"
    started = time.monotonic()
    w = Wrapper([*opts, "-q", "--timeout", "500ms", "--kill-after", "500ms", "--", PY, "-c", script], env)
    assert w.wait() == 124
    assert time.monotonic() - started < 15


@pytest.mark.parametrize("ignores_term", [False, True])
def test_leftover_daemon_is_stopped_and_reaped(local, ignores_term: bool) -> None:
    env, read, opts = local
    daemon = "trap '' TERM; exec sleep 1000" if ignores_term else "exec sleep 1000"
    script = f'sh -c "{daemon}" & echo daemon $!'
    started = time.monotonic()
    w = Wrapper([*opts, "-q", "--", "sh", "-c", script], env)
    assert w.wait(timeout=60) == 0
    assert time.monotonic() - started < 15
    pid = int(next(line for line in w.out if line.startswith("daemon")).split()[1])
    assert not Path(f"/proc/{pid}").exists()  # terminated and reaped, not a zombie
    assert untar_single(read(PREFIX + "main-log.tgz"))[1] == f"daemon {pid}\n".encode()


def test_second_interrupt_cuts_a_slow_final_flush_short(s3: S3Server, bucket: str, tmp_path: Path) -> None:
    from faultproxy import FaultProxy

    script = (
        "import signal,sys\nsignal.signal(signal.SIGINT, lambda *a: sys.exit(0))\n"
        "print('ready', flush=True)\nwhile True: signal.pause()\n"
    )
    with FaultProxy(s3.host, s3.port) as proxy:
        env = s3.env(bucket, PIPELINERUN="r", PIPELINETASK="t", OBJECTSTORE_ENDPOINT=proxy.endpoint)
        w = Wrapper(["--results-dir", str(tmp_path), "--debug", "--", PY, "-c", script], env)
        try:
            w.wait_line("ready")
            proxy.set_mode("stall")
            w.proc.send_signal(signal.SIGINT)  # first: forwarded, COMMAND exits, flush starts
            w.wait_line("final flush: waiting", stream="err")
            sent = time.monotonic()
            w.proc.send_signal(signal.SIGINT)  # second: give up the flush now
            code = w.wait(timeout=30)
            elapsed = time.monotonic() - sent
        finally:
            w.kill()
    assert elapsed < 5, elapsed
    assert code == 74
    err = "".join(w.err)
    assert "interrupted again" in err
    assert f"not stored: {PREFIX}main-log.tgz" in err


FORWARDED = [
    "SIGHUP", "SIGINT", "SIGQUIT", "SIGUSR1", "SIGUSR2", "SIGALRM", "SIGTERM", "SIGCONT", "SIGWINCH",
    "SIGURG", "SIGTSTP", "SIGTTIN", "SIGTTOU", "SIGVTALRM", "SIGPROF", "SIGIO", "SIGPWR", "SIGXCPU",
    "SIGXFSZ", "SIGRTMIN", "SIGRTMAX",
]  # fmt: skip

ECHO_SIGNAL = r"""
import os, signal, sys
sig = int(sys.argv[1])
got = []
signal.signal(sig, lambda n, f: got.append(n))
os.write(1, b'ready\n')  # one write per line: several of these may share one pipe
while not got:
    signal.pause()
os.write(1, b'got %d\n' % got[0])
"""


@pytest.mark.parametrize("name", FORWARDED)
def test_every_catchable_signal_reaches_command(local, name: str) -> None:
    env, _read, opts = local
    sig = int(getattr(signal, name))
    w = Wrapper([*opts, "-q", "--", PY, "-c", ECHO_SIGNAL, str(sig)], env)
    try:
        w.wait_line("ready")
        w.proc.send_signal(sig)
        assert w.wait(timeout=30) == 0
    finally:
        w.kill()
    assert w.out == ["ready\n", f"got {sig}\n"]


JOB_CONTROL = r"""
import signal
got = set()
for sig in (signal.SIGTSTP, signal.SIGTTIN, signal.SIGTTOU):
    signal.signal(sig, lambda n, f: got.add(n))
print('ready', flush=True)
while len(got) < 3:
    signal.pause()
print('all three', flush=True)
"""


def test_job_control_signals_do_not_stop_the_wrapper(local) -> None:
    env, _read, opts = local
    w = Wrapper([*opts, "-q", "--", PY, "-c", JOB_CONTROL], env)
    w.wait_line("ready")
    for sig in (signal.SIGTTIN, signal.SIGTTOU, signal.SIGTSTP):
        w.proc.send_signal(sig)
        state = Path(f"/proc/{w.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        assert state != "T"  # a stopped wrapper could forward nothing more
    w.wait_line("all three")
    assert w.wait() == 0


def test_uploads_run_while_leftovers_get_their_grace(local, tmp_path: Path) -> None:
    """COMMAND exits leaving a process that ignores SIGTERM: the log is stored during the
    leftover's 2 s (TERM, then KILL), not after; the leftover sees it stored before it is killed."""
    env, read, opts = local
    archive = tmp_path / "store" / "mlpipeline" / PREFIX / "main-log.tgz"
    seen = tmp_path / "seen"
    script = (  # the leftover is ready (TERM ignored) before COMMAND exits
        "import os, signal, time\nr, w = os.pipe()\nif os.fork() == 0:\n"
        "    signal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
        "    os.write(1, f'leftover {os.getpid()}\\n'.encode()); os.close(1); os.close(2); os.close(w)\n"
        f"    while not os.path.exists({str(archive)!r}): time.sleep(0.01)\n"
        f"    open({str(seen)!r}, 'w').close(); time.sleep(60)\n"
        "os.close(w); os.read(r, 1)\n"
    )
    w = Wrapper([*opts, "-q", "--", PY, "-c", script], env)
    assert w.wait(timeout=60) == 0
    pid = int(next(line for line in w.out if line.startswith("leftover")).split()[1])
    assert not Path(f"/proc/{pid}").exists()  # killed and reaped
    assert seen.exists()
    assert untar_single(read(PREFIX + "main-log.tgz"))[1] == f"leftover {pid}\n".encode()


@pytest.mark.parametrize("name", ["SIGABRT", "SIGBUS", "SIGFPE", "SIGILL", "SIGSEGV", "SIGSYS", "SIGTRAP"])
def test_fault_signal_sent_to_the_wrapper_is_forwarded_and_the_log_stored(local, name: str) -> None:
    env, read, opts = local
    sig = int(getattr(signal, name))
    w = Wrapper([*opts, "-q", "--", PY, "-c", ECHO_SIGNAL, str(sig)], env)
    w.wait_line("ready")
    command = Path(f"/proc/{w.proc.pid}/task/{w.proc.pid}/children").read_text().split()
    try:
        w.proc.send_signal(sig)
        assert w.wait(timeout=30) == 0
    finally:  # a wrapper killed by the signal would leave COMMAND running
        for pid in command:
            try:
                os.kill(int(pid), signal.SIGKILL)
            except ProcessLookupError:
                pass
    assert untar_single(read(PREFIX + "main-log.tgz"))[1] == f"ready\ngot {sig}\n".encode()
    summary = json.loads(read(PREFIX + "main-summary.json"))
    assert summary["signals_received"] == [sig]


REAL_FAULT = r"""
import ctypes, os, sys
from entrypoint.report import Reporter
from entrypoint.wrapper.supervisor import Supervisor, start
sup = Supervisor(["sleep", "30"], Reporter())
assert start(sup, Reporter()) is None
print("running", flush=True)
if sys.argv[1] == "segv":
    ctypes.string_at(0)
else:
    os.abort()
"""


@pytest.mark.parametrize("fault", ["segv", "abort"])
def test_a_real_fault_of_the_wrapper_still_ends_it(fault: str) -> None:
    """SIGSEGV/SIGABRT are blocked to be taken as sent signals; a genuine one still kills."""
    out = subprocess.run([PY, "-c", REAL_FAULT, fault], capture_output=True, timeout=60, cwd=Path(__file__).parent.parent)
    assert out.stdout == b"running\n", out.stderr
    assert out.returncode == -(signal.SIGSEGV if fault == "segv" else signal.SIGABRT)


SESSION = "import os; print('session' if os.getsid(0) == os.getpid() else 'inherited', os.getpgid(0) == os.getpid())"


def _session_of_command(env: dict[str, str], opts: list[str], terminal: bool) -> str:
    """What COMMAND reports of its session and group, the wrapper started in a session of its own
    with (or without) a controlling terminal, stdin not that terminal in either case."""
    import fcntl
    import termios

    main, tty = os.openpty()
    try:
        out = subprocess.run(
            [*WRAPPER, *opts, "-q", "--", PY, "-c", SESSION],
            env=env, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=60,
            start_new_session=True,  # runs before preexec_fn: the terminal is taken in a new session
            preexec_fn=(lambda: fcntl.ioctl(tty, termios.TIOCSCTTY, 0)) if terminal else None,
            pass_fds=(tty,),
        )  # fmt: skip
    finally:
        os.close(main)
        os.close(tty)
    assert out.returncode == 0, out.stderr
    return out.stdout


def test_command_leads_a_session_of_its_own_without_a_terminal(local) -> None:
    """As with dumb-init: a pod has no terminal, and COMMAND's processes are then scheduled apart
    from the wrapper's reaping thread wherever the kernel's autogroup acts."""
    env, _read, opts = local
    assert _session_of_command(env, opts, terminal=False) == "session True\n"


def test_command_keeps_the_session_of_a_controlling_terminal(local) -> None:
    """With a controlling terminal (stdin redirected), COMMAND stays in its session, so it can still
    open /dev/tty (a password prompt), in a process group of its own as before."""
    env, _read, opts = local
    assert _session_of_command(env, opts, terminal=True) == "inherited True\n"


LOST_SIGCHLD = r"""
import os, sys, threading, types
from entrypoint.report import Reporter
from entrypoint.wrapper import supervisor as sv


def swallow_sigchld(mask, timeout):  # as if every SIGCHLD were lost before the signal thread saw it
    info = sv_signal.sigtimedwait(mask, timeout)
    return None if info is not None and info.si_signo == sv_signal.SIGCHLD else info


sv_signal = sv._signal
sv._signal = types.SimpleNamespace(**{n: getattr(sv_signal, n) for n in dir(sv_signal) if not n.startswith("__")})
sv._signal.sigtimedwait = swallow_sigchld
sv.REAP_EVERY = 0.05
sup = sv.Supervisor([sys.executable, "-c", "import sys; sys.exit(3)"], Reporter())
assert sv.start(sup, Reporter()) is None


class Sink:
    def write(self, data):
        pass

    def due(self):
        return None

    def tick(self, now):
        pass


sup.sink = Sink()
done = []
runner = threading.Thread(target=lambda: done.append(sup.run()), daemon=True)
runner.start()
runner.join(60)
print("exit", done)
"""


def test_command_is_reaped_even_if_its_sigchld_is_lost() -> None:
    """The signal thread also reaps every REAP_EVERY seconds, as tini's loop does: with every
    SIGCHLD swallowed, COMMAND's exit is still seen (without it the run would wait for ever)."""
    out = subprocess.run(
        [PY, "-c", LOST_SIGCHLD], capture_output=True, text=True, timeout=120,
        env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parent.parent)},
    )  # fmt: skip
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout == "exit [3]\n"
