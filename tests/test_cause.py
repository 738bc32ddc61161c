"""Why COMMAND died (the summary's ``cause``) and the faster flush when death is near.

The OOM kill is real: a memory cgroup (v1 on this machine) is made for the test, the wrapper is
put in it, and COMMAND allocates past its limit. cgroup v2 is simulated by a directory the test
writes (``--cgroup-root``): the wrapper reads it exactly as it reads ``/sys/fs/cgroup``.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import WRAPPER, S3Server, StoreView, clean_env, run_wrapper, untar_single, wait_until

from entrypoint.report import Reporter
from entrypoint.wrapper.cgroup import Cgroup, locate
from entrypoint.wrapper.outcome import CAUSES, cause_of, signal_name
from entrypoint.wrapper.pressure import FAST_INTERVAL, MemoryWatch

PREFIX = "artifacts/run-1/task-1/"
IDENTITY = ["--pipelinerun", "run-1", "--pipelinetask", "task-1"]
PY = sys.executable
MiB = 1024 * 1024
V1_MEMORY = Path("/sys/fs/cgroup/memory")


@pytest.fixture
def moto(s3: S3Server, bucket: str) -> StoreView:
    return StoreView("s3", s3.env(bucket), bucket, s3, None)


def fake_v2(root: Path, limit: int = 100 * MiB, current: int = 10 * MiB, oom_kill: int = 0) -> Path:
    """A cgroup v2 directory as a container sees it at /sys/fs/cgroup."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "cgroup.controllers").write_text("cpu io memory pids\n")
    (root / "memory.max").write_text(f"{limit}\n")
    (root / "memory.current").write_text(f"{current}\n")
    (root / "memory.peak").write_text(f"{current}\n")
    (root / "memory.pressure").write_text(
        "some avg10=0.00 avg60=0.00 avg300=0.00 total=0\nfull avg10=0.00 avg60=0.00 avg300=0.00 total=0\n"
    )
    set_events(root, oom_kill)
    return root


def set_events(root: Path, oom_kill: int) -> None:
    (root / "memory.events").write_text(
        f"low 0\nhigh 0\nmax {oom_kill}\noom {oom_kill}\noom_kill {oom_kill}\noom_group_kill 0\n"
    )


def wrap_args(tmp_path: Path, *extra: str) -> list[str]:
    return [*IDENTITY, "--results-dir", str(tmp_path / "results"), *extra]


def summary_of(store: StoreView) -> dict[str, object]:
    data: dict[str, object] = json.loads(store.read(PREFIX + "main-summary.json"))
    return data


def chunk_keys(store: StoreView) -> list[str]:
    return store.keys(PREFIX + "logs/main/")


# -- reading the cgroup ----------------------------------------------------------------------


def test_v2_is_found_at_the_root_and_read(tmp_path: Path) -> None:
    root = fake_v2(tmp_path / "cg", limit=200 * MiB, current=150 * MiB, oom_kill=2)
    proc_cgroup = tmp_path / "proc-cgroup"
    proc_cgroup.write_text("0::/kubepods/pod-x/container-y\n")  # not under root: a cgroup namespace
    cgroup = locate(root, proc_cgroup)
    assert cgroup is not None and cgroup.version == 2
    memory = cgroup.read()
    assert memory is not None
    assert (memory.limit, memory.current, memory.peak) == (200 * MiB, 150 * MiB, 150 * MiB)
    assert memory.counters == {"oom": 2, "oom_kill": 2, "oom_group_kill": 0}
    assert memory.fraction() == 0.75
    (root / "memory.max").write_text("max\n")
    assert Cgroup(root, 2).read().limit is None  # type: ignore[union-attr]


def test_reclaimable_page_cache_does_not_count_toward_the_threshold(tmp_path: Path) -> None:
    root = fake_v2(tmp_path / "cg", limit=100 * MiB, current=95 * MiB)
    (root / "memory.stat").write_text(f"anon {50 * MiB}\nfile {45 * MiB}\ninactive_file {40 * MiB}\n")
    memory = Cgroup(root, 2).read()
    assert memory is not None and memory.fraction() == 0.55
    capture = FakeCapture(5.0)
    MemoryWatch(Cgroup(root, 2), memory, capture, 0.9, Reporter()).tick()
    assert capture.flush_interval == 5.0


