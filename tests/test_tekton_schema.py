"""The Tekton YAML reference (tekton/) against Tekton's own schemas, yamllint and its variables.

Schemas: Tekton's CRD openAPIV3 schemas (v1 Task, v1 Pipeline, v1beta1 StepAction) as
``task.v1.json``, ``pipeline.v1.json`` and ``stepaction.v1beta1.json`` in the directory
``TEKTON_SCHEMAS`` names, default ``<repo>/../shared/schemas/tekton/`` (CI has it beside the clone;
a contributor takes each CRD's ``spec.versions[].schema.openAPIV3Schema`` from tektoncd/pipeline's
``config/300-crds/``). Without them the schema tests skip with one line (they fail under CI=true);
the other checks run anyway. They are made stricter than the API server: every object schema that lists
its properties (and is not ``x-kubernetes-preserve-unknown-fields``) gets
``additionalProperties: false``, because Kubernetes would silently prune an unknown (misspelt)
field and the reference would quietly not do what it says. The CRDs leave ``metadata`` and
``spec.volumes`` open; they are checked here against strict subsets of ObjectMeta and core/v1
Volume. PipelineRun and Secret have no schema in shared/: they are checked against strict
subsets written here from Tekton's and Kubernetes' API references (extend them when the reference
uses more fields).
"""

from __future__ import annotations

import copy
import json
import os
import re
from collections.abc import Callable, Iterator
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from tekton_runner import Catalog, Doc, check_variables, parse_duration
from yamllint import linter  # type: ignore[import-untyped]
from yamllint.config import YamlLintConfig  # type: ignore[import-untyped]

REPO = Path(__file__).resolve().parent.parent
TEKTON = REPO / "tekton"
SCHEMAS = Path(os.environ.get("TEKTON_SCHEMAS") or REPO.parent / "shared" / "schemas" / "tekton")

DNS1123_LABEL = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"
LABEL_KEY = (
    r"^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?"  # optional DNS prefix/
    r"[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$"
)
GO_DURATION = r"^([0-9]+(\.[0-9]+)?(ns|us|µs|ms|s|m|h))+$"
STRING = {"type": "string"}
STRING_MAP = {"type": "object", "additionalProperties": STRING}

OBJECT_META: dict[str, Any] = {
    "type": "object",
    "properties": {
        # Tekton rejects names with dots or longer than 63 characters.
        "name": {"type": "string", "maxLength": 63, "pattern": DNS1123_LABEL},
        "generateName": {"type": "string", "maxLength": 58, "pattern": r"^[a-z0-9]([-a-z0-9]*)?$"},
        "namespace": {"type": "string", "maxLength": 63, "pattern": DNS1123_LABEL},
        "labels": {
            "type": "object",
            "propertyNames": {"pattern": LABEL_KEY},
            "additionalProperties": {"type": "string", "maxLength": 63},
        },
        "annotations": STRING_MAP,
    },
    "anyOf": [{"required": ["name"]}, {"required": ["generateName"]}],
}

_FIELD_REF = {
    "type": "object",
    "required": ["fieldPath"],
    "properties": {"fieldPath": STRING, "apiVersion": STRING},
}
_KEY_TO_PATH = {
    "type": "object",
    "required": ["key", "path"],
    "properties": {"key": STRING, "path": STRING, "mode": {"type": "integer"}},
}
VOLUME: dict[str, Any] = {
    "type": "object",
    "required": ["name"],
    "minProperties": 2,
    "properties": {
        "name": {"type": "string", "pattern": DNS1123_LABEL},
        "downwardAPI": {
            "type": "object",
            "properties": {
                "defaultMode": {"type": "integer"},
                "items": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "required": ["path"],
                        "properties": {
                            "path": STRING,
                            "fieldRef": _FIELD_REF,
                            "mode": {"type": "integer"},
                        },
                    },
                },
            },
        },
        "emptyDir": {"type": "object", "properties": {"medium": STRING, "sizeLimit": STRING}},
        "secret": {
            "type": "object",
            "properties": {
                "secretName": STRING,
                "items": {"type": "array", "items": _KEY_TO_PATH},
                "defaultMode": {"type": "integer"},
                "optional": {"type": "boolean"},
            },
        },
        "configMap": {
            "type": "object",
            "properties": {
                "name": STRING,
                "items": {"type": "array", "items": _KEY_TO_PATH},
                "defaultMode": {"type": "integer"},
                "optional": {"type": "boolean"},
            },
        },
    },
}

