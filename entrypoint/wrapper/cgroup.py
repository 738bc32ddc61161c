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

from pathlib import Path

from ..records import Record

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Optional


NO_LIMIT = 1 << 62  # v1 writes "no limit" as a page-rounded 2**63-1; v2 writes "max"
PROC_SELF_CGROUP = Path("/proc/self/cgroup")
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

    def __init__(self, path: Path, version: int) -> None:
        self.path = path
        self.version = version

    def read(self) -> Optional[Memory]:
        try:
            return self._read_v2() if self.version == 2 else self._read_v1()
        except OSError:
            return None

    def _read_v2(self) -> Memory:
        events = _keyed(self.path / "memory.events")
        counters = {k: events[k] for k in ("oom", *OOM_COUNTERS) if k in events}
        return Memory(
            2,
            str(self.path),
            _limit(_text(self.path / "memory.max")),
            _int(_text(self.path / "memory.current")),
            _int(_text(self.path / "memory.peak")),
            counters,
            _pressure(self.path / "memory.pressure"),
            _keyed(self.path / "memory.stat").get("inactive_file", 0),
        )

    def _read_v1(self) -> Memory:
        control = _keyed(self.path / "memory.oom_control")
        counters = {k: control[k] for k in ("oom_kill",) if k in control}
        failcnt = _int(_text(self.path / "memory.failcnt"))
        if failcnt is not None:
            counters["failcnt"] = failcnt
        return Memory(
            1,
            str(self.path),
            _limit(_text(self.path / "memory.limit_in_bytes")),
            _int(_text(self.path / "memory.usage_in_bytes")),
            _int(_text(self.path / "memory.max_usage_in_bytes")),
            counters,
            None,
            _keyed(self.path / "memory.stat").get("total_inactive_file", 0),
        )


def locate(root: Path, proc_cgroup: Path = PROC_SELF_CGROUP) -> Optional[Cgroup]:
    """The memory cgroup of this process under ``root``; None when there is none to read."""
    try:
        lines = proc_cgroup.read_text().splitlines()
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
    if (root / "cgroup.controllers").is_file():  # unified hierarchy
        return _first(2, "memory.current", root, v2_path)
    if (root / "memory").is_dir():
        return _first(1, "memory.usage_in_bytes", root / "memory", v1_path)
    return None


def _first(version: int, probe: str, base: Path, relative: Optional[str]) -> Optional[Cgroup]:
    candidates = [base / relative.lstrip("/")] if relative else []
    candidates.append(base)  # a cgroup namespace shows the container's own cgroup at the root
    for path in candidates:
        if (path / probe).is_file():
            return Cgroup(path, version)
    return None


def _text(path: Path) -> Optional[str]:
    try:
        return path.read_text().strip()
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


def _keyed(path: Path) -> dict[str, int]:
    """``key value`` lines (memory.events, memory.oom_control)."""
    out: dict[str, int] = {}
    for line in (_text(path) or "").splitlines():
        key, _, value = line.partition(" ")
        number = _int(value.strip())
        if number is not None:
            out[key] = number
    return out


def _pressure(path: Path) -> Optional[float]:
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
