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
import re
import threading
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any, NamedTuple, Optional

from .. import redact

METADATA_CONNECT_TIMEOUT = 1.0
METADATA_READ_TIMEOUT = 2.0
STS_CONNECT_TIMEOUT = 5.0
STS_READ_TIMEOUT = 15.0
_FILE_LIMIT = 64 * 1024

NONE_FOUND_HINT = (
    "set --access-key and --secret-key (or OBJECTSTORE_ACCESS_KEY / OBJECTSTORE_SECRET_KEY, or their "
    "--*-file options), AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY, a profile in the shared credentials "
    "file, AWS_WEB_IDENTITY_TOKEN_FILE, --instance-metadata-credentials, or --anonymous"
)


class Secret(NamedTuple):
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


class ExplicitCredentials(NamedTuple):
    access_key: Secret
    secret_key: Secret
    session_token: Optional[Secret] = None

    def parts(self) -> list[Secret]:
        return [s for s in (self.access_key, self.secret_key, self.session_token) if s is not None]

    def files(self) -> list[Path]:
        return [s.file for s in self.parts() if s.value is None and s.file is not None]


class CredentialChain(NamedTuple):
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


def read_secret_file(path: Path, option: str) -> str:
    """A secret from a file; ValueError naming ``option`` when unreadable or empty."""
    try:
        with open(path, "rb") as f:
            data = f.read(_FILE_LIMIT + 1)
    except OSError as exc:
        raise ValueError(f"{option}: cannot read {path}: {exc.strerror}") from None
    if len(data) > _FILE_LIMIT:
        raise ValueError(f"{option}: {path} is larger than {_FILE_LIMIT // 1024}KiB; is it the right file?")
    try:
        text = data.decode("utf-8").strip()
    except UnicodeDecodeError:
        raise ValueError(f"{option}: {path} is not UTF-8 text") from None
    if not text:
        raise ValueError(f"{option}: {path} is empty")
    redact.add(text)
    return text


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
            parts[name] = Secret(option, value=value)
        elif file is not None:
            from_file = Secret(option, file=Path(file))
            from_file.read()  # fail now, before COMMAND starts, when the file is unusable
            parts[name] = from_file
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


def shared_credentials_file(environ: Mapping[str, str] = os.environ) -> str:
    home = environ.get("HOME") or str(Path.home())
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
        parser.read(shared_credentials_file(environ), encoding="utf-8")
    except (configparser.Error, UnicodeDecodeError):
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


# -- providers (run with the S3 client, in the background) ---------------------------------------


def _error(message: str, transient: bool) -> Exception:
    """The store's error type (imported late: the store package imports the configuration)."""
    from ..store.base import StoreError

    return StoreError(redact.redact(message), transient=transient, code="Credentials")


def build_provider(chain: Optional[CredentialChain], tls: Any) -> Any:
    """A minio credentials ``Provider`` for ``chain`` (``tls``: the ``TLSConfig`` for STS).

    Failures are raised as ``StoreError`` (code ``Credentials``) with messages free of secrets.
    """
    if chain is None:
        return None
    if chain.explicit is not None:
        return FileCredentialsProvider(chain.explicit)
    return ChainProvider(_links(chain, tls), anonymous=chain.anonymous)


def _links(chain: CredentialChain, tls: Any) -> list[tuple[str, Any, bool]]:
    """(name, provider, required): a required link's failure is an error, not a reason to move on."""
    import urllib3
    from minio.credentials.providers import AWSConfigProvider, EnvAWSProvider

    links: list[tuple[str, Any, bool]] = [
        ("AWS_* variables", EnvAWSProvider(), False),
        (f"shared credentials file [{profile()}]", AWSConfigProvider(), False),
    ]
    token_file = os.environ.get("AWS_WEB_IDENTITY_TOKEN_FILE")
    if token_file:
        from minio.credentials.providers import WebIdentityProvider

        from . import tls as tlsmod

        endpoint = sts_endpoint(chain)
        https = endpoint.startswith("https://")
        settings = tlsmod.pool_settings(tls) if tls is not None and https else {}
        sts_pool = urllib3.PoolManager(
            timeout=urllib3.Timeout(connect=STS_CONNECT_TIMEOUT, read=STS_READ_TIMEOUT),
            retries=urllib3.Retry(total=2, backoff_factor=0.2, allowed_methods=None, raise_on_status=False),
            **settings,
        )
        session = os.environ.get("AWS_ROLE_SESSION_NAME") or f"tekton-uploader-{int(time.time())}"
        links.append(
            (
                "web identity",
                WebIdentityProvider(
                    jwt_provider_func=lambda: {"access_token": read_secret_file(Path(token_file), "token")},
                    sts_endpoint=endpoint,
                    role_arn=os.environ.get("AWS_ROLE_ARN") or None,
                    role_session_name=session,
                    http_client=sts_pool,
                ),
                True,
            )
        )
    if chain.instance_metadata and os.environ.get("AWS_EC2_METADATA_DISABLED", "").lower() != "true":
        from minio.credentials.providers import IamAwsProvider

        metadata_pool = urllib3.PoolManager(
            timeout=urllib3.Timeout(connect=METADATA_CONNECT_TIMEOUT, read=METADATA_READ_TIMEOUT),
            retries=urllib3.Retry(total=1, connect=1, read=0, backoff_factor=0.1),
        )
        custom = None
        if not any(
            os.environ.get(v)
            for v in (
                "AWS_WEB_IDENTITY_TOKEN_FILE",
                "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
                "AWS_CONTAINER_CREDENTIALS_FULL_URI",
            )
        ):
            custom = os.environ.get("AWS_EC2_METADATA_SERVICE_ENDPOINT") or None
        links.append(
            (
                "instance metadata",
                IamAwsProvider(
                    custom_endpoint=custom.rstrip("/") if custom else None, http_client=metadata_pool
                ),
                True,
            )
        )
    return links


