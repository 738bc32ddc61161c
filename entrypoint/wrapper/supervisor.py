"""Supervisor: spawn COMMAND, pump its output, forward signals, enforce deadlines, reap children.

From the moment of the spawn one thread (``tu-pump``) runs the loop over COMMAND's stdout and
stderr pipes, the wakeup pipe and the timers (flush interval, ``--timeout``, the SIGKILL escalation,
the drain); the rest of the wrapper is wired meanwhile, and COMMAND's first output waits in memory
(in arrival order) until ``run()`` hands over the capture. Every signal we take is blocked in every
thread (the mask is set before any thread starts) and taken by one thread (``tu-signals``) with
``sigwaitinfo``, as tini does: it forwards a signal the moment it is taken and reaps on SIGCHLD
(``waitpid(-1, WNOHANG)``: nothing else reaps, so no code can steal COMMAND's status); the loop does
the bookkeeping (and reaps every REAP_EVERY seconds all the same). As child subreaper the wrapper
reaps orphaned descendants, PID 1 or not. COMMAND inherits the ignored signals and the mask the
wrapper was started with (Python's SIGPIPE/SIGXFSZ ignore is undone). A fault signal sent by
another process is forwarded like any other; a real fault of the wrapper still ends it.

On a terminal, COMMAND is put in its own process group and made the terminal's foreground group
*before* it execs (fork + exec; posix_spawn otherwise, which is faster), so a COMMAND that reads
the terminal at once is never stopped by SIGTTIN. Without a terminal COMMAND gets a session of its
own (as with dumb-init): where the kernel's autogroup acts (the root CPU cgroup), a storm of its
processes is then scheduled as one group and cannot starve our reaping thread.
"""

from __future__ import annotations

import errno
import fcntl
import os
import select
import sys
import time
from _thread import allocate_lock

from .. import exitcodes, threads
from . import proctree
from .early import EARLY_LIMIT, Early
from .hardening import prctl
from .policy import DEFAULT_POLICY, Policy

TYPE_CHECKING = False
if TYPE_CHECKING:
    import signal as _signal
    from collections import deque
    from collections.abc import Callable, Sequence
    from typing import Optional, Protocol

    from ..report import Reporter

    class Sink(Protocol):
        """Where captured output goes (the capture's rolling buffer)."""

        def write(self, data: memoryview) -> None: ...
        def due(self) -> Optional[float]: ...
        def tick(self, now: float) -> None: ...

else:
    # signal's and collections' builtin modules (no enum, ...): loaded before COMMAND starts
    import _signal
    from _collections import deque


READ_SIZE = 1024 * 1024
PIPE_SIZE = 1024 * 1024
F_SETPIPE_SZ = 1031
PR_SET_CHILD_SUBREAPER = 36
WAKE = 0  # byte written to the wakeup pipe by other threads; signal numbers are never 0
# The pump and the signal thread get the interpreter within this (Python's default is 5 ms):
SWITCH_INTERVAL_WIRING = 0.0001  # while the rest of the wrapper is imported,
SWITCH_INTERVAL = 0.001  # then while it runs
TTY_CHECK = 0.5  # on a terminal: how often a stopped (^Z) foreground job is looked for
REAP_EVERY = 1.0  # the signal thread reaps at least this often, SIGCHLD or not (tini's period)

# SIGPIPE stays ignored (Python's default) so that a closed stdout shows up as EPIPE on write;
# SIGCHLD is ours; SIGKILL and SIGSTOP cannot be taken. Every other signal is forwarded.
NOT_FORWARDED = {_signal.SIGKILL, _signal.SIGSTOP, _signal.SIGCHLD, _signal.SIGPIPE}
WAITED = frozenset(_signal.valid_signals()) - {_signal.SIGKILL, _signal.SIGSTOP, _signal.SIGPIPE}
# Forwarded only when sent (kill, sigqueue, tgkill): a real fault is the kernel's to deliver.
FAULT_NAMES = ("ABRT", "BUS", "FPE", "ILL", "SEGV", "SYS", "TRAP")
FAULTS = frozenset(getattr(_signal, f"SIG{name}") for name in FAULT_NAMES)
SENT = (0, -1, -6)  # si_code SI_USER, SI_QUEUE, SI_TKILL
# Python ignores these at start-up, before any code of ours runs: COMMAND gets their default.
PYTHON_IGNORES = (_signal.SIGPIPE, _signal.SIGXFSZ)
INTERRUPTS = (_signal.SIGINT, _signal.SIGTERM)


