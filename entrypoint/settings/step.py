"""The wrapper's configuration: validated values, no I/O beyond reading the pod labels file.

``cli.py`` collects raw option values (flags or environment); ``build_config`` turns them into a
``Config`` or raises ``ConfigError`` with a one-line message naming the option.
"""

from __future__ import annotations

import os

from ..formats.layout import KeysTooLong, Layout, name_problem
from ..options.wrapper import FLUSH_TIMEOUT, KILL_AFTER_SHARE, TERMINATION_GRACE
from ..records import Record, path, path_text
from .environment import kfp_endpoint, no_endpoint_problem
from .podinfo import DEFAULT_POD_LABELS, Attempt, attempt_of, read_downward, tekton_results_log_key
from .store import ConfigError, StoreConfig, build_store_config, check_bucket_for, ranged_option

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence
    from pathlib import Path
    from typing import Any, Optional

    from _typeshed import StrPath


DEFAULT_SPOOL_LIMIT = 1024**3
PREFLIGHT_MODES = ("off", "warn", "strict")
TEKTON_TIMEOUT_MODES = ("auto", "off")
DEFAULT_FAST_FLUSH_AT = 0.9
DEFAULT_CGROUP_ROOT = "/sys/fs/cgroup"
TEKTON_TERMINATION = "/tekton/termination"  # Tekton's terminationMessagePath for steps
TEKTON_RUN = "/tekton/run"  # mounted into every Tekton step


class Config(Record):
    """The validated settings. Its ``Path`` fields are kept as text until read (``records.path``);
    ``spool_dir`` and ``cgroup_root`` are read before COMMAND starts, and stay text."""

    command: tuple[str, ...]
    store: StoreConfig
    layout: Layout
    results_dir: Path
    log_chunk_size: int
    log_flush_interval: float
    spool_dir: Optional[str]
    flush_timeout: float = FLUSH_TIMEOUT
    timeout: Optional[float] = None
    kill_after: float = TERMINATION_GRACE * KILL_AFTER_SHARE  # a share of termination_grace unless given
    termination_grace: float = TERMINATION_GRACE
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
    fast_flush_at: float = DEFAULT_FAST_FLUSH_AT  # fraction of the memory limit: flush every second
    cgroup_root: str = DEFAULT_CGROUP_ROOT  # the cgroup filesystem (memory limit, OOM kills)
    termination_log: Optional[Path] = None  # where an OOM kill is written for Tekton's message
    results_log_key: Optional[str] = None  # --tekton-results-logs: the plain-text log's key
    chains_outputs: bool = False  # --chains-outputs: write R-ARTIFACT_OUTPUTS/INPUTS results
    attempt: Attempt = Attempt(1, "default")  # which attempt (Tekton retry) this is; layout.attempt too


class FetchSpec(Record):
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


def read_pod_labels(path: StrPath) -> dict[str, str]:
    """Parse a downward-API labels file (lines ``key="value"``). Missing file: no labels."""
    return read_downward(path, "--pod-labels")


