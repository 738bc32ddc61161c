"""Stores: S3 (via minio, imported lazily) or a local directory, behind one interface."""

from __future__ import annotations

from collections.abc import Callable
from typing import Optional

from ..config import StoreConfig
from .base import Retry, Store, Stored, StoreError, once
from .local import LocalStore

__all__ = ["LocalStore", "Retry", "Store", "StoreError", "Stored", "once", "open_store"]


def open_store(cfg: StoreConfig, warn: Optional[Callable[[str], None]] = None) -> Store:
    if cfg.endpoint is None:
        assert cfg.local_dir is not None
        return LocalStore(cfg.local_dir, cfg.bucket, cfg.create_bucket)
    from .s3 import S3Store  # slow import: only once COMMAND is running

    return S3Store(cfg, warn=warn)
