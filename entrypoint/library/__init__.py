"""The Python library: counterparts of the Go ``objectstore`` package's ``Writer`` and ``Logger``.

Built on the command line's own modules (store, uploader, archive, layout, capture): one upload
path for both. Importable from ``entrypoint`` directly (``from entrypoint import Writer``).
"""

from .config import ObjectStoreConfig
from .errors import ObjectStoreConfigError, ObjectStoreError
from .handler import JsonFormatter, ObjectStoreHandler
from .logger import Logger
from .signals import flush_on_signals
from .textstream import TextStream
from .writer import Writer

__all__ = [
    "JsonFormatter",
    "Logger",
    "ObjectStoreConfig",
    "ObjectStoreConfigError",
    "ObjectStoreError",
    "ObjectStoreHandler",
    "TextStream",
    "Writer",
    "flush_on_signals",
]
