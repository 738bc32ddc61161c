"""Server-side encryption of every stored object: ``--sse s3|kms|c``.

- ``s3``: keys managed by the store (``x-amz-server-side-encryption: AES256``);
- ``kms``: a KMS key (``aws:kms``), ``--sse-kms-key-id`` or the store's default KMS key;
- ``c``: a 256-bit key of the customer (``--sse-c-key-file``) sent with every request. S3 refuses
  SSE-C over plain HTTP (the key would travel in clear), and so does the wrapper, before COMMAND
  starts. Objects stored with SSE-C can only be read back with the same key.

Mapped to minio's ``SseS3``, ``SseKMS`` and ``SseCustomerKey`` (imported only when uploading).
"""

from __future__ import annotations

from .. import redact
from ..records import Record, path_text

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Mapping
    from typing import Any, Literal, Optional

    from _typeshed import StrPath

    Mode = Literal["s3", "kms", "c"]


MODES: tuple[Mode, ...] = ("s3", "kms", "c")
KEY_BYTES = 32


class SSEConfig(Record):
    mode: Mode
    kms_key_id: Optional[str] = None
    customer_key: Optional[bytes] = None

    def __repr__(self) -> str:
        return f"SSEConfig(mode={self.mode!r}, kms_key_id={self.kms_key_id!r}, customer_key=***)"

    def describe(self) -> str:
        if self.mode == "s3":
            return "server-side encryption SSE-S3"
        if self.mode == "kms":
            return f"server-side encryption SSE-KMS ({self.kms_key_id or 'the default KMS key'})"
        return "server-side encryption SSE-C (customer key from --sse-c-key-file)"


def resolve(values: Mapping[str, Any], s3: bool, https: bool) -> Optional[SSEConfig]:
    """The SSE settings, or None; ValueError (one line naming the option) when inconsistent."""
    mode = (values.get("sse") or "").strip().lower() or None
    kms_key_id = values.get("sse_kms_key_id") or None
    key_file = values.get("sse_c_key_file") or None
    if mode is None:
        mode = "kms" if kms_key_id else "c" if key_file else None
    if mode is None:
        return None
    if mode not in MODES:
        raise ValueError(f"--sse: {mode!r} is not one of s3, kms, c")
    if kms_key_id and mode != "kms":
        raise ValueError(f"--sse-kms-key-id: only with --sse kms (not --sse {mode})")
    if key_file and mode != "c":
        raise ValueError(f"--sse-c-key-file: only with --sse c (not --sse {mode})")
    if not s3:
        raise ValueError(
            f"--sse {mode}: server-side encryption needs an S3 endpoint; the local directory store "
            "does not encrypt (unset --sse or set --endpoint https://...)"
        )
    if mode == "c":
        if not key_file:
            raise ValueError("--sse c: needs --sse-c-key-file FILE with a 256-bit key")
        if not https:
            raise ValueError(
                "--sse c: SSE-C sends the encryption key with every request and S3 refuses it over "
                "plain http; use an https:// endpoint"
            )
        return SSEConfig("c", customer_key=read_customer_key(path_text(key_file)))
    return SSEConfig(mode, kms_key_id=kms_key_id)


def read_customer_key(path: StrPath) -> bytes:
    """32 raw bytes, or their base64 text (as Kubernetes Secrets often hold them)."""
    import base64
    import binascii

    from .files import read_small_file

    try:
        data = read_small_file(path, "--sse-c-key-file", 4 * KEY_BYTES, truncate=True)
    except FileNotFoundError as exc:
        raise ValueError(f"--sse-c-key-file: cannot read {path}: {exc.strerror}") from None
    key: Optional[bytes] = data if len(data) == KEY_BYTES else None
    if key is None:
        try:
            decoded = base64.b64decode(data.strip(), validate=True)
        except (binascii.Error, ValueError):
            decoded = b""
        key = decoded if len(decoded) == KEY_BYTES else None
    if key is None:
        raise ValueError(
            f"--sse-c-key-file: {path} must hold a 256-bit key: 32 raw bytes or their base64 "
            "(e.g. head -c 32 /dev/urandom | base64)"
        )
    redact.add(base64.b64encode(key).decode())
    redact.add(key.hex())
    return key
