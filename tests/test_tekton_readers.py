"""Objects for Tekton's own readers: Tekton Results' blob logs (--tekton-results-logs) and Tekton
Chains' type-hinted results (--chains-outputs). The wrapper runs as a subprocess against both
stores; what it stored is read back and compared byte for byte.

Only the layout Results' blob reader lists and the result files Chains reads are checked here:
no Tekton Results or Chains server runs in these tests.
"""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path

import pytest
from conftest import StoreView, run_wrapper, untar_single

PY = sys.executable
PREFIX = "artifacts/run-1/task-1/"
IDENTITY = ["--pipelinerun", "run-1", "--pipelinetask", "task-1"]
TASKRUN_UID = "0b2c0d1e-7a1f-4c8e-9d6b-1f2e3d4c5b6a"
PIPELINERUN_UID = "5e6f7a8b-1c2d-4e3f-8a9b-0c1d2e3f4a5b"


def podinfo(tmp_path: Path, labels: dict[str, str], annotations: dict[str, str]) -> list[str]:
    """Downward-API files as the kubelet writes them; the wrapper's options naming them."""
    for name, values in (("labels", labels), ("annotations", annotations)):
        lines = [f"{k}={json.dumps(v)}" for k, v in sorted(values.items())]
        (tmp_path / name).write_text("\n".join(lines))
    return ["--pod-labels", str(tmp_path / "labels"), "--pod-annotations", str(tmp_path / "annotations")]


def tekton_labels(**extra: str) -> dict[str, str]:
    return {
        "tekton.dev/pipelineRun": "run-1",
        "tekton.dev/pipelineTask": "task-1",
        "tekton.dev/taskRun": "run-1-task-1",
        "tekton.dev/taskRunUID": TASKRUN_UID,
        "tekton.dev/pipelineRunUID": PIPELINERUN_UID,
        **extra,
    }


def lines_cmd(n: int) -> list[str]:
    """Writes ``n`` numbered lines to stdout and stderr, flushing each (many chunks)."""
    code = (
        "import sys\n"
        f"for i in range({n}):\n"
        "    s = sys.stdout if i % 3 else sys.stderr\n"
        "    s.write(f'line {i} ' + 'x' * (i % 97) + '\\n'); s.flush()\n"
    )
    return [PY, "-c", code]


def manifest(store: StoreView, step: str = "main") -> dict:  # type: ignore[type-arg]
    return json.loads(store.read(f"{PREFIX}{step}-manifest.json"))  # type: ignore[no-any-return]


# -- Tekton Results blob logs ----------------------------------------------------------------


