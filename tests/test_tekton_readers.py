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