SECRET: dict[str, Any] = {
    "type": "object",
    "required": ["apiVersion", "kind", "metadata"],
    "properties": {
        "apiVersion": {"const": "v1"},
        "kind": {"const": "Secret"},
        "metadata": OBJECT_META,
        "type": STRING,
        "immutable": {"type": "boolean"},
        "data": STRING_MAP,
        "stringData": STRING_MAP,
    },
}


def _load(name: str) -> dict[str, Any]:
    path = SCHEMAS / f"{name}.json"
    if not path.is_file():
        message = (
            f"Tekton CRD schema {path} is missing: set TEKTON_SCHEMAS to a directory with task.v1.json, "
            "pipeline.v1.json, stepaction.v1beta1.json (openAPIV3Schema of tektoncd/pipeline's config/300-crds)"
        )
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    schema: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return schema


def strict(node: Any) -> Any:
    """A copy of ``node`` where every object schema that lists its properties rejects others."""
    if isinstance(node, list):
        return [strict(v) for v in node]
    if not isinstance(node, dict):
        return node
    out = {k: strict(v) for k, v in node.items()}
    if (
        "properties" in node
        and "additionalProperties" not in node
        and not node.get("x-kubernetes-preserve-unknown-fields")
    ):
        out["additionalProperties"] = False
    return out


def _resource(schema: dict[str, Any], api_version: str, kind: str) -> dict[str, Any]:
    schema = copy.deepcopy(schema)
    props = schema["properties"]
    props["apiVersion"] = {"const": api_version}
    props["kind"] = {"const": kind}
    props["metadata"] = OBJECT_META
    schema["required"] = ["apiVersion", "kind", "metadata", "spec"]
    return schema


def _task_schema() -> dict[str, Any]:
    schema = _resource(_load("task.v1"), "tekton.dev/v1", "Task")
    spec = schema["properties"]["spec"]["properties"]
    spec["volumes"] = {"type": "array", "items": VOLUME}
    spec["steps"]["items"]["properties"]["timeout"] = {"type": "string", "pattern": GO_DURATION}
    return schema


def _pipelinerun_schema() -> dict[str, Any]:
    pipeline_spec = _load("pipeline.v1")["properties"]["spec"]
    pipeline_task = pipeline_spec["properties"]["tasks"]["items"]["properties"]
    duration = {"type": "string", "pattern": GO_DURATION}
    return {
        "type": "object",
        "required": ["apiVersion", "kind", "metadata", "spec"],
        "properties": {
            "apiVersion": {"const": "tekton.dev/v1"},
            "kind": {"const": "PipelineRun"},
            "metadata": OBJECT_META,
            "spec": {
                "type": "object",
                "oneOf": [{"required": ["pipelineRef"]}, {"required": ["pipelineSpec"]}],
                "properties": {
                    "pipelineRef": pipeline_task["pipelineRef"],
                    "pipelineSpec": pipeline_spec,
                    "params": pipeline_task["params"],
                    "status": {
                        "enum": [
                            "Cancelled",
                            "CancelledRunFinally",
                            "StoppedRunFinally",
                            "PipelineRunPending",
                        ],
                    },
                    "timeouts": {
                        "type": "object",
                        "properties": {"pipeline": duration, "tasks": duration, "finally": duration},
                    },
                    "taskRunTemplate": {
                        "type": "object",
                        "properties": {"serviceAccountName": STRING, "podTemplate": {"type": "object"}},
                    },
                    "workspaces": {"type": "array", "items": {"type": "object", "required": ["name"]}},
                    "taskRunSpecs": {"type": "array", "items": {"type": "object"}},
                },
            },
        },
    }


