"""After the results are stored: Tekton artifacts provenance, Tekton Chains' type-hinted results
(``chains.py``), offloading oversized results, and the warning about Tekton's 4096-byte limit.

- ``--artifacts-file``: ``{"outputs":[{"name": R, "values":[{"uri": "s3://B/K", "digest":
  {"sha256": HEX}}]}]}`` (HEX: of the stored object, as in the manifest), and the results
  ``--fetch-result`` extracted as ``inputs`` (same form), merged into what COMMAND wrote there;
  compact, since the file counts against the termination message.
- ``--offload-results-over SIZE``: a result file larger than SIZE whose object is stored is
  replaced by the object's URI (``s3://bucket/key``); ``--fetch-result`` or
  ``tekton-uploader-read get`` give the bytes back.
- Without it (or when what is left is still too big): a warning naming the biggest results
  when their total exceeds 4096 bytes, before Tekton fails the TaskRun for it.
"""

from __future__ import annotations

import json
import os

from ..records import text
from ..report import Reporter
from ..settings.step import Config
from .files import replace_file, skip_reason
from .queue import Queued

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Sequence
    from pathlib import Path
    from typing import Any, Optional

TEKTON_LIMIT = 4096  # bytes of results per container (the termination message)
BIGGEST = 3  # results named in the warning


class Offloaded:
    """(A plain class, as every record loaded after the spawn: a ``typing.NamedTuple`` costs ~0.1 ms
    to define, and a COMMAND that ends at once waits for it.)"""

    __slots__ = ("name", "size", "uri")

    def __init__(self, name: str, uri: str, size: int) -> None:
        self.name = name  # the result's name (step results: <step>/<name>)
        self.uri = uri
        self.size = size  # bytes of the original file, now in the store

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "uri": self.uri, "bytes": self.size}


def uri(bucket: str, key: str) -> str:
    return f"s3://{bucket}/{key}"


def label(q: Queued, step: str) -> str:
    return f"{step}/{q.result.name}" if q.step else q.result.name


def offload(queued: list[Queued], bucket: str, over: int, step: str, reporter: Reporter) -> list[Offloaded]:
    """Replace each stored result file larger than ``over`` bytes by its object's URI."""
    done: list[Offloaded] = []
    for q in queued:
        try:
            size = os.stat(q.result.path).st_size
        except OSError:
            continue
        if size <= over:
            continue
        name = label(q, step)
        if not q.job.stored:
            reporter.warn(f"result {name!r} ({size} bytes) not offloaded: its object was not stored")
            continue
        target = uri(bucket, q.job.key)
        try:
            replace_file(os.path.join(q.directory, q.result.name), target.encode())
        except OSError as exc:
            reporter.warn(f"result {name!r} not offloaded: cannot rewrite it ({exc.strerror or exc})")
            continue
        done.append(Offloaded(name, target, size))
    if done:
        names = ", ".join(f"{o.name} ({o.size} bytes)" for o in done)
        reporter.info(f"offloaded {len(done)} result(s) to the store, Tekton sees their URI: {names}")
    return done


def sizes(dirs: list[tuple[str, str]]) -> list[tuple[str, int]]:
    """(name, bytes) of every result file the wrapper accepts (``files.skip_reason``) in the
    results directories. A refused entry (a symlink to ``/etc/shadow``, say) is not looked at:
    its size is nobody's business, and its name was already warned about."""
    found: list[tuple[str, int]] = []
    for directory, prefix in dirs:
        try:
            entries = list(os.scandir(directory))
            real_dir = os.path.realpath(directory)
        except OSError:
            continue
        for entry in entries:
            try:
                if not skip_reason(entry, real_dir) and entry.is_file():
                    found.append((prefix + entry.name, entry.stat().st_size))
            except OSError:
                pass
    return found


def warn_if_too_big(files: list[tuple[str, int]], offloading: bool, reporter: Reporter) -> bool:
    """Warn when the results total more than Tekton accepts; True when it did."""
    total = sum(size for _, size in files)
    if total <= TEKTON_LIMIT:
        return False
    biggest = sorted(files, key=lambda f: (-f[1], f[0]))[:BIGGEST]
    names = ", ".join(f"{name} ({size} bytes)" for name, size in biggest)
    fix = "lower --offload-results-over" if offloading else "use --offload-results-over 3KiB"
    reporter.warn(
        f"results total {total} bytes, over Tekton's {TEKTON_LIMIT}-byte limit (the TaskRun will fail); "
        f"biggest: {names}; {fix} to store them and pass their URI"
    )
    return True


