"""What the pod knows about itself: downward-API files, the namespace, and from them the key of
the Tekton Results blob log (``--tekton-results-logs``).

Tekton Results' blob log reader (``LOGS_TYPE=blob``) serves a TaskRun's log from
``LOGS_PATH/<namespace>/<result>/<taskrun-uid>/``. ``<result>`` is the name the Results watcher
gives the TaskRun's Result, first match wins: the ``results.tekton.dev/result`` annotation (a full
name ``<namespace>/results/<name>``: its last part), the ``triggers.tekton.dev/triggers-eventid``
label, the ``tekton.dev/pipelineRunUID`` label, the ``tekton.dev/taskRunUID`` label. Tekton copies
a TaskRun's labels and annotations to its pod, where the downward API shows them.

The attempt (``--attempt auto``): Tekton names a TaskRun's pod ``<taskrun>-pod`` and the pod of
its retry N ``<taskrun>-pod-retryN`` (``pkg/pod/pod.go``: the suffix counts the TaskRun's
``retriesStatus``; a long TaskRun name is shortened before the suffix, which stays whole). The
pod's hostname is its name, so ``$HOSTNAME`` ending in ``-retryN`` is attempt N+1. A hostname
that is not a Tekton pod name (``hostNetwork: true`` gives the node's) says nothing: inside a
Tekton step the wrapper then asks the store for the step's earlier attempts (``wrapper/attempt.py``).
"""

from __future__ import annotations

import os

from ..formats.layout import MAX_ATTEMPT, results_log_key
from ..records import Record, path_text
from .store import ConfigError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Mapping
    from typing import Any, Optional

    from _typeshed import StrPath


DOWNWARD_LIMIT = 1024 * 1024  # a downward-API labels/annotations file (Kubernetes caps them far below)

DEFAULT_POD_LABELS = "/etc/podinfo/labels"
DEFAULT_POD_ANNOTATIONS = "/etc/podinfo/annotations"
SERVICE_ACCOUNT_NAMESPACE = "/var/run/secrets/kubernetes.io/serviceaccount/namespace"
RESULT_ANNOTATION = "results.tekton.dev/result"
RESULT_LABELS = ("triggers.tekton.dev/triggers-eventid", "tekton.dev/pipelineRunUID", "tekton.dev/taskRunUID")
TASKRUN_UID_LABEL = "tekton.dev/taskRunUID"
_RETRY = "-retry"  # <taskrun>-pod-retryN
_FIRST_POD = "-pod"  # <taskrun>-pod


class Attempt(Record):
    """Which attempt of the step this is, and how that was learnt."""

    number: int
    source: str  # "--attempt", "pod name", "default"
    ask_store: bool = False  # the pod name said nothing: look for earlier attempts in the store


def attempt_of(raw: Optional[str], environ: Mapping[str, str], in_tekton: bool) -> Attempt:
    """``--attempt``: a number, or ``auto`` (the module docstring). ConfigError on anything else."""
    text = str(raw if raw is not None else "auto").strip().lower()
    if text != "auto":
        if not text.isdigit() or not 1 <= int(text) <= MAX_ATTEMPT:
            raise ConfigError(f"--attempt: {raw!r} is not auto or a whole number from 1 to {MAX_ATTEMPT}")
        return Attempt(int(text), "--attempt")
    host = environ.get("HOSTNAME") or _hostname()
    retry = _retry_of(host)
    if retry is not None and retry < MAX_ATTEMPT:
        return Attempt(retry + 1, "pod name")
    if host.endswith(_FIRST_POD):
        return Attempt(1, "pod name")
    return Attempt(1, "default", ask_store=in_tekton)


def _retry_of(host: str) -> Optional[int]:
    """N of a host name ending in ``-retryN`` (re's ``-retry([0-9]{1,5})$``, without re)."""
    _, sep, digits = host.removesuffix("\n").rpartition(_RETRY)
    if sep and 1 <= len(digits) <= 5 and all("0" <= c <= "9" for c in digits):
        return int(digits)
    return None


def _hostname() -> str:
    """The kernel's host name (what gethostname() returns; without importing socket on start-up)."""
    return os.uname().nodename


def read_downward(path: StrPath, option: str) -> dict[str, str]:
    """Parse a downward-API labels or annotations file (lines ``key="value"``, the value quoted
    as a Go string). A missing file: nothing."""
    from .files import read_small_file  # only when the labels are read

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


def namespace(given: Optional[str], service_account: StrPath = SERVICE_ACCOUNT_NAMESPACE) -> Optional[str]:
    """``--namespace``/``POD_NAMESPACE``, else the service account's namespace file, else None."""
    if given:
        return given.strip()
    try:
        from .files import read_small_file

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
    labels_file = path_text(values.get("pod_labels") or DEFAULT_POD_LABELS)
    annotations_file = path_text(values.get("pod_annotations") or DEFAULT_POD_ANNOTATIONS)
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
