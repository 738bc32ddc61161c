"""Store settings shared by both commands: endpoint, bucket, credentials chain, TLS and SSE, validated.

``build_store_config`` turns the store options (``options/store.py``) into a ``StoreConfig`` or raises
``ConfigError`` with a one-line message naming the option.
"""

from __future__ import annotations

import os

from ..records import Record, path, path_text
from .environment import kfp_endpoint

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Mapping
    from pathlib import Path
    from typing import Any, Optional

    from .credentials import CredentialChain
    from .sse import SSEConfig
    from .tls import TLSConfig


DEFAULT_BUCKET = "mlpipeline"


DEFAULT_LOCAL_DIR = "./objectstore"


class ConfigError(Exception):
    """Bad configuration; the message is one line naming the option and the fix."""


class S3Endpoint(Record):
    host: str  # host[:port], as minio wants it
    secure: bool

    @property
    def url(self) -> str:
        return f"{'https' if self.secure else 'http'}://{self.host}"


class Credentials(Record):
    access_key: str
    secret_key: str
    session_token: Optional[str] = None

    def __repr__(self) -> str:
        return "Credentials(access_key=***, secret_key=***)"


class StoreConfig(Record):
    """Where objects go: an S3 endpoint, or a local directory (``local_dir``)."""

    bucket: str = DEFAULT_BUCKET
    endpoint: Optional[S3Endpoint] = None
    local_dir: Optional[Path] = None
    credentials: Optional[Credentials] = None
    region: Optional[str] = None
    create_bucket: bool = True
    path_style: Optional[bool] = None  # None: the client decides (path style for non-AWS hosts)
    connect_timeout: float = 5.0  # per request: a hung connection must not hang the wrapper
    read_timeout: float = 30.0
    auth: Optional[CredentialChain] = None  # where credentials come from (credentials.py)
    tls: Optional[TLSConfig] = None  # None: the pool's own defaults
    sse: Optional[SSEConfig] = None  # server-side encryption of every object

    def describe(self) -> str:
        if self.endpoint is not None:
            return f"{self.endpoint.url}/{self.bucket}"
        return f"{self.local_dir}/{self.bucket}"


_RESERVED_PREFIXES = ("xn--", "sthree-", "amzn-s3-demo-")
_RESERVED_SUFFIXES = ("-s3alias", "--ol-s3", ".mrap", "--x-s3", "--table-s3")
_ALNUM = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789")
_LOWER_ALNUM = frozenset("abcdefghijklmnopqrstuvwxyz0123456789")
_REGION_CHARS = _ALNUM | frozenset("_.-")
_BUCKET_CHARS = _LOWER_ALNUM | frozenset(".-")


# The checks below run before COMMAND starts, so they are plain string tests rather than re
# patterns; each says which pattern it is (re's "$" also matches before a final newline).
def _matches(
    text: str, first: frozenset[str], middle: frozenset[str], last: frozenset[str], most: int
) -> bool:
    """``text`` matches ``^[first][middle]*[last]$`` (one character: ``^[first]$``) and is at most
    ``most`` characters long."""
    text = text[:-1] if text.endswith("\n") else text
    if not text or len(text) > most or text[0] not in first or not middle.issuperset(text[1:-1]):
        return False
    return len(text) == 1 or text[-1] in last


def check_region(region: Optional[str]) -> Optional[str]:
    """``region`` (None: unset) when a server could accept it: letters, digits, '-', '_', '.'."""
    # ^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$
    if region is None or _matches(region, _ALNUM, _REGION_CHARS, _REGION_CHARS, 63):
        return region
    raise ConfigError(
        f"--region: {region!r} is not a region name (letters, digits, '-', '_' and '.', such as "
        "us-east-1); fix --region (OBJECTSTORE_REGION / AWS_REGION)"
    )


