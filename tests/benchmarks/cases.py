"""The benchmark cases of issue 8, each against its baseline measured in the same run."""

from __future__ import annotations

import math
import re
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass

from . import data
from .harness import BUCKET, CHILD, PREFIX, Bench, MiB, Row, Series, ratio


@dataclass(frozen=True)
class Params:
    startup_runs: int = 10
    noop_runs: int = 5
    big: int = 1024 * MiB  # the log of the pass-through, flush and memory cases
    small: int = 100 * MiB  # memory: flat in log size
    big_runs: int = 3
    many_results: tuple[int, int] = (200, 64 * 1024)
    large_results: tuple[int, int] = (4, 100 * MiB)
    results_runs: int = 3
    fresh_lines: int = 40
    fresh_period: float = 0.37  # not a divisor of the flush interval: lines land all over it
    fresh_interval: float = 2.0
    throttle: int = 20 * 1000 * 1000  # bytes/s for the throttled-store memory run
    requests_results: int = 10
    requests_logs: tuple[int, ...] = (20 * MiB, 100 * MiB)
    chunk: int = 8 * MiB
    # issue 16
    latency_runs: int = 10  # launch, exit, signal: rounds over all peers
    exit_hold: float = 0.5  # COMMAND's life in the "after a hold" exit row
    orphan_runs: int = 3
    orphan_window: float = 1.0  # s after the burst in which zombies are counted
    pass_size: int = 512 * MiB
    pass_runs: int = 3
    cpu_work: int = 60000  # MiB of SHA-256 per worker: about 30 s unwrapped on the 2-core EPYC
    cpu_rate: float = 20e6  # bytes/s COMMAND logs meanwhile
    cpu_runs: int = 3
    image_runs: int = 5


QUICK = Params(
    startup_runs=3,
    noop_runs=2,
    big=64 * MiB,
    small=16 * MiB,
    big_runs=1,
    many_results=(20, 64 * 1024),
    large_results=(2, 8 * MiB),
    results_runs=1,
    fresh_lines=6,
    fresh_period=0.3,
    fresh_interval=1.0,
    throttle=5 * 1000 * 1000,
    requests_results=3,
    requests_logs=(20 * MiB,),
    latency_runs=1,
    exit_hold=0.2,
    orphan_runs=1,
    orphan_window=0.3,
    pass_size=8 * MiB,
    pass_runs=1,
    cpu_work=200,
    cpu_runs=1,
    image_runs=0,
)


def size_name(n: int) -> str:
    if n >= 1024 * MiB and n % (1024 * MiB) == 0:
        return f"{n // (1024 * MiB)} GiB"
    if n >= MiB:
        return f"{n // MiB} MiB"
    return f"{n // 1024} KiB"


def check(outcome_code: int, what: str, stderr: bytes = b"") -> None:
    if outcome_code != 0:
        tail = stderr.decode(errors="replace").strip().splitlines()[-3:]
        raise RuntimeError(f"{what} exited with {outcome_code}: {' | '.join(tail)}")


# -- compression: the level is picked by this measurement --------------------------------------


def compression(b: Bench, p: Params) -> list[Row]:
    import importlib
    import zlib

    from entrypoint.formats import archive

    text = data.block_file(b.work).read_bytes()
    candidates = [("zlib", zlib, level) for level in (1, 2, 6)]
    try:
        isal = importlib.import_module("isal.isal_zlib")
        candidates += [("isal", isal, level) for level in (0, 1, 2, 3)]
    except ImportError:
        pass
    rows = []
    for name, module, level in candidates:
        speed = Series(unit="count")
        size = 0
        for _ in range(2 if p is QUICK else 3):
            t0 = time.perf_counter()
            comp = module.compressobj(level, module.DEFLATED, 31)
            size = sum(len(comp.compress(text[i : i + MiB])) for i in range(0, len(text), MiB))
            size += len(comp.flush())
            speed.add(len(text) / MiB / (time.perf_counter() - t0))
        _, used, used_level = archive.deflate_module()
        chosen = name == used and level == used_level
        rows.append(
            Row("compression", f"{name} level {level}, one thread, 16 MiB of log text"
                + (" (**used by the wrapper**)" if chosen else ""),
                f"{speed} MiB/s, ratio {len(text) / size:.2f}")
        )
    return rows


