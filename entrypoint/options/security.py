"""Command-line options of issue 10 (credentials, TLS, encryption, reproducible archives).

Kept apart from cli.py so that every command talking to the store can apply the same set
(``@security_options``); each option also reads environment variables, flags win.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable, TypeVar

from .table import Option, apply
from .table import env_option as _opt

if TYPE_CHECKING:
    F = TypeVar("F", bound=Callable[..., Any])


_CREDENTIALS: tuple[Option, ...] = (
    _opt(
        "--access-key-file",
        env=["OBJECTSTORE_ACCESS_KEY_FILE"],
        metavar="FILE",
        help="Read the access key from FILE (a mounted Secret); read again when it changes.",
    ),
    _opt(
        "--secret-key-file",
        env=["OBJECTSTORE_SECRET_KEY_FILE"],
        metavar="FILE",
        help="Read the secret key from FILE (a mounted Secret); read again when it changes.",
    ),
    _opt(
        "--session-token-file",
        env=["OBJECTSTORE_SESSION_TOKEN_FILE"],
        metavar="FILE",
        help="Read the session token from FILE; read again when it changes (rotated tokens).",
    ),
    _opt(
        "--sts-endpoint",
        env=["OBJECTSTORE_STS_ENDPOINT", "AWS_ENDPOINT_URL_STS"],
        metavar="URL",
        help="STS endpoint for web identity (AWS_WEB_IDENTITY_TOKEN_FILE). "
        "[default: AWS's regional STS endpoint]",
    ),
    _opt(
        "--instance-metadata-credentials",
        env=["OBJECTSTORE_INSTANCE_METADATA_CREDENTIALS"],
        is_flag=True,
        help="Also try the EC2/ECS metadata service for credentials (last in the chain).",
    ),
    _opt(
        "--anonymous",
        env=["OBJECTSTORE_ANONYMOUS"],
        is_flag=True,
        help="Send unsigned requests when no credentials are found.",
    ),
)
_TLS: tuple[Option, ...] = (
    _opt(
        "--ca-bundle",
        env=["OBJECTSTORE_CA_BUNDLE", "AWS_CA_BUNDLE", "SSL_CERT_FILE"],
        metavar="FILE",
        help="PEM file of the CA certificates to trust for https:// endpoints. [default: the certifi bundle]",
    ),
    _opt(
        "--insecure-skip-tls-verify",
        env=["OBJECTSTORE_INSECURE_SKIP_TLS_VERIFY"],
        is_flag=True,
        help="Do not verify TLS certificates (warned about on every run). Never use in production.",
    ),
)
_SSE_C_KEY = _opt(
    "--sse-c-key-file",
    env=["OBJECTSTORE_SSE_C_KEY_FILE"],
    metavar="FILE",
    help="256-bit key for --sse c: 32 raw bytes or their base64.",
)
_WRITING: tuple[Option, ...] = (
    _opt(
        "--sse",
        env=["OBJECTSTORE_SSE"],
        choices=["s3", "kms", "c"],
        help="Server-side encryption of every object: s3 (SSE-S3), kms (SSE-KMS), c (SSE-C, https only).",
    ),
    _opt(
        "--sse-kms-key-id",
        env=["OBJECTSTORE_SSE_KMS_KEY_ID"],
        metavar="ID",
        help="KMS key for --sse kms. [default: the store's default key]",
    ),
    _SSE_C_KEY,
    _opt(
        "--reproducible",
        env=["OBJECTSTORE_REPRODUCIBLE"],
        is_flag=True,
        help="Archive members get a fixed mtime (SOURCE_DATE_EPOCH, else 0): same input, same bytes.",
    ),
)


def _apply(options: tuple[Option, ...], f: F) -> F:
    for option in reversed(options):
        f = option(f)
    return f


SECURITY_OPTIONS = (*_CREDENTIALS, *_TLS, *_WRITING)


def security_options(f: F) -> F:
    """The wrapper's: credentials, TLS, server-side encryption, --reproducible."""
    return apply(SECURITY_OPTIONS, f)


READER_SECURITY_OPTIONS = (*_CREDENTIALS, *_TLS, _SSE_C_KEY)


def reader_security_options(f: F) -> F:
    """For commands that only read: credentials, TLS, and the SSE-C key to read such objects."""
    return apply(READER_SECURITY_OPTIONS, f)
