"""Real S3 servers for the tests: MinIO and SeaweedFS, built from their Go modules (``peers.py``).

Each runs on free loopback ports with its data on disk under a temporary directory, is waited for
by polling until it stores and lists an object, and is stopped at the end. Both offer the same
interface as conftest's moto ``S3Server`` (``endpoint``, ``netloc``, ``client()``, ``env(bucket)``,
``read``, ``keys``), so a test takes any of the three from the ``real_s3`` fixture
(``params=["moto", "minio", "seaweedfs"]``). How the three differ is written down in
``tests/REAL_SERVERS.md``; the ``Quirks`` of each server say it in code, for the tests that check
the documented behaviour.
"""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import peers
import pytest
from conftest import ACCESS_KEY, SECRET_KEY, S3Server, clean_env, free_port, wait_until

START_TIMEOUT = 120  # a cold start on a busy two-core machine (SeaweedFS grows its first volumes)
# MinIO's built-in single-key KMS (``MINIO_KMS_SECRET_KEY``), so that SSE-S3 works: a 32-byte key
# made for these tests, never used for anything else.
MINIO_KMS_KEY = "tekton-uploader-test:" + "dGVrdG9uLXVwbG9hZGVyLXRlc3Qta21zLWtleS0zMiE="
# SeaweedFS derives its SSE-S3 key from any string given as s3.sse.key (here: WEED_S3_SSE_KEY).
SEAWEEDFS_SSE_KEY = "tekton-uploader-test-sse-s3-key"


@dataclass(frozen=True)
class Quirks:
    """What a server does differently (each line of tests/REAL_SERVERS.md that a test checks)."""

    checks_signatures: bool  # a wrong secret key is refused (moto, by default: accepted)
    checks_content_md5: bool  # a body that does not match its Content-MD5 is refused (BadDigest)
    sse_s3: bool  # accepts x-amz-server-side-encryption: AES256 and reports it back


MOTO = Quirks(checks_signatures=False, checks_content_md5=False, sse_s3=True)
MINIO = Quirks(checks_signatures=True, checks_content_md5=True, sse_s3=True)  # with a KMS key
SEAWEEDFS = Quirks(checks_signatures=True, checks_content_md5=True, sse_s3=True)


