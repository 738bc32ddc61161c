"""Issue 11: Tekton artifacts provenance, oversized results, step results, --fetch-result.

Everything against the moto server (fixtures ``s3`` and ``bucket``): objects are read back and
compared byte for byte.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import pytest
from conftest import S3Server, run_wrapper, untar_single

from entrypoint.results import artifacts

RUN = "run-a"


def wrap(
    s3: S3Server, bucket: str, tmp_path: Path, task: str, args: list[str], command: list[str], **kw: object
):
    results = tmp_path / task / "results"
    results.mkdir(parents=True, exist_ok=True)
    base = ["--pipelinerun", RUN, "--pipelinetask", task, "--results-dir", str(results)]
    return run_wrapper([*base, *args, "--", *command], s3.env(bucket), cwd=tmp_path, **kw)  # type: ignore[arg-type]


def write_results(command: str) -> list[str]:
    """COMMAND: a shell snippet run in the task's directory ($R is the results directory)."""
    return ["sh", "-c", command]


def manifest(s3: S3Server, bucket: str, task: str, step: str = "main") -> dict:
    return json.loads(s3.read(bucket, f"artifacts/{RUN}/{task}/{step}-manifest.json"))


def summary(s3: S3Server, bucket: str, task: str, step: str = "main") -> dict:
    return json.loads(s3.read(bucket, f"artifacts/{RUN}/{task}/{step}-summary.json"))


# -- provenance -----------------------------------------------------------------------------------


def test_provenance_is_merged_with_commands_own_and_digests_match_stored_objects(
    s3: S3Server, bucket: str, tmp_path: Path
) -> None:
    prov = tmp_path / "steps" / "step-main" / "artifacts" / "provenance.json"
    results = tmp_path / "build" / "results"
    own = {
        "inputs": [
            {"name": "source", "values": [{"uri": "git+https://example.invalid/r", "digest": {"sha1": "ab"}}]}
        ],
        "outputs": [
            {
                "name": "image",
                "values": [{"uri": "oci://example.invalid/img", "digest": {"sha256": "00" * 32}}],
            },
            {"name": "digest", "values": [{"uri": "own://kept", "digest": {"sha256": "11" * 32}}]},
        ],
    }
    command = (
        f"mkdir -p {prov.parent} && printf '%s' '{json.dumps(own)}' > {prov} && "
        f"printf 'sha256:abc' > {results}/digest && head -c 3000 /dev/urandom > {results}/blob"
    )
    proc = wrap(s3, bucket, tmp_path, "build", ["--artifacts-file", str(prov)], write_results(command))
    assert proc.returncode == 0, proc.stderr.decode()

    text = prov.read_text()
    assert "\n" not in text and ": " not in text and ", " not in text  # compact
    doc = json.loads(text)
    assert doc["inputs"] == own["inputs"]  # COMMAND's content is kept
    by_name = {o["name"]: o for o in doc["outputs"]}
    assert by_name["image"] == own["outputs"][0]
    assert [o["name"] for o in doc["outputs"]] == ["image", "digest", "blob"]
    # an output COMMAND also declared keeps its value first, ours is added
    assert by_name["digest"]["values"][0] == own["outputs"][1]["values"][0]
    stored = {o["key"]: o["sha256"] for o in manifest(s3, bucket, "build")["objects"]}
    for name in ("digest", "blob"):
        value = by_name[name]["values"][-1]
        key = f"artifacts/{RUN}/build/{name}.tgz"
        assert value["uri"] == f"s3://{bucket}/{key}"
        data = s3.read(bucket, key)
        assert value["digest"] == {"sha256": hashlib.sha256(data).hexdigest()}
        assert stored[key] == value["digest"]["sha256"]
    assert untar_single(s3.read(bucket, f"artifacts/{RUN}/build/digest.tgz")) == ("digest", b"sha256:abc")


def test_provenance_file_created_when_command_wrote_none(s3: S3Server, bucket: str, tmp_path: Path) -> None:
    prov = tmp_path / "a" / "provenance.json"
    results = tmp_path / "t" / "results"
    proc = wrap(
        s3, bucket, tmp_path, "t", ["--artifacts-file", str(prov)], write_results(f"echo 1 > {results}/n")
    )
    assert proc.returncode == 0, proc.stderr.decode()
    data = s3.read(bucket, f"artifacts/{RUN}/t/n.tgz")
    assert json.loads(prov.read_text()) == {
        "outputs": [
            {
                "name": "n",
                "values": [
                    {
                        "uri": f"s3://{bucket}/artifacts/{RUN}/t/n.tgz",
                        "digest": {"sha256": hashlib.sha256(data).hexdigest()},
                    }
                ],
            }
        ]
    }


