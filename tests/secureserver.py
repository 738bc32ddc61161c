"""The moto server for the security tests: its own process, over HTTP and HTTPS, with IAM auth.

``tests/conftest.py``'s ``s3`` fixture runs moto as a subprocess that accepts any credentials.
The credential tests need a server that *checks* them, serves STS and the instance metadata
paths, speaks TLS with a certificate made here, and shows the request headers it received.
``secure_s3()`` starts ``tests/secureserver_main.py`` for that: moto's own WSGI application (what
``moto_server`` serves) in a separate process on 127.0.0.1, on ports the kernel picks, wrapped in
a small recorder and steered through a loopback-only JSON control endpoint:

- every request's method, path, query and headers are recorded (``records()``);
- ``listen(pki)`` adds a listener (plain, or TLS with ``pki``'s server certificate and key) in
  front of the same moto state;
- ``enforce_auth()``: from then on moto verifies SigV4 signatures against its IAM users and the
  credentials its STS handed out, and checks their policies (``INITIAL_NO_AUTH_ACTION_COUNT``);
- two adaptations for moto's STS in server mode (a WSGI middleware in the server process; see
  ``secureserver_main.py``): an ``AssumeRoleWithWebIdentity`` request with its parameters in the
  query string (as minio's ``WebIdentityProvider`` sends it) is routed to STS, and it is served
  without a SigV4 signature (AWS authenticates it by the web identity token itself).

IAM users, roles and STS credentials are made by talking to the server with boto3, with the
admin key made first (while no auth is enforced). Nothing here is reachable from anywhere but
127.0.0.1.
"""

from __future__ import annotations

import datetime
import ipaddress
import json
import shutil
import subprocess
import sys
import tempfile
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

from conftest import clean_env, wait_until

MAIN = Path(__file__).resolve().with_name("secureserver_main.py")
_CONTROL = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # loopback: never via a proxy

ALLOW_ALL = json.dumps({"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]})
WEB_IDENTITY_TRUST = json.dumps(
    {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Principal": {"Federated": "arn:aws:iam::123456789012:oidc-provider/oidc.test"},
                "Action": "sts:AssumeRoleWithWebIdentity",
            }
        ],
    }
)
ASSUME_TRUST = json.dumps(
    {
        "Version": "2012-10-17",
        "Statement": [
            {"Effect": "Allow", "Principal": {"AWS": "*"}, "Action": "sts:AssumeRole"}
        ],
    }
)


@dataclass(frozen=True)
class Record:
    port: int
    method: str
    path: str
    query: str
    headers: dict[str, str]  # lower-case names

    def access_key(self) -> Optional[str]:
        """The access key id a SigV4 request was signed with (None: unsigned)."""
        auth = self.headers.get("authorization", "")
        if "Credential=" not in auth:
            return None
        return auth.split("Credential=", 1)[1].split("/", 1)[0]


@dataclass(frozen=True)
class Listener:
    port: int
    tls: bool

    @property
    def endpoint(self) -> str:
        return f"{'https' if self.tls else 'http'}://127.0.0.1:{self.port}"

    @property
    def netloc(self) -> str:
        return f"127.0.0.1:{self.port}"


