"""The S3 store, through the MinIO client (imported here only: it costs ~0.25 s to import).

The client has an HTTP pool with connect/read timeouts and no retries of its own: the uploader's
retry loop calls this store once per request (a PUT, or one part of a multipart upload).

Sizes: up to ``PART_SIZE`` (8 MiB) an object is one PUT from memory; up to ``STREAM_PUT_MAX``
(1 GiB) one *streaming* PUT (a first pass computes its MD5 and SHA-256, then the body streams from a
fresh reader in 1 MiB reads; a retry re-reads the payload); larger ones multipart uploads of 8 MiB
parts (a late failure resends one part). Single and streaming PUTs go through ``_request`` (MinIO's
URL builder, headers and SigV4 signer) with the digests of ``Payload.hashed``, computed once
(MinIO's ``_put_object`` would hash every body again); ``preload`` does that pass ahead of ``put``,
so the ordered lane prepares the next chunk while one is sent. One request per object keeps a
step's request count at R + chunks + a few.

Payload signing: requests are signed with the SHA-256 the manifest needs anyway (also over https,
where MinIO's client sends ``UNSIGNED-PAYLOAD``), which costs no extra pass and lets S3 and MinIO
check the body.

Integrity: every request with data sends ``Content-MD5`` (S3, MinIO and Ceph reject a mismatch
with ``BadDigest``) and single/streaming PUTs sign the payload's SHA-256. As some servers verify
neither (moto does not), the ETag returned is compared with the MD5 sent (per part, and the
multipart ETag) and a mismatch resent. A differing ETag proves nothing under SSE (configured, said
by the server, or the bucket's KMS default), nor does a missing one: decided per object, never from
a count of mismatches. Such an object is read back when cheap (a PUT from memory, up to
``PART_SIZE``: one GET, its SHA-256 compared); a larger one is ``Stored(verified=False)``, as the
manifest records. SSE headers go on every request that needs them (SSE-C: on every part too).
"""

from __future__ import annotations

import base64
import hashlib
import io
import os
import threading
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any, Optional
from urllib.parse import urlunsplit

import urllib3
from minio import Minio
from minio.datatypes import Part
from minio.error import InvalidResponseError, S3Error
from minio.signer import sign_v4_s3
from urllib3._collections import HTTPHeaderDict

from ..settings.store import StoreConfig
from . import s3_credentials, s3_security
from .base import Retry, Stored, StoreError, once
from .payload import Digests, Payload
from .s3_errors import classify, reword, with_sse_cause
from .s3_read import S3Reads

if TYPE_CHECKING:
    from .base import Metadata as Meta

PART_SIZE = 8 * 1024 * 1024  # one part in memory per upload in flight
STREAM_PUT_MAX = 1024 * 1024 * 1024  # larger: multipart (a retry resends one part, not the object)
STREAM_READ = 1024 * 1024  # bytes per read while hashing or sending a streaming PUT
MAX_PARTS = 10_000
DEFAULT_CONNECT_TIMEOUT = 5.0
DEFAULT_READ_TIMEOUT = 30.0
Head = dict[str, str]  # Content-Type and user metadata (x-amz-meta-*): the headers an object keeps


def http_pool(
    connect_timeout: float = DEFAULT_CONNECT_TIMEOUT, read_timeout: float = DEFAULT_READ_TIMEOUT
) -> urllib3.PoolManager:
    """Explicit timeouts (a hung connection must not hang the wrapper); retries are ours."""
    ca_file = os.environ.get("SSL_CERT_FILE") or os.environ.get("AWS_CA_BUNDLE")
    if not ca_file:
        import certifi

        ca_file = certifi.where()
    return urllib3.PoolManager(
        timeout=urllib3.Timeout(connect=connect_timeout, read=read_timeout),
        maxsize=16,
        cert_reqs="CERT_REQUIRED",
        ca_certs=ca_file,
        retries=False,
    )


def _md5_b64(digest: bytes) -> str:
    return base64.b64encode(digest).decode()


