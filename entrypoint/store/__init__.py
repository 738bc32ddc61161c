"""Stores: S3 (via minio, imported lazily) or a local directory, behind one interface."""

from __future__ import annotations

from ..config import StoreConfig
from .base import ObjectInfo, ReadableStore, Store, StoreError
from .local import LocalStore

__all__ = [
    "LocalStore",
    "ObjectInfo",
    "ReadableStore",
    "Store",
    "StoreError",
    "open_readable_store",
    "open_store",
]


def open_store(cfg: StoreConfig) -> Store:
    if cfg.endpoint is None:
        assert cfg.local_dir is not None
        return LocalStore(cfg.local_dir, cfg.bucket, cfg.create_bucket)
    from .s3 import S3Store  # slow import: only once COMMAND is running

    return S3Store(cfg)


def open_readable_store(cfg: StoreConfig) -> ReadableStore:
    """A store for the read side (never creates the bucket)."""
    if cfg.endpoint is None:
        assert cfg.local_dir is not None
        return LocalStore(cfg.local_dir, cfg.bucket, create_bucket=False)
    from .s3 import S3Store

    return S3Store(cfg)
