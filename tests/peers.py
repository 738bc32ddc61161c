"""Real peers built from their Go modules, cached outside the work tree.

Go is a test dependency only. Each peer is pinned to a version and built once into
``$TEKTON_UPLOADER_PEERS`` (default ``~/.cache/tekton-uploader/peers``) by
``python3 tests/peers.py [NAME...]``, which ``scripts/test`` runs (niced, in the background) before
the tests that need them: a later run finds the binary and builds nothing. The tests themselves
never build (``built``): where a peer is missing they skip with one line saying why and what to
run, and under ``CI=true`` they fail instead, because CI must run them.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

CACHE = Path(os.environ.get("TEKTON_UPLOADER_PEERS") or Path.home() / ".cache" / "tekton-uploader" / "peers")
Peer = tuple[str, str, str, str]  # binary name, Go module, pinned version, main package in it
BUILD_TIMEOUT = 3600  # a cold MinIO build on two busy cores took over 30 minutes


def find_go() -> str | None:
    if shutil.which("go"):
        return shutil.which("go")
    return "/usr/local/go/bin/go" if os.access("/usr/local/go/bin/go", os.X_OK) else None


def cached(peer: Peer) -> Path:
    """Where ``peer``'s binary is (or will be) in the cache."""
    name, _module, version, _package = peer
    return CACHE / f"{name}-{version}" / name


def built(peer: Peer) -> Path:
    """For the tests: the peer's binary, built beforehand. A test never builds one: a cold build
    takes far longer than pytest-timeout allows a test, so ``scripts/test`` builds the peers
    first (``python3 tests/peers.py``). Missing, the test skips in one line saying why and what to
    run; under ``CI=true`` it fails instead, because CI must run it."""
    binary = cached(peer)
    if binary.exists():
        return binary
    import pytest  # here, not above: scripts/test runs this file before the test tools are installed

    key = next(k for k, v in PEERS.items() if v == peer)
    if find_go() is None:
        message = f"Go is not installed (needed to build the real peer {key}: https://go.dev/doc/install)"
    else:
        message = f"{key} {peer[2]} is not built yet: run `python3 tests/peers.py {key}` (scripts/test does)"
    if os.environ.get("CI"):
        pytest.fail(message)
    pytest.skip(message)


def go_binary(name: str, module: str, version: str, package: str = "") -> Path:
    """Path of ``name`` built from ``module@version`` (``package`` is the main package inside it).

    ``go install PKG@VERSION`` first; a module whose go.mod has ``replace`` directives refuses that,
    so then it is downloaded with ``go mod download`` and built inside the module cache.
    """
    dest = cached((name, module, version, package))
    if dest.exists():
        return dest
    go = find_go()
    if go is None:
        raise RuntimeError(f"building peer {name}: Go is not installed (https://go.dev/doc/install)")
    dest.parent.mkdir(parents=True, exist_ok=True)
    target = f"{module}/{package}".rstrip("/")
    env = {**os.environ, "CGO_ENABLED": "0", "GOFLAGS": "-trimpath"}
    started = time.monotonic()
    with tempfile.TemporaryDirectory(dir=dest.parent) as tmp:
        built = Path(tmp) / name
        install = subprocess.run(
            [go, "install", f"{target}@{version}"],
            env={**env, "GOBIN": tmp},
            capture_output=True,
            text=True,
            timeout=BUILD_TIMEOUT,
        )
        produced = sorted(Path(tmp).iterdir())
        if install.returncode == 0 and produced:
            produced[0].rename(built)
        else:
            info = _checked(
                [go, "mod", "download", "-json", f"{module}@{version}"], env, None, name, install.stderr
            )
            source = json.loads(info.stdout)["Dir"]
            _checked(
                [go, "build", "-o", str(built), f"./{package}" if package else "."],
                {**env, "GOFLAGS": "-trimpath -mod=mod", "GOWORK": "off"},
                source,
                name,
                install.stderr,
            )
        built.rename(dest)
    (dest.parent / "build-seconds").write_text(f"{time.monotonic() - started:.1f}\n")
    return dest


# -- Tekton's entrypoint (issue 15 part 2) ------------------------------------------------------

TEKTON_PIPELINE = "github.com/tektoncd/pipeline"
TEKTON_PIPELINE_VERSION = "v1.6.0"  # an LTS release; its go.mod has replace directives: built in the cache


def tekton_entrypoint() -> Path:
    """Tekton's step entrypoint binary (``cmd/entrypoint``), PID 1 of every step container."""
    return built(TEKTON)


def _checked(argv: list[str], env: dict[str, str], cwd: str | None, name: str, earlier: str):
    """Run one build step; on failure an error that says which peer and why (the tail of Go's output)."""
    done = subprocess.run(argv, env=env, cwd=cwd, capture_output=True, text=True, timeout=BUILD_TIMEOUT)
    if done.returncode != 0:
        tail = "\n".join((earlier + done.stdout + done.stderr).strip().splitlines()[-15:])
        raise RuntimeError(f"building peer {name} failed: {' '.join(argv)}\n{tail}")
    return done


def build_seconds(binary: Path) -> float | None:
    """How long the cold build of ``binary`` took (recorded next to it), or None if unknown."""
    try:
        return float((binary.parent / "build-seconds").read_text())
    except (OSError, ValueError):
        return None


# -- the pinned peers ------------------------------------------------------------------------------
# The Go module proxy serves neither project's release tags (MinIO's RELEASE.* and SeaweedFS's 3.x/4.x
# are not semantic versions), so both are pinned to the pseudo-version of a commit it serves.

MINIO: Peer = ("minio", "github.com/minio/minio", "v0.0.0-20260212201848-7aac2a2c5b7c", "")
SEAWEEDFS: Peer = ("weed", "github.com/seaweedfs/seaweedfs", "v0.0.0-20261109003541-7506e5f91cd6", "weed")
TEKTON: Peer = ("entrypoint", TEKTON_PIPELINE, TEKTON_PIPELINE_VERSION, "cmd/entrypoint")
PEERS = {"minio": MINIO, "seaweedfs": SEAWEEDFS, "tekton-entrypoint": TEKTON}


def minio() -> Path:
    """The MinIO server (last commit before the repository was archived, Feb 2026)."""
    return built(MINIO)


def weed() -> Path:
    """SeaweedFS's ``weed`` (master, volume, filer and S3 gateway in one program)."""
    return built(SEAWEEDFS)


def main(names: list[str]) -> int:
    """``python tests/peers.py [NAME...]``: build the peers (all by default), each once; print the times."""
    import concurrent.futures

    wanted = names or sorted(PEERS)
    unknown = [n for n in wanted if n not in PEERS]
    if unknown:
        print(f"peers: unknown peer {', '.join(unknown)}; known: {', '.join(sorted(PEERS))}", file=sys.stderr)
        return 2
    if find_go() is None:
        if os.environ.get("CI"):
            print("peers: Go is not installed, and CI must build the real peers", file=sys.stderr)
            return 1
        print("peers: Go is not installed: the tests that need the real peers will skip", file=sys.stderr)
        return 0
    failed = 0
    with concurrent.futures.ThreadPoolExecutor(len(wanted)) as pool:
        builds = {n: pool.submit(go_binary, *PEERS[n]) for n in wanted}
        for name, future in builds.items():
            try:
                binary = future.result()
            except Exception as exc:
                print(f"peers: {exc}", file=sys.stderr)
                failed += 1
                continue
            took = build_seconds(binary)
            built = f" (cold build {took:.0f} s)" if took is not None else ""
            print(f"peers: {name} {PEERS[name][2]}: {binary}{built}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
