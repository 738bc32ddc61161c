"""README, --help and the code stay in step."""

from __future__ import annotations

import re

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
