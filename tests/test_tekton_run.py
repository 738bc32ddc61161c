"""Execute the Tekton YAML reference (tekton/) as Tekton would, against the real S3 server.

tests/tekton_runner.py runs each Task's steps on this machine (params, result paths and context
substituted, /tekton/results and /etc/podinfo laid out in a temporary pod root, env from fake pod
labels and a fake Secret, scripts run through their shebang, the image's wrapper path mapped to
the tekton-uploader under test). Only the endpoint and bucket params are overridden, to point at
the moto server; credentials come from the Secret keys the YAML names. The objects the wrapper
stores are read back and compared byte for byte.
"""

from __future__ import annotations

import copy
import hashlib
import json
import sys
from pathlib import Path

import pytest
from conftest import ACCESS_KEY, SECRET_KEY, S3Server, untar_single
from tekton_runner import (
    IMAGE_WRAPPER,
    Catalog,
    Doc,
    Runner,
    RunnerError,
    TaskRunResult,
    artifacts_path,
    containerfile_entrypoint,
    expand_k8s,
    format_labels,
    substitute,
    substitute_list,
)

REPO = Path(__file__).resolve().parent.parent
TEKTON = REPO / "tekton"
SECRET_NAME = "mlpipeline-minio-artifact"


@pytest.fixture(scope="module")
def catalog() -> Catalog:
    return Catalog.load(TEKTON)


@pytest.fixture(scope="module")
def wrapper() -> Path:
    path = Path(sys.executable).parent / "tekton-uploader"
    if not path.is_file():
        pytest.fail(f"{path} is missing: install the project into this venv (pip install -e .)")
    return path


def _image(catalog: Catalog) -> str:
    params = catalog.tasks["tekton-uploader-entrypoint"]["spec"]["params"]
    return str(next(p["default"] for p in params if p["name"] == "image"))


@pytest.fixture
def runner(catalog: Catalog, wrapper: Path, tmp_path: Path) -> Runner:
    secret = catalog.secrets[SECRET_NAME]
    # The example Secret and the Tasks agree on the key names (Kubeflow Pipelines' own).
    assert sorted(secret["stringData"]) == ["accesskey", "secretkey"]
    return Runner(
        catalog=catalog,
        workdir=tmp_path / "pods",
        wrapper=wrapper,
        secrets={SECRET_NAME: {"accesskey": ACCESS_KEY, "secretkey": SECRET_KEY}},
        image_entrypoints={_image(catalog): containerfile_entrypoint(REPO / "Containerfile")},
    )


def store_params(s3: S3Server, bucket: str) -> dict[str, str]:
    return {"endpoint": s3.endpoint, "bucket": bucket}


def example_run(catalog: Catalog, pipeline: str) -> Doc:
    """The example PipelineRun of ``pipeline``."""
    return next(r for r in catalog.pipelineruns if r["spec"]["pipelineRef"]["name"] == pipeline)


def assert_succeeded(taskrun: TaskRunResult) -> None:
    for step in taskrun.steps:
        assert step.returncode == 0, (
            f"{taskrun.name} step {step.name} exited {step.returncode}: {step.argv}\n"
            f"stdout: {step.stdout!r}\nstderr: {step.stderr.decode(errors='replace')}"
        )


class Stored:
    """The objects one step stored under artifacts/<run>/<task>/."""

    def __init__(self, s3: S3Server, bucket: str, run: str, task: str):
        self.s3, self.bucket = s3, bucket
        self.prefix = f"artifacts/{run}/{task}/"
        self.keys = [k[len(self.prefix) :] for k in s3.keys(bucket, self.prefix)]

    def archive(self, name: str, member: str | None = None) -> bytes:
        """The content of ``<name>.tgz``, whose single member is called ``member`` (default:
        ``name``, as for results)."""
        found, content = untar_single(self.s3.read(self.bucket, f"{self.prefix}{name}.tgz"))
        assert found == (member or name)
        return content

    def chunks(self, step: str = "main") -> bytes:
        keys = [k for k in self.keys if k.startswith(f"logs/{step}/")]
        assert keys, self.keys
        return b"".join(self.s3.read(self.bucket, self.prefix + k) for k in keys)

    def log(self, step: str = "main") -> bytes:
        content = self.archive(f"{step}-log", member=f"{step}.log")
        assert self.chunks(step) == content
        return content


# --------------------------------------------------------------------------------------------
# The Pipeline


