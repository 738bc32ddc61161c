"""The latency cases of issue 16, each against its peers in the same run (alternating runs).

launch    spawn → COMMAND running: COMMAND is ``cat FIFO``; the harness's ``open(FIFO, O_WRONLY)``
          returns when it opened the FIFO. Peers: direct spawn, ``tini --``, ``dumb-init``, and the
          bare interpreter (the regular install's ``python -c`` opening the FIFO).
exit      COMMAND exit → wrapper exit with nothing to upload: the harness closes the FIFO (``cat``
          reads EOF and exits) and times wait4()'s return; COMMAND ends at once or after a hold.
signal    SIGTERM right after COMMAND starts → COMMAND's handler runs (child.py ``signal`` records
          the receipt time), and → the wrapper's exit (COMMAND exits on TERM).
orphans   under ``unshare --pid --fork --mount-proc`` with the init as PID 1, COMMAND makes 100
          orphans at once; the zombie children of PID 1 are counted (/proc/PID/task/*/children,
          state Z) through the first second after the burst; the peak is reported. Run twice: as the
          benchmark runs, and with the whole tree in a CPU cgroup of its own, as in a pod
          (``cpu_cgroup``: the scheduler's per-session autogroup acts only outside such a cgroup).
image     ``podman run`` of the image: the entrypoint is overridden by a ``sh`` shim that opens a
          first FIFO (the harness's read-open returns: the shim runs) and then execs the wrapper
          as PID 1, whose COMMAND opens a second FIFO: wrapper exec → COMMAND running.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from .harness import CHILD, Bench, Row, Series
from .procs import RendezvousFailed, fifo, rendezvous, spawn, wait4, zombies
from .procs import children as children_of


@dataclass(frozen=True)
class Peer:
    name: str
    prefix: Optional[list[str]]  # argv before COMMAND; None: not available
    env: Optional[dict[str, str]] = None
    why: str = ""  # why it is not available (one line)


def tool(name: str, *args: str) -> Peer:
    path = shutil.which(name)
    if path is None:
        return Peer(name, None, why=f"{name}: not installed (apt-get install {name}; scripts/test installs it)")
    return Peer(name, [path, *args])


def peers(b: Bench, *names: str) -> list[Peer]:
    table: dict[str, Callable[[], Peer]] = {
        "direct": lambda: Peer("direct", []),
        "tini": lambda: tool("tini", "--"),
        "dumb-init": lambda: tool("dumb-init"),
        "tekton-uploader": lambda: Peer("tekton-uploader", [*b.wrapper_args(None), "--"], b.local_env()),
        "tekton-uploader S3": lambda: Peer("tekton-uploader S3", [*b.wrapper_args(None), "--"], b.wrapper_env()),
    }
    return [table[n]() for n in names]


def alternate(ps: list[Peer], runs: int, measure: Callable[[Peer], float], unit: str = "ms") -> dict[str, Series]:
    """``runs`` rounds over the available peers, the order rotated every round."""
    ready = [p for p in ps if p.prefix is not None]
    out = {p.name: Series(unit=unit) for p in ready}
    for i in range(runs):
        k = i % len(ready)
        for p in ready[k:] + ready[:k]:
            out[p.name].add(measure(p))
    return out


def peer_cell(ps: list[Peer], got: dict[str, Series], skip: str = "tekton-uploader") -> str:
    cells = []
    for p in ps:
        if p.name == skip:
            continue
        cells.append(f"{p.name} {got[p.name]}" if p.prefix is not None else p.why)
    return "; ".join(cells)


def diff_ms(a: Series, b: Series) -> float:
    return (a.median - b.median) * 1000


def _check(code: int, what: str, err_path: Path) -> None:
    if code != 0:
        tail = err_path.read_bytes().decode(errors="replace").strip().splitlines()[-3:]
        raise RuntimeError(f"{what} exited with {code}: {' | '.join(tail)}")


def _meet(proc: subprocess.Popen[bytes], path: Path, write: bool, what: str, err_path: Path,
          timeout: float = 60) -> tuple[int, float]:
    """rendezvous(), or a RuntimeError with the process's last stderr lines."""
    try:
        return rendezvous(path, write, proc, timeout)
    except RendezvousFailed:
        if proc.poll() is None:
            proc.kill()
        proc.wait()
        _check(proc.returncode or 1, f"{what} (never opened {path.name})", err_path)
        raise


