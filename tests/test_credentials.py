"""Credentials: the lookup order, files as Kubernetes mounts them (and rotates them), the AWS chain
(variables, shared file + profile, web identity against moto's STS, instance metadata only when
enabled), anonymous only when asked, and secrets never shown.

Against the moto server process of ``secureserver.py`` with IAM auth enforced where it matters: there a
run succeeds only when its requests are signed with the credentials the rule says, and the recorded
``Authorization`` headers show which access key signed them.
"""

from __future__ import annotations

import contextlib
import io
import os
import socket
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import WRAPPER, require_program, run_wrapper, wait_until
from faultproxy import FaultProxy
from secureserver import PREFIX, SecureS3, all_stored_bytes, wrapper_args, wrapper_env

from entrypoint import redact
from entrypoint.cli import _fail
from entrypoint.report import Reporter
from entrypoint.settings import credentials
from entrypoint.settings.step import build_config
from entrypoint.settings.store import ConfigError


@pytest.fixture
def auth(srv: SecureS3) -> Iterator[None]:
    with srv.enforce_auth():
        yield


def signers(srv: SecureS3, since: int, port: int) -> set[str | None]:
    """Access keys that signed the S3 requests recorded after ``since`` (admin reads excluded)."""
    keys = {r.access_key() for r in srv.records(port)[since:] if not r.path.startswith("/latest/")}
    keys.discard(srv.admin_key)
    return keys


def write(path: Path, text: str) -> str:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return str(path)


def assert_stored(srv: SecureS3, bucket: str, out: bytes = b"hello\n") -> None:
    keys = srv.keys(bucket)
    assert PREFIX + "main-log.tgz" in keys and PREFIX + "logs/main/00000000.log" in keys, keys
    assert srv.read(bucket, PREFIX + "logs/main/00000000.log") == out


# -- the order -----------------------------------------------------------------------------------

LEVELS = ["values", "files", "aws-variables", "shared-file"]


@pytest.mark.parametrize("top", LEVELS)
def test_first_source_in_the_documented_order_wins(
    srv: SecureS3, bkt: str, tmp_path: Path, auth: None, top: str
) -> None:
    """Every source from ``top`` down is set, each with a different valid key: ``top``'s signs."""
    keys = {level: srv.user_key() for level in LEVELS}
    env = wrapper_env(tmp_path / "home")
    argv: list[str] = []
    below = LEVELS[LEVELS.index(top) :]
    if "values" in below:
        env.update(OBJECTSTORE_ACCESS_KEY=keys["values"][0], OBJECTSTORE_SECRET_KEY=keys["values"][1])
    if "files" in below:
        argv += ["--access-key-file", write(tmp_path / "s/access", keys["files"][0] + "\n")]
        env["OBJECTSTORE_SECRET_KEY_FILE"] = write(tmp_path / "s/secret", keys["files"][1] + "\n")
    if "aws-variables" in below:
        env.update(AWS_ACCESS_KEY_ID=keys["aws-variables"][0], AWS_SECRET_ACCESS_KEY=keys["aws-variables"][1])
    if "shared-file" in below:
        ini = f"[default]\naws_access_key_id = {keys['shared-file'][0]}\naws_secret_access_key = {keys['shared-file'][1]}\n"
        write(tmp_path / "home/.aws/credentials", ini)
    since = len(srv.records(srv.plain.port))
    proc = run_wrapper([*wrapper_args(tmp_path, srv.plain.endpoint, bkt), *argv, "--", "echo", "hello"], env)
    assert proc.returncode == 0, proc.stderr
    assert_stored(srv, bkt)
    assert signers(srv, since, srv.plain.port) == {keys[top][0]}


def test_shared_credentials_file_and_profile(srv: SecureS3, bkt: str, tmp_path: Path, auth: None) -> None:
    good = srv.user_key()
    ini = (
        "[default]\naws_access_key_id = AKIADEFAULTNOTVALID\naws_secret_access_key = nope\n"
        f"[uploader]\naws_access_key_id = {good[0]}\naws_secret_access_key = {good[1]}\n"
    )
    env = wrapper_env(
        tmp_path / "home",
        AWS_SHARED_CREDENTIALS_FILE=write(tmp_path / "aws/creds", ini),
        AWS_PROFILE="uploader",
    )
    since = len(srv.records(srv.plain.port))
    proc = run_wrapper([*wrapper_args(tmp_path, srv.plain.endpoint, bkt), "--", "echo", "hello"], env)
    assert proc.returncode == 0, proc.stderr
    assert_stored(srv, bkt)
    assert signers(srv, since, srv.plain.port) == {good[0]}