def check_bucket(name: str) -> str:
    problem = None
    # ^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$
    if len(name.removesuffix("\n")) < 3 or not _matches(name, _LOWER_ALNUM, _BUCKET_CHARS, _LOWER_ALNUM, 63):
        problem = (
            "must be 3-63 characters of a-z, 0-9, '.' and '-', starting and ending with a letter or digit"
        )
    elif ".." in name or ".-" in name or "-." in name:
        problem = "must not contain '..', '.-' or '-.'"
    elif name.startswith(_RESERVED_PREFIXES) or name.endswith(_RESERVED_SUFFIXES):
        problem = (
            "must not use a form S3 reserves (prefixes xn--, sthree-, amzn-s3-demo-; suffixes "
            "-s3alias, --ol-s3, .mrap, --x-s3, --table-s3)"
        )
    elif _is_ipv4(name):
        problem = "must not look like an IP address"
    if problem:
        raise ConfigError(f"--bucket: invalid bucket name {name!r}: {problem}")
    return name


def _is_ipv4(name: str) -> bool:
    """Whether ``ipaddress.IPv4Address(name)`` would accept ``name`` (four decimal octets up to
    255, no leading zero), without importing ipaddress."""
    octets = name.split(".")
    return len(octets) == 4 and all(
        0 < len(o) <= 3 and o.isascii() and o.isdigit() and int(o) <= 255 and (o == "0" or o[0] != "0")
        for o in octets
    )


def parse_endpoint(url: str) -> tuple[Optional[S3Endpoint], Optional[Path]]:
    """``http(s)://host[:port]`` -> S3 endpoint; ``file:///dir`` -> local directory."""
    endpoint, local_dir = _endpoint_of(url)
    if local_dir is None:
        return endpoint, None
    from pathlib import Path

    return endpoint, Path(local_dir)


_HOST_CHARS = frozenset("abcdefghijklmnopqrstuvwxyz0123456789.-")


def _endpoint_of(url: str) -> tuple[Optional[S3Endpoint], Optional[str]]:
    """``parse_endpoint``, the directory as text. A plain URL (lower-case scheme and host, no
    user, query, fragment, escape, space or bracket) is read here; any other is left to
    urllib.parse (not imported before COMMAND starts otherwise), for its exact errors."""
    scheme, sep, rest = url.partition("://")
    netloc, slash, tail = rest.partition("/")
    plain = sep and not any(c <= " " or c in "?#%[]@" for c in url)
    if plain and scheme == "file" and netloc in ("", "localhost") and slash:
        return None, path_text(slash + tail)
    host, _, port = netloc.partition(":")
    if (
        plain
        and scheme in ("http", "https")
        and tail == ""
        and host
        and _HOST_CHARS.issuperset(host)
        and port.isascii()
        and (port.isdigit() or not port)
        and (not port or int(port) <= 65535)
    ):
        return S3Endpoint(f"{host}:{int(port)}" if port else host, scheme == "https"), None
    return _endpoint_by_urllib(url)


def _endpoint_by_urllib(url: str) -> tuple[Optional[S3Endpoint], Optional[str]]:
    import urllib.parse

    hint = "use http://HOST[:PORT], https://HOST[:PORT] or file:///DIR"
    try:
        parts = urllib.parse.urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise ConfigError(f"--endpoint: malformed URL ({exc}); {hint}") from None
    if parts.scheme == "file":
        if parts.netloc not in ("", "localhost") or not parts.path.startswith("/"):
            raise ConfigError(f"--endpoint: {url!r} is not an absolute file:/// URL; {hint}")
        return None, path_text(urllib.parse.unquote(parts.path))
    if parts.scheme not in ("http", "https"):
        raise ConfigError(f"--endpoint: unsupported scheme in {url!r}; {hint}")
    if not parts.hostname or parts.path not in ("", "/") or parts.query or parts.fragment:
        raise ConfigError(f"--endpoint: {url!r} must be scheme, host and port only; {hint}")
    if parts.username or parts.password:
        raise ConfigError("--endpoint: credentials in the URL are not allowed; use --access-key/--secret-key")
    host = parts.hostname
    if ":" in host:
        host = f"[{host}]"
    return S3Endpoint(host if port is None else f"{host}:{port}", parts.scheme == "https"), None


