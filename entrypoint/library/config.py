"""``ObjectStoreConfig``: the Go package's configuration in Python spelling, plus the CLI's additions.

The Go fields (``Enable``, ``CreateBucket``, ``DefaultBucketName``, ``AccessKey``, ``SecretKey``,
``Region``, ``ServiceEndpoint``, ``Token``, ``S3ForcePathStyle``) keep their meaning. What the
command line added is here too: ``file:///DIR`` endpoints (local directory store), a CA bundle for
private CAs, the key prefix, and the log settings. ``from_env()`` reads exactly the environment
variables the ``tekton-uploader`` command reads (taken from its option definitions), and
``to_store_config()`` validates with the same code the command uses.
"""

from __future__ import annotations

import dataclasses
import os
import urllib.parse
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

from ..options.table import Option
from ..settings.environment import kfp_endpoint
from ..settings.store import (
    DEFAULT_BUCKET,
    DEFAULT_LOCAL_DIR,
    ConfigError,
    Credentials,
    StoreConfig,
    check_bucket,
    check_region,
    check_url_style,
    parse_endpoint,
)
from .errors import MASK, ObjectStoreConfigError, redact

SECRET_FIELDS = ("access_key", "secret_key", "token")

# ObjectStoreConfig field -> the CLI option (click parameter name) whose variables it reads.
CLI_PARAMS = {
    "service_endpoint": "endpoint",
    "default_bucket_name": "bucket",
    "create_bucket": "create_bucket",
    "access_key": "access_key",
    "secret_key": "secret_key",
    "token": "session_token",
    "region": "region",
    "s3_force_path_style": "path_style",
    "ca_bundle": "ca_bundle",
    "key_prefix": "key_prefix",
    "log_chunk_size": "log_chunk_size",
    "log_flush_interval": "log_flush_interval",
    "flush_timeout": "flush_timeout",
    "spool_dir": "spool_dir",
    "quiet": "quiet",
    "debug": "debug",
}
# Read where the CLI has no such option (yet): the variables the S3 client honours at run time.
FALLBACK_ENV = {"ca_bundle": ("SSL_CERT_FILE", "AWS_CA_BUNDLE")}
# Read after the option's own variables: the command takes these through its credential chain
# (credentials.py), the library's static keys directly.
EXTRA_ENV = {
    "access_key": ("AWS_ACCESS_KEY_ID",),
    "secret_key": ("AWS_SECRET_ACCESS_KEY",),
    "token": ("AWS_SESSION_TOKEN",),
}

# Option names in the shared validation messages -> field names.
_OPTION_FIELDS = {
    "--endpoint": "service_endpoint",
    "--bucket": "default_bucket_name",
    "--access-key": "access_key",
    "--secret-key": "secret_key",
    "--session-token": "token",
    "--region": "region",
    "--key-prefix": "key_prefix",
}