def test_results_log_is_the_archive_member_byte_for_byte(store: StoreView, tmp_path: Path) -> None:
    files = podinfo(tmp_path, tekton_labels(), {})
    env = {**store.env, "POD_NAMESPACE": "team-a"}
    proc = run_wrapper(
        [
            *files,
            "--tekton-results-logs", "logs",
            "--log-chunk-size", "1KiB",
            "--results-dir", str(tmp_path / "results"),
            "-q", "--", *lines_cmd(3000),
        ],
        env,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    # No annotation, no triggers event id: the PipelineRun's UID is the Result.
    key = f"logs/team-a/{PIPELINERUN_UID}/{TASKRUN_UID}/step-main.log"
    assert store.keys("logs/") == [key]
    name, member = untar_single(store.read(PREFIX + "main-log.tgz"))
    assert name == "main.log"
    chunk_keys = store.keys(PREFIX + "logs/main/")
    assert len(chunk_keys) > 10  # the log went up in many chunks, the Results log in one object
    assert b"".join(store.read(k) for k in chunk_keys) == member
    plain = store.read(key)
    assert plain == member
    assert plain.count(b"\n") == 3000
    entry = next(e for e in manifest(store)["objects"] if e["key"] == key)
    assert entry["kind"] == "results-log"
    assert entry["size"] == len(plain) and entry["sha256"] == hashlib.sha256(plain).hexdigest()


@pytest.mark.parametrize(
    ("labels", "annotations", "result"),
    [
        (
            tekton_labels(**{"triggers.tekton.dev/triggers-eventid": "ev-42"}),
            {"results.tekton.dev/result": "team-a/results/my-result"},
            "my-result",
        ),
        (tekton_labels(**{"triggers.tekton.dev/triggers-eventid": "ev-42"}), {}, "ev-42"),
        (tekton_labels(), {"other": "x"}, PIPELINERUN_UID),
        (
            {"tekton.dev/taskRun": "tr-1", "tekton.dev/task": "build", "tekton.dev/taskRunUID": TASKRUN_UID},
            {},
            TASKRUN_UID,
        ),
    ],
    ids=["annotation", "triggers-eventid", "pipelineRunUID", "taskRunUID"],
)
def test_the_result_is_the_first_identifier_found(
    store: StoreView, tmp_path: Path, labels: dict[str, str], annotations: dict[str, str], result: str
) -> None:
    files = podinfo(tmp_path, labels, annotations)
    proc = run_wrapper(
        [*files, "--tekton-results-logs", "/tekton/logs/", "--namespace", "ns-1",
         "--results-dir", str(tmp_path / "results"), "-q", "--", "echo", "hello"],
        store.env,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    key = f"tekton/logs/ns-1/{result}/{TASKRUN_UID}/step-main.log"
    assert store.keys("tekton/") == [key]
    assert store.read(key) == b"hello\n"


def test_identifiers_given_as_options_win(store: StoreView, tmp_path: Path) -> None:
    files = podinfo(tmp_path, tekton_labels(), {"results.tekton.dev/result": "ns/results/r"})
    env = {
        **store.env,
        "POD_NAMESPACE": "from-env",
        "OBJECTSTORE_TEKTON_RESULTS_LOGS": "logs",
        "OBJECTSTORE_TEKTON_RESULTS_RESULT": "result-x",
    }
    proc = run_wrapper(
        [*files, "--namespace", "ns-flag", "--taskrun-uid", "uid-y", "--step", "build",
         "--results-dir", str(tmp_path / "results"), "-q", "--", "printf", "no newline"],
        env,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert store.keys("logs/") == ["logs/ns-flag/result-x/uid-y/step-build.log"]
    assert store.read("logs/ns-flag/result-x/uid-y/step-build.log") == b"no newline"


def test_missing_identifiers_are_exit_2_before_command(store: StoreView, tmp_path: Path) -> None:
    files = podinfo(tmp_path, {"tekton.dev/taskRun": "tr-1"}, {})
    marker = tmp_path / "started"
    proc = run_wrapper(
        [*files, "--tekton-results-logs", "logs", "--results-dir", str(tmp_path / "results"),
         "--", "touch", str(marker)],
        store.env,
    )  # fmt: skip
    assert proc.returncode == 2
    assert not marker.exists()
    err = proc.stderr.decode()
    assert err.count("\n") == 1 and "Traceback" not in err
    assert err.startswith("tekton-uploader: error: --tekton-results-logs: missing the namespace")
    for what in ("--namespace", "$POD_NAMESPACE", "the Results result", "--tekton-results-result",
                 "the TaskRun UID", "--taskrun-uid", str(tmp_path / "labels")):  # fmt: skip
        assert what in err
    assert store.keys("") == []


def test_a_bad_identifier_is_exit_2(store: StoreView, tmp_path: Path) -> None:
    files = podinfo(tmp_path, tekton_labels(), {})
    proc = run_wrapper(
        [*files, "--tekton-results-logs", "logs", "--namespace", "..", "--", "true"], store.env
    )
    assert proc.returncode == 2
    assert b"--tekton-results-logs: namespace '..' is '..'" in proc.stderr


def test_off_by_default(store: StoreView, tmp_path: Path) -> None:
    files = podinfo(tmp_path, tekton_labels(), {"results.tekton.dev/result": "ns/results/r"})
    env = {**store.env, "POD_NAMESPACE": "team-a"}
    proc = run_wrapper([*files, "--results-dir", str(tmp_path / "r"), "-q", "--", "echo", "x"], env)
    assert proc.returncode == 0, proc.stderr
    assert all(k.startswith(PREFIX) for k in store.keys(""))


# -- Tekton Chains type-hinted results -------------------------------------------------------


def stored_digest(store: StoreView, key: str) -> str:
    return "sha256:" + hashlib.sha256(store.read(key)).hexdigest()


def test_chains_outputs_name_each_stored_result_with_its_digest(store: StoreView, tmp_path: Path) -> None:
    results, steps = tmp_path / "results", tmp_path / "step-results"
    script = (
        f"open('{results}/model', 'w').write('weights'); open('{results}/report', 'w').write('ok'); "
        f"open('{steps}/metrics', 'w').write('acc=1')"
    )
    results.mkdir()
    steps.mkdir()
    provenance = tmp_path / "provenance.json"
    proc = run_wrapper(
        [*IDENTITY, "--results-dir", str(results), "--step-results-dir", str(steps), "--chains-outputs",
         "--artifacts-file", str(provenance), "--", PY, "-c", script],
        store.env,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    bucket = store.bucket
    keys = {"model": PREFIX + "model.tgz", "report": PREFIX + "report.tgz"}
    for name, key in keys.items():
        assert json.loads((results / f"{name}-ARTIFACT_OUTPUTS").read_bytes()) == {
            "uri": f"s3://{bucket}/{key}",
            "digest": stored_digest(store, key),
            "isBuildArtifact": "true",
        }
    step_key = PREFIX + "main/metrics.tgz"
    assert json.loads((steps / "metrics-ARTIFACT_OUTPUTS").read_bytes())["digest"] == stored_digest(
        store, step_key
    )
    # The same digests as the manifest and the provenance file.
    by_key = {e["key"]: e for e in manifest(store)["objects"]}
    doc = json.loads(provenance.read_bytes())
    for name, key in keys.items():
        assert stored_digest(store, key) == "sha256:" + by_key[key]["sha256"]
        output = next(o for o in doc["outputs"] if o["name"] == name)
        assert "sha256:" + output["values"][0]["digest"]["sha256"] == stored_digest(store, key)
    # Tekton results, never stored as results of their own.
    assert not [k for k in store.keys("") if "ARTIFACT" in k]
    assert b"wrote 3 Tekton Chains result(s)" in proc.stderr
    assert sorted(p.name for p in results.iterdir()) == [
        "model", "model-ARTIFACT_OUTPUTS", "report", "report-ARTIFACT_OUTPUTS"
    ]  # fmt: skip

    # A later step of the same pod shares /tekton/results: it stores the results again, not the hints.
    again = run_wrapper(
        [*IDENTITY, "--results-dir", str(results), "--step", "second", "-q", "--", "true"], store.env
    )
    assert again.returncode == 0, again.stderr
    assert not [k for k in store.keys("") if "ARTIFACT" in k]
    assert again.stderr == b""


def test_chains_inputs_name_each_fetched_result_with_the_producers_digest(
    store: StoreView, tmp_path: Path
) -> None:
    produced = tmp_path / "produced"
    produced.mkdir()
    (produced / "model").write_bytes(b"model bytes")
    proc = run_wrapper([*IDENTITY, "--results-dir", str(produced), "-q", "--", "true"], store.env)
    assert proc.returncode == 0, proc.stderr
    results = tmp_path / "results"
    proc = run_wrapper(
        ["--pipelinerun", "run-1", "--pipelinetask", "consume", "--results-dir", str(results),
         "--fetch-result", f"task-1/model={tmp_path / 'in' / 'model'}", "--chains-outputs", "-q",
         "--", "cat", str(tmp_path / "in" / "model")],
        store.env,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == b"model bytes"
    key = PREFIX + "model.tgz"
    assert json.loads((results / "model-ARTIFACT_INPUTS").read_bytes()) == {
        "uri": f"s3://{store.bucket}/{key}",
        "digest": stored_digest(store, key),
    }
    assert sorted(p.name for p in results.iterdir()) == ["model-ARTIFACT_INPUTS"]


def test_chains_results_count_toward_the_4096_byte_warning(store: StoreView, tmp_path: Path) -> None:
    results = tmp_path / "results"
    results.mkdir()
    command = ["--", PY, "-c", f"open('{results}/data', 'w').write('x' * 4000)"]
    plain = run_wrapper([*IDENTITY, "--results-dir", str(results), "-q", *command], store.env)
    assert plain.returncode == 0 and b"over Tekton's 4096-byte limit" not in plain.stderr
    hinted = run_wrapper([*IDENTITY, "--results-dir", str(results), "--chains-outputs", "-q", *command], store.env)
    assert hinted.returncode == 0, hinted.stderr
    size = (results / "data-ARTIFACT_OUTPUTS").stat().st_size
    assert f"results total {4000 + size} bytes, over Tekton's 4096-byte limit".encode() in hinted.stderr
    assert b"data-ARTIFACT_OUTPUTS" in hinted.stderr  # among the biggest
