"""What the pod knows about itself: downward-API files, the namespace, and from them the key of
the Tekton Results blob log (``--tekton-results-logs``).

Tekton Results' blob log reader (``LOGS_TYPE=blob``) serves a TaskRun's log from
``LOGS_PATH/<namespace>/<result>/<taskrun-uid>/``. ``<result>`` is the name the Results watcher
gives the TaskRun's Result, first match wins: the ``results.tekton.dev/result`` annotation (a full
name ``<namespace>/results/<name>``: its last part), the ``triggers.tekton.dev/triggers-eventid``
label, the ``tekton.dev/pipelineRunUID`` label, the ``tekton.dev/taskRunUID`` label. Tekton copies
a TaskRun's labels and annotations to its pod, where the downward API shows them.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any, Optional

from ..formats.layout import results_log_key
from .files import read_small_file
from .store import ConfigError

DOWNWARD_LIMIT = 1024 * 1024  # a downward-API labels/annotations file (Kubernetes caps them far below)

DEFAULT_POD_LABELS = "/etc/podinfo/labels"
DEFAULT_POD_ANNOTATIONS = "/etc/podinfo/annotations"
SERVICE_ACCOUNT_NAMESPACE = "/var/run/secrets/kubernetes.io/serviceaccount/namespace"
RESULT_ANNOTATION = "results.tekton.dev/result"
RESULT_LABELS = ("triggers.tekton.dev/triggers-eventid", "tekton.dev/pipelineRunUID", "tekton.dev/taskRunUID")
TASKRUN_UID_LABEL = "tekton.dev/taskRunUID"


def read_downward(path: Path, option: str) -> dict[str, str]:
    """Parse a downward-API labels or annotations file (lines ``key="value"``, the value quoted
    as a Go string). A missing file: nothing."""
    try:
        text = read_small_file(path, option, DOWNWARD_LIMIT).decode("utf-8", "replace")
    except FileNotFoundError:
        return {}
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    found: dict[str, str] = {}
    for line in text.splitlines():
        key, sep, raw = line.partition("=")
        if not sep:
            continue
        raw = raw.strip()
        try:
            value = _unquoted(raw)
        except ValueError:
            value = raw.strip('"')
        found[key.strip()] = str(value)
    return found


def namespace(given: Optional[str], service_account: Path = Path(SERVICE_ACCOUNT_NAMESPACE)) -> Optional[str]:
    """``--namespace``/``POD_NAMESPACE``, else the service account's namespace file, else None."""
    if given:
        return given.strip()
    try:
        return read_small_file(service_account, "namespace", 1024).decode("utf-8", "replace").strip() or None
    except (OSError, ValueError):
        return None


def results_result(annotations: Mapping[str, str], labels: Mapping[str, str]) -> Optional[str]:
    """The Results result name of this TaskRun (module docstring), or None."""
    full = annotations.get(RESULT_ANNOTATION, "").strip()
    if full:
        return full.rpartition("/")[2] or None
    for label in RESULT_LABELS:
        value = labels.get(label, "").strip()
        if value:
            return value
    return None


def tekton_results_log_key(values: Mapping[str, Any], step: str) -> Optional[str]:
    """``--tekton-results-logs``: the key of the step's plain-text log, or None when off.
    A missing identifier: ConfigError naming every one missing and how to give it."""
    logs_path = values.get("tekton_results_logs")
    if not logs_path:
        return None
    labels_file = Path(values.get("pod_labels") or DEFAULT_POD_LABELS)
    annotations_file = Path(values.get("pod_annotations") or DEFAULT_POD_ANNOTATIONS)
    labels = read_downward(labels_file, "--pod-labels")
    annotations = read_downward(annotations_file, "--pod-annotations")
    ns = namespace(values.get("namespace"))
    result = values.get("tekton_results_result") or results_result(annotations, labels)
    record = values.get("taskrun_uid") or labels.get(TASKRUN_UID_LABEL, "").strip() or None
    missing = []
    if not ns:
        missing.append(
            f"the namespace (set --namespace or $POD_NAMESPACE, e.g. from fieldRef metadata.namespace; "
            f"{SERVICE_ACCOUNT_NAMESPACE} is absent)"
        )
    if not result:
        missing.append(
            f"the Results result (no {RESULT_ANNOTATION} annotation in {annotations_file}, no "
            f"{', '.join(RESULT_LABELS)} label in {labels_file}; set --tekton-results-result)"
        )
    if not record:
        missing.append(f"the TaskRun UID (no {TASKRUN_UID_LABEL} label in {labels_file}; set --taskrun-uid)")
    if missing:
        raise ConfigError(f"--tekton-results-logs: missing {'; '.join(missing)}; COMMAND not started")
    assert ns and result and record
    try:
        return results_log_key(str(logs_path), ns, str(result), str(record), step)
    except ValueError as exc:
        raise ConfigError(f"--tekton-results-logs: {exc}; use plain names") from None


def _unquoted(raw: str) -> str:
    """A downward-API value: ``"text"`` with JSON escapes (json is loaded only for escapes)."""
    if not raw.startswith('"'):
        return raw
    if "\\" not in raw and raw.endswith('"') and len(raw) >= 2:
        return raw[1:-1]
    import json

    return str(json.loads(raw))
