"""``tekton-uploader-read``'s command line as kubectl/tkn users type it (issue 19): store options
before the subcommand, ``-o json``, a bare call, ``logs -f`` before the step started, ``logs RUN``
for every task, and the library Logger's logs (``library-logs``)."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

from conftest import StoreView, clean_env, wait_until
from test_read import PREFIX, READER, Collector, Objects, error_line, read, tgz, wrap

from entrypoint.formats.layout import LIBRARY_LOGS


def test_store_options_go_before_or_after_the_subcommand(store: StoreView, tmp_path: Path) -> None:
    assert wrap(store, tmp_path, ["echo", "hi"]).returncode == 0
    endpoint, bucket = store.env["OBJECTSTORE_ENDPOINT"], store.env["OBJECTSTORE_BUCKET"]
    env = {k: v for k, v in store.env.items() if k not in ("OBJECTSTORE_ENDPOINT", "OBJECTSTORE_BUCKET")}
    before = read(["--endpoint", endpoint, "--bucket", bucket, "logs", "run-1/task-1"], env)
    assert (before.returncode, before.stdout) == (0, b"hi\n"), before.stderr
    after = read(["logs", "run-1/task-1", "--endpoint", endpoint, "--bucket", bucket], env)
    assert (after.returncode, after.stdout) == (0, b"hi\n"), after.stderr
    # After the subcommand wins over before it, as a later flag does.
    both = read(
        ["--bucket", "no-such-bucket", "logs", "run-1/task-1", "--bucket", bucket, "--endpoint", endpoint],
        env,
    )
    assert (both.returncode, both.stdout) == (0, b"hi\n"), both.stderr
    wrong = read(["--bucket", "no-such-bucket", "--endpoint", endpoint, "ls"], env)
    assert wrong.returncode == 1 and "--bucket" in error_line(wrong)


def test_store_options_are_listed_once_in_the_groups_help() -> None:
    group_help = read(["--help"], clean_env()).stdout.decode()
    listed = [line for line in group_help.splitlines() if line.lstrip().startswith("--endpoint")]
    assert len(listed) == 1 and "--access-key-file" in group_help
    assert "<step>-summary.json" in group_help and "<step>-manifest.json" in group_help
    for command in ("ls", "logs", "get", "summary", "library-logs"):
        text = read([command, "--help"], clean_env()).stdout.decode()
        assert "--endpoint" in text and "--ca-bundle" not in text, command  # only the pointer line
        assert len(text.splitlines()) < 35, (command, text)


def test_bare_command_prints_the_usage_on_several_lines_and_exits_2() -> None:
    got = read([], clean_env())
    assert got.returncode == 2 and got.stdout == b""
    lines = got.stderr.decode().splitlines()
    assert lines[0].startswith("Usage: tekton-uploader-read [STORE OPTIONS] COMMAND")
    assert len(lines) > 5 and not any(line.startswith("tekton-uploader-read: error") for line in lines)
    assert any(line.split()[:1] == ["logs"] for line in lines)


def test_output_json_as_kubectl_spells_it(store: StoreView, tmp_path: Path) -> None:
    assert wrap(store, tmp_path, ["echo", "hi"]).returncode == 0
    for args in (["ls"], ["ls", "run-1"], ["ls", "run-1/task-1"], ["summary", "run-1"]):
        expected = json.loads(read([*args, "--json"], store.env).stdout)
        for spelling in (["-o", "json"], ["--output", "json"], ["--output=json"], ["-ojson"]):
            got = read([*args, *spelling], store.env)
            assert got.returncode == 0, (args, spelling, got.stderr)
            doc = json.loads(got.stdout)
            if args[0] == "ls" and len(args) == 2 and "/" in args[1]:
                for a, b in zip(doc["objects"], expected["objects"]):
                    assert a["key"] == b["key"]
            else:
                assert doc == expected, (args, spelling)
    got = read(["ls", "-o", "yaml"], store.env)
    assert got.returncode == 2 and "yaml" in error_line(got)


def test_follow_waits_for_a_step_that_has_not_stored_anything(store: StoreView) -> None:
    objects = Objects(store)
    objects.put("unrelated/key", b"x")  # the bucket exists; the run does not yet
    reader = subprocess.Popen(
        [*READER, "logs", "-f", "run-1/task-1", "--interval", "100ms"],
        env=store.env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        assert reader.stderr is not None
        line = reader.stderr.readline().decode()
        assert line.startswith("tekton-uploader-read: waiting up to 10m for step 'main' of run-1/task-1"), (
            line
        )
        assert "--wait" in line
        followed = Collector(reader.stdout)
        objects.put(PREFIX + "logs/main/00000000.log", b"first\n")
        wait_until(lambda: followed.data == b"first\n", timeout=20, what="first chunk followed")
        objects.put(PREFIX + "main-summary.json", json.dumps({"exit_code": 3}).encode())
        objects.put(PREFIX + "main-log.tgz", tgz("main.log", b"first\nsecond\n"))
        assert reader.wait(timeout=30) == 3
        assert followed.join() == b"first\nsecond\n"
        assert reader.stderr.read() == b""  # the waiting line was the only one
    finally:
        if reader.poll() is None:
            reader.kill()
            reader.wait()


def test_follow_gives_up_after_wait(store: StoreView) -> None:
    objects = Objects(store)
    objects.put("artifacts/run-1/other/logs/main/00000000.log", b"x\n")
    started = time.monotonic()
    got = read(
        ["logs", "-f", "run-1/task-1", "--interval", "100ms", "--wait", "300ms"], store.env, timeout=60
    )
    assert got.returncode == 1
    assert "has no pipelinetask 'task-1'" in error_line(got) and "other" in error_line(got)
    assert "waiting up to 0.3s" in got.stderr.decode()
    objects.put(PREFIX + "main-summary.json", b'{"exit_code": 0}')  # the task exists; its log does not
    got = read(
        ["logs", "-f", "run-1/task-1", "--interval", "100ms", "--wait", "300ms"], store.env, timeout=60
    )
    assert got.returncode == 1 and "no log of step 'main'" in error_line(got) and "--wait" in error_line(got)
    assert time.monotonic() - started < 50


def test_logs_of_a_run_prints_every_task_in_order_each_headed(store: StoreView, tmp_path: Path) -> None:
    base = ["--pipelinerun", "run-1", "--results-dir", str(tmp_path), "-q"]
    from conftest import run_wrapper

    assert run_wrapper([*base, "--pipelinetask", "zeta", "--", "echo", "first"], store.env).returncode == 0
    assert (
        run_wrapper([*base, "--pipelinetask", "alpha", "--", "printf", "no newline"], store.env).returncode
        == 0
    )
    steps = [*base, "--pipelinetask", "alpha", "--step", "second"]
    assert run_wrapper([*steps, "--", "echo", "two"], store.env).returncode == 0
    got = read(["logs", "run-1"], store.env)
    assert got.returncode == 0, got.stderr
    assert got.stdout == (
        b"==> zeta (step main) <==\nfirst\n\n==> alpha (step main) <==\nno newline\n\n"
        b"==> alpha (step second) <==\ntwo\n"
    )
    got = read(["logs", "run-1", "--step", "second"], store.env)
    assert got.returncode == 1  # zeta has no step "second": said, the others still printed
    assert got.stdout == b"==> zeta (step second) <==\n\n==> alpha (step second) <==\ntwo\n"
    assert "no log of step 'second' for run-1/zeta" in got.stderr.decode()
    got = read(["logs", "-f", "run-1"], store.env)
    assert got.returncode == 2 and "--follow needs PIPELINERUN/PIPELINETASK" in error_line(got)


LOGGER_SCRIPT = """
import sys
from entrypoint import Logger, ObjectStoreConfig
config = ObjectStoreConfig.from_env()
with Logger(config, max_size=10, flush_interval=0) as log:
    log.write(b"one line\\n")
    log.write(b"two lines\\n")
