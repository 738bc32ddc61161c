"""Supervisor: spawn COMMAND, pump its output, forward signals, enforce deadlines, reap children.

One thread (the main one) runs an event loop over COMMAND's stdout and stderr pipes, the signal
wakeup pipe and a handful of timers (the capture's flush interval, ``--timeout``, the SIGKILL
escalation, the drain of leftover processes). Reaping is done here alone, with
``waitpid(-1, WNOHANG)`` after each SIGCHLD, so no other code can steal COMMAND's status. The
wrapper registers as child subreaper, so orphaned descendants are re-parented to it and reaped too,
whether or not it is PID 1.
"""

from __future__ import annotations

import ctypes
import errno
import fcntl
import os
import select
import selectors
import signal
import time
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple, Optional, Protocol

from .. import exitcodes
from ..report import Reporter
from ..settings.tekton import TektonDeadline

READ_SIZE = 1024 * 1024
PIPE_SIZE = 1024 * 1024
F_SETPIPE_SZ = 1031
PR_SET_CHILD_SUBREAPER = 36
WAKE = 0  # byte written to the wakeup pipe by other threads; signal numbers are never 0

# Synchronous faults are not forwarded (nor caught); SIGPIPE stays ignored so that a closed
# stdout shows up as EPIPE on write; SIGCHLD is ours.
NOT_FORWARDED = {
    signal.SIGKILL,
    signal.SIGSTOP,
    signal.SIGCHLD,
    signal.SIGPIPE,
    signal.SIGSEGV,
    signal.SIGBUS,
    signal.SIGFPE,
    signal.SIGILL,
    signal.SIGABRT,
    signal.SIGSYS,
    signal.SIGTRAP,
}
INTERRUPTS = (signal.SIGINT, signal.SIGTERM)


class Sink(Protocol):
    """Where captured output goes (the capture's rolling buffer)."""

    def write(self, data: memoryview) -> None: ...
    def due(self) -> Optional[float]: ...
    def tick(self, now: float) -> None: ...


class Policy(NamedTuple):
    """How COMMAND is stopped. Durations in seconds; None: never."""

    timeout: Optional[float] = None  # --timeout: SIGTERM COMMAND's group when it passes
    kill_after: float = 20.0  # --kill-after: SIGKILL the group this long after a SIGTERM
    signal_child_only: bool = False  # --signal-child-only: forward to COMMAND, not its group
    leftover_grace: float = 2.0  # leftovers get SIGTERM, then SIGKILL after this
    drain_grace: float = 1.0  # how long pipes may stay open once every process is gone
    stop_at: Optional[float] = None  # a time (on the clock) to stop COMMAND at: a Tekton step timeout's
    timeout_warning: str = ""  # what the warning says when it passes ("": --timeout's)


DEFAULT_POLICY = Policy()


def policy_of(cfg: Any, tekton: Optional[TektonDeadline] = None) -> Policy:
    """The stop policy a ``settings.step.Config`` asks for; ``tekton``: the plan for a Tekton step
    timeout (an explicit ``--timeout`` wins over it)."""
    policy = Policy(timeout=cfg.timeout, kill_after=cfg.kill_after, signal_child_only=cfg.signal_child_only)
    if tekton is None or cfg.timeout is not None:
        return policy
    before = tekton.ends_at - tekton.stop_at
    warning = (
        f"stopping COMMAND {before:.1f}s before the Tekton step timeout ({tekton.step_timeout:g}s) "
        "SIGKILLs the step, to store its log and results first"
    )
    return policy._replace(stop_at=tekton.stop_at, kill_after=tekton.kill_after, timeout_warning=warning)


class SpawnError(Exception):
    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code


def exit_code(status: int) -> int:
    """A wait status as a shell reports it: the exit code, or 128+N for signal N."""
    code = os.waitstatus_to_exitcode(status)
    return exitcodes.SIGNAL_BASE - code if code < 0 else code


def become_subreaper() -> bool:
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return bool(libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) == 0)
    except (OSError, AttributeError):
        return False