def resolve_identity(
    pipelinerun: Optional[str], pipelinetask: Optional[str], labels_file: StrPath
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


def build_config(values: Mapping[str, Any], command: Sequence[str]) -> Config:
    """Validate raw option values (as click collected them) into a ``Config``."""
    if not command:
        raise ConfigError("no COMMAND given; usage: tekton-uploader [OPTIONS] -- COMMAND [ARGS]...")
    embedded = not (values.get("endpoint") or kfp_endpoint(os.environ))
    if embedded:
        problem = no_endpoint_problem(os.environ)
        if problem:
            raise ConfigError(problem + "; COMMAND not started")
    store = build_store_config(values)
    run, task = resolve_identity(
        values.get("pipelinerun"),
        values.get("pipelinetask"),
        path_text(values.get("pod_labels") or DEFAULT_POD_LABELS),
    )
    step = values.get("step") or "main"
    prefix = str(values.get("key_prefix") if values.get("key_prefix") is not None else "artifacts").strip("/")
    attempt = attempt_of(values.get("attempt"), os.environ, os.path.exists(TEKTON_RUN))
    try:
        layout = Layout(prefix, run, task, step, attempt.number)
    except KeysTooLong as exc:
        hint = "shorten --key-prefix, --pipelinerun, --pipelinetask or --step"
        raise ConfigError(f"--key-prefix: {exc}; {hint}") from None
    except ValueError as exc:
        option = "--step" if str(exc).startswith("step") else "--key-prefix"
        raise ConfigError(f"{option}: {exc}; use a plain name") from None
    chunk = int(ranged_option(values, "log_chunk_size", 8 * 1024 * 1024))
    interval = float(ranged_option(values, "log_flush_interval", 5.0))
    spool = values.get("spool_dir")
    spool_limit = int(ranged_option(values, "spool_limit", DEFAULT_SPOOL_LIMIT))
    chunk = min(chunk, spool_limit // 8)  # room in the spool for several chunks and their archive
    preflight = str(values.get("preflight") or "warn").lower()
    if preflight not in PREFLIGHT_MODES:
        raise ConfigError(f"--preflight: {preflight!r} is not one of off, warn, strict")
    grace = ranged_option(values, "termination_grace", TERMINATION_GRACE)
    return Config(
        command=tuple(command),
        store=store,
        layout=layout,
        results_dir=path(values.get("results_dir") or "/tekton/results"),
        log_chunk_size=chunk,
        log_flush_interval=interval,
        spool_dir=path_text(spool) if spool else None,
        flush_timeout=ranged_option(values, "flush_timeout", FLUSH_TIMEOUT),
        timeout=ranged_option(values, "timeout", None),
        kill_after=ranged_option(values, "kill_after", grace * KILL_AFTER_SHARE),  # the rest is the flush's
        termination_grace=grace,
        signal_child_only=bool(values.get("signal_child_only")),
        quiet=bool(values.get("quiet")),
        debug=bool(values.get("debug")),
        embedded_default=embedded,
        spool_limit=spool_limit,
        preflight=preflight,
        ignore_upload_errors=bool(values.get("ignore_upload_errors")),
        skip_results_on_failure=bool(values.get("skip_results_on_failure")),
        archive_mtime=reproducible_mtime(values),
        artifacts_file=_path(values, "artifacts_file"),
        offload_results_over=_offload(values),
        step_results_dir=_path(values, "step_results_dir"),
        fetch_results=tuple(parse_fetch(t) for t in values.get("fetch_result") or ()),
        tekton_timeout=_tekton_timeout(values),
        fast_flush_at=fast_flush_at(values.get("fast_flush_at")),
        cgroup_root=path_text(values.get("cgroup_root") or DEFAULT_CGROUP_ROOT),
        termination_log=termination_log(values.get("termination_log")),
        results_log_key=tekton_results_log_key(values, step),
        chains_outputs=bool(values.get("chains_outputs")),
        attempt=attempt,
    )


def _tekton_timeout(values: Mapping[str, Any]) -> str:
    mode = str(values.get("tekton_timeout") or "auto").lower()
    if mode not in TEKTON_TIMEOUT_MODES:
        raise ConfigError(f"--tekton-timeout: {mode!r} is not one of auto, off")
    return mode


def fast_flush_at(raw: Optional[str]) -> float:
    """``--fast-flush-at``: ``90%`` or ``90``, from 1 to 100 percent, as a fraction."""
    if raw is None:
        return DEFAULT_FAST_FLUSH_AT
    text = str(raw).strip().removesuffix("%").strip()
    try:
        percent = float(text)
    except ValueError:
        percent = -1.0
    if not 1 <= percent <= 100:
        raise ConfigError(f"--fast-flush-at: {raw!r} is not a percentage from 1% to 100%; use e.g. 90%")
    return percent / 100


def termination_log(raw: Optional[str]) -> Optional[Path]:
    """``--termination-log``; by default Tekton's termination message file inside a Tekton step."""
    if raw:
        return path(raw)
    return path(TEKTON_TERMINATION) if os.path.exists(TEKTON_RUN) else None


def _path(values: Mapping[str, Any], name: str) -> Optional[Path]:
    value = values.get(name)
    return path(value) if value else None


def _offload(values: Mapping[str, Any]) -> Optional[int]:
    value = ranged_option(values, "offload_results_over", None)
    return None if value is None else int(value)


def parse_fetch(text: str) -> FetchSpec:
    """``[PIPELINERUN/]PIPELINETASK/RESULT=PATH`` or ``s3://BUCKET/KEY=PATH``."""
    hint = "use PIPELINETASK/RESULT=PATH, PIPELINERUN/PIPELINETASK/RESULT=PATH or s3://BUCKET/KEY=PATH"
    source, sep, target = text.rpartition("=")
    if not sep or not source or not target:
        raise ConfigError(f"--fetch-result: {text!r} has no '=PATH'; {hint}")
    source = source.strip()
    if source.startswith("s3://"):
        bucket, _, key = source[len("s3://") :].partition("/")
        parts = key.split("/")
        problems = [p for p in [bucket, *parts] if name_problem(p)]
        if not bucket or not key or problems or not key.endswith(".tgz"):
            raise ConfigError(f"--fetch-result: {source!r} is not an s3://BUCKET/KEY.tgz URI; {hint}")
        return FetchSpec(text, path(target), bucket=check_bucket_for(bucket), key=key)
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
    return FetchSpec(text, path(target), run=run, task=task, result=result)


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
