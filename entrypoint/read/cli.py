"""The ``tekton-uploader-read`` command line: ls, logs [--follow], get, summary, library-logs.

Store options are the wrapper's (``options/store.py``): same flags, same environment variables.
They belong to the group (listed once in its --help) and are accepted after the subcommand too.
Every failure is one line on stderr and a documented exit code (``errors.py``); never a traceback.
"""

from __future__ import annotations

import functools
import os
import sys
from pathlib import Path
from typing import Any, Callable, Optional, TypeVar

import click
from click.core import ParameterSource

from .. import __version__
from ..formats.layout import name_problem
from ..options.clicktypes import Duration
from ..options.table import Option
from ..report import open_std_fds
from ..settings.store import ConfigError, build_store_config
from ..store import StoreError, open_readable_store
from . import errors
from .cliopts import EPILOG, PROG, READER_NAMES, READER_OPTIONS, SUB_EPILOG, attempt_option
from .console import Console
from .errors import ReadError
from .fetch import get_result, get_result_to_file
from .library_logs import list_logs, print_library_log
from .listing import ls
from .locate import Reader, parse_target
from .logs import Follow, print_log, print_run
from .retry import Retry
from .summaries import summary

F = TypeVar("F", bound=Callable[..., Any])
CONTEXT = {"help_option_names": ["-h", "--help"], "max_content_width": 100}


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


def _hidden(option: Option) -> Callable[[F], F]:
    """``option`` for a subcommand: no help line, no default, no variable (the group reads those)."""
    kw = option.click_kwargs()
    for key in ("envvar", "show_envvar", "default", "show_default"):
        kw.pop(key, None)
    return click.option(*option.decls, hidden=True, **kw)  # type: ignore[arg-type]


def reader_options(f: F) -> F:
    """The store options after a subcommand; the wrapped command gets them merged with the group's."""

    @functools.wraps(f)
    def merged(**kwargs: Any) -> Any:
        ctx = click.get_current_context()
        parent = ctx.parent.params if ctx.parent is not None else {}
        for name in READER_NAMES:
            if ctx.get_parameter_source(name) is not ParameterSource.COMMANDLINE:
                kwargs[name] = parent.get(name)
        return f(**kwargs)

    wrapped: Any = _pipe_safe(merged)
    for option in reversed(READER_OPTIONS):
        wrapped = _hidden(option)(wrapped)
    return wrapped  # type: ignore[no-any-return]


def json_output(f: F) -> F:
    """``--json``, ``-o json`` and ``--output json`` (as kubectl, tkn and argo spell it)."""
    f = click.option(
        "--output",
        "-o",
        "output",
        type=click.Choice(["json", "table"], case_sensitive=False),
        default="table",
        show_default=True,
        help="json for scripts (same as --json).",
    )(f)
    return click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts.")(f)


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
    retries = values.get("retries")
    retry = Retry(where=store.describe(), retries=4 if retries is None else int(retries), notify=console.warn)
    return Reader(store, prefix, retry, console)


def _stdout() -> Any:
    return sys.stdout.buffer


def _apply(options: tuple[Option, ...], f: F) -> F:
    for option in reversed(options):
        f = option(f)
    return f


@click.group(context_settings=CONTEXT, epilog=EPILOG, options_metavar="[STORE OPTIONS]")
@click.version_option(__version__, "--version", prog_name=PROG)
@functools.partial(_apply, READER_OPTIONS)
def group(**_values: Any) -> None:
    """Read what tekton-uploader stored: list runs, print or follow a step's log, get a result.

    \b
    Objects (bucket-relative):
      <prefix>/<pipelinerun>/<pipelinetask>/<result>.tgz
      <prefix>/<pipelinerun>/<pipelinetask>/<step>-log.tgz
      <prefix>/<pipelinerun>/<pipelinetask>/<step>-summary.json
      <prefix>/<pipelinerun>/<pipelinetask>/<step>-manifest.json
      <prefix>/<pipelinerun>/<pipelinetask>/logs/<step>/<chunk>.log
      <prefix>/_logs/<id>/<chunk>.log  (the library's Logger)
    \b
    A Tekton retry (attempt N >= 2) has its own, and stores <step>-log.tgz too:
      <prefix>/<pipelinerun>/<pipelinetask>/<step>-attempt-N-log.tgz  (-summary.json, -manifest.json)
      <prefix>/<pipelinerun>/<pipelinetask>/logs/<step>/attempt-N/<chunk>.log
    """


@group.command("ls", epilog=SUB_EPILOG)
@json_output
@reader_options
@click.argument("target", required=False, metavar="[PIPELINERUN[/PIPELINETASK]]")
def ls_command(target: Optional[str], as_json: bool, output: str, **values: Any) -> int:
    """List pipeline runs; a run's tasks; or a task's objects (size, time, sha256 from the manifest)."""
    console = Console()
    parsed = parse_target(target, need_task=False) if target else None
    ls(open_reader(values, console), parsed, sys.stdout, as_json or output.lower() == "json")
    return errors.OK