@cache
def validators() -> dict[tuple[str, str], jsonschema.protocols.Validator]:
    schemas = {
        ("tekton.dev/v1", "Task"): _task_schema(),
        ("tekton.dev/v1", "Pipeline"): _resource(_load("pipeline.v1"), "tekton.dev/v1", "Pipeline"),
        ("tekton.dev/v1beta1", "StepAction"): _resource(
            _load("stepaction.v1beta1"), "tekton.dev/v1beta1", "StepAction"
        ),
        ("tekton.dev/v1", "PipelineRun"): _pipelinerun_schema(),
        ("v1", "Secret"): SECRET,
    }
    out: dict[tuple[str, str], jsonschema.protocols.Validator] = {}
    for key, schema in schemas.items():
        schema = strict(schema)
        jsonschema.Draft7Validator.check_schema(schema)
        out[key] = jsonschema.Draft7Validator(schema)
    return out


def schema_errors(doc: Doc) -> list[str]:
    validator = validators().get((doc.get("apiVersion", ""), doc.get("kind", "")))
    if validator is None:
        return [f"no schema for apiVersion {doc.get('apiVersion')!r} kind {doc.get('kind')!r}"]
    return [
        f"{'/'.join(str(p) for p in e.absolute_path) or '<root>'}: {e.message}"
        for e in sorted(validator.iter_errors(doc), key=lambda e: list(map(str, e.absolute_path)))
    ]


@cache
def catalog() -> Catalog:
    return Catalog.load(TEKTON)


def documents() -> list[Any]:
    return [
        pytest.param(doc, id=f"{path.relative_to(TEKTON)}:{doc['kind']}/{_name(doc)}")
        for path, doc in catalog().documents
    ]


def _name(doc: Doc) -> str:
    meta = doc.get("metadata", {})
    return str(meta.get("name") or meta.get("generateName", "?"))


def by_name(kind: str, name: str) -> Doc:
    doc = next(d for _, d in catalog().documents if d["kind"] == kind and _name(d) == name)
    return copy.deepcopy(doc)


# --------------------------------------------------------------------------------------------
# The set of documents


def test_the_reference_has_every_kind_of_document() -> None:
    kinds = sorted(doc["kind"] for _, doc in catalog().documents)
    assert kinds.count("Task") == 9
    assert {"Pipeline", "PipelineRun", "StepAction", "Secret"} <= set(kinds)
    # `kubectl apply -f tekton/` must not create runs or overwrite a real Secret: those live in
    # tekton/examples/ (apply -f is not recursive).
    top_level = {d["kind"] for p, d in catalog().documents if p.parent == TEKTON}
    assert top_level == {"Task", "StepAction", "Pipeline"}


# --------------------------------------------------------------------------------------------
# Schemas


@pytest.mark.parametrize("doc", documents())
def test_document_matches_tekton_schema(doc: Doc) -> None:
    assert schema_errors(doc) == []


def _set(path: list[str | int], value: Any) -> Callable[[Doc], None]:
    def apply(doc: Doc) -> None:
        node: Any = doc
        for key in path[:-1]:
            node = node[key]
        node[path[-1]] = value

    return apply


UNKNOWN_FIELDS = {
    "task step": ("Task", "tekton-uploader-command", ["spec", "steps", 0, "comand"], ["x"]),
    "task spec": ("Task", "tekton-uploader-script", ["spec", "result"], []),
    "task param": ("Task", "tekton-uploader-script", ["spec", "params", 0, "defualt"], "x"),
    "env fieldRef": (
        "Task",
        "tekton-uploader-command",
        ["spec", "steps", 0, "env", 4, "valueFrom", "fieldRef", "fieldPth"],
        "metadata.name",
    ),
    "downward volume": (
        "Task",
        "tekton-uploader-entrypoint",
        ["spec", "volumes", 0, "downwardAPI", "item"],
        [],
    ),
    "volume type": ("Task", "tekton-uploader-entrypoint", ["spec", "volumes", 0, "hostPath"], {}),
    "metadata": ("Task", "tekton-uploader-script", ["metadata", "label"], {}),
    "stepaction": ("StepAction", "tekton-uploader", ["spec", "timeout"], "1h"),
    "step ref": ("Task", "tekton-uploader-stepaction", ["spec", "steps", 0, "ref", "nmae"], "x"),
    "pipeline task": ("Pipeline", "tekton-uploader-example", ["spec", "tasks", 1, "runafter"], []),
    "pipelinerun spec": (
        "PipelineRun",
        "tekton-uploader-example-",
        ["spec", "serviceAccountName"],
        "default",
    ),
    "pipelinerun timeouts": (
        "PipelineRun",
        "tekton-uploader-example-",
        ["spec", "timeouts", "task"],
        "1h",
    ),
    "secret": ("Secret", "mlpipeline-minio-artifact", ["stringdata"], {}),
}


