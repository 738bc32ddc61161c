"""Stores: S3 (via minio, imported lazily) or a local directory, behind one interface."""

from __future__ import annotations

from ..records import text
from ..settings.store import StoreConfig
from .base import ObjectInfo, ReadableStore, Retry, Store, Stored, StoreError, once
from .local import LocalStore

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Optional

__all__ = [
    "LocalStore",
    "ObjectInfo",
    "ReadableStore",
    "Retry",
    "Store",
    "StoreError",
    "Stored",
    "once",
    "open_readable_store",
    "open_store",
]


def open_store(cfg: StoreConfig, warn: Optional[Callable[[str], None]] = None) -> Store:
    if cfg.endpoint is None:
        local_dir = text(cfg, "local_dir")  # text: pathlib costs milliseconds on every step's exit
        assert local_dir is not None
        return LocalStore(local_dir, cfg.bucket, cfg.create_bucket)
    from .s3 import S3Store  # slow import: only once COMMAND is running

    return S3Store(cfg, warn=warn)


def open_readable_store(cfg: StoreConfig) -> ReadableStore:
    """A store for the read side (never creates the bucket)."""
    if cfg.endpoint is None:
        assert cfg.local_dir is not None
        return LocalStore(cfg.local_dir, cfg.bucket, create_bucket=False)
    from .s3 import S3Store

    return S3Store(cfg)
