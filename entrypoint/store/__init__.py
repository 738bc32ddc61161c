"""Stores: S3 (via minio, imported lazily) or a local directory, behind one interface."""

from __future__ import annotations

from ..config import StoreConfig
from .base import Store, StoreError
from .local import LocalStore

__all__ = ["LocalStore", "Store", "StoreError", "open_store"]


def open_store(cfg: StoreConfig) -> Store:
    if cfg.endpoint is None:
        assert cfg.local_dir is not None
        return LocalStore(cfg.local_dir, cfg.bucket, cfg.create_bucket)
    from .s3 import S3Store  # slow import: only once COMMAND is running

    return S3Store(cfg)