def test_provenance_not_json_is_left_alone_with_a_warning(s3: S3Server, bucket: str, tmp_path: Path) -> None:
    prov = tmp_path / "provenance.json"
    results = tmp_path / "t" / "results"
    command = f"printf 'not json' > {prov}; echo 1 > {results}/n"
    proc = wrap(s3, bucket, tmp_path, "t", ["--artifacts-file", str(prov)], write_results(command))
    assert proc.returncode == 0
    assert prov.read_bytes() == b"not json"
    assert b"--artifacts-file" in proc.stderr and b"left as it is" in proc.stderr


def test_fetched_results_are_recorded_as_inputs_with_the_producers_digest(
    s3: S3Server, bucket: str, tmp_path: Path
) -> None:
    """The consumer's provenance names what it fetched: the producer's output uri and digest."""
    produced = tmp_path / "produce.json"
    proc = wrap(
        s3,
        bucket,
        tmp_path,
        "train",
        ["--artifacts-file", str(produced)],
        write_results(
            f"head -c 5000 /dev/urandom > {tmp_path}/train/results/model && echo v2 > {tmp_path}/train/results/tag"
        ),
    )
    assert proc.returncode == 0, proc.stderr.decode()
    outputs = {o["name"]: o["values"][0] for o in json.loads(produced.read_text())["outputs"]}

    consumed = tmp_path / "consume.json"
    own = {
        "inputs": [
            {"name": "source", "values": [{"uri": "git+https://example.invalid/r", "digest": {"sha1": "ab"}}]}
        ]
    }
    consumed.write_text(json.dumps(own))
    proc = wrap(
        s3,
        bucket,
        tmp_path,
        "evaluate",
        [
            "--artifacts-file",
            str(consumed),
            "--fetch-result",
            f"train/model={tmp_path}/in/model",
            "--fetch-result",
            f"{outputs['tag']['uri']}={tmp_path}/in/tag",
        ],
        write_results(f"cat {tmp_path}/in/tag > {tmp_path}/evaluate/results/score"),
    )
    assert proc.returncode == 0, proc.stderr.decode()
    doc = json.loads(consumed.read_text())
    assert doc["inputs"][0] == own["inputs"][0]  # COMMAND's own entry kept, first
    inputs = {i["name"]: i["values"] for i in doc["inputs"][1:]}
    assert inputs == {"model": [outputs["model"]], "tag": [outputs["tag"]]}
    for value in outputs.values():
        key = value["uri"].removeprefix(f"s3://{bucket}/")
        assert value["digest"]["sha256"] == hashlib.sha256(s3.read(bucket, key)).hexdigest()
    assert [o["name"] for o in doc["outputs"]] == ["score"]
    assert (tmp_path / "in" / "tag").read_text() == "v2\n"


def test_merge_adds_only_what_is_new() -> None:
    ours = [{"name": "a", "values": [{"uri": "s3://b/k", "digest": {"sha256": "x"}}]}]
    doc = {"outputs": [{"name": "a", "values": [{"uri": "s3://b/k", "digest": {"sha256": "mine"}}]}]}
    assert artifacts.merge(doc, ours)["outputs"] == [
        {"name": "a", "values": [{"uri": "s3://b/k", "digest": {"sha256": "mine"}}]}
    ]
    assert artifacts.merge({}, ours) == {"outputs": ours}


# -- offloading, the size warning, --fetch-result ---------------------------------------------------