def test_pipelinerun_runs_both_tasks_and_the_second_consumes_the_first_result(
    runner: Runner, catalog: Catalog, s3: S3Server, bucket: str
) -> None:
    pipelinerun = example_run(catalog, "tekton-uploader-example")
    message = next(p["value"] for p in pipelinerun["spec"]["params"] if p["name"] == "message")
    digest = hashlib.sha256(message.encode()).hexdigest()

    run = runner.run_pipelinerun(pipelinerun, overrides=store_params(s3, bucket))

    assert run.order == ["produce", "consume"]
    for taskrun in run.taskruns.values():
        assert_succeeded(taskrun)
    assert run.name.startswith("tekton-uploader-example-")
    produce, consume = run.taskruns["produce"], run.taskruns["consume"]
    assert produce.results == {"digest": digest, "message": message}
    report = f"digest {digest} has 64 hex digits"
    assert consume.results == {"report": report}
    assert run.results == {"digest": digest, "report": report}

    stored = Stored(s3, bucket, run.name, "produce")
    assert stored.archive("digest") == digest.encode()
    assert stored.archive("message") == message.encode()
    produce_log = f"processing: {message}\n{digest}\n".encode()
    assert stored.log() == produce_log
    assert produce.step("main").stdout == produce_log  # passed through as well

    stored = Stored(s3, bucket, run.name, "consume")
    assert stored.archive("report") == report.encode()
    assert stored.log() == f"received digest: {digest}\n".encode()

    # Nothing lands outside artifacts/<pipelinerun>/<pipelinetask>/.
    assert all(
        k.startswith((f"artifacts/{run.name}/produce/", f"artifacts/{run.name}/consume/"))
        for k in s3.keys(bucket)
    )


def test_a_failing_first_task_stops_the_pipeline(
    runner: Runner, catalog: Catalog, s3: S3Server, bucket: str
) -> None:
    runner.catalog = copy.deepcopy(catalog)
    args = runner.catalog.tasks["tekton-uploader-command"]["spec"]["steps"][0]["args"]
    assert args[:2] == ["sh", "-c"]
    args[2] = 'echo "failing on purpose: $1"; exit 3'
    run = runner.run_pipelinerun(
        example_run(catalog, "tekton-uploader-example"), overrides=store_params(s3, bucket)
    )
    assert run.order == ["produce"]
    assert run.taskruns["produce"].steps[0].returncode == 3  # the wrapper exits with COMMAND's code
    assert not run.succeeded
    assert b"failing on purpose" in Stored(s3, bucket, run.name, "produce").log()


def test_the_image_is_a_required_param_with_a_placeholder_in_the_examples(catalog: Catalog) -> None:
    for name, pipeline in catalog.pipelines.items():
        image = next(p for p in pipeline["spec"]["params"] if p["name"] == "image")
        assert "default" not in image and image["description"].startswith("Required"), name
        given = {p["name"]: p["value"] for p in example_run(catalog, name)["spec"]["params"]}
        assert given["image"].startswith("REPLACE-ME.invalid/"), name  # never pulls a stranger's image


def test_a_pipelinerun_without_the_image_is_refused(runner: Runner, catalog: Catalog) -> None:
    pipelinerun = copy.deepcopy(example_run(catalog, "tekton-uploader-example"))
    pipelinerun["spec"]["params"] = [p for p in pipelinerun["spec"]["params"] if p["name"] != "image"]
    with pytest.raises(RunnerError, match="image"):
        runner.run_pipelinerun(pipelinerun)


def test_the_pipeline_chooses_the_credentials_secret(
    runner: Runner, catalog: Catalog, s3: S3Server, bucket: str
) -> None:
    """Both Tasks (task-command and task-stepaction) read the Secret the Pipeline names."""
    runner.secrets = {"team-a-store": {"accesskey": ACCESS_KEY, "secretkey": SECRET_KEY}}
    run = runner.run_pipelinerun(
        example_run(catalog, "tekton-uploader-example"),
        overrides={**store_params(s3, bucket), "credentials-secret": "team-a-store"},
    )
    assert run.order == ["produce", "consume"]
    for taskrun in run.taskruns.values():
        assert_succeeded(taskrun)
    assert Stored(s3, bucket, run.name, "consume").log()