@pytest.mark.parametrize("case", UNKNOWN_FIELDS.values(), ids=list(UNKNOWN_FIELDS))
def test_unknown_field_is_rejected(case: tuple[str, str, list[str | int], Any]) -> None:
    kind, name, path, value = case
    doc = by_name(kind, name)
    assert schema_errors(doc) == []
    _set(path, value)(doc)
    errors = schema_errors(doc)
    assert any(repr(path[-1]) in e and "not allowed" in e for e in errors), errors


BAD_VALUES = {
    "step timeout": ("Task", "tekton-uploader-command", ["spec", "steps", 0, "timeout"], "30 min"),
    "args type": ("Task", "tekton-uploader-command", ["spec", "steps", 0, "args"], "sh -c"),
    "env without name": ("Task", "tekton-uploader-script", ["spec", "steps", 0, "env", 0], {}),
    "task name": ("Task", "tekton-uploader-script", ["metadata", "name"], "Bad_Name"),
    "dotted name": ("Task", "tekton-uploader-script", ["metadata", "name"], "a.b"),
    "apiVersion": ("StepAction", "tekton-uploader", ["apiVersion"], "tekton.dev/v1"),
    "pipelinerun status": ("PipelineRun", "tekton-uploader-example-", ["spec", "status"], "Run"),
    "int-or-string": (
        "Task",
        "tekton-uploader-command",
        ["spec", "steps", 0, "computeResources"],
        {"limits": {"cpu": ["1"]}},
    ),
}


@pytest.mark.parametrize("case", BAD_VALUES.values(), ids=list(BAD_VALUES))
def test_bad_value_is_rejected(case: tuple[str, str, list[str | int], Any]) -> None:
    kind, name, path, value = case
    doc = by_name(kind, name)
    _set(path, value)(doc)
    assert schema_errors(doc) != []


def test_kubernetes_extensions_are_tolerated() -> None:
    """The CRD schemas use x-kubernetes-* keywords (int-or-string, list types, preserved
    fields); the validator ignores the annotations and honours the anyOf they come with."""
    raw = json.dumps(_load("task.v1"))
    for keyword in (
        "x-kubernetes-int-or-string",
        "x-kubernetes-list-type",
        "x-kubernetes-preserve-unknown-fields",
    ):
        assert keyword in raw
    doc = by_name("Task", "tekton-uploader-command")
    doc["spec"]["steps"][0]["computeResources"] = {
        "limits": {"cpu": 2, "memory": "1Gi"},
        "requests": {"cpu": "500m"},
    }
    # Param defaults are x-kubernetes-preserve-unknown-fields: any value passes the schema.
    doc["spec"]["params"][0]["default"] = ["an", "array"]
    assert schema_errors(doc) == []


# --------------------------------------------------------------------------------------------
# yamllint


def yamllint_problems(text: str, path: Path) -> list[str]:
    config = YamlLintConfig(file=str(REPO / ".yamllint"))
    return [f"{path}:{p.line}:{p.column} {p.level} {p.message}" for p in linter.run(text, config, str(path))]


def test_yamllint_clean() -> None:
    files = [*sorted(TEKTON.rglob("*.yaml")), REPO / ".yamllint"]
    assert len(files) >= 9
    problems = [p for f in files for p in yamllint_problems(f.read_text(encoding="utf-8"), f)]
    assert problems == []


def test_yamllint_reports_problems() -> None:
    text = (TEKTON / "task-script.yaml").read_text(encoding="utf-8")
    bad = text.replace("---\n", "", 1).replace("kind: Task", "kind: Task   ", 1)
    bad += "metadata:\n  name: duplicate-key\n" + "#" + " words" * 30 + "\n"
    messages = " | ".join(yamllint_problems(bad, TEKTON / "bad.yaml"))
    for expected in ("document-start", "trailing spaces", "duplication of key", "line too long"):
        assert expected in messages


