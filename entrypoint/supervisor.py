"""Supervisor: spawn COMMAND, pump its output, forward signals, reap every child.

One thread (the main one) runs an event loop over COMMAND's stdout and stderr pipes, the
signal wakeup pipe and the capture's flush timer. Reaping is done here alone, with
``waitpid(-1, WNOHANG)`` after each SIGCHLD, so no other code can steal COMMAND's status.
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
from typing import Optional, Protocol

from . import exitcodes
from .report import Reporter

READ_SIZE = 1024 * 1024
PIPE_SIZE = 1024 * 1024
DRAIN_GRACE = 1.0  # after COMMAND exits, how long descendants may keep its pipes open
F_SETPIPE_SZ = 1031
PR_SET_CHILD_SUBREAPER = 36

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


class Sink(Protocol):
    """Where captured output goes (the capture's rolling buffer)."""

    def write(self, data: memoryview) -> None: ...
    def due(self) -> Optional[float]: ...
    def tick(self, now: float) -> None: ...


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
        sink: Sink,
        reporter: Reporter,
        clock: Callable[[], float] = time.monotonic,
        stdout: int = 1,
        stderr: int = 2,
    ) -> None:
        self.command = list(command)
        self.sink = sink
        self.reporter = reporter
        self.clock = clock
        self.targets = (stdout, stderr)
        self.writable = {stdout: True, stderr: True}  # our output fd -> still writable
        self.pid = 0
        self.status: Optional[int] = None  # COMMAND's wait status once reaped
        self.exited_at: Optional[float] = None
        self._wake_r = self._wake_w = -1
        self._pipes: dict[int, int] = {}  # our read end -> where it passes through
        self._old_handlers: dict[int, object] = {}
        self._tty_handed_over = False
        self._buffer = bytearray(READ_SIZE)
        self.signals_received: list[int] = []

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
        for (r, w), target in zip(fds, (1, 2)):
            os.close(w)
            self._pipes[r] = self.targets[target - 1]
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

    # -- the loop ------------------------------------------------------------------------------
    def forward(self, sig: int) -> None:
        try:
            os.killpg(self.pid, sig)
        except ProcessLookupError:
            pass
        except PermissionError:
            self.reporter.debug(f"cannot forward signal {sig}")

    def run(self) -> int:
        """Pump and supervise until COMMAND has exited and its pipes are drained; its exit code."""
        selector = selectors.DefaultSelector()
        for fd in self._pipes:
            selector.register(fd, selectors.EVENT_READ)
        selector.register(self._wake_r, selectors.EVENT_READ)
        drain_deadline: Optional[float] = None
        try:
            while self._pipes or self.status is None:
                now = self.clock()
                timeout = None
                due = self.sink.due()
                if due is not None:
                    timeout = max(0.0, due - now)
                if drain_deadline is not None:
                    if now >= drain_deadline:
                        break
                    left = drain_deadline - now
                    timeout = left if timeout is None else min(timeout, left)
                for key, _ in selector.select(timeout):
                    fd = int(key.fd)
                    if fd == self._wake_r:
                        self._on_wakeup()
                    elif not self._pump(fd):
                        selector.unregister(fd)
                        os.close(fd)
                        del self._pipes[fd]
                self.sink.tick(self.clock())
                if self.status is not None and drain_deadline is None:
                    drain_deadline = self.clock() + DRAIN_GRACE
        finally:
            for fd in list(self._pipes):
                selector.unregister(fd)
                os.close(fd)
            self._pipes.clear()
            selector.close()
            self._take_back_terminal()
        assert self.status is not None
        return exit_code(self.status)

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
        self.sink.write(data)
        return True

    def _on_wakeup(self) -> None:
        try:
            data = os.read(self._wake_r, 4096)
        except BlockingIOError:
            data = b""
        for sig in data:
            if sig != signal.SIGCHLD:
                self.signals_received.append(sig)
                self.forward(sig)
        self.reap()

    def reap(self) -> None:
        """Collect every exited child; note COMMAND's status."""
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            if pid == self.pid:
                self.status = status
                self.exited_at = self.clock()


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
