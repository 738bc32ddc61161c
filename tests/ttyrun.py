"""Run a program with a pseudo-terminal as its controlling terminal (what `podman run -it` gives).

The program's stdin, stdout and stderr are the pty's slave; it leads a new session whose
controlling terminal that slave is (setsid + TIOCSCTTY), so its process group is the terminal's
foreground group, as for a command typed at a shell prompt.
"""

from __future__ import annotations

import fcntl
import os
import select
import signal
import subprocess
import termios
import time
from collections.abc import Callable, Sequence
from typing import Optional


class PtyRun:
    def __init__(
        self,
        argv: Sequence[str],
        env: Optional[dict[str, str]] = None,
        preexec_fn: Optional[Callable[[], None]] = None,
    ) -> None:
        self.master, slave = os.openpty()
        self.proc = subprocess.Popen(
            list(argv),
            stdin=slave,
            stdout=slave,
            stderr=slave,
            env=env,
            start_new_session=True,
            preexec_fn=preexec_fn or (lambda: fcntl.ioctl(0, termios.TIOCSCTTY, 0)),
        )
        os.close(slave)
        self.output = b""

    def send(self, data: bytes) -> None:
        os.write(self.master, data)

    def foreground(self) -> str:
        """The name of the terminal's foreground process group's leader ("" when unknown)."""
        try:
            with open(f"/proc/{os.tcgetpgrp(self.master)}/comm") as f:
                return f.read().strip()
        except OSError:
            return ""

    def read_until(self, done: Callable[[bytes], bool], timeout: float) -> bool:
        """Collect output until ``done(output)`` or ``timeout``; whether it was done."""
        deadline = time.monotonic() + timeout
        while not done(self.output):
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            ready, _, _ = select.select([self.master], [], [], left)
            if ready:
                try:
                    chunk = os.read(self.master, 65536)
                except OSError:  # EIO: every slave closed
                    chunk = b""
                if not chunk:
                    return done(self.output)
                self.output += chunk
        return True

    def wait(self, timeout: float) -> Optional[int]:
        """The exit code, or None (and the whole session killed) when it did not end in time."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            code = self.proc.poll()
            if code is not None:
                self.close()
                return code
            self.read_until(lambda _out: False, min(0.05, max(0.0, deadline - time.monotonic())))
        self.kill()
        return None

    def kill(self) -> None:
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)  # the session's first group: the wrapper
        except ProcessLookupError:
            pass
        for pid in _session_members(self.proc.pid):
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        self.proc.wait()
        self.close()

    def close(self) -> None:
        if self.master >= 0:
            os.close(self.master)
            self.master = -1


def _session_members(sid: int) -> list[int]:
    found = []
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            if os.getsid(int(name)) == sid:
                found.append(int(name))
        except OSError:
            pass
    return found