def test_v2_child_cgroup_from_proc_self_cgroup(tmp_path: Path) -> None:
    root = fake_v2(tmp_path / "cg", limit=1)
    child = fake_v2(root / "pod" / "ctr", limit=50 * MiB)
    proc_cgroup = tmp_path / "proc-cgroup"
    proc_cgroup.write_text("0::/pod/ctr\n")
    cgroup = locate(root, proc_cgroup)
    assert cgroup is not None and cgroup.path == child
    assert cgroup.read().limit == 50 * MiB  # type: ignore[union-attr]


def test_v1_is_read(tmp_path: Path) -> None:
    mem = tmp_path / "cg" / "memory" / "job"
    mem.mkdir(parents=True)
    for name, value in {
        "memory.limit_in_bytes": str(64 * MiB),
        "memory.usage_in_bytes": str(10 * MiB),
        "memory.max_usage_in_bytes": str(63 * MiB),
        "memory.oom_control": "oom_kill_disable 0\nunder_oom 0\noom_kill 1",
        "memory.failcnt": "7",
    }.items():
        (mem / name).write_text(value + "\n")
    proc_cgroup = tmp_path / "proc-cgroup"
    proc_cgroup.write_text("5:cpu,cpuacct:/\n4:memory:/job\n0::/\n")
    cgroup = locate(tmp_path / "cg", proc_cgroup)
    assert cgroup is not None and (cgroup.version, cgroup.path) == (1, mem)
    memory = cgroup.read()
    assert memory is not None
    assert (memory.limit, memory.current, memory.peak) == (64 * MiB, 10 * MiB, 63 * MiB)
    assert memory.counters == {"oom_kill": 1, "failcnt": 7}


def test_no_cgroup_to_read(tmp_path: Path) -> None:
    assert locate(tmp_path / "nothing") is None


# -- the cause, from wait statuses -----------------------------------------------------------


def status_of(script: str) -> int:
    """A real wait status: run ``sh -c script`` and wait for it."""
    pid = os.spawnvp(os.P_NOWAIT, "sh", ["sh", "-c", script])
    return os.waitpid(pid, 0)[1]


def test_each_cause(tmp_path: Path) -> None:
    root = fake_v2(tmp_path / "cg", limit=200 * MiB, current=20 * MiB)
    before = Cgroup(root, 2).read()
    killed, exited = status_of("kill -KILL $$"), status_of("exit 3")
    assert cause_of(exited, False, False, before, before).name == "exit"
    assert cause_of(killed, False, False, before, before).name == "signal"
    (root / "memory.peak").write_text(f"{199 * MiB}\n")
    set_events(root, oom_kill=1)
    after = Cgroup(root, 2).read()
    oom = cause_of(killed, False, False, before, after)
    assert oom.name == "oom-kill"
    assert oom.text == "was killed by the kernel's OOM killer at the 200.0 MiB memory limit, peak 199.0 MiB"
    assert oom.detail == {
        "signal": 9,
        "cgroup": "v2",
        "memory_limit_bytes": 200 * MiB,
        "memory_peak_bytes": 199 * MiB,
        "counters_moved": {"oom": 1, "oom_kill": 1},
        "counter": "memory.events oom_kill",
    }
    assert cause_of(exited, False, False, before, after).name == "exit"  # a grandchild was killed
    assert cause_of(killed, True, False, before, after).name == "timeout"
    assert cause_of(status_of("kill -TERM $$"), False, True).name == "terminated"
    assert cause_of(killed, False, True, tekton_timeout=True).name == "tekton-timeout"
    assert cause_of(killed, False, False).name == "signal"  # no cgroup: what the wrapper saw
    assert set(CAUSES) == {"exit", "signal", "oom-kill", "timeout", "tekton-timeout", "terminated"}


# -- the pace of the live chunks -------------------------------------------------------------


class FakeCapture:
    def __init__(self, interval: float) -> None:
        self.flush_interval = interval


