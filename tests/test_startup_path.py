"""The supervisor's loop runs from the spawn (issue 16): COMMAND's output is pumped, in arrival
order, while the rest of the wrapper is still being wired; what arrives before the capture is
wired is held in memory up to a bound (then COMMAND waits), and the wrapper's threads are named
and the background ones run at a lower priority."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

from conftest import untar_single, wait_until
from test_supervisor import Wrapper, local  # noqa: F401 - the fixture

PY = sys.executable
ROOT = Path(__file__).resolve().parent.parent

# COMMAND writes one line to stdout, then one to stderr, ... each only after the wrapper has
# passed the one before through (the test answers on COMMAND's stdin): the order in which they
# arrived is known, whatever the machine's speed.
LOCKSTEP = r"""
import os, sys
for i in range(1, 5):
    for fd, name in ((1, "out"), (2, "err")):
        os.write(fd, b"%s %d\n" % (name.encode(), i))
        if sys.stdin.readline() != "go\n":
            sys.exit(3)
"""


def test_output_order_is_kept_from_the_first_byte(local) -> None:  # noqa: F811
    env, read, opts = local
    proc = subprocess.Popen(
        [PY, "-m", "entrypoint", *opts, "-q", "--", PY, "-c", LOCKSTEP],
        env=env, cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )  # fmt: skip
    assert proc.stdin is not None and proc.stdout is not None and proc.stderr is not None
    seen = []
    for i in range(1, 5):
        for stream, name in ((proc.stdout, "out"), (proc.stderr, "err")):
            seen.append(stream.readline().decode())  # passed through: the pump has it
            assert seen[-1] == f"{name} {i}\n", seen
            proc.stdin.write(b"go\n")
            proc.stdin.flush()
    assert proc.wait(60) == 0, proc.stderr.read()
    assert untar_single(read("artifacts/r/t/main-log.tgz"))[1] == "".join(seen).encode()


EARLY = r"""
import os, subprocess, sys, time
from entrypoint.report import Reporter
from entrypoint.wrapper import supervisor as sv
from conftest import wait_until

total = int(sys.argv[1])
writer = "import os\nblock = b'x' * 65535 + b'\\n'\nfor _ in range(%d): os.write(1, block)\n" % (total // 65536)
sup = sv.Supervisor([sys.executable, "-c", writer], Reporter(), stdout=os.open(os.devnull, os.O_WRONLY))
assert sv.start(sup, Reporter()) is None
# no sink yet (as while run.py is imported): the loop holds output up to its bound, then stops reading
wait_until(lambda: sup._early.size >= sv.EARLY_LIMIT, 60, what="the early buffer to fill")
held = sup._early.size
assert held < sv.EARLY_LIMIT + sv.READ_SIZE, held
assert os.waitpid(sup.pid, os.WNOHANG) == (0, 0), "COMMAND waits while the capture is wired"


class Sink:
    def __init__(self):
        self.data = bytearray()

    def write(self, data):
        self.data += data

    def due(self):
        return None

    def tick(self, now):
        pass


sup.sink = Sink()
code = sup.run()
sup.finish()
block = b"x" * 65535 + b"\n"
assert bytes(sup.sink.data) == block * (total // 65536), len(sup.sink.data)
print("ok", code, held)
"""


def test_output_before_the_capture_is_wired_is_bounded_and_kept() -> None:
    total = 24 * 1024 * 1024  # more than the early bound plus the pipe
    out = subprocess.run(
        [PY, "-c", EARLY, str(total)], cwd=ROOT, capture_output=True, timeout=120,
        env={**os.environ, "PYTHONPATH": f"{ROOT}{os.pathsep}{ROOT / 'tests'}"},
    )  # fmt: skip
    assert out.returncode == 0, out.stderr.decode()[-2000:]
    assert out.stdout.startswith(b"ok 0 "), out.stdout


def _threads(pid: int) -> dict[str, int]:
    """comm -> nice of the threads of ``pid``."""
    found = {}
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            comm = Path(f"/proc/{pid}/task/{tid}/comm").read_text().strip()
            stat = Path(f"/proc/{pid}/task/{tid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        found[comm] = int(stat[16])  # field 19 of stat: nice
    return found


def test_threads_are_named_and_background_work_runs_at_a_lower_priority(local) -> None:  # noqa: F811
    env, _read, opts = local
    w = Wrapper([*opts, "--", PY, "-c", "import time; print('ready', flush=True); time.sleep(120)"], env)
    try:
        w.wait_line("ready")
        wait_until(lambda: {"tu-pump", "tu-log-archiver", "tu-sampler"} <= set(_threads(w.proc.pid)), 30,
                   what="the wrapper's threads")  # fmt: skip
        nice = _threads(w.proc.pid)
        assert nice["tu-pump"] == nice["tu-signals"] == os.getpriority(os.PRIO_PROCESS, 0)
        assert nice["tu-log-archiver"] > nice["tu-pump"]
        assert nice["tu-sampler"] > nice["tu-pump"]
        assert all(nice[t] > nice["tu-pump"] for t in nice if t.startswith("tu-upload-"))
    finally:
        w.proc.send_signal(signal.SIGTERM)  # COMMAND ends on it; the wrapper stores the log
        assert w.wait() == 128 + signal.SIGTERM
