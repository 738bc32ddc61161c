"""Tekton results: each regular file of the results directory becomes ``<result>.tgz``.

Files named ``*-ARTIFACT_OUTPUTS``/``*-ARTIFACT_INPUTS`` (Tekton Chains' type hints, written by
``--chains-outputs``) are left out: they point at stored objects and are no results of their own.

Files are opened with O_NOFOLLOW and checked to be regular *after* opening, so nothing swapped in
between is read. A symlink is followed only to a regular file in the results directory itself.
"""

from __future__ import annotations

import os
import stat

from ..formats import archive
from ..formats.layout import name_problem
from ..report import Reporter
from ..store.payload import Payload

TYPE_CHECKING = False
if TYPE_CHECKING:
    from _typeshed import StrPath

# Tekton Chains' type-hinted results (``--chains-outputs``): Tekton results, never archived as results.
CHAINS_OUTPUTS = "-ARTIFACT_OUTPUTS"
CHAINS_INPUTS = "-ARTIFACT_INPUTS"


def is_chains_hint(name: str) -> bool:
    return name.endswith((CHAINS_OUTPUTS, CHAINS_INPUTS))


class ResultFile:
    """(A plain class, as every record loaded after the spawn: a ``typing.NamedTuple`` costs ~0.1 ms
    to define, and a COMMAND that ends at once waits for it.)"""

    __slots__ = ("name", "path")

    def __init__(self, name: str, path: str) -> None:
        self.name = name  # the result's name: the file name in the results directory
        self.path = path  # what is read (a symlink's target inside the directory, else the file)


class UnreadableResults(OSError):
    """The results directory exists but cannot be read: every result in it is missing."""


def scan(results_dir: StrPath, reporter: Reporter) -> tuple[list[ResultFile], list[str]]:
    """The result files to archive, and the entries skipped (each also warned about). No
    directory: no results. One that cannot be read: ``UnreadableResults`` (a missing result)."""
    found: list[ResultFile] = []
    skipped: list[str] = []
    try:
        entries = sorted(os.scandir(results_dir), key=lambda e: e.name)
    except FileNotFoundError:
        return found, skipped
    except OSError as exc:
        raise UnreadableResults(f"results dir {results_dir} cannot be read: {exc.strerror}") from None
    real_dir = os.path.realpath(results_dir)
    for entry in entries:
        if is_chains_hint(entry.name):
            continue  # pointers to stored objects (maybe an earlier step's), not results to store
        reason = skip_reason(entry, real_dir)
        if reason:
            reporter.warn(f"result {entry.name!r} skipped: {reason}")
            skipped.append(entry.name)
            continue
        target = os.path.realpath(entry.path) if entry.is_symlink() else entry.path  # text: no pathlib
        found.append(ResultFile(entry.name, target))
    return found, skipped


def skip_reason(entry: os.DirEntry[str], real_dir: str) -> str:
    problem = name_problem(entry.name)
    if problem:
        return f"its name {problem}"
    if entry.is_symlink():
        target = os.path.realpath(entry.path)
        if os.path.dirname(target) != real_dir:
            return "symlink to outside the results dir"
        if not os.path.isfile(target) or os.path.islink(target):
            return "symlink to something that is not a regular file"
        return ""
    if not entry.is_file(follow_symlinks=False):
        return "not a regular file"
    return ""


def open_regular(path: StrPath) -> tuple[int, os.stat_result]:
    """Open without following a final symlink and without blocking on a FIFO; must be regular."""
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    st = os.fstat(fd)
    if not stat.S_ISREG(st.st_mode):
        os.close(fd)
        raise OSError(0, f"{os.path.basename(path)}: not a regular file")
    return fd, st


def archive_result(result: ResultFile, out_path: StrPath, mtime: float | None = None) -> Payload:
    """Write ``<result>.tgz`` to ``out_path`` (in the spool); the payload to upload."""
    fd, st = open_regular(result.path)
    try:
        with open(out_path, "wb", buffering=1024 * 1024) as out:
            archive.write_tgz(fd, result.name, st.st_size, st.st_mtime if mtime is None else mtime, out)
    finally:
        os.close(fd)
    return Payload.of(out_path)


def replace_file(path: StrPath, data: bytes) -> None:
    """Write ``data`` to a new file and rename it over ``path`` (a symlink is replaced, not followed)."""
    import tempfile  # seldom needed (offloaded results): not loaded on every run's exit

    parent, name = os.path.split(os.fspath(path))
    fd, tmp = tempfile.mkstemp(prefix=f".{name}.", dir=parent or ".")
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(data)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
