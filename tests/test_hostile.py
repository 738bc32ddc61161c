"""Hostile input (issue 18): what can be checked before COMMAND starts is refused before it starts,
with exit 2 and one line naming the option and the fix; COMMAND never runs."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from conftest import clean_env, run_wrapper

IDENTITY = ["--pipelinerun", "run-h", "--pipelinetask", "task-h"]


def _cap_memory() -> None:
    """An unbounded read (``/dev/zero``) must fail the test, not exhaust the machine's memory."""
    import resource

    resource.setrlimit(resource.RLIMIT_AS, (2 << 30, 2 << 30))


def refused(tmp_path: Path, argv: list[str], env: dict[str, str] | None = None) -> str:
    """Run the wrapper with ``argv``; assert exit 2, COMMAND not run, one stderr line; return it.
    ``--pod-labels`` in ``argv``: the names come from that file."""
    marker = tmp_path / "ran"
    base = clean_env(OBJECTSTORE_ENDPOINT=f"file://{tmp_path}/s", **(env or {}))
    identity = [] if "--pod-labels" in argv else IDENTITY
    proc = run_wrapper(
        [*identity, *argv, "--", "touch", str(marker)], base, cwd=tmp_path, timeout=60, preexec_fn=_cap_memory
    )
    lines = proc.stderr.decode(errors="replace").splitlines()
    assert proc.returncode == 2, lines
    assert not marker.exists(), "COMMAND ran"
    assert len(lines) == 1, lines
    assert "Traceback" not in lines[0]
    prefix = "tekton-uploader: error: "
    assert lines[0].startswith(prefix), lines
    return lines[0][len(prefix) :]


@pytest.mark.parametrize(
    ("argv", "needle"),
    [
        (["--log-chunk-size", "0"], "--log-chunk-size: must be at least 1KiB; give a value from 1KiB to 5GiB"),
        (["--log-chunk-size", "6GiB"], "--log-chunk-size: must be at most 5GiB"),
        (["--log-flush-interval", "0"], "--log-flush-interval: must be greater than 0"),
        (["--log-flush-interval", "720h"], "--log-flush-interval: must be at most 24h"),
        (["--timeout", "720h"], "--timeout: must be at most 500h"),
        (["--timeout", "0"], "--timeout: must be greater than 0"),
        (["--flush-timeout", "9999999999"], "--flush-timeout: must be at most 24h"),
        (["--connect-timeout", "9999999999"], "--connect-timeout: must be at most 1h"),
        (["--read-timeout", "9999999999"], "--read-timeout: must be at most 1h"),
        (["--kill-after", "9999999999"], "--kill-after: must be at most 24h"),
        (["--termination-grace", "9999999999"], "--termination-grace: must be at most 24h"),
        (["--spool-limit", "2000TiB"], "--spool-limit: must be at most 1024TiB"),
        (["--offload-results-over", "2GiB"], "--offload-results-over: must be at most 1GiB"),
    ],
)
def test_sizes_and_durations_out_of_range_are_refused_before_command(
    tmp_path: Path, argv: list[str], needle: str
) -> None:
    assert needle in refused(tmp_path, argv)


def test_zero_from_the_environment_is_refused_too(tmp_path: Path) -> None:
    line = refused(tmp_path, [], {"OBJECTSTORE_LOG_FLUSH_INTERVAL": "0"})
    assert "--log-flush-interval: must be greater than 0" in line


def test_every_size_and_duration_option_has_a_documented_range() -> None:
    from entrypoint.options.wrapper import OPTIONS

    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text()
    for option in OPTIONS:
        if option.kind in ("size", "duration"):
            low, high = option.limits
            assert low and high, f"{option.name} has no range"
            assert f"{low} to {high}" in str(option.click_kwargs()["help"])
            row = next(line for line in readme.splitlines() if line.startswith(f"| `{option.flags[0]} "))
            assert f"{low} to {high}" in row, row


def test_reader_durations_have_a_range(tmp_path: Path) -> None:
    import subprocess
    import sys

    proc = subprocess.run(
        [sys.executable, "-m", "entrypoint.read", "logs", "r/t", "--follow", "--interval", "720h"],
        env=clean_env(OBJECTSTORE_ENDPOINT=f"file://{tmp_path}/s"),
        capture_output=True,
        cwd=tmp_path,
        check=False,
    )
    assert proc.returncode == 2
    assert b"give a value from 10ms to 1h" in proc.stderr


