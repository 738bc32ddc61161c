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
import threading
from collections.abc import Callable

BACKGROUND_NICE = 5  # added to the process's nice value for background threads
COMM_MAX = 15  # the kernel keeps 15 bytes of a thread's name
_background: dict[int, int] = {}  # native thread id -> the nice value it had before
_lock = threading.Lock()
_hurried = False


def start(target: Callable[[], object], name: str, *, background: bool = False) -> threading.Thread:
    """Start a daemon thread running ``target``; ``background`` lowers its CPU priority."""

    def run() -> None:
        settle(name, background)
        target()

    thread = threading.Thread(target=run, name=name, daemon=True)
    thread.start()
    return thread


def settle(name: str, background: bool = False) -> None:
    """Name the calling thread (and lower its priority when ``background``)."""
    tid = threading.get_native_id()
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