# -- start-up and the no-op step -------------------------------------------------------------


def startup(b: Bench, p: Params) -> list[Row]:
    direct, wrapped = Series(unit="ms"), Series(unit="ms")
    for i in range(p.startup_runs):
        for series, wrap in ((direct, False), (wrapped, True)):
            stamp = b.fresh("startup") / "stamp.json"
            cmd = [*CHILD, "stamp", str(stamp)]
            if wrap:
                if i == 0:
                    b.reset_store()
                out = b.run([*b.wrapper_args(None), "--", *cmd], stamp, b.wrapper_env())
            else:
                out = b.run(cmd, stamp)
            check(out.code, "start-up run", out.stderr)
            series.add(out.child_start - out.started)
    added = wrapped.median - direct.median
    return [
        Row(
            "start-up",
            "spawn → COMMAND running",
            str(wrapped),
            f"{direct} (direct spawn)",
            f"+{added * 1000:.0f} ms",
            "≤ 60 ms added",
            added <= 0.060,
        )
    ]


def noop(b: Bench, p: Params) -> list[Row]:
    s3_wall, local_wall = Series(), Series()
    python, cli_import, minio_import = Series(unit="ms"), Series(unit="ms"), Series(unit="ms")
    local_dir = b.work / "local-store"
    for _ in range(p.noop_runs):
        b.reset_store()
        out = b.run([*b.wrapper_args(None), "--", "true"], None, b.wrapper_env())
        check(out.code, "no-op run", out.stderr)
        if PREFIX + "main-log.tgz" not in b.stored():
            raise RuntimeError(f"no-op run stored {b.stored()}")
        s3_wall.add(out.exited - out.started)
        out = b.run(
            [*b.wrapper_args(None), "--", "true"], None, b.wrapper_env(endpoint=f"file://{local_dir}")
        )
        check(out.code, "no-op run (local store)", out.stderr)
        local_wall.add(out.exited - out.started)
        for series, code in (
            (python, "pass"),
            (cli_import, "import entrypoint.cli, entrypoint.wrapper.run"),
            (minio_import, "import minio"),
        ):
            out = b.run([b.python, "-c", code], None)
            check(out.code, f"python -c {code!r}")
            series.add(out.exited - out.started)
    breakdown = (
        f"python start {python.median * 1000:.0f} ms; wrapper imports "
        f"{(cli_import.median - python.median) * 1000:.0f} ms; minio import (background, after the spawn) "
        f"{(minio_import.median - python.median) * 1000:.0f} ms; local-store run {local_wall.median:.2f} s; "
        f"S3 client + HeadBucket + PUT log + exit {s3_wall.median - local_wall.median:+.2f} s over local"
    )
    return [
        Row("no-op step", "wall of `tekton-uploader … -- true`, S3 store", str(s3_wall), "-", "-", "≤ 0.6 s",
            s3_wall.median <= 0.6),
        Row("no-op step", "breakdown", breakdown),
    ]


# -- 1 GiB of output: pass-through, flush at exit, memory ------------------------------------


