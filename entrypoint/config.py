"""The wrapper's configuration: validated values, no I/O beyond reading the pod labels file.

``cli.py`` collects raw option values (flags or environment); ``build_config`` turns them into a
``Config`` or raises ``ConfigError`` with a one-line message naming the option.
"""

from __future__ import annotations

import os
import re
import urllib.parse
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, NamedTuple, Optional

from . import credentials as creds_mod
from . import sse as sse_mod
from . import tls as tls_mod
from .credentials import CredentialChain
from .layout import Layout, name_problem
from .sse import SSEConfig
from .tls import TLSConfig

DEFAULT_BUCKET = "mlpipeline"
DEFAULT_LOCAL_DIR = "./objectstore"
DEFAULT_POD_LABELS = "/etc/podinfo/labels"
DEFAULT_SPOOL_LIMIT = 1024**3
MIN_SPOOL_LIMIT = 1024**2
PREFLIGHT_MODES = ("off", "warn", "strict")


class ConfigError(Exception):
    """Bad configuration; the message is one line naming the option and the fix."""


class S3Endpoint(NamedTuple):
    host: str  # host[:port], as minio wants it
    secure: bool

    @property
    def url(self) -> str:
        return f"{'https' if self.secure else 'http'}://{self.host}"


class Credentials(NamedTuple):
    access_key: str
    secret_key: str
    session_token: Optional[str] = None

    def __repr__(self) -> str:
        return "Credentials(access_key=***, secret_key=***)"


class StoreConfig(NamedTuple):
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


class Config(NamedTuple):
    command: tuple[str, ...]
    store: StoreConfig
    layout: Layout
    results_dir: Path
    log_chunk_size: int
    log_flush_interval: float
    spool_dir: Optional[Path]
    flush_timeout: float = 300.0
    timeout: Optional[float] = None
    kill_after: float = 20.0
    termination_grace: float = 30.0
    signal_child_only: bool = False
    quiet: bool = False
    debug: bool = False
    embedded_default: bool = False  # no endpoint configured: local directory store
    spool_limit: int = DEFAULT_SPOOL_LIMIT  # bytes the capture may keep on disk
    preflight: str = "warn"  # off | warn | strict
    ignore_upload_errors: bool = False  # keep COMMAND's exit code when objects are missing
    skip_results_on_failure: bool = False  # no results upload when COMMAND failed
    archive_mtime: Optional[float] = None  # --reproducible: fixed mtime of every tar member
    artifacts_file: Optional[Path] = None  # Tekton artifacts provenance.json to write/merge
    offload_results_over: Optional[int] = None  # results larger than this become their URI
    step_results_dir: Optional[Path] = None  # Tekton step results, stored under <step>/
    fetch_results: tuple[FetchSpec, ...] = ()  # inputs to download before COMMAND starts
    tekton_timeout: str = "auto"  # auto: plan for the Tekton entrypoint's step -timeout; off


class FetchSpec(NamedTuple):
    """``--fetch-result``: a stored result to extract to ``path`` before COMMAND starts.

    Either ``task`` and ``result`` (and ``run``, default the current pipelinerun) or ``key``
    (from an ``s3://bucket/key`` URI, as an offloaded result holds).
    """

    text: str
    path: Path
    run: Optional[str] = None
    task: Optional[str] = None
    result: Optional[str] = None
    bucket: Optional[str] = None
    key: Optional[str] = None


_BUCKET = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")


def check_bucket(name: str) -> str:
    problem = None
    if not _BUCKET.match(name):
        problem = (
            "must be 3-63 characters of a-z, 0-9, '.' and '-', starting and ending with a letter or digit"
        )
    elif ".." in name or ".-" in name or "-." in name:
        problem = "must not contain '..', '.-' or '-.'"
    else:
        import ipaddress

        try:
            ipaddress.IPv4Address(name)
            problem = "must not look like an IP address"
        except ValueError:
            pass
    if problem:
        raise ConfigError(f"--bucket: invalid bucket name {name!r}: {problem}")
    return name


def parse_endpoint(url: str) -> tuple[Optional[S3Endpoint], Optional[Path]]:
    """``http(s)://host[:port]`` -> S3 endpoint; ``file:///dir`` -> local directory."""
    hint = "use http://HOST[:PORT], https://HOST[:PORT] or file:///DIR"
    try:
        parts = urllib.parse.urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise ConfigError(f"--endpoint: malformed URL ({exc}); {hint}") from None
    if parts.scheme == "file":
        if parts.netloc not in ("", "localhost") or not parts.path.startswith("/"):
            raise ConfigError(f"--endpoint: {url!r} is not an absolute file:/// URL; {hint}")
        return None, Path(urllib.parse.unquote(parts.path))
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