def outputs(queued: list[Queued], bucket: str, step: str) -> list[dict[str, Any]]:
    """Tekton artifact outputs for the stored results, by name, in order."""
    by_name: dict[str, dict[str, Any]] = {}
    for q in queued:
        if not q.job.stored or q.job.result is None:
            continue
        value = {"uri": uri(bucket, q.job.key), "digest": {"sha256": q.job.result.sha256}}
        by_name.setdefault(q.result.name, {"name": q.result.name, "values": []})["values"].append(value)
    return list(by_name.values())


def merge(doc: dict[str, Any], ours: list[dict[str, Any]], section: str = "outputs") -> dict[str, Any]:
    """``ours`` added to ``doc[section]``: new names appended, new URIs added to existing names'
    values; nothing of ``doc`` is changed or removed."""
    if not ours:
        return doc
    existing = doc.setdefault(section, [])
    for output in ours:
        same = next((o for o in existing if isinstance(o, dict) and o.get("name") == output["name"]), None)
        if same is None:
            existing.append(output)
            continue
        values = same.setdefault("values", [])
        seen = {v.get("uri") for v in values if isinstance(v, dict)}
        values.extend(v for v in output["values"] if v["uri"] not in seen)
    return doc


def write_provenance(
    path: Path, ours: list[dict[str, Any]], reporter: Reporter, inputs: Sequence[dict[str, Any]] = ()
) -> Optional[int]:
    """Merge ``ours`` (outputs) and ``inputs`` into the JSON at ``path`` (COMMAND's content is
    kept); bytes written or None."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raw = b""
    except OSError as exc:
        reporter.warn(f"--artifacts-file {path}: cannot read it ({exc.strerror}); provenance not written")
        return None
    doc: Any = {}
    if raw.strip():
        try:
            doc = json.loads(raw)
        except ValueError:
            doc = None
        if not isinstance(doc, dict) or not all(
            isinstance(doc.get(s, []), list) for s in ("inputs", "outputs")
        ):
            reporter.warn(
                f"--artifacts-file {path}: COMMAND wrote something that is not Tekton artifacts JSON; "
                "left as it is, provenance not written"
            )
            return None
    if not ours and not inputs and raw.strip():
        return len(raw)
    merged = merge(merge(doc, list(inputs), "inputs"), ours, "outputs")
    merged.setdefault("outputs", [])
    data = json.dumps(merged, separators=(",", ":"), ensure_ascii=False).encode()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        replace_file(path, data)
    except OSError as exc:
        reporter.warn(f"--artifacts-file {path}: cannot write it ({exc.strerror or exc})")
        return None
    return len(data)


def tekton_outputs(
    cfg: Config, queued: list[Queued], reporter: Reporter, inputs: Sequence[dict[str, Any]] = ()
) -> list[Offloaded]:
    """Once the results are stored: offload oversized ones, write the provenance file, warn
    about Tekton's size limit. The results offloaded."""
    step = cfg.layout.step
    offloaded: list[Offloaded] = []
    if cfg.offload_results_over is not None:
        offloaded = offload(queued, cfg.store.bucket, cfg.offload_results_over, step, reporter)
    if cfg.chains_outputs:  # before the sizes: they count toward Tekton's limit
        from .chains import write_chains_results  # loaded only when asked for: a short step's exit waits

        write_chains_results(queued, cfg.store.bucket, cfg.results_dir, inputs, reporter)
    dirs: list[tuple[str, str]] = [(text(cfg, "results_dir"), "")]  # text: no pathlib on the run path
    if cfg.step_results_dir is not None:
        dirs.append((text(cfg, "step_results_dir"), f"{step}/"))
    files = sizes(dirs)
    if cfg.artifacts_file is not None:
        written = write_provenance(
            cfg.artifacts_file, outputs(queued, cfg.store.bucket, step), reporter, inputs=list(inputs)
        )
        if written:
            files.append((cfg.artifacts_file.name, written))
    warn_if_too_big(files, cfg.offload_results_over is not None, reporter)
    return offloaded
