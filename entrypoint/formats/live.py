"""How a live step shows it is alive: the promise each live log chunk carries.

Every chunk the wrapper stores carries the user metadata ``next-within`` (S3: the header
``x-amz-meta-next-within``; a local directory store: the extended attribute ``user.next-within``
where the file system keeps one): the seconds within which the wrapper stores the step's next
object while it lives. For a chunk of a running COMMAND that is ``HEARTBEAT_INTERVALS`` flush
intervals: chunks are sealed at least that often, an empty one when COMMAND was silent. For the
last chunk (COMMAND has ended) it is the final flush's deadline, ``--flush-timeout``: the log
archive and the manifest come by then. A reader that sees nothing new for ``STALE_PROMISES``
times the latest chunk's promise takes the step as gone (its wrapper was SIGKILLed, its node
lost). Chunks of older wrappers carry no promise: a reader waits for ever, as before.
"""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Mapping
    from typing import Optional


NEXT_WITHIN = "next-within"  # the metadata name (x-amz-meta-next-within on S3)
HEARTBEAT_INTERVALS = 12  # a live step stores a chunk at least every 12 flush intervals (1 min at 5 s)
STALE_PROMISES = 3  # nothing new for 3 promises: the step seems gone


def heartbeat(flush_interval: float) -> float:
    """The longest a running step goes without sealing a chunk (an empty one when silent)."""
    return HEARTBEAT_INTERVALS * flush_interval


def promise(seconds: float) -> dict[str, str]:
    """The metadata a chunk carries: its next object comes within ``seconds``."""
    return {NEXT_WITHIN: f"{seconds:.3f}".rstrip("0").rstrip(".")}


def promised(metadata: Mapping[str, str]) -> Optional[float]:
    """The promise in an object's metadata (names compared case-insensitively), or None."""
    for name, value in metadata.items():
        if name.lower().removeprefix("x-amz-meta-") == NEXT_WITHIN:
            try:
                seconds = float(value)
            except ValueError:
                return None
            return seconds if 0 < seconds < float("inf") else None
    return None


def stale_after(next_within: float) -> float:
    """How long a reader waits for something new before it takes the step as gone."""
    return STALE_PROMISES * next_within
