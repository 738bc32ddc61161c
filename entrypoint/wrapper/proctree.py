"""The process tree below the wrapper, from Linux's /proc (no psutil on the supervisor's path).

``/proc/<pid>/task/<tid>/children`` lists the children each thread forked or was given as a
subreaper; the wrapper reads every one of its own threads' lists.
"""

from __future__ import annotations

import os


def children(pid: int) -> list[int]:
    """The children of every thread of ``pid``."""
    found: list[int] = []
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return found
    for tid in tasks:
        try:
            with open(f"/proc/{pid}/task/{tid}/children") as f:
                found.extend(int(child) for child in f.read().split())
        except (OSError, ValueError):
            pass
    return found


def tree(pid: int) -> list[int]:
    """``pid`` and its descendants."""
    found, todo = [], [pid]
    while todo:
        pid = todo.pop()
        found.append(pid)
        todo.extend(children(pid))
    return found


def descendants() -> list[int]:
    """Live (not yet reaped) descendants of this process."""
    return [pid for pid in tree(os.getpid())[1:] if state(pid) not in ("Z", "X", "")]


def state(pid: int) -> str:
    """The one-letter state of ``pid`` (R, S, T, Z, ...); "" when it is gone."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return ""


def pgid(pid: int) -> int:
    try:
        return os.getpgid(pid)
    except OSError:
        return -1


def rss(pids: list[int]) -> int:
    """The resident memory of ``pids`` together, in bytes (from /proc/<pid>/statm)."""
    page = os.sysconf("SC_PAGE_SIZE")
    total = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/statm") as f:
                total += int(f.read().split()[1]) * page
        except (OSError, IndexError, ValueError):
            pass
    return total


def kill(pid: int, sig: int) -> bool:
    """Signal ``pid``; False when it is gone."""
    try:
        os.kill(pid, sig)
        return True
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
