"""Encryption at rest (--sse), names that try to climb out of the key layout, safe tar members and
--reproducible, result symlinks that point outside the results directory, and the local store's
refusal of keys outside its root.
"""

from __future__ import annotations

import base64
import io
import os
import stat
import subprocess
import sys
import tarfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import clean_env, run_wrapper, untar_single
from secureserver import (
    PREFIX,
    Listener,
    Pki,
    SecureS3,
    all_stored_bytes,
    make_pki,
    wrapper_args,
    wrapper_env,
)

from entrypoint.formats.layout import Layout, name_problem
from entrypoint.report import Reporter
from entrypoint.results import files as results
from entrypoint.store import StoreError
from entrypoint.store.local import LocalStore
from entrypoint.store.payload import Payload


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return make_pki(tmp_path_factory.mktemp("pki"), "sse", ("127.0.0.1",))


@pytest.fixture(scope="module")
def tls_listener(srv: SecureS3, pki: Pki) -> Iterator[Listener]:
    listener = srv.listen(pki)
    yield listener
    srv.close(listener)


def s3_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    return wrapper_env(
        tmp_path / "home", OBJECTSTORE_ACCESS_KEY="AKIASSETEST", OBJECTSTORE_SECRET_KEY="sse-test-secret", **extra
    )


def with_result(tmp_path: Path) -> None:
    (tmp_path / "results").mkdir(exist_ok=True)
    (tmp_path / "results" / "metrics").write_text('{"accuracy": 0.9}\n')


EXPECTED_KEYS = [
    PREFIX + "logs/main/00000000.log",
    PREFIX + "main-log.tgz",
    PREFIX + "main-manifest.json",
    PREFIX + "main-summary.json",
    PREFIX + "metrics.tgz",
]

# -- server-side encryption ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("argv", "algorithm", "kms_key"),
    [
        (["--sse", "s3"], "AES256", None),
        (["--sse", "kms", "--sse-kms-key-id", "arn:aws:kms:us-east-1:123456789012:key/test-key"], "aws:kms", "arn:aws:kms:us-east-1:123456789012:key/test-key"),
        (["--sse-kms-key-id", "alias/implied-kms"], "aws:kms", "alias/implied-kms"),  # the key id implies kms
        (["--sse", "KMS"], "aws:kms", None),  # the store's default KMS key
    ],
)
def test_every_object_is_stored_encrypted(
    srv: SecureS3, bkt: str, tmp_path: Path, argv: list[str], algorithm: str, kms_key: str | None
) -> None:
    with_result(tmp_path)
    since = len(srv.records(srv.plain.port))
    proc = run_wrapper([*wrapper_args(tmp_path, srv.plain.endpoint, bkt, *argv), "--", "echo", "secret data"], s3_env(tmp_path))
    assert proc.returncode == 0, proc.stderr
    assert srv.keys(bkt) == EXPECTED_KEYS
    for key in EXPECTED_KEYS:  # what the server recorded for each object
        headers = srv.stat_headers(bkt, key)
        assert headers.get("x-amz-server-side-encryption") == algorithm, (key, headers)
        assert headers.get("x-amz-server-side-encryption-aws-kms-key-id") == kms_key
    puts = [r for r in srv.records(srv.plain.port)[since:] if r.method == "PUT" and "/artifacts/" in r.path]
    assert len(puts) >= len(EXPECTED_KEYS)
    assert all(r.headers.get("x-amz-server-side-encryption") == algorithm for r in puts)


def test_no_sse_by_default(srv: SecureS3, bkt: str, tmp_path: Path) -> None:
    proc = run_wrapper([*wrapper_args(tmp_path, srv.plain.endpoint, bkt), "--", "echo", "x"], s3_env(tmp_path))
    assert proc.returncode == 0, proc.stderr
    assert "x-amz-server-side-encryption" not in srv.stat_headers(bkt, PREFIX + "main-log.tgz")


