"""PEP 561: the package ships ``py.typed``, so a user's ``mypy --strict`` uses its annotations.

The package is installed (copied, as a wheel would put it) into the site-packages of a venv of
its own; mypy checks a user's file against that venv, from outside the repository.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import tomllib
from conftest import REPO

USER_CODE = """\
from entrypoint import Logger, ObjectStoreConfig, ObjectStoreError, Writer


def store(value: str) -> str:
    with Writer(ObjectStoreConfig(default_bucket_name="testing-bucket")) as w:
        key: str = w.write("run", "task", "result", value)
    return key


def log(line: bytes) -> None:
    try:
        with Logger(ObjectStoreConfig.from_env(), max_size=1024) as logger:
            logger.write(line)
    except ObjectStoreError as err:
        print(err.keys, err.transient)
"""


def mypy_strict(tmp_path: Path, marker: bool) -> subprocess.CompletedProcess[str]:
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120)
    site = Path(sysconfig.get_path("purelib", vars={"base": str(venv), "platbase": str(venv)}))
    shutil.copytree(REPO / "entrypoint", site / "entrypoint", ignore=shutil.ignore_patterns("__pycache__"))
    if not marker:
        (site / "entrypoint" / "py.typed").unlink()
    user = tmp_path / "user"
    user.mkdir()
    (user / "app.py").write_text(USER_CODE)
    mypy = Path(sys.executable).parent / "mypy"
    return subprocess.run(
        [str(mypy), "--strict", "--python-executable", str(venv / "bin" / "python"),
         "--cache-dir", str(tmp_path / "cache"), "app.py"],
        cwd=user, capture_output=True, text=True, timeout=300,
    )


def test_mypy_strict_on_a_users_import_is_clean(tmp_path: Path) -> None:
    proc = mypy_strict(tmp_path, marker=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "Success: no issues found in 1 source file" in proc.stdout


def test_without_the_marker_mypy_says_so(tmp_path: Path) -> None:
    """The check above can fail: the same install without py.typed is what users used to get."""
    proc = mypy_strict(tmp_path, marker=False)
    assert proc.returncode == 1
    assert "missing library stubs or py.typed marker" in proc.stdout


def test_the_marker_is_package_data() -> None:
    config = tomllib.loads((REPO / "pyproject.toml").read_text())
    assert "py.typed" in config["tool"]["setuptools"]["package-data"]["entrypoint"]
    assert (REPO / "entrypoint" / "py.typed").is_file()