def test_large_result_pipeline_passes_50mib_through_the_store_and_tekton_sees_a_uri(
    runner: Runner, catalog: Catalog, s3: S3Server, bucket: str
) -> None:
    """pipeline-large-result.yaml: --offload-results-over in the producer, --fetch-result in the
    consumer; the 50 MiB result never reaches Tekton's termination message."""
    pipelinerun = example_run(catalog, "tekton-uploader-large-result")
    run = runner.run_pipelinerun(pipelinerun, overrides=store_params(s3, bucket))

    assert run.order == ["produce", "consume"]
    for taskrun in run.taskruns.values():
        assert_succeeded(taskrun)
    produce, consume = run.taskruns["produce"], run.taskruns["consume"]
    key = f"artifacts/{run.name}/produce/model.tgz"
    uri = f"s3://{bucket}/{key}"
    assert produce.results["model"] == uri  # what Tekton reads and passes on
    assert sum(len(v) for v in produce.results.values()) < 4096
    name, data = untar_single(s3.read(bucket, key))
    assert name == "model" and len(data) == 50 * 1024 * 1024
    digest = hashlib.sha256(data).hexdigest()
    assert produce.results["sha256"] == digest
    assert consume.results == {"report": f"{len(data)} bytes, sha256 {digest}"}
    assert run.results == {"model": uri, "report": consume.results["report"]}


# --------------------------------------------------------------------------------------------
# The Tasks one by one


def test_script_task_runs_through_its_shebang_in_a_standalone_taskrun(
    runner: Runner, s3: S3Server, bucket: str, wrapper: Path
) -> None:
    taskrun = runner.run_task(
        "tekton-uploader-script",
        {"input": "two words", **store_params(s3, bucket)},
        taskrun="script-run-1",
    )
    assert_succeeded(taskrun)
    step = taskrun.step("main")
    # Tekton runs the script file itself; the kernel starts the wrapper from the shebang line.
    script = Path(step.argv[0])
    assert script.parent == taskrun.root / "tekton" / "scripts"
    assert script.read_text().splitlines()[0] == f"#!{wrapper} sh"
    assert step.stdout == b"input: two words\n"
    assert b"measured two words\n" in step.stderr

    assert taskrun.results == {"length": "9", "words": "2"}
    # A standalone TaskRun: the wrapper took the names from the labels file (taskRun, task).
    stored = Stored(s3, bucket, "script-run-1", "tekton-uploader-script")
    assert stored.archive("length") == b"9"
    assert stored.archive("words") == b"2"
    assert sorted(stored.log().splitlines(keepends=True)) == [
        b"input: two words\n",
        b"measured two words\n",
    ]


def test_script_task_in_a_pipelinerun_takes_the_pipeline_names_from_the_labels_file(
    runner: Runner, s3: S3Server, bucket: str
) -> None:
    labels = {
        "tekton.dev/pipelineRun": "nightly-x7k2p",
        "tekton.dev/pipelineTask": "measure",
        "tekton.dev/taskRun": "nightly-x7k2p-measure",
        "tekton.dev/task": "tekton-uploader-script",
    }
    taskrun = runner.run_task(
        "tekton-uploader-script",
        {"input": "héllo", **store_params(s3, bucket)},
        taskrun="nightly-x7k2p-measure",
        labels=labels,
    )
    assert_succeeded(taskrun)
    stored = Stored(s3, bucket, "nightly-x7k2p", "measure")
    assert stored.archive("length") == str(len("héllo".encode())).encode()
    assert b"input: h\xc3\xa9llo\n" in stored.log()


def test_a_retried_taskrun_keeps_each_attempts_log(runner: Runner, s3: S3Server, bucket: str) -> None:
    """Tekton's retry of a TaskRun: a new pod (``<taskrun>-pod-retry1``, its hostname) with the
    same names; the wrapper learns the attempt from it and stores the retry's log apart."""
    first = runner.run_task(
        "tekton-uploader-script", {"input": "first try", **store_params(s3, bucket)}, taskrun="retry-run-1"
    )
    second = runner.run_task(
        "tekton-uploader-script", {"input": "again", **store_params(s3, bucket)}, taskrun="retry-run-1", retry=1
    )
    assert_succeeded(first)
    assert_succeeded(second)
    stored = Stored(s3, bucket, "retry-run-1", "tekton-uploader-script")
    own = [k for k in stored.keys if k.startswith("logs/main/attempt-2/")]
    assert own and b"input: again\n" in b"".join(s3.read(bucket, stored.prefix + k) for k in own)
    first_chunks = [k for k in stored.keys if k.startswith("logs/main/") and k not in own]
    first_log = b"".join(s3.read(bucket, stored.prefix + k) for k in first_chunks)
    assert b"input: first try\n" in first_log and b"again" not in first_log
    latest = stored.archive("main-log", member="main.log")
    assert stored.archive("main-attempt-2-log", member="main.log") == latest
    assert b"input: again\n" in latest and b"first try" not in latest
    summary = json.loads(s3.read(bucket, stored.prefix + "main-attempt-2-summary.json"))
    assert (summary["attempt"], summary["exit_code"]) == (2, 0)
    assert json.loads(s3.read(bucket, stored.prefix + "main-summary.json"))["attempt"] == 1
    assert stored.archive("words") == b"1"  # results are the latest attempt's