@pytest.mark.parametrize("encoding", ["raw", "base64"])
def test_sse_c_over_tls_sends_the_customer_key_headers(
    srv: SecureS3, tls_listener: Listener, pki: Pki, bkt: str, tmp_path: Path, encoding: str
) -> None:
    key = os.urandom(32)
    key_file = tmp_path / "sse-c.key"
    key_file.write_bytes(key if encoding == "raw" else base64.b64encode(key) + b"\n")
    with_result(tmp_path)
    since = len(srv.records(tls_listener.port))
    argv = wrapper_args(tmp_path, tls_listener.endpoint, bkt, "--ca-bundle", str(pki.ca_cert), "--debug")
    proc = run_wrapper([*argv, "--sse", "c", "--sse-c-key-file", str(key_file), "--", "echo", "x"], s3_env(tmp_path))
    assert proc.returncode == 0, proc.stderr
    assert srv.keys(bkt) == EXPECTED_KEYS
    puts = [r for r in srv.records(tls_listener.port)[since:] if r.method == "PUT" and "/artifacts/" in r.path]
    assert len(puts) >= len(EXPECTED_KEYS)
    b64 = base64.b64encode(key).decode()
    for r in puts:
        assert r.headers.get("x-amz-server-side-encryption-customer-algorithm") == "AES256"
        assert r.headers.get("x-amz-server-side-encryption-customer-key") == b64
    assert b64.encode() not in proc.stderr + proc.stdout + all_stored_bytes(srv, bkt)
    assert key.hex().encode() not in proc.stderr


def test_sse_c_over_plain_http_is_refused_before_command(tmp_path: Path) -> None:
    key_file = tmp_path / "k"
    key_file.write_bytes(os.urandom(32))
    marker = tmp_path / "ran"
    argv = wrapper_args(tmp_path, "http://127.0.0.1:9", "bkt", "--sse", "c", "--sse-c-key-file", str(key_file))
    proc = run_wrapper([*argv, "--", "touch", str(marker)], s3_env(tmp_path))
    assert proc.returncode == 2
    line = proc.stderr.decode().strip()
    assert line.startswith("tekton-uploader: error: --sse c:") and "https://" in line, line
    assert not marker.exists()


@pytest.mark.parametrize(
    ("argv", "needle"),
    [
        (["--sse", "c"], "--sse c: needs --sse-c-key-file"),
        (["--sse", "s3", "--sse-kms-key-id", "k"], "--sse-kms-key-id: only with --sse kms"),
        (["--sse", "kms", "--sse-c-key-file", "KEYFILE"], "--sse-c-key-file: only with --sse c"),
        (["--sse-c-key-file", "SHORTKEY"], "--sse-c-key-file:"),
        (["--sse", "aes"], "--sse"),
    ],
)
def test_inconsistent_sse_options_are_exit_2(tmp_path: Path, argv: list[str], needle: str) -> None:
    (tmp_path / "KEYFILE").write_bytes(os.urandom(32))
    (tmp_path / "SHORTKEY").write_bytes(b"too short\n")
    argv = [str(tmp_path / a) if a in ("KEYFILE", "SHORTKEY") else a for a in argv]
    proc = run_wrapper([*wrapper_args(tmp_path, "https://127.0.0.1:9", "bkt"), *argv, "--", "true"], s3_env(tmp_path))
    assert proc.returncode == 2
    assert needle in proc.stderr.decode(), proc.stderr


def test_sse_with_the_local_store_is_refused(tmp_path: Path) -> None:
    proc = run_wrapper(
        [*wrapper_args(tmp_path, f"file://{tmp_path}/store", "bkt"), "--sse", "s3", "--", "true"], wrapper_env(tmp_path / "h")
    )
    assert proc.returncode == 2
    assert "--sse s3: server-side encryption needs an S3 endpoint" in proc.stderr.decode()


# -- names and keys ------------------------------------------------------------------------------

