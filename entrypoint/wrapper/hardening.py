"""What the wrapper does for its secrets before COMMAND starts.

- Secrets given in ``OBJECTSTORE_SECRET_KEY``/``OBJECTSTORE_SESSION_TOKEN`` are removed from the
  environment COMMAND inherits (``AWS_*`` variables stay: tools in COMMAND use them).
- The wrapper marks itself non-dumpable (``PR_SET_DUMPABLE`` 0), so a COMMAND without
  CAP_SYS_PTRACE (the Kubernetes default, root or not) cannot read the wrapper's environment or
  memory through ``/proc/<pid>/environ`` or ``/proc/<pid>/mem``.
- Warnings: TLS verification off; a secret on the command line (visible to ``ps``).
"""

from __future__ import annotations

# _ctypes, not ctypes: ctypes (with struct and its type definitions) costs a millisecond before
# COMMAND starts, and prctl needs one function pointer type returning a C int.
import _ctypes
import os

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Mapping
    from typing import Any, Optional

    from ..report import Reporter
    from ..settings.step import Config


SECRET_VARIABLES = ("OBJECTSTORE_SECRET_KEY", "OBJECTSTORE_SESSION_TOKEN")
PR_SET_DUMPABLE = 4


def scrub_environment(environ: Any = os.environ) -> list[str]:
    """Remove the wrapper-only secret variables from what COMMAND inherits; the names removed."""
    removed = [name for name in SECRET_VARIABLES if name in environ]
    for name in removed:
        del environ[name]
    return removed


class _CInt(_ctypes._SimpleCData):  # type: ignore[type-arg]  # ctypes.c_int
    _type_ = "i"


class _CFunction(_ctypes.CFuncPtr):  # ctypes.CDLL's function pointers, with errno kept
    _flags_ = _ctypes.FUNCFLAG_CDECL | _ctypes.FUNCFLAG_USE_ERRNO
    _restype_ = _CInt


def prctl(option: int, value: int) -> bool:
    """``prctl(option, value, 0, 0, 0) == 0``; False where it cannot be called (not Linux)."""
    try:
        # the process's own symbols (dlopen(NULL)), as ctypes.CDLL(None): libc is among them
        function = _CFunction(_ctypes.dlsym(_ctypes.dlopen(None, 0), "prctl"))  # type: ignore[arg-type]
        return bool(function(option, value, 0, 0, 0) == 0)
    except (OSError, AttributeError):
        return False


def make_undumpable() -> bool:
    """prctl(PR_SET_DUMPABLE, 0); False where that is not possible (not Linux)."""
    return prctl(PR_SET_DUMPABLE, 0)


def announce(cfg: Config, reporter: Reporter, from_command_line: Mapping[str, bool]) -> None:
    """Warnings every run; with --debug, where credentials come from and how TLS is checked."""
    store = cfg.store
    if store.tls is not None and store.tls.insecure and store.endpoint is not None:
        from ..settings.tls import INSECURE_WARNING

        reporter.warn(INSECURE_WARNING)
    for name in ("secret_key", "session_token"):
        if from_command_line.get(name):
            option = "--" + name.replace("_", "-")
            reporter.warn(f"{option} on the command line is visible to ps; prefer {option}-file")
    if store.auth is not None:
        for note in store.auth.notes:
            reporter.warn(note)
        reporter.debug(store.auth.describe())
    if store.endpoint is not None and store.endpoint.secure and store.tls is not None:
        reporter.debug(store.tls.describe())
    if store.sse is not None:
        reporter.debug(store.sse.describe())


def protect(cfg: Config, reporter: Reporter, from_command_line: Optional[Mapping[str, bool]] = None) -> None:
    """Everything above, in order; called once the configuration is valid, before the spawn."""
    announce(cfg, reporter, from_command_line or {})
    scrub_environment()
    make_undumpable()
