"""COMMAND of the benchmark cases: a small program that reports monotonic timestamps.

Run as ``python child.py MODE STAMP_FILE [ARGS...]``; it writes ``{"start": t0, "end": t1, ...}``
(``time.monotonic()``, which is one clock for every process on the machine) to STAMP_FILE.

Modes
  stamp                       report the start time and exit (start-up case, no-op work)
  write BLOCK_FILE TOTAL      write TOTAL bytes to stdout as fast as it can, in 128 KiB writes,
                              repeating BLOCK_FILE (read into memory before the start stamp)
  lines COUNT PERIOD          print COUNT numbered lines, one every PERIOD seconds, each line's
                              write time recorded in the stamp file (freshness case)
"""

from __future__ import annotations

import json
import os
import sys
import time

WRITE = 128 * 1024  # what cat and most programs write at once


def _write_all(fd: int, data: memoryview) -> None:
    while data:
        n = os.write(fd, data)
        data = data[n:]


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
    else:
        print(f"child.py: unknown mode {mode!r}", file=sys.stderr)
        return 2
    report["end"] = time.monotonic()
    with open(stamp_path, "w") as f:
        json.dump(report, f)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
