"""The ``tekton-uploader-read`` command line: ls, logs [--follow], get, summary.

Store options are the wrapper's (``storeoptions.py``): same flags, same environment variables.
Every failure is one line on stderr and a documented exit code (``errors.py``); never a traceback.
"""

from __future__ import annotations

import functools
import os
import sys
from pathlib import Path
from typing import Any, Callable, Optional, TypeVar

import click

from .. import __version__
from ..clicktypes import Duration
from ..config import ConfigError, build_store_config
from ..layout import name_problem
from ..options import env_option
from ..report import open_std_fds
from ..securityoptions import reader_security_options
from ..store import StoreError, open_readable_store
from ..storeoptions import key_prefix_option, store_options
from . import errors
from .console import Console
from .errors import ReadError
from .fetch import get_result, get_result_to_file
from .listing import ls
from .locate import Reader, parse_target
from .logs import Follow, print_log
from .retry import Retry
from .summaries import summary

F = TypeVar("F", bound=Callable[..., Any])
PROG = "tekton-uploader-read"
CONTEXT = {"help_option_names": ["-h", "--help"], "max_content_width": 100}

EPILOG = """\b
Exit codes: 0 done; 1 no such run, task, step log, result or bucket (the message names what
exists nearby); 2 bad usage; 3 the store refused (credentials) or could not be reached after
--retries; 4 an object does not match its manifest, an archive is corrupt or a log has a gap;
5 the -o file cannot be written. logs --follow exits with the step's recorded exit code.
"""

retries_option = env_option(
    "--retries",
    env=["OBJECTSTORE_READ_RETRIES"],
    type=click.IntRange(0, 100),
    default=4,
    show_default=True,
    help="Retries of a store request that failed for a transient reason (network, 5xx, throttling).",
)


class PipeClosed(Exception):
    """Our stdout's reader went away (not an OSError, which click would turn into exit 1)."""


def _pipe_safe(f: F) -> F:
    @functools.wraps(f)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return f(*args, **kwargs)
        except BrokenPipeError:
            raise PipeClosed() from None

    return wrapper  # type: ignore[return-value]


def reader_options(f: F) -> F:
    return store_options(reader_security_options(key_prefix_option(retries_option(_pipe_safe(f)))))


def open_reader(values: dict[str, Any], console: Console) -> Reader:
    """The store the options point at, and how to read it. Never creates a bucket."""
    try:
        cfg = build_store_config(values)._replace(create_bucket=False)
    except ConfigError as exc:
        raise ReadError(str(exc), errors.USAGE) from None
    prefix = str(values.get("key_prefix") or "").strip("/")
    for part in prefix.split("/") if prefix else ():
        problem = name_problem(part)
        if problem:
            raise ReadError(f"--key-prefix: segment {part!r} {problem}; use plain names", errors.USAGE)
    store = open_readable_store(cfg)
    retry = Retry(where=store.describe(), retries=int(values.get("retries", 4)), notify=console.warn)
    return Reader(store, prefix, retry, console)


def _stdout() -> Any:
    return sys.stdout.buffer


@click.group(context_settings=CONTEXT, epilog=EPILOG)
@click.version_option(__version__, "--version", prog_name=PROG)
def group() -> None:
    """Read what tekton-uploader stored: list runs, print or follow a step's log, get a result.

    \b
    Objects (bucket-relative):
      <prefix>/<pipelinerun>/<pipelinetask>/<result>.tgz
      <prefix>/<pipelinerun>/<pipelinetask>/<step>-log.tgz
      <prefix>/<pipelinerun>/<pipelinetask>/logs/<step>/<chunk>.log
    """


@group.command("ls")
@click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts.")
@reader_options
@click.argument("target", required=False, metavar="[PIPELINERUN[/PIPELINETASK]]")
def ls_command(target: Optional[str], as_json: bool, **values: Any) -> int:
    """List pipeline runs; a run's tasks; or a task's objects (size, time, sha256 from the manifest)."""
    console = Console()
    parsed = parse_target(target, need_task=False) if target else None
    ls(open_reader(values, console), parsed, sys.stdout, as_json)
    return errors.OK