def test_entrypoint_task_runs_the_image_entrypoint_with_args_only(
    runner: Runner, catalog: Catalog, s3: S3Server, bucket: str
) -> None:
    assert containerfile_entrypoint(REPO / "Containerfile") == ["tekton-uploader"]
    assert "command" not in catalog.tasks["tekton-uploader-entrypoint"]["spec"]["steps"][0]
    taskrun = runner.run_task(
        "tekton-uploader-entrypoint",
        {"text": "Mixed Case", **store_params(s3, bucket)},
        taskrun="entrypoint-run-1",
    )
    assert_succeeded(taskrun)
    assert taskrun.step("main").argv[0] == str(taskrun.root / "bin" / "tekton-uploader")
    assert taskrun.results == {"upper": "MIXED CASE"}
    stored = Stored(s3, bucket, "entrypoint-run-1", "tekton-uploader-entrypoint")
    assert stored.archive("upper") == b"MIXED CASE"
    assert stored.log() == b"text: Mixed Case\nMIXED CASE\n"


def test_entrypoint_task_needs_the_image_entrypoint_from_the_registry(
    runner: Runner, s3: S3Server, bucket: str
) -> None:
    runner.image_entrypoints = {}
    with pytest.raises(RunnerError, match=r"ENTRYPOINT of .* in its registry"):
        runner.run_task("tekton-uploader-entrypoint", store_params(s3, bucket), taskrun="entrypoint-run-2")


def test_provenance_task_records_the_stored_result_at_the_step_artifacts_path(
    runner: Runner, s3: S3Server, bucket: str
) -> None:
    """tekton/task-provenance.yaml: $(step.artifacts.path) gets the result's URI and the sha256 of
    the stored object (what Tekton's enable-artifacts feature reads into the TaskRun status)."""
    labels = {"tekton.dev/pipelineRun": "prov-run", "tekton.dev/pipelineTask": "train"}
    taskrun = runner.run_task(
        "tekton-uploader-provenance", store_params(s3, bucket), taskrun="prov-run-train", labels=labels
    )
    assert_succeeded(taskrun)
    assert taskrun.results == {"report": "accuracy=0.93"}
    provenance = taskrun.root / artifacts_path("main").lstrip("/")
    doc = json.loads(provenance.read_text())
    key = "artifacts/prov-run/train/report.tgz"
    stored = s3.read(bucket, key)
    assert doc == {
        "outputs": [
            {
                "name": "report",
                "values": [
                    {"uri": f"s3://{bucket}/{key}", "digest": {"sha256": hashlib.sha256(stored).hexdigest()}}
                ],
            }
        ]
    }
    assert untar_single(stored) == ("report", b"accuracy=0.93")


def test_fieldref_identity_outside_a_pipelinerun_fails_clearly(
    runner: Runner, s3: S3Server, bucket: str
) -> None:
    """The fieldRef form gets empty names without the pipeline labels: the wrapper refuses to
    start (exit 2) rather than store under a wrong name. README: use these Tasks in a Pipeline."""
    taskrun = runner.run_task("tekton-uploader-command", store_params(s3, bucket), taskrun="command-run-1")
    step = taskrun.step("main")
    assert step.returncode == 2, step.stderr
    assert b"--pipelinerun" in step.stderr
    assert b"processing" not in step.stdout  # COMMAND never started
    assert SECRET_KEY.encode() not in step.stdout + step.stderr
    assert s3.keys(bucket) == []