def check_url_style(
    endpoint: Optional[S3Endpoint], path_style: Optional[bool], option: str = "--virtual-host-style"
) -> None:
    """Virtual-host style puts the bucket in the host name (``BUCKET.HOST``): an IP address or
    ``localhost`` has no such names, so say so now instead of failing to resolve later."""
    if endpoint is None or path_style is not False:
        return
    import ipaddress
    import urllib.parse

    host = urllib.parse.urlsplit(endpoint.url).hostname or ""
    try:
        ipaddress.ip_address(host)
        what = "an IP address"
    except ValueError:
        what = "localhost" if host == "localhost" or host.endswith(".localhost") else ""
    if what:
        raise ConfigError(
            f"{option}: endpoint {endpoint.url} is {what}, and virtual-host-style URLs put the bucket "
            "in the host name (BUCKET.HOST), which needs a DNS name; use path style"
        )


def build_store_config(values: Mapping[str, Any]) -> StoreConfig:
    """The store options (see ``options/store.py``), validated; shared by both commands."""
    bucket = check_bucket(values.get("bucket") or DEFAULT_BUCKET)
    endpoint_url = values.get("endpoint") or kfp_endpoint(os.environ)
    endpoint: Optional[S3Endpoint] = None
    local_dir: Optional[str] = None
    if endpoint_url:
        endpoint, local_dir = _endpoint_of(endpoint_url)
    else:
        local_dir = DEFAULT_LOCAL_DIR
    check_url_style(endpoint, values.get("path_style"))
    credentials = None
    auth = tls = sse = None
    try:
        if endpoint is not None:
            from . import credentials as credential_settings  # S3 only: a local store loads neither
            from . import tls as tls_settings

            auth = credential_settings.resolve(values)
            tls = tls_settings.resolve(values, https=endpoint.secure)
            if auth.explicit is not None and all(p.value is not None for p in auth.explicit.parts()):
                given = auth.explicit
                token = given.session_token.read() if given.session_token else None
                credentials = Credentials(given.access_key.read(), given.secret_key.read(), token)
        if values.get("sse") or values.get("sse_kms_key_id") or values.get("sse_c_key_file"):
            from . import sse as sse_settings  # without these options there is no SSE

            https = bool(endpoint and endpoint.secure)
            sse = sse_settings.resolve(values, s3=endpoint is not None, https=https)
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    connect_timeout = float(ranged_option(values, "connect_timeout", 5.0))  # wrapper options; the
    read_timeout = float(ranged_option(values, "read_timeout", 30.0))  # reader gets the defaults
    return StoreConfig(
        bucket=bucket,
        endpoint=endpoint,
        local_dir=path(local_dir) if local_dir is not None else None,
        credentials=credentials,
        region=check_region(values.get("region") or None),
        create_bucket=bool(values.get("create_bucket", True)),
        path_style=values.get("path_style"),
        connect_timeout=connect_timeout,
        read_timeout=read_timeout,
        auth=auth,
        tls=tls,
        sse=sse,
    )


def check_bucket_for(name: str) -> str:
    try:
        return check_bucket(name)
    except ConfigError as exc:
        raise ConfigError(str(exc).replace("--bucket", "--fetch-result", 1)) from None


def ranged_option(values: Mapping[str, Any], name: str, default: Optional[float]) -> Any:
    """The size or duration option ``name`` (``default`` when unset), within its documented range."""
    from .ranges import RangeError, ranged

    try:
        return ranged(values, name, default)
    except RangeError as exc:
        raise ConfigError(str(exc)) from None
