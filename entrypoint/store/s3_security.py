"""TLS and SSE settings (``settings/tls.py``, ``settings/sse.py``) as urllib3 and minio take them.

Imported with the S3 client only, after COMMAND started.
"""

from __future__ import annotations

import ssl
from typing import Any, Optional

from ..settings.sse import SSEConfig
from ..settings.tls import TLSConfig


def ssl_context(cfg: TLSConfig) -> ssl.SSLContext:
    """The client context: verifies the chain and the host name against exactly the configured
    bundle (not the system store as well); ValueError when the bundle cannot be loaded."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)  # CERT_REQUIRED and check_hostname by default
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    if cfg.insecure:
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        return ctx
    cafile = str(cfg.ca_bundle) if cfg.ca_bundle else _certifi()
    try:
        ctx.load_verify_locations(cafile=cafile)
    except (OSError, ssl.SSLError) as exc:
        reason = getattr(exc, "strerror", None) or getattr(exc, "reason", None) or str(exc)
        raise ValueError(f"--ca-bundle: cannot load {cafile}: {reason}") from None
    return ctx


def _certifi() -> str:
    import certifi

    return str(certifi.where())


def pool_settings(cfg: TLSConfig) -> dict[str, Any]:
    """Keyword arguments for a urllib3 pool that make it use ``cfg``."""
    settings: dict[str, Any] = {
        "ssl_context": ssl_context(cfg),
        "ca_certs": None,
        "ca_cert_dir": None,
        "cert_reqs": "CERT_NONE" if cfg.insecure else "CERT_REQUIRED",
    }
    if cfg.insecure:
        settings["assert_hostname"] = False
        import urllib3

        # the wrapper warns once per run; urllib3 would warn on every request
        urllib3.disable_warnings(urllib3.exceptions.InsecureRequestWarning)
    return settings


def configure_pool(pool: Any, cfg: TLSConfig) -> None:
    """Make a urllib3 PoolManager (before its first request) verify TLS as ``cfg`` says."""
    pool.connection_pool_kw.update(pool_settings(cfg))


def to_minio(cfg: Optional[SSEConfig]) -> Any:
    """minio's Sse object for ``cfg`` (None: no encryption requested)."""
    if cfg is None:
        return None
    from minio.sse import SseCustomerKey, SseKMS, SseS3

    if cfg.mode == "s3":
        return SseS3()
    if cfg.mode == "c":
        assert cfg.customer_key is not None
        return SseCustomerKey(cfg.customer_key)
    if cfg.kms_key_id:
        return SseKMS(cfg.kms_key_id, {})
    return _SseKMSDefaultKey()


def _SseKMSDefaultKey() -> Any:  # a class built lazily: minio is imported late
    from minio.sse import SseKMS

    class SseKMSDefaultKey(SseKMS):
        """``aws:kms`` without a key id: the store's default KMS key for the bucket."""

        def __init__(self) -> None:
            self._headers = {"X-Amz-Server-Side-Encryption": "aws:kms"}

    return SseKMSDefaultKey()


def ssec(cfg: Optional[SSEConfig]) -> Any:
    """The customer key object for reads (GET/HEAD need it too), or None."""
    return to_minio(cfg) if cfg is not None and cfg.mode == "c" else None


