"""The ``tekton-uploader`` command line: options (each also an environment variable) -> Config -> Run.

Errors in the options are one line on stderr and exit code 2, before COMMAND starts.

Start-up is on every step's critical path, so the usual command line is parsed by
``options/fastparse.py`` from the option table (``options/wrapper.py``) without importing click;
click (the same table) handles everything else: ``--help``, ``--version``, and every error, so
the messages are click's.
"""

from __future__ import annotations

import os
import sys

from . import __version__, exitcodes
from .options.fastparse import parse_argv
from .options.table import apply
from .options.wrapper import CONTEXT, EPILOG, OPTIONS, SECRETS, VARIABLES
from .redact import redact
from .report import PREFIX, Reporter, open_std_fds
from .settings.step import build_config
from .settings.store import ConfigError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence
    from typing import Any, Optional

    import click

    from .settings.step import Config
    from .settings.tekton import TektonDeadline


def execute(values: Mapping[str, Any], command: Sequence[str], on_command_line: set[str]) -> int:
    """Run COMMAND with the parsed option values; ``on_command_line``: options given as flags."""
    from .wrapper.cgroup import locate
    from .wrapper.hardening import protect
    from .wrapper.policy import policy_of
    from .wrapper.supervisor import Supervisor, start

    _warn_unknown_variables(bool(values.get("debug")))
    cfg = build_config(values, command)
    reporter = Reporter(quiet=cfg.quiet, debug=cfg.debug)
    protect(cfg, reporter, {name: name in on_command_line for name in SECRETS})
    if cfg.attempt.ask_store:  # a Tekton step whose pod name says nothing about retries
        from .wrapper.attempt import settle_attempt

        cfg = settle_attempt(cfg, reporter)
    tekton = _tekton_deadline(cfg, reporter)
    supervisor = Supervisor(cfg.command, reporter, policy=policy_of(cfg, tekton))
    supervisor.install_signals()  # before any thread starts, so that every thread has them blocked
    inputs: list[dict[str, Any]] = []
    if cfg.fetch_results:  # inputs first: COMMAND must find them when it starts
        from .wrapper.inputs import fetch_inputs

        inputs = fetch_inputs(cfg, reporter)
    if cfg.preflight == "strict":  # the bucket is checked before COMMAND starts
        from .wrapper.run import preflight_strict

        if not preflight_strict(cfg, reporter):
            supervisor.restore_signals()
            return exitcodes.USAGE
    cgroup = locate(cfg.cgroup_root)  # its OOM counters are read before COMMAND can move them
    baseline = cgroup.read() if cgroup is not None else None
    spool = _spool(cfg.spool_dir)  # an unusable spool must not cost COMMAND its output
    failed = start(supervisor, reporter)  # the one place COMMAND is spawned
    if failed is not None:
        from .spool.directory import remove_spool

        remove_spool(spool)
        return failed
    from .wrapper.run import Run  # the rest of the machinery loads while COMMAND runs

    return Run(
        cfg, reporter, supervisor, inputs=inputs, tekton=tekton, memory=(cgroup, baseline), spool=spool
    ).execute()


def _tekton_deadline(cfg: Config, reporter: Reporter) -> Optional[TektonDeadline]:
    """--tekton-timeout auto: the plan for the step timeout of Tekton's entrypoint above us, if any."""
    if cfg.tekton_timeout != "auto":
        return None
    from .settings.tekton import detect

    tekton = detect(cfg.kill_after)
    if tekton is not None and cfg.timeout is not None and tekton.stop_at < tekton.now + cfg.timeout:
        reporter.warn(
            f"--timeout {cfg.timeout:g}s leaves too little of the Tekton step timeout "
            f"({tekton.step_timeout:g}s) to stop COMMAND and store its output before the step's SIGKILL"
        )
    return tekton


def _spool(parent: Optional[str]) -> str:
    from .spool.directory import SpoolDirError, make_spool_dir

    try:
        return make_spool_dir(parent)
    except SpoolDirError as exc:
        raise ConfigError(str(exc)) from None