# --------------------------------------------------------------------------------------------
# Variables


@pytest.mark.parametrize("doc", documents())
def test_every_variable_resolves(doc: Doc) -> None:
    assert check_variables(doc, catalog()) == []


def _replace_in_args(task: str, old: str, new: str) -> Doc:
    doc = by_name("Task", task)
    text = json.dumps(doc)
    assert old in text
    return json.loads(text.replace(old, new, 1))  # type: ignore[no-any-return]


def _variable_cases() -> Iterator[Any]:
    def case(id_: str, doc: Doc, expected: str) -> Any:
        return pytest.param(doc, expected, id=id_)

    yield case(
        "no context.pipelineTask.name",
        _replace_in_args("tekton-uploader-command", "$(params.message)", "$(context.pipelineTask.name)"),
        "context.pipelineTask.name",
    )
    yield case(
        "undeclared param",
        _replace_in_args("tekton-uploader-command", "$(params.message)", "$(params.msg)"),
        "'msg', which is not declared",
    )
    yield case(
        "undeclared result",
        _replace_in_args("tekton-uploader-script", "$(results.length.path)", "$(results.size.path)"),
        "results.size.path",
    )
    yield case(
        "pipeline context in a Task",
        _replace_in_args("tekton-uploader-command", "$(params.message)", "$(context.pipelineRun.name)"),
        "context.pipelineRun.name",
    )
    yield case(
        "unset environment variable",
        _replace_in_args("tekton-uploader-command", "$(params.message)", "$(MESSAGE)"),
        "$(MESSAGE) is not an environment variable",
    )
    yield case(
        "result path in a step ref param",
        _replace_in_args("tekton-uploader-stepaction", "$(results.report.path)", "$(results.reprot.path)"),
        "results.reprot.path",
    )
    pipeline = by_name("Pipeline", "tekton-uploader-example")
    pipeline["spec"]["tasks"][1]["params"][0]["value"] = "$(tasks.produce.results.sha)"
    yield case("undeclared task result", pipeline, "tasks.produce.results.sha")
    pipeline = by_name("Pipeline", "tekton-uploader-example")
    pipeline["spec"]["tasks"][0]["params"].append({"name": "text", "value": "x"})
    yield case("param the Task lacks", pipeline, "has no param 'text'")
    pipeline = by_name("Pipeline", "tekton-uploader-example")
    del pipeline["spec"]["tasks"][1]["params"][0]
    yield case("required Task param missing", pipeline, "required param 'digest'")
    action = by_name("StepAction", "tekton-uploader")
    action["spec"]["args"][-1] = "$(params.command)"
    yield case("array param without [*]", action, "without [*]")
    task = by_name("Task", "tekton-uploader-stepaction")
    task["spec"]["steps"][0]["params"] = [
        p for p in task["spec"]["steps"][0]["params"] if p["name"] != "timeout"
    ]
    yield case("required StepAction param missing", task, "required param 'timeout'")
    run = by_name("PipelineRun", "tekton-uploader-example-")
    run["spec"]["params"].append({"name": "endpont", "value": "x"})
    yield case("PipelineRun param the Pipeline lacks", run, "has no param 'endpont'")


@pytest.mark.parametrize(("doc", "expected"), list(_variable_cases()))
def test_unresolved_variable_is_reported(doc: Doc, expected: str) -> None:
    errors = check_variables(doc, catalog())
    assert any(expected in e for e in errors), errors


# --------------------------------------------------------------------------------------------
# What the reference promises about timeouts and identity


# The wrapper's defaults that bound its shutdown (tekton-uploader --help).
DEFAULT_KILL_AFTER = "15s"  # half of the 30 s --termination-grace
DEFAULT_FLUSH_TIMEOUT = "5m"


def _wrapper_options(argv: list[str]) -> dict[str, str]:
    """``--option value`` pairs before ``--``."""
    options: dict[str, str] = {}
    for i, arg in enumerate(argv):
        if arg == "--":
            break
        if arg.startswith("--") and i + 1 < len(argv):
            options[arg] = argv[i + 1]
    return options


