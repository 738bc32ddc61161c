"""Command-line options shared by ``tekton-uploader`` and ``tekton-uploader-read``.

One definition per option, so both commands accept the same flags and environment variables
for the object store (flags win over the environment): where the store is (``STORE_OPTIONS``),
and how to reach it safely (``SECURITY_OPTIONS``: credentials, TLS, server-side encryption,
reproducible archives; the reader takes the part that applies to reading).
"""

from __future__ import annotations

from .table import Option, apply, env_option
from .table import env_option as _opt

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Callable, TypeVar

    F = TypeVar("F", bound=Callable[..., Any])


STORE_OPTIONS: tuple[Option, ...] = (
    env_option(
        "--endpoint",
        env=["OBJECTSTORE_ENDPOINT", "AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL"],
        metavar="URL",
        help="S3 endpoint (http:// or https://), or file:///DIR for a local directory store. "
        "[default: none: local directory ./objectstore]",
    ),
    env_option(
        "--bucket",
        env=["OBJECTSTORE_BUCKET", "ARTIFACT_BUCKET"],
        default="mlpipeline",
        show_default=True,
        help="Bucket of the objects.",
    ),
    env_option(
        "--access-key",
        env=["OBJECTSTORE_ACCESS_KEY"],
        metavar="KEY",
        help="Access key. [default: see --access-key-file, then the AWS chain (AWS_ACCESS_KEY_ID, ...)]",
    ),
    env_option(
        "--secret-key",
        env=["OBJECTSTORE_SECRET_KEY"],
        metavar="KEY",
        help="Secret key (visible to ps on the command line: prefer --secret-key-file).",
    ),
    env_option(
        "--session-token",
        env=["OBJECTSTORE_SESSION_TOKEN"],
        metavar="TOKEN",
        help="Session token for temporary credentials.",
    ),
    env_option(
        "--region",
        env=["OBJECTSTORE_REGION", "AWS_REGION"],
        help="Region. [default: us-east-1 for non-AWS endpoints, detected for AWS]",
    ),
    env_option(
        "--path-style/--virtual-host-style",
        "path_style",
        env=["OBJECTSTORE_PATH_STYLE"],
        default=None,
        help="Force path-style or virtual-host-style URLs. [default: path style except on AWS]",
    ),
)


def store_options(f: F) -> F:
    """Where the objects are: endpoint, bucket, credentials, region, URL style."""
    return apply(STORE_OPTIONS, f)


create_bucket_option = env_option(
    "--create-bucket/--no-create-bucket",
    env=["OBJECTSTORE_CREATE_BUCKET"],
    default=True,
    show_default=True,
    help="Create the bucket when it is missing (checked once per run).",
)

key_prefix_option = env_option(
    "--key-prefix",
    env=["OBJECTSTORE_KEY_PREFIX"],
    default="artifacts",
    show_default=True,
    metavar="PREFIX",
    help="First part of every object key.",
)


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


SECURITY_OPTIONS = (*_CREDENTIALS, *_TLS, *_WRITING)


READER_SECURITY_OPTIONS = (*_CREDENTIALS, *_TLS, _SSE_C_KEY)


def reader_security_options(f: F) -> F:
    """For commands that only read: credentials, TLS, and the SSE-C key to read such objects."""
    return apply(READER_SECURITY_OPTIONS, f)


# Read by tekton-uploader-read only (its --retries, an int range: defined there with click).
READER_ONLY_VARIABLES = ("OBJECTSTORE_READ_RETRIES",)