def read_pod_labels(path: Path) -> dict[str, str]:
    """Parse a downward-API labels file (lines ``key="value"``). Missing file: no labels."""
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except FileNotFoundError:
        return {}
    except OSError as exc:
        raise ConfigError(f"--pod-labels: cannot read {path}: {exc.strerror}") from None
    labels: dict[str, str] = {}
    for line in text.splitlines():
        key, sep, raw = line.partition("=")
        if not sep:
            continue
        raw = raw.strip()
        try:
            import json

            value = json.loads(raw) if raw.startswith('"') else raw
        except ValueError:
            value = raw.strip('"')
        labels[key.strip()] = str(value)
    return labels


def resolve_identity(
    pipelinerun: Optional[str], pipelinetask: Optional[str], labels_file: Path
) -> tuple[str, str]:
    """Flags/env first, then the pod labels Tekton sets."""
    labels: Mapping[str, str] = {}
    if pipelinerun is None or pipelinetask is None:
        labels = read_pod_labels(labels_file)
    run = pipelinerun
    if run is None:
        run = labels.get("tekton.dev/pipelineRun") or labels.get("tekton.dev/taskRun")
    task = pipelinetask
    if task is None:
        task = (
            labels.get("tekton.dev/pipelineTask")
            or labels.get("tekton.dev/task")
            or labels.get("tekton.dev/taskRun")
        )
    for option, variable, value in (
        ("--pipelinerun", "PIPELINERUN", run),
        ("--pipelinetask", "PIPELINETASK", task),
    ):
        if value is None:
            raise ConfigError(
                f"{option}: not set and no Tekton labels in {labels_file}; "
                f"set {option} or ${variable}, or mount the pod labels with the downward API"
            )
        problem = name_problem(value)
        if problem:
            raise ConfigError(f"{option}: {value!r} {problem}; use a plain name")
    assert run is not None and task is not None
    return run, task


def build_store_config(values: Mapping[str, Any]) -> StoreConfig:
    """The store options (see ``storeoptions.py``), validated; shared by both commands."""
    bucket = check_bucket(values.get("bucket") or DEFAULT_BUCKET)
    endpoint_url = values.get("endpoint")
    endpoint: Optional[S3Endpoint] = None
    local_dir: Optional[Path] = None
    if endpoint_url:
        endpoint, local_dir = parse_endpoint(endpoint_url)
    else:
        local_dir = Path(DEFAULT_LOCAL_DIR)
    credentials = None
    auth = tls = sse = None
    try:
        if endpoint is not None:
            auth = creds_mod.resolve(values)
            tls = tls_mod.resolve(values, https=endpoint.secure)
            if auth.explicit is not None and all(p.value is not None for p in auth.explicit.parts()):
                given = auth.explicit
                token = given.session_token.read() if given.session_token else None
                credentials = Credentials(given.access_key.read(), given.secret_key.read(), token)
        sse = sse_mod.resolve(values, s3=endpoint is not None, https=bool(endpoint and endpoint.secure))
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    connect_timeout = float(_duration(values, "connect_timeout", 5.0))  # wrapper options; the
    read_timeout = float(_duration(values, "read_timeout", 30.0))  # reader gets the defaults
    return StoreConfig(
        bucket=bucket,
        endpoint=endpoint,
        local_dir=local_dir,
        credentials=credentials,
        region=values.get("region") or None,
        create_bucket=bool(values.get("create_bucket", True)),
        path_style=values.get("path_style"),
        connect_timeout=connect_timeout,
        read_timeout=read_timeout,
        auth=auth,
        tls=tls,
        sse=sse,
    )


