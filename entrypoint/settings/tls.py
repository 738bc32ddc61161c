"""TLS to the object store: certificates are verified unless explicitly switched off.

``--ca-bundle FILE`` (or ``OBJECTSTORE_CA_BUNDLE``, ``AWS_CA_BUNDLE``, ``SSL_CERT_FILE``, first set
wins) names the certificates to trust; without one, the certifi bundle that ships with the wrapper is
used. ``--insecure-skip-tls-verify`` turns verification off, and the wrapper says so on every run.

Configuration (``resolve``) only checks the bundle cheaply, so COMMAND starts at once; the SSL
context is built in the background with the S3 client (``ssl_context``/``configure_pool``).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple, Optional

if TYPE_CHECKING:
    import ssl

_PEM_MARK = b"-----BEGIN CERTIFICATE-----"
_SCAN_LIMIT = 16 * 1024 * 1024

INSECURE_WARNING = (
    "--insecure-skip-tls-verify: TLS certificates of the object store are NOT verified; anyone on "
    "the network path can read and change what is stored (and see the credentials' signatures)"
)


class TLSConfig(NamedTuple):
    ca_bundle: Optional[Path] = None  # None: the certifi bundle
    insecure: bool = False

    def describe(self) -> str:
        if self.insecure:
            return "TLS certificates not verified (--insecure-skip-tls-verify)"
        return f"TLS verified against {self.ca_bundle or 'the certifi bundle'}"


def resolve(values: Mapping[str, Any], https: bool) -> TLSConfig:
    """TLS settings from the option values; ValueError (one line) for an unusable bundle."""
    insecure = bool(values.get("insecure_skip_tls_verify"))
    raw = values.get("ca_bundle")
    bundle = Path(raw) if raw else None
    if bundle is not None and https and not insecure:
        check_bundle(bundle)
    return TLSConfig(ca_bundle=bundle, insecure=insecure)


def check_bundle(path: Path) -> None:
    """A readable file with at least one PEM certificate (parsed for real when first used)."""
    hint = "point --ca-bundle (or AWS_CA_BUNDLE / SSL_CERT_FILE) at a PEM file of CA certificates"
    try:
        with open(path, "rb") as f:
            data = f.read(_SCAN_LIMIT)
    except OSError as exc:
        raise ValueError(f"--ca-bundle: cannot read {path}: {exc.strerror}; {hint}") from None
    if _PEM_MARK not in data:
        raise ValueError(f"--ca-bundle: {path} holds no PEM certificate; {hint}")


def ssl_context(cfg: TLSConfig) -> ssl.SSLContext:
    """The client context: verifies the chain and the host name against exactly the configured
    bundle (not the system store as well); ValueError when the bundle cannot be loaded."""
    import ssl  # only where the S3 client is built, off the start-up path

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
