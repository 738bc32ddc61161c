"""The wrapper's threads: each named ``tu-<name>`` for ``top -H`` and ``/proc/<pid>/task/*/comm``,
the background ones (compression, hashing, uploads, sampling) at a lower priority.

On Linux a thread's nice value is its own, and raising it needs no privilege: the pump, the
signal thread and COMMAND keep the CPU when it is short, and the background work takes what is
left (it is queued, so it only finishes later). Once COMMAND has exited (or a SIGTERM came) there
is nothing left to give way to, and ``hurry()`` puts the background threads back at the process's
own priority, which needs no privilege either: a niced thread may always return to the nice value
its process started with (RLIMIT_NICE permitting; otherwise it stays niced and only finishes
later). Elsewhere the name and the nice value are left as they are.
"""

from __future__ import annotations

import os

# _thread, not threading: threading (with collections, functools, itertools, _weakrefset behind
# it) is not needed before COMMAND starts, and Thread.start() waits until the new thread has run,
# milliseconds per thread when the interpreter is busy.
from _thread import allocate_lock, get_native_id, start_new_thread

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Optional

BACKGROUND_NICE = 5  # added to the process's nice value for background threads
COMM_MAX = 15  # the kernel keeps 15 bytes of a thread's name
_background: dict[int, int] = {}  # native thread id -> the nice value it had before
_lock = allocate_lock()
_hurried = False


class Handle:
    """A started thread: its ``name``, its ``ident`` and ``join()``."""

    __slots__ = ("_done", "ident", "name")

    def __init__(self, name: str) -> None:
        self.name = name
        self.ident: Optional[int] = None
        self._done = allocate_lock()  # held while the thread runs

    def join(self, timeout: Optional[float] = None) -> None:
        """Wait until the thread has ended (at most ``timeout`` seconds)."""
        if self._done.acquire(True, -1 if timeout is None else max(0.0, timeout)):
            self._done.release()

    def is_alive(self) -> bool:
        return self._done.locked()


def start(target: Callable[[], object], name: str, *, background: bool = False) -> Handle:
    """Start a daemon thread running ``target``; ``background`` lowers its CPU priority. Returns
    at once (the thread runs when it gets the interpreter)."""
    handle = Handle(name)
    handle._done.acquire()

    def run() -> None:
        try:
            settle(name, background)
            target()
        finally:
            handle._done.release()

    handle.ident = start_new_thread(run, ())
    return handle


def settle(name: str, background: bool = False) -> None:
    """Name the calling thread (and lower its priority when ``background``)."""
    tid = get_native_id()
    try:
        with open(f"/proc/self/task/{tid}/comm", "w") as f:
            f.write(f"tu-{name}"[:COMM_MAX])
    except OSError:
        pass
    if not background:
        return
    with _lock:
        if _hurried:
            return
        try:
            before = os.getpriority(os.PRIO_PROCESS, tid)
            os.setpriority(os.PRIO_PROCESS, tid, before + BACKGROUND_NICE)
        except (OSError, AttributeError):
            return
        _background[tid] = before


def hurry() -> None:
    """Put every background thread back at the priority it started with (and those started
    from now on are not lowered): COMMAND is gone, what is left is the final flush."""
    global _hurried
    with _lock:
        _hurried = True
        for tid, before in _background.items():
            try:
                os.setpriority(os.PRIO_PROCESS, tid, before)
            except OSError:
                pass  # gone, or not allowed: it finishes at its lower priority
        _background.clear()