class SecureS3:
    """The test side of one server process: control calls, IAM setup, reading objects back."""

    def __init__(self, process: subprocess.Popen[bytes], control_port: int, plain_port: int) -> None:
        self.process = process
        self._control = f"http://127.0.0.1:{control_port}"
        self.plain = Listener(plain_port, tls=False)
        self.admin_key, self.admin_secret = self._bootstrap_admin()

    # -- control -----------------------------------------------------------------------------
    def _call(self, path: str, body: Optional[dict[str, Any]] = None) -> Any:
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(self._control + path, data=data, method="GET" if data is None else "POST")
        try:
            with _CONTROL.open(request, timeout=30) as resp:
                return json.loads(resp.read())
        except urllib.error.HTTPError as exc:
            raise RuntimeError(f"secure moto server: {path}: {exc.code} {exc.read().decode(errors='replace')}") from None

    def listen(self, pki: Optional[Pki] = None) -> Listener:
        """One more listener on the same moto state: TLS with ``pki``'s server certificate, or plain."""
        body = {} if pki is None else {"cert": str(pki.server_cert), "key": str(pki.server_key)}
        return Listener(int(self._call("/listen", body)["port"]), tls=pki is not None)

    def close(self, listener: Listener) -> None:
        self._call("/close", {"port": listener.port})

    def records(self, port: Optional[int] = None) -> list[Record]:
        found = self._call("/records" if port is None else f"/records?port={port}")
        return [Record(r["port"], r["method"], r["path"], r["query"], r["headers"]) for r in found]

    def clear(self) -> None:
        self._call("/clear", {})

    # -- auth --------------------------------------------------------------------------------
    @contextmanager
    def enforce_auth(self) -> Iterator[None]:
        """Within: moto checks every request's signature and permissions."""
        self._call("/auth", {"enforce": True})
        try:
            yield
        finally:
            self._call("/auth", {"enforce": False})

    def _bootstrap_admin(self) -> tuple[str, str]:
        iam = self.boto("iam", "bootstrap", "bootstrap")
        iam.create_user(UserName="admin")
        iam.put_user_policy(UserName="admin", PolicyName="all", PolicyDocument=ALLOW_ALL)
        key = iam.create_access_key(UserName="admin")["AccessKey"]
        return key["AccessKeyId"], key["SecretAccessKey"]

    def boto(self, service: str, key: Optional[str] = None, secret: Optional[str] = None) -> Any:
        import boto3

        return boto3.client(
            service,
            endpoint_url=self.plain.endpoint,
            region_name="us-east-1",
            aws_access_key_id=key or self.admin_key,
            aws_secret_access_key=secret or self.admin_secret,
        )

    def new_user(self) -> str:
        """A new IAM user allowed everything; its name."""
        name = f"user-{uuid.uuid4().hex[:12]}"
        iam = self.boto("iam")
        iam.create_user(UserName=name)
        iam.put_user_policy(UserName=name, PolicyName="all", PolicyDocument=ALLOW_ALL)
        return name

    def user_key(self, user: Optional[str] = None) -> tuple[str, str]:
        """An access key and secret of ``user`` (default: a new user allowed everything)."""
        key = self.boto("iam").create_access_key(UserName=user or self.new_user())["AccessKey"]
        return key["AccessKeyId"], key["SecretAccessKey"]

    def delete_key(self, name: str, key: str) -> None:
        self.boto("iam").delete_access_key(UserName=name, AccessKeyId=key)

    def role(self, name: str, trust: str = WEB_IDENTITY_TRUST) -> str:
        """An IAM role allowed everything, assumable as ``trust`` says; its ARN."""
        iam = self.boto("iam")
        try:
            arn: str = iam.create_role(RoleName=name, AssumeRolePolicyDocument=trust)["Role"]["Arn"]
            iam.put_role_policy(RoleName=name, PolicyName="all", PolicyDocument=ALLOW_ALL)
        except iam.exceptions.EntityAlreadyExistsException:
            arn = iam.get_role(RoleName=name)["Role"]["Arn"]
        return arn

    def web_identity_role(self, name: str) -> str:
        return self.role(name, WEB_IDENTITY_TRUST)

    def temporary_credentials(self) -> tuple[str, str, str]:
        """Session credentials from moto's STS (AssumeRole with the admin key)."""
        role = self.role("session-role", ASSUME_TRUST)
        c = self.boto("sts").assume_role(RoleArn=role, RoleSessionName="tests")["Credentials"]
        return c["AccessKeyId"], c["SecretAccessKey"], c["SessionToken"]

    # -- objects (read back with the admin key) -----------------------------------------------
    def client(self) -> Any:
        from minio import Minio

        return Minio(self.plain.netloc, self.admin_key, self.admin_secret, secure=False, region="us-east-1")

    def make_bucket(self, name: str) -> str:
        self.client().make_bucket(name)
        return name

    def keys(self, bucket: str, prefix: str = "") -> list[str]:
        return sorted(o.object_name for o in self.client().list_objects(bucket, prefix=prefix, recursive=True))

    def read(self, bucket: str, key: str) -> bytes:
        resp = self.client().get_object(bucket, key)
        try:
            return bytes(resp.read())
        finally:
            resp.close()
            resp.release_conn()

    def stat_headers(self, bucket: str, key: str) -> dict[str, str]:
        stat = self.client().stat_object(bucket, key)
        return {k.lower(): v for k, v in stat.metadata.items()}


