"""Command-line options shared by ``tekton-uploader`` and ``tekton-uploader-read``.

One definition per option, so both commands accept the same flags and environment variables
for the object store (flags win over the environment).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable, TypeVar

from .table import Option, apply, env_option

if TYPE_CHECKING:
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
