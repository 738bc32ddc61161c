"""The S3 store, through the MinIO client (imported here only: it costs ~0.25 s to import).

The client gets an HTTP pool with explicit timeouts and a small connection-level retry budget;
the uploader owns the real retry loop, over payloads it can send again.
"""

from __future__ import annotations

import builtins
import io
import os
import ssl
from typing import Any

import urllib3
from minio import Minio
from minio.error import InvalidResponseError, S3Error, ServerError

from .. import credentials, sse, tls
from ..config import StoreConfig
from ..payload import Payload
from .base import ObjectInfo, StoreError

PART_SIZE = 8 * 1024 * 1024  # memory per part in flight
# One part at a time per upload: the uploader already runs several uploads at once, and parallel
# parts raised peak RSS from 99 to 143 MiB for 4 results of 100 MiB without speeding them up
# (tests/benchmarks).
PARALLEL_PARTS = 1

# Not worth retrying: each comes with the fix to suggest.
PERMANENT = {
    "AccessDenied": "check that the credentials may write to the bucket",
    "AllAccessDisabled": "check the bucket's access settings",
    "InvalidAccessKeyId": "check --access-key / OBJECTSTORE_ACCESS_KEY",
    "SignatureDoesNotMatch": "check --secret-key / OBJECTSTORE_SECRET_KEY",
    "InvalidToken": "check --session-token / OBJECTSTORE_SESSION_TOKEN",
    "ExpiredToken": "refresh the session token",
    "NoSuchBucket": "create the bucket or pass --create-bucket",
    "InvalidBucketName": "fix --bucket",
    "AuthorizationHeaderMalformed": "check --region",
    "InvalidRegion": "check --region",
    "AccountProblem": "check the account",
    "InvalidObjectName": "the object key is not accepted by the server",
    "KeyTooLongError": "the object key is too long for the server",
    "EntityTooLarge": "the object is larger than the server accepts",
}
TRANSIENT = {
    "SlowDown",
    "RequestTimeout",
    "InternalError",
    "ServiceUnavailable",
    "Throttling",
    "RequestTimeTooSkewed",
    "OperationAborted",
    "TooManyRequests",
}


def classify(exc: BaseException) -> StoreError:
    """Turn whatever the client raised into a StoreError that says whether to retry."""
    if isinstance(exc, StoreError):
        return exc
    if isinstance(exc, S3Error):
        code = exc.code or ""
        status = exc.response.status if exc.response is not None else 0
        if code in PERMANENT:
            return StoreError(f"{code}: {PERMANENT[code]}", transient=False, code=code)
        transient = code in TRANSIENT or status >= 500 or status in (408, 429)
        return StoreError(f"{code or status}: {exc.message or 'S3 error'}", transient=transient, code=code)
    if isinstance(exc, ServerError):
        return StoreError(f"server error {exc.status_code}", transient=True, code=str(exc.status_code))
    if isinstance(exc, InvalidResponseError):
        text = str(exc)
        transient = any(f" {s}" in text or f"code {s}" in text for s in ("5", "429", "408"))
        return StoreError(f"invalid response: {text.splitlines()[0][:200]}", transient=transient)
    if isinstance(exc, (urllib3.exceptions.HTTPError, OSError, ssl.SSLError)):
        reason = getattr(exc, "reason", None) or exc
        text = str(reason).splitlines()[0][:200] if str(reason) else type(reason).__name__
        if isinstance(reason, ssl.SSLCertVerificationError) or "CERTIFICATE_VERIFY_FAILED" in text:
            return StoreError(
                f"TLS verification failed: {text}; trust the server's CA with --ca-bundle",
                transient=False,
                code="TLS",
            )
        return StoreError(f"connection problem: {text}", transient=True, code="Network")
    return StoreError(f"{type(exc).__name__}: {exc}", transient=False, code="Unexpected")


