"""``flush_on_signals``: store a Logger's data before a signal ends the process.

The Go package's README ignored SIGTERM/SIGINT/SIGHUP, closed the logger on the first one and
called ``os.Exit(0)``: a terminated process reported success, and a signal the program meant to
handle was swallowed. Here the signal goes on as it would have without us, after the flush:

- the previous handler was the default action (terminate): the Logger is closed, the default
  disposition restored and the signal raised again, so the process dies of that signal (a
  parent sees 128+N, Kubernetes sees the termination it asked for);
- the previous handler was a Python function (``KeyboardInterrupt`` for SIGINT, or the
  program's own): the Logger is flushed, then that function is called;
- the signal was ignored: the Logger is flushed and the program goes on.
"""

from __future__ import annotations

import atexit
import os
import signal
from collections.abc import Iterable
from types import FrameType
from typing import Any, Callable, Optional, Union

from .config import ObjectStoreConfig
from .errors import ObjectStoreError
from .handler import ObjectStoreHandler
from .logger import Logger
from .stores import ScrubbingReporter
from .textstream import Seconds

DEFAULT_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)
Handler = Union[Callable[[int, Optional[FrameType]], Any], int, None]


def flush_on_signals(
    logger: Union[Logger, ObjectStoreHandler],
    signals: Iterable[Union[int, signal.Signals]] = DEFAULT_SIGNALS,
    *,
    timeout: Optional[Seconds] = None,
    at_exit: bool = True,
) -> Callable[[], None]:
    """Flush ``logger`` when one of ``signals`` arrives, then let the signal take its course.

    ``timeout`` bounds the flush (default: the Logger's flush_timeout; keep it inside the
    grace period, Kubernetes' default is 30 s). With ``at_exit`` the Logger is also closed at
    interpreter exit. Call from the main thread. Returns a function that puts the previous
    handlers back.
    """
    target = logger.logger if isinstance(logger, ObjectStoreHandler) else logger
    previous: dict[int, Handler] = {}

    def handle(signum: int, frame: Optional[FrameType]) -> None:
        target.call_when_safe(lambda: _after_signal(target, signum, frame, previous[signum], timeout))

    def close_at_exit() -> None:
        _close_quietly(target, timeout)

    for sig in signals:
        number = int(sig)
        previous[number] = signal.signal(number, handle)
    if at_exit:
        atexit.register(close_at_exit)

    def restore() -> None:
        for number, old in previous.items():
            if signal.getsignal(number) is handle:
                signal.signal(number, old if old is not None else signal.SIG_DFL)
        if at_exit:
            atexit.unregister(close_at_exit)

    return restore


def _after_signal(
    target: Logger, signum: int, frame: Optional[FrameType], previous: Handler, timeout: Optional[Seconds]
) -> None:
    terminates = previous in (signal.SIG_DFL, None)
    try:
        if terminates:
            target.close(timeout)
        else:
            target.flush(timeout)
    except ObjectStoreError as exc:
        _report(target, f"on {signal.Signals(signum).name}: {exc}")
    if previous == signal.SIG_IGN:
        return
    if callable(previous):
        previous(signum, frame)
        return
    signal.signal(signum, signal.SIG_DFL)
    os.kill(os.getpid(), signum)  # dies here unless the default action is to ignore


def _close_quietly(target: Logger, timeout: Optional[Seconds]) -> None:
    try:
        target.close(timeout)
    except ObjectStoreError as exc:
        _report(target, f"at exit: {exc}")


def _report(target: Logger, text: str) -> None:
    ScrubbingReporter(target.config or ObjectStoreConfig()).error(f"log: {text}")
