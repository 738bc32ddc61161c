"""The read side of the S3 store: get, list, stat and streamed reads (the reader, tools, tests)."""

from __future__ import annotations

import builtins
import hashlib
import io
from typing import Any, Callable

from minio import Minio

from .base import ObjectInfo, StoreError
from .s3_errors import classify

_READ = 1024 * 1024


class S3Reads:
    """Reading methods of ``S3Store``; it provides the client, the bucket, the SSE-C key and ``_call``."""

    client: Minio
    bucket: str
    ssec: Any
    _call: Callable[..., Any]

    def get(self, key: str) -> bytes:
        resp = self._call(self.client.get_object, self.bucket, key, ssec=self.ssec)
        try:
            return bytes(resp.read())
        finally:
            resp.close()
            resp.release_conn()

    def read_back(self, key: str, size: int, sha256: str) -> None:
        """GET ``key`` and compare its size and SHA-256 with what was sent (the ETag said nothing):
        a mismatch is ``BadDigest``, resent like any other."""
        digest = hashlib.sha256()
        got = 0
        with self.open_read(key) as stream:
            while data := stream.read(_READ):
                digest.update(data)
                got += len(data)
        if got != size or digest.hexdigest() != sha256:
            raise StoreError(
                f"BadDigest: PUT {key}: read back {got} bytes with SHA-256 {digest.hexdigest()}, "
                f"but {size} bytes with SHA-256 {sha256} were sent; sending again",
                transient=True,
                code="BadDigest",
            )

    def list(self, prefix: str) -> list[str]:
        objects = self._call(
            lambda: list(self.client.list_objects(self.bucket, prefix=prefix, recursive=True))
        )
        return sorted(o.object_name for o in objects)

    def metadata(self, key: str) -> dict[str, str]:
        obj = self._call(self.client.stat_object, self.bucket, key, ssec=self.ssec)
        meta = "x-amz-meta-"
        headers = (obj.metadata or {}).items()
        return {n[len(meta) :].lower(): str(v) for n, v in headers if n.lower().startswith(meta)}

    def open_read(self, key: str, offset: int = 0) -> io.RawIOBase:
        resp = self._call(self.client.get_object, self.bucket, key, offset=offset, ssec=self.ssec)
        return _Body(resp)

    def stat(self, key: str) -> ObjectInfo:
        obj = self._call(self.client.stat_object, self.bucket, key, ssec=self.ssec)
        return ObjectInfo(
            key, int(obj.size or 0), obj.last_modified.timestamp() if obj.last_modified else 0.0
        )

    def list_objects(
        self, prefix: str, recursive: bool = True, start_after: str = ""
    ) -> builtins.list[ObjectInfo]:
        def listing() -> list[ObjectInfo]:
            found = []
            for obj in self.client.list_objects(
                self.bucket, prefix=prefix, recursive=recursive, start_after=start_after or None
            ):
                if obj.is_dir:
                    found.append(ObjectInfo(obj.object_name, is_prefix=True))
                else:
                    mtime = obj.last_modified.timestamp() if obj.last_modified else 0.0
                    found.append(ObjectInfo(obj.object_name, int(obj.size or 0), mtime))
            return found

        objects: builtins.list[ObjectInfo] = self._call(listing)
        return sorted(objects, key=lambda o: o.key)


class _Body(io.RawIOBase):
    """An object's body as it arrives (urllib3 response, not preloaded); errors as StoreError."""

    def __init__(self, resp: Any) -> None:
        self._resp = resp

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
        try:
            data = self._resp.read(len(buffer), decode_content=False)  # the stored bytes, exactly
        except Exception as exc:
            raise classify(exc) from None
        n = len(data)
        buffer[:n] = data
        return n

    def close(self) -> None:
        if not self.closed:
            try:
                self._resp.close()
                self._resp.release_conn()
            except Exception:
                pass  # a broken connection is dropped by the pool
        super().close()
