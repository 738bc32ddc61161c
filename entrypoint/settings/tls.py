"""TLS to the object store: certificates are verified unless explicitly switched off.

``--ca-bundle FILE`` (or ``OBJECTSTORE_CA_BUNDLE``, ``AWS_CA_BUNDLE``, ``SSL_CERT_FILE``, first set
wins) names the certificates to trust; without one, the certifi bundle that ships with the wrapper is
used. ``--insecure-skip-tls-verify`` turns verification off, and the wrapper says so on every run.

Configuration (``resolve``) only checks the bundle cheaply, so COMMAND starts at once; the SSL
context is built in the background with the S3 client (``store/s3_security.py``).
"""

from __future__ import annotations

from ..records import Record, path, path_text

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Mapping
    from pathlib import Path
    from typing import Any, Optional

    from _typeshed import StrPath


_PEM_MARK = b"-----BEGIN CERTIFICATE-----"
_SCAN_LIMIT = 16 * 1024 * 1024

INSECURE_WARNING = (
    "--insecure-skip-tls-verify: TLS certificates of the object store are NOT verified; anyone on "
    "the network path can read and change what is stored (and see the credentials' signatures)"
)


class TLSConfig(Record):
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
    if raw and https and not insecure:
        check_bundle(path_text(raw))
    return TLSConfig(ca_bundle=path(raw) if raw else None, insecure=insecure)


def check_bundle(path: StrPath) -> None:
    """A readable file with at least one PEM certificate (parsed for real when first used)."""
    hint = "point --ca-bundle (or AWS_CA_BUNDLE / SSL_CERT_FILE) at a PEM file of CA certificates"
    from .files import read_small_file

    try:
        data = read_small_file(path, "--ca-bundle", _SCAN_LIMIT, truncate=True)
    except FileNotFoundError as exc:
        raise ValueError(f"--ca-bundle: cannot read {path}: {exc.strerror}; {hint}") from None
    except ValueError as exc:
        raise ValueError(f"{exc}; {hint}") from None
    if _PEM_MARK not in data:
        raise ValueError(f"--ca-bundle: {path} holds no PEM certificate; {hint}")
