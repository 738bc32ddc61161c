"""The memory cgroup the wrapper runs in: its limit, usage, peak and OOM counters.

cgroup v2 (``cgroup.controllers`` at the root): ``memory.max``, ``memory.current``,
``memory.peak``, ``memory.events`` (``oom``, ``oom_kill``, ``oom_group_kill``) and
``memory.pressure`` (PSI). cgroup v1 (a ``memory`` controller directory under the root):
``memory.limit_in_bytes``, ``memory.usage_in_bytes``, ``memory.max_usage_in_bytes``,
``memory.oom_control`` (``oom_kill``, ``under_oom``) and ``memory.failcnt``. The cgroup is found
from ``/proc/self/cgroup`` under the root (``--cgroup-root``); a container with its own cgroup
namespace sees itself at the root, which is the fallback. Every read is a few small files:
done at the start, on the sampler's tick and at the end, never on the output path.
"""

from __future__ import annotations

import os

from ..records import Record, path_text

TYPE_CHECKING = False
if TYPE_CHECKING:
    from pathlib import Path
    from typing import Optional

    from _typeshed import StrPath


NO_LIMIT = 1 << 62  # v1 writes "no limit" as a page-rounded 2**63-1; v2 writes "max"
PROC_SELF_CGROUP = "/proc/self/cgroup"
# the counters that prove an OOM kill, in the order they are looked at
OOM_COUNTERS = ("oom_kill", "oom_group_kill")


class Memory(Record):
    """One reading of the memory cgroup. Bytes; None where the kernel does not say.

    (A NamedTuple: this module loads before COMMAND starts, where dataclasses would cost.)"""

    version: int  # 1 or 2
    path: str  # the cgroup directory read
    limit: Optional[int]  # None: no limit
    current: Optional[int]
    peak: Optional[int]  # v2 memory.peak (5.19+), v1 memory.max_usage_in_bytes
    counters: dict[str, int]  # oom, oom_kill, oom_group_kill, failcnt
    pressure: Optional[float] = None  # PSI "some avg10" in percent (v2 only)
    inactive_file: int = 0  # page cache the kernel reclaims first (memory.stat)

    def fraction(self) -> Optional[float]:
        """The working set (usage less inactive page cache, as the kubelet counts it) as a
        fraction of the limit; None without a limit or a usage."""
        if self.limit is None or self.current is None or self.limit <= 0:
            return None
        return max(0, self.current - self.inactive_file) / self.limit

    def moved(self, before: Optional[Memory]) -> dict[str, int]:
        """The counters that grew since ``before`` (all of them when there is no earlier reading)."""
        old = before.counters if before is not None else {}
        return {k: v - old.get(k, 0) for k, v in self.counters.items() if v > old.get(k, 0)}


class Cgroup:
    """A memory cgroup directory, v1 or v2; ``read()`` gives one ``Memory``."""

    def __init__(self, path: StrPath, version: int) -> None:
        self.directory = path_text(os.fspath(path))  # text: read before COMMAND starts, without pathlib
        self.version = version

    @property
    def path(self) -> Path:
        from pathlib import Path

        return Path(self.directory)

    def _file(self, name: str) -> str:
        return os.path.join(self.directory, name)

    def read(self) -> Optional[Memory]:
        try:
            return self._read_v2() if self.version == 2 else self._read_v1()
        except OSError:
            return None

    def _read_v2(self) -> Memory:
        events = _keyed(self._file("memory.events"))
        counters = {k: events[k] for k in ("oom", *OOM_COUNTERS) if k in events}
        return Memory(
            2,
            self.directory,
            _limit(_text(self._file("memory.max"))),
            _int(_text(self._file("memory.current"))),
            _int(_text(self._file("memory.peak"))),
            counters,
            _pressure(self._file("memory.pressure")),
            _keyed(self._file("memory.stat")).get("inactive_file", 0),
        )

    def _read_v1(self) -> Memory:
        control = _keyed(self._file("memory.oom_control"))
        counters = {k: control[k] for k in ("oom_kill",) if k in control}
        failcnt = _int(_text(self._file("memory.failcnt")))
        if failcnt is not None:
            counters["failcnt"] = failcnt
        return Memory(
            1,
            self.directory,
            _limit(_text(self._file("memory.limit_in_bytes"))),
            _int(_text(self._file("memory.usage_in_bytes"))),
            _int(_text(self._file("memory.max_usage_in_bytes"))),
            counters,
            None,
            _keyed(self._file("memory.stat")).get("total_inactive_file", 0),
        )


def locate(root: StrPath, proc_cgroup: StrPath = PROC_SELF_CGROUP) -> Optional[Cgroup]:
    """The memory cgroup of this process under ``root``; None when there is none to read."""
    try:
        with open(proc_cgroup) as f:
            lines = f.read().splitlines()
    except OSError:
        lines = []
    v2_path: Optional[str] = None
    v1_path: Optional[str] = None
    for line in lines:
        _, controllers, path = ([*line.split(":", 2), "", ""])[:3]
        if controllers == "" and line.startswith("0::"):
            v2_path = path
        elif "memory" in controllers.split(","):
            v1_path = path
    if os.path.isfile(os.path.join(root, "cgroup.controllers")):  # unified hierarchy
        return _first(2, "memory.current", os.fspath(root), v2_path)
    if os.path.isdir(os.path.join(root, "memory")):
        return _first(1, "memory.usage_in_bytes", os.path.join(root, "memory"), v1_path)
    return None


def _first(version: int, probe: str, base: str, relative: Optional[str]) -> Optional[Cgroup]:
    candidates = [os.path.join(base, relative.lstrip("/"))] if relative else []
    candidates.append(base)  # a cgroup namespace shows the container's own cgroup at the root
    for path in candidates:
        if os.path.isfile(os.path.join(path, probe)):
            return Cgroup(path, version)
    return None


def _text(path: str) -> Optional[str]:
    try:
        with open(path) as f:
            return f.read().strip()
    except FileNotFoundError:
        return None


def _int(text: Optional[str]) -> Optional[int]:
    if text is None:
        return None
    try:
        return int(text)
    except ValueError:
        return None


def _limit(text: Optional[str]) -> Optional[int]:
    value = _int(text)
    return None if value is None or value >= NO_LIMIT else value


def _keyed(path: str) -> dict[str, int]:
    """``key value`` lines (memory.events, memory.oom_control)."""
    out: dict[str, int] = {}
    for line in (_text(path) or "").splitlines():
        key, _, value = line.partition(" ")
        number = _int(value.strip())
        if number is not None:
            out[key] = number
    return out


def _pressure(path: str) -> Optional[float]:
    """PSI ``some avg10=...`` in percent."""
    for line in (_text(path) or "").splitlines():
        if line.startswith("some "):
            for part in line.split()[1:]:
                key, _, value = part.partition("=")
                if key == "avg10":
                    try:
                        return float(value)
                    except ValueError:
                        return None
    return None
