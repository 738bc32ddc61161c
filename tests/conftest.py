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

import pytest

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
    """Environment for processes under test: no AWS/OBJECTSTORE settings leak in from the machine."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("AWS_", "OBJECTSTORE_", "MINIO_")) and k not in ("PIPELINERUN", "PIPELINETASK")
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
        return clean_env(
            OBJECTSTORE_ENDPOINT=self.endpoint,
            OBJECTSTORE_BUCKET=bucket,
            OBJECTSTORE_ACCESS_KEY=ACCESS_KEY,
            OBJECTSTORE_SECRET_KEY=SECRET_KEY,
            OBJECTSTORE_REGION="us-east-1",
            **extra,
        )

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