# -- secrets with a line break --------------------------------------------------------------------

TOKEN = "FwoGZXIvYXdzEJr8Qm3vT1xK9pLw2ZbN4cY7"


@pytest.mark.parametrize(
    ("env", "option"),
    [
        ({"OBJECTSTORE_ACCESS_KEY": "AKIAEXAMPLE", "OBJECTSTORE_SECRET_KEY": "s3cr3t-value-xyz",
          "OBJECTSTORE_SESSION_TOKEN": TOKEN + "\r\nX-Evil: 1"}, "--session-token"),
        ({"OBJECTSTORE_ACCESS_KEY": "AKIAEXAMPLE", "OBJECTSTORE_SECRET_KEY": TOKEN + "\rmore"},
         "--secret-key"),
        ({"AWS_ACCESS_KEY_ID": "AKIAEXAMPLE", "AWS_SECRET_ACCESS_KEY": "s3cr3t-value-xyz",
          "AWS_SESSION_TOKEN": TOKEN + "\nX-Evil: 1"}, "AWS_SESSION_TOKEN"),
    ],
)
def test_secret_with_a_line_break_is_refused_before_command(
    tmp_path: Path, env: dict[str, str], option: str
) -> None:
    line = refused(tmp_path, ["--endpoint", "http://127.0.0.1:9"], env)
    assert line.startswith(f"{option}: ") and "line break" in line, line
    assert "FwoGZXIv" not in line and "X-Evil" not in line and "s3cr3t" not in line


def test_line_wrapped_token_file_is_refused_before_command(tmp_path: Path) -> None:
    token = tmp_path / "token"
    token.write_text(TOKEN[:20] + "\n" + TOKEN[20:] + "\n")
    env = {"OBJECTSTORE_ACCESS_KEY": "AKIAEXAMPLE", "OBJECTSTORE_SECRET_KEY": "s3cr3t-value-xyz",
           "OBJECTSTORE_SESSION_TOKEN_FILE": str(token)}
    line = refused(tmp_path, ["--endpoint", "http://127.0.0.1:9"], env)
    assert line.startswith("--session-token-file: ") and str(token) in line, line
    assert TOKEN[:8] not in line and TOKEN[20:28] not in line


def test_redactor_blanks_every_form_of_a_secret() -> None:
    from entrypoint import redact

    secret = TOKEN + "\r\nX-Evil: 1/é"
    redact.add(secret)
    try:
        for form in (
            secret,
            repr(secret),
            repr(secret.encode()),
            f"Invalid header value {secret.encode()!r}",
            __import__("json").dumps(secret),
            __import__("urllib.parse").parse.quote(secret, safe=""),
            TOKEN,  # one line of it alone
        ):
            out = redact.redact(f"error: {form} end")
            assert "FwoGZXIv" not in out and "Evil" not in out, out
            assert out.startswith("error: ") and out.endswith(" end"), out
    finally:
        redact.clear()


# -- files the wrapper reads: regular files only, with a size cap ---------------------------------

KEYS = {"OBJECTSTORE_ACCESS_KEY": "AKIAEXAMPLE", "OBJECTSTORE_SECRET_KEY": "s3cr3t-value-xyz"}


def _special(tmp_path: Path, kind: str) -> Path:
    if kind == "fifo":
        fifo = tmp_path / "fifo"
        os.mkfifo(fifo)
        return fifo
    return Path("/dev/zero")


@pytest.mark.parametrize("kind", ["fifo", "zero"])
@pytest.mark.parametrize(
    ("option", "argv", "env"),
    [
        ("--pod-labels", ["--endpoint", "http://127.0.0.1:9", "--pod-labels", "{f}"], KEYS),
        ("--secret-key-file", ["--endpoint", "http://127.0.0.1:9", "--secret-key-file", "{f}"],
         {"OBJECTSTORE_ACCESS_KEY": "AKIAEXAMPLE"}),
        ("--session-token-file", ["--endpoint", "http://127.0.0.1:9", "--session-token-file", "{f}"], KEYS),
        ("AWS_SHARED_CREDENTIALS_FILE", ["--endpoint", "http://127.0.0.1:9"], {"AWS_SHARED_CREDENTIALS_FILE": "{f}"}),
        ("--sse-c-key-file", ["--endpoint", "https://127.0.0.1:9", "--sse", "c", "--sse-c-key-file", "{f}"], KEYS),
        ("--ca-bundle", ["--endpoint", "https://127.0.0.1:9", "--ca-bundle", "{f}"], KEYS),
    ],
)
def test_special_files_are_refused_without_reading_them(
    tmp_path: Path, kind: str, option: str, argv: list[str], env: dict[str, str]
) -> None:
    special = str(_special(tmp_path, kind))
    argv = [a.replace("{f}", special) for a in argv]
    env = {k: v.replace("{f}", special) for k, v in env.items()}
    line = refused(tmp_path, argv, env)  # a hang or an unbounded read fails the test by its timeout
    assert line.startswith(f"{option}: {special} is a "), line
    assert "not a regular file; give a regular file" in line, line


