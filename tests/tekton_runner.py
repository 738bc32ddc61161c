"""Run the Tekton YAML of ``tekton/`` the way Tekton would, on this machine, without Kubernetes.

Used by ``tests/test_tekton_run.py`` (execution) and ``tests/test_tekton_schema.py`` (variables).

For each step of a Task, in Tekton's order:

1. a step with ``ref:`` is replaced by its StepAction, whose params are filled from the step's
   ``params`` (after the Task's own params are substituted into those) and the StepAction's
   defaults;
2. ``$(params.*)``, ``$(results.<name>.path)``, ``$(context.*)`` and ``$(step.*)`` are
   substituted; a reference Tekton would not resolve is an error here (Tekton would leave it in
   the text, which is never what the author meant);
3. the environment is built as the kubelet does: ``value`` with ``$(VAR)`` expansion of earlier
   variables, ``valueFrom.fieldRef`` from a fake pod (its labels map), ``secretKeyRef`` from a fake
   secrets map (a missing Secret or key is an error, as it is for the kubelet); then ``$(VAR)`` in
   ``command``/``args`` is expanded;
4. container paths are mapped into a temporary pod root: ``/tekton/results``,
   ``/tekton/scripts``, every ``volumeMount`` (downward-API volumes are written as the kubelet
   writes them), and the image's wrapper ``/opt/tekton-uploader/bin/tekton-uploader`` maps to the
   wrapper under test. The wrapper is told where the container's ``/tekton/results``,
   ``/etc/podinfo/labels`` and ``/etc/podinfo/annotations`` are through
   ``OBJECTSTORE_RESULTS_DIR``/``OBJECTSTORE_POD_LABELS``/``OBJECTSTORE_POD_ANNOTATIONS``
   (pointing at the mapped paths; the podinfo files exist only if the YAML mounts them): they
   stand in for the container's filesystem. Every other setting comes from the YAML. The pod's
   labels include ``tekton.dev/taskRunUID`` (and in a PipelineRun ``tekton.dev/pipelineRunUID``),
   as Tekton sets them; its annotations are the caller's;
5. a ``script:`` is written to a file under ``/tekton/scripts`` and executed through its shebang
   line by the kernel (without one, Tekton's ``#!/bin/sh`` + ``set -e`` preamble is added); a
   step with neither ``command`` nor ``script`` runs the image's ENTRYPOINT, which must be known
   (Tekton looks it up in the registry; here the caller supplies it, e.g. from the Containerfile);
6. the step runs with a clean environment (no variable of this machine but PATH, HOME, LANG and
   TMPDIR; ``HOSTNAME`` is the pod's name, as the container runtime sets it), its own session, and its ``timeout`` (capped for tests); on timeout it is SIGKILLed,
   as Tekton does, and so is every process it started (the container would end with it); a
   failing step stops the Task unless ``onError: continue``.

Pipelines: the PipelineRun's params (and overrides) fill the Pipeline's, Tasks run in dependency
order (``runAfter`` and result references), ``$(tasks.<t>.results.<r>)`` and
``$(context.pipelineRun.*)`` are substituted, and each TaskRun's pod gets the labels Tekton sets
(``tekton.dev/pipelineRun``, ``tekton.dev/pipelineTask``, ``tekton.dev/taskRun``, ...).

A TaskRun's retry N is ``run_task(..., retry=N)``: its pod is named ``<taskrun>-pod-retryN`` as
Tekton names it, in a pod root of its own, and ``$(context.task.retry-count)`` is N.

Not emulated: containers and images (commands run on this machine with its tools), workspaces,
sidecars, stepTemplate, matrix, when expressions, finally, a pipeline task's ``retries`` (run the
retry with ``retry=N``). Using any of them is an error.
"""

from __future__ import annotations

import contextlib
import json
import re
import secrets as _random
import shutil
import signal
import subprocess
import uuid
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Union

import psutil
import yaml

Doc = dict[str, Any]
ParamValue = Union[str, list[str]]

IMAGE_WRAPPER = "/opt/tekton-uploader/bin/tekton-uploader"
RESULTS_DIR = "/tekton/results"
SCRIPTS_DIR = "/tekton/scripts"
STEPS_DIR = "/tekton/steps"
# Tekton's alpha artifacts feature (enable-artifacts): a step's provenance file.
ARTIFACTS_VARIABLE = "step.artifacts.path"


def artifacts_path(step: str) -> str:
    return f"{STEPS_DIR}/step-{step}/artifacts/provenance.json"
POD_LABELS = "/etc/podinfo/labels"
POD_ANNOTATIONS = "/etc/podinfo/annotations"
DEFAULT_SCRIPT_PREAMBLE = "#!/bin/sh\nset -e\n"


class RunnerError(Exception):
    """The YAML asks for something Tekton or Kubernetes would reject, or the runner cannot do."""


# --------------------------------------------------------------------------------------------
# Documents


