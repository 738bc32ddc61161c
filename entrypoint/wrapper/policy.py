"""How COMMAND is stopped: the supervisor's ``Policy``, from the settings and a Tekton step timeout."""

from __future__ import annotations

from ..options.wrapper import KILL_AFTER_SHARE, TERMINATION_GRACE
from ..records import Record
from ..settings.tekton import TektonDeadline

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Optional


class Policy(Record):
    """How COMMAND is stopped. Durations in seconds; None: never."""

    timeout: Optional[float] = None  # --timeout: SIGTERM COMMAND's group when it passes
    kill_after: float = TERMINATION_GRACE * KILL_AFTER_SHARE  # --kill-after, after a SIGTERM
    signal_child_only: bool = False  # --signal-child-only: forward to COMMAND, not its group
    leftover_grace: float = 2.0  # leftovers get SIGTERM, then SIGKILL after this
    drain_grace: float = 1.0  # how long pipes may stay open once every process is gone
    stop_at: Optional[float] = None  # a time (on the clock) to stop COMMAND at: a Tekton step timeout's
    timeout_warning: str = ""  # what the warning says when it passes ("": --timeout's)


DEFAULT_POLICY = Policy()


def policy_of(cfg: Any, tekton: Optional[TektonDeadline] = None) -> Policy:
    """The stop policy a ``settings.step.Config`` asks for; ``tekton``: the plan for a Tekton step
    timeout (an explicit ``--timeout`` wins over it)."""
    policy = Policy(timeout=cfg.timeout, kill_after=cfg.kill_after, signal_child_only=cfg.signal_child_only)
    if tekton is None or cfg.timeout is not None:
        return policy
    before = tekton.ends_at - tekton.stop_at
    warning = (
        f"stopping COMMAND {before:.1f}s before the Tekton step timeout ({tekton.step_timeout:g}s) "
        "SIGKILLs the step, to store its log and results first"
    )
    return policy._replace(stop_at=tekton.stop_at, kill_after=tekton.kill_after, timeout_warning=warning)
