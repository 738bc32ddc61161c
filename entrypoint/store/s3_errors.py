"""How an S3 error is classified: transient (retried) or permanent, per object or for the store.

Each permanent error carries the fix to print (one line, naming the option to check).
"""

from __future__ import annotations

import re
import ssl
from typing import TYPE_CHECKING, Any, Optional

import urllib3
from minio.error import InvalidResponseError, S3Error, ServerError

from .base import StoreError

if TYPE_CHECKING:
    from ..settings.sse import SSEConfig

# Not worth retrying, and every other upload would fail the same way.
STORE_PERMANENT = {
    "AccessDenied": "the credentials may not write to the bucket; check --access-key/--secret-key "
    "and the bucket policy",
    "AllAccessDisabled": "all access to the bucket is disabled; check the bucket's settings",
    "InvalidAccessKeyId": "the server does not know this access key; check --access-key / "
    "OBJECTSTORE_ACCESS_KEY",
    "SignatureDoesNotMatch": "the server rejected the request signature; check --secret-key / "
    "OBJECTSTORE_SECRET_KEY",
    "InvalidToken": "the session token is invalid; check --session-token / OBJECTSTORE_SESSION_TOKEN",
    "ExpiredToken": "the session token has expired; refresh the credentials",
    "TokenRefreshRequired": "the session token has expired; refresh the credentials",
    "NoSuchBucket": "the bucket does not exist; create it or pass --create-bucket",
    "InvalidBucketName": "the server refuses the bucket name; fix --bucket",
    "AuthorizationHeaderMalformed": "the request was signed for the wrong region; check --region",
    "InvalidRegion": "wrong region; check --region",
    "IllegalLocationConstraintException": "wrong region for this bucket; check --region",
    "PermanentRedirect": "the bucket is in another region or endpoint; check --region/--endpoint",
    "AccountProblem": "the account has a problem; check it with the storage provider",
    "RequestTimeTooSkewed": "this machine's clock is too far off; fix the node's time",
    "NotImplemented": "the server does not support a request the wrapper needs; use an S3-compatible store",
    "MethodNotAllowed": "the server does not allow uploads here; check --endpoint/--bucket",
}


# Not worth retrying, but only this object is affected.
OBJECT_PERMANENT = {
    "InvalidObjectName": "the server does not accept the object key",
    "KeyTooLongError": "the object key is too long for the server",
    "EntityTooLarge": "the object is larger than the server accepts",
    "InvalidArgument": "the server rejected a request argument",
}


TRANSIENT = {
    "SlowDown",
    "RequestTimeout",
    "InternalError",
    "ServiceUnavailable",
    "Throttling",
    "ThrottlingException",
    "RequestLimitExceeded",
    "TooManyRequests",
    "OperationAborted",
    "BadDigest",  # the body was damaged on the way: send it again
    "XAmzContentSHA256Mismatch",
    "IncompleteBody",
    "RequestTimeoutException",
    "ServerBusy",
    "XMinioServerNotInitialized",
}


_STATUS = re.compile(r"Response code: (\d+)")


def _by_status(status: int, code: str, text: str) -> StoreError:
    if status >= 500 or status in (408, 429) or status == 0:
        return StoreError(f"{code or status}: {text}", transient=True, code=code or str(status))
    if status in (401, 403):
        code = code or "AccessDenied"
        fix = STORE_PERMANENT.get(code, STORE_PERMANENT["AccessDenied"])
        return StoreError(f"{code}: {fix}", transient=False, code=code, whole_store=True)
    return StoreError(f"{code or status}: {text}", transient=False, code=code or str(status))


