"""COMMAND of the image smoke test: runs inside the container, under the wrapper.

Mounted read-only at /smoke/probe.py next to its inputs (stdout.bin, stderr.bin, exit-code). It
  * records its own view of the process tree (is the wrapper PID 1 and our parent?) and the time it
    started, so the host can compute start-to-COMMAND latency;
  * makes an orphan (double fork) that is re-parented to PID 1 and exits, and watches whether PID 1
    reaps it (a zombie that never goes away means PID 1 does not reap);
  * writes Tekton results (text, binary, empty, and probe.json with the observations above) into
    the results directory;
  * writes stdout.bin and stderr.bin to fd 1 and fd 2 unchanged and exits with the code in exit-code.
Standard library only; runs on the base image's python3 (3.9+).
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

INPUTS = Path(__file__).resolve().parent
# How long PID 1 gets to reap the orphan (seconds): the file reap-timeout, else 20.
try:
    REAP_TIMEOUT = float((INPUTS / "reap-timeout").read_text())
except OSError:
    REAP_TIMEOUT = 20.0


def start_ticks(pid: str) -> int:
    """Field 22 (starttime, clock ticks since boot) of /proc/<pid>/stat."""
    data = Path(f"/proc/{pid}/stat").read_text()
    return int(data.rsplit(")", 1)[1].split()[19])


def proc_state(pid: int) -> str | None:
    """The one-letter state of ``pid`` (Z = zombie), or None when it no longer exists."""
    try:
        data = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return data.rsplit(")", 1)[1].split()[0]


def write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def make_orphan() -> dict[str, object]:
    """Double fork: the grandchild outlives its parent, is re-parented, then exits.

    Returns its pid, the pid it was re-parented to, whether it was seen as a zombie, and whether
    it disappeared (was reaped) within REAP_TIMEOUT seconds.
    """
    r, w = os.pipe()
    middle = os.fork()
    if middle == 0:  # middle child
        os.close(r)
        me = os.getpid()
        grandchild = os.fork()
        if grandchild == 0:
            deadline = time.monotonic() + REAP_TIMEOUT
            while os.getppid() == me and time.monotonic() < deadline:
                time.sleep(0.005)  # waiting for the middle child's exit, inside the container
            os.write(w, f"adopted {os.getppid()}\n".encode())
            os._exit(0)
        os.write(w, f"pid {grandchild}\n".encode())
        os._exit(0)
    os.close(w)
    os.waitpid(middle, 0)
    report = b""
    while True:  # EOF once both the middle child and the grandchild have exited
        block = os.read(r, 4096)
        if not block:
            break
        report += block
    os.close(r)
    fields = dict(line.split(" ", 1) for line in report.decode().splitlines())
    pid = int(fields["pid"])
    seen_zombie = False
    deadline = time.monotonic() + REAP_TIMEOUT
    state = proc_state(pid)
    while state is not None and time.monotonic() < deadline:
        seen_zombie = seen_zombie or state == "Z"
        time.sleep(0.01)
        state = proc_state(pid)
    return {
        "pid": pid,
        "adopted_by": int(fields.get("adopted", "-1")),
        "seen_zombie": seen_zombie,
        "reaped": state is None,
        "final_state": state,
    }


def main() -> int:
    started = time.time()
    results = Path(os.environ.get("OBJECTSTORE_RESULTS_DIR", "/tekton/results"))
    pid1 = Path("/proc/1/cmdline").read_bytes().split(b"\0")
    probe: dict[str, object] = {
        "started": started,
        "pid": os.getpid(),
        "ppid": os.getppid(),
        "uid": os.getuid(),
        "gid": os.getgid(),
        "pid1_cmdline": [arg.decode(errors="replace") for arg in pid1 if arg],
        "pid1_start_ticks": start_ticks("1"),
        "self_start_ticks": start_ticks("self"),
        "clk_tck": os.sysconf("SC_CLK_TCK"),
        "env_results_dir": os.environ.get("OBJECTSTORE_RESULTS_DIR"),
        "env_spool_dir": os.environ.get("OBJECTSTORE_SPOOL_DIR"),
        "python": sys.executable,
    }
    probe["orphan"] = make_orphan()

    (results / "digest").write_text("sha256:" + "0123456789abcdef" * 4)
    (results / "blob").write_bytes(bytes(range(256)) * 512 + os.urandom(4096))
    (results / "empty").write_bytes(b"")
    (results / "probe.json").write_text(json.dumps(probe, indent=1, sort_keys=True))

    write_all(1, (INPUTS / "stdout.bin").read_bytes())
    write_all(2, (INPUTS / "stderr.bin").read_bytes())
    return int((INPUTS / "exit-code").read_text())


if __name__ == "__main__":
    sys.exit(main())
