"""The start-up parser (argv.py) gives exactly what click gives, or hands the command line to click.

Both read one table (options/wrapper.py OPTIONS), so these tests compare them on every option, in both forms
(flag and environment variable), on random mixes, and on the inputs argv.py must leave to click.
"""

from __future__ import annotations

import os
import random
import subprocess
import sys
from collections.abc import Mapping, Sequence
from typing import Any, Optional

import click
import pytest
from click.core import ParameterSource

from entrypoint.cli import click_command
from entrypoint.options.fastparse import parse_argv
from entrypoint.options.table import Option
from entrypoint.options.wrapper import OPTIONS

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))  # the checkout
ALL_ENV = sorted({variable for option in OPTIONS for variable in option.env})

# A valid raw value per option kind, and alternatives to vary mixes.
SAMPLES: dict[str, Sequence[str]] = {
    "text": ("x", "/tmp/some dir", "a=b", "-starts-with-dash", ""),
    "size": ("8MiB", "1048576", "2 GiB", "1.5MB"),
    "duration": ("5s", "250ms", "2m", "1.5", "1h"),
}


def click_parse(
    args: Sequence[str], env: Mapping[str, str]
) -> Optional[tuple[dict[str, Any], tuple[str, ...], set[str]]]:
    """What click passes to the command for ``args`` and ``env``, or None when click refuses."""
    saved = {name: os.environ.pop(name) for name in ALL_ENV if name in os.environ}
    os.environ.update(env)
    try:
        ctx = click_command().make_context("tekton-uploader", list(args))
    except (click.exceptions.Exit, click.ClickException):
        return None
    finally:
        for name in env:
            os.environ.pop(name, None)
        os.environ.update(saved)
    params = dict(ctx.params)
    command = tuple(params.pop("command"))
    given = {name for name in params if ctx.get_parameter_source(name) == ParameterSource.COMMANDLINE}
    return params, command, given


def fast_parse(
    args: Sequence[str], env: Mapping[str, str]
) -> Optional[tuple[dict[str, Any], tuple[str, ...], set[str]]]:
    parsed = parse_argv(args, env, OPTIONS)
    return None if parsed is None else (parsed.values, parsed.command, parsed.given)


def agree(args: Sequence[str], env: Optional[Mapping[str, str]] = None) -> bool:
    """Both parsers give the same values; True when argv.py parsed it itself."""
    env = dict(env or {})
    fast = fast_parse(args, env)
    if fast is None:
        return False
    assert fast == click_parse(args, env), (args, env)
    return True


def samples(option: Option) -> Sequence[str]:
    if option.kind == "choice":
        return (*option.choices, *(c.upper() for c in option.choices))
    return SAMPLES[str(option.kind)]


# -- every option, as a flag and as a variable -------------------------------------------------


@pytest.mark.parametrize("option", OPTIONS, ids=lambda o: o.name)
def test_each_option_as_flag_and_variable(option: Option) -> None:
    parsed = 0
    if option.kind in ("flag", "bool"):
        for flag in option.flags + option.off_flags:
            parsed += agree([flag, "--", "true"])
        for variable in option.env:
            for text in ("1", "0", "true", "False", "yes", "off", " on "):
                parsed += agree(["--", "true"], {variable: text})
    else:
        for value in samples(option):
            for flag in option.flags:
                parsed += agree([flag, value, "true"])
                parsed += agree([f"{flag}={value}", "--", "true", "x"]) if flag.startswith("--") else 0
            for variable in option.env:
                if not option.multiple:
                    parsed += agree(["true"], {variable: value})
    assert parsed > 0  # argv.py handled this option itself at least once


def test_defaults_only() -> None:
    assert agree(["true"])
    assert agree(["--", "sh", "-c", "echo hi"])


def test_flags_win_over_variables_and_first_variable_wins() -> None:
    assert agree(["--bucket", "flag", "true"], {"OBJECTSTORE_BUCKET": "env", "ARTIFACT_BUCKET": "other"})
    assert agree(["true"], {"OBJECTSTORE_BUCKET": "", "ARTIFACT_BUCKET": "second"})
    assert agree(["true"], {"OBJECTSTORE_BUCKET": "first", "ARTIFACT_BUCKET": "second"})
    assert agree(["--no-create-bucket", "true"], {"OBJECTSTORE_CREATE_BUCKET": "1"})
    assert agree(["--quiet", "true"], {"OBJECTSTORE_QUIET": "0"})