@contextmanager
def secure_s3() -> Iterator[SecureS3]:
    """Start the server process (waiting until it listens and has an admin user), stop it after."""
    workdir = Path(tempfile.mkdtemp(prefix="secure-s3-"))
    ready = workdir / "ready.json"
    log = workdir / "server.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, str(MAIN), str(ready)],
            stdin=subprocess.PIPE,
            stdout=out,
            stderr=subprocess.STDOUT,
            env=clean_env(),
        )

    def up() -> bool:
        if process.poll() is not None:
            tail = log.read_text(errors="replace")[-4000:]
            raise RuntimeError(f"secure moto server exited with {process.returncode}:\n{tail}")
        return ready.exists()

    try:
        wait_until(up, timeout=60, what="secure moto server")
        ports = json.loads(ready.read_text())
        yield SecureS3(process, int(ports["control"]), int(ports["plain"]))
    finally:
        _stop(process)
        shutil.rmtree(workdir, ignore_errors=True)


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.stdin is not None:
        process.stdin.close()  # the server ends when its stdin closes
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


# -- certificates --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Pki:
    ca_cert: Path
    server_cert: Path
    server_key: Path


def make_pki(directory: Path, name: str = "test", hosts: tuple[str, ...] = ("127.0.0.1",)) -> Pki:
    """A CA, and a server certificate it signed for ``hosts`` (IP addresses or DNS names)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    directory.mkdir(parents=True, exist_ok=True)
    now = datetime.datetime.now(datetime.timezone.utc)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"{name} CA")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True
        )
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    alt: list[x509.GeneralName] = []
    for host in hosts:
        try:
            alt.append(x509.IPAddress(ipaddress.ip_address(host)))
        except ValueError:
            alt.append(x509.DNSName(host))
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, hosts[0])]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName(alt), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    pem = serialization.Encoding.PEM
    pki = Pki(directory / f"{name}-ca.pem", directory / f"{name}-server.pem", directory / f"{name}-server.key")
    pki.ca_cert.write_bytes(ca.public_bytes(pem))
    pki.server_cert.write_bytes(cert.public_bytes(pem))
    pki.server_key.write_bytes(
        key.private_bytes(pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return pki


# -- running the wrapper against it --------------------------------------------------------------

TLS_VARIABLES = ("SSL_CERT_FILE", "SSL_CERT_DIR", "REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE", "AWS_CA_BUNDLE")


def wrapper_env(home: Path, **extra: str) -> dict[str, str]:
    """A clean environment: no AWS_*/OBJECTSTORE_* and no CA variables of this machine (they are
    set here to the system bundle), HOME without an ~/.aws; then ``extra``."""
    env = {k: v for k, v in clean_env().items() if k not in TLS_VARIABLES}
    home.mkdir(parents=True, exist_ok=True)
    env["HOME"] = str(home)
    env.update(extra)
    return env


def wrapper_args(tmp_path: Path, endpoint: str, bucket: str, *more: str) -> list[str]:
    return [
        "--pipelinerun",
        "run-1",
        "--pipelinetask",
        "task-1",
        "--pod-labels",
        str(tmp_path / "no-labels"),
        "--results-dir",
        str(tmp_path / "results"),
        "--endpoint",
        endpoint,
        "--bucket",
        bucket,
        "--region",
        "us-east-1",
        *more,
    ]


PREFIX = "artifacts/run-1/task-1/"


def all_stored_bytes(server: SecureS3, bucket: str) -> bytes:
    """Every stored object of ``bucket``, .tgz members unpacked too: for grepping secrets."""
    import gzip

    out = []
    for key in server.keys(bucket):
        data = server.read(bucket, key)
        out.append(data)
        if key.endswith(".tgz"):
            out.append(gzip.decompress(data))
    return b"\n".join(out)