CLIMBERS = [
    "..",
    ".",
    "%2e%2e",
    "%2E%2e",
    "%252e%252e",  # encoded twice
    "..%2f..%2fetc",
    "%2fetc",
    "a%5cb",
    "/etc",
    "/",
    "a/../b",
    "a\\b",
    "..\\..",
    "\uff0e\uff0e",  # fullwidth full stops: NFKC '..'
    "\u2025",  # two dot leader: NFKC '..'
    "\ufe52\ufe52",  # small full stops
    "\uff0f",  # fullwidth solidus: NFKC '/'
    "x\uff0fy",
    "\uff3c",  # fullwidth reverse solidus: NFKC '\'
    "\ufe68",  # small reverse solidus
    "%ef%bc%8f",  # fullwidth solidus, percent-encoded
    "x\x00y",
    "%00",
    "new\nline",
    "",
]


@pytest.mark.parametrize("bad", CLIMBERS)
def test_no_name_component_can_climb_out(bad: str) -> None:
    assert name_problem(bad) is not None
    for fields in ((bad, "t", "main"), ("r", bad, "main"), ("r", "t", bad)):
        with pytest.raises(ValueError):
            Layout("artifacts", *fields)
    with pytest.raises(ValueError):
        Layout("artifacts", "r", "t", "main").result_key(bad)


@pytest.mark.parametrize("fine", ["a%2ex", "100%", "50%off", "ok%20name", "\u2215", "..x", "x..", "résumé"])
def test_look_alikes_that_are_not_separators_stay_inside(fine: str) -> None:
    """Characters that look like separators but are none anywhere (e.g. U+2215 DIVISION SLASH)
    are plain name characters: the key stays one component under the task prefix."""
    key = Layout("artifacts", "r", "t", "main").result_key(fine)
    assert key == f"artifacts/r/t/{fine}.tgz"
    assert key.count("/") == 3


@pytest.mark.parametrize(
    ("argv", "env", "needle"),
    [
        (["--pipelinerun", "%2e%2e"], {}, "--pipelinerun"),
        (["--pipelinetask", "..%2fother"], {}, "--pipelinetask"),
        (["--pipelinerun", "\uff0e\uff0e"], {}, "--pipelinerun"),
        (["--step", "%2e%2e"], {}, "--step"),
        (["--key-prefix", "../up"], {}, "--key-prefix"),
        (["--key-prefix", "a/%2e%2e/b"], {}, "--key-prefix"),
        (["--key-prefix", "a\\..\\b"], {}, "--key-prefix"),
        ([], {"PIPELINETASK": "/etc"}, "--pipelinetask"),
    ],
)
def test_traversal_in_identity_or_prefix_is_exit_2(
    tmp_path: Path, argv: list[str], env: dict[str, str], needle: str
) -> None:
    marker = tmp_path / "ran"
    base = ["--pod-labels", str(tmp_path / "none"), "--endpoint", f"file://{tmp_path}/store"]
    full_env = clean_env(**{"PIPELINERUN": "r", "PIPELINETASK": "t", **env})
    proc = run_wrapper([*base, *argv, "--", "touch", str(marker)], full_env)
    assert proc.returncode == 2, proc.stderr
    assert needle in proc.stderr.decode()
    assert not marker.exists()


@pytest.mark.parametrize("label", ['"..%2f.."', '"\\u0000"', '"..\\u002f.."', '"\\uff0e\\uff0e"', '"a\\\\b"'])
def test_traversal_in_pod_labels_is_exit_2(tmp_path: Path, label: str) -> None:
    labels = tmp_path / "labels"
    labels.write_text(f'tekton.dev/pipelineRun={label}\ntekton.dev/pipelineTask="t"\n')
    proc = run_wrapper(
        ["--pod-labels", str(labels), "--endpoint", f"file://{tmp_path}/store", "--", "true"], clean_env()
    )
    assert proc.returncode == 2, proc.stderr
    assert "--pipelinerun" in proc.stderr.decode()