def test_command_boundaries() -> None:
    assert agree(["--quiet", "sh", "--bucket", "x"])  # options end at COMMAND
    assert agree(["--bucket", "--", "cmd"])  # "--" as an option's value, as click takes it
    assert agree(["--", "--", "cmd"])
    assert agree(["-q", "--", "-q"])
    assert agree(["--step", "s", "--step", "t", "true"])  # the last one wins
    assert agree(["--fetch-result", "a/b=/x", "--fetch-result", "c/d=/y", "true"])


def test_random_mixes_agree() -> None:
    rng = random.Random(8)
    parsed = 0
    for _ in range(300):
        args: list[str] = []
        env: dict[str, str] = {}
        for option in rng.sample(OPTIONS, rng.randint(0, 12)):
            as_flag = rng.random() < 0.6 or not option.env
            if option.kind in ("flag", "bool"):
                if as_flag:
                    args.append(rng.choice(option.flags + option.off_flags))
                else:
                    env[rng.choice(option.env)] = rng.choice(("1", "0", "yes", "no"))
            elif as_flag:
                args += [rng.choice(option.flags), rng.choice(samples(option))]
            elif not option.multiple:
                env[rng.choice(option.env)] = rng.choice(samples(option))
        args += rng.choice([["--", "sh", "-c", "x"], ["true"], ["--", "-x"]])
        parsed += agree(args, env)
    assert parsed > 250


# -- what argv.py leaves to click --------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "env"),
    [
        (["--help"], {}),
        (["-h"], {}),
        (["--version"], {}),
        (["--help", "--", "true"], {}),
        ([], {}),  # no COMMAND
        (["--quiet"], {}),
        (
            [
                "--",
            ],
            {},
        ),
        (["--no-such-option", "true"], {}),
        (["-qx", "true"], {}),  # combined short flags
        (["--quiet=1", "true"], {}),
        (["--bucket"], {}),  # value missing
        (["--log-chunk-size", "lots", "true"], {}),
        (["--preflight", "sometimes", "true"], {}),
        (["--buck", "b", "true"], {}),  # no abbreviations
        (["true"], {"OBJECTSTORE_QUIET": "maybe"}),
        (["true"], {"OBJECTSTORE_SPOOL_LIMIT": "big"}),
        (["true"], {"OBJECTSTORE_FETCH_RESULT": "a/b=/x c/d=/y"}),  # split by click
    ],
)
def test_left_to_click(args: list[str], env: dict[str, str]) -> None:
    assert fast_parse(args, env) is None


def test_variables_split_by_click_still_reach_the_command() -> None:
    result = click_parse(["true"], {"OBJECTSTORE_FETCH_RESULT": "a/b=/x c/d=/y"})
    assert result is not None
    assert result[0]["fetch_result"] == ("a/b=/x", "c/d=/y")


# -- the start-up path ---------------------------------------------------------------------------


# Before the spawn of COMMAND only builtin modules and a few small ones of the standard library load:
# each of these costs from a fraction of a millisecond to several (typing, pathlib, urllib.parse, re
# with enum, collections with functools, ...), on every step.
HEAVY = (
    "click", "dataclasses", "inspect", "minio", "ssl", "psutil", "urllib3", "entrypoint.wrapper.run",
    "typing", "re", "enum", "pathlib", "urllib", "ipaddress", "unicodedata", "fnmatch", "collections",
    "functools", "contextlib", "operator", "threading", "selectors", "signal", "ctypes", "struct", "math",
    "importlib", "warnings", "json", "base64", "tempfile", "random", "socket", "difflib", "configparser",
)  # fmt: skip