# -- launch ----------------------------------------------------------------------------------


def _launch_once(b: Bench, argv_for: Callable[[str], list[str]], env: Optional[dict[str, str]], what: str) -> float:
    d = b.fresh("launch")
    f = fifo(d)
    with open(d / "stderr", "wb") as err:
        proc, t0 = spawn(argv_for(str(f)), env, err)
        fd, t1 = _meet(proc, f, True, what, d / "stderr")
        os.close(fd)
        done = wait4(proc, timeout=60)
    _check(done.code, what, d / "stderr")
    return t1 - t0


def launch(b: Bench, runs: int) -> list[Row]:
    ps = [Peer("python -c", [b.python, "-c", "import os, sys; os.open(sys.argv[1], os.O_RDONLY)"]),
          *peers(b, "direct", "tini", "dumb-init", "tekton-uploader")]

    def measure(p: Peer) -> float:
        prefix = p.prefix or []
        if p.name == "python -c":
            return _launch_once(b, lambda f: [*prefix, f], None, p.name)
        return _launch_once(b, lambda f: [*prefix, "cat", f], p.env, p.name)

    got = alternate(ps, runs, measure)
    ours, py, direct = got["tekton-uploader"], got["python -c"], got["direct"]
    over = diff_ms(ours, py)
    return [Row("launch", "spawn → COMMAND running (`cat FIFO` opened it), local store", str(ours),
                peer_cell(ps, got), f"{over:+.0f} ms over python -c, {diff_ms(ours, direct):+.0f} ms over direct",
                "≤ +8 ms over the bare interpreter (`python -c`)", over <= 8)]


# -- exit ------------------------------------------------------------------------------------


def _exit_once(b: Bench, p: Peer, hold: float) -> float:
    assert p.prefix is not None
    d = b.fresh("exit")
    f = fifo(d)
    with open(d / "stderr", "wb") as err:
        proc, _ = spawn([*p.prefix, "cat", str(f)], p.env, err)
        fd, _ = _meet(proc, f, True, p.name, d / "stderr")
        if hold:
            time.sleep(hold)
        t_close = time.monotonic()
        os.close(fd)
        done = wait4(proc, timeout=120)
    _check(done.code, f"{p.name} (exit case)", d / "stderr")
    return done.exited - t_close


def exit_case(b: Bench, runs: int, hold: float) -> list[Row]:
    ps = peers(b, "direct", "tini", "dumb-init", "tekton-uploader", "tekton-uploader S3")
    rows = []
    for when, h in (("after a hold of " + f"{hold:g} s", hold), ("at once (right after it started)", 0.0)):
        got = alternate(ps, runs, lambda p, h=h: _exit_once(b, p, h))  # type: ignore[misc]
        local, s3 = got["tekton-uploader"], got["tekton-uploader S3"]
        others = [p for p in ps if not p.name.startswith("tekton-uploader")]
        rows.append(Row("exit", f"COMMAND exit → wrapper exit, nothing to upload; COMMAND ends {when}",
                        f"local {local}; S3 {s3}", peer_cell(others, got),
                        f"local {diff_ms(local, got['direct']):+.0f} ms, S3 {diff_ms(s3, got['direct']):+.0f} ms "
                        "over direct",
                        "≤ 15 ms local, ≤ 60 ms S3", local.median <= 0.015 and s3.median <= 0.060))
    return rows


# -- signals ---------------------------------------------------------------------------------


def _signal_once(b: Bench, p: Peer) -> tuple[float, float]:
    assert p.prefix is not None
    d = b.fresh("signal")
    f, stamp = fifo(d), d / "stamp.json"
    with open(d / "stderr", "wb") as err:
        proc, _ = spawn([*p.prefix, *CHILD, "signal", str(stamp), str(f)], p.env, err)
        fd, _ = _meet(proc, f, True, p.name, d / "stderr")  # COMMAND's handler is installed
        t_send = time.monotonic()
        os.kill(proc.pid, signal.SIGTERM)
        done = wait4(proc, timeout=60)
        os.close(fd)
    if not stamp.exists():
        _check(done.code or 1, f"{p.name} (signal case: COMMAND never got SIGTERM)", d / "stderr")
    got = float(json.loads(stamp.read_text())["got"])
    return got - t_send, done.exited - t_send


