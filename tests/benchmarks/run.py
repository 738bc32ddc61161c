"""Run the benchmark: ``.venv/bin/python -m tests.benchmarks [--quick] [--cases a,b] [--output FILE]``.

Starts a private moto server on 127.0.0.1, runs every case several times against its baseline in
the same run, and prints a Markdown table (median, min-max, ratio, target). Not a unit test: it
asserts nothing about timings; it fails only when a run does not store what it should.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import shutil
import sys
import tempfile
import time
from pathlib import Path

from .cases import CASES, QUICK, Params, run_case
from .harness import Bench, Row, Series, machine, table
from .install import image as image_for
from .install import regular_install


def parse(argv: list[str]) -> argparse.Namespace:
    ap = argparse.ArgumentParser(prog="python -m tests.benchmarks", description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="small sizes, one run each (a smoke test, ~30 s)")
    ap.add_argument("--cases", default=",".join(CASES), help=f"comma-separated subset of: {', '.join(CASES)}")
    ap.add_argument("--runs", type=int, help="repetitions of the 1 GiB, results, pass-through, CPU-bound and "
                    "orphan cases and rounds of the latency cases (defaults: 3; 10 for latencies)")
    ap.add_argument("--image", help="the image for the image case (default: build it with image/ci-prepare)")
    ap.add_argument("--image-runs", type=int, help="runs of the image case (default 5; 0 in --quick)")
    ap.add_argument("--cpu-work", type=int, help="MiB of SHA-256 per worker in the CPU-bound case "
                    "(default 60000, about 30 s on 2 idle cores; 200 in --quick)")
    ap.add_argument("--work", type=Path, help="scratch directory (default: a temporary one, removed)")
    ap.add_argument("--output", type=Path, help="also write the Markdown report to this file")
    return ap.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse(sys.argv[1:] if argv is None else argv)
    params = QUICK if args.quick else Params()
    if args.runs:
        params = dataclasses.replace(params, big_runs=args.runs, results_runs=args.runs, latency_runs=args.runs,
                                     orphan_runs=args.runs, pass_runs=args.runs, cpu_runs=args.runs)
    if args.image_runs is not None:
        params = dataclasses.replace(params, image_runs=args.image_runs)
    if args.cpu_work:
        params = dataclasses.replace(params, cpu_work=args.cpu_work)
    names = [n.strip() for n in args.cases.split(",") if n.strip()]
    unknown = [n for n in names if n not in CASES]
    if unknown:
        print(f"unknown case(s): {', '.join(unknown)}; choose from {', '.join(CASES)}", file=sys.stderr)
        return 2
    if shutil.which("rclone") is None and {"biglog", "results"} & set(names):
        print("rclone is not installed (apt-get install rclone; scripts/test installs it)", file=sys.stderr)
        return 2
    started = time.monotonic()
    # What users run: the console script of a regular `pip install .` (never the editable checkout).
    install = regular_install()
    image, image_why = None, ""
    if "image" in names and params.image_runs:
        image, image_why = image_for(args.image)
    work = args.work or Path(tempfile.mkdtemp(prefix="tekton-uploader-bench-"))
    when = datetime.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z")
    where = machine()
    bench = Bench(work, install.script, install.python, image, image_why)
    rows: list[Row] = []
    shared: dict[str, Series] = {}
    try:
        for name in names:
            t0 = time.monotonic()
            print(f"[bench] {name} ...", file=sys.stderr, flush=True)
            rows.extend(run_case(name, bench, params, shared))
            print(f"[bench] {name} done in {time.monotonic() - t0:.0f} s", file=sys.stderr, flush=True)
    finally:
        bench.close()
        if args.work is None:
            shutil.rmtree(work, ignore_errors=True)
    elapsed = time.monotonic() - started
    report = "\n".join(
        [
            f"Date: {when}. Machine: {where}. Mode: {'quick' if args.quick else 'full'}; "
            f"benchmark wall {elapsed:.0f} s. Wrapper: the console script of a regular `pip install .` "
            f"(content hash {install.venv.name}).",
            "",
            table(rows),
            "",
        ]
    )
    print(report)
    if args.output:
        args.output.write_text(report)
    return 0