def test_result_files_with_climbing_names_are_skipped(tmp_path: Path) -> None:
    """End to end with the local store: nothing lands outside <prefix>/<run>/<task>/."""
    res = tmp_path / "results"
    res.mkdir()
    names = ["%2e%2e", "..%2fescape", "a\\b", "\uff0fetc", "\u2025", "%00", "ok"]
    for name in names:
        (res / name).write_text(f"content of {name}\n")
    root = tmp_path / "store"
    proc = run_wrapper(
        [*wrapper_args(tmp_path, f"file://{root}", "bkt"), "--", "true"], wrapper_env(tmp_path / "home")
    )
    assert proc.returncode == 0, proc.stderr
    stored = sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file())
    assert stored == [
        "bkt/" + PREFIX + "main-log.tgz",
        "bkt/" + PREFIX + "main-manifest.json",
        "bkt/" + PREFIX + "main-summary.json",
        "bkt/" + PREFIX + "ok.tgz",
    ]
    err = proc.stderr.decode()
    assert err.count("skipped: its name") == len(names) - 1
    outside = sorted(p.name for p in tmp_path.iterdir())
    assert outside == ["home", "results", "store"]


# -- tar members and --reproducible --------------------------------------------------------------


def _member(data: bytes) -> tarfile.TarInfo:
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as tar:
        members = tar.getmembers()
    assert len(members) == 1
    return members[0]


def run_local(tmp_path: Path, root: Path, *more: str, env: dict[str, str] | None = None) -> None:
    argv = [*wrapper_args(tmp_path, f"file://{root}", "bkt"), *more, "--", "echo", "log line"]
    proc = run_wrapper(argv, env or wrapper_env(tmp_path / "home"))
    assert proc.returncode == 0, proc.stderr


def test_tar_members_are_one_safe_regular_file(tmp_path: Path) -> None:
    res = tmp_path / "results"
    res.mkdir()
    (res / "model").write_bytes(b"weights")
    os.chmod(res / "model", 0o4777)  # setuid and world-writable on disk: not in the archive
    root = tmp_path / "store"
    run_local(tmp_path, root)
    for key, name in ((PREFIX + "model.tgz", "model"), (PREFIX + "main-log.tgz", "main.log")):
        member = _member((root / "bkt" / key).read_bytes())
        assert member.name == name and member.isreg() and not member.issym() and not member.islnk()
        assert member.mode == 0o644 and member.uid == 0 and member.gid == 0
        assert member.uname == "" and member.gname == ""
    assert untar_single((root / "bkt" / PREFIX / "model.tgz").read_bytes()) == ("model", b"weights")


def test_reproducible_archives_are_byte_identical(tmp_path: Path) -> None:
    res = tmp_path / "results"
    res.mkdir()
    outputs = []
    for i, mtime in enumerate((1_000_000_000, 1_700_000_000)):
        (res / "model").write_bytes(b"same weights")
        os.utime(res / "model", (mtime, mtime))
        root = tmp_path / f"store{i}"
        run_local(tmp_path, root, "--reproducible")
        outputs.append([(root / "bkt" / PREFIX / name).read_bytes() for name in ("model.tgz", "main-log.tgz")])
    assert outputs[0] == outputs[1]
    assert _member(outputs[0][0]).mtime == 0 and _member(outputs[0][1]).mtime == 0
    # SOURCE_DATE_EPOCH sets the fixed time
    root = tmp_path / "store-epoch"
    run_local(tmp_path, root, "--reproducible", env=wrapper_env(tmp_path / "home", SOURCE_DATE_EPOCH="1234567890"))
    assert _member((root / "bkt" / PREFIX / "model.tgz").read_bytes()).mtime == 1234567890
    # without it, the member carries the file's own time (so the option is what makes it fixed)
    root = tmp_path / "store-plain"
    run_local(tmp_path, root)
    assert _member((root / "bkt" / PREFIX / "model.tgz").read_bytes()).mtime == 1_700_000_000