class S3Store(S3Reads):
    def __init__(
        self,
        cfg: StoreConfig,
        http_client: urllib3.PoolManager | None = None,
        warn: Optional[Callable[[str], None]] = None,
    ) -> None:
        assert cfg.endpoint is not None
        self.cfg = cfg
        self.bucket = cfg.bucket
        self._warn = warn or (lambda _text: None)
        self._bucket_lock = threading.Lock()
        self._bucket_created = False
        self._bucket_seen = False  # shown to exist: by the preflight's list, or by a HEAD before a PUT
        creds = cfg.credentials
        region = cfg.region
        if region is None and not cfg.endpoint.host.endswith("amazonaws.com"):
            region = "us-east-1"  # MinIO, Ceph, moto: saves a GetBucketLocation per run
        pool = http_client or http_pool(cfg.connect_timeout, cfg.read_timeout)
        provider = None
        try:
            if cfg.tls is not None and cfg.endpoint.secure:
                s3_security.configure_pool(pool, cfg.tls)
            provider = s3_credentials.build_provider(cfg.auth, cfg.tls)
        except ValueError as exc:
            raise StoreError(str(exc), transient=False, code="TLS") from None
        self._provider = provider
        self.sse = s3_security.to_minio(cfg.sse)
        self.ssec = s3_security.ssec(cfg.sse)
        # With server-side encryption ETags are not (or not always) MD5 digests of the bytes: rely
        # on the server's own Content-MD5 check alone.
        self.trust_server_checksums = self.sse is not None
        self._default_kms: Optional[bool] = None  # the bucket's default encryption is KMS
        self._sse_headers: dict[str, str] = dict(self.sse.headers()) if self.sse is not None else {}
        self._ssec_headers: dict[str, str] = dict(self.ssec.headers()) if self.ssec is not None else {}
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
            names = s3_credentials.credential_names(self._provider, self.cfg.auth)  # the source used
            error = reword(classify(exc), names, self.cfg.create_bucket)
            raise with_sse_cause(error, exc, self.cfg.sse) from None

    # -- the bucket ----------------------------------------------------------------------------
    def check(self, prefix: str) -> None:
        """List one page under ``prefix``: proves the endpoint, the credentials and the bucket."""
        try:
            self._call(lambda: next(iter(self.client.list_objects(self.bucket, prefix=prefix)), None))
        except StoreError as exc:
            if exc.code != "NoSuchBucket":
                raise
            self._create_bucket()
        self._bucket_seen = True

    def _bucket_must_exist(self) -> None:
        """With --no-create-bucket and no preflight: one HEAD before the first PUT. SeaweedFS
        creates a missing bucket on PUT by itself (``-s3.autoCreateBucket``, on by default for admin
        identities), so a PUT alone would not honour --no-create-bucket there."""
        with self._bucket_lock:
            if self._bucket_seen:
                return
            if not self._call(self.client.bucket_exists, self.bucket):
                self._create_bucket()  # refuses: create_bucket is off
            self._bucket_seen = True

    def prepare(self) -> None:
        """HEAD the bucket; create it when missing and allowed."""
        if not self._call(self.client.bucket_exists, self.bucket):
            self._create_bucket()

    def _create_bucket(self) -> None:
        if not self.cfg.create_bucket:
            raise StoreError(
                f"NoSuchBucket: bucket {self.bucket!r} does not exist; create it or pass --create-bucket",
                transient=False,
                code="NoSuchBucket",
                whole_store=True,
            )
        with self._bucket_lock:
            if self._bucket_created:
                return
            try:
                self._call(self.client.make_bucket, self.bucket)
            except StoreError as exc:
                if exc.code not in ("BucketAlreadyOwnedByYou", "BucketAlreadyExists"):
                    raise
            self._bucket_created = True

    def _bucket_call(self, fn: Callable[[], Any]) -> Any:
        """One request; a missing bucket is created (when allowed) and the request repeated."""
        try:
            return self._call(fn)
        except StoreError as exc:
            if exc.code != "NoSuchBucket" or not self.cfg.create_bucket:
                raise
        self._create_bucket()
        return self._call(fn)

    # -- uploads -------------------------------------------------------------------------------
    def put(
        self, key: str, payload: Payload, content_type: str = "", retry: Retry = once, metadata: Meta = None
    ) -> Stored:
        if not self.cfg.create_bucket and not self._bucket_seen:
            retry(self._bucket_must_exist, f"check bucket {self.bucket}")
        meta = {f"x-amz-meta-{name}": value for name, value in (metadata or {}).items()}
        head = {"Content-Type": content_type or "application/octet-stream", **meta}
        part_size = max(PART_SIZE, -(-payload.size // MAX_PARTS))
        if payload.size <= part_size:
            return self._put_single(key, payload, head, retry)
        if payload.size <= STREAM_PUT_MAX:
            return self._put_streaming(key, payload, head, retry)
        return self._put_multipart(key, payload, head, part_size, retry)

    def _checked_etag(self, got: Optional[str], expected: str, what: str, opaque: bool = False) -> bool:
        """Whether the ETag proved the bytes (it is their MD5); a mismatch is resent (``BadDigest``),
        decided per object from what is known, never from a count of failures: it proves nothing
        (False) under configured SSE, for an object the server says it encrypted with KMS or a
        customer key (``opaque``), when the bucket's default encryption is KMS (asked once, at the
        first mismatch), or when the server sent no ETag."""
        got = (got or "").strip('"').lower()
        if got and got == expected:
            return True  # whatever the encryption: the server computed the MD5 of what it holds
        if not got or self.trust_server_checksums or opaque or self._bucket_kms():
            return False
        raise StoreError(
            f"BadDigest: {what}: server ETag {got}, but the bytes sent have MD5 {expected}; sending again",
            transient=True,
            code="BadDigest",
        )

    def _bucket_kms(self) -> bool:
        if self._default_kms is None:
            try:
                config = self.client.get_bucket_encryption(self.bucket)
                rule = config.rule if config is not None else None
                algorithm = rule.sse_algorithm if rule is not None else ""
                self._default_kms = str(algorithm or "").startswith("aws:kms")
            except Exception:  # unknown: keep checking (a corrupt copy is never accepted)
                self._default_kms = False
        return self._default_kms

    def preload(self, payload: Payload) -> Payload:
        """Read ``payload`` once ahead of ``put``: its digests, and its bytes when it goes up as
        one PUT from memory (the ordered lane prepares the next chunk while one is sent)."""
        if payload.digests is not None or payload.size > STREAM_PUT_MAX:
            return payload  # hashed already; or multipart: each part is hashed as it is read
        return payload.hashed(keep=payload.size <= max(PART_SIZE, -(-payload.size // MAX_PARTS)))

    def _put_single(self, key: str, payload: Payload, content_type: Head, retry: Retry) -> Stored:
        if payload.digests is None or len(payload.parts) != 1 or not isinstance(payload.parts[0], bytes):
            payload = payload.hashed(keep=True)  # not preloaded: one read, both digests
        data, digests = payload.parts[0], payload.digests
        assert isinstance(data, bytes) and digests is not None
        if len(data) != payload.size:
            raise StoreError(
                f"{key}: the source shrank while being read", transient=False, code="SourceChanged"
            )
        return self._put_one(key, data, len(data), digests, content_type, retry)

    def _put_streaming(self, key: str, payload: Payload, content_type: Head, retry: Retry) -> Stored:
        """One PUT whose body streams from the payload: two reads of it (the first computes the
        digests, unless ``preload`` did), never all of it in memory."""
        digests = payload.digests or payload.hashed(keep=False).digests
        assert digests is not None
        if digests.size != payload.size:
            raise StoreError(
                f"{key}: the source changed size while being read", transient=False, code="SourceChanged"
            )
        return self._put_one(key, payload, payload.size, digests, content_type, retry)

    def _put_one(
        self, key: str, body: bytes | Payload, size: int, digests: Digests, content_type: Head, retry: Retry
    ) -> Stored:
        """One PUT of ``body`` (retried whole), signed with its SHA-256, Content-MD5 and ETag checked."""
        headers = {
            **content_type,
            "Content-MD5": _md5_b64(digests.md5),
            **self._sse_headers,
        }
        sha256 = digests.sha256.hex()

        def request() -> bool:
            etag, opaque = self._bucket_call(lambda: self._request(key, body, size, dict(headers), sha256))
            if self._checked_etag(etag, digests.md5.hex(), f"PUT {key}", opaque):
                return True
            if not isinstance(body, bytes):
                return False  # a streaming PUT: reading it back would cost as much again
            self.read_back(key, size, sha256)
            return True

        verified: bool = retry(request, f"PUT {key}")
        return Stored(key, size, sha256, verified)

    def _request(
        self, key: str, body: bytes | Payload, size: int, extra: dict[str, str], sha256: str
    ) -> tuple[str, bool]:
        """Send one PUT of ``body`` (bytes, or a payload streamed from a fresh reader) as MinIO's
        ``_url_open`` would; its ETag, and whether the server says it is not an MD5 digest (KMS or
        customer-key encryption).

        Signed by MinIO's signer over MinIO's URL and headers, with the payload's SHA-256 the
        caller computed once (MinIO's own request path would hash the body again for every
        request over http; the digest is needed for the manifest anyway, so it is also signed,
        over https too, and S3 and MinIO check it). Errors are raised as MinIO raises them (an
        ``S3Error`` from the XML error body), so ``classify`` treats them like any other.
        """
        client: Any = self.client  # its internals: the URL builder, credentials, pool, user agent
        region = client._get_region(self.bucket)
        creds = client._provider.retrieve() if client._provider else None
        url = client._base_url.build(method="PUT", region=region, bucket_name=self.bucket, object_name=key)
        headers: dict[str, Any]
        headers, date = client._build_headers(url.netloc, extra, None, creds)
        headers["Content-Length"] = str(size)
        if creds:
            headers["x-amz-content-sha256"] = sha256
            headers = sign_v4_s3(
                method="PUT",
                url=url,
                region=region,
                headers=headers,
                credentials=creds,
                content_sha256=sha256,
                date=date,
            )
        http_headers = HTTPHeaderDict({name: str(value) for name, value in headers.items()})
        if isinstance(body, bytes):
            response = client._http.urlopen(
                "PUT", urlunsplit(url), body=body, headers=http_headers, preload_content=True, retries=False
            )
        else:
            with body.open() as reader:
                response = client._http.urlopen(
                    "PUT",
                    urlunsplit(url),
                    body=_chunks(reader, size, key),
                    headers=http_headers,
                    preload_content=True,
                    retries=False,  # a streamed body cannot be replayed by the pool: retries are ours
                )
        if response.status in (200, 204, 206):
            sse = str(response.headers.get("x-amz-server-side-encryption", ""))
            opaque = sse.startswith("aws:kms") or bool(
                response.headers.get("x-amz-server-side-encryption-customer-algorithm")
            )
            return str(response.headers.get("etag", "")).replace('"', ""), opaque
        content_type = response.headers.get("content-type", "")
        if "application/xml" not in content_type.split(";") or not response.data:
            text = response.data.decode(errors="replace") if response.data else None
            raise InvalidResponseError(response.status, content_type, text)
        error = S3Error.fromxml(response)
        if error.code == "NoSuchBucket":
            client._region_map.pop(self.bucket, None)
        raise error

    def _put_multipart(
        self, key: str, payload: Payload, content_type: Head, part_size: int, retry: Retry
    ) -> Stored:
        upload_id: str = retry(
            lambda: self._bucket_call(
                lambda: self.client._create_multipart_upload(
                    self.bucket, key, {**content_type, **self._sse_headers}
                )
            ),
            f"start upload of {key}",
        )
        try:
            return self._send_parts(key, payload, part_size, upload_id, retry)
        except BaseException:
            try:  # best effort, no retry: a lifecycle rule cleans up what this misses
                self.client._abort_multipart_upload(self.bucket, key, upload_id)
            except Exception:
                pass
            raise

    def _send_parts(self, key: str, payload: Payload, part_size: int, upload_id: str, retry: Retry) -> Stored:
        total = -(-payload.size // part_size)
        whole = hashlib.sha256()
        digests: list[bytes] = []
        parts: list[Part] = []
        size = 0
        with payload.open() as reader:
            while data := reader.read(part_size):
                number = len(parts) + 1
                whole.update(data)
                size += len(data)
                md5 = hashlib.md5(data).digest()
                etag = retry(
                    self._part_request(key, upload_id, number, data, md5), f"PUT {key} part {number}/{total}"
                )
                parts.append(Part(number, etag))
                digests.append(md5)
                del data  # one part in memory at a time
        if size != payload.size:
            raise StoreError(
                f"{key}: the source changed size while being read", transient=False, code="SourceChanged"
            )
        expected = f"{hashlib.md5(b''.join(digests)).hexdigest()}-{len(parts)}"
        tries = [0]

        def complete() -> bool:
            tries[0] += 1
            try:
                result = self._call(
                    self.client._complete_multipart_upload, self.bucket, key, upload_id, parts
                )
                etag = result.etag
            except StoreError as exc:
                if exc.code != "NoSuchUpload" or tries[0] == 1:
                    raise
                # An earlier attempt completed it but its answer was lost: is it our object?
                etag = self._call(self.client.stat_object, self.bucket, key, ssec=self.ssec).etag
                if (etag or "").strip('"') != expected and not self.trust_server_checksums:
                    raise
            return self._checked_etag(etag, expected, f"complete {key}")

        verified: bool = retry(complete, f"complete upload of {key}")
        return Stored(key, size, whole.hexdigest(), verified)

    def _part_request(
        self, key: str, upload_id: str, number: int, data: bytes, md5: bytes
    ) -> Callable[[], str]:
        headers = {"Content-MD5": _md5_b64(md5), **self._ssec_headers}  # SSE-C: the key on every part

        def request() -> str:
            etag = str(
                self._call(self.client._upload_part, self.bucket, key, data, dict(headers), upload_id, number)
            )
            self._checked_etag(etag, md5.hex(), f"PUT {key} part {number}")
            return etag

        return request


def _chunks(reader: io.RawIOBase, size: int, key: str) -> Iterator[bytes]:
    """Exactly ``size`` bytes of ``reader`` in ``STREAM_READ`` pieces (a request body)."""
    left = size
    while left:
        data = reader.read(min(STREAM_READ, left))
        if not data:
            raise StoreError(
                f"{key}: the source shrank while being sent", transient=False, code="SourceChanged"
            )
        left -= len(data)
        yield data