def test_missing_secret_key_stops_the_step_like_the_kubelet(
    runner: Runner, s3: S3Server, bucket: str
) -> None:
    runner.secrets = {SECRET_NAME: {"accesskey": ACCESS_KEY}}
    with pytest.raises(RunnerError, match="has no key 'secretkey'"):
        runner.run_task("tekton-uploader-script", store_params(s3, bucket), taskrun="script-run-2")


# --------------------------------------------------------------------------------------------
# Termination: why the wrapper's --timeout must be below the step timeout


def _sleeping_task(catalog: Catalog, step_timeout: str, wrapper_options: list[str]) -> Doc:
    task = copy.deepcopy(catalog.tasks["tekton-uploader-command"])
    step = task["spec"]["steps"][0]
    step["timeout"] = step_timeout
    step["command"] = ["tekton-uploader", *wrapper_options, "--"]
    step["args"] = ["sh", "-c", "echo started; exec sleep 600"]
    step["env"].append({"name": "OBJECTSTORE_LOG_FLUSH_INTERVAL", "value": "1h"})
    return task


def test_wrapper_timeout_below_the_step_timeout_saves_the_log(
    runner: Runner, catalog: Catalog, s3: S3Server, bucket: str
) -> None:
    task = _sleeping_task(catalog, "60s", ["--timeout", "2s", "--flush-timeout", "20s"])
    labels = {"tekton.dev/pipelineRun": "deadline-run", "tekton.dev/pipelineTask": "sleep"}
    taskrun = runner.run_task(task, store_params(s3, bucket), taskrun="deadline-run-sleep", labels=labels)
    step = taskrun.step("main")
    assert not step.timed_out  # the wrapper ended before Tekton's SIGKILL
    assert step.returncode == 124, step.stderr  # the wrapper's own --timeout expired
    assert Stored(s3, bucket, "deadline-run", "sleep").log() == b"started\n"


def test_step_timeout_sigkill_loses_the_final_log(
    runner: Runner, catalog: Catalog, s3: S3Server, bucket: str
) -> None:
    """What the README warns about: at the step timeout Tekton SIGKILLs the wrapper, no SIGTERM."""
    task = _sleeping_task(catalog, "3s", [])
    labels = {"tekton.dev/pipelineRun": "killed-run", "tekton.dev/pipelineTask": "sleep"}
    taskrun = runner.run_task(task, store_params(s3, bucket), taskrun="killed-run-sleep", labels=labels)
    step = taskrun.step("main")
    assert step.timed_out
    assert step.returncode == 137
    assert step.stdout == b"started\n"
    assert "main-log.tgz" not in Stored(s3, bucket, "killed-run", "sleep").keys


# --------------------------------------------------------------------------------------------
# The runner's own rules (so that the tests above test Tekton's behaviour, not the runner's)


def test_substitution_rejects_what_tekton_does_not_provide() -> None:
    values = {"params.a": "A", "context.taskRun.name": "tr"}
    roots = frozenset({"params", "context"})
    assert substitute("$(params.a)-$(params['a'])-$(context.taskRun.name)", values, roots, "x") == "A-A-tr"
    assert substitute("$(results.r.path) $(cat f) $$(params.a)", values, roots, "x") == (
        "$(results.r.path) $(cat f) $$(params.a)"
    )
    with pytest.raises(RunnerError, match=r"context\.pipelineTask\.name"):
        substitute("$(context.pipelineTask.name)", values, roots, "x")
    arrays = {"params.cmd[*]": ["python", "train.py"]}
    assert substitute_list(["--", "$(params.cmd[*])", "$(params.a)"], values, arrays, roots, "x") == [
        "--",
        "python",
        "train.py",
        "A",
    ]


def test_kubernetes_expansion_and_labels_file_format() -> None:
    env = {"A": "1", "B": "two"}
    assert expand_k8s("$(A)-$(B)-$(C)-$$(A)-$$", env) == "1-two-$(C)-$(A)-$"
    labels = {"tekton.dev/taskRun": "tr-1", "app": 'say "hi"'}
    assert format_labels(labels) == 'app="say \\"hi\\""\ntekton.dev/taskRun="tr-1"'


def test_image_wrapper_path_is_the_one_the_image_installs() -> None:
    """The script Task's shebang names this path; the image must have the wrapper there."""
    containerfile = (REPO / "Containerfile").read_text(encoding="utf-8")
    assert IMAGE_WRAPPER in containerfile