print(log.prefix)
"""


def test_library_logs_are_listed_and_printed_and_not_taken_for_a_run(
    store: StoreView, tmp_path: Path
) -> None:
    assert wrap(store, tmp_path, ["echo", "hi"]).returncode == 0
    proc = subprocess.run(
        [sys.executable, "-c", LOGGER_SCRIPT], env=store.env, capture_output=True, timeout=120, cwd=tmp_path
    )
    assert proc.returncode == 0, proc.stderr
    prefix = proc.stdout.decode().strip()
    assert prefix.startswith(f"artifacts/{LIBRARY_LOGS}/") and prefix.endswith("/")
    log_id = prefix.rstrip("/").rsplit("/", 1)[1]
    chunks = len(store.keys(prefix))
    assert chunks >= 2

    # Written before the move (0.1): <prefix>/logs/<id>/, still found.
    objects = Objects(store)
    objects.put("artifacts/logs/20250101T000000.000000Z-old-1/00000000.log", b"old ")
    objects.put("artifacts/logs/20250101T000000.000000Z-old-1/00000001.log", b"logger\n")

    assert read(["ls"], store.env).stdout == b"run-1\n"  # neither _logs nor logs is a pipeline run
    listed = json.loads(read(["library-logs", "-o", "json"], store.env).stdout)
    assert [(r["id"], r["size"], r["chunks"]) for r in listed] == [
        ("20250101T000000.000000Z-old-1", 11, 2),
        (log_id, 19, chunks),
    ]
    text = read(["library-logs"], store.env).stdout.decode().splitlines()
    assert text[0].split() == ["SIZE", "MODIFIED", "ID"] and text[2].split()[-1] == log_id

    got = read(["library-logs", log_id], store.env)
    assert (got.returncode, got.stdout, got.stderr) == (0, b"one line\ntwo lines\n", b"")
    got = read(["library-logs", "20250101T000000.000000Z-old-1"], store.env)
    assert (got.returncode, got.stdout) == (0, b"old logger\n")
    got = read(["library-logs", log_id[:-1]], store.env)
    assert got.returncode == 1 and "did you mean" in error_line(got)

    objects.put("artifacts/logs/task/logs/main/00000000.log", b"a run named logs\n")  # deeper: a run's
    objects.delete("artifacts/logs/20250101T000000.000000Z-old-1/00000000.log")
    objects.delete("artifacts/logs/20250101T000000.000000Z-old-1/00000001.log")
    assert read(["ls"], store.env).stdout == b"logs\nrun-1\n"
    assert [r["id"] for r in json.loads(read(["library-logs", "--json"], store.env).stdout)] == [log_id]