@dataclass
class Catalog:
    """Every document of a directory of Tekton YAML, by kind and name."""

    documents: list[tuple[Path, Doc]] = field(default_factory=list)
    tasks: dict[str, Doc] = field(default_factory=dict)
    stepactions: dict[str, Doc] = field(default_factory=dict)
    pipelines: dict[str, Doc] = field(default_factory=dict)
    pipelineruns: list[Doc] = field(default_factory=list)
    secrets: dict[str, Doc] = field(default_factory=dict)

    @classmethod
    def load(cls, root: Path) -> Catalog:
        catalog = cls()
        for path, doc in load_documents(root):
            catalog.add(path, doc)
        return catalog

    def add(self, path: Path, doc: Doc) -> None:
        self.documents.append((path, doc))
        kind = doc.get("kind")
        name = doc.get("metadata", {}).get("name", "")
        by_kind: dict[str, dict[str, Doc]] = {
            "Task": self.tasks,
            "StepAction": self.stepactions,
            "Pipeline": self.pipelines,
            "Secret": self.secrets,
        }
        if kind == "PipelineRun":
            self.pipelineruns.append(doc)
        elif kind in by_kind:
            if name in by_kind[kind]:
                raise RunnerError(f"{path}: a second {kind} named {name!r}")
            by_kind[kind][name] = doc
        else:
            raise RunnerError(f"{path}: unexpected kind {kind!r}")


def yaml_files(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.suffix in (".yaml", ".yml") and p.is_file())


def load_documents(root: Path) -> list[tuple[Path, Doc]]:
    docs: list[tuple[Path, Doc]] = []
    for path in yaml_files(root):
        with path.open(encoding="utf-8") as f:
            for doc in yaml.safe_load_all(f):
                if doc is None:
                    continue
                if not isinstance(doc, dict):
                    raise RunnerError(f"{path}: a document that is not a mapping")
                docs.append((path, doc))
    return docs


# --------------------------------------------------------------------------------------------
# Variables

TEKTON_ROOTS = frozenset(
    {
        "params",
        "results",
        "context",
        "step",
        "steps",
        "tasks",
        "workspaces",
        "credentials",
        "inputs",
        "outputs",
        "resources",
    }
)
_REF_RE = re.compile(r"\$\(([^()]*)\)")
_ENV_NAME_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_NAME = r"[A-Za-z_][A-Za-z0-9_-]*"
_PARAM_RE = re.compile(
    rf"params(?:\.(?P<a>{_NAME})|\[\"(?P<b>[^\"]+)\"\]|\['(?P<c>[^']+)'\])(?P<star>\[\*\])?"
)
_RESULT_RE = re.compile(rf"results(?:\.(?P<a>{_NAME})|\[\"(?P<b>[^\"]+)\"\]|\['(?P<c>[^']+)'\])\.path")
TASK_CONTEXT = frozenset(
    {
        "context.taskRun.name",
        "context.taskRun.namespace",
        "context.taskRun.uid",
        "context.task.name",
        "context.task.retry-count",
    }
)
PIPELINE_CONTEXT = frozenset(
    {
        "context.pipelineRun.name",
        "context.pipelineRun.namespace",
        "context.pipelineRun.uid",
        "context.pipeline.name",
        "context.pipelineTask.retries",
    }
)


def references(text: str) -> list[str]:
    """Contents of every ``$(...)`` in ``text`` (innermost parentheses; ``$$(`` is an escape)."""
    return [m.group(1) for m in _REF_RE.finditer(text) if not _escaped(text, m.start())]


def _escaped(text: str, start: int) -> bool:
    return start > 0 and text[start - 1] == "$"


def is_tekton_reference(content: str) -> bool:
    root = re.split(r"[.\[]", content, maxsplit=1)[0]
    return root in TEKTON_ROOTS and content != root


def canonical(content: str) -> str:
    """``params["x"]``/``params['x']`` -> ``params.x``; the same for ``results``."""
    m = _PARAM_RE.fullmatch(content)
    if m:
        name = m.group("a") or m.group("b") or m.group("c")
        return f"params.{name}" + ("[*]" if m.group("star") else "")
    m = _RESULT_RE.fullmatch(content)
    if m:
        return f"results.{m.group('a') or m.group('b') or m.group('c')}.path"
    return content


def substitute(text: str, values: Mapping[str, str], roots: frozenset[str], where: str) -> str:
    """Replace Tekton references whose root is in ``roots``; any such reference must resolve."""

    def repl(m: re.Match[str]) -> str:
        content = m.group(1)
        if _escaped(text, m.start()) or not is_tekton_reference(content):
            return m.group(0)
        key = canonical(content)
        if key.split(".", 1)[0].split("[", 1)[0] not in roots:
            return m.group(0)
        if key not in values:
            raise RunnerError(f"{where}: $({content}) is not a variable Tekton provides here")
        return values[key]

    return _REF_RE.sub(repl, text)


def substitute_list(
    items: Sequence[str],
    values: Mapping[str, str],
    arrays: Mapping[str, list[str]],
    roots: frozenset[str],
    where: str,
) -> list[str]:
    """Like :func:`substitute` for command/args: an item that is exactly ``$(params.x[*])`` of
    an array param expands into its elements, as Tekton does."""
    out: list[str] = []
    for item in items:
        m = _REF_RE.fullmatch(item)
        if m and is_tekton_reference(m.group(1)):
            key = canonical(m.group(1))
            if key in arrays:
                out.extend(arrays[key])
                continue
        out.append(substitute(item, values, roots, where))
    return out


def expand_k8s(text: str, env: Mapping[str, str]) -> str:
    """Kubernetes' ``$(VAR)`` expansion in command, args and env values (``$$`` -> ``$``;
    unknown references stay as they are)."""
    out: list[str] = []
    i = 0
    while i < len(text):
        if text.startswith("$$", i):
            out.append("$")
            i += 2
        elif text.startswith("$(", i):
            end = text.find(")", i + 2)
            name = text[i + 2 : end] if end != -1 else ""
            if end != -1 and name in env:
                out.append(env[name])
                i = end + 1
            else:
                out.append("$(")
                i += 2
        else:
            out.append(text[i])
            i += 1
    return "".join(out)


