"""The moto server for the security tests: in this process, over HTTP and HTTPS, with IAM auth.

``tests/conftest.py``'s ``s3`` fixture runs moto as a subprocess that accepts any credentials.
The credential tests need a server that *checks* them, serves STS and the instance metadata
paths, speaks TLS with a certificate made here, and shows the request headers it received. This
module runs moto's own WSGI application (``DomainDispatcherApplication``, what ``moto_server``
serves) in a werkzeug server thread on 127.0.0.1, wrapped in a small recorder:

- every request's method, path, query and headers are recorded (``records()``);
- ``listen(ssl_context)`` adds a listener (plain or TLS) in front of the same moto state;
- ``enforce_auth()``: from then on moto verifies SigV4 signatures against its IAM users and the
  credentials its STS handed out, and checks their policies (``INITIAL_NO_AUTH_ACTION_COUNT``);
- two adaptations for moto's STS in server mode, both documented AWS behaviour that moto's
  dispatcher misses: an ``AssumeRoleWithWebIdentity`` request with its parameters in the query
  string (as minio's ``WebIdentityProvider`` sends it) is routed to STS, and it is served without a
  SigV4 signature (AWS authenticates it by the web identity token itself).

Nothing here is reachable from anywhere but 127.0.0.1.
"""

from __future__ import annotations

import datetime
import io
import ipaddress
import json
import logging
import ssl
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Optional

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
_STS_TARGET = "STS.AssumeRoleWithWebIdentity"


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


@dataclass
class Listener:
    port: int
    tls: bool
    server: Any = field(repr=False)

    @property
    def endpoint(self) -> str:
        return f"{'https' if self.tls else 'http'}://127.0.0.1:{self.port}"

    @property
    def netloc(self) -> str:
        return f"127.0.0.1:{self.port}"


class SecureS3:
    def __init__(self) -> None:
        from moto.core.authorization import ActionAuthenticatorMixin
        from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app

        logging.getLogger("werkzeug").setLevel(logging.WARNING)  # no line per request
        if _STS_TARGET not in ActionAuthenticatorMixin.PUBLIC_OPERATIONS:
            ActionAuthenticatorMixin.PUBLIC_OPERATIONS.append(_STS_TARGET)
        self._moto = DomainDispatcherApplication(create_backend_app)
        self._lock = threading.Lock()
        self._records: list[Record] = []
        self._listeners: list[Listener] = []
        self.plain = self.listen()
        self.admin_key, self.admin_secret = self._bootstrap_admin()

    # -- serving -----------------------------------------------------------------------------
    def _app(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        headers = {k[5:].replace("_", "-").lower(): v for k, v in environ.items() if k.startswith("HTTP_")}
        if environ.get("CONTENT_TYPE"):
            headers["content-type"] = environ["CONTENT_TYPE"]
        query = environ.get("QUERY_STRING", "")
        with self._lock:
            self._records.append(
                Record(int(environ["SERVER_PORT"]), environ["REQUEST_METHOD"], environ.get("PATH_INFO", ""), query, headers)
            )
        if environ["REQUEST_METHOD"] == "POST" and "Action=AssumeRoleWithWebIdentity" in query:
            body = query.encode()
            environ.update(
                {
                    "wsgi.input": io.BytesIO(body),
                    "CONTENT_LENGTH": str(len(body)),
                    "CONTENT_TYPE": "application/x-www-form-urlencoded",
                    "QUERY_STRING": "",
                }
            )
            sts = self._moto.get_application(environ)
            environ["HTTP_X_AMZ_TARGET"] = _STS_TARGET
            return sts(environ, start_response)
        return self._moto(environ, start_response)

    def listen(self, ssl_context: Optional[ssl.SSLContext] = None) -> Listener:
        from moto.moto_server.werkzeug_app import MotoRequestHandler
        from werkzeug.serving import make_server

        server = make_server(
            "127.0.0.1", 0, self._app, threaded=True, request_handler=MotoRequestHandler, ssl_context=ssl_context
        )
        threading.Thread(target=server.serve_forever, name="secure-s3", daemon=True).start()
        listener = Listener(server.server_port, ssl_context is not None, server)
        self._listeners.append(listener)
        return listener

    def close(self, listener: Listener) -> None:
        listener.server.shutdown()
        listener.server.server_close()
        self._listeners.remove(listener)

    def records(self, port: Optional[int] = None) -> list[Record]:
        with self._lock:
            return [r for r in self._records if port is None or r.port == port]

    def clear(self) -> None:
        with self._lock:
            self._records.clear()

    # -- auth --------------------------------------------------------------------------------
    @staticmethod
    def _set_auth(count: float) -> None:
        from moto import settings
        from moto.core.authorization import ActionAuthenticatorMixin

        settings.INITIAL_NO_AUTH_ACTION_COUNT = count  # type: ignore[assignment]
        ActionAuthenticatorMixin.request_count = 0

    @contextmanager
    def enforce_auth(self) -> Iterator[None]:
        """Within: moto checks every request's signature and permissions."""
        self._set_auth(0)
        try:
            yield
        finally:
            self._set_auth(float("inf"))

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


_instance: Optional[SecureS3] = None
_instance_lock = threading.Lock()


def secure_s3() -> SecureS3:
    """The one in-process server of this test process (moto's state is process-wide)."""
    global _instance
    with _instance_lock:
        if _instance is None:
            _instance = SecureS3()
        return _instance


# -- certificates --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Pki:
    ca_cert: Path
    server_cert: Path
    server_key: Path

    def server_context(self) -> ssl.SSLContext:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(self.server_cert, self.server_key)
        return ctx


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
    from conftest import clean_env

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
