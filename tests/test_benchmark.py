"""Smoke test of the benchmark (tests/benchmarks): its quick mode runs every case end to end.

No timing assertions: the benchmark itself checks that each run stored what it should, and this
test checks that it completes and reports a row for every case. Under CI every peer the cases
compare with (tini, dumb-init, unshare as root; scripts/test installs them) must have been measured.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest
from conftest import REPO, clean_env, require_program

CASES = ("start-up", "no-op step", "pass-through", "log flush at exit", "memory", "results", "freshness",
         "requests", "launch", "exit", "signal", "orphans", "cpu-bound", "image")


@pytest.mark.benchmark
@pytest.mark.timeout(420)  # the first run on a machine makes the regular install (pip install .)
def test_benchmark_quick_mode_runs_every_case() -> None:
    require_program("rclone", "apt-get install rclone")
    proc = subprocess.run(
        [sys.executable, "-m", "tests.benchmarks", "--quick"],
        cwd=REPO,
        env=clean_env(),
        capture_output=True,
        timeout=400,
    )
    assert proc.returncode == 0, proc.stderr.decode(errors="replace")[-2000:]
    out = proc.stdout.decode()
    for case in CASES:
        assert f"| {case} |" in out, out
    assert "not measured" not in out, out
    assert "regular `pip install .`" in out, out
    assert not re.search(r"\bnan\b", out), out
    if os.environ.get("CI"):
        assert "not installed" not in out and "needs root" not in out, out