# --------------------------------------------------------------------------------------------
# Tekton Results blob logs (tekton/task-results-logs.yaml); no Results server runs here: the key
# is the one Results' blob reader lists (LOGS_PATH/<namespace>/<result>/<taskrun-uid>/).


def test_results_logs_task_in_a_standalone_taskrun_keys_the_log_by_the_taskrun_uid(
    runner: Runner, s3: S3Server, bucket: str
) -> None:
    taskrun = runner.run_task(
        "tekton-uploader-results-logs", store_params(s3, bucket), taskrun="results-run-1"
    )
    assert_succeeded(taskrun)
    # No annotation, no PipelineRun: the Result is the TaskRun's own UID.
    key = f"logs/default/{taskrun.uid}/{taskrun.uid}/step-main.log"
    assert s3.keys(bucket, "logs/") == [key]
    log = Stored(s3, bucket, "results-run-1", "tekton-uploader-results-logs").log()
    assert s3.read(bucket, key) == log
    # stdout and stderr are two pipes: their lines interleave in arrival order
    assert sorted(log.splitlines()) == [b"building in namespace default", b"done", b"warnings go to stderr"]


def test_results_logs_task_takes_the_result_from_the_annotation_then_the_pipelinerun_uid(
    runner: Runner, s3: S3Server, bucket: str
) -> None:
    labels = {
        "tekton.dev/pipelineRun": "nightly-1",
        "tekton.dev/pipelineRunUID": "pr-uid-1",
        "tekton.dev/pipelineTask": "build",
        "tekton.dev/taskRun": "nightly-1-build",
    }
    annotations = {"results.tekton.dev/result": "default/results/res-7"}
    params = {**store_params(s3, bucket), "results-logs-path": "tekton-results/logs"}
    first = runner.run_task(
        "tekton-uploader-results-logs", params, taskrun="nightly-1-build", labels=labels, annotations=annotations
    )
    second = runner.run_task(
        "tekton-uploader-results-logs",
        params,
        taskrun="nightly-1-test",
        labels={**labels, "tekton.dev/pipelineTask": "test", "tekton.dev/taskRun": "nightly-1-test"},
    )
    assert_succeeded(first)
    assert_succeeded(second)
    assert s3.keys(bucket, "tekton-results/") == sorted(
        [
            f"tekton-results/logs/default/res-7/{first.uid}/step-main.log",
            f"tekton-results/logs/default/pr-uid-1/{second.uid}/step-main.log",
        ]
    )
    for task, run in (("build", first), ("test", second)):
        log = Stored(s3, bucket, "nightly-1", task).log()
        result = "res-7" if task == "build" else "pr-uid-1"
        assert s3.read(bucket, f"tekton-results/logs/default/{result}/{run.uid}/step-main.log") == log


# --------------------------------------------------------------------------------------------
# Tekton Chains type hints (tekton/task-chains.yaml); no Chains controller runs here: the result
# is the object Chains reads (a `*ARTIFACT_OUTPUTS` result with uri and digest).


def test_chains_task_declares_the_type_hinted_result_the_wrapper_writes(
    runner: Runner, s3: S3Server, bucket: str
) -> None:
    labels = {"tekton.dev/pipelineRun": "chains-run", "tekton.dev/pipelineTask": "build"}
    taskrun = runner.run_task(
        "tekton-uploader-chains", store_params(s3, bucket), taskrun="chains-run-build", labels=labels
    )
    assert_succeeded(taskrun)
    key = "artifacts/chains-run/build/model.tgz"
    stored = s3.read(bucket, key)
    assert untar_single(stored) == ("model", b"model v1")
    assert taskrun.results["model"] == "model v1"
    hint = json.loads(taskrun.results["model-ARTIFACT_OUTPUTS"])
    assert hint == {
        "uri": f"s3://{bucket}/{key}",
        "digest": f"sha256:{hashlib.sha256(stored).hexdigest()}",
        "isBuildArtifact": "true",
    }
    declared = runner.catalog.tasks["tekton-uploader-chains"]["spec"]["results"]
    properties = next(r for r in declared if r["name"] == "model-ARTIFACT_OUTPUTS")["properties"]
    assert sorted(properties) == sorted(hint)  # every key written is declared, and no other
    assert sum(len(v.encode()) for v in taskrun.results.values()) < 4096
    assert not [k for k in s3.keys(bucket) if "ARTIFACT" in k]
