"""COMMAND of the benchmark cases: a small program that reports monotonic timestamps.

Run as ``python child.py MODE STAMP_FILE [ARGS...]``; it writes ``{"start": t0, "end": t1, ...}``
(``time.monotonic()``, which is one clock for every process on the machine) to STAMP_FILE.

Modes
  stamp                       report the start time and exit (start-up case, no-op work)
  write BLOCK_FILE TOTAL      write TOTAL bytes to stdout as fast as it can, in 128 KiB writes,
                              repeating BLOCK_FILE (read into memory before the start stamp)
  lines COUNT PERIOD          print COUNT numbered lines, one every PERIOD seconds, each line's
                              write time recorded in the stamp file (freshness case)
  signal FIFO                 install a SIGTERM handler, then open FIFO for reading (the harness's
                              open for writing returns: COMMAND is ready) and wait; on SIGTERM
                              record its receipt time ("got") and exit 0 at once
  orphans COUNT HOLD          make COUNT orphans at once (children that fork a grandchild and exit;
                              each grandchild exits at once, reparented to PID 1), reap the
                              children, record the burst ("burst", "burst_end"), live HOLD s more
  cpu BLOCK_FILE WORK RATE    two worker processes each hash WORK MiB (fixed work, not fixed
                              time) while this process writes BLOCK_FILE's bytes to stdout at RATE
                              bytes/s; "end" when both workers are done

Every mode that ends by itself also reports "cpu": the user+system CPU seconds of COMMAND and the
children it reaped (getrusage SELF + CHILDREN), what a wrapper's wait4() rusage holds of COMMAND,
so the harness can subtract it.
"""

from __future__ import annotations

import hashlib
import json
import os
import resource
import signal
import sys
import time

WRITE = 128 * 1024  # what cat and most programs write at once


def _write_all(fd: int, data: memoryview) -> None:
    while data:
        n = os.write(fd, data)
        data = data[n:]


def _on_term(stamp_path: str, report: dict[str, object]) -> None:
    def handler(signum: int, frame: object) -> None:
        report["got"] = time.monotonic()
        report["end"] = report["got"]
        with open(stamp_path, "w") as f:
            json.dump(report, f)
        os._exit(0)

    signal.signal(signal.SIGTERM, handler)


def _orphans(count: int) -> None:
    children = []
    for _ in range(count):
        pid = os.fork()
        if pid == 0:
            if os.fork() == 0:
                os._exit(0)  # the grandchild: an orphan, then a zombie of PID 1
            os._exit(0)
        children.append(pid)
    for pid in children:
        os.waitpid(pid, 0)


def _worker(mib: int) -> None:
    block = bytes(range(256)) * 4096  # 1 MiB
    for _ in range(mib):
        hashlib.sha256(block).digest()


def _cpu(block_file: str, work: int, rate: float) -> None:
    with open(block_file, "rb") as f:
        block = memoryview(f.read())
    workers = []
    for _ in range(2):
        pid = os.fork()
        if pid == 0:
            _worker(work)
            os._exit(0)
        workers.append(pid)
    t0 = time.monotonic()
    written, off = 0, 0
    while workers:
        due = int((time.monotonic() - t0) * rate)
        while written < due:
            n = min(WRITE, due - written, len(block) - off)
            _write_all(1, block[off : off + n])
            written += n
            off = (off + n) % len(block)
        for pid in list(workers):
            if os.waitpid(pid, os.WNOHANG)[0]:
                workers.remove(pid)
        time.sleep(0.005)


def main(argv: list[str]) -> int:
    t0 = time.monotonic()
    mode, stamp_path = argv[0], argv[1]
    report: dict[str, object] = {"start": t0}
    if mode == "stamp":
        pass
    elif mode == "write":
        with open(argv[2], "rb") as f:
            block = memoryview(f.read())
        total = int(argv[3])
        report["start"] = t0 = time.monotonic()
        left = total
        while left > 0:
            for off in range(0, len(block), WRITE):
                piece = block[off : off + min(WRITE, left)]
                _write_all(1, piece)
                left -= len(piece)
                if left <= 0:
                    break
    elif mode == "lines":
        count, period = int(argv[2]), float(argv[3])
        written = []
        for i in range(count):
            due = t0 + i * period
            delay = due - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            line = f"freshness-line {i:06d}\n".encode()
            written.append(time.monotonic())
            _write_all(1, memoryview(line))
        report["lines"] = written
    elif mode == "signal":
        _on_term(stamp_path, report)
        os.open(argv[2], os.O_RDONLY)  # kept open until the exit
        report["ready"] = time.monotonic()
        while True:
            signal.pause()
    elif mode == "orphans":
        report["burst"] = time.monotonic()
        _orphans(int(argv[2]))
        report["burst_end"] = time.monotonic()
        time.sleep(float(argv[3]))
    elif mode == "cpu":
        _cpu(argv[2], int(argv[3]), float(argv[4]))
    else:
        print(f"child.py: unknown mode {mode!r}", file=sys.stderr)
        return 2
    report["end"] = time.monotonic()
    mine, reaped = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    report["cpu"] = mine.ru_utime + mine.ru_stime + reaped.ru_utime + reaped.ru_stime
    with open(stamp_path, "w") as f:
        json.dump(report, f)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
