"""``--fetch-result``: extract stored results to files before COMMAND starts.

Imported only when the option is given (it loads the read side and, for S3, the client). The
read side does the work (``read/fetch.py``: streamed, checked against the step manifest, written
to a temporary file and renamed), its messages through the wrapper's ``Reporter``. Any failure is
a ``ConfigError``: exit 2, COMMAND not started.
"""

from __future__ import annotations

from typing import Any

from ..read.errors import ReadError, from_store_error
from ..read.fetch import get_result_to_file
from ..read.locate import Reader, TaskView
from ..read.retry import Retry
from ..report import Reporter
from ..settings.step import Config, FetchSpec
from ..settings.store import ConfigError
from ..store import StoreError, open_readable_store


def fetch_inputs(cfg: Config, reporter: Reporter) -> list[dict[str, Any]]:
    """Extract every ``--fetch-result``; Tekton artifact inputs (uri, sha256 of the stored .tgz)."""
    inputs: dict[str, dict[str, Any]] = {}
    console = reporter  # the read side's messages are the wrapper's own lines (report.py)
    readers: dict[str, Reader] = {}
    for spec in cfg.fetch_results:
        bucket = spec.bucket or cfg.store.bucket
        try:
            if bucket not in readers:
                store_cfg = cfg.store._replace(bucket=bucket, create_bucket=False)
                store = open_readable_store(store_cfg)
                retry = Retry(where=store.describe(), notify=console.warn)
                readers[bucket] = Reader(store, cfg.layout.prefix, retry, console)
            name, key, sha256 = _fetch(cfg, readers[bucket], spec)
        except ReadError as exc:
            raise ConfigError(f"--fetch-result {spec.text}: {exc}; COMMAND not started") from None
        except StoreError as exc:
            message = from_store_error(exc, readers[bucket].where if bucket in readers else bucket)
            raise ConfigError(f"--fetch-result {spec.text}: {message}; COMMAND not started") from None
        reporter.info(f"fetched {spec.text.rpartition('=')[0]} to {spec.path}")
        value = {"uri": f"s3://{bucket}/{key}", "digest": {"sha256": sha256}}
        values = inputs.setdefault(name, {"name": name, "values": []})["values"]
        if value not in values:
            values.append(value)
    return list(inputs.values())


def _fetch(cfg: Config, reader: Reader, spec: FetchSpec) -> tuple[str, str, str]:
    """Extract one result to its path: its name, its object's key and sha256."""
    if spec.key is not None:
        parent, _, name = spec.key.rpartition("/")
        prefix = f"{parent}/" if parent else ""
        labels = parent.split("/")
        view = TaskView(reader, labels[-2] if len(labels) > 1 else "", labels[-1], prefix, [])
        view.refresh()
        result = name
    else:
        assert spec.task is not None and spec.result is not None
        view = reader.task(spec.run or cfg.layout.pipelinerun, spec.task)
        result = spec.result
    try:
        spec.path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        where = spec.path.parent
        raise ConfigError(f"--fetch-result {spec.text}: cannot create {where}: {exc.strerror}") from None
    key, sha256 = get_result_to_file(reader, view, result, spec.path)
    return result.removesuffix(".tgz"), key, sha256