def test_offload_replaces_only_oversized_results_and_fetch_result_gets_them_back(
    s3: S3Server, bucket: str, tmp_path: Path
) -> None:
    big = os.urandom(5000)
    edge = b"e" * 3072  # exactly the limit: kept
    small = b"small value"
    src = tmp_path / "src"
    src.mkdir()
    (src / "big").write_bytes(big)
    (src / "edge").write_bytes(edge)
    (src / "small").write_bytes(small)
    results = tmp_path / "produce" / "results"
    proc = wrap(
        s3,
        bucket,
        tmp_path,
        "produce",
        ["--offload-results-over", "3KiB"],
        write_results(f"cp {src}/big {src}/edge {src}/small {results}/"),
    )
    assert proc.returncode == 0, proc.stderr.decode()
    big_key = f"artifacts/{RUN}/produce/big.tgz"
    uri = f"s3://{bucket}/{big_key}"
    assert (results / "big").read_bytes() == uri.encode()
    assert (results / "edge").read_bytes() == edge
    assert (results / "small").read_bytes() == small
    assert untar_single(s3.read(bucket, big_key)) == ("big", big)  # the original bytes are stored
    offloaded = [{"name": "big", "uri": uri, "bytes": 5000}]
    assert manifest(s3, bucket, "produce")["results_offloaded"] == offloaded
    assert summary(s3, bucket, "produce")["results_offloaded"] == offloaded
    assert b"over Tekton's 4096-byte limit" not in proc.stderr

    consumed = tmp_path / "consume-out"
    args = [
        "--fetch-result",
        f"produce/big={tmp_path}/in/big",
        "--fetch-result",
        f"{uri}={tmp_path}/in/by-uri",
        "--fetch-result",
        f"{RUN}/produce/small={tmp_path}/in/small",
    ]
    # COMMAND sees the inputs when it starts
    copy = f"cat {tmp_path}/in/big {tmp_path}/in/by-uri {tmp_path}/in/small > {consumed}"
    proc = wrap(s3, bucket, tmp_path, "consume", args, write_results(copy))
    assert proc.returncode == 0, proc.stderr.decode()
    assert consumed.read_bytes() == big + big + small


def test_a_result_not_stored_is_not_offloaded(tmp_path: Path) -> None:
    """The bytes stay where Tekton can read them when the store never got them."""
    from conftest import clean_env, free_port

    env = clean_env(
        OBJECTSTORE_ENDPOINT=f"http://127.0.0.1:{free_port()}",
        OBJECTSTORE_ACCESS_KEY="a",
        OBJECTSTORE_SECRET_KEY="b",
    )
    results = tmp_path / "results"
    results.mkdir()
    data = os.urandom(5000)
    (results / "big").write_bytes(data)
    args = ["--pipelinerun", RUN, "--pipelinetask", "t", "--results-dir", str(results)]
    args += ["--flush-timeout", "2s", "--offload-results-over", "1KiB", "--preflight", "off"]
    proc = run_wrapper([*args, "--", "true"], env, cwd=tmp_path)
    assert proc.returncode == 74
    assert (results / "big").read_bytes() == data
    assert b"result 'big' (5000 bytes) not offloaded: its object was not stored" in proc.stderr


def test_fetch_result_missing_is_exit_2_before_command(s3: S3Server, bucket: str, tmp_path: Path) -> None:
    results = tmp_path / "produce" / "results"
    proc = wrap(s3, bucket, tmp_path, "produce", [], write_results(f"echo 1 > {results}/there"))
    assert proc.returncode == 0
    marker = tmp_path / "started"
    for spec in ("produce/absent", "nosuchtask/there", f"s3://{bucket}/artifacts/{RUN}/produce/absent.tgz"):
        proc = wrap(s3, bucket, tmp_path, "consume", ["--fetch-result", f"{spec}=x"], ["touch", str(marker)])
        assert proc.returncode == 2, (spec, proc.stderr)
        lines = proc.stderr.decode().splitlines()
        assert len(lines) == 1 and "--fetch-result" in lines[0] and "COMMAND not started" in lines[0], lines
        assert not marker.exists()
        assert not (tmp_path / "x").exists()
    assert b"results there: there" in proc.stderr or b"absent" in proc.stderr


@pytest.mark.parametrize(
    "spec", ["noequals", "a=", "=x", "only-one-part=x", "a/b/c/d=x", "s3://bucket=x", "a/../b=x"]
)
def test_bad_fetch_result_is_exit_2(s3: S3Server, bucket: str, tmp_path: Path, spec: str) -> None:
    marker = tmp_path / "started"
    proc = wrap(s3, bucket, tmp_path, "consume", ["--fetch-result", spec], ["touch", str(marker)])
    assert proc.returncode == 2
    assert proc.stderr.decode().count("\n") == 1 and "--fetch-result" in proc.stderr.decode()
    assert not marker.exists()


