"""A store in a local directory: ``<root>/<bucket>/<key>``, same layout as in S3."""

from __future__ import annotations

import builtins
import errno
import functools
import importlib
import io
import os
import sys
import threading
from stat import S_ISREG

from ..records import path_text
from .base import ObjectInfo, Retry, Stored, StoreError, once
from .payload import Payload

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any, Optional

    from _typeshed import StrPath

    from .base import Metadata

_COPY = 1024 * 1024
_PERMANENT_ERRNOS = (errno.EACCES, errno.EPERM, errno.EROFS)
_XATTR = "user."  # user metadata: extended attributes, where the file system keeps them
_OPENSSL_FROM = 1024 * 1024  # bytes: from this size on, OpenSSL's SHA-256 (see _sha256)
_TMP_TRIES = 100  # unique names tried for a temporary file


def _sha256(size: int) -> Any:
    """A SHA-256 hash object for ``size`` bytes. Loading OpenSSL (``hashlib``) costs ~2 ms of a
    short step's exit and the builtin module hashes at a third of its speed: the builtin one
    below ``_OPENSSL_FROM`` bytes, unless ``hashlib`` is loaded already."""
    builtin = _builtin_sha256() if size < _OPENSSL_FROM and "hashlib" not in sys.modules else None
    if builtin is not None:
        return builtin()
    import hashlib

    return hashlib.sha256()


@functools.cache
def _builtin_sha256() -> Optional[Callable[[], Any]]:
    try:
        module = importlib.import_module("_sha2" if sys.version_info >= (3, 12) else "_sha256")
    except ImportError:
        return None  # a Python built without it
    constructor: Callable[[], Any] = module.sha256
    return constructor


def _create_temporary(directory: str, name: str) -> tuple[int, str]:
    """A new file ``.<name>.<random>.part`` in ``directory``, mode 0600, open for writing (what
    ``tempfile.mkstemp`` makes, without loading ``tempfile``)."""
    for _ in range(_TMP_TRIES):
        tmp = os.path.join(directory, f".{name}.{os.urandom(6).hex()}.part")
        try:
            return os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600), tmp
        except FileExistsError:
            continue
    raise FileExistsError(errno.EEXIST, "no unique temporary name found", directory)


