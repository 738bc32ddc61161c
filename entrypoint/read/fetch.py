"""``get``: one result's raw bytes, extracted from ``<result>.tgz`` as it streams."""

from __future__ import annotations

import os
import stat
import tempfile
from pathlib import Path
from typing import BinaryIO

from ..formats.layout import name_problem
from .errors import NOT_FOUND, OUTPUT, USAGE, ReadError
from .locate import Reader, TaskView, nearby
from .manifest import verify
from .streams import extract_member


def result_name(text: str) -> str:
    name = text[:-4] if text.endswith(".tgz") else text
    problem = name_problem(name)
    if problem:
        raise ReadError(f"result {text!r} {problem}", USAGE)
    return name


def get_result(reader: Reader, view: TaskView, result: str, out: BinaryIO) -> tuple[str, str]:
    """Write the result's bytes to ``out``; the object's key and the sha256 of its stored bytes."""
    name = result_name(result)
    info = view.file(f"{name}.tgz")
    if info is None:
        results = view.results()
        where = nearby(name, results, "results") if results else f"{view} has no results"
        raise ReadError(f"no result {name!r} for {view}; {where}", NOT_FOUND)
    progress = reader.progress(name, info.size)
    with reader.open(info, progress) as stream:
        extract_member(stream, out)
        progress.finish()
        verify(info.key, stream.digest, view.manifests().expect(info.key))
    return info.key, stream.digest.hexdigest()


def get_result_to_file(reader: Reader, view: TaskView, result: str, path: Path) -> tuple[str, str]:
    """Write to a temporary file next to ``path`` and rename it once complete and verified.

    The atomic replace is for regular files (or a new name) only: a device, a FIFO or a terminal
    (``/dev/null``, ``/dev/stdout``) is written in place, never replaced by a regular file."""
    try:
        mode = os.stat(path).st_mode
    except OSError:
        mode = 0
    if mode and not stat.S_ISREG(mode):
        if stat.S_ISDIR(mode):
            raise ReadError(f"-o: {path} is a directory; give a file name", OUTPUT)
        try:
            with open(path, "wb") as out:  # a device or pipe: no truncation, no rename
                return get_result(reader, view, result, out)
        except OSError as exc:
            raise ReadError(f"-o: cannot write {path}: {exc.strerror or exc}", OUTPUT) from None
    directory = path.parent if str(path.parent) else Path(".")
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".part", dir=directory)
    except OSError as exc:
        raise ReadError(f"-o: cannot write in {directory}: {exc.strerror}", OUTPUT) from None
    done = False
    try:
        with os.fdopen(fd, "wb") as out:
            stored = get_result(reader, view, result, out)
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
        done = True
    except OSError as exc:
        raise ReadError(f"-o: cannot write {path}: {exc.strerror or exc}", OUTPUT) from None
    finally:
        if not done:
            try:
                os.unlink(tmp)
            except FileNotFoundError:
                pass
    return stored


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask
