"""Smoke test of the benchmark (tests/benchmarks): its quick mode runs every case end to end.

No timing assertions: the benchmark itself checks that each run stored what it should, and this
test checks that it completes and reports a row for every case.
"""

from __future__ import annotations

import subprocess
import sys

import pytest
from conftest import REPO, clean_env, require_program


@pytest.mark.benchmark
def test_benchmark_quick_mode_runs_every_case() -> None:
    require_program("rclone", "apt-get install rclone")
    proc = subprocess.run(
        [sys.executable, "-m", "tests.benchmarks", "--quick"],
        cwd=REPO,
        env=clean_env(),
        capture_output=True,
        timeout=240,
    )
    assert proc.returncode == 0, proc.stderr.decode(errors="replace")[-2000:]
    out = proc.stdout.decode()
    for case in ("start-up", "no-op step", "pass-through", "log flush at exit", "memory", "results",
                 "freshness", "requests"):
        assert f"| {case} |" in out, out
    assert "not measured" not in out, out
