"""The environment beyond the options (issue 19): no endpoint inside a pod or container is an
error, misspelt OBJECTSTORE_* variables are warned about, kfp-tekton's ARTIFACT_ENDPOINT(+_SCHEME)
is read."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import REPO, S3Server, clean_env, run_wrapper, untar_single

from entrypoint import ObjectStoreConfig
from entrypoint.settings.environment import container_reason, kfp_endpoint, no_endpoint_problem

IDENTITY = ["--pipelinerun", "run-1", "--pipelinetask", "task-1"]


def test_what_counts_as_inside_a_container(tmp_path: Path) -> None:
    assert container_reason({}, tmp_path) is None
    assert no_endpoint_problem({}, tmp_path) is None
    assert "KUBERNETES_SERVICE_HOST" in str(
        container_reason({"KUBERNETES_SERVICE_HOST": "10.96.0.1"}, tmp_path)
    )
    assert "TEKTON_UPLOADER_IN_IMAGE=1" in str(container_reason({"TEKTON_UPLOADER_IN_IMAGE": "1"}, tmp_path))
    assert container_reason({"TEKTON_UPLOADER_IN_IMAGE": "0"}, tmp_path) is None
    (tmp_path / "tekton" / "run").mkdir(parents=True)  # Tekton's tekton-internal-run volume
    assert "tekton/run exists: a Tekton step" in str(container_reason({}, tmp_path))
    problem = no_endpoint_problem({}, tmp_path)
    assert problem is not None and "--endpoint" in problem and "file:///DIR" in problem


@pytest.mark.parametrize(
    "variable", [{"KUBERNETES_SERVICE_HOST": "10.96.0.1"}, {"TEKTON_UPLOADER_IN_IMAGE": "1"}]
)
@pytest.mark.parametrize("quiet", [[], ["-q"]])
def test_no_endpoint_in_a_pod_is_exit_2_before_command(
    tmp_path: Path, variable: dict[str, str], quiet: list[str]
) -> None:
    marker = tmp_path / "command-ran"
    proc = run_wrapper([*IDENTITY, *quiet, "--", "touch", str(marker)], clean_env(**variable), cwd=tmp_path)
    assert proc.returncode == 2 and not marker.exists()
    lines = proc.stderr.decode().splitlines()
    assert len(lines) == 1, lines
    assert lines[0].startswith("tekton-uploader: error: --endpoint: not set inside a container")
    assert "file:///DIR" in lines[0] and "COMMAND not started" in lines[0]
    assert not (tmp_path / "objectstore").exists()


def test_a_local_directory_on_purpose_works_in_a_pod(tmp_path: Path) -> None:
    env = clean_env(KUBERNETES_SERVICE_HOST="10.96.0.1")
    proc = run_wrapper([*IDENTITY, "-q", "--endpoint", f"file://{tmp_path}/store", "--", "echo", "hi"], env)
    assert (proc.returncode, proc.stdout) == (0, b"hi\n"), proc.stderr
    archive = tmp_path / "store/mlpipeline/artifacts/run-1/task-1/main-log.tgz"
    assert untar_single(archive.read_bytes()) == ("main.log", b"hi\n")


def test_kfp_tekton_artifact_endpoint_is_read(s3: S3Server, bucket: str, tmp_path: Path) -> None:
    assert (
        kfp_endpoint({"ARTIFACT_ENDPOINT": "minio-service.kubeflow:9000"})
        == "http://minio-service.kubeflow:9000"
    )
    assert (
        kfp_endpoint({"ARTIFACT_ENDPOINT": "m:9000", "ARTIFACT_ENDPOINT_SCHEME": "https://"})
        == "https://m:9000"
    )
    assert (
        kfp_endpoint({"ARTIFACT_ENDPOINT": "m:9000", "ARTIFACT_ENDPOINT_SCHEME": "https"}) == "https://m:9000"
    )
    assert kfp_endpoint({"ARTIFACT_ENDPOINT_SCHEME": "https://"}) is None
    env = s3.env(bucket)
    del env["OBJECTSTORE_ENDPOINT"], env["OBJECTSTORE_BUCKET"]
    env.update(
        ARTIFACT_ENDPOINT=s3.netloc,
        ARTIFACT_ENDPOINT_SCHEME="http://",
        ARTIFACT_BUCKET=bucket,
        KUBERNETES_SERVICE_HOST="10.96.0.1",
    )  # in a pod, as kfp-tekton's steps are
    proc = run_wrapper([*IDENTITY, "-q", "--results-dir", str(tmp_path), "--", "echo", "stored"], env)
    assert proc.returncode == 0, proc.stderr
    assert untar_single(s3.read(bucket, "artifacts/run-1/task-1/main-log.tgz")) == ("main.log", b"stored\n")
    config = ObjectStoreConfig.from_env({"ARTIFACT_ENDPOINT": s3.netloc})
    assert config.service_endpoint == s3.endpoint
    assert (
        ObjectStoreConfig.from_env(
            {"ARTIFACT_ENDPOINT": "a:1", "OBJECTSTORE_ENDPOINT": "http://b:2"}
        ).service_endpoint
        == "http://b:2"
    )
    table = [
        line for line in (REPO / "README.md").read_text().splitlines() if line.startswith("| `--endpoint")
    ]
    assert "ARTIFACT_ENDPOINT" in table[0] and "ARTIFACT_ENDPOINT_SCHEME" in table[0]


def test_a_misspelt_variable_is_warned_about_also_with_quiet(tmp_path: Path) -> None:
    env = clean_env(
        OBJECTSTORE_ENDPIONT="http://127.0.0.1:9",
        OBJECTSTORE_SOMETHING_ELSE_ENTIRELY="x",
        OBJECTSTORE_ENDPOINT=f"file://{tmp_path}/store",
        OBJECTSTORE_LOG_CHUNK_SIZE="1MiB",  # known: not warned about
    )
    proc = run_wrapper([*IDENTITY, "-q", "--results-dir", str(tmp_path / "results"), "--", "echo", "hi"], env)
    assert (proc.returncode, proc.stdout) == (0, b"hi\n"), proc.stderr
    lines = proc.stderr.decode().splitlines()
    assert lines == [
        "tekton-uploader: warning: OBJECTSTORE_ENDPIONT is set but no option reads it (it is ignored); "
        "did you mean OBJECTSTORE_ENDPOINT?",
        "tekton-uploader: warning: OBJECTSTORE_SOMETHING_ELSE_ENTIRELY is set but no option reads it "
        "(it is ignored); see --help for the variables",
    ]


def test_the_readers_variable_is_known_to_the_wrapper(tmp_path: Path) -> None:
    env = clean_env(OBJECTSTORE_READ_RETRIES="2", OBJECTSTORE_ENDPOINT=f"file://{tmp_path}/store")
    proc = run_wrapper([*IDENTITY, "-q", "--results-dir", str(tmp_path / "results"), "--", "true"], env)
    assert (proc.returncode, proc.stderr) == (0, b"")
