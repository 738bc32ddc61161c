"""Shared fixtures: a real S3 server (moto in server mode) on 127.0.0.1, and helpers.

Tests talk to the server over HTTP through the real minio client; nothing is mocked.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from secureserver import SecureS3

REPO = Path(__file__).resolve().parent.parent
SHARED = REPO.parent / "shared"
ACCESS_KEY = "test-access-key"
SECRET_KEY = "test-secret-key-do-not-print"


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_until(predicate, timeout: float, interval: float = 0.02, what: str = "condition"):
    """Poll ``predicate`` until it returns a truthy value or ``timeout`` passes."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)


def require_program(name: str, how: str) -> str:
    """Return the path of a program a test needs.

    Locally a missing program skips the test with the reason; in CI (``CI`` set) it fails,
    because CI must run everything.
    """
    path = shutil.which(name)
    if path:
        return path
    message = f"{name} is not installed ({how}; scripts/test installs it when run as root)"
    if os.environ.get("CI"):
        pytest.fail(message)
    pytest.skip(message)


def clean_env(**extra: str) -> dict[str, str]:
    """Environment for processes under test: no AWS/OBJECTSTORE settings leak in from the machine,
    and nothing that says "inside a pod or container" (KUBERNETES_SERVICE_HOST, the image's
    variable): there, no --endpoint is an error, and the tests of the embedded default run anyway."""
    dropped = (
        "PIPELINERUN",
        "PIPELINETASK",
        "KUBERNETES_SERVICE_HOST",
        "TEKTON_UPLOADER_IN_IMAGE",
        "POD_NAMESPACE",
        "HOSTNAME",
    )
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("AWS_", "OBJECTSTORE_", "MINIO_", "ARTIFACT_")) and k not in dropped
    }
    env.update(extra)
    return env


@dataclass
class S3Server:
    host: str
    port: int
    process: subprocess.Popen[bytes]

    @property
    def endpoint(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def netloc(self) -> str:
        return f"{self.host}:{self.port}"

    def client(self):  # -> minio.Minio
        from minio import Minio

        return Minio(
            self.netloc, access_key=ACCESS_KEY, secret_key=SECRET_KEY, secure=False, region="us-east-1"
        )

    def env(self, bucket: str, **extra: str) -> dict[str, str]:
        """Environment that points the wrapper at this server and ``bucket``."""
        settings = {
            "OBJECTSTORE_ENDPOINT": self.endpoint,
            "OBJECTSTORE_BUCKET": bucket,
            "OBJECTSTORE_ACCESS_KEY": ACCESS_KEY,
            "OBJECTSTORE_SECRET_KEY": SECRET_KEY,
            "OBJECTSTORE_REGION": "us-east-1",
        }
        return clean_env(**{**settings, **extra})

    def read(self, bucket: str, key: str) -> bytes:
        resp = self.client().get_object(bucket, key)
        try:
            return bytes(resp.read())
        finally:
            resp.close()
            resp.release_conn()

    def keys(self, bucket: str, prefix: str = "") -> list[str]:
        return sorted(
            o.object_name for o in self.client().list_objects(bucket, prefix=prefix, recursive=True)
        )


def start_moto(port: int | None = None) -> S3Server:
    port = port or free_port()
    env = clean_env(AWS_ACCESS_KEY_ID=ACCESS_KEY, AWS_SECRET_ACCESS_KEY=SECRET_KEY)
    proc = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=env,
    )

    def up() -> bool:
        if proc.poll() is not None:
            raise RuntimeError(f"moto server exited with {proc.returncode}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/moto-api/", timeout=1):
                return True
        except OSError:
            return False

    wait_until(up, timeout=30, what="moto server")
    return S3Server("127.0.0.1", port, proc)


@pytest.fixture(scope="session")
def s3() -> Iterator[S3Server]:
    server = start_moto()
    try:
        yield server
    finally:
        server.process.terminate()
        try:
            server.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            server.process.kill()


@pytest.fixture
def bucket(s3: S3Server) -> str:
    """A fresh, empty bucket on the session's S3 server."""
    name = f"t-{uuid.uuid4().hex[:16]}"
    s3.client().make_bucket(name)
    return name


WRAPPER = [sys.executable, "-m", "entrypoint"]


class StoreView:
    """One store as the wrapper sees it (``env``) and as a test reads it back."""

    def __init__(self, kind: str, env: dict[str, str], bucket: str, s3: S3Server | None, root: Path | None):
        self.kind = kind
        self.env = env
        self.bucket = bucket
        self._s3 = s3
        self._root = root

    def read(self, key: str) -> bytes:
        if self._s3 is not None:
            return self._s3.read(self.bucket, key)
        assert self._root is not None
        return (self._root / self.bucket / key).read_bytes()

    def keys(self, prefix: str = "") -> list[str]:
        if self._s3 is not None:
            return self._s3.keys(self.bucket, prefix)
        assert self._root is not None
        base = self._root / self.bucket
        if not base.is_dir():
            return []
        found = (p.relative_to(base).as_posix() for p in base.rglob("*") if p.is_file())
        return sorted(k for k in found if k.startswith(prefix))


@pytest.fixture(scope="module")
def srv() -> Iterator[SecureS3]:
    """A moto server of its own that can enforce SigV4 auth and serve TLS (``secureserver.py``)."""
    from secureserver import secure_s3

    with secure_s3() as server:
        yield server


@pytest.fixture
def bkt(srv: SecureS3) -> str:
    """A fresh bucket on ``srv``."""
    return srv.make_bucket(f"b-{uuid.uuid4().hex[:12]}")


@pytest.fixture(params=["s3", "local"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> StoreView:
    """Each behavioural test runs against the S3 server and against the local directory store."""
    if request.param == "s3":
        server: S3Server = request.getfixturevalue("s3")
        name = request.getfixturevalue("bucket")
        return StoreView("s3", server.env(name), name, server, None)
    root = tmp_path / "store"
    env = clean_env(OBJECTSTORE_ENDPOINT=f"file://{root}", OBJECTSTORE_BUCKET="mlpipeline")
    return StoreView("local", env, "mlpipeline", None, root)


def run_wrapper(
    args: list[str], env: dict[str, str], timeout: float = 120, **kwargs
) -> subprocess.CompletedProcess[bytes]:
    """Run the wrapper CLI to completion, capturing its stdout and stderr."""
    return subprocess.run([*WRAPPER, *args], env=env, capture_output=True, timeout=timeout, **kwargs)


def untar_single(data: bytes) -> tuple[str, bytes]:
    """The one member of a .tgz given as bytes: its name and content."""
    import io
    import tarfile

    with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as tar:
        members = tar.getmembers()
        assert len(members) == 1, [m.name for m in members]
        member = members[0]
        assert member.isfile()
        extracted = tar.extractfile(member)
        assert extracted is not None
        return member.name, extracted.read()


# MinIO and SeaweedFS, built from their Go modules (tests/realservers.py): the session fixtures
# ``minio_s3`` and ``seaweedfs_s3``, and ``real_s3``, each of moto, MinIO and SeaweedFS in turn.
from realservers import minio_s3, real_s3, seaweedfs_s3  # noqa: E402, F401