def test_bad_source_date_epoch_is_exit_2(tmp_path: Path) -> None:
    argv = [*wrapper_args(tmp_path, f"file://{tmp_path}/s", "bkt"), "--reproducible", "--", "true"]
    proc = run_wrapper(argv, wrapper_env(tmp_path / "home", SOURCE_DATE_EPOCH="yesterday"))
    assert proc.returncode == 2 and b"SOURCE_DATE_EPOCH" in proc.stderr


# -- results: symlinks and files swapped under the wrapper ----------------------------------------


def test_symlinks_out_of_the_results_dir_never_leak(tmp_path: Path) -> None:
    secret = "results-env-secret-" + uuid.uuid4().hex
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "private.txt").write_text("outside content " + secret + "\n")
    res = tmp_path / "results"
    res.mkdir()
    (res / "inside").write_text("fine\n")
    (res / "shadow").symlink_to("/etc/shadow")
    (res / "environ").symlink_to("/proc/self/environ")
    (res / "private").symlink_to(outside / "private.txt")
    (res / "relative").symlink_to("../outside/private.txt")
    (res / "etc").symlink_to("/etc")
    (res / "hop").symlink_to("private")  # a link to a link that leaves the directory
    (res / "alias").symlink_to("inside")  # stays inside: allowed, archived as its target's bytes
    (res / "loop").symlink_to("loop")
    os.mkfifo(res / "fifo")
    (res / "sub").mkdir()
    (res / "sub" / "file").write_text("nested\n")
    (res / "deep").symlink_to("sub/file")
    root = tmp_path / "store"
    env = wrapper_env(tmp_path / "home", OBJECTSTORE_SECRET_KEY=secret, OBJECTSTORE_ACCESS_KEY="AKIA")
    proc = run_wrapper([*wrapper_args(tmp_path, f"file://{root}", "bkt"), "--", "true"], env, timeout=60)
    assert proc.returncode == 0, proc.stderr
    keys = sorted(p.relative_to(root / "bkt").as_posix() for p in (root / "bkt").rglob("*") if p.is_file())
    names = ("alias.tgz", "inside.tgz", "main-log.tgz", "main-manifest.json", "main-summary.json")
    assert keys == [PREFIX + n for n in names]
    assert untar_single((root / "bkt" / PREFIX / "alias.tgz").read_bytes()) == ("alias", b"fine\n")
    everything = b"".join(
        untar_single(p.read_bytes())[1] if p.suffix == ".tgz" else p.read_bytes() for p in (root / "bkt").rglob("*.*")
    )
    assert secret.encode() not in everything and b"root:" not in everything
    assert b"outside content" not in everything
    err = proc.stderr.decode()
    for name in ("shadow", "environ", "private", "relative", "etc", "hop", "loop", "fifo", "sub", "deep"):
        assert f"result {name!r} skipped" in err, (name, err)


def test_file_swapped_for_a_symlink_after_the_scan_is_not_followed(tmp_path: Path) -> None:
    """Checked at scan time, then replaced by a link to a secret before it is read: the open
    with O_NOFOLLOW fails instead of reading the link's target."""
    res = tmp_path / "results"
    res.mkdir()
    (res / "metrics").write_text("ok\n")
    secret = tmp_path / "secret"
    secret.write_text("must not leak\n")
    found, skipped = results.scan(res, Reporter(quiet=True, fd=os.open(os.devnull, os.O_WRONLY)))
    assert [r.name for r in found] == ["metrics"] and skipped == []
    (res / "swap").symlink_to(secret)
    os.replace(res / "swap", res / "metrics")
    spool = tmp_path / "spool"
    spool.mkdir()
    with pytest.raises(OSError):
        results.archive_result(found[0], spool / "result-00000.tgz")
    assert b"must not leak" not in b"".join(p.read_bytes() for p in spool.iterdir())


