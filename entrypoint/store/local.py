"""A store in a local directory: ``<root>/<bucket>/<key>``, same layout as in S3."""

from __future__ import annotations

import errno
import hashlib
import os
import tempfile
import threading
from pathlib import Path

from ..payload import Payload
from .base import Retry, Stored, StoreError, once

_COPY = 1024 * 1024
_PERMANENT_ERRNOS = (errno.EACCES, errno.EPERM, errno.EROFS)


class LocalStore:
    def __init__(self, root: Path, bucket: str, create_bucket: bool = True) -> None:
        self.root = root
        self.bucket = bucket
        self.create_bucket = create_bucket
        self.base = (root / bucket).absolute()
        self._bucket_lock = threading.Lock()

    def describe(self) -> str:
        return f"local directory {self.base}"

    def _ensure_bucket(self) -> None:
        if self.base.is_dir():
            return
        if not self.create_bucket:
            raise StoreError(
                f"NoSuchBucket: bucket directory {self.base} is missing; create it or use --create-bucket",
                transient=False,
                code="NoSuchBucket",
                whole_store=True,
            )
        with self._bucket_lock:
            try:
                self.base.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise StoreError(
                    f"AccessDenied: cannot create {self.base}: {exc.strerror}",
                    transient=exc.errno not in _PERMANENT_ERRNOS,
                    code="AccessDenied",
                    whole_store=True,
                ) from None

    def check(self, prefix: str) -> None:
        self._ensure_bucket()
        if not os.access(self.base, os.W_OK | os.X_OK):
            raise StoreError(
                f"AccessDenied: {self.base} is not writable",
                transient=False,
                code="AccessDenied",
                whole_store=True,
            )

    def path_of(self, key: str) -> Path:
        """The file for ``key``; refuses keys that would resolve outside the bucket directory."""
        parts = key.split("/")
        if not key or key.startswith("/") or any(p in ("", ".", "..") for p in parts) or "\0" in key:
            raise StoreError(f"refusing object key {key!r}", transient=False, code="InvalidKey")
        path = self.base.joinpath(*parts)
        if not os.path.realpath(path).startswith(os.path.realpath(self.base) + os.sep):
            raise StoreError(f"refusing object key {key!r}", transient=False, code="InvalidKey")
        return path

    def put(self, key: str, payload: Payload, content_type: str = "", retry: Retry = once) -> Stored:
        path = self.path_of(key)
        return retry(lambda: self._put(key, path, payload), f"write {key}")

    def _put(self, key: str, path: Path, payload: Payload) -> Stored:
        self._ensure_bucket()
        digest = hashlib.sha256()
        size = 0
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".part", dir=path.parent)
            try:
                with os.fdopen(fd, "wb") as out, payload.open() as src:
                    while data := src.read(_COPY):
                        digest.update(data)
                        out.write(data)
                        size += len(data)
                os.replace(tmp, path)
            except BaseException:
                os.unlink(tmp)
                raise
        except OSError as exc:
            transient = exc.errno not in _PERMANENT_ERRNOS
            raise StoreError(
                f"writing {path}: {exc.strerror or exc}",
                transient=transient,
                code="" if transient else "AccessDenied",
            ) from None
        return Stored(key, size, digest.hexdigest())

    def get(self, key: str) -> bytes:
        try:
            return self.path_of(key).read_bytes()
        except FileNotFoundError:
            raise StoreError(f"no object {key!r}", transient=False, code="NoSuchKey") from None

    def list(self, prefix: str) -> list[str]:
        if not self.base.is_dir():
            return []
        keys = []
        for dirpath, _dirs, files in os.walk(self.base):
            rel = os.path.relpath(dirpath, self.base)
            for name in files:
                if name.startswith(".") and name.endswith(".part"):
                    continue
                key = name if rel == "." else f"{rel.replace(os.sep, '/')}/{name}"
                if key.startswith(prefix):
                    keys.append(key)
        return sorted(keys)