@dataclass
class RealServer(S3Server):
    """A server program of ours to start, SIGKILL and restart on the same port and directory."""

    kind: str = ""
    data: Path = Path()
    argv: list[str] = field(default_factory=list)
    environ: dict[str, str] = field(default_factory=dict)
    quirks: Quirks = MINIO

    @property
    def log(self) -> Path:
        return self.data.parent / f"{self.kind}.log"

    def start(self) -> None:
        with open(self.log, "ab") as log:
            self.process = subprocess.Popen(
                self.argv, stdout=log, stderr=subprocess.STDOUT, env=self.environ, start_new_session=True
            )
        try:
            wait_until(self._ready, timeout=START_TIMEOUT, interval=0.2, what=f"{self.kind} server")
        except BaseException:
            self.stop()
            raise

    def _ready(self) -> bool:
        """Up when it stores, lists and returns an object (SeaweedFS answers before it can store)."""
        if self.process.poll() is not None:
            tail = self.log.read_text(errors="replace")[-2000:]
            raise RuntimeError(f"{self.kind} exited with {self.process.returncode}:\n{tail}")
        from minio.error import MinioException
        from urllib3.exceptions import HTTPError

        client = self.client(timeout=2)
        try:
            if not client.bucket_exists("ready-probe"):
                client.make_bucket("ready-probe")
            client.put_object("ready-probe", "probe", io.BytesIO(b"ok"), 2)
            return self.read("ready-probe", "probe") == b"ok"
        except (MinioException, HTTPError, OSError):
            return False

    def client(self, timeout: float = 30):  # type: ignore[override]  # -> minio.Minio
        import urllib3
        from minio import Minio

        pool = urllib3.PoolManager(
            timeout=urllib3.Timeout(connect=timeout, read=timeout), retries=False, maxsize=16
        )
        return Minio(
            self.netloc,
            access_key=ACCESS_KEY,
            secret_key=SECRET_KEY,
            secure=False,
            region="us-east-1",
            http_client=pool,
        )

    def kill(self) -> None:
        """SIGKILL the server (and whatever it started), as the OOM killer or a node failure would."""
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=30)

    def stop(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.kill()


def minio_server(data: Path, port: int | None = None, kms: bool = True) -> RealServer:
    """A MinIO server on ``data`` (a single drive) at 127.0.0.1:``port``, started. With ``kms`` it
    has MinIO's built-in single-key KMS, without which it refuses SSE-S3 (as KFP deploys it)."""
    binary = peers.minio()
    port = port or free_port()
    data.mkdir(parents=True, exist_ok=True)
    argv = [
        str(binary),
        "server",
        str(data),
        "--address",
        f"127.0.0.1:{port}",
        "--console-address",
        f"127.0.0.1:{free_port()}",
        "--quiet",
    ]
    environ = clean_env(
        MINIO_ROOT_USER=ACCESS_KEY,
        MINIO_ROOT_PASSWORD=SECRET_KEY,
        MINIO_BROWSER="off",
        MINIO_UPDATE="off",
        MINIO_CI_CD="1",  # no colour, no terminal checks
        HOME=str(data.parent),
        **({"MINIO_KMS_SECRET_KEY": MINIO_KMS_KEY} if kms else {}),
    )
    server = RealServer("127.0.0.1", port, None, "minio", data, argv, environ, MINIO)  # type: ignore[arg-type]
    server.start()
    return server


def seaweedfs_server(data: Path, sse_key: bool = True) -> RealServer:
    """``weed server`` (master, volume, filer and S3 gateway) on ``data``, started. With ``sse_key``
    it has an SSE-S3 key (``s3.sse.key``), without which it answers SSE-S3 uploads with 500."""
    binary = peers.weed()
    data.mkdir(parents=True, exist_ok=True)
    config = data.parent / "s3.json"
    identity = {
        "name": "tests",
        "credentials": [{"accessKey": ACCESS_KEY, "secretKey": SECRET_KEY}],
        "actions": ["Admin", "Read", "List", "Tagging", "Write"],
    }
    config.write_text(json.dumps({"identities": [identity]}))
    ports = {name: free_port() for name in ("master", "volume", "filer", "s3")}
    grpc = {name: free_port() for name in ("master", "volume", "filer", "s3")}
    port = ports["s3"]
    argv = [
        str(binary),
        "server",
        f"-dir={data}",
        "-ip=127.0.0.1",
        "-ip.bind=127.0.0.1",
        f"-master.port={ports['master']}",
        f"-master.port.grpc={grpc['master']}",
        "-master.volumeSizeLimitMB=256",
        f"-volume.port={ports['volume']}",
        f"-volume.port.grpc={grpc['volume']}",
        "-volume.max=0",  # as many volume slots as the disk holds: every bucket takes some
        "-filer",
        f"-filer.port={ports['filer']}",
        f"-filer.port.grpc={grpc['filer']}",
        "-s3",
        f"-s3.port={port}",
        f"-s3.port.grpc={grpc['s3']}",
        f"-s3.config={config}",
        "-s3.port.iceberg=0",  # off: fixed default ports otherwise (8181, 9101)
        "-s3.port.lance=0",
        "-master.telemetry=false",  # tests talk only to 127.0.0.1
    ]
    environ = clean_env(
        HOME=str(data.parent),
        # Each bucket is a collection, for which the master grows 7 volumes at once by default:
        # with a bucket per test the slots run out ("no free volumes"). One at a time, as weed mini.
        WEED_MASTER_VOLUME_GROWTH_COPY_1="1",
        **({"WEED_S3_SSE_KEY": SEAWEEDFS_SSE_KEY} if sse_key else {}),
    )
    server = RealServer("127.0.0.1", port, None, "seaweedfs", data, argv, environ, SEAWEEDFS)  # type: ignore[arg-type]
    server.start()
    return server


@pytest.fixture(scope="session")
def minio_s3() -> Iterator[RealServer]:
    with tempfile.TemporaryDirectory(prefix="minio-") as tmp:
        server = minio_server(Path(tmp) / "data")
        try:
            yield server
        finally:
            server.stop()


@pytest.fixture(scope="session")
def seaweedfs_s3() -> Iterator[RealServer]:
    with tempfile.TemporaryDirectory(prefix="seaweedfs-") as tmp:
        server = seaweedfs_server(Path(tmp) / "data")
        try:
            yield server
        finally:
            server.stop()


SERVERS = ["moto", "minio", "seaweedfs"]


def quirks_of(server: S3Server) -> Quirks:
    return server.quirks if isinstance(server, RealServer) else MOTO


def kind_of(server: S3Server) -> str:
    return server.kind if isinstance(server, RealServer) else "moto"


@pytest.fixture(scope="session", params=SERVERS)
def real_s3(request: pytest.FixtureRequest) -> S3Server:
    """Each of the three servers in turn: moto (the session's), MinIO and SeaweedFS."""
    name = {"moto": "s3", "minio": "minio_s3", "seaweedfs": "seaweedfs_s3"}[request.param]
    server: S3Server = request.getfixturevalue(name)
    return server


def new_bucket(server: S3Server) -> str:
    name = f"t-{uuid.uuid4().hex[:16]}"
    server.client().make_bucket(name)
    return name
