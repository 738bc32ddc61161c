"""Opening the store for a config, checking its bucket, and turning store errors into exceptions."""

from __future__ import annotations

import time

from ..report import Reporter
from ..store import Retry, Store, Stored, StoreError, once, open_store
from ..store.payload import Payload
from ..transfer.retry import Attempts, Backoff, DeadlinePassed, RetryPolicy
from .config import ObjectStoreConfig
from .errors import ObjectStoreError, redact

TYPE_CHECKING = False
if TYPE_CHECKING:
    from ..store.base import Metadata


def open_for(cfg: ObjectStoreConfig) -> Store:
    """The store ``cfg`` describes (S3 or a local directory), not yet contacted."""
    store_cfg = cfg.to_store_config()
    if store_cfg.endpoint is None or not cfg.ca_bundle:
        return open_store(store_cfg)
    from ..store.s3 import S3Store, http_pool  # the S3 client is imported only when used

    pool = http_pool()
    pool.connection_pool_kw["ca_certs"] = cfg.ca_bundle  # applies to every connection pool it makes
    return S3Store(store_cfg, http_client=pool)


def prepare(store: Store, cfg: ObjectStoreConfig, timeout: float) -> None:
    """Check (and create, if configured) the bucket; retry transient errors for ``timeout`` s."""
    backoff = Backoff()
    backoff.set_deadline(time.monotonic() + timeout)
    attempts = Attempts(backoff, RetryPolicy(), SilentReporter())
    try:
        attempts(store.prepare, f"checking {store.describe()}")
    except DeadlinePassed as exc:
        raise failure(f"cannot use {store.describe()}", exc.last or exc, cfg) from None
    except StoreError as exc:
        raise failure(f"cannot use {store.describe()}", exc, cfg) from None


def failure(what: str, exc: StoreError, cfg: ObjectStoreConfig) -> ObjectStoreError:
    return ObjectStoreError(redact(f"{what}: {exc}", cfg.secrets()), transient=exc.transient)


class PreparedStore:
    """A store whose bucket was already checked: uploaders built on it do not check it again."""

    def __init__(self, store: Store) -> None:
        self.store = store

    def describe(self) -> str:
        return self.store.describe()

    def prepare(self) -> None:
        return None

    def check(self, prefix: str) -> None:
        return None

    def put(
        self, key: str, payload: Payload, content_type: str, retry: Retry = once, metadata: Metadata = None
    ) -> Stored:
        return self.store.put(key, payload, content_type, retry, metadata)

    def get(self, key: str) -> bytes:
        return self.store.get(key)

    def list(self, prefix: str) -> list[str]:
        return self.store.list(prefix)


class SilentReporter(Reporter):
    """For uploads whose outcome the caller gets as an exception: nothing on stderr."""

    def _emit(self, text: str) -> None:
        return None


class ScrubbingReporter(Reporter):
    """Background problems (a Logger's uploads): one line each on stderr, like the CLI's, scrubbed."""

    def __init__(self, cfg: ObjectStoreConfig) -> None:
        super().__init__(quiet=cfg.quiet, debug=cfg.debug)
        self._secrets = cfg.secrets()

    def _emit(self, text: str) -> None:
        super()._emit(redact(text, self._secrets))
