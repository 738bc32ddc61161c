"""TLS to the store: verified by default against a real TLS endpoint (a CA and a server
certificate made here, moto served with them on 127.0.0.1), --ca-bundle and its variables, host
name checks, and --insecure-skip-tls-verify with its warning on every run.

The machines this runs on set SSL_CERT_FILE, AWS_CA_BUNDLE and friends to the system bundle, so
every run here sets or removes them explicitly (``wrapper_env`` removes them all).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import run_wrapper
from secureserver import PREFIX, Listener, Pki, SecureS3, make_pki, wrapper_args, wrapper_env

from entrypoint.settings import tls
from entrypoint.store import s3_security

SYSTEM_BUNDLE = "/etc/ssl/certs/ca-certificates.crt"


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return make_pki(tmp_path_factory.mktemp("pki"), "good", ("127.0.0.1",))


@pytest.fixture(scope="module")
def other_ca(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return make_pki(tmp_path_factory.mktemp("pki-other"), "other", ("127.0.0.1",))


@pytest.fixture(scope="module")
def tls_listener(srv: SecureS3, pki: Pki) -> Iterator[Listener]:
    listener = srv.listen(pki)
    yield listener
    srv.close(listener)


def run(tmp_path: Path, endpoint: str, bucket: str, *more: str, env: dict[str, str] | None = None):  # type: ignore[no-untyped-def]
    env = env if env is not None else wrapper_env(tmp_path / "home")
    env.setdefault("OBJECTSTORE_ACCESS_KEY", "AKIATLSTEST")
    env.setdefault("OBJECTSTORE_SECRET_KEY", "tls-test-secret-value")
    argv = wrapper_args(tmp_path, endpoint, bucket, "--flush-timeout", "10s", *more)
    return run_wrapper([*argv, "--", "echo", "over tls"], env)


def assert_stored_over_tls(srv: SecureS3, listener: Listener, bucket: str, since: int) -> None:
    assert srv.read(bucket, PREFIX + "logs/main/00000000.log") == b"over tls\n"
    assert [r for r in srv.records(listener.port)[since:] if r.method == "PUT"], "nothing came over TLS"


def assert_refused(proc, srv: SecureS3, listener: Listener, bucket: str, since: int) -> None:  # type: ignore[no-untyped-def]
    assert proc.returncode == 74, proc.stderr
    assert proc.stdout == b"over tls\n"  # COMMAND ran all the same
    err = proc.stderr.decode()
    assert "TLS verification failed" in err and "--ca-bundle" in err, err
    assert "Traceback" not in err
    assert srv.records(listener.port)[since:] == []  # no request got through the handshake
    assert srv.keys(bucket) == []


def test_verification_fails_without_the_ca(srv: SecureS3, tls_listener: Listener, bkt: str, tmp_path: Path) -> None:
    since = len(srv.records(tls_listener.port))
    assert_refused(run(tmp_path, tls_listener.endpoint, bkt), srv, tls_listener, bkt, since)


def test_verification_fails_with_the_machines_bundle(
    srv: SecureS3, tls_listener: Listener, bkt: str, tmp_path: Path
) -> None:
    """As these machines are set up: SSL_CERT_FILE and AWS_CA_BUNDLE name the system bundle."""
    env = wrapper_env(tmp_path / "home", SSL_CERT_FILE=SYSTEM_BUNDLE, AWS_CA_BUNDLE=SYSTEM_BUNDLE)
    since = len(srv.records(tls_listener.port))
    assert_refused(run(tmp_path, tls_listener.endpoint, bkt, env=env), srv, tls_listener, bkt, since)


def test_verification_fails_with_another_ca(
    srv: SecureS3, tls_listener: Listener, other_ca: Pki, bkt: str, tmp_path: Path
) -> None:
    since = len(srv.records(tls_listener.port))
    proc = run(tmp_path, tls_listener.endpoint, bkt, "--ca-bundle", str(other_ca.ca_cert))
    assert_refused(proc, srv, tls_listener, bkt, since)


@pytest.mark.parametrize("how", ["--ca-bundle", "OBJECTSTORE_CA_BUNDLE", "AWS_CA_BUNDLE", "SSL_CERT_FILE"])
def test_verification_passes_with_the_ca(
    srv: SecureS3, tls_listener: Listener, pki: Pki, bkt: str, tmp_path: Path, how: str
) -> None:
    env = wrapper_env(tmp_path / "home")
    more: list[str] = []
    if how.startswith("--"):
        more = [how, str(pki.ca_cert)]
    else:
        env[how] = str(pki.ca_cert)
    since = len(srv.records(tls_listener.port))
    proc = run(tmp_path, tls_listener.endpoint, bkt, *more, env=env)
    assert proc.returncode == 0, proc.stderr
    assert_stored_over_tls(srv, tls_listener, bkt, since)
    assert b"insecure" not in proc.stderr


def test_flag_wins_over_the_variables(
    srv: SecureS3, tls_listener: Listener, pki: Pki, other_ca: Pki, bkt: str, tmp_path: Path
) -> None:
    env = wrapper_env(tmp_path / "home", SSL_CERT_FILE=str(pki.ca_cert), AWS_CA_BUNDLE=str(pki.ca_cert))
    since = len(srv.records(tls_listener.port))
    proc = run(tmp_path, tls_listener.endpoint, bkt, "--ca-bundle", str(other_ca.ca_cert), env=env)
    assert_refused(proc, srv, tls_listener, bkt, since)
    # and among the variables, the more specific one wins
    env = wrapper_env(tmp_path / "home", SSL_CERT_FILE=str(other_ca.ca_cert), AWS_CA_BUNDLE=str(pki.ca_cert))
    proc = run(tmp_path, tls_listener.endpoint, bkt, env=env)
    assert proc.returncode == 0, proc.stderr


def test_host_name_is_checked(srv: SecureS3, tmp_path: Path, bkt: str) -> None:
    """A certificate from the trusted CA, but for another name than the endpoint's: refused."""
    wrong_name = make_pki(tmp_path / "pki", "named", ("s3.example.test",))
    listener = srv.listen(wrong_name)
    try:
        since = len(srv.records(listener.port))
        proc = run(tmp_path, listener.endpoint, bkt, "--ca-bundle", str(wrong_name.ca_cert))
        assert_refused(proc, srv, listener, bkt, since)
        assert "match" in proc.stderr.decode() or "mismatch" in proc.stderr.decode()
    finally:
        srv.close(listener)