def test_size_warning_names_the_biggest_results(s3: S3Server, bucket: str, tmp_path: Path) -> None:
    results = tmp_path / "t" / "results"
    sizes = {"alpha": 2000, "beta": 10, "gamma": 1500, "delta": 700, "eps": 20}
    command = " && ".join(f"head -c {n} /dev/zero > {results}/{name}" for name, n in sizes.items())
    proc = wrap(s3, bucket, tmp_path, "t", [], write_results(command))
    assert proc.returncode == 0
    warnings = [ln for ln in proc.stderr.decode().splitlines() if "4096-byte limit" in ln]
    assert len(warnings) == 1, proc.stderr
    line = warnings[0]
    assert "results total 4230 bytes" in line
    assert "alpha (2000 bytes), gamma (1500 bytes), delta (700 bytes)" in line
    assert "beta" not in line and "eps" not in line
    assert "--offload-results-over" in line
    for name, n in sizes.items():  # warned, not offloaded
        assert (results / name).stat().st_size == n


def test_no_size_warning_under_the_limit(s3: S3Server, bucket: str, tmp_path: Path) -> None:
    results = tmp_path / "t" / "results"
    proc = wrap(s3, bucket, tmp_path, "t", [], write_results(f"head -c 4096 /dev/zero > {results}/r"))
    assert proc.returncode == 0
    assert b"4096-byte limit" not in proc.stderr


def test_step_results_are_stored_under_the_step(s3: S3Server, bucket: str, tmp_path: Path) -> None:
    step_results = tmp_path / "steps" / "step-build" / "results"
    step_results.mkdir(parents=True)
    results = tmp_path / "t" / "results"
    command = f"printf one > {step_results}/out && printf two > {results}/out"
    args = ["--step", "build", "--step-results-dir", str(step_results)]
    proc = wrap(s3, bucket, tmp_path, "t", args, write_results(command))
    assert proc.returncode == 0, proc.stderr.decode()
    assert untar_single(s3.read(bucket, f"artifacts/{RUN}/t/build/out.tgz")) == ("out", b"one")
    assert untar_single(s3.read(bucket, f"artifacts/{RUN}/t/out.tgz")) == ("out", b"two")
    kinds = {o["key"]: o["kind"] for o in manifest(s3, bucket, "t", "build")["objects"]}
    assert kinds[f"artifacts/{RUN}/t/build/out.tgz"] == "step-result"
    doc = summary(s3, bucket, "t", "build")
    assert doc["results"] == ["out"] and doc["step_results"] == ["out"]
    # and a consumer fetches the step result by its URI
    target = tmp_path / "got"
    uri = f"s3://{bucket}/artifacts/{RUN}/t/build/out.tgz"
    proc = wrap(s3, bucket, tmp_path, "c", ["--fetch-result", f"{uri}={target}"], ["true"])
    assert proc.returncode == 0, proc.stderr.decode()
    assert target.read_bytes() == b"one"


def test_a_50mb_result_passes_between_tasks_with_two_flags(s3: S3Server, bucket: str, tmp_path: Path) -> None:
    """Done when: a 50 MB result goes from one task to the next through the store, Tekton sees a URI."""
    data = os.urandom(50 * 1024 * 1024)
    (tmp_path / "model.bin").write_bytes(data)
    results = tmp_path / "train" / "results"
    proc = wrap(
        s3,
        bucket,
        tmp_path,
        "train",
        ["--offload-results-over", "3KiB"],  # flag 1
        write_results(f"cp {tmp_path}/model.bin {results}/model"),
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr.decode()
    value = (results / "model").read_bytes()  # what Tekton reads as $(tasks.train.results.model)
    assert value == f"s3://{bucket}/artifacts/{RUN}/train/model.tgz".encode()
    assert sum(p.stat().st_size for p in results.iterdir()) < 4096
    got = tmp_path / "evaluate-input"
    proc = wrap(
        s3,
        bucket,
        tmp_path,
        "evaluate",
        ["--fetch-result", f"{value.decode()}={got}"],  # flag 2
        ["sh", "-c", f"sha256sum {got}"],
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr.decode()
    assert proc.stdout.split()[0].decode() == hashlib.sha256(data).hexdigest()


def test_start_up_path_loads_no_fetch_machinery() -> None:
    """Without --fetch-result, nothing new is imported before COMMAND is spawned."""
    import subprocess
    import sys

    code = (
        "import sys, entrypoint.cli, entrypoint.settings.step, entrypoint.wrapper.supervisor, entrypoint.wrapper.hardening\n"
        "new = ('entrypoint.read', 'entrypoint.wrapper.inputs', 'entrypoint.results.artifacts', 'entrypoint.store', 'minio')\n"
        "print(sorted(m for m in sys.modules if m in new or m.startswith(tuple(n + '.' for n in new))))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, check=True, text=True).stdout
    assert out.strip() == "[]"