def big_log(b: Bench, p: Params, results: dict[str, Series]) -> list[Row]:
    block = data.block_file(b.work)
    through, through_tee = Series(), Series()
    flush, flush_peer = Series(), Series()
    rss = Series(unit="MiB")
    for _ in range(p.big_runs):
        # Baseline: COMMAND | tee FILE, then tar czf FILE + rclone upload.
        d = b.fresh("tee")
        stamp, log = d / "stamp.json", d / "main.log"
        sh = f'"$@" | tee {log} > /dev/null'
        cmd = [*CHILD, "write", str(stamp), str(block), str(p.big)]
        out = b.run(["sh", "-c", sh, "sh", *cmd], stamp)
        check(out.code, "tee baseline", out.stderr)
        through_tee.add(out.child_end - out.child_start)
        b.reset_store()
        t0 = time.monotonic()
        b.tar_czf_and_upload(log, PREFIX + "main-log.tgz")
        flush_peer.add(time.monotonic() - t0)
        log.unlink()
        # The wrapper, S3 store.
        b.reset_store()
        stamp = b.fresh("wrap") / "stamp.json"
        cmd = [*CHILD, "write", str(stamp), str(block), str(p.big)]
        out = b.run([*b.wrapper_args(None), "--", *cmd], stamp, b.wrapper_env(), rss=True)
        check(out.code, "wrapper 1 GiB run", out.stderr)
        through.add(out.child_end - out.child_start)
        flush.add(out.exited - out.child_end)
        rss.add(out.peak_rss_mib)
        chunks = [k for k in b.stored() if "/logs/main/" in k]
        expected = math.ceil(p.big / p.chunk)
        if len(chunks) < expected or PREFIX + "main-log.tgz" not in b.stored():
            raise RuntimeError(f"wrapper run stored {len(chunks)} chunks (expected {expected}) or no archive")
    results["rss_big"] = rss
    name = size_name(p.big)
    archive = b.s3.client().stat_object(BUCKET, PREFIX + "main-log.tgz").size
    rate = store_ingest_rate(b)
    stored = (p.big + archive) / MiB
    r1, r2 = ratio(through, through_tee), ratio(flush, flush_peer)
    return [
        Row("pass-through", f"COMMAND writes {name} to stdout: its wall", str(through),
            f"{through_tee} (`COMMAND | tee FILE`)", f"{r1:.2f}", "ratio ≤ 1.1", r1 <= 1.1),
        Row("log flush at exit", f"COMMAND exit → wrapper exit after {name}", str(flush),
            f"{flush_peer} (`tar czf` + `rclone copyto`)", f"{r2:.2f}", "ratio ≤ 0.25", r2 <= 0.25),
        Row("log flush at exit", "what bounds it: bytes stored for the step / the server's ingest rate",
            f"{stored:.0f} MiB (live chunks + {archive / MiB:.0f} MiB archive) / {rate:.0f} MiB/s "
            f"= {stored / rate:.1f} s of uploads, {through.median:.1f} s of them during the run",
            f"{flush_peer.median:.0f} s, of which the upload of a {archive / MiB:.0f} MiB archive: "
            f"{archive / MiB / rate:.1f} s"),
    ]


def store_ingest_rate(b: Bench) -> float:
    """MiB/s the S3 server takes 8 MiB PUTs at, one after another (one client, like the chunk lane)."""
    import io

    b.reset_store()
    client = b.s3.client()
    part = data.block_file(b.work).read_bytes()[: 8 * MiB]
    t0 = time.monotonic()
    for i in range(16):
        client.put_object(BUCKET, f"ingest/{i}", io.BytesIO(part), len(part))
    rate = 16 * 8 / (time.monotonic() - t0)
    b.reset_store()
    return rate