def test_wrong_secret_is_refused_by_the_server(srv: SecureS3, bkt: str, tmp_path: Path, auth: None) -> None:
    """The auth-enforcing server is a real check: a wrong secret stores nothing (exit 74)."""
    access, _ = srv.user_key()
    secret = "wrong-secret-" + uuid.uuid4().hex
    env = wrapper_env(tmp_path / "home", OBJECTSTORE_ACCESS_KEY=access, OBJECTSTORE_SECRET_KEY=secret)
    proc = run_wrapper(
        [*wrapper_args(tmp_path, srv.plain.endpoint, bkt, "--flush-timeout", "5s", "--debug"), "--", "echo", "hello"],
        env,
    )
    assert proc.returncode == 74, proc.stderr
    assert srv.keys(bkt) == []
    assert secret.encode() not in proc.stderr + proc.stdout


def test_wrong_secret_hint_names_the_source_used(srv: SecureS3, bkt: str, tmp_path: Path, auth: None) -> None:
    """Keys from AWS_*: the hint names AWS_SECRET_ACCESS_KEY, not --secret-key (issue 18)."""
    access, _ = srv.user_key()
    secret = "wrong-secret-" + uuid.uuid4().hex
    env = wrapper_env(tmp_path / "home", AWS_ACCESS_KEY_ID=access, AWS_SECRET_ACCESS_KEY=secret)
    proc = run_wrapper(
        [*wrapper_args(tmp_path, srv.plain.endpoint, bkt, "--flush-timeout", "5s"), "--", "echo", "hello"], env
    )
    err = proc.stderr.decode()
    assert proc.returncode == 74, err
    assert "SignatureDoesNotMatch: the server rejected the request signature; check AWS_SECRET_ACCESS_KEY" in err
    assert "--secret-key" not in err and secret not in err


# -- files ---------------------------------------------------------------------------------------


def kubernetes_secret(directory: Path, version: str, items: dict[str, str]) -> None:
    """Lay out (or atomically update) a Secret volume the way the kubelet does: the files are
    symlinks through ``..data``, which is swapped to a new timestamped directory by rename."""
    directory.mkdir(parents=True, exist_ok=True)
    target = directory / f"..{version}"
    target.mkdir()
    for name, value in items.items():
        (target / name).write_text(value + "\n")
        link = directory / name
        if not link.is_symlink():
            link.symlink_to(f"..data/{name}")
    tmp = directory / "..data_tmp"
    tmp.symlink_to(target.name)
    os.replace(tmp, directory / "..data")


def later_chunks(srv: SecureS3, bkt: str) -> bytes:
    """The log after the first chunk (empty chunks, the wrapper's heartbeats, may come between)."""
    keys = srv.keys(bkt, PREFIX + "logs/main/")
    return b"".join(srv.read(bkt, k) for k in keys if not k.endswith("/00000000.log"))


