"""The pass-through and CPU cases of issue 16, against ``COMMAND | tee FILE`` and an unwrapped run.

passthrough  COMMAND (child.py ``write``) writes N bytes (512 MiB in the full run) to stdout as fast
             as it can: its own wall (its start → end stamps) wrapped, local and S3 store, against
             ``sh -c 'COMMAND | tee FILE > /dev/null'``, for log-like text and random hex text. CPU:
             wait4()'s rusage of the wrapper (all its threads, and everything it reaped) minus
             COMMAND's own (child.py reports getrusage SELF + CHILDREN); the same for ``sh`` +
             ``tee``. CPU by thread name from /proc/<pid>/task/*/stat every 20 ms.
cpubound     COMMAND runs fixed work on two busy worker processes (SHA-256 of WORK MiB each) while
             it logs 20 MB/s: its wall wrapped (local store) against unwrapped (stdout /dev/null).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Optional

from . import data
from .harness import CHILD, PREFIX, Bench, Row, Series, ratio
from .procs import ThreadCpu, spawn, wait4


class Run:
    """One run of COMMAND (maybe wrapped): COMMAND's wall, the CPU beside COMMAND's, thread CPU."""

    def __init__(self, wall: float, cpu_beside: float, threads: dict[str, float]) -> None:
        self.wall, self.cpu, self.threads = wall, cpu_beside, threads


def run_measured(b: Bench, argv: list[str], stamp: Path, env: Optional[dict[str, str]], what: str,
                 threads: bool = False) -> Run:
    err_path = stamp.parent / "stderr"
    with open(err_path, "wb") as err:
        proc, _ = spawn(argv, env, err)
        sampler = ThreadCpu(proc.pid) if threads else None
        done = wait4(proc, timeout=900)
        by_thread = sampler.stop() if sampler else {}
    if done.code != 0 or not stamp.exists():
        tail = err_path.read_bytes().decode(errors="replace").strip().splitlines()[-3:]
        raise RuntimeError(f"{what} exited with {done.code}: {' | '.join(tail)}")
    report = json.loads(stamp.read_text())
    return Run(float(report["end"]) - float(report["start"]), done.cpu - float(report["cpu"]), by_thread)


def stored_log(b: Bench, store: str) -> None:
    """The run stored the step's log archive (the benchmark fails when a run did not store it)."""
    found = (PREFIX + "main-log.tgz" in b.stored()) if store == "S3" else any(b.local_store.rglob("main-log.tgz"))
    if not found:
        raise RuntimeError(f"the wrapper ({store} store) stored no main-log.tgz")


def _threads_cell(runs: list[Run], cpu: Series) -> str:
    names: dict[str, list[float]] = {}
    for r in runs:
        for name, sec in r.threads.items():
            names.setdefault(name, []).append(sec)
    if not names:
        return "-"
    ranked = sorted(names.items(), key=lambda kv: -max(kv[1]))
    parts = [f"{n} {Series(values=v)}" for n, v in ranked if max(v) >= 0.01]
    idle = [n for n, v in ranked if max(v) < 0.01]
    if idle:
        parts.append(f"under 0.01 s: {' '.join(idle)}")
    sampled = Series(values=[sum(r.threads.values()) for r in runs])
    return ", ".join(parts) + f" (sampled {sampled} of {cpu} total; a thread the wrapper did not name carries the process's name)"


def passthrough(b: Bench, size: int, runs: int) -> list[Row]:
    from .cases import size_name

    rows = []
    name = size_name(size)
    stores = (("local", b.local_env), ("S3", b.wrapper_env))
    for kind in data.KINDS:
        block = data.block_file(b.work, kind)
        tee_wall, tee_cpu = Series(), Series()
        walls = {s: Series() for s, _ in stores}
        cpus = {s: Series() for s, _ in stores}
        detail: dict[str, list[Run]] = {s: [] for s, _ in stores}
        for i in range(runs):
            order = list(stores) if i % 2 == 0 else list(reversed(stores))
            d = b.fresh("pt-tee")
            stamp = d / "stamp.json"
            cmd = [*CHILD, "write", str(stamp), str(block), str(size)]
            tee = run_measured(b, ["sh", "-c", f'"$@" | tee {d / "out.log"} > /dev/null', "sh", *cmd], stamp,
                               None, "tee baseline")
            (d / "out.log").unlink()
            tee_wall.add(tee.wall)
            tee_cpu.add(tee.cpu)
            for store, env in order:
                b.reset_store()
                shutil.rmtree(b.local_store, ignore_errors=True)
                stamp = b.fresh(f"pt-{store}") / "stamp.json"
                cmd = [*CHILD, "write", str(stamp), str(block), str(size)]
                r = run_measured(b, [*b.wrapper_args(None), "--", *cmd], stamp, env(), f"wrapper ({store} store)",
                                 threads=True)
                stored_log(b, store)
                walls[store].add(r.wall)
                cpus[store].add(r.cpu)
                detail[store].append(r)
        for store, _ in stores:
            w = ratio(walls[store], tee_wall)
            c = ratio(cpus[store], tee_cpu)
            rows.append(Row("pass-through", f"COMMAND writes {name} of {kind}, {store} store: its wall",
                            str(walls[store]), f"{tee_wall} (`COMMAND | tee FILE`)", f"{w:.2f}", "ratio ≤ 1.1",
                            w <= 1.1))
            log_text = kind == "log text"
            rows.append(Row("pass-through", f"CPU of the whole wrapper (all threads, incl. the flush) per {name} "
                            f"of {kind}, {store} store", str(cpus[store]), f"{tee_cpu} (`tee FILE` + `sh`)",
                            f"{c:.2f}", "ratio ≤ 2.5" if log_text else "-", (c <= 2.5) if log_text else None))
            rows.append(Row("pass-through", f"CPU by thread (comm), {kind}, {store} store",
                            _threads_cell(detail[store], cpus[store])))
    return rows


def cpubound(b: Bench, work: int, rate: float, runs: int) -> list[Row]:
    block = data.block_file(b.work)
    direct, wrapped = Series(), Series()
    beside = Series()
    for i in range(runs):
        for wrap in ((False, True) if i % 2 == 0 else (True, False)):
            d = b.fresh("cpu")
            stamp = d / "stamp.json"
            cmd = [*CHILD, "cpu", str(stamp), str(block), str(work), str(rate)]
            if wrap:
                r = run_measured(b, [*b.wrapper_args(None), "--", *cmd], stamp, b.local_env(), "wrapped CPU run")
                wrapped.add(r.wall)
                beside.add(r.cpu)
            else:
                direct.add(run_measured(b, cmd, stamp, None, "unwrapped CPU run").wall)
    q = ratio(wrapped, direct)
    return [Row("cpu-bound", f"COMMAND: 2 busy worker processes x {work} MiB of SHA-256 (fixed work), logging "
                f"{rate / 1e6:.0f} MB/s; its wall, local store (wrapper CPU {beside})", str(wrapped),
                f"{direct} (unwrapped, stdout /dev/null)", f"{q:.3f}", "ratio ≤ 1.05", q <= 1.05)]