def _register(creds: Any) -> Any:
    if creds is not None:
        redact.add(creds.secret_key)
        redact.add(creds.session_token)
    return creds


_STATUS = re.compile(r"HTTP status code (\d{3})")


def _failure(name: str, exc: BaseException) -> Exception:
    """A message without URLs (the STS request carries the web identity token in its query)."""
    from ..store.base import StoreError

    if isinstance(exc, StoreError):
        return exc
    text = str(exc)
    status = _STATUS.search(text)
    if status:
        code = int(status.group(1))
        return _error(f"{name}: credentials request refused with HTTP {code}", transient=code >= 500)
    import urllib3

    if isinstance(exc, (urllib3.exceptions.HTTPError, OSError)):
        reason = getattr(exc, "reason", None) or exc
        if "CERTIFICATE_VERIFY_FAILED" in str(reason) or "match" in str(reason).lower():
            return _error(f"{name}: TLS verification failed; trust the service's CA with --ca-bundle", False)
        return _error(f"{name}: cannot reach the credentials service ({type(reason).__name__})", True)
    text = re.sub(r"\w+://\S+", "<url>", text).splitlines()[0][:200] if text else type(exc).__name__
    return _error(f"{name}: {text}", transient=False)


class FileCredentialsProvider:
    """Credentials from values and files; files are read again when any of them changes.

    A change is a different (device, inode, size, mtime) of the file the path leads to, which is
    what Kubernetes' atomic symlink swap of a Secret volume produces. If a read straddles a swap,
    it is repeated. If the files become unreadable, the last good credentials are kept.
    """

    def __init__(self, spec: ExplicitCredentials) -> None:
        self._spec = spec
        self._files = spec.files()
        self._lock = threading.Lock()
        self._signature: Optional[tuple[Any, ...]] = None
        self._creds: Any = None
        self.reads = 0

    def _stat(self) -> tuple[Any, ...]:
        sig: list[Optional[tuple[int, int, int, int]]] = []
        for path in self._files:
            try:
                st = os.stat(path)
                sig.append((st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns))
            except OSError:
                sig.append(None)
        return tuple(sig)

    def retrieve(self) -> Any:
        with self._lock:
            signature = self._stat() if self._files else ()
            if self._creds is not None and signature == self._signature:
                return self._creds
            from minio.credentials.credentials import Credentials

            for _ in range(3):
                try:
                    values = [part.read() if part else None for part in (
                        self._spec.access_key, self._spec.secret_key, self._spec.session_token
                    )]
                    creds = Credentials(values[0] or "", values[1] or "", values[2] or None)
                except ValueError as exc:
                    if self._creds is not None:
                        return self._creds  # mid-rotation or gone: keep what worked
                    raise _error(str(exc), transient=False) from None
                after = self._stat() if self._files else ()
                if after == signature:
                    break
                signature = after  # swapped while reading: read again
            self._signature = signature
            self._creds = creds
            self.reads += 1
            return creds


class ChainProvider:
    """minio's ``ChainedProvider``, with the behaviour the wrapper needs.

    - A source that is not configured (``ValueError`` from an optional link) passes to the next.
    - A configured source that fails (STS refusing the token, metadata service unreachable) is an
      error, transient or not, rather than a silent switch to another identity.
    - The source that answered is asked again on every request (it caches and refreshes its own
      credentials), so rotated credentials are picked up.
    - No source and ``anonymous``: requests go unsigned (``retrieve`` returns None).
    """

    def __init__(self, links: list[tuple[str, Any, bool]], anonymous: bool) -> None:
        self._links = links
        self._anonymous = anonymous
        self._current: Optional[tuple[str, Any, bool]] = None
        self._lock = threading.Lock()
        self.source = ""

    def retrieve(self) -> Any:
        with self._lock:
            if self._current is not None:
                name, provider, _required = self._current
                try:
                    return _register(provider.retrieve())
                except ValueError:
                    self._current = None  # gone (e.g. the profile was removed): look again
                except Exception as exc:
                    raise _failure(name, exc) from None
            skipped = []
            for link in self._links:
                name, provider, required = link
                try:
                    creds = provider.retrieve()
                except ValueError as exc:
                    if required:
                        raise _failure(name, exc) from None
                    skipped.append(name)
                    continue
                except Exception as exc:
                    raise _failure(name, exc) from None
                self._current = link
                self.source = name
                return _register(creds)
            if self._anonymous:
                self.source = "anonymous"
                return None
            raise _error(
                f"no credentials found (tried {', '.join(skipped)}); {NONE_FOUND_HINT}", transient=False
            )