def memory(b: Bench, p: Params, results: dict[str, Series]) -> list[Row]:
    from .harness import faultproxy

    block = data.block_file(b.work)
    rows = []
    small = Series(unit="MiB")
    b.reset_store()
    stamp = b.fresh("mem-small") / "stamp.json"
    cmd = [*CHILD, "write", str(stamp), str(block), str(p.small)]
    out = b.run([*b.wrapper_args(None), "--", *cmd], stamp, b.wrapper_env(), rss=True)
    check(out.code, "wrapper memory run", out.stderr)
    small.add(out.peak_rss_mib)
    big = results.get("rss_big", Series(unit="MiB"))
    worst = max(small.values + big.values)
    rows.append(
        Row("memory", f"peak RSS of the wrapper, store healthy: {size_name(p.small)} vs {size_name(p.big)}",
            f"{small} vs {big}", "-", "-", "≤ 100 MiB, flat", worst <= 100)
    )
    proxy_cls = faultproxy()
    if proxy_cls is None:
        rows.append(Row("memory", "store throttled", "not measured: tests/faultproxy.py missing"))
        return rows
    b.reset_store()
    with proxy_cls("127.0.0.1", b.s3.port) as proxy:
        proxy.throttle(p.throttle, direction="upload")
        stamp = b.fresh("mem-throttled") / "stamp.json"
        cmd = [*CHILD, "write", str(stamp), str(block), str(p.big)]
        # The store cannot take the log at this rate: measure the run, give up on the flush soon.
        out = b.run(
            [*b.wrapper_args(None, "--flush-timeout", "2s"), "--", *cmd],
            stamp,
            b.wrapper_env(endpoint=proxy.endpoint),
            rss=True,
        )
    if out.code not in (0, 74):
        check(out.code, "throttled run", out.stderr)
    throttled = Series(unit="MiB", values=[out.peak_rss_mib])
    wall = out.child_end - out.child_start
    rows.append(
        Row("memory", f"peak RSS, store throttled to {p.throttle / 1e6:.0f} MB/s, {size_name(p.big)} log "
            f"(COMMAND wall {wall:.2f} s)", str(throttled), "-", "-", "≤ 100 MiB", throttled.median <= 100)
    )
    return rows


# -- results ---------------------------------------------------------------------------------


def results_case(b: Bench, p: Params) -> list[Row]:
    block = data.block_file(b.work)
    rows = []
    for count, size in (p.many_results, p.large_results):
        rdir = data.results_dir(b.work, f"results-{count}x{size}", count, size, block)
        files = sorted(rdir.iterdir())
        ours, peer, rss = Series(), Series(), Series(unit="MiB")
        for _ in range(p.results_runs):
            b.reset_store()
            t0 = time.monotonic()
            for f in files:
                b.tar_czf_and_upload(f, f"{PREFIX}{f.name}.tgz")
            peer.add(time.monotonic() - t0)
            b.reset_store()
            stamp = b.fresh("results") / "stamp.json"
            out = b.run(
                [*b.wrapper_args(rdir), "--", *CHILD, "stamp", str(stamp)], stamp, b.wrapper_env(), rss=True
            )
            check(out.code, "results run", out.stderr)
            ours.add(out.exited - out.child_end)
            rss.add(out.peak_rss_mib)
            stored = [k for k in b.stored() if k.endswith(".tgz") and "/result-" in k]
            if len(stored) != count:
                raise RuntimeError(f"results run stored {len(stored)} of {count} results")
        r = ratio(ours, peer)
        rows.append(
            Row("results", f"{count} x {size_name(size)}: COMMAND exit → wrapper exit (peak RSS {rss})",
                str(ours),
                f"{peer} (per file `tar czf` + `rclone copyto`)", f"{r:.2f}", "ratio ≤ 0.5", r <= 0.5)
        )
    return rows


# -- freshness -------------------------------------------------------------------------------

LINE = re.compile(rb"freshness-line (\d{6})\n")


def freshness(b: Bench, p: Params) -> list[Row]:
    b.reset_store()
    stamp = b.fresh("fresh") / "stamp.json"
    interval = f"{int(p.fresh_interval * 1000)}ms"
    argv = [
        *b.wrapper_args(None, "--log-flush-interval", interval),
        "--",
        *CHILD,
        "lines",
        str(stamp),
        str(p.fresh_lines),
        str(p.fresh_period),
    ]
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=b.wrapper_env())
    seen: dict[int, float] = {}
    read: set[str] = set()
    client = b.s3.client()
    prefix = PREFIX + "logs/main/"

    def poll() -> None:
        for obj in client.list_objects(BUCKET, prefix=prefix, recursive=True):
            key = obj.object_name
            if key in read:
                continue
            now = time.monotonic()
            read.add(key)
            for m in LINE.finditer(b.s3.read(BUCKET, key)):
                seen.setdefault(int(m.group(1)), now)

    while proc.poll() is None:
        poll()
        time.sleep(0.05)  # polling interval of the reader: part of the measured delay
    poll()
    _, err = proc.communicate()
    check(proc.returncode, "freshness run", err)
    import json

    written = json.loads(stamp.read_text())["lines"]
    delays = Series()
    for i, t in enumerate(written):
        if i not in seen:
            raise RuntimeError(f"line {i} never appeared in the live chunks")
        delays.add(seen[i] - t)
    p95 = delays.quantile(0.95)
    target = p.fresh_interval + 1.0
    return [
        Row("freshness", f"line written → readable in a live chunk, flush interval {p.fresh_interval:g} s, "
            f"{len(written)} lines",
            f"p50 {delays.quantile(0.5):.2f} s, p95 {p95:.2f} s, max {max(delays.values):.2f} s",
            "-", "-", f"p95 ≤ {target:g} s", p95 <= target)
    ]