@group.command("logs", epilog=SUB_EPILOG)
@click.option(
    "--step",
    metavar="NAME",
    help="Step whose log to print. [default: main; for PIPELINERUN alone, every step]",
)
@click.option("--follow", "-f", is_flag=True, help="Keep printing new output until the step ends.")
@attempt_option
@click.option(
    "--interval",
    type=Duration(("10ms", "1h")),
    default="1s",
    show_default=True,
    help="How often --follow asks the store for new output. [range: 10ms to 1h]",
)
@click.option(
    "--wait",
    type=Duration(("0", "24h")),
    default="10m",
    show_default=True,
    help="With --follow: how long to wait for the step to store its first log output "
    "(a step that has not started yet; says so in one line), then exit 1. [range: 0 to 24h]",
)
@click.option(
    "--summary-wait",
    type=Duration(("0", "24h")),
    default="5m",
    show_default=True,
    help="With --follow: once the log is complete, how long to wait for <step>-summary.json "
    "(the step's exit code; the wrapper stores it last, within its --flush-timeout). [range: 0 to 24h]",
)
@click.option(
    "--stale-after",
    type=Duration(("0", "24h")),
    default=None,
    help="With --follow: when the step stores nothing new for this long, say once that it seems gone "
    "and exit 6; 0 waits for ever. [default: 3 x the next chunk's promise (3m at a 5s flush "
    "interval)] [range: 0 to 24h]",
)
@reader_options
@click.argument("target", metavar="PIPELINERUN[/PIPELINETASK]")
def logs_command(
    target: str,
    step: Optional[str],
    follow: bool,
    interval: float,
    wait: float,
    summary_wait: float,
    attempt: Optional[int],
    stale_after: Optional[float],
    **values: Any,
) -> int:
    """Print a step's log, byte for byte: from <step>-log.tgz when the step is done, else from the
    live chunks. With --follow, exit with the step's exit code once it ends. PIPELINERUN alone
    prints every task's log, in the order the tasks started, each headed ==> TASK (step STEP) <==.
    A step Tekton retried: its latest attempt's log (while a retry runs, its own chunks), or --attempt N."""
    if step is not None:
        problem = name_problem(step)
        if problem:
            raise ReadError(f"--step: {step!r} {problem}", errors.USAGE)
    if interval <= 0:
        raise ReadError("--interval: must be greater than 0", errors.USAGE)
    console = Console()
    parsed = parse_target(target, need_task=False)
    if parsed.task is None and follow:
        raise ReadError(f"--follow needs PIPELINERUN/PIPELINETASK, not {target!r}", errors.USAGE)
    if parsed.task is None and attempt is not None:
        raise ReadError(f"--attempt needs PIPELINERUN/PIPELINETASK, not {target!r}", errors.USAGE)
    reader = open_reader(values, console)
    out = _stdout()
    if parsed.task is None:
        return print_run(reader, parsed.run, None if step is None else [step], out)
    step = step or "main"
    if follow:
        return Follow(
            reader,
            parsed.run,
            parsed.task,
            step,
            out,
            interval=interval,
            summary_wait=summary_wait,
            wait=wait,
            attempt=attempt,
            stale_after=stale_after,
        ).run()
    view = reader.task(parsed.run, parsed.task)
    code = print_log(reader, view, step, out, attempt)
    out.flush()
    return code


@group.command("get", epilog=SUB_EPILOG)
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


@group.command("summary", epilog=SUB_EPILOG)
@json_output
@attempt_option
@reader_options
@click.argument("target", metavar="PIPELINERUN[/PIPELINETASK]")
def summary_command(target: str, as_json: bool, output: str, attempt: Optional[int], **values: Any) -> int:
    """Per task and step: exit code, duration, CPU, peak memory, bytes stored, objects missing (of
    the latest attempt of a step Tekton retried, or --attempt N)."""
    console = Console()
    parsed = parse_target(target, need_task=False)
    as_json = as_json or output.lower() == "json"
    summary(open_reader(values, console), parsed.run, parsed.task, sys.stdout, as_json, attempt)
    return errors.OK


@group.command("library-logs", epilog=SUB_EPILOG)
@json_output
@reader_options
@click.argument("log_id", required=False, metavar="[ID]")
def library_logs_command(log_id: Optional[str], as_json: bool, output: str, **values: Any) -> int:
    """List the logs the Python library's Logger stored (<prefix>/_logs/<id>/), or print one, byte
    for byte (its chunks in order; a missing chunk is a warning and exit 4)."""
    console = Console()
    reader = open_reader(values, console)
    if log_id is None:
        list_logs(reader, sys.stdout, as_json or output.lower() == "json")
        return errors.OK
    return print_library_log(reader, log_id, _stdout())


def usage() -> str:
    """What a bare ``tekton-uploader-read`` prints: the usage and the commands, several lines."""
    ctx = click.Context(group, info_name=PROG, max_content_width=100)
    formatter = ctx.make_formatter()
    group.format_usage(ctx, formatter)
    group.format_commands(ctx, formatter)
    formatter.write_paragraph()
    formatter.write_text(f"Store options (--endpoint, --bucket, ...) and more: {PROG} --help")
    return formatter.getvalue()


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
    if not args:
        sys.stderr.write(usage())
        sys.exit(errors.USAGE)
    try:
        code = group.main(args, prog_name=PROG, standalone_mode=False)
        sys.stdout.flush()
    except click.exceptions.Exit as exc:  # --help, --version
        code = exc.exit_code
    except click.ClickException as exc:
        console.error(exc.format_message().rstrip(".") + " (see --help)")
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
