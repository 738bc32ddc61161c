"""What users run: a regular (non-editable) ``pip install .`` of the checkout, and the image.

The benchmark's own venv may hold an editable install; the wrapper it measures never is one. The
regular install is a pip-less venv (as in the image) made by the bench venv's pip with
``--python``, cached under ``~/.cache/tekton-uploader/bench-install/<hash>`` where the hash covers
every file pip would install from (the package, pyproject.toml, README.md, LICENSE) and the Python
version: a changed checkout gets a fresh install, an unchanged one reuses it.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Optional

from .harness import REPO

KEEP = 3  # cached installs kept (the newest ones)
DONE = ".bench-install-complete"
IMAGE_TAG = "localhost/tekton-uploader:bench"


def content_hash(repo: Path = REPO) -> str:
    h = hashlib.sha256(sys.version.encode())
    files = [p for p in sorted((repo / "entrypoint").rglob("*")) if p.is_file() and "__pycache__" not in p.parts]
    files += [repo / n for n in ("pyproject.toml", "README.md", "LICENSE") if (repo / n).exists()]
    for path in files:
        h.update(str(path.relative_to(repo)).encode() + b"\0")
        h.update(path.read_bytes())
        h.update(b"\0")
    return h.hexdigest()[:16]


def cache_root() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "tekton-uploader" / "bench-install"


class Install:
    """A regular install of the checkout: its console script and its interpreter."""

    def __init__(self, venv: Path) -> None:
        self.venv = venv
        self.python = venv / "bin" / "python"
        self.script = venv / "bin" / "tekton-uploader"


def regular_install(log: bool = True) -> Install:
    """Reuse the cached install for this content hash, or make one (about 20 s with pip's cache warm)."""
    root = cache_root()
    root.mkdir(parents=True, exist_ok=True)
    with open(root / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # two benchmarks at once make or prune one at a time
        return _install(root, root / content_hash(), log)


def _install(root: Path, venv: Path, log: bool) -> Install:
    if (venv / DONE).exists():
        os.utime(venv)
        if log:
            print(f"[bench] regular install: reusing {venv.name}", file=sys.stderr, flush=True)
        return Install(venv)
    t0 = time.monotonic()
    # A venv records its own path in its scripts' shebangs, so it is made at its final path; the
    # marker file written last says the install is complete.
    shutil.rmtree(venv, ignore_errors=True)
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    proc = subprocess.run(
        [sys.executable, "-m", "pip", "--python", str(venv / "bin" / "python"), "install", "-q",
         "--disable-pip-version-check", "--no-warn-script-location", str(REPO)],
        capture_output=True,
        text=True,
        check=False,
    )
    if proc.returncode != 0:
        shutil.rmtree(venv, ignore_errors=True)
        raise RuntimeError(f"pip install . failed ({proc.returncode}): {proc.stderr.strip()[-1500:]}")
    (venv / DONE).touch()
    _prune(root, keep=venv)
    if log:
        print(f"[bench] regular install: made {venv.name} in {time.monotonic() - t0:.0f} s",
              file=sys.stderr, flush=True)
    return Install(venv)


def _prune(root: Path, keep: Path) -> None:
    others = sorted((p for p in root.iterdir() if p.is_dir() and p != keep and not p.name.startswith(".")),
                    key=lambda p: p.stat().st_mtime, reverse=True)
    for old in others[KEEP - 1 :]:
        shutil.rmtree(old, ignore_errors=True)


# -- the image -------------------------------------------------------------------------------


def podman_argv() -> list[str]:
    """``podman`` with the global flags this machine kind needs (image/smoke.py's engine())."""
    flags = ["--cgroup-manager=cgroupfs"]
    if shutil.which("runc"):
        flags = ["--runtime", "runc", *flags]
    return ["podman", *flags]


def run_flags() -> list[str]:
    import resource

    def limit(which: int) -> int:
        hard = resource.getrlimit(which)[1]
        return 4096 if hard == resource.RLIM_INFINITY or hard > 4096 else hard

    nofile, nproc = limit(resource.RLIMIT_NOFILE), limit(resource.RLIMIT_NPROC)
    return ["--rm", "--network", "host", "--http-proxy=false", "--ulimit", f"nofile={nofile}:{nofile}",
            "--ulimit", f"nproc={nproc}:{nproc}"]


def image(given: Optional[str]) -> tuple[Optional[str], str]:
    """The image to measure and, when there is none, why (one line)."""
    if shutil.which("podman") is None:
        return None, "podman is not installed (apt-get install podman runc debootstrap)"
    if given:
        return given, ""
    if os.getuid() != 0:
        return None, "building the image needs root (image/ci-prepare), or pass --image IMAGE"
    t0 = time.monotonic()
    print(f"[bench] building {IMAGE_TAG} with image/ci-prepare ...", file=sys.stderr, flush=True)
    proc = subprocess.run([str(REPO / "image" / "ci-prepare")], env={**os.environ, "IMAGE": IMAGE_TAG},
                          capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        tail = " | ".join(proc.stderr.strip().splitlines()[-2:])
        return None, f"image/ci-prepare failed ({proc.returncode}): {tail}"
    print(f"[bench] image built in {time.monotonic() - t0:.0f} s", file=sys.stderr, flush=True)
    return proc.stdout.strip().splitlines()[-1], ""