class Supervisor:
    def __init__(
        self,
        command: Sequence[str],
        reporter: Reporter,
        clock: Callable[[], float] = time.monotonic,
        policy: Policy = DEFAULT_POLICY,
        stdout: int = 1,
        stderr: int = 2,
    ) -> None:
        self.command = list(command)
        self.sink: Optional[Sink] = None  # the capture; set before run()
        self.reporter = reporter
        self.clock = clock
        self.policy = policy
        self.targets = (stdout, stderr)
        self.writable = {stdout: True, stderr: True}  # our output fd -> still writable
        self.pid = 0
        self.started_at = 0.0
        self.status: Optional[int] = None  # COMMAND's wait status once reaped
        self.exited_at: Optional[float] = None
        self.timed_out = False
        self.interrupts = 0  # SIGINT/SIGTERM received so far
        self.terminated_at: Optional[float] = None  # first SIGTERM received
        self.signals_received: list[int] = []
        self._wake_r = self._wake_w = -1
        self._pipes: dict[int, int] = {}  # our read end -> where it passes through
        self._old_handlers: dict[int, object] = {}
        self._tty_handed_over = False
        self._buffer = bytearray(READ_SIZE)
        self._timers: dict[str, float] = {}  # name -> monotonic deadline
        self._leftovers: set[int] = set()
        self._exit_handled = False
        self._drained = False

    # -- set-up --------------------------------------------------------------------------------
    def install_signals(self) -> None:
        """Catch every forwardable signal (before spawning, so none is missed)."""
        self._wake_r, self._wake_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        signal.set_wakeup_fd(self._wake_w, warn_on_full_buffer=False)
        for sig in signal.valid_signals():
            if sig in NOT_FORWARDED and sig != signal.SIGCHLD:
                continue
            try:
                self._old_handlers[sig] = signal.signal(sig, _noted)
            except (OSError, ValueError):
                pass  # reserved real-time signals

    def restore_signals(self) -> None:
        for sig, handler in self._old_handlers.items():
            try:
                signal.signal(sig, handler)  # type: ignore[arg-type]
            except (OSError, ValueError, TypeError):
                pass
        signal.set_wakeup_fd(-1)

    def spawn(self) -> int:
        """Start COMMAND in its own process group, its stdout/stderr on our pipes."""
        become_subreaper()
        fds = []
        file_actions = []
        for target in (1, 2):
            r, w = os.pipe2(os.O_CLOEXEC)
            try:
                fcntl.fcntl(r, F_SETPIPE_SZ, PIPE_SIZE)
            except OSError:
                pass
            fds.append((r, w))
            file_actions.append((os.POSIX_SPAWN_DUP2, w, target))
        try:
            self.pid = os.posix_spawnp(
                self.command[0],
                self.command,
                os.environ,
                file_actions=file_actions,
                setpgroup=0,
                setsigmask=(),
                setsigdef=(signal.SIGPIPE, signal.SIGXFSZ),
            )
        except OSError as exc:
            for r, w in fds:
                os.close(r)
                os.close(w)
            name = self.command[0]
            if exc.errno == errno.ENOENT:
                raise SpawnError(exitcodes.NOT_FOUND, f"{name}: command not found") from None
            raise SpawnError(exitcodes.NOT_EXECUTABLE, f"{name}: {exc.strerror}") from None
        self.started_at = self.clock()
        for (r, w), target in zip(fds, (1, 2)):
            os.close(w)
            self._pipes[r] = self.targets[target - 1]
        if self.policy.timeout is not None:
            self._timers["timeout"] = self.started_at + self.policy.timeout
        stop_at = self.policy.stop_at
        if stop_at is not None and stop_at < self._timers.get("timeout", stop_at + 1):
            self._timers["timeout"] = stop_at
        self._hand_over_terminal()
        return self.pid

    def _hand_over_terminal(self) -> None:
        """Interactive use: make COMMAND's group the terminal's foreground group (as tini does)."""
        try:
            if os.isatty(0) and os.tcgetpgrp(0) == os.getpgrp():
                os.tcsetpgrp(0, self.pid)
                self._tty_handed_over = True
        except OSError:
            pass

    def _take_back_terminal(self) -> None:
        if not self._tty_handed_over:
            return
        old = signal.signal(signal.SIGTTOU, signal.SIG_IGN)
        try:
            os.tcsetpgrp(0, os.getpgrp())
        except OSError:
            pass
        finally:
            signal.signal(signal.SIGTTOU, old)

    # -- signals -------------------------------------------------------------------------------
    def send(self, sig: int, whole_group: bool = True) -> None:
        """Send ``sig`` to COMMAND's process group (or COMMAND alone)."""
        try:
            if whole_group:
                os.killpg(self.pid, sig)
            else:
                os.kill(self.pid, sig)
        except ProcessLookupError:
            pass
        except PermissionError:
            self.reporter.debug(f"cannot send signal {sig} to COMMAND")

    def wake(self) -> None:
        """Wake the loop from another thread (e.g. an upload finished)."""
        try:
            os.write(self._wake_w, bytes([WAKE]))
        except OSError:
            pass  # pipe full: the loop is awake anyway

    def _on_signal(self, sig: int) -> None:
        self.signals_received.append(sig)
        if sig in INTERRUPTS:
            self.interrupts += 1
        if sig == signal.SIGTERM and self.terminated_at is None:
            self.terminated_at = self.clock()
        if self.status is not None:
            return  # COMMAND is gone; its leftovers get their own treatment
        self.send(sig, whole_group=not self.policy.signal_child_only)
        if sig == signal.SIGTERM:
            self._schedule_kill()

    def _schedule_kill(self) -> None:
        if "kill" not in self._timers:
            self._timers["kill"] = self.clock() + self.policy.kill_after

    def read_wakeups(self) -> list[int]:
        """Drain the wakeup pipe, reap, and return the signals that arrived (0 = a wake())."""
        try:
            data = os.read(self._wake_r, 4096)
        except BlockingIOError:
            data = b""
        got = []
        for sig in data:
            if sig == signal.SIGCHLD:
                continue
            got.append(sig)
            if sig != WAKE:
                self._on_signal(sig)
        self.reap()
        return got

    def wait_wakeup(self, timeout: Optional[float]) -> list[int]:
        """After the run: block until a signal or a wake(); what arrived."""
        ready, _, _ = select.select([self._wake_r], [], [], timeout)
        return self.read_wakeups() if ready else []

    def reap(self) -> None:
        """Collect every exited child; note COMMAND's status."""
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            self._leftovers.discard(pid)
            if pid == self.pid:
                self.status = status
                self.exited_at = self.clock()

    # -- the loop ------------------------------------------------------------------------------
    def run(self) -> int:
        """Pump and supervise until COMMAND has exited, its leftovers are reaped and its pipes
        are drained; COMMAND's exit code (or 124 when --timeout stopped it)."""
        assert self.sink is not None, "set the supervisor's sink before run()"
        sink = self.sink
        selector = selectors.DefaultSelector()
        for fd in self._pipes:
            selector.register(fd, selectors.EVENT_READ)
        selector.register(self._wake_r, selectors.EVENT_READ)
        try:
            while not self._finished():
                now = self.clock()
                deadline = min(self._timers.values(), default=None)
                due = sink.due()
                if due is not None and (deadline is None or due < deadline):
                    deadline = due
                timeout = None if deadline is None else max(0.0, deadline - now)
                for key, _ in selector.select(timeout):
                    fd = int(key.fd)
                    if fd == self._wake_r:
                        self.read_wakeups()
                    elif not self._pump(fd):
                        selector.unregister(fd)
                        os.close(fd)
                        del self._pipes[fd]
                now = self.clock()
                sink.tick(now)
                self._run_timers(now)
        finally:
            for fd in list(self._pipes):
                selector.unregister(fd)
                os.close(fd)
            self._pipes.clear()
            selector.close()
            self._take_back_terminal()
        assert self.status is not None
        if self.timed_out:
            return exitcodes.TIMEOUT
        return exit_code(self.status)

    def _finished(self) -> bool:
        if self.status is None:
            return False
        if not self._exit_handled:
            self._exit_handled = True
            self._after_exit()
        if self._leftovers:
            return False
        if not self._pipes:
            return True
        if "drain" not in self._timers and not self._drained:
            self._timers["drain"] = self.clock() + self.policy.drain_grace
        return self._drained

    def _after_exit(self) -> None:
        """COMMAND exited: stop its timers, ask its leftover descendants to go."""
        self._timers.pop("timeout", None)
        self._timers.pop("kill", None)
        self.reap()
        self._leftovers = set(_descendants())
        if self._leftovers:
            self.reporter.debug(f"stopping {len(self._leftovers)} leftover process(es)")
            for pid in self._leftovers:
                _kill(pid, signal.SIGTERM)
            self._timers["leftovers"] = self.clock() + self.policy.leftover_grace

    def _run_timers(self, now: float) -> None:
        for name, when in list(self._timers.items()):
            if now < when:
                continue
            del self._timers[name]
            if name == "timeout":
                self.timed_out = True
                self.reporter.warn(
                    self.policy.timeout_warning
                    or f"--timeout passed after {now - self.started_at:.1f}s: stopping COMMAND"
                )
                self.send(signal.SIGTERM)
                self._schedule_kill()
            elif name == "kill" and self.status is None:
                self.reporter.warn(
                    f"COMMAND still running {self.policy.kill_after:g}s after SIGTERM: sending SIGKILL"
                )
                self.send(signal.SIGKILL)
            elif name == "leftovers":
                self._leftovers.update(_descendants())  # late forks too
                self._leftovers = {pid for pid in self._leftovers if _kill(pid, signal.SIGKILL)}
                if self._leftovers:
                    self._timers["leftovers-gone"] = now + 1.0
            elif name == "leftovers-gone":
                if self._leftovers:  # not ours to reap (or not ours to kill): stop waiting
                    self.reporter.warn(f"leftover process(es) {sorted(self._leftovers)} did not go away")
                self._leftovers.clear()
            elif name == "drain":
                self._drained = True

    def _pump(self, fd: int) -> bool:
        """Move one read's worth from COMMAND to our output and the capture; False at EOF."""
        try:
            n = os.readv(fd, [self._buffer])
        except BlockingIOError:
            return True
        if n == 0:
            return False
        data = memoryview(self._buffer)[:n]
        out = self._pipes[fd]
        if self.writable[out]:
            try:
                _write_out(out, data)
            except OSError:
                self.writable[out] = False  # reader went away: keep capturing
        self.sink.write(data)  # type: ignore[union-attr]  # run() checked it
        return True


