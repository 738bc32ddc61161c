"""minio credential providers for a resolved ``CredentialChain`` (``settings/credentials.py``).

Built with the S3 client, in the background after COMMAND started; failures are raised as
``StoreError`` (code ``Credentials``) with messages free of secrets.
"""

from __future__ import annotations

import os
import re
import threading
import time
from pathlib import Path
from typing import Any, Optional

from .. import redact
from ..settings.credentials import (
    NONE_FOUND_HINT,
    CredentialChain,
    ExplicitCredentials,
    profile,
    read_secret_file,
    shared_credentials_file,
    sts_endpoint,
)
from .base import StoreError
from .s3_security import pool_settings

METADATA_CONNECT_TIMEOUT = 1.0


METADATA_READ_TIMEOUT = 2.0


STS_CONNECT_TIMEOUT = 5.0


STS_READ_TIMEOUT = 15.0


def _error(message: str, transient: bool) -> Exception:
    """The store's error type."""
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

        endpoint = sts_endpoint(chain)
        https = endpoint.startswith("https://")
        settings = pool_settings(tls) if tls is not None and https else {}
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




def credential_names(provider: Any, chain: Optional[CredentialChain]) -> tuple[str, str, str]:
    """What to check for (access key, secret key, session token) given the source that supplied
    the credentials; empty strings: the options' own names (given as values) fit."""
    if isinstance(provider, FileCredentialsProvider) and chain is not None and chain.explicit is not None:
        given = chain.explicit
        parts = (given.access_key, given.secret_key, given.session_token or given.secret_key)
        named = tuple(f"{p.option}-file {p.file}" if p.value is None else p.option for p in parts)
        return named[0], named[1], named[2]
    source = getattr(provider, "source", "") if isinstance(provider, ChainProvider) else ""
    if source == "AWS_* variables":
        return "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"
    if source.startswith("shared credentials file"):
        where = f"in {shared_credentials_file()} [{profile()}] (AWS_SHARED_CREDENTIALS_FILE, AWS_PROFILE)"
        return tuple(f"{name} {where}" for name in _SHARED_NAMES)  # type: ignore[return-value]
    if source:
        what = f"the credentials from {source} (the role and its trust policy)"
        return what, what, what
    return "", "", ""


_SHARED_NAMES = ("aws_access_key_id", "aws_secret_access_key", "aws_session_token")
