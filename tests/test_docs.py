"""README, --help and the code stay in step."""

from __future__ import annotations

import re
from pathlib import Path

from click.testing import CliRunner
from conftest import REPO

from entrypoint import cli, exitcodes


def help_options() -> set[str]:
    text = CliRunner().invoke(cli.click_command(), ["--help"], terminal_width=200).output
    return set(re.findall(r"(?<![\w-])(--[a-z][a-z-]+)", text)) - {"--help", "--version"}


def test_every_option_is_in_the_readme_table() -> None:
    readme = (REPO / "README.md").read_text()
    table = "\n".join(line for line in readme.splitlines() if line.startswith("| `-"))
    missing = sorted(opt for opt in help_options() if not re.search(rf"(?<![\w-]){opt}(?![\w-])", table))
    assert not missing, f"options missing from README's option table: {missing}"


def test_every_exit_code_is_documented() -> None:
    readme = (REPO / "README.md").read_text()
    help_text = CliRunner().invoke(cli.click_command(), ["--help"], terminal_width=200).output
    for name in ("USAGE", "UPLOAD_FAILED", "TIMEOUT", "INTERNAL", "NOT_EXECUTABLE", "NOT_FOUND"):
        code = getattr(exitcodes, name)
        assert f"| {code} |" in readme, name
        assert f"  {code} " in help_text, name


def test_license_is_the_apache_2_text() -> None:
    text = (REPO / "LICENSE").read_text()
    assert text.split()[:4] == ["Apache", "License", "Version", "2.0,"]
    assert "TERMS AND CONDITIONS FOR USE, REPRODUCTION, AND DISTRIBUTION" in text
    assert 'license = "Apache-2.0"' in (REPO / "pyproject.toml").read_text()


def _committed_files() -> list[Path]:
    import subprocess

    listed = subprocess.run(["git", "ls-files", "-z"], cwd=REPO, capture_output=True, check=True).stdout
    return [REPO / name for name in listed.decode().split("\0") if name and (REPO / name).is_file()]


def test_no_file_names_a_path_of_the_development_machine() -> None:
    tmp = "/" + "tmp/"  # spelt apart so that this file does not match itself
    machine = re.compile("(?<![\\w.-])/" + f"work/|{tmp}tmp[a-z0-9_]{{6}}|{tmp}pytest-of-")
    found = []
    for path in _committed_files():
        try:
            text = path.read_text()
        except UnicodeDecodeError:
            continue
        found += [f"{path.relative_to(REPO)}:{n}" for n, line in enumerate(text.splitlines(), 1) if machine.search(line)]
    assert not found, found


def test_the_source_label_names_the_public_project() -> None:
    import subprocess

    import tomllib

    url = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["urls"]["Source"]
    assert url.startswith("https://")
    assert f'ARG SOURCE="{url}"' in (REPO / "Containerfile").read_text()
    build = (REPO / "image" / "build").read_text()
    assert "remote get-url" not in build and "[project.urls]" in build
    assert f'PROJECT_URL = "{url}"' in (REPO / "image" / "smoke.py").read_text()
    help_text = subprocess.run(
        ["bash", str(REPO / "image" / "build"), "--help"], capture_output=True, text=True, check=True
    ).stdout
    assert "Usage: image/build" in help_text and "/" + "work/" not in help_text
