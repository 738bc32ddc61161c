"""tekton-uploader: make a Tekton step's logs and results durable in S3-compatible storage.

The library API (``Writer``, ``Logger``, ``ObjectStoreHandler``, ...) is exported lazily: a plain
``import entrypoint``, as the command line does at start-up, loads none of it.
"""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from .library import (
        JsonFormatter,
        Logger,
        ObjectStoreConfig,
        ObjectStoreConfigError,
        ObjectStoreError,
        ObjectStoreHandler,
        TextStream,
        Writer,
        flush_on_signals,
    )


__version__ = "0.1.0"

__all__ = [
    "JsonFormatter",
    "Logger",
    "ObjectStoreConfig",
    "ObjectStoreConfigError",
    "ObjectStoreError",
    "ObjectStoreHandler",
    "TextStream",
    "Writer",
    "__version__",
    "flush_on_signals",
]
_LIBRARY = frozenset(__all__) - {"__version__"}
def __getattr__(name: str) -> Any:
    if name in _LIBRARY:
        from . import library  # the root's one lazy import: its library API

        value = getattr(library, name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *_LIBRARY])