@group.command("logs")
@click.option("--step", default="main", show_default=True, metavar="NAME", help="Step whose log to print.")
@click.option("--follow", "-f", is_flag=True, help="Keep printing new output until the step ends.")
@click.option(
    "--interval",
    type=Duration(),
    default="1s",
    show_default=True,
    help="How often --follow asks the store for new output.",
)
@click.option(
    "--summary-wait",
    type=Duration(),
    default="5m",
    show_default=True,
    help="With --follow: once the log is complete, how long to wait for <step>-summary.json "
    "(the step's exit code; the wrapper stores it last, within its --flush-timeout).",
)
@reader_options
@click.argument("target", metavar="PIPELINERUN/PIPELINETASK")
def logs_command(
    target: str, step: str, follow: bool, interval: float, summary_wait: float, **values: Any
) -> int:
    """Print a step's log, byte for byte: from <step>-log.tgz when the step is done, else from the
    live chunks. With --follow, exit with the step's exit code once it ends."""
    problem = name_problem(step)
    if problem:
        raise ReadError(f"--step: {step!r} {problem}", errors.USAGE)
    if interval <= 0:
        raise ReadError("--interval: must be greater than 0", errors.USAGE)
    console = Console()
    parsed = parse_target(target, need_task=True)
    reader = open_reader(values, console)
    assert parsed.task is not None
    view = reader.task(parsed.run, parsed.task)
    out = _stdout()
    if follow:
        return Follow(reader, view, step, out, interval=interval, summary_wait=summary_wait).run()
    code = print_log(reader, view, step, out)
    out.flush()
    return code


@group.command("get")
@click.option(
    "--output",
    "-o",
    metavar="FILE",
    help="Write to FILE (complete and verified, or not at all) instead of stdout.",
)
@reader_options
@click.argument("target", metavar="PIPELINERUN/PIPELINETASK")
@click.argument("result")
def get_command(target: str, result: str, output: Optional[str], **values: Any) -> int:
    """Write a result's raw bytes, extracted from its <result>.tgz."""
    console = Console()
    parsed = parse_target(target, need_task=True)
    reader = open_reader(values, console)
    assert parsed.task is not None
    view = reader.task(parsed.run, parsed.task)
    if output in (None, "-"):
        out = _stdout()
        get_result(reader, view, result, out)
        out.flush()
    else:
        assert output is not None
        get_result_to_file(reader, view, result, Path(output))
    return errors.OK


@group.command("summary")
@click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts.")
@reader_options
@click.argument("target", metavar="PIPELINERUN[/PIPELINETASK]")
def summary_command(target: str, as_json: bool, **values: Any) -> int:
    """Per task and step: exit code, duration, CPU, peak memory, bytes stored, objects missing."""
    console = Console()
    parsed = parse_target(target, need_task=False)
    summary(open_reader(values, console), parsed.run, parsed.task, sys.stdout, as_json)
    return errors.OK


def _silence_stdout() -> None:
    """The reader of our output went away: drop what is buffered, quietly."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError):
        pass


def main(argv: Optional[list[str]] = None) -> None:
    open_std_fds()
    args = sys.argv[1:] if argv is None else argv
    console = Console()
    try:
        code = group.main(args, prog_name=PROG, standalone_mode=False)
        sys.stdout.flush()
    except click.exceptions.Exit as exc:  # --help, --version
        code = exc.exit_code
    except click.ClickException as exc:
        hint = " (see --help)"
        if isinstance(exc, click.NoSuchOption) and args and args[0].startswith("-"):
            hint = f"; options go after the command, e.g. {PROG} ls {exc.option_name} ... (see --help)"
        console.error(exc.format_message().rstrip(".") + hint)
        code = errors.USAGE
    except ReadError as exc:
        _flush_quietly()
        console.error(str(exc))
        code = exc.code
    except StoreError as exc:
        _flush_quietly()
        console.error(str(errors.from_store_error(exc, "object store")))
        code = errors.from_store_error(exc, "object store").code
    except (BrokenPipeError, PipeClosed):
        _silence_stdout()
        code = errors.SIGPIPE_EXIT
    except KeyboardInterrupt:
        _flush_quietly()
        code = 130
    except Exception as exc:  # never a traceback
        _flush_quietly()
        console.error(f"internal error: {type(exc).__name__}: {exc}")
        code = 125
    sys.exit(code if isinstance(code, int) else 0)


def _flush_quietly() -> None:
    try:
        sys.stdout.flush()
    except BrokenPipeError:
        _silence_stdout()
    except (OSError, ValueError):
        pass
