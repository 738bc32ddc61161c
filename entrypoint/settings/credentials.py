"""Credentials for the S3 store, looked up the way Kubernetes and AWS hand them out.

First match wins:

1. ``--access-key``/``--secret-key``/``--session-token`` (``OBJECTSTORE_ACCESS_KEY``, ...): values.
2. ``--access-key-file``/``--secret-key-file``/``--session-token-file`` (``OBJECTSTORE_*_FILE``):
   files as Kubernetes mounts Secrets; surrounding whitespace stripped; read again whenever one of
   them changes (projected and rotated Secrets are swapped in atomically).
   Each of the three values comes from its option if set, else from its file; the access key and
   the secret key must then both be there.
3. The AWS chain, through minio's providers: ``AWS_ACCESS_KEY_ID``/``AWS_SECRET_ACCESS_KEY``
   (+``AWS_SESSION_TOKEN``) (``EnvAWSProvider``); the shared credentials file and profile
   (``AWS_SHARED_CREDENTIALS_FILE``, ``AWS_PROFILE``; ``AWSConfigProvider``); web identity
   (``AWS_WEB_IDENTITY_TOKEN_FILE`` + ``AWS_ROLE_ARN``, i.e. EKS IRSA; ``WebIdentityProvider``
   against ``--sts-endpoint``); and only with ``--instance-metadata-credentials`` the ECS/EC2
   metadata service (``IamAwsProvider``), with short timeouts.
4. No credentials (unsigned requests) only with ``--anonymous``.

``resolve`` runs before COMMAND starts and needs no network: it fails (exit 2) only when no source
could possibly apply. ``build_provider`` runs in the background with the S3 client.
"""

from __future__ import annotations

import os

from .. import redact
from ..records import Record, path, path_text
from .files import check_regular, read_small_file

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Mapping
    from pathlib import Path
    from typing import Any, Optional

    from _typeshed import StrPath


_FILE_LIMIT = 64 * 1024
_SHARED_LIMIT = 1024 * 1024  # the shared credentials file: many profiles, still small

NONE_FOUND_HINT = (
    "set --access-key and --secret-key (or OBJECTSTORE_ACCESS_KEY / OBJECTSTORE_SECRET_KEY, or their "
    "--*-file options), AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY, a profile in the shared credentials "
    "file, AWS_WEB_IDENTITY_TOKEN_FILE, --instance-metadata-credentials, or --anonymous"
)


class Secret(Record):
    """One credential value: given directly, or read from ``file``."""

    option: str  # the option naming it in messages, e.g. "--secret-key"
    value: Optional[str] = None
    file: Optional[Path] = None

    def __repr__(self) -> str:
        return f"Secret(option={self.option!r}, value=***, file={self.file!r})"

    def read(self) -> str:
        if self.value is not None:
            return self.value
        assert self.file is not None
        return read_secret_file(self.file, f"{self.option}-file")


class ExplicitCredentials(Record):
    access_key: Secret
    secret_key: Secret
    session_token: Optional[Secret] = None

    def parts(self) -> list[Secret]:
        return [s for s in (self.access_key, self.secret_key, self.session_token) if s is not None]

    def files(self) -> list[Path]:
        return [s.file for s in self.parts() if s.value is None and s.file is not None]


class CredentialChain(Record):
    """Which sources the wrapper may take credentials from (no secret values, except given ones)."""

    explicit: Optional[ExplicitCredentials] = None
    instance_metadata: bool = False
    anonymous: bool = False
    sts_endpoint: Optional[str] = None
    region: Optional[str] = None
    notes: tuple[str, ...] = ()  # warnings for the user (e.g. an ignored file option)

    def describe(self) -> str:
        if self.explicit is not None:
            where = []
            for part in self.explicit.parts():
                where.append(f"{part.option}-file {part.file}" if part.value is None else part.option)
            rotate = " (files read again when they change)" if self.explicit.files() else ""
            return "credentials from " + ", ".join(where) + rotate
        links = ["AWS_* variables", f"shared credentials file {shared_credentials_file()} [{profile()}]"]
        if os.environ.get("AWS_WEB_IDENTITY_TOKEN_FILE"):
            links.append(f"web identity via {sts_endpoint(self)}")
        if self.instance_metadata:
            links.append("instance metadata")
        if self.anonymous:
            links.append("anonymous")
        return "credentials from the first of: " + ", ".join(links)


# -- configuration (no network, no minio) --------------------------------------------------------


def read_secret_file(path: StrPath, option: str) -> str:
    """A secret from a file; ValueError naming ``option`` when unreadable or empty."""
    try:
        data = read_small_file(path, option, _FILE_LIMIT)
    except FileNotFoundError as exc:
        raise ValueError(f"{option}: cannot read {path}: {exc.strerror}") from None
    try:
        text = data.decode("utf-8").strip()
    except UnicodeDecodeError:
        raise ValueError(f"{option}: {path} is not UTF-8 text") from None
    if not text:
        raise ValueError(f"{option}: {path} is empty")
    redact.add(text)
    check_header_value(text, option, f"{path} holds")
    return text


_AWS_SECRETS = (
    "AWS_ACCESS_KEY_ID",
    "AWS_ACCESS_KEY",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SECRET_KEY",
    "AWS_SESSION_TOKEN",
)


