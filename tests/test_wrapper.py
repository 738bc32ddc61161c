"""End-to-end tests of the wrapper CLI (a subprocess), against both stores."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import WRAPPER, StoreView, clean_env, run_wrapper, untar_single, wait_until

PREFIX = "artifacts/run-1/task-1/"
IDENTITY = ["--pipelinerun", "run-1", "--pipelinetask", "task-1"]
PY = sys.executable


def gen(n: int, seed: int = 1) -> bytes:
    import random

    return random.Random(seed).randbytes(n)


def gen_cmd(n: int, seed: int = 1, stream: str = "stdout") -> list[str]:
    return [PY, "-c", f"import random,sys; sys.{stream}.buffer.write(random.Random({seed}).randbytes({n}))"]


def chunks_concatenated(store: StoreView, step: str = "main") -> bytes:
    keys = store.keys(f"{PREFIX}logs/{step}/")
    return b"".join(store.read(k) for k in keys)


def args(tmp_path: Path, *extra: str) -> list[str]:
    return [*IDENTITY, "--results-dir", str(tmp_path / "results"), *extra]


# -- pass-through and the log --------------------------------------------------------------


def test_passthrough_is_byte_exact_and_log_matches(store: StoreView, tmp_path: Path) -> None:
    payload = gen(50 * 1024 * 1024 + 7)  # binary, no trailing newline, over several chunks
    proc = run_wrapper(
        [*args(tmp_path, "--log-chunk-size", "8MiB", "-q"), "--", *gen_cmd(len(payload))], store.env
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == payload
    assert chunks_concatenated(store) == payload
    name, content = untar_single(store.read(PREFIX + "main-log.tgz"))
    assert name == "main.log"
    assert content == payload
    assert len(store.keys(f"{PREFIX}logs/main/")) == 7


def test_stderr_passes_through_and_is_captured(store: StoreView, tmp_path: Path) -> None:
    cmd = [
        PY,
        "-c",
        "import sys; sys.stderr.write('to stderr'); sys.stderr.flush(); sys.stdout.write('to stdout')",
    ]
    proc = run_wrapper([*args(tmp_path, "-q"), "--", *cmd], store.env)
    assert proc.returncode == 0
    assert proc.stdout == b"to stdout"
    assert proc.stderr == b"to stderr"
    log = untar_single(store.read(PREFIX + "main-log.tgz"))[1]
    assert sorted([log[:9], log[9:]]) == [b"to stderr", b"to stdout"]


def test_empty_output_gives_an_empty_log(store: StoreView, tmp_path: Path) -> None:
    proc = run_wrapper([*args(tmp_path, "-q"), "--", "true"], store.env)
    assert proc.returncode == 0
    assert proc.stdout == b""
    assert untar_single(store.read(PREFIX + "main-log.tgz")) == ("main.log", b"")
    assert store.keys(f"{PREFIX}logs/") == []


def test_options_after_command_belong_to_command(store: StoreView, tmp_path: Path) -> None:
    proc = run_wrapper(
        [*args(tmp_path, "-q"), PY, "-c", "import sys; print(sys.argv[1:])", "--epochs", "3", "--", "-q"],
        store.env,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == b"['--epochs', '3', '--', '-q']\n"


def test_stdin_is_inherited(store: StoreView, tmp_path: Path) -> None:
    proc = run_wrapper([*args(tmp_path, "-q"), "--", "cat"], store.env, input=b"from stdin\n")
    assert proc.stdout == b"from stdin\n"
    assert chunks_concatenated(store) == b"from stdin\n"


def test_step_and_prefix_options(store: StoreView, tmp_path: Path) -> None:
    proc = run_wrapper(
        [
            *IDENTITY,
            "--results-dir",
            str(tmp_path),
            "--step",
            "build",
            "--key-prefix",
            "team/a",
            "-q",
            "--",
            "echo",
            "hi",
        ],
        store.env,
    )
    assert proc.returncode == 0
    assert store.keys("team/a/run-1/task-1/") == [
        "team/a/run-1/task-1/build-log.tgz",
        "team/a/run-1/task-1/build-manifest.json",
        "team/a/run-1/task-1/build-summary.json",
        "team/a/run-1/task-1/logs/build/00000000.log",
    ]


def test_slow_printer_has_first_chunk_stored_while_running(store: StoreView, tmp_path: Path) -> None:
    script = "import sys,time\nprint('first', flush=True)\nsys.stdin.read()\nprint('last')"
    proc = subprocess.Popen(
        [*WRAPPER, *args(tmp_path, "--log-flush-interval", "500ms", "-q"), "--", PY, "-c", script],
        env=store.env,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        first_key = PREFIX + "logs/main/00000000.log"
        # COMMAND blocks on stdin until we close it: the chunk is stored while it runs, however slow
        # the machine (how soon is the benchmark's business)
        wait_until(lambda: first_key in store.keys(PREFIX), timeout=60, what="first chunk")
        assert proc.poll() is None  # still running
        assert store.read(first_key) == b"first\n"
        out, _ = proc.communicate(b"", timeout=60)
    finally:
        proc.kill() if proc.poll() is None else None
    assert proc.returncode == 0
    assert out == b"first\nlast\n"
    assert chunks_concatenated(store) == b"first\nlast\n"
    assert untar_single(store.read(PREFIX + "main-log.tgz"))[1] == b"first\nlast\n"


# -- exit codes --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("command", "code"),
    [
        (["true"], 0),
        (["sh", "-c", "exit 3"], 3),
        (["sh", "-c", "exit 255"], 255),
        (["sh", "-c", "kill -KILL $$"], 137),
        (["sh", "-c", "kill -TERM $$"], 143),
    ],
)
def test_exit_code_is_commands(store: StoreView, tmp_path: Path, command: list[str], code: int) -> None:
    proc = run_wrapper([*args(tmp_path, "-q"), "--", *command], store.env)
    assert proc.returncode == code, proc.stderr
    assert PREFIX + "main-log.tgz" in store.keys(PREFIX)


def test_command_not_found_is_127(store: StoreView, tmp_path: Path) -> None:
    proc = run_wrapper([*args(tmp_path), "--", "no-such-command-xyz", "arg"], store.env)
    assert proc.returncode == 127
    assert proc.stderr.decode().strip() == "tekton-uploader: error: no-such-command-xyz: command not found"


def test_command_not_executable_is_126(store: StoreView, tmp_path: Path) -> None:
    script = tmp_path / "script.sh"
    script.write_text("#!/bin/sh\necho hi\n")
    script.chmod(0o644)
    proc = run_wrapper([*args(tmp_path), "--", str(script)], store.env)
    assert proc.returncode == 126
    line = proc.stderr.decode().strip()
    assert line.startswith(f"tekton-uploader: error: {script}: ") and "\n" not in line
    proc = run_wrapper([*args(tmp_path), "--", str(tmp_path)], store.env)  # a directory
    assert proc.returncode == 126


# -- results -------------------------------------------------------------------------------------


def test_results_are_archived_byte_exact(store: StoreView, tmp_path: Path) -> None:
    results = tmp_path / "results"
    results.mkdir()
    files = {
        "accuracy": b"0.97",
        "empty": b"",
        "big": gen(20 * 1024 * 1024, seed=2),
        "modèle-模型": b"unicode\n",
    }
    for name, content in files.items():
        (results / name).write_bytes(content)
    proc = run_wrapper([*args(tmp_path, "-q"), "--", "true"], store.env)
    assert proc.returncode == 0, proc.stderr
    for name, content in files.items():
        member, data = untar_single(store.read(f"{PREFIX}{name}.tgz"))
        assert member == name
        assert data == content


def test_results_written_by_command_are_archived(store: StoreView, tmp_path: Path) -> None:
    results = tmp_path / "results"
    results.mkdir()
    proc = run_wrapper([*args(tmp_path, "-q"), "--", "sh", "-c", f"printf 42 > {results}/answer"], store.env)
    assert proc.returncode == 0
    assert untar_single(store.read(PREFIX + "answer.tgz")) == ("answer", b"42")


def test_results_of_unusual_kinds_are_skipped_with_warning(store: StoreView, tmp_path: Path) -> None:
    results = tmp_path / "results"
    results.mkdir()
    outside = tmp_path / "secret"
    outside.write_bytes(b"do not leak")
    (results / "plain").write_bytes(b"ok")
    (results / "subdir").mkdir()
    os.mkfifo(results / "fifo")
    (results / "to-outside").symlink_to(outside)
    (results / "to-plain").symlink_to(results / "plain")
    (results / "bad\nname").write_bytes(b"x")
    proc = run_wrapper([*args(tmp_path), "--", "true"], store.env)
    assert proc.returncode == 0
    stored = store.keys(PREFIX)
    assert PREFIX + "plain.tgz" in stored
    assert untar_single(store.read(PREFIX + "to-plain.tgz")) == ("to-plain", b"ok")
    for skipped in ("subdir", "fifo", "to-outside"):
        assert f"{PREFIX}{skipped}.tgz" not in stored
        assert f"result '{skipped}' skipped" in proc.stderr.decode()
    assert not any("bad" in k for k in stored)
    assert "skipped: its name contains control characters" in proc.stderr.decode()
    for key in stored:
        assert b"do not leak" not in store.read(key)


def test_missing_results_dir_is_not_an_error(store: StoreView, tmp_path: Path) -> None:
    proc = run_wrapper([*IDENTITY, "--results-dir", str(tmp_path / "nope"), "-q", "--", "true"], store.env)
    assert proc.returncode == 0
    assert proc.stderr == b""
    assert store.keys(PREFIX) == [
        PREFIX + "main-log.tgz",
        PREFIX + "main-manifest.json",
        PREFIX + "main-summary.json",
    ]


# -- identity ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("labels", "prefix"),
    [
        (
            'tekton.dev/pipelineRun="pr-7"\ntekton.dev/pipelineTask="train"\ntekton.dev/task="t"\n',
            "pr-7/train",
        ),
        ('tekton.dev/taskRun="tr-1"\ntekton.dev/task="build"\n', "tr-1/build"),
        ('app="x"\ntekton.dev/taskRun="tr-2"\n', "tr-2/tr-2"),
    ],
)
def test_identity_from_pod_labels(store: StoreView, tmp_path: Path, labels: str, prefix: str) -> None:
    (tmp_path / "labels").write_text(labels)
    proc = run_wrapper(
        ["--pod-labels", str(tmp_path / "labels"), "--results-dir", str(tmp_path), "-q", "--", "echo", "x"],
        store.env,
    )
    assert proc.returncode == 0, proc.stderr
    assert f"artifacts/{prefix}/main-log.tgz" in store.keys("artifacts/")


def test_identity_flags_win_over_environment(store: StoreView, tmp_path: Path) -> None:
    env = {**store.env, "PIPELINERUN": "env-run", "PIPELINETASK": "env-task"}
    proc = run_wrapper(["--pipelinerun", "flag-run", "--results-dir", str(tmp_path), "-q", "--", "true"], env)
    assert proc.returncode == 0
    assert store.keys("artifacts/") == [
        "artifacts/flag-run/env-task/main-log.tgz",
        "artifacts/flag-run/env-task/main-manifest.json",
        "artifacts/flag-run/env-task/main-summary.json",
    ]


# -- signals -------------------------------------------------------------------------------------


def test_sigterm_is_forwarded_and_final_flush_done(store: StoreView, tmp_path: Path) -> None:
    script = (
        "import signal,sys,time\n"
        "def bye(*a):\n    print('got TERM', flush=True); sys.exit(0)\n"
        "signal.signal(signal.SIGTERM, bye)\nprint('ready', flush=True)\n"
        "while True: signal.pause()\n"
    )
    proc = subprocess.Popen(
        [*WRAPPER, *args(tmp_path, "-q"), "--", PY, "-c", script],
        env=store.env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert proc.stdout is not None
    assert proc.stdout.readline() == b"ready\n"
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    assert out == b"got TERM\n"
    assert untar_single(store.read(PREFIX + "main-log.tgz"))[1] == b"ready\ngot TERM\n"


# -- bad input -----------------------------------------------------------------------------------

SECRET = "very-secret-value-123"


@pytest.mark.parametrize(
    ("argv", "env_extra", "needle"),
    [
        (["--endpoint", "ftp://x"], {}, "--endpoint"),
        (["--endpoint", "http://"], {}, "--endpoint"),
        (["--endpoint", "http://host:notaport"], {}, "--endpoint"),
        (["--endpoint", "http://h/path"], {}, "--endpoint"),
        (["--bucket", "Bad_Bucket"], {}, "--bucket"),
        (["--bucket", "ab"], {}, "--bucket"),
        (["--endpoint", "http://127.0.0.1:9"], {"OBJECTSTORE_SECRET_KEY": SECRET}, "--access-key"),
        (["--no-such-option"], {}, "--no-such-option"),
        (["--log-chunk-size", "lots"], {}, "--log-chunk-size"),
        (["--log-flush-interval", "soon"], {}, "--log-flush-interval"),
        ([], {"OBJECTSTORE_CREATE_BUCKET": "maybe"}, "--create-bucket"),
        (["--pipelinerun", ".."], {}, "--pipelinerun"),
        (["--pipelinetask", "a/b"], {}, "--pipelinetask"),
        (["--pipelinetask", ""], {}, "--pipelinetask"),
        ([], {"PIPELINETASK": "t\x01"}, "--pipelinetask"),
        (["--step", "x/y"], {}, "--step"),
    ],
)
def test_bad_input_is_one_line_exit_2_command_not_started(
    tmp_path: Path, argv: list[str], env_extra: dict[str, str], needle: str
) -> None:
    marker = tmp_path / "ran"
    env = clean_env(**{"PIPELINERUN": "r", "PIPELINETASK": "t", **env_extra})
    base = ["--pod-labels", str(tmp_path / "none"), "--endpoint", f"file://{tmp_path}/s"]
    proc = run_wrapper([*base, *argv, "--", "touch", str(marker)], env, cwd=tmp_path)
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.decode().splitlines()
    assert len(lines) == 1, lines
    assert lines[0].startswith("tekton-uploader: error: ")
    assert needle in lines[0]
    assert "Traceback" not in lines[0]
    assert SECRET not in lines[0]
    assert not marker.exists()
    assert proc.stdout == b""


def test_no_command_is_exit_2(tmp_path: Path) -> None:
    proc = run_wrapper(["--pipelinerun", "r", "--pipelinetask", "t"], clean_env(), cwd=tmp_path)
    assert proc.returncode == 2
    assert proc.stderr.decode().startswith("tekton-uploader: error: no COMMAND given")


def test_missing_identity_says_how_to_set_it(tmp_path: Path) -> None:
    proc = run_wrapper(["--pod-labels", str(tmp_path / "none"), "--", "true"], clean_env(), cwd=tmp_path)
    assert proc.returncode == 2
    line = proc.stderr.decode().strip()
    assert "--pipelinerun" in line and "PIPELINERUN" in line and "downward API" in line


def test_unreachable_store_still_runs_command_and_reports_missing(tmp_path: Path) -> None:
    from conftest import free_port

    env = clean_env(
        OBJECTSTORE_ENDPOINT=f"http://127.0.0.1:{free_port()}",
        OBJECTSTORE_ACCESS_KEY="a",
        OBJECTSTORE_SECRET_KEY=SECRET,
    )
    started = time.monotonic()
    proc = run_wrapper([*args(tmp_path, "--flush-timeout", "2s"), "--", "echo", "did run"], env)
    assert time.monotonic() - started < 30
    assert proc.stdout == b"did run\n"
    assert proc.returncode == 74
    err = proc.stderr.decode()
    assert f"not stored: {PREFIX}main-log.tgz" in err
    assert f"not stored: {PREFIX}logs/main/00000000.log" in err
    assert SECRET not in err
    # COMMAND's own failure code wins over the upload failure
    proc = run_wrapper([*args(tmp_path, "--flush-timeout", "1s"), "--", "sh", "-c", "exit 9"], env)
    assert proc.returncode == 9


# -- embedded default ----------------------------------------------------------------------------


def test_embedded_default_stores_in_local_directory(tmp_path: Path) -> None:
    proc = run_wrapper(
        [*IDENTITY, "--results-dir", str(tmp_path / "r"), "--", "echo", "hello"], clean_env(), cwd=tmp_path
    )
    assert proc.returncode == 0
    assert proc.stdout == b"hello\n"
    lines = proc.stderr.decode().splitlines()
    assert len(lines) == 2
    assert "no --endpoint set: storing objects in objectstore/mlpipeline" in lines[0]
    assert "COMMAND ended with exit code 0" in lines[1]
    archive = tmp_path / "objectstore/mlpipeline" / PREFIX / "main-log.tgz"
    assert untar_single(archive.read_bytes()) == ("main.log", b"hello\n")


# -- words (issue 19) ----------------------------------------------------------------------------


def test_the_timeout_line_is_a_sentence(store: StoreView, tmp_path: Path) -> None:
    proc = run_wrapper(args(tmp_path, "--timeout", "1s", "--", "sleep", "30"), store.env)
    assert proc.returncode == 124
    text = proc.stderr.decode()
    assert "ended with timed out" not in text
    line = next(line for line in text.splitlines() if "main: COMMAND" in line)
    assert "main: COMMAND was stopped by --timeout (signal 15) after " in line, line
    wall = float(line.split(" after ", 1)[1].split("s ", 1)[0])
    assert wall >= 1.0  # measured from COMMAND's spawn, so never less than the --timeout itself


def test_both_help_texts_list_every_object_kind() -> None:
    for argv in ([*WRAPPER, "--help"], [PY, "-m", "entrypoint.read", "--help"]):
        text = subprocess.run(argv, capture_output=True, text=True, env=clean_env(), timeout=60).stdout
        for kind in ("<result>.tgz", "<step>-log.tgz", "<step>-summary.json", "<step>-manifest.json",
                     "logs/<step>/<chunk>.log"):
            assert kind in text, (argv, kind)


def test_the_unreachable_store_warning_names_the_option_to_check(tmp_path: Path) -> None:
    from conftest import free_port

    env = clean_env(OBJECTSTORE_ENDPOINT=f"http://127.0.0.1:{free_port()}", OBJECTSTORE_ACCESS_KEY="a",
                    OBJECTSTORE_SECRET_KEY="secret-value")
    proc = run_wrapper(args(tmp_path, "--flush-timeout", "1s", "--", PY, "-c", "import time; time.sleep(2)"), env)
    text = proc.stderr.decode()
    line = next(line for line in text.splitlines() if "not reachable yet" in line)
    assert "check --endpoint (OBJECTSTORE_ENDPOINT)" in line
