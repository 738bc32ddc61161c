"""A store in a local directory: ``<root>/<bucket>/<key>``, same layout as in S3."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

from ..payload import Payload
from .base import StoreError


class LocalStore:
    def __init__(self, root: Path, bucket: str, create_bucket: bool = True) -> None:
        self.root = root
        self.bucket = bucket
        self.create_bucket = create_bucket
        self.base = (root / bucket).absolute()

    def describe(self) -> str:
        return f"local directory {self.base}"

    def prepare(self) -> None:
        if self.base.is_dir():
            return
        if not self.create_bucket:
            raise StoreError(
                f"bucket directory {self.base} does not exist; create it or use --create-bucket",
                transient=False,
                code="NoSuchBucket",
            )
        try:
            self.base.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StoreError(
                f"cannot create {self.base}: {exc.strerror}", transient=False, code="AccessDenied"
            ) from None

    def path_of(self, key: str) -> Path:
        """The file for ``key``; refuses keys that would resolve outside the bucket directory."""
        parts = key.split("/")
        if not key or key.startswith("/") or any(p in ("", ".", "..") for p in parts) or "\0" in key:
            raise StoreError(f"refusing object key {key!r}", transient=False, code="InvalidKey")
        path = self.base.joinpath(*parts)
        if not os.path.realpath(path).startswith(os.path.realpath(self.base) + os.sep):
            raise StoreError(f"refusing object key {key!r}", transient=False, code="InvalidKey")
        return path

    def put(self, key: str, payload: Payload, content_type: str = "") -> None:
        path = self.path_of(key)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".part", dir=path.parent)
            try:
                with os.fdopen(fd, "wb") as out, payload.open() as src:
                    shutil.copyfileobj(src, out, 1024 * 1024)
                os.replace(tmp, path)
            except BaseException:
                os.unlink(tmp)
                raise
        except OSError as exc:
            transient = exc.errno not in (13, 30)  # EACCES, EROFS are not worth retrying
            raise StoreError(f"writing {path}: {exc.strerror}", transient=transient) from None

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