def format_labels(labels: Mapping[str, str]) -> str:
    """A downward-API labels file, as the kubelet writes it (sorted ``key="value"`` lines)."""
    return "\n".join(f"{k}={json.dumps(v, ensure_ascii=False)}" for k, v in sorted(labels.items()))


# --------------------------------------------------------------------------------------------
# Static check of every variable reference (tests/test_tekton_schema.py)


def _strings(node: Any, path: str) -> Iterator[tuple[str, str]]:
    """Every string in ``node`` with its path, except ``description`` texts."""
    if isinstance(node, str):
        yield path, node
    elif isinstance(node, dict):
        for k, v in node.items():
            if k != "description":
                yield from _strings(v, f"{path}.{k}")
    elif isinstance(node, list):
        for i, v in enumerate(node):
            yield from _strings(v, f"{path}[{i}]")


def _param_kinds(specs: Sequence[Doc]) -> dict[str, str]:
    return {p["name"]: p.get("type", "string") for p in specs}


def _check_param_ref(key: str, kinds: Mapping[str, str]) -> str | None:
    m = _PARAM_RE.fullmatch(key)
    if not m:
        return "is not a valid param reference"
    name = m.group("a")
    if name not in kinds:
        return f"names param {name!r}, which is not declared"
    if kinds[name] == "array" and not m.group("star"):
        return f"uses array param {name!r} without [*]"
    if kinds[name] != "array" and m.group("star"):
        return f"uses [*] on {kinds[name]} param {name!r}"
    return None


def _check_text(
    text: str,
    where: str,
    known: set[str],
    kinds: Mapping[str, str],
    env_names: set[str] | None,
) -> list[str]:
    """``env_names``: the names ``$(VAR)`` may expand to here (None: not a k8s-expanded field,
    so a bare ``$(word)`` is left to the shell, e.g. command substitution in a script)."""
    errors: list[str] = []
    for content in references(text):
        if is_tekton_reference(content):
            key = canonical(content)
            if key.startswith("params"):
                problem = _check_param_ref(key, kinds)
                if problem:
                    errors.append(f"{where}: $({content}) {problem}")
            elif key not in known:
                errors.append(
                    f"{where}: $({content}) does not resolve to anything declared "
                    "or to a variable Tekton provides here"
                )
        elif env_names is not None and _ENV_NAME_RE.fullmatch(content) and content not in env_names:
            errors.append(f"{where}: $({content}) is not an environment variable of the step")
    return errors


def _check_container(spec: Doc, where: str, known: set[str], kinds: Mapping[str, str]) -> list[str]:
    """A step (or StepAction spec): k8s expansion in command/args/env values, Tekton everywhere."""
    errors: list[str] = []
    defined: list[str] = []
    for i, env in enumerate(spec.get("env", [])):
        for path, text in _strings(env, f"{where}.env[{i}]"):
            scope = set(defined) if path.endswith(".value") else None
            errors += _check_text(text, path, known, kinds, scope)
        defined.append(env["name"])
    for key in ("command", "args"):
        for i, text in enumerate(spec.get(key, [])):
            errors += _check_text(text, f"{where}.{key}[{i}]", known, kinds, set(defined))
    for key, value in spec.items():
        if key not in ("env", "command", "args", "params", "ref"):
            for path, text in _strings(value, f"{where}.{key}"):
                errors += _check_text(text, path, known, kinds, None)
    return errors


def _check_task(doc: Doc, catalog: Catalog, where: str) -> list[str]:
    spec = doc["spec"]
    kinds = _param_kinds(spec.get("params", []))
    known = set(TASK_CONTEXT) | {"credentials.path"}
    known |= {f"results.{r['name']}.path" for r in spec.get("results", [])}
    known |= {
        f"workspaces.{w['name']}.{attr}"
        for w in spec.get("workspaces", [])
        for attr in ("path", "bound", "claim", "volume")
    }
    errors: list[str] = []
    for i, step in enumerate(spec.get("steps", [])):
        at = f"{where}.spec.steps[{i}]"
        step_known = set(known)
        step_known |= {f"steps.step-{s['name']}.exitCode.path" for s in spec["steps"] if "name" in s}
        if "ref" in step:
            errors += _check_step_ref(step, catalog, at, step_known, kinds)
        else:
            step_known |= {f"step.results.{r['name']}.path" for r in step.get("results", [])}
            step_known.add(ARTIFACTS_VARIABLE)
            errors += _check_container(step, at, step_known, kinds)
    for key in ("volumes", "results", "sidecars", "stepTemplate"):
        for path, text in _strings(spec.get(key, []), f"{where}.spec.{key}"):
            errors += _check_text(text, path, known, kinds, None)
    for i, p in enumerate(spec.get("params", [])):
        for path, text in _strings(p.get("default", ""), f"{where}.spec.params[{i}].default"):
            errors += [
                f"{path}: a Task param default cannot reference $({c})"
                for c in references(text)
                if is_tekton_reference(c)
            ]
    return errors