def signal_case(b: Bench, runs: int) -> list[Row]:
    ps = peers(b, "direct", "tini", "dumb-init", "tekton-uploader")
    delivery: dict[str, Series] = {}
    to_exit: dict[str, Series] = {}

    def measure(p: Peer) -> float:
        got, out = _signal_once(b, p)
        delivery.setdefault(p.name, Series(unit="ms")).add(got)
        to_exit.setdefault(p.name, Series(unit="ms")).add(out)
        return got

    alternate(ps, runs, measure)
    ours, ours_exit = delivery["tekton-uploader"], to_exit["tekton-uploader"]
    return [
        Row("signal", "SIGTERM right after COMMAND starts → COMMAND's handler runs", str(ours),
            peer_cell(ps, delivery), f"{diff_ms(ours, delivery['direct']):+.1f} ms over direct",
            "≤ 5 ms", ours.median <= 0.005),
        Row("signal", "SIGTERM → wrapper exit, COMMAND exits on TERM, local store", str(ours_exit),
            peer_cell(ps, to_exit), f"{diff_ms(ours_exit, to_exit['direct']):+.1f} ms over direct",
            "≤ 20 ms", ours_exit.median <= 0.020),
    ]


# -- orphans ---------------------------------------------------------------------------------


def _orphans_once(b: Bench, init: list[str], env: Optional[dict[str, str]], count: int, window: float,
                  name: str, cgroup: Optional[Path] = None) -> int:
    d = b.fresh("orphans")
    stamp = d / "stamp.json"
    argv = ["unshare", "--pid", "--fork", "--mount-proc", *init, *CHILD, "orphans", str(stamp), str(count), str(window)]
    if cgroup is not None:  # the whole tree in the cgroup from its first instruction, as in a pod
        argv = ["sh", "-c", 'echo $$ > "$0/cgroup.procs" && exec "$@"', str(cgroup), *argv]
    samples: list[tuple[float, int]] = []
    with open(d / "stderr", "wb") as err:
        proc, _ = spawn(argv, env, err)
        pid1 = 0
        while proc.poll() is None:
            if not pid1:
                kids = children_of(proc.pid)
                pid1 = kids[0] if kids else 0
            if pid1:
                samples.append((time.monotonic(), zombies(pid1)))
            time.sleep(0.001)
    _check(proc.returncode, f"{name} (orphan burst)", d / "stderr")
    report = json.loads(stamp.read_text())
    burst = float(report["burst"])
    seen = [n for t, n in samples if burst <= t <= burst + window]
    if not seen:
        raise RuntimeError(f"{name}: no zombie sample in the {window:g} s after the burst")
    return max(seen)


def cpu_cgroup() -> Optional[Path]:
    """A CPU cgroup of the benchmark's own (cgroup v1 ``cpu`` or v2 with the cpu controller), or None.

    In a pod every process of the container shares one CPU cgroup; the scheduler's autogroup (one
    scheduling group per session, on when ``/proc/sys/kernel/sched_autogroup_enabled`` is 1) only
    acts in the root cgroup, where the benchmark otherwise runs. An init whose COMMAND starts a
    session of its own (dumb-init; the wrapper without a terminal) is scheduled apart from a storm
    of COMMAND's processes there, and is not in a pod: both are measured."""
    for root in (Path("/sys/fs/cgroup/cpu"), Path("/sys/fs/cgroup")):
        v2 = root == Path("/sys/fs/cgroup")
        if v2 and "cpu" not in _read(root / "cgroup.controllers").split():
            continue
        if not (root / "cgroup.procs").exists():
            continue
        path = root / "tekton-uploader-bench"
        try:
            path.mkdir(exist_ok=True)
        except OSError:
            continue
        if (path / "cgroup.procs").exists():
            return path
    return None


def _read(path: Path) -> str:
    try:
        return path.read_text()
    except OSError:
        return ""