def test_insecure_skips_verification_and_warns_every_run(
    srv: SecureS3, tls_listener: Listener, bkt: str, tmp_path: Path
) -> None:
    for _ in range(2):
        since = len(srv.records(tls_listener.port))
        proc = run(tmp_path, tls_listener.endpoint, bkt, "--insecure-skip-tls-verify", "-q")
        assert proc.returncode == 0, proc.stderr
        assert_stored_over_tls(srv, tls_listener, bkt, since)
        warnings = [line for line in proc.stderr.decode().splitlines() if "warning:" in line]
        assert len(warnings) == 1 and "--insecure-skip-tls-verify" in warnings[0], proc.stderr
        assert "NOT verified" in warnings[0]
        assert "InsecureRequestWarning" not in proc.stderr.decode()  # one line, not one per request


def test_insecure_is_not_the_default(tmp_path: Path) -> None:
    cfg = tls.resolve({}, https=True)
    assert not cfg.insecure
    ctx = s3_security.ssl_context(cfg)
    import ssl

    assert ctx.verify_mode == ssl.CERT_REQUIRED and ctx.check_hostname


@pytest.mark.parametrize(("content", "needle"), [(None, "cannot read"), ("not a certificate\n", "no PEM certificate")])
def test_unusable_ca_bundle_is_exit_2(tmp_path: Path, content: str | None, needle: str) -> None:
    bundle = tmp_path / "ca.pem"
    if content is not None:
        bundle.write_text(content)
    marker = tmp_path / "ran"
    env = wrapper_env(tmp_path / "home", OBJECTSTORE_ACCESS_KEY="AKIAX", OBJECTSTORE_SECRET_KEY="tls-secret-x")
    argv = wrapper_args(tmp_path, "https://127.0.0.1:9", "bkt", "--ca-bundle", str(bundle))
    proc = run_wrapper([*argv, "--", "touch", str(marker)], env)
    assert proc.returncode == 2
    line = proc.stderr.decode().strip()
    assert line.startswith("tekton-uploader: error: --ca-bundle:") and needle in line, line
    assert not marker.exists()


def test_a_bundle_variable_does_not_matter_for_plain_http(srv: SecureS3, bkt: str, tmp_path: Path) -> None:
    env = wrapper_env(tmp_path / "home", SSL_CERT_FILE=str(tmp_path / "missing.pem"))
    proc = run(tmp_path, srv.plain.endpoint, bkt, env=env)
    assert proc.returncode == 0, proc.stderr


def test_sts_endpoint_is_verified_with_the_same_bundle(
    srv: SecureS3, tls_listener: Listener, pki: Pki, bkt: str, tmp_path: Path
) -> None:
    """Web identity over https: the STS request trusts exactly --ca-bundle too."""
    token = tmp_path / "token"
    token.write_text("eyJhbGciOiJub25lIn0.eyJzdWIiOiJ0bHMifQ.c2ln")
    role = srv.web_identity_role("uploader-tls")
    env = wrapper_env(tmp_path / "home", AWS_WEB_IDENTITY_TOKEN_FILE=str(token), AWS_ROLE_ARN=role)
    argv = wrapper_args(tmp_path, srv.plain.endpoint, bkt, "--sts-endpoint", tls_listener.endpoint)
    since = len(srv.records(tls_listener.port))
    proc = run_wrapper([*argv, "--flush-timeout", "10s", "--", "echo", "over tls"], env)
    assert proc.returncode == 74
    assert "web identity: TLS verification failed; trust the service's CA with --ca-bundle" in proc.stderr.decode()
    assert srv.records(tls_listener.port)[since:] == []
    proc = run_wrapper([*argv, "--ca-bundle", str(pki.ca_cert), "--", "echo", "over tls"], env)
    assert proc.returncode == 0, proc.stderr
    assert [r for r in srv.records(tls_listener.port)[since:] if "AssumeRoleWithWebIdentity" in r.query]
    assert srv.read(bkt, PREFIX + "logs/main/00000000.log") == b"over tls\n"
