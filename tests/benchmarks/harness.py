"""What every benchmark case needs: the S3 server, the wrapper and peer tools as processes, the
peak RSS of a process, and statistics that print as Markdown.
"""

from __future__ import annotations

import json
import os
import shutil
import statistics
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

HERE = Path(__file__).resolve().parent
TESTS = HERE.parent
REPO = TESTS.parent
if str(TESTS) not in sys.path:
    sys.path.insert(0, str(TESTS))

from conftest import ACCESS_KEY, SECRET_KEY, S3Server, clean_env, start_moto  # noqa: E402

CHILD = [sys.executable, str(HERE / "child.py")]
RUN, TASK = "bench-run", "bench-task"
PREFIX = f"artifacts/{RUN}/{TASK}/"
BUCKET = "bench"
MiB = 1024 * 1024


# -- statistics ------------------------------------------------------------------------------


@dataclass
class Series:
    """Repeated measurements of one quantity, in ``unit`` (s, ms, MiB, count)."""

    values: list[float] = field(default_factory=list)
    unit: str = "s"

    def add(self, value: float) -> None:
        self.values.append(value)

    @property
    def median(self) -> float:
        return statistics.median(self.values)

    def quantile(self, q: float) -> float:
        ordered = sorted(self.values)
        if len(ordered) == 1:
            return ordered[0]
        pos = q * (len(ordered) - 1)
        lo = int(pos)
        hi = min(lo + 1, len(ordered) - 1)
        return ordered[lo] + (ordered[hi] - ordered[lo]) * (pos - lo)

    def fmt(self, value: float) -> str:
        if self.unit == "ms":
            return f"{value * 1000:.1f} ms" if abs(value) < 0.01 else f"{value * 1000:.0f} ms"
        if self.unit == "MiB":
            return f"{value:.0f} MiB"
        if self.unit == "count":
            return f"{value:.0f}"
        return f"{value:.2f} s"

    def __str__(self) -> str:
        if not self.values:
            return "-"
        if len(self.values) == 1:
            return self.fmt(self.values[0])
        lo, hi = min(self.values), max(self.values)
        return f"{self.fmt(self.median)} ({self.fmt(lo)}-{self.fmt(hi)})"


@dataclass
class Row:
    case: str
    measure: str
    value: str
    baseline: str = "-"
    ratio: str = "-"
    target: str = "-"
    met: Optional[bool] = None


def ratio(a: Series, b: Series) -> float:
    return a.median / b.median if b.median else float("inf")


def table(rows: Sequence[Row]) -> str:
    head = "| case | measure | tekton-uploader | baseline (same run) | ratio | target | met |"
    lines = [head, "|---|---|---|---|---|---|---|"]
    for r in rows:
        met = "-" if r.met is None else ("yes" if r.met else "**no**")
        cells = (r.case, r.measure, r.value, r.baseline, r.ratio, r.target, met)
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


# -- processes -------------------------------------------------------------------------------


class PeakRss:
    """Samples the kernel's high-water mark (VmHWM) of one process until it exits."""

    def __init__(self, pid: int, interval: float = 0.02) -> None:
        self.pid = pid
        self.interval = interval
        self.peak_kib = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        try:
            with open(f"/proc/{self.pid}/status") as f:
                for line in f:
                    if line.startswith("VmHWM:"):
                        self.peak_kib = max(self.peak_kib, int(line.split()[1]))
                        return
        except (OSError, ValueError):
            pass

    def _sample(self) -> None:
        while not self._stop.is_set():
            self._read()
            self._stop.wait(self.interval)

    def stop(self) -> float:
        """Peak RSS in MiB."""
        self._stop.set()
        self._thread.join()
        return self.peak_kib / 1024


@dataclass
class Outcome:
    code: int
    started: float  # monotonic, just before the spawn
    exited: float  # monotonic, when wait() returned
    stamps: dict[str, object]
    peak_rss_mib: float
    stderr: bytes

    @property
    def child_start(self) -> float:
        return float(self.stamps["start"])  # type: ignore[arg-type]

    @property
    def child_end(self) -> float:
        return float(self.stamps["end"])  # type: ignore[arg-type]