def start(supervisor: Supervisor, reporter: Reporter) -> Optional[int]:
    """Catch signals and spawn COMMAND; None when it runs, else the exit code (126/127)."""
    supervisor.install_signals()
    try:
        supervisor.spawn()
    except SpawnError as exc:
        supervisor.restore_signals()
        reporter.error(str(exc))
        return exc.code
    return None


def _descendants() -> list[int]:
    """Live (not yet reaped) descendants of this process."""
    import psutil  # only needed once COMMAND has exited

    try:
        children = psutil.Process().children(recursive=True)
    except psutil.Error:
        return []
    return [c.pid for c in children if _alive(c)]


def _alive(proc: object) -> bool:
    import psutil

    try:
        return bool(proc.status() != psutil.STATUS_ZOMBIE)  # type: ignore[attr-defined]
    except psutil.Error:
        return False


def _kill(pid: int, sig: int) -> bool:
    """Signal ``pid``; False when it is gone."""
    try:
        os.kill(pid, sig)
        return True
    except ProcessLookupError:
        return False
    except PermissionError:
        return True


def _noted(signum: int, frame: object) -> None:
    """Signal handler: the wakeup fd already carries the signal number to the loop."""


def _write_out(fd: int, data: memoryview) -> None:
    while data:
        try:
            n = os.write(fd, data)
        except BlockingIOError:  # our stdout was handed to us non-blocking
            select.select([], [fd], [], 1.0)
            continue
        data = data[n:]