def test_pace_follows_memory_use_pressure_and_sigterm(tmp_path: Path, capfd: pytest.CaptureFixture[str]) -> None:
    root = fake_v2(tmp_path / "cg", limit=100 * MiB, current=50 * MiB)
    capture = FakeCapture(5.0)
    term = [False]
    wakes: list[int] = []
    watch = MemoryWatch(
        Cgroup(root, 2), Cgroup(root, 2).read(), capture, 0.9, Reporter(), terminated=lambda: term[0], wake=lambda: wakes.append(1)
    )
    watch.tick()
    assert capture.flush_interval == 5.0
    (root / "memory.current").write_text(f"{91 * MiB}\n")
    watch.tick()
    watch.tick()
    assert capture.flush_interval == FAST_INTERVAL and wakes == [1]
    (root / "memory.current").write_text(f"{40 * MiB}\n")
    watch.tick()
    assert capture.flush_interval == 5.0
    (root / "memory.pressure").write_text("some avg10=35.50 avg60=1.00 avg300=0.00 total=9\n")
    watch.tick()
    assert capture.flush_interval == FAST_INTERVAL
    (root / "memory.pressure").write_text("some avg10=0.00 avg60=1.00 avg300=0.00 total=9\n")
    watch.tick()
    assert capture.flush_interval == 5.0
    term[0] = True
    (root / "memory.current").write_text(f"{1 * MiB}\n")
    watch.tick()
    assert capture.flush_interval == FAST_INTERVAL
    assert watch.peak == 91 * MiB
    said = [line for line in capfd.readouterr().err.splitlines() if "every 1s" in line]
    assert len(said) == 1 and "memory use at 91% of the 100.0 MiB cgroup limit" in said[0]
    assert watch.summary()["fast_flush"] == "memory use at 91% of the 100.0 MiB cgroup limit"


def handshake_command(tmp_path: Path, lines: int) -> list[str]:
    """COMMAND prints line i, then waits for the test's go-ahead file i before the next line."""
    script = "; ".join(
        f"echo line {i}; while [ ! -e {tmp_path}/go{i} ]; do sleep 0.02; done" for i in range(lines - 1)
    )
    return ["sh", "-c", f"{script}; echo line {lines - 1}"]


def run_handshake(store: StoreView, tmp_path: Path, env: dict[str, str], lines: int) -> subprocess.Popen[bytes]:
    cmd = [*WRAPPER, *wrap_args(tmp_path, "--log-flush-interval", "1h"), "--", *handshake_command(tmp_path, lines)]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    for i in range(lines - 1):  # chunk i is stored long before the 1 h interval: the fast pace
        wait_until(lambda i=i: len(chunk_keys(store)) > i, timeout=60, what=f"live chunk {i}")
        (tmp_path / f"go{i}").touch()
    return proc


def test_near_the_limit_every_line_goes_up_in_its_own_chunk(moto: StoreView, tmp_path: Path) -> None:
    root = fake_v2(tmp_path / "cg", limit=100 * MiB, current=95 * MiB)
    proc = run_handshake(moto, tmp_path, {**moto.env, "OBJECTSTORE_CGROUP_ROOT": str(root)}, lines=4)
    _out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    keys = chunk_keys(moto)
    assert len(keys) == 4
    assert [moto.read(k) for k in keys] == [f"line {i}\n".encode() for i in range(4)]
    summary = summary_of(moto)
    assert summary["fast_flush"] == "memory use at 95% of the 100.0 MiB cgroup limit"
    assert summary["cause"] == "exit"
    assert err.decode().count("uploading the live log every 1s") == 1


def test_away_from_the_limit_the_interval_holds(moto: StoreView, tmp_path: Path) -> None:
    root = fake_v2(tmp_path / "cg", limit=100 * MiB, current=50 * MiB)
    cmd = ["sh", "-c", "for i in 0 1 2 3; do echo line $i; sleep 0.3; done"]
    env = {**moto.env, "OBJECTSTORE_CGROUP_ROOT": str(root)}
    proc = run_wrapper([*wrap_args(tmp_path, "--log-flush-interval", "1h"), "--", *cmd], env)
    assert proc.returncode == 0, proc.stderr
    keys = chunk_keys(moto)
    assert len(keys) == 1  # sealed once, at the end
    assert moto.read(keys[0]) == b"".join(f"line {i}\n".encode() for i in range(4))
    assert summary_of(moto)["fast_flush"] is None
    assert b"every 1s" not in proc.stderr


