"""The package's shape: stages as folders, imports in one direction, no cycle, small modules.

Every import counts, also the lazy ones inside functions and those under ``TYPE_CHECKING``: a
cycle hidden behind a lazy import is still a cycle for a reader. The one exception is the package
root's lazy export of the library (``entrypoint/__init__.py``), which exists so that
``import entrypoint`` loads none of it.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "entrypoint"

# Lowest first: a module may import from its own stage and from the stages listed before it.
STAGES = [
    {"exitcodes", "units", "redact", "report", "threads", "records"},  # small shared pieces at the package root
    {"formats"},  # stored formats: keys, archives, the manifest
    {"options"},  # the option table and its parsers
    {"settings"},  # options -> validated settings
    {"store"},  # S3 via minio, or a local directory
    {"transfer"},  # the upload queue and the one retry policy
    {"spool"},  # capture into chunks, the spool budget, the log archive
    {"results"},  # result files, their archives, provenance
    {"read"},  # tekton-uploader-read
    {"wrapper"},  # supervisor, run wiring, final flush, outcome
    {"library"},  # the Python API (Writer, Logger, ...)
    {"cli", "__main__", "__init__"},  # entry points
]
RANK = {name: i for i, names in enumerate(STAGES) for name in names}
MAX_LINES = 400
LONGER = {
    "wrapper/supervisor.py": 600,  # kept one coherent file, as tini keeps its loop in one place
    "store/s3.py": 450,  # the put paths (single, streaming, multipart) share their request code
}
ROOT_FILES_MAX = 10


def modules() -> dict[str, Path]:
    found = {}
    for path in PACKAGE.rglob("*.py"):
        parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        found[".".join(parts)] = path
    return found


def imports(name: str, path: Path, known: dict[str, Path]) -> set[str]:
    package = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
    out: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if target.split(".")[0] != "entrypoint":
                continue
            for alias in node.names:
                sub = f"{target}.{alias.name}"
                out.add(sub if sub in known else target)
        elif isinstance(node, ast.Import):
            out.update(a.name for a in node.names if a.name.split(".")[0] == "entrypoint")
    out.discard(name)
    return out


def stage(module: str) -> str:
    parts = module.split(".")
    return "__init__" if len(parts) == 1 else parts[1]


GRAPH = {name: imports(name, path, modules()) for name, path in modules().items()}


def test_every_module_belongs_to_a_stage() -> None:
    assert sorted({stage(m) for m in GRAPH} - set(RANK)) == []


def test_imports_run_one_way() -> None:
    upward = [
        f"{m} imports {t}"
        for m, targets in GRAPH.items()
        if m != "entrypoint"
        for t in targets
        if t != "entrypoint" and RANK[stage(t)] > RANK[stage(m)]  # the root gives __version__ only
    ]
    assert upward == []


def test_no_import_cycle() -> None:
    graph = {m: ts for m, ts in GRAPH.items() if m != "entrypoint"}  # the root's lazy exports
    cycles: list[str] = []
    state: dict[str, int] = {}

    def visit(node: str, path: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(graph.get(node, ())):
            if nxt not in graph:
                continue
            if state.get(nxt) == 1:
                cycles.append(" -> ".join([*path[path.index(nxt) :], nxt]))
            elif nxt not in state:
                visit(nxt, [*path, nxt])
        state[node] = 2

    for name in sorted(graph):
        if name not in state:
            visit(name, [name])
    assert cycles == []


@pytest.mark.parametrize("path", sorted(PACKAGE.rglob("*.py")), ids=lambda p: str(p.relative_to(PACKAGE)))
def test_modules_stay_small(path: Path) -> None:
    rel = path.relative_to(PACKAGE).as_posix()
    lines = len(path.read_text().splitlines())
    assert lines <= LONGER.get(rel, MAX_LINES), f"{rel} has {lines} lines: split it by job"


def test_the_package_root_keeps_only_entry_points_and_small_shared_pieces() -> None:
    files = sorted(p.name for p in PACKAGE.glob("*.py"))
    assert len(files) <= ROOT_FILES_MAX, files


def test_command_is_spawned_in_one_place() -> None:
    sites = [
        str(p.relative_to(PACKAGE))
        for p in PACKAGE.rglob("*.py")
        if "posix_spawn" in p.read_text() or ".spawn()" in p.read_text()
    ]
    assert sorted(sites) == ["wrapper/supervisor.py"]