def _check_step_ref(
    step: Doc, catalog: Catalog, where: str, known: set[str], kinds: Mapping[str, str]
) -> list[str]:
    name = step["ref"].get("name")
    action = catalog.stepactions.get(name)
    if action is None:
        return [f"{where}.ref: no StepAction named {name!r} in the catalog"]
    errors: list[str] = []
    declared = {p["name"]: p for p in action["spec"].get("params", [])}
    given = {p["name"]: p.get("value") for p in step.get("params", [])}
    for pname, value in given.items():
        if pname not in declared:
            errors.append(f"{where}.params: StepAction {name!r} has no param {pname!r}")
        elif (declared[pname].get("type", "string") == "array") != isinstance(value, list):
            errors.append(f"{where}.params: {pname!r} has the wrong type for {name!r}")
        for path, text in _strings(value, f"{where}.params.{pname}"):
            errors += _check_text(text, path, known, kinds, None)
    missing = [p for p, d in declared.items() if "default" not in d and p not in given]
    errors += [f"{where}.params: required param {p!r} of StepAction {name!r} not given" for p in missing]
    return errors


def _check_stepaction(doc: Doc, where: str) -> list[str]:
    spec = doc["spec"]
    kinds = _param_kinds(spec.get("params", []))
    known = {f"step.results.{r['name']}.path" for r in spec.get("results", [])} | {ARTIFACTS_VARIABLE}
    errors = _check_container(
        {k: v for k, v in spec.items() if k not in ("params", "results")},
        f"{where}.spec",
        known,
        kinds,
    )
    if any(c.startswith("params") for c in references(spec.get("script", ""))):
        errors.append(f"{where}.spec.script: Tekton rejects param substitution in a StepAction's script")
    return errors


def _check_pipeline(doc: Doc, catalog: Catalog, where: str) -> list[str]:
    spec = doc["spec"]
    kinds = _param_kinds(spec.get("params", []))
    errors: list[str] = []
    task_results: dict[str, set[str]] = {}
    for pt in spec.get("tasks", []):
        task = catalog.tasks.get(pt.get("taskRef", {}).get("name", ""))
        if task is None:
            errors.append(
                f"{where}: pipeline task {pt['name']!r} references no Task in the "
                "catalog (only taskRef by name is supported)"
            )
            continue
        task_results[pt["name"]] = {r["name"] for r in task["spec"].get("results", [])}
    known = set(PIPELINE_CONTEXT) | {f"tasks.{t}.results.{r}" for t, rs in task_results.items() for r in rs}
    for i, pt in enumerate(spec.get("tasks", [])):
        at = f"{where}.spec.tasks[{i}]"
        for path, text in _strings(pt, at):
            errors += _check_text(text, path, known, kinds, None)
        task = catalog.tasks.get(pt.get("taskRef", {}).get("name", ""))
        if task is not None:
            errors += _check_call(
                pt.get("params", []),
                task["spec"].get("params", []),
                f"{at}.params",
                f"Task {task['metadata']['name']!r}",
            )
    for path, text in _strings(spec.get("results", []), f"{where}.spec.results"):
        errors += _check_text(text, path, known, kinds, None)
    return errors


def _check_call(given: Sequence[Doc], declared: Sequence[Doc], where: str, what: str) -> list[str]:
    names = {p["name"] for p in declared}
    errors = [f"{where}: {what} has no param {p['name']!r}" for p in given if p["name"] not in names]
    provided = {p["name"] for p in given}
    errors += [
        f"{where}: required param {p['name']!r} of {what} not given"
        for p in declared
        if "default" not in p and p["name"] not in provided
    ]
    return errors


def _check_pipelinerun(doc: Doc, catalog: Catalog, where: str) -> list[str]:
    errors = [
        f"{path}: a PipelineRun cannot hold variables: $({c})"
        for path, text in _strings(doc, where)
        for c in references(text)
    ]
    name = doc["spec"].get("pipelineRef", {}).get("name", "")
    pipeline = catalog.pipelines.get(name)
    if pipeline is None:
        return [*errors, f"{where}: no Pipeline named {name!r} in the catalog"]
    return errors + _check_call(
        doc["spec"].get("params", []),
        pipeline["spec"].get("params", []),
        f"{where}.spec.params",
        f"Pipeline {name!r}",
    )


def check_variables(doc: Doc, catalog: Catalog, where: str = "") -> list[str]:
    """Every problem with the variable references of ``doc`` (an empty list when all resolve)."""
    where = where or f"{doc.get('kind')}/{doc.get('metadata', {}).get('name', '?')}"
    kind = doc.get("kind")
    if kind == "Task":
        return _check_task(doc, catalog, where)
    if kind == "StepAction":
        return _check_stepaction(doc, where)
    if kind == "Pipeline":
        return _check_pipeline(doc, catalog, where)
    if kind == "PipelineRun":
        return _check_pipelinerun(doc, catalog, where)
    return [f"{path}: $({c}) in a {kind}" for path, text in _strings(doc, where) for c in references(text)]


# --------------------------------------------------------------------------------------------
# Execution


@dataclass
class StepRun:
    name: str
    argv: list[str]
    returncode: int
    stdout: bytes
    stderr: bytes
    timed_out: bool = False


@dataclass
class TaskRunResult:
    name: str
    task: str
    root: Path
    steps: list[StepRun]
    results: dict[str, str]
    uid: str = ""  # the TaskRun's UID (context.taskRun.uid, the tekton.dev/taskRunUID label)

    @property
    def succeeded(self) -> bool:
        return all(s.returncode == 0 for s in self.steps)

    def step(self, name: str) -> StepRun:
        return next(s for s in self.steps if s.name == name)