class Bench:
    """The shared set-up of one benchmark run: a work directory, a private moto server, and the
    wrapper as users run it: ``script``, the console script of a regular install (install.py),
    whose interpreter ``python`` is the bare-interpreter baseline."""

    def __init__(self, work: Path, script: Path, python: Path, image: Optional[str] = None,
                 image_why: str = "") -> None:
        self.work = work
        self.work.mkdir(parents=True, exist_ok=True)
        self.wrapper = [str(script)]
        self.python = str(python)
        self.image, self.image_why = image, image_why
        self.local_store = work / "local-store"
        self.s3: S3Server = start_moto()
        self.rclone = shutil.which("rclone")
        self._n = 0
        self.reset_store()

    def close(self) -> None:
        self.s3.process.terminate()
        try:
            self.s3.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.s3.process.kill()
            self.s3.process.wait()

    # -- the store ---------------------------------------------------------------------------
    def reset_store(self) -> None:
        """Drop every object (moto keeps them in memory) and recreate the bucket."""
        req = urllib.request.Request(f"{self.s3.endpoint}/moto-api/reset", method="POST")
        with urllib.request.urlopen(req, timeout=30) as resp:
            resp.read()
        self.s3.client().make_bucket(BUCKET)

    def stored(self, prefix: str = PREFIX) -> list[str]:
        return self.s3.keys(BUCKET, prefix)

    # -- the wrapper -------------------------------------------------------------------------
    def fresh(self, name: str) -> Path:
        self._n += 1
        path = self.work / f"{self._n:03d}-{name}"
        path.mkdir()
        return path

    def local_env(self) -> dict[str, str]:
        return self.wrapper_env(endpoint=f"file://{self.local_store}")

    def wrapper_env(self, endpoint: Optional[str] = None, **extra: str) -> dict[str, str]:
        env = self.s3.env(BUCKET, **extra)
        if endpoint is not None:
            env["OBJECTSTORE_ENDPOINT"] = endpoint
        return env

    def wrapper_args(self, results: Optional[Path], *extra: str) -> list[str]:
        results = results or self.work / "no-results"
        return [
            *self.wrapper,
            "--pipelinerun",
            RUN,
            "--pipelinetask",
            TASK,
            "--results-dir",
            str(results),
            "--quiet",
            # The benchmark measures speed, not the spool cap. With the default 1 GiB spool a
            # 1 GiB burst was fully captured in 4 of 4 runs (backlog kept compressed, peak
            # 801-871 MiB of the ~880 MiB it may use while the store is behind): too thin a
            # margin to rely on, so the spool may grow here.
            "--spool-limit",
            "8GiB",
            *extra,
        ]

    def run(
        self,
        argv: Sequence[str],
        stamp: Optional[Path],
        env: Optional[dict[str, str]] = None,
        rss: bool = False,
        timeout: float = 600,
    ) -> Outcome:
        """Run a process to completion with stdout to /dev/null; its timings and peak RSS."""
        started = time.monotonic()
        proc = subprocess.Popen(
            list(argv), stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env
        )
        sampler = PeakRss(proc.pid) if rss else None
        _, err = proc.communicate(timeout=timeout)
        exited = time.monotonic()
        peak = sampler.stop() if sampler else 0.0
        stamps: dict[str, object] = {}
        if stamp is not None and stamp.exists():
            stamps = json.loads(stamp.read_text())
        return Outcome(proc.returncode, started, exited, stamps, peak, err)

    # -- peers -------------------------------------------------------------------------------
    def rclone_env(self) -> dict[str, str]:
        env = clean_env()
        env.pop("AWS_CA_BUNDLE", None)  # rclone cannot parse the machine's bundle as its own
        env.update(
            RCLONE_CONFIG=str(self.work / "rclone.conf"),
            RCLONE_CONFIG_BENCH_TYPE="s3",
            RCLONE_CONFIG_BENCH_PROVIDER="Other",
            RCLONE_CONFIG_BENCH_ENDPOINT=self.s3.endpoint,  # 127.0.0.1 only
            RCLONE_CONFIG_BENCH_ACCESS_KEY_ID=ACCESS_KEY,
            RCLONE_CONFIG_BENCH_SECRET_ACCESS_KEY=SECRET_KEY,
            RCLONE_CONFIG_BENCH_REGION="us-east-1",
            RCLONE_CONFIG_BENCH_FORCE_PATH_STYLE="true",
            # After a multipart upload rclone HEADs the object with ?versionId=null, which moto
            # answers with 400 (then rclone retries the whole copy): skip that check.
            RCLONE_CONFIG_BENCH_NO_HEAD="true",
        )
        (self.work / "rclone.conf").touch()
        return env

    def rclone_copyto(self, path: Path, key: str) -> None:
        assert self.rclone is not None
        subprocess.run(
            [self.rclone, "copyto", str(path), f"bench:{BUCKET}/{key}"],
            env=self.rclone_env(),
            check=True,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
        )

    def tar_czf_and_upload(self, path: Path, key: str) -> None:
        """What the Kubeflow copy-artifacts step does with one file: ``tar czf``, then upload it."""
        tgz = path.parent / (path.name + ".tgz")
        subprocess.run(["tar", "czf", str(tgz), "-C", str(path.parent), path.name], check=True)
        self.rclone_copyto(tgz, key)
        tgz.unlink()


def faultproxy() -> Optional[type]:
    """tests/faultproxy.py's FaultProxy (throttling, request counts), if this checkout has it."""
    try:
        from faultproxy import FaultProxy
    except ImportError:
        return None
    return FaultProxy  # type: ignore[no-any-return]


def machine() -> str:
    cores = os.cpu_count()
    mem = 0
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemTotal:"):
                mem = int(line.split()[1]) // (1024 * 1024)
    model = ""
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    load = os.getloadavg()
    return (
        f"{cores} cores ({model}), {mem} GiB memory, Python {sys.version.split()[0]}, "
        f"load average at start {load[0]:.2f}"
    )
