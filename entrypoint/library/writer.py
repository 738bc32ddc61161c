"""``Writer``: store a task result as ``<prefix>/<pipelinerun>/<pipelinetask>/<result>.tgz``.

The counterpart of the Go package's ``Writer``, with its flaws fixed: the object is a real
gzip-compressed tar with one member named after the result (the Go package wrote plain gzip
under a ``.tgz`` name), no bucket is created per write, transient errors are retried by the
same uploader the command line uses, and every failure is an exception.
"""

from __future__ import annotations

import dataclasses
import time
from typing import Optional, Union

from ..formats import archive
from ..formats.layout import Layout
from ..store import Store
from ..store.payload import Payload
from ..transfer.uploader import Job, Uploader
from . import stores
from .config import ObjectStoreConfig
from .errors import ObjectStoreError, redact

Content = Union[bytes, bytearray, memoryview, str]
LOAD_TIMEOUT = (
    30.0  # load() and create_new_bucket(): transient errors retried this long, as --preflight strict
)


class Writer:
    """Stores task results. Thread-safe once loaded.

    ``Writer(config)`` loads at once; ``Writer()`` then ``load(config)`` mirrors the Go API.
    ``close()`` (or leaving a ``with Writer(config) as w:`` block) ends it, like a ``Logger``:
    each ``write`` is stored before it returns, so nothing is left to flush.
    """

    def __init__(
        self, config: Optional[ObjectStoreConfig] = None, *, timeout: Optional[float] = None
    ) -> None:
        self.config: Optional[ObjectStoreConfig] = None
        self.default_bucket_name = ""
        self._store: Optional[Store] = None
        self.closed = False
        if config is not None:
            self.load(config, timeout=timeout)

    def __repr__(self) -> str:
        where = self._store.describe() if self._store is not None else "not loaded"
        return f"Writer({where}{', closed' if self.closed else ''})"

    def __enter__(self) -> Writer:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        """No more writes (they raise ``ValueError``); closing again does nothing."""
        self.closed = True

    def load(self, config: ObjectStoreConfig, *, timeout: Optional[float] = None) -> None:
        """Connect and check the bucket, creating it when ``config.create_bucket``.

        Transient errors are retried for ``timeout`` seconds (default: ``LOAD_TIMEOUT``, 30 s,
        as ``--preflight strict`` does; at most the config's ``flush_timeout``). Raises
        ``ObjectStoreConfigError`` for a bad config and ``ObjectStoreError`` when the store
        cannot be used.
        """
        if self.closed:
            raise ValueError("Writer is closed")
        store = stores.open_for(config)
        if config.enable:
            stores.prepare(store, config, _timeout(timeout, min(LOAD_TIMEOUT, config.flush_timeout)))
        self.config = config
        self.default_bucket_name = config.default_bucket_name
        self._store = stores.PreparedStore(store)

    def create_new_bucket(self, name: str, *, timeout: Optional[float] = None) -> None:
        """Create bucket ``name`` unless it exists (an existing bucket is fine)."""
        config = self._loaded()
        other = dataclasses.replace(config, default_bucket_name=name, create_bucket=True)
        stores.prepare(
            stores.open_for(other), config, _timeout(timeout, min(LOAD_TIMEOUT, config.flush_timeout))
        )

    def key(self, pipelinerun: str, pipelinetask: str, result_name: str) -> str:
        """The object key ``write`` uses; raises ``ValueError`` for a name that is not plain."""
        config = self._loaded()
        layout = Layout(config.key_prefix.strip("/"), pipelinerun, pipelinetask, "main")
        return layout.result_key(result_name)

    def write(
        self,
        pipelinerun: str,
        pipelinetask: str,
        result_name: str,
        content: Content,
        *,
        timeout: Optional[float] = None,
    ) -> str:
        """Store ``content`` as ``<prefix>/<pipelinerun>/<pipelinetask>/<result_name>.tgz``.

        ``content`` is bytes (text is stored as UTF-8). Returns the object key once it is
        stored. Transient errors are retried until ``timeout`` seconds have passed (default:
        the config's ``flush_timeout``); then, or on a permanent error, ``ObjectStoreError``.
        Names that could leave the task's prefix raise ``ValueError``.
        """
        config = self._loaded()
        key = self.key(pipelinerun, pipelinetask, result_name)
        data = content.encode("utf-8") if isinstance(content, str) else bytes(content)
        if not config.enable:
            return key
        tgz = archive.tgz_bytes(result_name, data, time.time())
        job = Job(key=key, build=lambda: Payload.of(tgz), content_type="application/gzip")
        assert self._store is not None
        store = self._store
        uploader = Uploader(lambda: store, stores.SilentReporter(), workers=1)
        uploader.start()
        uploader.submit(job)
        limit = _timeout(timeout, config.flush_timeout)
        if uploader.close(time.monotonic() + limit):
            cause = job.error or f"not stored within {limit:g} s"
            text = f"storing {key} in {store.describe()} failed: {cause}"
            permanent = bool(uploader.failed_causes)
            raise ObjectStoreError(redact(text, config.secrets()), keys=[key], transient=not permanent)
        return key

    def _loaded(self) -> ObjectStoreConfig:
        if self.closed:
            raise ValueError("Writer is closed")
        if self.config is None:
            raise ObjectStoreError("Writer is not loaded: call load(config) first")
        return self.config


def _timeout(value: Optional[float], default: float) -> float:
    return default if value is None else max(0.0, float(value))