@dataclass
class PipelineRunResult:
    name: str
    taskruns: dict[str, TaskRunResult]
    order: list[str]
    results: dict[str, str]

    @property
    def succeeded(self) -> bool:
        return all(tr.succeeded for tr in self.taskruns.values())


def parse_duration(text: str) -> float:
    """A Kubernetes/Go duration (``1h30m``, ``28m``, ``90s``) in seconds."""
    units = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 0.001}
    parts = re.findall(r"(\d+(?:\.\d+)?)(ms|h|m|s)", text)
    if not parts or "".join(n + u for n, u in parts) != text:
        raise RunnerError(f"bad duration {text!r}")
    return sum(float(n) * units[u] for n, u in parts)


def containerfile_entrypoint(containerfile: Path) -> list[str]:
    """The exec-form ENTRYPOINT of the final stage of a Containerfile."""
    entrypoint: list[str] | None = None
    for line in containerfile.read_text(encoding="utf-8").splitlines():
        if line.startswith("FROM "):
            entrypoint = None
        elif line.startswith("ENTRYPOINT "):
            value = json.loads(line[len("ENTRYPOINT ") :])
            if not (isinstance(value, list) and all(isinstance(v, str) for v in value)):
                raise RunnerError(f"{containerfile}: ENTRYPOINT is not in exec form")
            entrypoint = value
    if entrypoint is None:
        raise RunnerError(f"{containerfile}: the final stage has no ENTRYPOINT")
    return entrypoint


def _param_values(specs: Sequence[Doc], given: Mapping[str, ParamValue], what: str) -> dict[str, ParamValue]:
    declared = {p["name"]: p for p in specs}
    unknown = sorted(set(given) - set(declared))
    if unknown:
        raise RunnerError(f"{what}: params not declared: {', '.join(unknown)}")
    values: dict[str, ParamValue] = {}
    for name, p in declared.items():
        value = given[name] if name in given else p.get("default")
        if value is None:
            raise RunnerError(f"{what}: param {name!r} has no value and no default")
        if (p.get("type", "string") == "array") != isinstance(value, list):
            raise RunnerError(f"{what}: param {name!r} has the wrong type")
        values[name] = value
    return values


def _split(values: Mapping[str, ParamValue]) -> tuple[dict[str, str], dict[str, list[str]]]:
    strings = {f"params.{k}": v for k, v in values.items() if isinstance(v, str)}
    arrays = {f"params.{k}[*]": v for k, v in values.items() if isinstance(v, list)}
    return strings, arrays


def _sub_value(
    value: ParamValue,
    strings: Mapping[str, str],
    arrays: Mapping[str, list[str]],
    roots: frozenset[str],
    where: str,
) -> ParamValue:
    if isinstance(value, list):
        return substitute_list(value, strings, arrays, roots, where)
    return substitute(value, strings, roots, where)


_UNSUPPORTED_TASK_FIELDS = ("workspaces", "sidecars", "stepTemplate")
_UNSUPPORTED_PIPELINE_TASK_FIELDS = ("when", "matrix", "retries", "workspaces", "taskSpec")