def check_header_value(value: str, option: str, what: str = "the value holds") -> None:
    """ValueError naming ``option`` (never the value) when ``value`` cannot go into an HTTP header:
    a line break or other control character (a line-wrapped token file, an injected header)."""
    if any(ord(c) < 0x20 or ord(c) == 0x7F for c in value):
        raise ValueError(
            f"{option}: {what} a line break or another control character, which a request header cannot "
            "carry; give the value on one line (a file may end with one newline)"
        )


def resolve(values: Mapping[str, Any], environ: Mapping[str, str] = os.environ) -> CredentialChain:
    """The credential chain for an S3 endpoint; ValueError (one line) when nothing can apply."""
    notes: list[str] = []
    parts: dict[str, Optional[Secret]] = {}
    for name in ("access_key", "secret_key", "session_token"):
        option = "--" + name.replace("_", "-")
        value = values.get(name) or None
        file = values.get(f"{name}_file") or None
        if value is not None and file is not None:
            notes.append(f"{option}-file ignored: {option} is set and wins")
        if value is not None:
            if name != "access_key":
                redact.add(value)
            check_header_value(value, option)
            parts[name] = Secret(option, value=value)
        elif file is not None:
            read_secret_file(path_text(file), f"{option}-file")  # fail now, before COMMAND starts
            parts[name] = Secret(option, file=path(file))
        else:
            parts[name] = None
    chain = CredentialChain(
        None,
        instance_metadata=bool(values.get("instance_metadata_credentials")),
        anonymous=bool(values.get("anonymous")),
        sts_endpoint=values.get("sts_endpoint") or None,
        region=values.get("region") or None,
        notes=tuple(notes),
    )
    access, secret, token = parts["access_key"], parts["secret_key"], parts["session_token"]
    if not (access or secret or token):  # the AWS chain: check what it would use, before COMMAND
        for variable in _AWS_SECRETS:
            if environ.get(variable):
                if "ACCESS_KEY" not in variable or "SECRET" in variable:
                    redact.add(environ[variable])
                check_header_value(environ[variable], variable)
        check_aws_files(environ)
    if access or secret or token:
        if access is None:
            raise ValueError(
                "--access-key: a secret key or session token is set but no access key; set "
                "--access-key or --access-key-file (OBJECTSTORE_ACCESS_KEY[_FILE])"
            )
        if secret is None:
            raise ValueError(
                "--secret-key: an access key is set but no secret key; set --secret-key-file or "
                "--secret-key (OBJECTSTORE_SECRET_KEY[_FILE])"
            )
        return chain._replace(explicit=ExplicitCredentials(access, secret, token))
    if not chain.anonymous and not chain.instance_metadata and not aws_chain_may_apply(environ):
        raise ValueError(f"no credentials for the S3 endpoint: {NONE_FOUND_HINT}")
    return chain


def check_aws_files(environ: Mapping[str, str]) -> None:
    """The files minio's AWS providers read later, refused now when they are not regular files
    (``/dev/zero`` would be read without end, a FIFO would block)."""
    for variable in ("AWS_SHARED_CREDENTIALS_FILE", "AWS_WEB_IDENTITY_TOKEN_FILE", "AWS_CONFIG_FILE"):
        if environ.get(variable):
            check_regular(path_text(environ[variable]), variable)


def shared_credentials_file(environ: Mapping[str, str] = os.environ) -> str:
    home = environ.get("HOME") or os.path.expanduser("~")  # Path.home()
    return environ.get("AWS_SHARED_CREDENTIALS_FILE") or os.path.join(home, ".aws", "credentials")


def profile(environ: Mapping[str, str] = os.environ) -> str:
    return environ.get("AWS_PROFILE") or "default"


def aws_chain_may_apply(environ: Mapping[str, str]) -> bool:
    """Whether the AWS variables, the shared file or web identity could give credentials."""
    if (environ.get("AWS_ACCESS_KEY_ID") or environ.get("AWS_ACCESS_KEY")) and (
        environ.get("AWS_SECRET_ACCESS_KEY") or environ.get("AWS_SECRET_KEY")
    ):
        return True
    token_file = environ.get("AWS_WEB_IDENTITY_TOKEN_FILE")
    if token_file and os.access(token_file, os.R_OK):
        return True
    import configparser  # only when no other source applies

    parser = configparser.ConfigParser(interpolation=None)
    try:
        shared = path_text(shared_credentials_file(environ))
        data = read_small_file(shared, "AWS_SHARED_CREDENTIALS_FILE", _SHARED_LIMIT)
        parser.read_string(data.decode("utf-8"))
    except (OSError, configparser.Error, UnicodeDecodeError):
        return False
    name = profile(environ)
    return bool(
        parser.get(name, "aws_access_key_id", fallback=None)
        and parser.get(name, "aws_secret_access_key", fallback=None)
    )


def sts_endpoint(chain: CredentialChain, environ: Mapping[str, str] = os.environ) -> str:
    """``--sts-endpoint``, else the regional AWS STS endpoint (as EKS sets it up for IRSA)."""
    if chain.sts_endpoint:
        return chain.sts_endpoint.rstrip("/")
    region = environ.get("AWS_REGION") or environ.get("AWS_DEFAULT_REGION") or chain.region
    if not region:
        return "https://sts.amazonaws.com"
    suffix = ".amazonaws.com.cn" if region.startswith("cn-") else ".amazonaws.com"
    return f"https://sts.{region}{suffix}"