@dataclass
class ObjectStoreConfig:
    """Where and how to store objects. ``repr`` never shows the credentials."""

    # The Go package's fields.
    enable: bool = True
    create_bucket: bool = True
    default_bucket_name: str = DEFAULT_BUCKET
    access_key: str = field(default="", repr=False)
    secret_key: str = field(default="", repr=False)
    region: str = ""
    service_endpoint: str = ""  # http(s)://HOST[:PORT] or file:///DIR; empty: ./objectstore
    token: str = field(default="", repr=False)
    s3_force_path_style: Optional[bool] = None  # None: path style except on AWS
    # What the command line added.
    ca_bundle: str = ""  # PEM file of CAs to trust for https:// endpoints
    key_prefix: str = "artifacts"
    log_chunk_size: int = 8 * 1024 * 1024  # the Logger's default max_size
    log_flush_interval: float = 5.0  # the Logger's default flush_interval (0: size and flush only)
    flush_timeout: float = 300.0  # longest wait of Writer.write, Logger.flush() and Logger.close()
    spool_dir: str = ""  # where the Logger's sealed chunks wait; empty: a temporary directory
    quiet: bool = False
    debug: bool = False

    def __repr__(self) -> str:
        parts = []
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            shown = (MASK if value else "''") if f.name in SECRET_FIELDS else repr(value)
            parts.append(f"{f.name}={shown}")
        return f"ObjectStoreConfig({', '.join(parts)})"

    __str__ = __repr__

    def secrets(self) -> list[str]:
        """The credential values, for scrubbing messages."""
        return [self.access_key, self.secret_key, self.token]

    @classmethod
    def from_env(cls, environ: Optional[Mapping[str, str]] = None, **overrides: Any) -> ObjectStoreConfig:
        """A config from the variables ``tekton-uploader`` reads (OBJECTSTORE_*, AWS_*, ...).

        As on the command line, the first non-empty variable of each option wins. ``overrides``
        set fields directly (like flags, they win over the environment).
        """
        env = os.environ if environ is None else environ
        values: dict[str, Any] = {}
        params = _cli_options()
        for name, option in CLI_PARAMS.items():
            param = params.get(option)
            variables = param.env if param is not None else FALLBACK_ENV.get(name, ())
            variables += EXTRA_ENV.get(name, ())
            found = next(((v, env[v]) for v in variables if env.get(v)), None)
            if found is None:
                continue
            variable, raw = found
            if param is None or param.kind == "text":
                values[name] = raw
                continue
            try:
                value = param.convert(raw)
            except ValueError as exc:
                raise ObjectStoreConfigError(f"{variable}: {exc}") from None
            values[name] = str(value) if isinstance(_DEFAULTS[name], str) else value
        if "service_endpoint" not in values:  # kfp-tekton's own, as the command reads them
            kfp = kfp_endpoint(env)
            if kfp:
                values["service_endpoint"] = kfp
        values.update(overrides)
        unknown = sorted(set(values) - {f.name for f in dataclasses.fields(cls)})
        if unknown:
            raise TypeError(f"ObjectStoreConfig has no field {unknown[0]!r}")
        return cls(**values)

    # -- validation ------------------------------------------------------------------------
    def to_store_config(self) -> StoreConfig:
        """The CLI's ``StoreConfig``, validated as the CLI validates its options.

        Raises ``ObjectStoreConfigError`` naming the field (never showing a secret).
        """
        try:
            return self._store_config()
        except ConfigError as exc:
            raise ObjectStoreConfigError(redact(_field_message(str(exc)), self.secrets())) from None

    def _store_config(self) -> StoreConfig:
        bucket = check_bucket(self.default_bucket_name or DEFAULT_BUCKET)
        endpoint_url = (self.service_endpoint or "").strip()
        if endpoint_url:
            try:
                has_userinfo = "@" in urllib.parse.urlsplit(endpoint_url).netloc
            except ValueError:
                has_userinfo = False
            if has_userinfo:  # checked first: other messages quote the URL
                raise ConfigError(
                    "--endpoint: credentials in the URL are not allowed; use access_key and secret_key"
                )
            endpoint, local_dir = parse_endpoint(endpoint_url)
        else:
            endpoint, local_dir = None, Path(DEFAULT_LOCAL_DIR)
        check_url_style(endpoint, self.s3_force_path_style, "s3_force_path_style=False")
        credentials = None
        if endpoint is not None:
            if not self.access_key or not self.secret_key:
                missing = "access_key" if not self.access_key else "secret_key"
                raise ConfigError(
                    f"{missing}: S3 endpoint {endpoint.url} needs credentials; set access_key and "
                    "secret_key (or OBJECTSTORE_ACCESS_KEY / OBJECTSTORE_SECRET_KEY)"
                )
            credentials = Credentials(self.access_key, self.secret_key, self.token or None)
            if self.ca_bundle and not Path(self.ca_bundle).is_file():
                raise ConfigError(f"ca_bundle: {self.ca_bundle} is not a readable file; give a PEM file")
        return StoreConfig(
            bucket=bucket,
            endpoint=endpoint,
            local_dir=local_dir,
            credentials=credentials,
            region=check_region(self.region or None),
            create_bucket=bool(self.create_bucket),
            path_style=self.s3_force_path_style,
        )


_DEFAULTS: dict[str, Any] = {f.name: f.default for f in dataclasses.fields(ObjectStoreConfig)}


def _cli_options() -> dict[str, Option]:
    """The wrapper's options by name: the single source of the variable names."""
    from ..options.wrapper import OPTIONS

    return {o.name: o for o in OPTIONS if o.env}


def _field_message(message: str) -> str:
    option, sep, rest = message.partition(":")
    if sep and option in _OPTION_FIELDS:
        return f"{_OPTION_FIELDS[option]}:{rest}"
    return message