def test_file_swapped_for_a_fifo_or_directory_is_refused_after_open(tmp_path: Path) -> None:
    path = tmp_path / "x"
    os.mkfifo(path)
    with pytest.raises(OSError, match="not a regular file"):
        results.open_regular(path)
    path.unlink()
    path.mkdir()
    with pytest.raises(OSError):
        results.open_regular(path)


# -- the local store's root ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "key",
    ["../escape", "a/../../escape", "/etc/passwd", "a//b", "a/./b", "a/..", "", "x\x00y", "a/"],
)
def test_local_store_refuses_keys_outside_its_root(tmp_path: Path, key: str) -> None:
    store = LocalStore(tmp_path / "root", "bkt")
    store.prepare()
    with pytest.raises(StoreError) as info:
        store.put(key, Payload.of(b"data"))
    assert info.value.code == "InvalidKey" and not info.value.transient
    assert sorted(p.name for p in tmp_path.iterdir()) == ["root"]
    assert [p for p in (tmp_path / "root").rglob("*") if p.is_file()] == []


def test_local_store_refuses_a_symlinked_directory_leading_out(tmp_path: Path) -> None:
    store = LocalStore(tmp_path / "root", "bkt")
    store.prepare()
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "root" / "bkt" / "artifacts").symlink_to(tmp_path / "elsewhere")
    with pytest.raises(StoreError):
        store.put("artifacts/run/task/x.tgz", Payload.of(b"data"))
    with pytest.raises(StoreError):
        store.get("artifacts/../../../etc/passwd")
    assert list((tmp_path / "elsewhere").iterdir()) == []
    store.put("fine/key.tgz", Payload.of(b"data"))
    assert (tmp_path / "root" / "bkt" / "fine" / "key.tgz").read_bytes() == b"data"
    assert stat.S_ISREG(os.lstat(tmp_path / "root" / "bkt" / "fine" / "key.tgz").st_mode)


def test_read_side_uses_the_same_credentials_tls_and_sse_c_key(
    srv: SecureS3, tls_listener: Listener, pki: Pki, bkt: str, tmp_path: Path
) -> None:
    key_file = tmp_path / "sse-c.key"
    key_file.write_bytes(os.urandom(32))
    secret_file = tmp_path / "secret"
    secret_file.write_text("read-side-secret\n")
    env = wrapper_env(tmp_path / "home", OBJECTSTORE_ACCESS_KEY="AKIAREAD", OBJECTSTORE_SECRET_KEY_FILE=str(secret_file))
    common = ["--endpoint", tls_listener.endpoint, "--bucket", bkt, "--sse-c-key-file", str(key_file)]
    argv = [*wrapper_args(tmp_path, tls_listener.endpoint, bkt, "--ca-bundle", str(pki.ca_cert)), *common[4:]]
    proc = run_wrapper([*argv, "--", "echo", "read me back"], env)
    assert proc.returncode == 0, proc.stderr
    reader = [sys.executable, "-m", "entrypoint.read", "logs", "run-1/task-1", *common, "--retries", "0"]
    since = len(srv.records(tls_listener.port))
    out = subprocess.run([*reader, "--ca-bundle", str(pki.ca_cert)], env=env, capture_output=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout == b"read me back\n"
    gets = [r for r in srv.records(tls_listener.port)[since:] if r.method in ("GET", "HEAD") and "/artifacts/" in r.path]
    assert gets and all(r.headers.get("x-amz-server-side-encryption-customer-algorithm") == "AES256" for r in gets)
    assert all(r.access_key() == "AKIAREAD" for r in gets)
    refused = subprocess.run(reader, env=env, capture_output=True, timeout=60)  # no CA: not trusted
    assert refused.returncode == 3, refused.stderr
    assert b"read-side-secret" not in out.stderr + refused.stderr
