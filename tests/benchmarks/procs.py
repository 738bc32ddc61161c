"""Timing processes precisely (issue 16): FIFO rendezvous, wait4() rusage, per-thread CPU, zombies.

A FIFO's ``open`` blocks until the other end is opened too, so ``open(FIFO, O_WRONLY)`` in the
harness returns when COMMAND (``cat FIFO``) has opened it: COMMAND is running, measured without a
Python start-up in COMMAND. Every time is ``time.monotonic()``, one clock for all processes.
"""

from __future__ import annotations

import os
import select
import subprocess
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Optional

TICK = os.sysconf("SC_CLK_TCK")


def fifo(directory: Path, name: str = "fifo") -> Path:
    path = directory / name
    os.mkfifo(path)
    return path


def spawn(argv: list[str], env: Optional[dict[str, str]], stderr: IO[bytes]) -> tuple[subprocess.Popen[bytes], float]:
    t0 = time.monotonic()
    proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=stderr, env=env)
    return proc, t0


class RendezvousFailed(RuntimeError):
    pass


def rendezvous(path: Path, write: bool, proc: subprocess.Popen[bytes], timeout: float = 60) -> tuple[int, float]:
    """Open ``path`` (blocking) and return the fd and the monotonic time the open returned.

    A watchdog opens the other end itself if ``proc`` exits first or ``timeout`` passes, so a
    COMMAND that never opens the FIFO fails the run instead of hanging the benchmark.
    """
    done = threading.Event()
    unblocked: list[int] = []

    def exited() -> bool:  # without reaping it: the caller's wait4() keeps its rusage
        try:
            return os.waitid(os.P_PID, proc.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is not None
        except ChildProcessError:
            return True

    def watch() -> None:
        deadline = time.monotonic() + timeout
        while not done.wait(0.01):
            if exited() or time.monotonic() > deadline:
                other = (os.O_RDONLY if write else os.O_WRONLY) | os.O_NONBLOCK
                try:
                    unblocked.append(os.open(path, other))
                except OSError:
                    pass
                return

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    fd = os.open(path, os.O_WRONLY if write else os.O_RDONLY)
    t = time.monotonic()
    done.set()
    watcher.join()
    if unblocked:
        for f in (fd, *unblocked):
            os.close(f)
        raise RendezvousFailed(f"{proc.args!r} exited ({proc.returncode}) or timed out before opening {path.name}")
    return fd, t


@dataclass
class Finished:
    code: int
    exited: float  # monotonic, when wait4() returned
    cpu: float  # user + system seconds of the process and every descendant it reaped


def wait4(proc: subprocess.Popen[bytes], timeout: float = 600) -> Finished:
    """Wait for ``proc`` with wait4(), keeping its rusage (Popen's wait drops it); kill it after
    ``timeout`` s (its pidfd turns readable when it exits)."""
    pidfd = os.pidfd_open(proc.pid)
    try:
        ready, _, _ = select.select([pidfd], [], [], timeout)
    finally:
        os.close(pidfd)
    if not ready:
        proc.kill()
    _, status, usage = os.wait4(proc.pid, 0)
    t = time.monotonic()
    proc.returncode = os.waitstatus_to_exitcode(status)
    if not ready:
        raise RuntimeError(f"{proc.args!r} did not exit within {timeout:g} s (killed)")
    return Finished(proc.returncode, t, usage.ru_utime + usage.ru_stime)


# -- /proc samplers --------------------------------------------------------------------------


def _stat(path: str) -> Optional[tuple[str, str, int]]:
    """(comm, state, utime + stime ticks) of a /proc/.../stat file, None if it is gone."""
    try:
        with open(path) as f:
            s = f.read()
    except OSError:
        return None
    left, right = s.index("("), s.rindex(")")
    rest = s[right + 2 :].split()
    return s[left + 1 : right], rest[0], int(rest[11]) + int(rest[12])


class ThreadCpu:
    """CPU per thread of one process, by thread name (comm), from /proc/<pid>/task/*/stat every
    ``interval`` s; a thread's last sample counts (a thread that ends between samples loses at
    most one interval)."""

    def __init__(self, pid: int, interval: float = 0.02) -> None:
        self.pid = pid
        self.interval = interval
        self.last: dict[int, tuple[str, int]] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _sample(self) -> None:
        try:
            tids = os.listdir(f"/proc/{self.pid}/task")
        except OSError:
            return
        for tid in tids:
            got = _stat(f"/proc/{self.pid}/task/{tid}/stat")
            if got is not None and got[1] != "Z":
                self.last[int(tid)] = (got[0], got[2])

    def _run(self) -> None:
        while not self._stop.is_set():
            self._sample()
            self._stop.wait(self.interval)

    def stop(self) -> dict[str, float]:
        """Seconds of CPU by thread name, largest first."""
        self._stop.set()
        self._thread.join()
        by_name: dict[str, float] = {}
        for tid, (name, ticks) in self.last.items():
            # Threads the process did not name carry its comm, as the main thread does.
            key = f"{name} (main thread)" if tid == self.pid else name
            by_name[key] = by_name.get(key, 0.0) + ticks / TICK
        return dict(sorted(by_name.items(), key=lambda kv: -kv[1]))


def children(pid: int) -> list[int]:
    """Child processes of every thread of ``pid`` (zombies included: they stay until reaped)."""
    out: list[int] = []
    try:
        tids = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return out
    for tid in tids:
        try:
            with open(f"/proc/{pid}/task/{tid}/children") as f:
                out.extend(int(c) for c in f.read().split())
        except OSError:
            pass
    return out


def zombies(pid: int) -> int:
    """How many children of ``pid`` are zombies (state Z) right now."""
    count = 0
    for child in children(pid):
        got = _stat(f"/proc/{child}/stat")
        if got is not None and got[1] == "Z":
            count += 1
    return count