def test_after_sigterm_the_live_log_goes_up_every_second(moto: StoreView, tmp_path: Path) -> None:
    script = (
        f"trap 'echo got TERM' TERM; echo started; "
        f"while [ ! -e {tmp_path}/go0 ]; do sleep 0.02; done; echo after; "
        f"while [ ! -e {tmp_path}/go1 ]; do sleep 0.02; done; exit 0"
    )
    cmd = [*WRAPPER, *wrap_args(tmp_path, "--log-flush-interval", "1h", "--kill-after", "5m"), "--", "sh", "-c", script]
    env = {**moto.env, "OBJECTSTORE_CGROUP_ROOT": str(tmp_path / "none")}
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert proc.stdout is not None
    assert proc.stdout.readline() == b"started\n"
    proc.send_signal(signal.SIGTERM)
    wait_until(lambda: chunk_keys(moto), timeout=60, what="the first chunk after SIGTERM")
    (tmp_path / "go0").touch()
    wait_until(lambda: len(chunk_keys(moto)) > 1, timeout=60, what="the second chunk after SIGTERM")
    (tmp_path / "go1").touch()
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    summary = summary_of(moto)
    assert (summary["cause"], summary["fast_flush"]) == ("terminated", "SIGTERM received")
    log = b"".join(moto.read(k) for k in chunk_keys(moto))
    assert log.startswith(b"started\n") and b"got TERM\n" in log and log.endswith(b"after\n")


# -- the causes of real runs -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("cmd", "extra", "code", "cause", "words"),
    [
        (["sh", "-c", "echo x; exit 3"], [], 3, "exit", "COMMAND ended with exit code 3"),
        (["sh", "-c", "kill -KILL $$"], [], 137, "signal", "COMMAND was killed by signal 9 (SIGKILL)"),
        (["sleep", "60"], ["--timeout", "1s"], 124, "timeout", "COMMAND was stopped by --timeout (signal 15"),
    ],
    ids=["exit", "signal", "timeout"],
)
def test_cause_of_a_real_run(
    moto: StoreView, tmp_path: Path, cmd: list[str], extra: list[str], code: int, cause: str, words: str
) -> None:
    proc = run_wrapper([*wrap_args(tmp_path, *extra), "--", *cmd], moto.env)
    assert proc.returncode == code, proc.stderr
    summary = summary_of(moto)
    assert summary["cause"] == cause
    assert words in proc.stderr.decode()


def test_fake_v2_oom_kill_is_recorded_said_and_written_to_the_termination_log(
    moto: StoreView, tmp_path: Path
) -> None:
    root = fake_v2(tmp_path / "cg", limit=200 * MiB, current=20 * MiB)
    termination = tmp_path / "termination"
    termination.write_text('[{"key":"StartedAt","value":"2026-01-01T00:00:00Z","type":3}]')
    # COMMAND plays the kernel: usage at the limit, oom_kill counted, then SIGKILL
    script = (
        f"echo allocating; echo {199 * MiB} > {root}/memory.peak; "
        f"printf 'oom 1\\noom_kill 1\\noom_group_kill 0\\n' > {root}/memory.events; kill -KILL $$"
    )
    env = {**moto.env, "OBJECTSTORE_CGROUP_ROOT": str(root), "OBJECTSTORE_TERMINATION_LOG": str(termination)}
    proc = run_wrapper([*wrap_args(tmp_path), "--", "sh", "-c", script], env)
    assert proc.returncode == 137, proc.stderr
    summary = summary_of(moto)
    assert summary["cause"] == "oom-kill"
    assert summary["cause_detail"] == {
        "signal": 9,
        "cgroup": "v2",
        "memory_limit_bytes": 200 * MiB,
        "memory_peak_bytes": 199 * MiB,
        "counters_moved": {"oom": 1, "oom_kill": 1},
        "counter": "memory.events oom_kill",
    }
    words = "COMMAND was killed by the kernel's OOM killer at the 200.0 MiB memory limit, peak 199.0 MiB"
    assert words in proc.stderr.decode()
    entries = json.loads(termination.read_text())
    assert entries[0]["key"] == "StartedAt"
    assert entries[1] == {"key": "tekton-uploader-cause", "value": f"main: {words}", "type": 1}


def test_no_readable_cgroup_leaves_the_cause_from_what_the_wrapper_saw(moto: StoreView, tmp_path: Path) -> None:
    env = {**moto.env, "OBJECTSTORE_CGROUP_ROOT": str(tmp_path / "none")}
    proc = run_wrapper([*wrap_args(tmp_path), "--", "sh", "-c", "kill -KILL $$"], env)
    assert proc.returncode == 137
    summary = summary_of(moto)
    assert (summary["cause"], summary["cause_detail"]) == ("signal", {"signal": 9})
    assert summary["fast_flush"] is None


def test_fast_flush_at_is_checked(tmp_path: Path) -> None:
    proc = run_wrapper([*wrap_args(tmp_path, "--fast-flush-at", "150%"), "--", "true"], clean_env())
    assert proc.returncode == 2
    assert proc.stderr.decode().strip().endswith("--fast-flush-at: '150%' is not a percentage from 1% to 100%; use e.g. 90%")