def build_config(values: Mapping[str, Any], command: Sequence[str]) -> Config:
    """Validate raw option values (as click collected them) into a ``Config``."""
    if not command:
        raise ConfigError("no COMMAND given; usage: tekton-uploader [OPTIONS] -- COMMAND [ARGS]...")
    store = build_store_config(values)
    run, task = resolve_identity(
        values.get("pipelinerun"),
        values.get("pipelinetask"),
        Path(values.get("pod_labels") or DEFAULT_POD_LABELS),
    )
    step = values.get("step") or "main"
    prefix = str(values.get("key_prefix") if values.get("key_prefix") is not None else "artifacts").strip("/")
    try:
        layout = Layout(prefix, run, task, step)
    except ValueError as exc:
        option = "--step" if str(exc).startswith("step") else "--key-prefix"
        raise ConfigError(f"{option}: {exc}; use a plain name") from None
    chunk = int(values.get("log_chunk_size") or 8 * 1024 * 1024)
    if chunk < 1024:
        raise ConfigError("--log-chunk-size: must be at least 1KiB")
    interval = float(values.get("log_flush_interval") or 5.0)
    if interval <= 0:
        raise ConfigError("--log-flush-interval: must be greater than 0")
    spool = values.get("spool_dir")
    spool_limit = values.get("spool_limit")
    spool_limit = DEFAULT_SPOOL_LIMIT if spool_limit is None else int(spool_limit)
    if spool_limit < MIN_SPOOL_LIMIT:
        raise ConfigError("--spool-limit: must be at least 1MiB")
    chunk = min(chunk, spool_limit // 8)  # room in the spool for several chunks and their archive
    preflight = str(values.get("preflight") or "warn").lower()
    if preflight not in PREFLIGHT_MODES:
        raise ConfigError(f"--preflight: {preflight!r} is not one of off, warn, strict")
    return Config(
        command=tuple(command),
        store=store,
        layout=layout,
        results_dir=Path(values.get("results_dir") or "/tekton/results"),
        log_chunk_size=chunk,
        log_flush_interval=interval,
        spool_dir=Path(spool) if spool else None,
        flush_timeout=_duration(values, "flush_timeout", 300.0),
        timeout=_duration(values, "timeout", None),
        kill_after=_duration(values, "kill_after", 20.0),
        termination_grace=_duration(values, "termination_grace", 30.0),
        signal_child_only=bool(values.get("signal_child_only")),
        quiet=bool(values.get("quiet")),
        debug=bool(values.get("debug")),
        embedded_default=not values.get("endpoint"),
        spool_limit=spool_limit,
        preflight=preflight,
        ignore_upload_errors=bool(values.get("ignore_upload_errors")),
        skip_results_on_failure=bool(values.get("skip_results_on_failure")),
        archive_mtime=reproducible_mtime(values),
        artifacts_file=_path(values, "artifacts_file"),
        offload_results_over=_offload(values),
        step_results_dir=_path(values, "step_results_dir"),
        fetch_results=tuple(parse_fetch(t) for t in values.get("fetch_result") or ()),
        tekton_timeout=str(values.get("tekton_timeout") or "auto").lower(),
    )


def _path(values: Mapping[str, Any], name: str) -> Optional[Path]:
    value = values.get(name)
    return Path(value) if value else None


def _offload(values: Mapping[str, Any]) -> Optional[int]:
    value = values.get("offload_results_over")
    if value is None:
        return None
    if int(value) < 0:
        raise ConfigError("--offload-results-over: must not be negative")
    return int(value)


def parse_fetch(text: str) -> FetchSpec:
    """``[PIPELINERUN/]PIPELINETASK/RESULT=PATH`` or ``s3://BUCKET/KEY=PATH``."""
    hint = "use PIPELINETASK/RESULT=PATH, PIPELINERUN/PIPELINETASK/RESULT=PATH or s3://BUCKET/KEY=PATH"
    source, sep, path = text.rpartition("=")
    if not sep or not source or not path:
        raise ConfigError(f"--fetch-result: {text!r} has no '=PATH'; {hint}")
    source = source.strip()
    if source.startswith("s3://"):
        bucket, _, key = source[len("s3://") :].partition("/")
        parts = key.split("/")
        problems = [p for p in [bucket, *parts] if name_problem(p)]
        if not bucket or not key or problems or not key.endswith(".tgz"):
            raise ConfigError(f"--fetch-result: {source!r} is not an s3://BUCKET/KEY.tgz URI; {hint}")
        return FetchSpec(text, Path(path), bucket=check_bucket_for(bucket), key=key)
    parts = source.strip("/").split("/")
    if len(parts) not in (2, 3):
        raise ConfigError(f"--fetch-result: {source!r} is not PIPELINETASK/RESULT; {hint}")
    for part in parts:
        problem = name_problem(part)
        if problem:
            raise ConfigError(f"--fetch-result: {part!r} in {source!r} {problem}; use plain names")
    run = parts[0] if len(parts) == 3 else None
    task, result = parts[-2], parts[-1]
    if result.endswith(".tgz"):
        result = result[:-4]
    return FetchSpec(text, Path(path), run=run, task=task, result=result)


def check_bucket_for(name: str) -> str:
    try:
        return check_bucket(name)
    except ConfigError as exc:
        raise ConfigError(str(exc).replace("--bucket", "--fetch-result", 1)) from None


def _duration(values: Mapping[str, Any], name: str, default: Optional[float]) -> Any:
    value = values.get(name)
    if value is None:
        return default
    if float(value) <= 0:
        raise ConfigError(f"--{name.replace('_', '-')}: must be greater than 0")
    return float(value)


def reproducible_mtime(values: Mapping[str, Any]) -> Optional[float]:
    """``--reproducible``: members get ``SOURCE_DATE_EPOCH`` (else 0) as mtime; otherwise None."""
    if not values.get("reproducible"):
        return None
    raw = os.environ.get("SOURCE_DATE_EPOCH", "").strip()
    if not raw:
        return 0.0
    if not raw.isdigit():
        raise ConfigError(f"--reproducible: SOURCE_DATE_EPOCH={raw!r} is not a whole number of seconds")
    return float(raw)