def _warn_unknown_variables(debug: bool) -> None:
    """A misspelt OBJECTSTORE_* variable: a warning (also with -q), before anything else is said."""
    if any(name.startswith("OBJECTSTORE_") and name not in VARIABLES for name in os.environ):
        from .settings.environment import unknown_variables

        reporter = Reporter(debug=debug)
        for warning in unknown_variables(os.environ, VARIABLES):
            reporter.warn(warning)


_command: list[click.Command] = []  # built on first use


def click_command() -> click.Command:
    """The click command (built on first use): ``--help``, ``--version`` and error messages."""
    if not _command:
        _command.append(_build_click_command())
    return _command[0]


def _build_click_command() -> click.Command:
    import click

    def command(command: tuple[str, ...], **values: Any) -> int:
        """Run COMMAND, pass its output through, and store its log and Tekton results in object storage.

        \b
        Objects (bucket-relative):
          <prefix>/<pipelinerun>/<pipelinetask>/<result>.tgz
          <prefix>/<pipelinerun>/<pipelinetask>/<step>/<result>.tgz  (--step-results-dir)
          <prefix>/<pipelinerun>/<pipelinetask>/<step>-log.tgz
          <prefix>/<pipelinerun>/<pipelinetask>/<step>-summary.json
          <prefix>/<pipelinerun>/<pipelinetask>/<step>-manifest.json
          <prefix>/<pipelinerun>/<pipelinetask>/logs/<step>/<chunk>.log
          <PREFIX>/<namespace>/<result>/<taskrun-uid>/step-<step>.log  (--tekton-results-logs)
        \b
        A Tekton retry (attempt N >= 2, see --attempt) keeps its own objects:
          <prefix>/<pipelinerun>/<pipelinetask>/<step>-attempt-N-log.tgz  (and <step>-log.tgz)
          <prefix>/<pipelinerun>/<pipelinetask>/<step>-attempt-N-summary.json
          <prefix>/<pipelinerun>/<pipelinetask>/<step>-attempt-N-manifest.json
          <prefix>/<pipelinerun>/<pipelinetask>/logs/<step>/attempt-N/<chunk>.log
        """
        ctx = click.get_current_context()
        source = click.core.ParameterSource.COMMANDLINE
        return execute(values, command, {n for n in SECRETS if ctx.get_parameter_source(n) == source})

    f = click.argument("command", nargs=-1, type=click.UNPROCESSED, metavar="-- COMMAND [ARGS]...")(command)
    f = click.version_option(__version__, "--version", prog_name="tekton-uploader")(f)
    return click.command(context_settings=CONTEXT, epilog=EPILOG)(apply(OPTIONS, f))


def main(argv: Optional[list[str]] = None) -> None:
    open_std_fds()
    args = sys.argv[1:] if argv is None else argv
    try:
        parsed = parse_argv(args, os.environ, OPTIONS)
        code = _click_main(args) if parsed is None else execute(parsed.values, parsed.command, parsed.given)
    except ConfigError as exc:
        _fail(str(exc))
        code = exitcodes.USAGE
    except KeyboardInterrupt:
        code = exitcodes.SIGNAL_BASE + 2
    except Exception as exc:  # never a traceback: one line, and a distinct code
        _fail(f"internal error: {type(exc).__name__}: {exc}")
        code = exitcodes.INTERNAL
    _exit(code if isinstance(code, int) else 0)


def _exit(code: int) -> None:
    """Everything is stored by now: flush stdio and end at once (an interpreter shutdown tears
    down every module and thread for nothing, tens of milliseconds on every step)."""
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            pass
    os._exit(code)


def _click_main(args: list[str]) -> Any:
    import click

    try:
        return click_command().main(args, prog_name="tekton-uploader", standalone_mode=False)
    except click.exceptions.Exit as exc:  # --help, --version
        return exc.exit_code
    except click.ClickException as exc:
        _fail(exc.format_message() + " (see --help)")
        return exitcodes.USAGE


def _fail(message: str) -> None:
    line = redact(message.splitlines()[0]) if message else "failed"
    sys.stderr.write(f"{PREFIX}error: {line}\n")
    sys.stderr.flush()