# -- requests per step -----------------------------------------------------------------------


def requests_case(b: Bench, p: Params) -> list[Row]:
    from .harness import faultproxy

    proxy_cls = faultproxy()
    if proxy_cls is None:
        return [Row("requests", "not measured: tests/faultproxy.py missing", "-")]
    block = data.block_file(b.work)
    rows = []
    r = p.requests_results
    rdir = data.results_dir(b.work, f"results-{r}x64k", r, 64 * 1024, block)
    for log_size in p.requests_logs:
        b.reset_store()
        with proxy_cls("127.0.0.1", b.s3.port) as proxy:
            stamp = b.fresh("requests") / "stamp.json"
            cmd = [*CHILD, "write", str(stamp), str(block), str(log_size)]
            out = b.run([*b.wrapper_args(rdir), "--", *cmd], stamp, b.wrapper_env(endpoint=proxy.endpoint))
            check(out.code, "requests run", out.stderr)
            stats = proxy.stats()
        chunks = math.ceil(log_size / p.chunk)
        limit = r + chunks + 4
        go = 2 * (r + 1)  # the Go package: MakeBucket + PutObject for every result and for the log
        methods = ", ".join(f"{m} {n}" for m, n in sorted(stats.by_method.items()))
        rows.append(
            Row("requests", f"R={r} results, L={size_name(log_size)} log, chunk {size_name(p.chunk)} "
                f"({methods})", str(stats.requests), f"{go} (Go package, no live log)", "-",
                f"≤ R+⌈L/chunk⌉+4 = {limit}", stats.requests <= limit)
        )
    return rows


def _issue16() -> dict[str, Callable[[Bench, Params], list[Row]]]:
    from . import latency, throughput

    return {
        "launch": lambda b, p: latency.launch(b, p.latency_runs),
        "exit": lambda b, p: latency.exit_case(b, p.latency_runs, p.exit_hold),
        "signal": lambda b, p: latency.signal_case(b, p.latency_runs),
        "orphans": lambda b, p: latency.orphans(b, p.orphan_runs, p.orphan_window),
        "passthrough": lambda b, p: throughput.passthrough(b, p.pass_size, p.pass_runs),
        "cpubound": lambda b, p: throughput.cpubound(b, p.cpu_work, p.cpu_rate, p.cpu_runs),
        "image": lambda b, p: latency.image(b, p.image_runs) if p.image_runs else [
            Row("image", "`podman run`: wrapper exec → COMMAND running",
                "skipped in --quick (the full run builds the image; or pass --image IMAGE --image-runs N)")],
    }


CASES: dict[str, Callable[..., list[Row]]] = {
    "compression": compression,
    "startup": startup,
    "noop": noop,
    "biglog": big_log,
    "memory": memory,
    "results": results_case,
    "freshness": freshness,
    "requests": requests_case,
    **_issue16(),
}


def run_case(name: str, b: Bench, p: Params, shared: dict[str, Series]) -> list[Row]:
    fn = CASES[name]
    if name in ("biglog", "memory"):
        return fn(b, p, shared)
    return fn(b, p)