# -- a real OOM kill in a real memory cgroup (v1 here) ---------------------------------------


@pytest.fixture
def memory_cgroup() -> Iterator[Path]:
    """A fresh cgroup v1 memory cgroup with a 160 MiB limit, removed after the test."""
    problem = None
    if os.geteuid() != 0:
        problem = "not root"
    elif not (V1_MEMORY / "memory.limit_in_bytes").is_file():
        problem = f"no cgroup v1 memory controller at {V1_MEMORY}"
    if problem:
        message = f"a real memory cgroup is needed to be OOM-killed ({problem})"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    path = V1_MEMORY / f"tekton-uploader-test-{uuid.uuid4().hex[:8]}"
    path.mkdir()
    try:
        (path / "memory.limit_in_bytes").write_text(str(160 * MiB))
        if (path / "memory.memsw.limit_in_bytes").exists():
            (path / "memory.memsw.limit_in_bytes").write_text(str(160 * MiB))
        yield path
    finally:
        wait_until(lambda: not (path / "cgroup.procs").read_text().strip(), timeout=30, what="an empty cgroup")
        path.rmdir()


ALLOCATE = """
import os, sys
cgroup, go = sys.argv[1], sys.argv[2]
with open('/proc/self/oom_score_adj', 'w') as f:  # the OOM killer's first choice, not the wrapper
    f.write('1000')
def usage():  # the working set, as the wrapper counts it
    with open(cgroup + '/memory.usage_in_bytes') as f:
        used = int(f.read())
    with open(cgroup + '/memory.stat') as f:
        stat = dict(line.split() for line in f)
    return used - int(stat.get('total_inactive_file', 0))
blocks = []
while usage() < 0.93 * 160 * 1024 * 1024:  # the wrapper's share counts too
    blocks.append(bytearray(1024 * 1024))
print(f'near the limit with {len(blocks)} MiB', flush=True)
while not os.path.exists(go):  # the test's go-ahead: a live chunk was stored at the fast pace
    pass
for i in range(1, 10000):
    print(f'allocating {i} MiB more', flush=True)
    blocks.append(bytearray(1024 * 1024))
"""


def test_real_oom_kill_in_a_v1_memory_cgroup(moto: StoreView, tmp_path: Path, memory_cgroup: Path) -> None:
    launcher = f'echo $$ > {memory_cgroup}/cgroup.procs && exec "$@"'
    go = tmp_path / "go"
    command = [PY, "-c", ALLOCATE, str(memory_cgroup), str(go)]
    cmd = ["sh", "-c", launcher, "sh", *WRAPPER, *wrap_args(tmp_path, "--log-flush-interval", "1h"), "--", *command]
    proc = subprocess.Popen(cmd, env=moto.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    # with a 1 h interval only the fast pace near the limit stores a live chunk while COMMAND runs
    wait_until(lambda: chunk_keys(moto), timeout=60, what="a live chunk near the memory limit")
    go.touch()
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 137, err
    summary = summary_of(moto)
    assert summary["cause"] == "oom-kill", summary
    assert str(summary["fast_flush"]).startswith("memory use at 9"), summary
    detail = summary["cause_detail"]
    assert isinstance(detail, dict)
    assert (detail["cgroup"], detail["memory_limit_bytes"], detail["signal"]) == ("v1", 160 * MiB, 9)
    assert detail["counter"] == "memory.oom_control oom_kill"
    assert detail["counters_moved"]["oom_kill"] >= 1
    assert 0.93 * 160 * MiB <= detail["memory_peak_bytes"] <= 160 * MiB
    assert "COMMAND was killed by the kernel's OOM killer at the 160.0 MiB memory limit" in err.decode()
    lines = out.decode().splitlines()
    assert lines[0].startswith("near the limit")  # then killed: waiting, or allocating more
    _name, log = untar_single(moto.read(PREFIX + "main-log.tgz"))
    assert log == out  # the log up to the kill, byte for byte
    assert b"".join(moto.read(k) for k in chunk_keys(moto)) == out


def test_signal_names_are_the_signal_modules() -> None:
    """``signal_name`` (no enum on the run path) gives ``signal.Signals(n).name`` for every number."""
    for n in range(-1, 130):
        try:
            expected = signal.Signals(n).name
        except ValueError:
            with pytest.raises(ValueError):
                signal_name(n)
            continue
        assert signal_name(n) == expected, n