@dataclass
class Runner:
    """Runs Tasks and PipelineRuns from ``catalog``; see the module docstring."""

    catalog: Catalog
    workdir: Path
    wrapper: Path
    secrets: Mapping[str, Mapping[str, str]] = field(default_factory=dict)
    image_entrypoints: Mapping[str, list[str]] = field(default_factory=dict)
    namespace: str = "default"
    max_step_seconds: float = 120.0

    # ---- Tasks

    def run_task(
        self,
        task: str | Doc,
        params: Mapping[str, ParamValue] | None = None,
        *,
        taskrun: str,
        labels: Mapping[str, str] | None = None,
        annotations: Mapping[str, str] | None = None,
        retry: int = 0,
    ) -> TaskRunResult:
        doc = self.catalog.tasks[task] if isinstance(task, str) else task
        name = doc["metadata"]["name"]
        spec = doc["spec"]
        for key in _UNSUPPORTED_TASK_FIELDS:
            if key in spec:
                raise RunnerError(f"Task {name}: {key} is not emulated by the runner")
        values = _param_values(spec.get("params", []), params or {}, f"Task {name}")
        pod_labels = (
            dict(labels)
            if labels is not None
            else {
                "tekton.dev/taskRun": taskrun,
                "tekton.dev/task": name,
            }
        )
        uid = str(uuid.uuid4())
        pod_labels.setdefault("tekton.dev/taskRunUID", uid)  # as Tekton labels every TaskRun's pod
        pod = _Pod(self, taskrun, pod_labels, spec, annotations or {}, retry)
        strings, arrays = _split(values)
        strings |= {
            f"results.{r['name']}.path": f"{RESULTS_DIR}/{r['name']}" for r in spec.get("results", [])
        }
        strings |= {
            "context.taskRun.name": taskrun,
            "context.taskRun.namespace": self.namespace,
            "context.taskRun.uid": pod_labels["tekton.dev/taskRunUID"],
            "context.task.name": name,
            "context.task.retry-count": str(retry),
        }
        runs: list[StepRun] = []
        for index, raw in enumerate(spec["steps"]):
            step = self._resolve_ref(raw, strings, arrays, f"Task {name} step {index}")
            run = pod.run_step(index, step, strings, arrays)
            runs.append(run)
            if run.returncode != 0 and step.get("onError") != "continue":
                break
        results = {}
        for r in spec.get("results", []):
            path = pod.root / RESULTS_DIR.lstrip("/") / r["name"]
            if path.is_file():
                results[r["name"]] = path.read_text(encoding="utf-8")
        return TaskRunResult(taskrun, name, pod.root, runs, results, pod_labels["tekton.dev/taskRunUID"])

    def _resolve_ref(
        self, step: Doc, strings: Mapping[str, str], arrays: Mapping[str, list[str]], where: str
    ) -> Doc:
        if "ref" not in step:
            if "params" in step:
                raise RunnerError(f"{where}: params cannot be used without ref")
            return step
        for key in ("image", "command", "args", "script", "env", "volumeMounts", "results"):
            if key in step:
                raise RunnerError(f"{where}: {key} cannot be used with ref")
        action_name = step["ref"]["name"]
        action = self.catalog.stepactions.get(action_name)
        if action is None:
            raise RunnerError(f"{where}: no StepAction named {action_name!r}")
        only_params = frozenset({"params"})
        given = {
            p["name"]: _sub_value(p["value"], strings, arrays, only_params, where)
            for p in step.get("params", [])
        }
        aspec = action["spec"]
        a_strings, a_arrays = _split(
            _param_values(aspec.get("params", []), given, f"StepAction {action_name}")
        )
        resolved = {k: v for k, v in step.items() if k not in ("ref", "params")}
        for key, value in aspec.items():
            if key in ("params", "results", "description"):
                continue
            resolved[key] = _substitute_tree(
                key, value, a_strings, a_arrays, only_params, f"StepAction {action_name}"
            )
        return resolved

    # ---- Pipelines

    def run_pipelinerun(
        self,
        pipelinerun: Doc,
        *,
        overrides: Mapping[str, ParamValue] | None = None,
        name: str | None = None,
    ) -> PipelineRunResult:
        meta = pipelinerun["metadata"]
        run_name = name or meta.get("name") or meta["generateName"] + _random_suffix()
        pipeline_name = pipelinerun["spec"]["pipelineRef"]["name"]
        pipeline = self.catalog.pipelines[pipeline_name]
        given: dict[str, ParamValue] = {p["name"]: p["value"] for p in pipelinerun["spec"].get("params", [])}
        given |= dict(overrides or {})
        spec = pipeline["spec"]
        run_uid = str(uuid.uuid4())
        values = _param_values(spec.get("params", []), given, f"Pipeline {pipeline_name}")
        strings, arrays = _split(values)
        strings |= {
            "context.pipelineRun.name": run_name,
            "context.pipelineRun.namespace": self.namespace,
            "context.pipelineRun.uid": run_uid,
            "context.pipeline.name": pipeline_name,
            "context.pipelineTask.retries": "0",
        }
        roots = frozenset({"params", "context", "tasks"})
        taskruns: dict[str, TaskRunResult] = {}
        order: list[str] = []
        for pt in _pipeline_order(spec.get("tasks", [])):
            for key in _UNSUPPORTED_PIPELINE_TASK_FIELDS:
                if key in pt:
                    raise RunnerError(f"pipeline task {pt['name']}: {key} is not emulated")
            where = f"Pipeline {pipeline_name} task {pt['name']}"
            task_params = {
                p["name"]: _sub_value(p["value"], strings, arrays, roots, where) for p in pt.get("params", [])
            }
            task = self.catalog.tasks[pt["taskRef"]["name"]]
            taskrun = f"{run_name}-{pt['name']}"
            labels = {
                **pipeline["metadata"].get("labels", {}),
                **task["metadata"].get("labels", {}),
                **meta.get("labels", {}),
                "app.kubernetes.io/managed-by": "tekton-pipelines",
                "tekton.dev/memberOf": "tasks",
                "tekton.dev/pipeline": pipeline_name,
                "tekton.dev/pipelineRun": run_name,
                "tekton.dev/pipelineRunUID": run_uid,
                "tekton.dev/pipelineTask": pt["name"],
                "tekton.dev/task": task["metadata"]["name"],
                "tekton.dev/taskRun": taskrun,
            }
            result = self.run_task(task, task_params, taskrun=taskrun, labels=labels)
            taskruns[pt["name"]] = result
            order.append(pt["name"])
            if not result.succeeded:
                break
            strings |= {f"tasks.{pt['name']}.results.{k}": v for k, v in result.results.items()}
        results: dict[str, str] = {}
        if all(tr.succeeded for tr in taskruns.values()):
            for r in spec.get("results", []):
                results[r["name"]] = substitute(r["value"], strings, roots, "pipeline results")
        return PipelineRunResult(run_name, taskruns, order, results)


def _random_suffix() -> str:
    alphabet = "bcdfghjklmnpqrstvwxz2456789"  # Kubernetes' generateName alphabet
    return "".join(_random.choice(alphabet) for _ in range(5))


def _pipeline_order(tasks: Sequence[Doc]) -> list[Doc]:
    """Tasks in an order that respects runAfter and result references."""
    by_name = {t["name"]: t for t in tasks}
    deps: dict[str, set[str]] = {}
    for t in tasks:
        refs = {
            c.split(".")[1]
            for _, text in _strings(t.get("params", []), "")
            for c in references(text)
            if c.startswith("tasks.")
        }
        deps[t["name"]] = set(t.get("runAfter", [])) | refs
        unknown = deps[t["name"]] - set(by_name)
        if unknown:
            raise RunnerError(f"pipeline task {t['name']}: depends on unknown {sorted(unknown)}")
    order: list[Doc] = []
    done: set[str] = set()
    while len(order) < len(tasks):
        ready = [t for t in tasks if t["name"] not in done and deps[t["name"]] <= done]
        if not ready:
            raise RunnerError("pipeline tasks form a cycle")
        for t in ready:
            order.append(t)
            done.add(t["name"])
    return order