@pytest.mark.parametrize("endpoint", ["http://127.0.0.1:9", "file:///nonexistent/store"])
def test_start_up_path_imports_no_click_and_nothing_heavy(tmp_path: Any, endpoint: str) -> None:
    """Up to the spawn of COMMAND the wrapper loads only small modules (start-up is per step).

    The interpreter runs without ``site`` (-S): an editable install's path hook alone imports
    pathlib, re and more at start-up, which would hide what the wrapper imports itself."""
    code = (
        "import sys\n"
        "before = set(sys.modules)\n"
        "import entrypoint.wrapper.supervisor as s, entrypoint.cli as c\n"
        f"heavy = {HEAVY!r}\n"
        "def start(supervisor, reporter):\n"
        "    loaded = set(sys.modules) - before\n"
        "    print(sorted(m for m in loaded if m.split('.')[0] in heavy or m in heavy))\n"
        "    sys.stdout.flush()\n"
        "    raise SystemExit(0)\n"
        "s.start = start\n"
        "c.main(['--pipelinerun', 'r', '--pipelinetask', 't', '--spool-dir', sys.argv[1], '--quiet', '--', 'true'])\n"
    )
    env = {k: v for k, v in os.environ.items() if k not in ALL_ENV}
    env.update(OBJECTSTORE_ENDPOINT=endpoint, OBJECTSTORE_ACCESS_KEY="an-access-key", OBJECTSTORE_SECRET_KEY="a-secret")
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")])
    out = subprocess.run(
        [sys.executable, "-S", "-c", code, str(tmp_path)], capture_output=True, text=True, env=env, timeout=60
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"


RUN_PATH_HEAVY = (
    "click", "dataclasses", "inspect", "ast", "dis", "tokenize", "pathlib", "typing", "urllib", "ipaddress",
    "fnmatch", "ntpath", "signal",
)  # fmt: skip


def test_a_whole_run_imports_no_dataclasses(tmp_path: Any) -> None:
    """After the spawn the machinery loads while COMMAND runs: a COMMAND that ends at once waits
    for it, so nothing on a local-store run's path uses ``dataclasses`` (it pulls inspect, ast, dis,
    tokenize), ``pathlib`` (re, urllib.parse, ipaddress, fnmatch), ``typing`` or ``signal``'s enum.
    (``json``, for the summary and the manifest, still loads ``re`` and ``enum``.) Without ``site``
    (-S), as the start-up test: an editable install's path hook imports pathlib and re itself."""
    out = _whole_run(tmp_path, "m.split('.')[0] in heavy", RUN_PATH_HEAVY, ['true'], no_site=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "0 []"
    assert list((tmp_path / "store").rglob("main-summary.json")), "the run stored its summary"


def test_a_whole_local_store_run_loads_no_tempfile_tarfile_nor_openssl(tmp_path: Any) -> None:
    """A COMMAND that ends at once waits for what loads after the spawn: the local store writes
    without ``tempfile`` (it pulls shutil, bz2, lzma, random), hashes small objects without
    OpenSSL (``_hashlib``: milliseconds to load), the log archive's tar header is built without
    ``tarfile``, the summary's times without ``datetime``, the queues are ``_queue``'s, and
    ``random`` waits for a first retry."""
    out = _whole_run(tmp_path, "m in heavy", ('tempfile', '_hashlib', 'hashlib', 'tarfile', 'datetime', 'random', 'queue'),
                     ['sh', '-c', 'echo some output'], no_site=False)
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines() == ["some output", "0 []"]
    assert len(list((tmp_path / "store").rglob("*.log"))) == 1, "the run stored a log chunk"


def test_help_and_errors_still_come_from_click(tmp_path: Any) -> None:
    env = {k: v for k, v in os.environ.items() if k not in ALL_ENV}
    run = [sys.executable, "-m", "entrypoint"]
    out = subprocess.run([*run, "--help"], capture_output=True, text=True, env=env, timeout=60)
    assert out.returncode == 0 and "--log-chunk-size" in out.stdout and "Exit codes:" in out.stdout
    out = subprocess.run(
        [*run, "--log-chunk-size", "lots", "--", "true"], capture_output=True, text=True, env=env, timeout=60
    )
    assert out.returncode == 2
    assert out.stderr.count("\n") == 1 and "--log-chunk-size" in out.stderr and "'lots'" in out.stderr
    out = subprocess.run(
        [*run, "--no-such", "--", "true"], capture_output=True, text=True, env=env, timeout=60
    )
    assert out.returncode == 2 and "No such option '--no-such'" in out.stderr


def _whole_run(tmp_path: Any, test: str, heavy: Sequence[str], command: list[str], no_site: bool) -> Any:
    """A whole local-store run of COMMAND in a fresh interpreter; it prints the exit code and the
    modules of ``heavy`` (matched by ``test``) loaded by then. ``no_site``: ``python -S`` (an
    editable install's path hook imports pathlib and re itself)."""
    code = (
        "import sys, entrypoint.cli as c\n"
        f"heavy = {tuple(heavy)!r}\n"
        "def end(code):\n"
        f"    print(code, sorted(m for m in sys.modules if {test}))\n"
        "    sys.stdout.flush()\n"
        "c._exit = end\n"
        f"c.main(['--pipelinerun', 'r', '--pipelinetask', 't', '--results-dir', {str(tmp_path / 'none')!r},"
        f" '--quiet', '--', *{command!r}])\n"
    )
    env = {k: v for k, v in os.environ.items() if k not in ALL_ENV}
    env.update(OBJECTSTORE_ENDPOINT=f"file://{tmp_path / 'store'}")
    if no_site:
        env["PYTHONPATH"] = os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")])
    site = ["-S"] if no_site else []
    return subprocess.run([sys.executable, *site, "-c", code], capture_output=True, text=True, env=env, timeout=60)
