"""Run the benchmark: ``.venv/bin/python -m tests.benchmarks [--quick] [--cases a,b] [--output FILE]``.

Starts a private moto server on 127.0.0.1, runs every case several times against its baseline in
the same run, and prints a Markdown table (median, min-max, ratio, target). Not a unit test: it
asserts nothing about timings; it fails only when a run does not store what it should.
"""

from __future__ import annotations

import argparse
import compileall
import dataclasses
import datetime
import shutil
import sys
import tempfile
import time
from pathlib import Path

from .cases import CASES, QUICK, Params, run_case
from .harness import Bench, Row, Series, machine, table


def parse(argv: list[str]) -> argparse.Namespace:
    ap = argparse.ArgumentParser(prog="python -m tests.benchmarks", description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="small sizes, one run each (a smoke test, ~30 s)")
    ap.add_argument("--cases", default=",".join(CASES), help=f"comma-separated subset of: {', '.join(CASES)}")
    ap.add_argument("--runs", type=int, help="repetitions of the 1 GiB and results cases (default 3)")
    ap.add_argument("--work", type=Path, help="scratch directory (default: a temporary one, removed)")
    ap.add_argument("--output", type=Path, help="also write the Markdown report to this file")
    return ap.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse(sys.argv[1:] if argv is None else argv)
    params = QUICK if args.quick else Params()
    if args.runs:
        params = dataclasses.replace(params, big_runs=args.runs, results_runs=args.runs)
    names = [n.strip() for n in args.cases.split(",") if n.strip()]
    unknown = [n for n in names if n not in CASES]
    if unknown:
        print(f"unknown case(s): {', '.join(unknown)}; choose from {', '.join(CASES)}", file=sys.stderr)
        return 2
    if shutil.which("rclone") is None and {"biglog", "results"} & set(names):
        print("rclone is not installed (apt-get install rclone; scripts/test installs it)", file=sys.stderr)
        return 2
    # An installed package has its bytecode compiled (pip, the image); a checkout may not, and with
    # PYTHONDONTWRITEBYTECODE set every wrapper run would compile its modules again.
    import entrypoint

    compileall.compile_dir(Path(entrypoint.__file__).parent, quiet=1)
    work = args.work or Path(tempfile.mkdtemp(prefix="tekton-uploader-bench-"))
    started = time.monotonic()
    when = datetime.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z")
    where = machine()
    bench = Bench(work)
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
            f"benchmark wall {elapsed:.0f} s.",
            "",
            table(rows),
            "",
        ]
    )
    print(report)
    if args.output:
        args.output.write_text(report)
    return 0