def test_files_are_read_again_when_the_session_token_changes(
    srv: SecureS3, bkt: str, tmp_path: Path, auth: None
) -> None:
    first, second = srv.temporary_credentials(), srv.temporary_credentials()
    secret_dir = tmp_path / "secret"
    kubernetes_secret(secret_dir, "v1", dict(zip(("access", "secret", "token"), first)))
    env = wrapper_env(
        tmp_path / "home",
        OBJECTSTORE_ACCESS_KEY_FILE=str(secret_dir / "access"),
        OBJECTSTORE_SECRET_KEY_FILE=str(secret_dir / "secret"),
        OBJECTSTORE_SESSION_TOKEN_FILE=str(secret_dir / "token"),
    )
    go = tmp_path / "go"
    script = f"echo one; while [ ! -e {go} ]; do sleep 0.02; done; echo two"
    argv = [*wrapper_args(tmp_path, srv.plain.endpoint, bkt, "--log-flush-interval", "100ms"), "--", "sh", "-c", script]
    proc = subprocess.Popen([*WRAPPER, *argv], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        wait_until(lambda: PREFIX + "logs/main/00000000.log" in srv.keys(bkt), timeout=30, what="first chunk")
        kubernetes_secret(secret_dir, "v2", dict(zip(("access", "secret", "token"), second)))
        since = len(srv.records(srv.plain.port))
        go.touch()
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, err
    assert out == b"one\ntwo\n"
    later = [r for r in srv.records(srv.plain.port)[since:] if r.access_key() not in (None, srv.admin_key)]
    assert later, "no request after the rotation"
    assert {r.access_key() for r in later} == {second[0]}
    assert {r.headers.get("x-amz-security-token") for r in later} == {second[2]}
    assert later_chunks(srv, bkt) == b"two\n"


def test_rotated_access_key_is_used_after_the_old_one_is_deleted(
    srv: SecureS3, bkt: str, tmp_path: Path, auth: None
) -> None:
    user = srv.new_user()
    old, new = srv.user_key(user), srv.user_key(user)
    secret_dir = tmp_path / "secret"
    kubernetes_secret(secret_dir, "v1", {"accesskey": old[0], "secretkey": old[1]})
    env = wrapper_env(tmp_path / "home")
    go = tmp_path / "go"
    argv = [
        *wrapper_args(tmp_path, srv.plain.endpoint, bkt, "--log-flush-interval", "100ms"),
        "--access-key-file",
        str(secret_dir / "accesskey"),
        "--secret-key-file",
        str(secret_dir / "secretkey"),
        "--",
        "sh",
        "-c",
        f"echo one; while [ ! -e {go} ]; do sleep 0.02; done; echo two",
    ]
    proc = subprocess.Popen([*WRAPPER, *argv], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        wait_until(lambda: PREFIX + "logs/main/00000000.log" in srv.keys(bkt), timeout=30, what="first chunk")
        kubernetes_secret(secret_dir, "v2", {"accesskey": new[0], "secretkey": new[1]})
        srv.delete_key(user, old[0])
        go.touch()
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, err
    assert later_chunks(srv, bkt) == b"two\n"
    assert PREFIX + "main-log.tgz" in srv.keys(bkt)


@pytest.mark.parametrize(
    ("content", "problem"),
    [(None, "cannot read"), ("", "is empty"), ("\n  \n", "is empty")],
)
def test_unusable_secret_file_is_exit_2_naming_the_option(tmp_path: Path, content: str | None, problem: str) -> None:
    path = tmp_path / "secret"
    if content is not None:
        path.write_text(content)
    marker = tmp_path / "ran"
    env = wrapper_env(tmp_path / "home", OBJECTSTORE_ACCESS_KEY="AKIAEXAMPLE")
    proc = run_wrapper(
        [*wrapper_args(tmp_path, "http://127.0.0.1:9", "bkt"), "--secret-key-file", str(path), "--", "touch", str(marker)],
        env,
    )
    assert proc.returncode == 2
    line = proc.stderr.decode().strip()
    assert line.startswith("tekton-uploader: error: --secret-key-file:") and problem in line, line
    assert "\n" not in line and not marker.exists()


@pytest.mark.parametrize(
    ("env", "needle"),
    [
        ({"OBJECTSTORE_ACCESS_KEY": "AKIAEXAMPLE"}, "--secret-key"),
        ({"OBJECTSTORE_SECRET_KEY": "s3cr3t-value-x"}, "--access-key"),
        ({"OBJECTSTORE_SESSION_TOKEN": "token-value-x"}, "--access-key"),
        # AWS_* only from the AWS chain, never mixed with the wrapper's own settings
        ({"OBJECTSTORE_ACCESS_KEY": "AKIAEXAMPLE", "AWS_SECRET_ACCESS_KEY": "s3cr3t-value-x"}, "--secret-key"),
    ],
)
def test_half_given_credentials_are_exit_2(tmp_path: Path, env: dict[str, str], needle: str) -> None:
    proc = run_wrapper(
        [*wrapper_args(tmp_path, "http://127.0.0.1:9", "bkt"), "--", "true"], wrapper_env(tmp_path / "h", **env)
    )
    assert proc.returncode == 2
    line = proc.stderr.decode().strip()
    assert line.startswith(f"tekton-uploader: error: {needle}:"), line
    assert "s3cr3t-value-x" not in line and "token-value-x" not in line


# -- nothing applies -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "env",
    [
        {},
        {"AWS_ACCESS_KEY_ID": "AKIAONLY"},
        {"AWS_PROFILE": "missing"},  # the shared file below has only [default]... without keys
        {"AWS_WEB_IDENTITY_TOKEN_FILE": "/nonexistent/token", "AWS_ROLE_ARN": "arn:aws:iam::1:role/r"},
        {"AWS_EC2_METADATA_SERVICE_ENDPOINT": "http://127.0.0.1:9"},  # metadata not enabled
    ],
)
def test_no_possible_source_is_exit_2_before_command(tmp_path: Path, env: dict[str, str]) -> None:
    write(tmp_path / "home/.aws/credentials", "[default]\nregion = us-east-1\n")
    marker = tmp_path / "ran"
    proc = run_wrapper(
        [*wrapper_args(tmp_path, "http://127.0.0.1:9", "bkt"), "--", "touch", str(marker)],
        wrapper_env(tmp_path / "home", **env),
    )
    assert proc.returncode == 2, proc.stderr
    line = proc.stderr.decode().strip()
    assert line.startswith("tekton-uploader: error: no credentials for the S3 endpoint:"), line
    assert "--anonymous" in line and "--instance-metadata-credentials" in line
    assert not marker.exists()


def test_chain_decision_without_network() -> None:
    """resolve(): what counts as 'could apply' (config only, no request made)."""
    values = {"endpoint": "http://127.0.0.1:9"}
    with pytest.raises(ValueError, match="no credentials"):
        credentials.resolve(values, {"HOME": "/nonexistent"})
    for env in (
        {"AWS_ACCESS_KEY_ID": "a", "AWS_SECRET_ACCESS_KEY": "b"},
        {"AWS_ACCESS_KEY": "a", "AWS_SECRET_KEY": "b"},
    ):
        assert credentials.resolve(values, {"HOME": "/nonexistent", **env}).explicit is None
    assert credentials.resolve({**values, "anonymous": True}, {"HOME": "/nonexistent"}).anonymous
    assert credentials.resolve({**values, "instance_metadata_credentials": True}, {"HOME": "/x"}).instance_metadata


# -- web identity (IRSA) -------------------------------------------------------------------------

TOKEN = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJzeXN0ZW06c2VydmljZWFjY291bnQ6dGVrdG9uIn0.c2lnbmF0dXJlLXNlY3JldA"


def test_web_identity_against_moto_sts(srv: SecureS3, bkt: str, tmp_path: Path, auth: None) -> None:
    role = srv.web_identity_role("uploader-irsa")
    env = wrapper_env(
        tmp_path / "home",
        AWS_ROLE_ARN=role,
        AWS_WEB_IDENTITY_TOKEN_FILE=write(tmp_path / "token", TOKEN),
        AWS_REGION="us-east-1",
    )
    since = len(srv.records(srv.plain.port))
    argv = [*wrapper_args(tmp_path, srv.plain.endpoint, bkt, "--sts-endpoint", srv.plain.endpoint, "--debug")]
    proc = run_wrapper([*argv, "--", "echo", "hello"], env)
    assert proc.returncode == 0, proc.stderr
    assert_stored(srv, bkt)
    records = srv.records(srv.plain.port)[since:]
    sts = [r for r in records if "Action=AssumeRoleWithWebIdentity" in r.query]
    assert len(sts) == 1 and f"WebIdentityToken={TOKEN}" in sts[0].query
    signed = [r for r in records if r.access_key() not in (None, srv.admin_key)]
    assert signed and all(r.access_key().startswith("ASIA") for r in signed)  # type: ignore[union-attr]
    assert all(r.headers.get("x-amz-security-token") for r in signed)
    assert TOKEN.encode() not in proc.stderr + proc.stdout + all_stored_bytes(srv, bkt)


def test_web_identity_refused_is_one_clear_line_without_the_token(srv: SecureS3, bkt: str, tmp_path: Path) -> None:
    env = wrapper_env(
        tmp_path / "home",
        AWS_ROLE_ARN="arn:aws:iam::123456789012:role/none",
        AWS_WEB_IDENTITY_TOKEN_FILE=write(tmp_path / "token", TOKEN),
    )
    with FaultProxy("127.0.0.1", srv.plain.port) as sts:
        sts.set_mode(403)
        argv = wrapper_args(tmp_path, srv.plain.endpoint, bkt, "--sts-endpoint", sts.endpoint, "--flush-timeout", "5s")
        proc = run_wrapper([*argv, "--debug", "--", "echo", "hello"], env)
        assert sts.stats().requests >= 1
    assert proc.returncode == 74, proc.stderr
    err = proc.stderr.decode()
    assert "web identity: credentials request refused with HTTP 403" in err
    assert TOKEN not in err and "Traceback" not in err
    assert srv.keys(bkt) == []


# -- instance metadata ---------------------------------------------------------------------------


def test_instance_metadata_is_used_only_when_enabled(srv: SecureS3, bkt: str, tmp_path: Path) -> None:
    """moto serves the EC2 metadata paths too; it is reached through AWS_EC2_METADATA_SERVICE_ENDPOINT."""
    env = wrapper_env(tmp_path / "home", AWS_EC2_METADATA_SERVICE_ENDPOINT=srv.plain.endpoint)
    since = len(srv.records(srv.plain.port))
    proc = run_wrapper([*wrapper_args(tmp_path, srv.plain.endpoint, bkt), "--", "echo", "hello"], env)
    assert proc.returncode == 2
    assert not [r for r in srv.records(srv.plain.port)[since:] if r.path.startswith("/latest/")]

    proc = run_wrapper(
        [*wrapper_args(tmp_path, srv.plain.endpoint, bkt), "--instance-metadata-credentials", "--debug", "--", "echo", "hello"],
        env,
    )
    assert proc.returncode == 0, proc.stderr
    assert_stored(srv, bkt)
    records = srv.records(srv.plain.port)[since:]
    assert [r.path for r in records if r.path.startswith("/latest/")][:2] == [
        "/latest/api/token",
        "/latest/meta-data/iam/security-credentials/",
    ]
    signed = [r for r in records if r.access_key() not in (None, srv.admin_key)]
    assert {r.access_key() for r in signed} == {"test-key"}  # what moto's metadata hands out
    assert {r.headers.get("x-amz-security-token") for r in signed} == {"test-session-token"}
    assert b"test-secret-key" not in proc.stderr + all_stored_bytes(srv, bkt)


def test_metadata_service_is_no_fallback_when_the_shared_file_vanishes(
    srv: SecureS3, bkt: str, tmp_path: Path
) -> None:
    """The shared file applied when the run started; COMMAND removes it. Without
    --instance-metadata-credentials the wrapper reports missing credentials, never asks metadata."""
    creds = write(tmp_path / "home/.aws/credentials", "[default]\naws_access_key_id = AKIAGONE\naws_secret_access_key = gone-secret\n")
    env = wrapper_env(tmp_path / "home", AWS_EC2_METADATA_SERVICE_ENDPOINT=srv.plain.endpoint)
    since = len(srv.records(srv.plain.port))
    argv = wrapper_args(tmp_path, srv.plain.endpoint, bkt, "--flush-timeout", "5s")
    proc = run_wrapper([*argv, "--", "sh", "-c", f"rm {creds}; echo gone"], env)
    assert proc.returncode == 74, proc.stderr
    assert "no credentials found" in proc.stderr.decode()
    assert not [r for r in srv.records(srv.plain.port)[since:] if r.path.startswith("/latest/")]


def test_earlier_source_keeps_metadata_service_untouched(srv: SecureS3, bkt: str, tmp_path: Path) -> None:
    env = wrapper_env(
        tmp_path / "home",
        AWS_EC2_METADATA_SERVICE_ENDPOINT=srv.plain.endpoint,
        AWS_ACCESS_KEY_ID="AKIAEARLIER",
        AWS_SECRET_ACCESS_KEY="earlier-secret-value",
    )
    since = len(srv.records(srv.plain.port))
    argv = [*wrapper_args(tmp_path, srv.plain.endpoint, bkt), "--instance-metadata-credentials", "--", "echo", "hello"]
    proc = run_wrapper(argv, env)
    assert proc.returncode == 0, proc.stderr
    records = srv.records(srv.plain.port)[since:]
    assert not [r for r in records if r.path.startswith("/latest/")]
    assert signers(srv, since, srv.plain.port) == {"AKIAEARLIER"}


def test_silent_metadata_service_times_out(srv: SecureS3, bkt: str, tmp_path: Path) -> None:
    """A metadata address that accepts connections and never answers: COMMAND runs, each attempt
    gives up after the metadata timeouts, and the wrapper ends within its flush timeout."""
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(16)  # never accepted: the kernel completes the handshakes, nobody answers
        port = silent.getsockname()[1]
        env = wrapper_env(tmp_path / "home", AWS_EC2_METADATA_SERVICE_ENDPOINT=f"http://127.0.0.1:{port}")
        argv = wrapper_args(tmp_path, srv.plain.endpoint, bkt, "--flush-timeout", "8s", "--debug")
        started = time.monotonic()
        proc = run_wrapper([*argv, "--instance-metadata-credentials", "--", "echo", "ran"], env, timeout=60)
    assert time.monotonic() - started < 40
    assert proc.stdout == b"ran\n"
    assert proc.returncode == 74
    assert "instance metadata: cannot reach the credentials service (ReadTimeoutError)" in proc.stderr.decode()
    assert srv.keys(bkt) == []


# -- anonymous -----------------------------------------------------------------------------------


def test_anonymous_only_when_asked(srv: SecureS3, bkt: str, tmp_path: Path) -> None:
    env = wrapper_env(tmp_path / "home")
    marker = tmp_path / "ran"
    proc = run_wrapper([*wrapper_args(tmp_path, srv.plain.endpoint, bkt), "--", "touch", str(marker)], env)
    assert proc.returncode == 2 and not marker.exists()
    since = len(srv.records(srv.plain.port))
    proc = run_wrapper([*wrapper_args(tmp_path, srv.plain.endpoint, bkt), "--anonymous", "--", "echo", "hello"], env)
    assert proc.returncode == 0, proc.stderr
    assert_stored(srv, bkt)
    records = [r for r in srv.records(srv.plain.port)[since:] if r.access_key() != srv.admin_key]
    assert records and all("authorization" not in r.headers for r in records)


def test_anonymous_is_last_credentials_still_win(srv: SecureS3, bkt: str, tmp_path: Path, auth: None) -> None:
    key = srv.user_key()
    env = wrapper_env(tmp_path / "home", AWS_ACCESS_KEY_ID=key[0], AWS_SECRET_ACCESS_KEY=key[1])
    since = len(srv.records(srv.plain.port))
    proc = run_wrapper([*wrapper_args(tmp_path, srv.plain.endpoint, bkt), "--anonymous", "--", "echo", "hello"], env)
    assert proc.returncode == 0, proc.stderr
    assert signers(srv, since, srv.plain.port) == {key[0]}


# -- secrets never shown -------------------------------------------------------------------------


def test_secrets_appear_nowhere_even_with_debug(srv: SecureS3, bkt: str, tmp_path: Path, auth: None) -> None:
    access, secret = srv.user_key()
    _, _, token = srv.temporary_credentials()
    # A session token the server does not know makes every upload fail: the error paths run too.
    env = wrapper_env(tmp_path / "home", OBJECTSTORE_SECRET_KEY_FILE=write(tmp_path / "s/secret", secret + "\n"))
    argv = [*wrapper_args(tmp_path, srv.plain.endpoint, bkt, "--debug", "--access-key", access)]
    (tmp_path / "results").mkdir()
    (tmp_path / "results" / "out").write_text("a result\n")
    ok = run_wrapper([*argv, "--", "sh", "-c", "echo hello; echo err >&2"], env)
    assert ok.returncode == 0, ok.stderr
    assert b"debug:" in ok.stderr and PREFIX.encode() + b"out.tgz" in ok.stderr
    failing = run_wrapper(
        [*argv, "--flush-timeout", "3s", "--", "echo", "hello"],
        {**env, "OBJECTSTORE_SESSION_TOKEN_FILE": write(tmp_path / "s/token", token)},
    )
    assert failing.returncode == 74
    assert b"error:" in failing.stderr
    everything = ok.stdout + ok.stderr + failing.stdout + failing.stderr + all_stored_bytes(srv, bkt)
    for value in (secret, token):
        assert value.encode() not in everything
    assert PREFIX + "main-summary.json" in srv.keys(bkt)


def test_secret_from_the_environment_is_not_passed_to_command(tmp_path: Path) -> None:
    secret = "env-secret-" + uuid.uuid4().hex
    env = wrapper_env(tmp_path / "home", OBJECTSTORE_ACCESS_KEY="AKIAEXAMPLE", OBJECTSTORE_SECRET_KEY=secret)
    env["OBJECTSTORE_ENDPOINT"] = f"file://{tmp_path}/store"  # local store: no server needed
    proc = run_wrapper(
        [*wrapper_args(tmp_path, f"file://{tmp_path}/store", "bkt"), "--", "sh", "-c", "env; tr '\\0' '\\n' < /proc/$PPID/cmdline"],
        env,
    )
    assert proc.returncode == 0, proc.stderr
    assert b"OBJECTSTORE_ACCESS_KEY=AKIAEXAMPLE" in proc.stdout  # the environment does pass through
    assert secret.encode() not in proc.stdout + proc.stderr


def test_secret_from_a_file_is_not_on_the_wrappers_command_line(srv: SecureS3, bkt: str, tmp_path: Path) -> None:
    secret = "file-secret-" + uuid.uuid4().hex
    env = wrapper_env(tmp_path / "home", OBJECTSTORE_ACCESS_KEY="AKIAEXAMPLE")
    argv = [*wrapper_args(tmp_path, srv.plain.endpoint, bkt), "--secret-key-file", write(tmp_path / "sk", secret)]
    script = "tr '\\0' ' ' < /proc/$PPID/cmdline; echo; tr '\\0' '\\n' < /proc/$PPID/environ"
    proc = run_wrapper([*argv, "--", "sh", "-c", script], env)
    assert proc.returncode == 0, proc.stderr
    assert b"--secret-key-file" in proc.stdout  # it did read the wrapper's command line
    assert secret.encode() not in proc.stdout + proc.stderr + all_stored_bytes(srv, bkt)


def test_command_cannot_read_the_wrappers_environment(tmp_path: Path) -> None:
    """The wrapper is non-dumpable: a COMMAND of the same (non-root) user cannot open
    /proc/<wrapper>/environ, where OBJECTSTORE_SECRET_KEY still is.

    Both run as nobody; they keep CAP_DAC_OVERRIDE (ambient) only so that nobody can run this
    checkout's interpreter, which also shows that file permissions are not what stops the read.
    """
    setpriv = require_program("setpriv", "apt-get install util-linux")
    if os.geteuid() != 0:
        message = "switching to the user nobody needs root"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    secret = "env-secret-" + uuid.uuid4().hex
    env = wrapper_env(tmp_path / "home", OBJECTSTORE_ACCESS_KEY="AKIAEXAMPLE", OBJECTSTORE_SECRET_KEY=secret)
    caps = "+dac_override,+dac_read_search"
    as_nobody = [setpriv, "--reuid=65534", "--regid=65534", "--clear-groups", f"--inh-caps={caps}", f"--ambient-caps={caps}"]
    script = "id -u; cat /proc/$PPID/environ && echo READABLE || echo DENIED"
    argv = [*as_nobody, *WRAPPER, *wrapper_args(tmp_path, f"file://{tmp_path}/store", "bkt"), "--", "sh", "-c", script]
    proc = subprocess.run(argv, env=env, capture_output=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith(b"65534\n"), proc.stdout
    assert proc.stdout.strip().endswith(b"DENIED"), proc.stdout
    assert secret.encode() not in proc.stdout


def test_secret_on_the_command_line_is_warned_about(tmp_path: Path) -> None:
    proc = run_wrapper(
        [
            *wrapper_args(tmp_path, f"file://{tmp_path}/store", "bkt"),
            "-q",
            "--",
            "true",
        ],
        wrapper_env(tmp_path / "home"),
    )
    assert b"visible to ps" not in proc.stderr
    proc = run_wrapper(
        [
            *wrapper_args(tmp_path, "http://127.0.0.1:9", "bkt"),
            "--access-key",
            "AKIAEXAMPLE",
            "--secret-key",
            "cli-secret-value",
            "--flush-timeout",
            "1s",
            "-q",
            "--",
            "true",
        ],
        wrapper_env(tmp_path / "home"),
    )
    err = proc.stderr.decode()
    assert "warning: --secret-key on the command line is visible to ps; prefer --secret-key-file" in err
    assert "cli-secret-value" not in err


def test_redaction_of_registered_secrets_and_url_parameters() -> None:
    redact.add("registered-secret-1234")
    redact.add("abc")  # too short to be treated as a secret
    text = "x registered-secret-1234 y https://h/?Action=A&WebIdentityToken=eyJ.a.b&X-Amz-Security-Token=t0k abc"
    assert redact.redact(text) == "x *** y https://h/?Action=A&WebIdentityToken=***&X-Amz-Security-Token=*** abc"


def test_the_library_masks_its_config_secrets_by_the_same_rules() -> None:
    from entrypoint.library.errors import redact as library_redact

    line = library_redact("key wJalrXUtnFEMI, url ?X-Amz-Signature=abc123&x=1, short ab", ["wJalrXUtnFEMI", "ab"])
    assert line == "key ***, url ?X-Amz-Signature=***&x=1, short ab"
    assert library_redact("wJalrXUtnFEMI", []) == "wJalrXUtnFEMI"


def test_config_keeps_file_secrets_out_of_reprs(tmp_path: Path) -> None:
    values = {
        "endpoint": "http://127.0.0.1:9",
        "access_key": "AKIAEXAMPLE",
        "secret_key_file": write(tmp_path / "sk", "repr-secret-value"),
        "session_token": "repr-token-value",
        "pipelinerun": "r",
        "pipelinetask": "t",
    }
    cfg = build_config(values, ["true"])
    assert "repr-secret-value" not in repr(cfg) and "repr-token-value" not in repr(cfg)
    assert cfg.store.auth is not None and cfg.store.auth.explicit is not None
    with pytest.raises(ConfigError):
        build_config({**values, "secret_key_file": str(tmp_path / "missing")}, ["true"])


def test_every_wrapper_line_goes_through_redaction() -> None:
    """The reporter (all of the wrapper's own lines) and the one-line error exit blank secrets."""
    redact.add("reporter-secret-5678")
    r, w = os.pipe()
    try:
        reporter = Reporter(debug=True, fd=w)
        reporter.debug("debug reporter-secret-5678")
        reporter.error("error reporter-secret-5678")
        os.close(w)
        w = -1
        out = os.read(r, 4096)
    finally:
        os.close(r)
        if w >= 0:
            os.close(w)
    assert out == b"tekton-uploader: debug: debug ***\ntekton-uploader: error: error ***\n"
    buffer = io.StringIO()
    with contextlib.redirect_stderr(buffer):
        _fail("internal error: ValueError: reporter-secret-5678 leaked")
    assert buffer.getvalue() == "tekton-uploader: error: internal error: ValueError: *** leaked\n"


def test_library_config_still_reads_the_aws_key_variables() -> None:
    """The library keeps static keys: AWS_* after OBJECTSTORE_*, as its README section says."""
    from entrypoint.library import ObjectStoreConfig

    cfg = ObjectStoreConfig.from_env(
        {"AWS_ACCESS_KEY_ID": "AKIALIB", "AWS_SECRET_ACCESS_KEY": "lib-secret", "AWS_SESSION_TOKEN": "lib-token"}
    )
    assert (cfg.access_key, cfg.secret_key, cfg.token) == ("AKIALIB", "lib-secret", "lib-token")
    cfg = ObjectStoreConfig.from_env({"OBJECTSTORE_ACCESS_KEY": "AKIAOWN", "AWS_ACCESS_KEY_ID": "AKIALIB"})
    assert cfg.access_key == "AKIAOWN"