def orphans(b: Bench, runs: int, window: float, count: int = 100) -> list[Row]:
    if os.getuid() != 0 or shutil.which("unshare") is None:
        return [Row("orphans", "zombies in the 100-orphan burst", "not run: needs root and unshare (util-linux)")]
    ps = [Peer("none (COMMAND as PID 1, reaps only its own children)", []), *peers(b, "tini", "dumb-init", "tekton-uploader")]
    first = "the first second" if window == 1 else f"the first {window:g} s"
    rows = []
    places: list[tuple[str, Optional[Path]]] = [("", None)]
    group = cpu_cgroup()
    places.append((", in a CPU cgroup of its own (as in a pod)", group) if group is not None else
                  (", in a CPU cgroup of its own: not run (no writable cpu cgroup)", None))
    for where, cgroup in places:
        if where and cgroup is None:
            rows.append(Row("orphans", f"peak zombies{where}", "-"))
            continue
        got = alternate(ps, runs, lambda p, c=cgroup: float(  # type: ignore[misc]
            _orphans_once(b, p.prefix or [], p.env, count, window, p.name, c)), unit="count")
        ours = got["tekton-uploader"]
        rows.append(Row("orphans", f"peak zombies during {first}, {count} orphans made at once, init as PID 1 "
                        f"(`unshare --pid --fork --mount-proc`){where}", str(ours), peer_cell(ps, got), "-",
                        "≤ 2", max(ours.values) <= 2))
    if group is not None:
        try:
            group.rmdir()  # empty again: every process of the runs has exited
        except OSError:
            pass
    return rows


# -- the image -------------------------------------------------------------------------------


def image(b: Bench, runs: int) -> list[Row]:
    from .install import podman_argv, run_flags

    if b.image is None:
        return [Row("image", "`podman run`: wrapper exec → COMMAND running", f"not run: {b.image_why}")]
    img: str = b.image
    shim = ': > /bench/f0 && exec "$@"'
    script = "/opt/tekton-uploader/bin"
    wrap = ["tekton-uploader", "--pipelinerun", "bench-run", "--pipelinetask", "bench-task",
            "--results-dir", "/bench/no-results", "--quiet", "--"]
    ps = [Peer("image's python -c", [f"{script}/python", "-c", "import os; os.open('/bench/f1', os.O_RDONLY)"]),
          Peer("direct exec", ["cat", "/bench/f1"]), Peer("tekton-uploader", [*wrap, "cat", "/bench/f1"])]
    container: dict[str, Series] = {}

    def measure(p: Peer) -> float:
        assert p.prefix is not None
        d = b.fresh("image")
        f0, f1 = fifo(d, "f0"), fifo(d, "f1")
        (d / "store").mkdir()
        argv = [*podman_argv(), "run", *run_flags(), "-v", f"{d}:/bench", "-e",
                "OBJECTSTORE_ENDPOINT=file:///bench/store", "--entrypoint", "sh", img, "-c", shim, "sh",
                *p.prefix]
        with open(d / "stderr", "wb") as err:
            proc, t0 = spawn(argv, None, err)
            fd0, t_shim = _meet(proc, f0, False, f"podman run ({p.name})", d / "stderr", timeout=120)
            os.close(fd0)
            fd1, t_cmd = _meet(proc, f1, True, f"podman run ({p.name})", d / "stderr")
            os.close(fd1)
            done = wait4(proc, timeout=120)
        _check(done.code, f"podman run ({p.name})", d / "stderr")
        container.setdefault(p.name, Series(unit="ms")).add(t_shim - t0)
        return t_cmd - t_shim

    try:
        got = alternate(ps, runs, measure)
    except RuntimeError as exc:
        return [Row("image", "`podman run`: wrapper exec → COMMAND running", f"not run: {exc}")]
    ours, py = got["tekton-uploader"], got["image's python -c"]
    over = diff_ms(ours, py)
    start = Series(unit="ms", values=[v for s in container.values() for v in s.values])
    return [
        Row("image", "`podman run`: wrapper exec (as PID 1) → COMMAND running", str(ours), peer_cell(ps, got),
            f"{over:+.0f} ms over python -c", "≤ +8 ms over the bare interpreter", over <= 8),
        Row("image", "`podman run` → the entrypoint runs (container start, all runs)", str(start)),
    ]