OPTION_VARIABLES = {
    "--timeout": "OBJECTSTORE_TIMEOUT",
    "--flush-timeout": "OBJECTSTORE_FLUSH_TIMEOUT",
    "--kill-after": "OBJECTSTORE_KILL_AFTER",
}


def _wrapper_settings(step: Doc) -> dict[str, str]:
    """The wrapper's shutdown options of a step: from its env, overridden by its argv."""
    values: dict[str, Any] = {}
    if "ref" in step:
        action = catalog().stepactions[step["ref"]["name"]]["spec"]
        values = {p["name"]: p.get("default") for p in action["params"]}
        values |= {p["name"]: p["value"] for p in step["params"]}
        step = action

    def resolve(text: str) -> str:
        return re.sub(r"\$\(params\.([\w-]+)\)", lambda m: str(values.get(m.group(1), m.group(0))), text)

    env = {e["name"]: resolve(e["value"]) for e in step.get("env", []) if "value" in e}
    settings = {opt: env[var] for opt, var in OPTION_VARIABLES.items() if var in env}
    argv = [resolve(a) for a in list(step.get("command", [])) + list(step.get("args", []))]
    settings |= {k: v for k, v in _wrapper_options(argv).items() if k in OPTION_VARIABLES}
    return settings


def test_wrapper_deadline_ends_before_every_step_timeout() -> None:
    """Tekton SIGKILLs a step at its timeout: the wrapper's --timeout, its grace after SIGTERM
    and its final flush must all fit before that."""
    checked = 0
    for name, task in catalog().tasks.items():
        for step in task["spec"]["steps"]:
            options = _wrapper_settings(step)
            assert "--timeout" in options, f"{name}: the wrapper has no --timeout"
            assert "timeout" in step, f"{name}: the step has no timeout"
            needed = (
                parse_duration(options["--timeout"])
                + parse_duration(options.get("--kill-after", DEFAULT_KILL_AFTER))
                + parse_duration(options.get("--flush-timeout", DEFAULT_FLUSH_TIMEOUT))
                + 30  # slack: process start, bucket check, clock skew
            )
            assert needed <= parse_duration(step["timeout"]), f"{name}: {options} vs {step['timeout']}"
            checked += 1
    assert checked == 9


def _identity_forms(task: Doc) -> set[str]:
    forms = set()
    volumes = {
        v["name"]
        for v in task["spec"].get("volumes", [])
        if {"path": "labels", "fieldRef": {"fieldPath": "metadata.labels"}}
        in v.get("downwardAPI", {}).get("items", [])
    }
    for step in task["spec"]["steps"]:
        if "ref" in step:
            step = catalog().stepactions[step["ref"]["name"]]["spec"]
        env = {
            e["name"]: e.get("valueFrom", {}).get("fieldRef", {}).get("fieldPath")
            for e in step.get("env", [])
        }
        if (
            env.get("PIPELINERUN") == "metadata.labels['tekton.dev/pipelineRun']"
            and env.get("PIPELINETASK") == "metadata.labels['tekton.dev/pipelineTask']"
        ):
            forms.add("fieldRef")
        if any(
            m["name"] in volumes and m["mountPath"] == "/etc/podinfo" for m in step.get("volumeMounts", [])
        ):
            forms.add("labels file")
    return forms


def test_every_task_passes_the_identity_one_of_the_two_ways() -> None:
    forms = {name: _identity_forms(task) for name, task in catalog().tasks.items()}
    assert all(len(f) == 1 for f in forms.values()), forms
    assert set().union(*forms.values()) == {"fieldRef", "labels file"}


def test_script_steps_use_the_one_argument_shebang() -> None:
    scripts = [
        step["script"]
        for task in catalog().tasks.values()
        for step in task["spec"]["steps"]
        if "script" in step
    ]
    assert scripts
    for script in scripts:
        first = script.splitlines()[0]
        assert re.fullmatch(r"#!/opt/tekton-uploader/bin/tekton-uploader [a-z0-9]+", first), first