def _substitute_tree(
    key: str,
    value: Any,
    strings: Mapping[str, str],
    arrays: Mapping[str, list[str]],
    roots: frozenset[str],
    where: str,
) -> Any:
    if key in ("command", "args"):
        return substitute_list(value, strings, arrays, roots, f"{where} {key}")
    if isinstance(value, str):
        return substitute(value, strings, roots, f"{where} {key}")
    if isinstance(value, list):
        return [_substitute_tree("", v, strings, arrays, roots, where) for v in value]
    if isinstance(value, dict):
        return {k: _substitute_tree(k, v, strings, arrays, roots, where) for k, v in value.items()}
    return value


class _Pod:
    """The temporary root of one TaskRun's pod: container paths live under it."""

    def __init__(
        self,
        runner: Runner,
        taskrun: str,
        labels: Mapping[str, str],
        spec: Doc,
        annotations: Mapping[str, str],
        retry: int = 0,
    ):
        self.runner = runner
        self.name = f"{taskrun}-pod" + (f"-retry{retry}" if retry else "")  # Tekton's pod names
        self.labels = dict(labels)
        self.annotations = dict(annotations)
        self.root = runner.workdir / (f"{taskrun}-retry{retry}" if retry else taskrun)
        if self.root.exists():
            raise RunnerError(f"TaskRun {taskrun} already ran in {runner.workdir}")
        for d in (RESULTS_DIR, SCRIPTS_DIR, STEPS_DIR, "/workspace", "/tmp", "/home", "/bin"):
            (self.root / d.lstrip("/")).mkdir(parents=True)
        (self.root / "bin" / "tekton-uploader").symlink_to(runner.wrapper)
        self.volumes = {v["name"]: self._make_volume(v) for v in spec.get("volumes", [])}
        self.paths: dict[str, Path] = {
            RESULTS_DIR: self.root / RESULTS_DIR.lstrip("/"),
            SCRIPTS_DIR: self.root / SCRIPTS_DIR.lstrip("/"),
            STEPS_DIR: self.root / STEPS_DIR.lstrip("/"),
            IMAGE_WRAPPER: runner.wrapper,
        }

    def host(self, container_path: str) -> Path:
        return self.root / container_path.lstrip("/")

    def _make_volume(self, volume: Doc) -> Path:
        path: Path = self.root / "volumes" / str(volume["name"])
        path.mkdir(parents=True)
        if "downwardAPI" in volume:
            for item in volume["downwardAPI"].get("items", []):
                field_path = item.get("fieldRef", {}).get("fieldPath")
                if field_path == "metadata.labels":
                    content = format_labels(self.labels)
                elif field_path == "metadata.annotations":
                    content = format_labels(self.annotations)
                elif field_path in ("metadata.name", "metadata.namespace"):
                    content = self._field(field_path)
                else:
                    raise RunnerError(f"downwardAPI item {item} is not emulated")
                (path / item["path"]).write_text(content, encoding="utf-8")
        elif "secret" in volume:
            data = self._secret(volume["secret"]["secretName"])
            for key, value in data.items():
                (path / key).write_text(value, encoding="utf-8")
        elif "emptyDir" not in volume:
            raise RunnerError(f"volume {volume['name']}: only downwardAPI, secret and emptyDir are emulated")
        return path

    def _secret(self, name: str) -> Mapping[str, str]:
        if name not in self.runner.secrets:
            raise RunnerError(f"Secret {name!r} does not exist (the kubelet would not start the container)")
        return self.runner.secrets[name]

    def _field(self, field_path: str) -> str:
        m = re.fullmatch(r"metadata\.labels\['([^']+)'\]", field_path)
        if m:
            return self.labels.get(m.group(1), "")
        simple = {"metadata.name": self.name, "metadata.namespace": self.runner.namespace}
        if field_path not in simple:
            raise RunnerError(f"fieldRef {field_path!r} is not emulated")
        return simple[field_path]

    def _env(self, step: Doc) -> tuple[dict[str, str], dict[str, str]]:
        """(the step's own variables, the whole process environment)."""
        own: dict[str, str] = {}
        for var in step.get("env", []):
            if "valueFrom" in var:
                source = var["valueFrom"]
                if "fieldRef" in source:
                    own[var["name"]] = self._field(source["fieldRef"]["fieldPath"])
                elif "secretKeyRef" in source:
                    ref = source["secretKeyRef"]
                    data = self._secret(ref["name"])
                    if ref["key"] in data:
                        own[var["name"]] = data[ref["key"]]
                    elif not ref.get("optional", False):
                        raise RunnerError(f"Secret {ref['name']!r} has no key {ref['key']!r}")
                else:
                    raise RunnerError(f"env {var['name']}: {sorted(source)} is not emulated")
            else:
                own[var["name"]] = expand_k8s(var.get("value", ""), own)
        process = {
            "PATH": f"{self.root / 'bin'}:/usr/local/bin:/usr/bin:/bin",
            "HOME": str(self.root / "home"),
            "LANG": "C.UTF-8",
            "TMPDIR": str(self.root / "tmp"),
            "HOSTNAME": self.name,  # the pod's hostname is its name
            # Stand-ins for the container's filesystem (see the module docstring).
            "OBJECTSTORE_RESULTS_DIR": RESULTS_DIR,
            "OBJECTSTORE_POD_LABELS": POD_LABELS,
            "OBJECTSTORE_POD_ANNOTATIONS": POD_ANNOTATIONS,
        }
        process |= own
        return own, process

    def _mount(self, step: Doc) -> dict[str, Path]:
        mounts: dict[str, Path] = {}
        for vm in step.get("volumeMounts", []):
            if vm["name"] not in self.volumes:
                raise RunnerError(f"volumeMount {vm['name']!r}: the Task has no such volume")
            target = self.host(vm["mountPath"])
            if not target.exists():
                target.parent.mkdir(parents=True, exist_ok=True)
                target.symlink_to(self.volumes[vm["name"]])
            mounts[vm["mountPath"]] = target
        return mounts

    @staticmethod
    def _to_host(text: str, paths: Mapping[str, Path]) -> str:
        """Map container paths (whole path components only, longest first, one pass)."""
        alternatives = "|".join(re.escape(p) for p in sorted(paths, key=len, reverse=True))
        pattern = rf"(?<![\w.-])(?:{alternatives})(?=/|$|[^\w.-])"
        return re.sub(pattern, lambda m: str(paths[m.group(0)]), text)

    def run_step(
        self,
        index: int,
        step: Doc,
        strings: Mapping[str, str],
        arrays: Mapping[str, list[str]],
    ) -> StepRun:
        name = step.get("name") or f"unnamed-{index}"
        where = f"step {name}"
        roots = frozenset({"params", "results", "context", "step", "steps"})
        values = dict(strings) | {
            f"step.results.{r['name']}.path": f"{STEPS_DIR}/step-{name}/results/{r['name']}"
            for r in step.get("results", [])
        }
        values[ARTIFACTS_VARIABLE] = artifacts_path(name)
        step = {k: _substitute_tree(k, v, values, arrays, roots, where) for k, v in step.items()}
        own, env = self._env(step)
        mounts = self._mount(step)
        paths = {
            **self.paths,
            **mounts,
            POD_LABELS: self.host(POD_LABELS),
            POD_ANNOTATIONS: self.host(POD_ANNOTATIONS),
        }
        env = {k: self._to_host(v, paths) for k, v in env.items()}
        args = [self._to_host(expand_k8s(a, own), paths) for a in step.get("args", [])]
        if "script" in step:
            if "command" in step:
                raise RunnerError(f"{where}: script cannot be used with command")
            script = step["script"]
            if not script.lstrip().startswith("#!"):
                script = DEFAULT_SCRIPT_PREAMBLE + script
            script_path = self.host(f"{SCRIPTS_DIR}/script-{index}-{_random_suffix()}")
            script_path.write_text(self._to_host(script, paths), encoding="utf-8")
            script_path.chmod(0o755)
            argv = [str(script_path), *args]
        else:
            command = step.get("command")
            if command is None:
                image = step.get("image", "")
                if image not in self.runner.image_entrypoints:
                    raise RunnerError(
                        f"{where}: no command, so Tekton would look up the ENTRYPOINT of "
                        f"{image!r} in its registry; the runner knows only "
                        f"{sorted(self.runner.image_entrypoints)}"
                    )
                command = self.runner.image_entrypoints[image]
            argv = [self._to_host(expand_k8s(c, own), paths) for c in command] + args
            found = shutil.which(argv[0], path=env["PATH"]) if "/" not in argv[0] else argv[0]
            if found is None:
                raise RunnerError(f"{where}: {argv[0]!r} is not on the step's PATH")
            argv[0] = found
        return self._exec(name, argv, env, step.get("timeout"))

    def _exec(self, name: str, argv: list[str], env: dict[str, str], timeout: str | None) -> StepRun:
        limit = self.runner.max_step_seconds
        if timeout is not None:
            limit = min(limit, parse_duration(timeout))
        try:
            proc = subprocess.Popen(
                argv,
                env=env,
                cwd=self.root / "workspace",
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                start_new_session=True,
            )
        except OSError as e:
            raise RunnerError(f"step {name}: cannot start {argv[0]}: {e}") from e
        timed_out = False
        try:
            out, err = proc.communicate(timeout=limit)
        except subprocess.TimeoutExpired:
            # Tekton SIGKILLs the step at its timeout (no SIGTERM); the container then ends,
            # and every process left in it with it.
            timed_out = True
            _kill_tree(proc.pid)
            out, err = proc.communicate()
        returncode = proc.returncode
        if returncode < 0:
            returncode = 128 - returncode
        return StepRun(name, argv, returncode, out, err, timed_out)


def _kill_tree(pid: int) -> None:
    """SIGKILL a process and all its descendants (whatever process group they are in)."""
    try:
        main = psutil.Process(pid)
        descendants = main.children(recursive=True)
    except psutil.NoSuchProcess:
        return
    for victim in [main, *descendants]:
        with contextlib.suppress(psutil.NoSuchProcess):
            victim.send_signal(signal.SIGKILL)
    # Only the descendants: the main process is reaped by its Popen, which needs its status.
    psutil.wait_procs(descendants, timeout=10)