def http_pool(connect_timeout: float = 10.0, read_timeout: float = 60.0) -> urllib3.PoolManager:
    ca_file = os.environ.get("SSL_CERT_FILE") or os.environ.get("AWS_CA_BUNDLE")
    if not ca_file:
        import certifi

        ca_file = certifi.where()
    return urllib3.PoolManager(
        timeout=urllib3.Timeout(connect=connect_timeout, read=read_timeout),
        maxsize=16,
        cert_reqs="CERT_REQUIRED",
        ca_certs=ca_file,
        retries=urllib3.Retry(
            total=2,
            connect=2,
            read=1,
            status=0,
            redirect=0,
            backoff_factor=0.1,
            allowed_methods=None,
            raise_on_status=False,
        ),
    )


class S3Store:
    def __init__(self, cfg: StoreConfig, http_client: urllib3.PoolManager | None = None) -> None:
        assert cfg.endpoint is not None
        self.cfg = cfg
        self.bucket = cfg.bucket
        creds = cfg.credentials
        region = cfg.region
        if region is None and not cfg.endpoint.host.endswith("amazonaws.com"):
            region = "us-east-1"  # MinIO, Ceph, moto: saves a GetBucketLocation per run
        pool = http_client or http_pool()
        provider = None
        try:
            if cfg.tls is not None and cfg.endpoint.secure:
                tls.configure_pool(pool, cfg.tls)
            provider = credentials.build_provider(cfg.auth, cfg.tls)
        except ValueError as exc:
            raise StoreError(str(exc), transient=False, code="TLS") from None
        self.sse = sse.to_minio(cfg.sse)
        self.ssec = sse.ssec(cfg.sse)
        self.client = Minio(
            cfg.endpoint.host,
            access_key=creds.access_key if creds and provider is None else None,
            secret_key=creds.secret_key if creds and provider is None else None,
            session_token=creds.session_token if creds and provider is None else None,
            secure=cfg.endpoint.secure,
            region=region,
            http_client=pool,
            credentials=provider,
        )
        if cfg.path_style is True:
            self.client.disable_virtual_style_endpoint()  # type: ignore[no-untyped-call]
        elif cfg.path_style is False:
            self.client.enable_virtual_style_endpoint()  # type: ignore[no-untyped-call]

    def describe(self) -> str:
        return f"{self.cfg.endpoint.url if self.cfg.endpoint else ''}/{self.bucket}"

    def _call(self, fn: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except Exception as exc:
            raise classify(exc) from None

    def prepare(self) -> None:
        if self._call(self.client.bucket_exists, self.bucket):
            return
        if not self.cfg.create_bucket:
            raise StoreError(
                f"NoSuchBucket: bucket {self.bucket!r} does not exist; create it or pass --create-bucket",
                transient=False,
                code="NoSuchBucket",
            )
        try:
            self._call(self.client.make_bucket, self.bucket)
        except StoreError as exc:
            if exc.code not in ("BucketAlreadyOwnedByYou", "BucketAlreadyExists"):
                raise

    def put(self, key: str, payload: Payload, content_type: str = "application/octet-stream") -> None:
        part_size = max(PART_SIZE, -(-payload.size // 9000))
        with payload.open() as reader:
            self._call(
                self.client.put_object,
                self.bucket,
                key,
                reader,
                payload.size,
                content_type=content_type or "application/octet-stream",
                part_size=part_size,
                num_parallel_uploads=PARALLEL_PARTS,
                sse=self.sse,
            )

    def get(self, key: str) -> bytes:
        resp = self._call(self.client.get_object, self.bucket, key, ssec=self.ssec)
        try:
            return bytes(resp.read())
        finally:
            resp.close()
            resp.release_conn()

    def list(self, prefix: str) -> list[str]:
        objects = self._call(
            lambda: list(self.client.list_objects(self.bucket, prefix=prefix, recursive=True))
        )
        return sorted(o.object_name for o in objects)

    # -- read side -------------------------------------------------------------------------------
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