class SpawnError(Exception):
    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code


def exit_code(status: int) -> int:
    """A wait status as a shell reports it: the exit code, or 128+N for signal N."""
    code = os.waitstatus_to_exitcode(status)
    return exitcodes.SIGNAL_BASE - code if code < 0 else code


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
        self._arrived: deque[tuple[int, float]] = deque()  # (signal, when)
        self._signal_thread: Optional[threads.Handle] = None
        self._lock = allocate_lock()  # a pid is never signalled once reaped: reap and send hold it
        self._reaped: deque[int] = deque()  # for the loop to act on
        self._loop_thread: Optional[threads.Handle] = None
        self._early = Early()  # the sink until the capture is wired
        self._next_sink: Optional[Sink] = None  # handed over by run()
        self._adopted = False  # the loop writes to the capture (not to _early)
        self._loop_code: Optional[int] = None
        self._loop_error: Optional[BaseException] = None
        self._listening = False
        self._inherited_mask: Optional[set[int]] = None  # the mask we were started with
        self._chld_was_ignored = False
        self._tty_handed_over = False
        self._tty_resumed = False
        self._buffer = bytearray(READ_SIZE)
        self._timers: dict[str, float] = {}  # name -> monotonic deadline
        self._leftovers: set[int] = set()
        self._exit_handled = False
        self._drained = False

    # -- set-up --------------------------------------------------------------------------------
    def install_signals(self) -> None:
        """Block every signal we take, in this thread and so in every thread started after it
        (before spawning, so none is missed); they wait, pending, for the signal thread."""
        if self._inherited_mask is not None:
            return
        self._wake_r, self._wake_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        self._inherited_mask = _signal.pthread_sigmask(_signal.SIG_BLOCK, WAITED)
        if _signal.getsignal(_signal.SIGCHLD) == _signal.SIG_IGN:  # would reap for us: no status
            self._chld_was_ignored = True
            _signal.signal(_signal.SIGCHLD, _signal.SIG_DFL)

    def restore_signals(self) -> None:
        """Stop taking signals: the signal thread ends and the inherited mask is back."""
        if self._inherited_mask is None:
            return
        thread = self._signal_thread
        self._listening = False
        if thread is not None and thread.ident is not None:
            _signal.pthread_kill(thread.ident, _signal.SIGCHLD)  # ends its sigwaitinfo
            thread.join(1.0)
        if self._chld_was_ignored:
            _signal.signal(_signal.SIGCHLD, _signal.SIG_IGN)
        _signal.pthread_sigmask(_signal.SIG_SETMASK, self._inherited_mask)
        self._inherited_mask = None

    def _listen(self) -> None:
        """Start the signal thread (after the spawn: what arrives meanwhile stays pending)."""
        self._listening = True
        self._signal_thread = threads.start(self._take_signals, "signals")

    def _take_signals(self) -> None:
        """Forward each signal the moment it is taken (the loop only does the bookkeeping)."""
        while self._listening:
            info = _signal.sigtimedwait(WAITED, REAP_EVERY)
            if info is None:  # none for a while: reap all the same (tini does: a lost SIGCHLD
                if self._collect():  # must not leave a zombie for good)
                    self.wake()
                continue
            sig = info.si_signo
            if sig in FAULTS and info.si_code not in SENT:
                continue  # not sent by anyone: never forwarded
            if not self._listening:
                break
            if sig == _signal.SIGCHLD:
                self._collect()  # zombies go at once, not when the loop next runs
            else:
                with self._lock:
                    if self.status is None:  # COMMAND is gone: its leftovers get their own treatment
                        self.send(sig, whole_group=not self.policy.signal_child_only)
            self._arrived.append((sig, self.clock()))
            self.wake()

    def spawn(self) -> int:
        """Start COMMAND in its own process group, its stdout/stderr on our pipes."""
        self.install_signals()
        prctl(PR_SET_CHILD_SUBREAPER, 1)  # orphaned descendants are ours to reap, PID 1 or not
        if not self.command[0]:
            raise SpawnError(exitcodes.NOT_FOUND, "'': command not found")
        fds = []
        for _target in (1, 2):
            r, w = os.pipe2(os.O_CLOEXEC)
            try:
                fcntl.fcntl(r, F_SETPIPE_SZ, PIPE_SIZE)
            except OSError:
                pass
            fds.append((r, w))
        dups = [(w, target) for (_r, w), target in zip(fds, (1, 2))]
        try:
            terminal = self._terminal()
            if terminal == "foreground":
                self.pid = self._fork_exec_in_foreground(dups)
                self._tty_handed_over = True
            else:
                group = {"setpgroup": 0} if terminal else {"setsid": True}
                self.pid = os.posix_spawnp(
                    self.command[0],
                    self.command,
                    os.environ,
                    file_actions=[(os.POSIX_SPAWN_DUP2, w, target) for w, target in dups],
                    setsigmask=self._command_mask(),
                    setsigdef=self._command_defaults(),
                    **group,
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
        if self._tty_handed_over:
            self._timers["tty"] = self.started_at + TTY_CHECK
        self._listen()
        self._loop_thread = threads.start(self._loop_main, "pump")  # pumps and reaps from now on
        return self.pid

    def _command_mask(self) -> set[int]:
        return set(self._inherited_mask or ())

    def _command_defaults(self) -> tuple[int, ...]:
        return (*PYTHON_IGNORES, _signal.SIGCHLD) if self._chld_was_ignored else PYTHON_IGNORES

    @staticmethod
    def _terminal() -> str:
        """"foreground": ours (interactive use); "other": one COMMAND may open (/dev/tty); "": none."""
        try:
            if os.isatty(0) and os.tcgetpgrp(0) == os.getpgrp():
                return "foreground"
            os.close(os.open("/dev/tty", os.O_RDONLY | os.O_NOCTTY | os.O_NONBLOCK))
        except OSError:
            return ""  # ENXIO: no controlling terminal (a pod, a CI job); ENOENT: no /dev/tty
        return "other"

    def _fork_exec_in_foreground(self, dups: list[tuple[int, int]]) -> int:
        """fork + exec, the child taking its own group and the terminal before it execs (as tini
        does; posix_spawn cannot). Every signal is blocked here, so none runs Python code in the
        child; SIGTTOU being blocked lets it call tcsetpgrp from its new background group."""
        err_r, err_w = os.pipe2(os.O_CLOEXEC)
        pid = os.fork()
        if pid == 0:  # the child: no return from here
            try:
                os.setpgid(0, 0)
                os.tcsetpgrp(0, os.getpid())
                for fd, target in dups:
                    os.dup2(fd, target)
                for sig in self._command_defaults():
                    _signal.signal(sig, _signal.SIG_DFL)
                if _signal.getsignal(_signal.SIGINT) not in (_signal.SIG_IGN, _signal.SIG_DFL):
                    _signal.signal(_signal.SIGINT, _signal.SIG_DFL)  # Python's: no KeyboardInterrupt here
                _signal.pthread_sigmask(_signal.SIG_SETMASK, self._command_mask())
                os.execvpe(self.command[0], self.command, os.environ)
            except OSError as exc:
                os.write(err_w, str(exc.errno or errno.ENOEXEC).encode())
            finally:
                os._exit(exitcodes.NOT_FOUND)
        os.close(err_w)
        try:
            os.setpgid(pid, pid)  # the usual belt and braces; EACCES once it has exec'd
        except OSError:
            pass
        with os.fdopen(err_r, "rb") as errors:
            failed = errors.read()
        if failed:
            os.waitpid(pid, 0)
            code = int(failed)
            raise OSError(code, os.strerror(code))
        return pid

    def _take_back_terminal(self) -> None:
        if not self._tty_handed_over:
            return
        self._tty_handed_over = False
        try:  # SIGTTOU is blocked here, so a background group may take the terminal
            os.tcsetpgrp(0, os.getpgrp())
        except OSError:
            pass

    def _resume_stopped_job(self) -> None:
        """On a terminal, ^Z stops the foreground job. A shell with job control takes the terminal
        back and gives its prompt; otherwise (COMMAND itself, or a shell without job control)
        the stopped job stays in the foreground and nobody could resume it: we do."""
        try:
            foreground = os.tcgetpgrp(0)
        except OSError:
            return
        tree = proctree.tree(self.pid)
        stopped = [pid for pid in tree if proctree.state(pid) == "T" and proctree.pgid(pid) == foreground]
        for pid in stopped:
            proctree.kill(pid, _signal.SIGCONT)
        if stopped and not self._tty_resumed:
            self._tty_resumed = True
            self.reporter.warn("COMMAND was stopped (^Z) and is resumed: no job control here (^C ends it)")

    # -- signals -------------------------------------------------------------------------------
    def send(self, sig: int, whole_group: bool = True) -> None:
        """Send ``sig`` to COMMAND's process group (or COMMAND alone)."""
        try:
            (os.killpg if whole_group else os.kill)(self.pid, sig)
        except ProcessLookupError:  # reaped already
            return
        except PermissionError:
            self.reporter.debug(f"cannot send signal {sig} to COMMAND")

    def wake(self) -> None:
        """Wake the loop from another thread (e.g. an upload finished)."""
        try:
            os.write(self._wake_w, bytes([WAKE]))
        except OSError:
            pass  # pipe full: the loop is awake anyway

    def _on_signal(self, sig: int, at: float) -> None:
        """The bookkeeping of a signal the signal thread has forwarded already."""
        self.signals_received.append(sig)
        if sig in INTERRUPTS:
            self.interrupts += 1
        if sig == _signal.SIGTERM and self.terminated_at is None:
            self.terminated_at = at
        if sig == _signal.SIGTERM and self.status is None:
            self._schedule_kill()

    def _schedule_kill(self) -> None:
        if "kill" not in self._timers:
            self._timers["kill"] = self.clock() + self.policy.kill_after

    def read_wakeups(self) -> list[int]:
        """Drain the wakeup pipe, act on the signals that arrived, reap; those signals (SIGCHLD left
        out)."""
        try:
            os.read(self._wake_r, 4096)
        except BlockingIOError:
            pass
        got = []
        while self._arrived:
            sig, at = self._arrived.popleft()
            if sig != _signal.SIGCHLD:
                got.append(sig)
                self._on_signal(sig, at)
        self.reap()
        return got

    def wait_wakeup(self, timeout: Optional[float]) -> list[int]:
        """After the run: block until a signal, a wake() or the next of our timers (the leftovers'
        SIGKILL); the signals that arrived."""
        now = self.clock()
        due = min(self._timers.values(), default=None)
        if due is not None:
            timeout = max(0.0, due - now) if timeout is None else max(0.0, min(timeout, due - now))
        ready, _, _ = select.select([self._wake_r], [], [], timeout)
        got = self.read_wakeups() if ready else []
        self._run_timers(self.clock())
        return got

    def finish(self) -> None:
        """After the final flush: end the leftovers' grace (SIGKILL), reap them, stop taking signals.
        The uploads ran while the leftovers had their grace."""
        while self._leftovers and self._timers:
            self.wait_wakeup(None)
        self.restore_signals()

    def _collect(self) -> int:
        """Wait for every exited child (the signal thread on each SIGCHLD, and the loop); note
        COMMAND's status; how many. The lock keeps a reaped pid from being signalled."""
        count = 0
        with self._lock:
            while True:
                try:
                    pid, status = os.waitpid(-1, os.WNOHANG)
                except ChildProcessError:
                    pid = 0
                if pid == 0:
                    return count
                count += 1
                if pid == self.pid:
                    self.status = status
                    self.exited_at = self.clock()
                self._reaped.append(pid)

    def reap(self) -> None:
        """Collect every exited child and act on those collected (the loop's side)."""
        self._collect()
        while self._reaped:
            pid = self._reaped.popleft()
            self._leftovers.discard(pid)
            if pid == self.pid:
                self._take_back_terminal()  # at once: leftovers must not keep it

    # -- the loop ------------------------------------------------------------------------------
    def run(self) -> int:
        """Hand the capture (``self.sink``) to the loop, which has pumped since the spawn, and wait
        until COMMAND has exited and its pipes are drained (EOF, or ``drain_grace`` after it exited
        when leftovers hold them open); COMMAND's exit code (or 124 when --timeout stopped it).
        Leftovers have been sent SIGTERM; ``finish()`` ends them."""
        assert self.sink is not None, "set the supervisor's sink before run()"
        assert self._loop_thread is not None, "spawn() starts the loop"
        self._next_sink = self.sink
        self.wake()
        self._loop_thread.join()
        if self._loop_error is not None:
            raise self._loop_error
        assert self._loop_code is not None
        return self._loop_code

    def _loop_main(self) -> None:
        try:
            self._loop_code = self._loop()
        except BaseException as exc:  # raised again in the main thread, by run()
            self._loop_error = exc

    def _loop(self) -> int:
        """Pump, reap and run the timers; COMMAND's first output goes to memory (``Early``, in
        arrival order) until run() hands over the capture, then is replayed into it."""
        sink: Sink = self._early
        poller = select.epoll()  # selectors' EpollSelector, without importing selectors
        for fd in self._pipes:
            poller.register(fd, select.EPOLLIN)
        poller.register(self._wake_r, select.EPOLLIN)
        paused = False  # the pipes wait (COMMAND blocks) while _early is full
        try:
            while not self._finished():
                now = self.clock()
                deadline = min(self._timers.values(), default=None)
                due = sink.due()
                if due is not None and (deadline is None or due < deadline):
                    deadline = due
                timeout = None if deadline is None else max(0.0, deadline - now)
                for fd, _ in poller.poll(-1 if timeout is None else timeout):
                    if fd == self._wake_r:
                        self.read_wakeups()
                    elif not self._pump(fd, sink):
                        poller.unregister(fd)
                        os.close(fd)
                        del self._pipes[fd]
                if not self._adopted and self._next_sink is not None:
                    sink = self._adopt(self._next_sink)
                    if paused:
                        paused = False
                        for fd in self._pipes:
                            poller.register(fd, select.EPOLLIN)
                elif not self._adopted and not paused and self._early.size >= EARLY_LIMIT:
                    paused = True
                    for fd in self._pipes:
                        poller.unregister(fd)
                now = self.clock()
                sink.tick(now)
                self._run_timers(now)
        finally:
            for fd in list(self._pipes):
                if not paused:
                    poller.unregister(fd)
                os.close(fd)
            self._pipes.clear()
            poller.close()
            self._timers.pop("drain", None)
            self._take_back_terminal()
        assert self.status is not None
        if self.timed_out:
            return exitcodes.TIMEOUT
        return exit_code(self.status)

    def _adopt(self, sink: Sink) -> Sink:
        sys.setswitchinterval(SWITCH_INTERVAL)  # wired: the main thread only waits from now on
        for part in self._early.parts:
            sink.write(memoryview(part))
        self._early = Early()
        self._adopted = True
        return sink

    def _finished(self) -> bool:
        if self.status is None:
            return False
        if not self._exit_handled:
            self._exit_handled = True
            self._after_exit()
        if not self._adopted:
            return False  # the capture is still being wired: the pipes wait for it
        if not self._pipes:
            return True
        if "drain" not in self._timers and not self._drained:
            self._timers["drain"] = self.clock() + self.policy.drain_grace
        return self._drained

    def _after_exit(self) -> None:
        """COMMAND exited: stop its timers, ask its leftover descendants to go."""
        for name in ("timeout", "kill", "tty"):
            self._timers.pop(name, None)
        self.reap()
        self._leftovers = set(proctree.descendants())
        if self._leftovers:
            self.reporter.debug(f"stopping {len(self._leftovers)} leftover process(es)")
            for pid in self._leftovers:
                proctree.kill(pid, _signal.SIGTERM)
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
                self.send(_signal.SIGTERM)
                self._schedule_kill()
            elif name == "kill" and self.status is None:
                self.reporter.warn(
                    f"COMMAND still running {self.policy.kill_after:g}s after SIGTERM: sending SIGKILL"
                )
                self.send(_signal.SIGKILL)
            elif name == "leftovers":
                self._leftovers.update(proctree.descendants())  # late forks too
                self._leftovers = {pid for pid in self._leftovers if proctree.kill(pid, _signal.SIGKILL)}
                if self._leftovers:
                    self._timers["leftovers-gone"] = now + 1.0
            elif name == "leftovers-gone":
                if self._leftovers:  # not ours to reap (or not ours to kill): stop waiting
                    self.reporter.warn(f"leftover process(es) {sorted(self._leftovers)} did not go away")
                self._leftovers.clear()
            elif name == "drain":
                self._drained = True
            elif name == "tty" and self.status is None:
                self._resume_stopped_job()
                self._timers["tty"] = now + TTY_CHECK

    def _pump(self, fd: int, sink: Sink) -> bool:
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
        sink.write(data)
        return True


def start(supervisor: Supervisor, reporter: Reporter) -> Optional[int]:
    """Take signals and spawn COMMAND; None when it runs, else the exit code (126/127)."""
    supervisor.install_signals()
    sys.setswitchinterval(SWITCH_INTERVAL_WIRING)
    try:
        supervisor.spawn()
    except SpawnError as exc:
        supervisor.restore_signals()
        reporter.error(str(exc))
        return exc.code
    return None


def _write_out(fd: int, data: memoryview) -> None:
    while data:
        try:
            n = os.write(fd, data)
        except BlockingIOError:  # our stdout was handed to us non-blocking
            select.select([], [fd], [], 1.0)
            continue
        data = data[n:]