def classify(exc: BaseException) -> StoreError:
    """Turn whatever the client raised into a StoreError that says whether to retry."""
    if isinstance(exc, StoreError):
        return exc
    if isinstance(exc, S3Error):
        code = exc.code or ""
        status = exc.response.status if exc.response is not None else 0
        if code in STORE_PERMANENT:
            return StoreError(
                f"{code}: {STORE_PERMANENT[code]}", transient=False, code=code, whole_store=True
            )
        if code in OBJECT_PERMANENT:
            return StoreError(f"{code}: {OBJECT_PERMANENT[code]}", transient=False, code=code)
        if code in TRANSIENT:
            return StoreError(f"{code}: {exc.message or 'retry later'}", transient=True, code=code)
        return _by_status(status, code, exc.message or "S3 error")
    if isinstance(exc, ServerError):
        return _by_status(exc.status_code, "", f"server error {exc.status_code}")
    if isinstance(exc, InvalidResponseError):
        text = str(exc).splitlines()[0][:200]
        match = _STATUS.search(text)
        return _by_status(int(match.group(1)) if match else 0, "", f"invalid response: {text}")
    if isinstance(exc, (urllib3.exceptions.HTTPError, OSError, ssl.SSLError)):
        reason: Any = exc
        while getattr(reason, "reason", None) is not None and reason.reason is not reason:
            reason = reason.reason  # MaxRetryError -> NewConnectionError -> ...
        text = (str(reason).splitlines() or [""])[0][:200] or type(reason).__name__
        if isinstance(reason, ssl.SSLCertVerificationError) or "CERTIFICATE_VERIFY_FAILED" in text:
            return StoreError(
                f"TLS verification failed: {text}; trust the server's CA with --ca-bundle",
                transient=False,
                code="TLS",
                whole_store=True,
            )
        return StoreError(f"connection problem: {text}", transient=True, code="Network")
    if isinstance(exc, ValueError) and "bucket name" in str(exc):
        return StoreError(
            f"InvalidBucketName: {exc}; fix --bucket",
            transient=False,
            code="InvalidBucketName",
            whole_store=True,
        )
    return StoreError(f"{type(exc).__name__}: {exc}", transient=False, code="Unexpected")


# The hints that name a credential take the names of the source actually used
# (``s3_credentials.credential_names``): naming --secret-key when the keys came from AWS_* misleads.
_CREDENTIAL_CODES = {
    "InvalidAccessKeyId": ("the server does not know this access key; check {0}", 0),
    "SignatureDoesNotMatch": ("the server rejected the request signature; check {0}", 1),
    "InvalidToken": ("the session token is invalid; check {0}", 2),
}


def reword(error: StoreError, source: tuple[str, str, str], create_bucket: bool) -> StoreError:
    """``error`` with a hint that fits this run: the credential names it was ``source``d from
    (access key, secret key, session token), and a bucket gone although ``--create-bucket`` is on."""
    text = None
    if error.code in _CREDENTIAL_CODES and source[0]:
        template, which = _CREDENTIAL_CODES[error.code]
        text = f"{error.code}: {template.format(source[which])}"
    elif error.code == "NoSuchBucket" and create_bucket:
        text = (
            "NoSuchBucket: the bucket does not exist any more (--create-bucket is on: it was there or "
            "created when the run started, so it was removed during the run); check who deletes it"
        )
    if text is None:
        return error
    return StoreError(text, transient=error.transient, code=error.code, whole_store=error.whole_store)


def with_sse_cause(error: StoreError, exc: BaseException, sse: Optional[SSEConfig]) -> StoreError:
    """What a refusal means when every object is encrypted (tests/REAL_SERVERS.md).

    MinIO without a KMS answers every encrypted PUT with NotImplemented: say that, not 'use an
    S3-compatible store' (the server is one; encryption is what it lacks). SeaweedFS without an
    SSE-S3 key answers 500 InternalError every time; that may also be a passing fault, so it is
    still retried (until the flush deadline), with the likely cause named.
    """
    if sse is None:
        return error
    if error.code == "NotImplemented":
        said = (getattr(exc, "message", "") or "").splitlines()
        because = f" ({said[0][:200]})" if said and said[0] else ""
        return StoreError(
            f"NotImplemented: the server refuses {sse.describe()}{because}; enable it on the "
            "server (MinIO: configure a KMS) or unset --sse",
            transient=False,
            code="NotImplemented",
            whole_store=True,
        )
    if error.code == "InternalError":
        return StoreError(
            f"{error}; if every upload fails so, the server may not be set up for {sse.describe()} "
            "(SeaweedFS: set s3.sse.key)",
            transient=True,
            code="InternalError",
        )
    return error
