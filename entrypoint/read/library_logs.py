"""``library-logs``: the logs the library's ``Logger`` stored, listed, or one printed.

A ``Logger`` stores ``<prefix>/_logs/<id>/<chunk>.log`` (``formats/layout.py``); Loggers
before 0.2 stored ``<prefix>/logs/<id>/<chunk>.log``, found here too. A PipelineRun named
``logs`` is told apart by depth: its objects are ``logs/<task>/...`` one level deeper.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import BinaryIO, TextIO

from ..formats.layout import LIBRARY_LOGS, OLD_LIBRARY_LOGS, chunk_seq, name_problem
from ..store import ObjectInfo
from .errors import INTEGRITY, NOT_FOUND, OK, USAGE, ReadError
from .listing import iso
from .locate import Reader, nearby
from .logs import print_chunks


@dataclass
class LibraryLog:
    log_id: str
    prefix: str
    chunks: list[tuple[int, ObjectInfo]] = field(default_factory=list)

    @property
    def size(self) -> int:
        return sum(info.size for _seq, info in self.chunks)

    @property
    def modified(self) -> float:
        return max((info.mtime for _seq, info in self.chunks), default=0.0)


def places(reader: Reader) -> list[str]:
    """Where library logs are, the old place first (the new one wins for the same id)."""
    return [f"{reader.base}{OLD_LIBRARY_LOGS}/", f"{reader.base}{LIBRARY_LOGS}/"]


def collect(reader: Reader, base: str, found: dict[str, LibraryLog], only: str = "") -> None:
    """Add the logs under ``base`` (``<id>/<chunk>.log`` exactly; deeper keys are not ours)."""
    for info in reader.listing(base + (f"{only}/" if only else ""), recursive=True):
        log_id, slash, name = info.key[len(base) :].partition("/")
        seq = chunk_seq(name) if slash and "/" not in name else None
        if seq is None or info.is_prefix:
            continue
        log = found.get(log_id)
        if log is None or log.prefix != f"{base}{log_id}/":
            log = found[log_id] = LibraryLog(log_id, f"{base}{log_id}/")
        log.chunks.append((seq, info))


def library_logs(reader: Reader, only: str = "") -> list[LibraryLog]:
    found: dict[str, LibraryLog] = {}
    for base in places(reader):
        collect(reader, base, found, only)
    for log in found.values():
        log.chunks.sort(key=lambda item: item[0])
    return sorted(found.values(), key=lambda log: log.log_id)


def list_logs(reader: Reader, out: TextIO, as_json: bool) -> None:
    logs = library_logs(reader)
    if as_json:
        rows = [
            {
                "id": log.log_id,
                "prefix": log.prefix,
                "size": log.size,
                "chunks": len(log.chunks),
                "modified": iso(log.modified),
            }
            for log in logs
        ]
        out.write(json.dumps(rows, indent=2) + "\n")
        return
    width = max([len("SIZE"), *(len(str(log.size)) for log in logs)])
    out.write(f"{'SIZE':>{width}}  {'MODIFIED':<20}  ID\n")
    for log in logs:
        out.write(f"{log.size:>{width}}  {iso(log.modified):<20}  {log.log_id}\n")


def print_library_log(reader: Reader, log_id: str, out: BinaryIO) -> int:
    """The log's chunks in order, byte for byte; INTEGRITY after a warning when one is missing."""
    problem = name_problem(log_id)
    if problem:
        raise ReadError(f"library log id {log_id!r} {problem}", USAGE)
    logs = {log.log_id: log for log in library_logs(reader, only=log_id)}
    log = logs.get(log_id)
    if log is None:
        known = [other.log_id for other in library_logs(reader)]
        raise ReadError(
            f"no library log {log_id!r} under {places(reader)[1]}; {nearby(log_id, known, 'library logs')}",
            NOT_FOUND,
        )
    complete, _size = print_chunks(reader, f"library log {log_id}", log.chunks, out)
    out.flush()
    return OK if complete else INTEGRITY