def test_a_huge_labels_file_is_refused(tmp_path: Path) -> None:
    labels = tmp_path / "labels"
    with open(labels, "wb") as f:
        f.truncate(2 * 1024 * 1024)
    line = refused(tmp_path, ["--pod-labels", str(labels)])
    assert line == f"--pod-labels: {labels} is larger than 1MiB; is it the right file?"


# -- the spool directory --------------------------------------------------------------------------


@pytest.mark.parametrize("where", ["file", "/proc", "/proc/sub"])
def test_unusable_spool_dir_is_refused_before_command(tmp_path: Path, where: str) -> None:
    spool = tmp_path / "a-file" if where == "file" else Path(where)
    if where == "file":
        spool.write_text("x")
    line = refused(tmp_path, ["--spool-dir", str(spool)])
    assert line.startswith(f"--spool-dir: cannot create {spool}: "), line
    assert line.endswith("; give a writable directory with --spool-dir (OBJECTSTORE_SPOOL_DIR)"), line


def test_spool_lost_mid_run_keeps_output_and_reports_missing_objects(tmp_path: Path) -> None:
    spool = tmp_path / "spool"
    script = (
        f"echo before; ls -d {spool}/tekton-uploader-* >/dev/null || exit 9; "  # made before COMMAND
        f"rm -rf {spool}/*; for i in 1 2 3 4 5; do echo after$i; done"
    )
    env = clean_env(OBJECTSTORE_ENDPOINT=f"file://{tmp_path}/s")
    argv = [*IDENTITY, "--spool-dir", str(spool), "--results-dir", str(tmp_path / "none"), "--", "sh", "-c"]
    proc = run_wrapper([*argv, script], env, cwd=tmp_path, timeout=60)
    assert proc.stdout == b"before\n" + b"".join(b"after%d\n" % i for i in range(1, 6))
    err = proc.stderr.decode()
    assert proc.returncode == 74, err  # COMMAND succeeded, objects are missing: the documented code
    assert "not stored: artifacts/run-h/task-h/main-log.tgz" in err, err
    assert "Traceback" not in err
    proc = run_wrapper([*argv, script + "; exit 3"], env, cwd=tmp_path, timeout=60)
    assert proc.returncode == 3
    assert proc.stdout.endswith(b"after5\n")


# -- the reader and --fetch-result write to a device or a pipe in place -------------------------