class LocalStore:
    def __init__(self, root: StrPath, bucket: str, create_bucket: bool = True) -> None:
        self.root = root
        self.bucket = bucket
        self.create_bucket = create_bucket
        # text and os.path, not pathlib: pathlib costs milliseconds to import on every step's exit
        base = path_text(os.path.join(root, bucket))  # as str(Path(root) / bucket)
        self.base = base if base.startswith("/") else path_text(os.path.join(os.getcwd(), base))
        self._bucket_lock = threading.Lock()

    def describe(self) -> str:
        return f"local directory {self.base}"

    def _ensure_bucket(self) -> None:
        if os.path.isdir(self.base):
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
                os.makedirs(self.base, exist_ok=True)
            except OSError as exc:
                raise StoreError(
                    f"AccessDenied: cannot create {self.base}: {exc.strerror}",
                    transient=exc.errno not in _PERMANENT_ERRNOS,
                    code="AccessDenied",
                    whole_store=True,
                ) from None

    def prepare(self) -> None:
        self._ensure_bucket()

    def check(self, prefix: str) -> None:
        self._ensure_bucket()
        if not os.access(self.base, os.W_OK | os.X_OK):
            raise StoreError(
                f"AccessDenied: {self.base} is not writable",
                transient=False,
                code="AccessDenied",
                whole_store=True,
            )

    def path_of(self, key: str) -> str:
        """The file for ``key``; refuses keys that would resolve outside the bucket directory."""
        parts = key.split("/")
        if not key or key.startswith("/") or any(p in ("", ".", "..") for p in parts) or "\0" in key:
            raise StoreError(f"refusing object key {key!r}", transient=False, code="InvalidKey")
        path = os.path.join(self.base, *parts)
        if not os.path.realpath(path).startswith(os.path.realpath(self.base) + os.sep):
            raise StoreError(f"refusing object key {key!r}", transient=False, code="InvalidKey")
        return path

    def put(
        self,
        key: str,
        payload: Payload,
        content_type: str = "",
        retry: Retry = once,
        metadata: Metadata = None,
    ) -> Stored:
        path = self.path_of(key)
        return retry(lambda: self._put(key, path, payload, metadata or {}), f"write {key}")

    def _put(self, key: str, path: str, payload: Payload, metadata: Metadata) -> Stored:
        self._ensure_bucket()
        digest = _sha256(payload.size)
        size = 0
        try:
            parent, name = os.path.split(path)
            os.makedirs(parent, exist_ok=True)
            fd, tmp = _create_temporary(parent, name)
            try:
                with os.fdopen(fd, "wb") as out, payload.open() as src:
                    while data := src.read(_COPY):
                        digest.update(data)
                        out.write(data)
                        size += len(data)
                for name, value in (metadata or {}).items():
                    try:
                        os.setxattr(tmp, _XATTR + name, value.encode())
                    except OSError:
                        break  # not kept by this file system: best effort
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
            with open(self.path_of(key), "rb") as file:
                return file.read()
        except FileNotFoundError:
            raise StoreError(f"no object {key!r}", transient=False, code="NoSuchKey") from None

    def list(self, prefix: str) -> list[str]:
        if not os.path.isdir(self.base):
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

    # -- read side -------------------------------------------------------------------------------
    def _no_bucket(self) -> StoreError:
        return StoreError(
            f"NoSuchBucket: bucket directory {self.base} does not exist", transient=False, code="NoSuchBucket"
        )

    def _read_error(self, key: str, exc: OSError) -> StoreError:
        if isinstance(exc, (FileNotFoundError, NotADirectoryError, IsADirectoryError)):
            if not os.path.isdir(self.base):
                return self._no_bucket()
            return StoreError(f"NoSuchKey: no object {key!r}", transient=False, code="NoSuchKey")
        if isinstance(exc, PermissionError):
            return StoreError(
                f"AccessDenied: reading {key!r}: {exc.strerror}", transient=False, code="AccessDenied"
            )
        return StoreError(f"reading {key!r}: {exc.strerror or exc}", transient=True)

    def open_read(self, key: str, offset: int = 0) -> io.RawIOBase:
        path = self.path_of(key)
        try:
            stream = open(path, "rb", buffering=0)  # noqa: SIM115 - the caller closes it
            if offset:
                stream.seek(offset)
        except OSError as exc:
            raise self._read_error(key, exc) from None
        return _LocalReader(stream, key, self)

    def stat(self, key: str) -> ObjectInfo:
        try:
            st = os.stat(self.path_of(key))
        except OSError as exc:
            raise self._read_error(key, exc) from None
        if not S_ISREG(st.st_mode):
            raise StoreError(f"NoSuchKey: no object {key!r}", transient=False, code="NoSuchKey")
        return ObjectInfo(key, st.st_size, st.st_mtime)

    def metadata(self, key: str) -> dict[str, str]:
        path = self.path_of(key)
        try:
            names = os.listxattr(path)
            return {n[len(_XATTR) :]: os.getxattr(path, n).decode() for n in names if n.startswith(_XATTR)}
        except OSError:
            return {}

    def list_objects(
        self, prefix: str, recursive: bool = True, start_after: str = ""
    ) -> builtins.list[ObjectInfo]:
        if not os.path.isdir(self.base):
            raise self._no_bucket()
        folder, _, _ = prefix.rpartition("/")
        top = os.path.join(self.base, *folder.split("/")) if folder else self.base
        if folder and (any(p in ("", ".", "..") for p in folder.split("/")) or not os.path.isdir(top)):
            return []
        found: builtins.list[ObjectInfo] = []
        if recursive:
            for dirpath, dirs, files in os.walk(top):
                dirs.sort()
                rel = os.path.relpath(dirpath, self.base).replace(os.sep, "/")
                for name in files:
                    key = name if rel == "." else f"{rel}/{name}"
                    self._add(found, key, os.path.join(dirpath, name), prefix, start_after)
        else:
            with os.scandir(top) as entries:
                for entry in entries:
                    key = f"{folder}/{entry.name}" if folder else entry.name
                    if entry.is_dir(follow_symlinks=False):
                        if key.startswith(prefix) and key + "/" > start_after:
                            found.append(ObjectInfo(key + "/", is_prefix=True))
                    else:
                        self._add(found, key, entry.path, prefix, start_after)
        return sorted(found, key=lambda o: o.key)

    @staticmethod
    def _add(found: builtins.list[ObjectInfo], key: str, path: str, prefix: str, start_after: str) -> None:
        name = key.rpartition("/")[2]
        if (
            not key.startswith(prefix)
            or key <= start_after
            or (name.startswith(".") and name.endswith(".part"))
        ):
            return
        try:
            st = os.stat(path)
        except OSError:
            return  # gone meanwhile
        found.append(ObjectInfo(key, st.st_size, st.st_mtime))


class _LocalReader(io.RawIOBase):
    """A file's bytes; OSError while reading becomes StoreError like every store error."""

    def __init__(self, stream: io.FileIO, key: str, store: LocalStore) -> None:
        self._stream = stream
        self._key = key
        self._store = store

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
        try:
            return self._stream.readinto(buffer)
        except OSError as exc:
            raise self._store._read_error(self._key, exc) from None

    def close(self) -> None:
        self._stream.close()
        super().close()
