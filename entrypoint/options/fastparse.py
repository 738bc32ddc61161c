"""The wrapper's usual command line, parsed from the option table without importing click.

Importing click costs ~20 ms, and start-up (wrapper start -> COMMAND running) is paid by every step
of every pipeline. ``parse_argv`` reads the same ``Option`` table click is built from and gives the
same values click would, or ``None`` whenever anything is not plainly valid (``--help``,
``--version``, an unknown or malformed option, a value that does not convert, a missing COMMAND,
a repeatable option from the environment). ``None`` means "let click do it", so help, errors and
their messages stay click's own; tests/test_argv.py checks both parsers agree.
"""

from __future__ import annotations

from .table import KINDS, Option

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence
    from typing import Optional


class Parsed:
    """What click would pass to the command: option values, COMMAND, options given as flags."""

    __slots__ = ("command", "given", "values")

    def __init__(self, values: dict[str, object], command: tuple[str, ...], given: set[str]) -> None:
        self.values = values
        self.command = command
        self.given = given


def parse_argv(
    args: Sequence[str], environ: Mapping[str, str], options: Sequence[Option]
) -> Optional[Parsed]:
    """The values of ``options`` from ``args`` (flags win) and ``environ``; None: ask click."""
    flags: dict[str, tuple[Option, bool]] = {}
    for option in options:
        if option.kind not in KINDS:
            return None
        flags.update((flag, (option, True)) for flag in option.flags)
        flags.update((flag, (option, False)) for flag in option.off_flags)
    raw: dict[str, object] = {}
    i = 0
    while i < len(args):
        arg = args[i]
        if arg == "--":
            i += 1
            break
        if arg[:1] != "-" or arg == "-":  # COMMAND starts (options end at the first argument)
            break
        flag, eq, value = arg.partition("=") if arg.startswith("--") else (arg, "", "")
        found = flags.get(flag)
        if found is None:  # -h, --help, --version, a typo, combined short flags: click's job
            return None
        option, on = found
        if option.kind in ("flag", "bool"):
            if eq:
                return None
            raw[option.name] = on
        else:
            if not eq:
                i += 1
                if i == len(args):
                    return None
                value = args[i]
            if option.multiple:
                previous = raw.get(option.name, ())
                raw[option.name] = (*previous, value) if isinstance(previous, tuple) else (value,)
            else:
                raw[option.name] = value
        i += 1
    command = tuple(args[i:])
    if not command:
        return None
    values: dict[str, object] = {}
    try:
        for option in options:
            values[option.name] = _value(option, raw, environ)
    except _AskClick:
        return None
    return Parsed(values, command, set(raw))


class _AskClick(Exception):
    pass


def _value(option: Option, raw: Mapping[str, object], environ: Mapping[str, str]) -> object:
    try:
        if option.name in raw:
            given = raw[option.name]
            if isinstance(given, tuple):
                return tuple(option.convert(v) for v in given)
            return option.convert(given) if isinstance(given, str) else given
        for variable in option.env:
            text = environ.get(variable)
            if text:
                if option.multiple:  # click splits on whitespace; rare enough to leave to it
                    raise _AskClick()
                return option.convert(text)
        if option.multiple:
            return ()
        default = option.default
        return option.convert(default) if isinstance(default, str) else default
    except ValueError:
        raise _AskClick() from None