def _stored_result(tmp_path: Path, data: bytes) -> dict[str, str]:
    env = clean_env(OBJECTSTORE_ENDPOINT=f"file://{tmp_path}/s")
    results = tmp_path / "results"
    results.mkdir()
    (results / "model").write_bytes(data)
    proc = run_wrapper([*IDENTITY, "--results-dir", str(results), "-q", "--", "true"], env, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    return env


def test_get_to_a_device_writes_in_place_and_keeps_the_device(tmp_path: Path) -> None:
    import stat
    import subprocess
    import sys

    env = _stored_result(tmp_path, b"model bytes\n" * 1000)
    null = tmp_path / "null"  # a node of our own: the machine's /dev/null is not put at risk
    os.mknod(null, stat.S_IFCHR | 0o666, os.makedev(1, 3))
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    reader = subprocess.Popen(["cat", str(fifo)], stdout=subprocess.PIPE)
    for target in (null, fifo):
        proc = subprocess.run(
            [sys.executable, "-m", "entrypoint.read", "get", "run-h/task-h", "model", "-o", str(target)],
            env=env, capture_output=True, cwd=tmp_path, timeout=60, check=False,
        )  # fmt: skip
        assert proc.returncode == 0, proc.stderr
    got, _ = reader.communicate(timeout=60)
    assert got == b"model bytes\n" * 1000
    assert stat.S_ISCHR(os.stat(null).st_mode), "the device was replaced by a regular file"
    assert stat.S_ISFIFO(os.stat(fifo).st_mode)
    assert not [p for p in os.listdir(tmp_path) if p.endswith(".part")]


def test_fetch_result_to_a_device_keeps_the_device(tmp_path: Path) -> None:
    import stat

    env = _stored_result(tmp_path, b"input\n")
    null = tmp_path / "null"
    os.mknod(null, stat.S_IFCHR | 0o666, os.makedev(1, 3))
    argv = ["--pipelinerun", "run-h", "--pipelinetask", "task-2", "--results-dir", str(tmp_path / "none")]
    proc = run_wrapper([*argv, "--fetch-result", f"task-h/model={null}", "-q", "--", "true"], env, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert stat.S_ISCHR(os.stat(null).st_mode), "the device was replaced by a regular file"


# -- names, buckets and regions -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("argv", "needle"),
    [
        (["--step", " "], "--step: step ' ' is only white space"),
        (["--step", "\u3000"], "is only white space"),
        (["--step", "\uff05\uff12\uff45"], "percent-encodes a path separator, a control character, '.' or '..'"),
        (["--step", "\uff05\uff12\uff45\uff05\uff12\uff45"], "percent-encodes"),
        (["--key-prefix", "a/ /b"], "--key-prefix: "),
        (["--bucket", "xn--bucket"], "--bucket: invalid bucket name 'xn--bucket': must not use a form S3 reserves"),
        (["--bucket", "sthree-logs"], "must not use a form S3 reserves"),
        (["--bucket", "logs-s3alias"], "must not use a form S3 reserves"),
        (["--bucket", "logs--ol-s3"], "must not use a form S3 reserves"),
        (["--bucket", "logs.mrap"], "must not use a form S3 reserves"),
        (["--endpoint", "http://127.0.0.1:9", "--region", "bad region"], "--region: 'bad region' is not a region name"),
    ],
)
def test_names_no_store_accepts_are_refused_before_command(tmp_path: Path, argv: list[str], needle: str) -> None:
    assert needle in refused(tmp_path, argv, KEYS), needle


def test_region_from_aws_region_is_checked(tmp_path: Path) -> None:
    line = refused(tmp_path, ["--endpoint", "http://127.0.0.1:9"], {**KEYS, "AWS_REGION": "bad region"})
    assert line.startswith("--region: 'bad region' is not a region name"), line


# -- keys longer than S3's 1024 bytes -------------------------------------------------------------


def test_a_key_prefix_making_keys_too_long_is_refused_before_command(tmp_path: Path) -> None:
    prefix = "/".join(["p" * 200] * 5)  # 1004 bytes: every key of the step passes 1024
    line = refused(tmp_path, ["--key-prefix", prefix])
    assert line.startswith("--key-prefix: the longest key of this step (ending "), line
    assert "bytes, over S3's limit of 1024; shorten --key-prefix" in line, line


def test_a_result_whose_key_is_too_long_is_missing_not_retried(tmp_path: Path) -> None:
    import json

    results = tmp_path / "results"
    results.mkdir()
    long_name = "r" * 250
    (results / long_name).write_bytes(b"too long")
    (results / "fine").write_bytes(b"ok")
    prefix = "/".join(["p" * 200] * 4)  # the step's keys fit (840 bytes); <prefix>/.../<250 bytes>.tgz does not
    env = clean_env(OBJECTSTORE_ENDPOINT=f"file://{tmp_path}/s")
    argv = [*IDENTITY, "--key-prefix", prefix, "--results-dir", str(results)]
    proc = run_wrapper([*argv, "--", "true"], env, cwd=tmp_path, timeout=60)
    err = proc.stderr.decode()
    assert proc.returncode == 74, err
    assert "over S3's limit of 1024; shorten the result's name or --key-prefix" in err, err
    task = f"{prefix}/run-h/task-h/"
    manifest = json.loads((tmp_path / "s" / "mlpipeline" / task / "main-manifest.json").read_bytes())
    assert [m["key"] for m in manifest["missing"]] == [f"{task}{long_name}.tgz"], manifest["missing"]
    assert (tmp_path / "s" / "mlpipeline" / task / "fine.tgz").exists()


# -- the 4 KB warning says nothing about refused entries but their names ---------------------------


def test_results_size_warning_does_not_look_at_refused_symlink_targets(tmp_path: Path) -> None:
    outside = tmp_path / "shadow"
    outside.write_bytes(b"s" * 12345)
    results = tmp_path / "results"
    results.mkdir()
    (results / "big").write_bytes(b"b" * 5000)
    (results / "leak").symlink_to(outside)
    env = clean_env(OBJECTSTORE_ENDPOINT=f"file://{tmp_path}/s")
    proc = run_wrapper([*IDENTITY, "--results-dir", str(results), "--", "true"], env, cwd=tmp_path, timeout=60)
    err = proc.stderr.decode()
    assert "over Tekton's 4096-byte limit" in err, err
    assert "results total 5000 bytes" in err and "big (5000 bytes)" in err, err
    assert "12345" not in err and "leak (" not in err, err
    assert "result 'leak' skipped: symlink to outside the results dir" in err, err


# -- words that fit the run ------------------------------------------------------------------------


def test_bucket_removed_mid_run_does_not_say_pass_create_bucket(s3, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    import sys
    import uuid

    bucket = f"gone-{uuid.uuid4().hex[:8]}"  # created by the wrapper (--create-bucket is on by default)
    remover = (
        "import time; from minio import Minio; "
        f"c = Minio({s3.netloc!r}, access_key='test-access-key', secret_key='test-secret-key-do-not-print', "
        "secure=False, region='us-east-1'); "
        f"t = time.monotonic() + 30\nwhile not c.bucket_exists({bucket!r}) and time.monotonic() < t: time.sleep(0.05)\n"
        f"[c.remove_object({bucket!r}, o.object_name) for o in c.list_objects({bucket!r}, recursive=True)]\n"
        f"c.remove_bucket({bucket!r}); print('removed')"
    )
    env = s3.env(bucket)
    argv = [*IDENTITY, "--results-dir", str(tmp_path / "none"), "--flush-timeout", "5s"]
    proc = run_wrapper([*argv, "--", sys.executable, "-c", remover], env, timeout=60)
    err = proc.stderr.decode()
    assert proc.stdout == b"removed\n", err
    assert proc.returncode == 74, err
    assert "pass --create-bucket" not in err, err
    assert "does not exist any more (--create-bucket is on" in err, err


def test_unreadable_results_dir_is_a_missing_result(tmp_path: Path) -> None:
    import json

    not_a_dir = tmp_path / "results"
    not_a_dir.write_text("a file where the results directory should be")
    env = clean_env(OBJECTSTORE_ENDPOINT=f"file://{tmp_path}/s")
    proc = run_wrapper([*IDENTITY, "--results-dir", str(not_a_dir), "--", "true"], env, cwd=tmp_path, timeout=60)
    err = proc.stderr.decode()
    assert proc.returncode == 74, err
    assert f"results dir {not_a_dir} cannot be read: Not a directory" in err, err
    task = tmp_path / "s" / "mlpipeline" / "artifacts" / "run-h" / "task-h"
    manifest = json.loads((task / "main-manifest.json").read_bytes())
    assert manifest["complete"] is False
    assert [(m["kind"], m["key"]) for m in manifest["missing"]] == [("results-dir", "artifacts/run-h/task-h/*.tgz")]
    proc = run_wrapper([*IDENTITY, "--results-dir", str(not_a_dir), "--", "sh", "-c", "exit 3"], env, cwd=tmp_path)
    assert proc.returncode == 3  # COMMAND's own failure wins


# -- integrity: an ETag mismatch is decided per object, never by a count -------------------------


def test_etag_mismatches_are_never_accepted_after_a_count(s3, bucket: str) -> None:  # type: ignore[no-untyped-def]
    from conftest import ACCESS_KEY, SECRET_KEY

    from entrypoint.settings.store import Credentials, S3Endpoint, StoreConfig
    from entrypoint.store import StoreError
    from entrypoint.store.s3 import S3Store

    cfg = StoreConfig(
        bucket=bucket,
        endpoint=S3Endpoint(s3.netloc, False),
        credentials=Credentials(ACCESS_KEY, SECRET_KEY),
        region="us-east-1",
    )
    store = S3Store(cfg)
    for _ in range(10):  # today: the third mismatch made every later ETag trusted
        with pytest.raises(StoreError, match="BadDigest"):
            store._checked_etag("0" * 32, "f" * 32, "PUT k")
    store._checked_etag("0" * 32, "f" * 32, "PUT k", opaque=True)  # the server said: KMS-encrypted
