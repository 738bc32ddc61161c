"""Command-line options as data: one ``Option`` per flag, read by click and by ``fastparse.py``.

An ``Option`` is also a decorator that applies the equivalent ``click.option`` (click is imported
only then), so the commands keep their familiar decorator stacks while the wrapper's start-up can
parse the same table without importing click (see ``fastparse.py``).

Kinds: ``text`` (a string), ``flag`` (``--x``), ``bool`` (``--x/--no-x``), ``size`` (``8MiB``),
``duration`` (``5s``; a size or a duration also gives ``limits``, its documented range, which
``settings`` enforces), ``choice`` (one of ``choices``, case-insensitive). Any other ``type`` (a
click type object) is passed to click as it is; the fast parser leaves such options to click.
"""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Sequence
    from typing import Any, TypeVar

    F = TypeVar("F", bound=Callable[..., Any])


KINDS = frozenset({"text", "flag", "bool", "size", "duration", "choice"})  # what fastparse.py parses


class Option:
    """One option: its flags, environment variables, kind and default, plus click's help text."""

    __slots__ = (
        "choices",
        "decls",
        "default",
        "env",
        "extra",
        "flags",
        "has_default",
        "kind",
        "limits",
        "multiple",
        "name",
        "off_flags",
    )

    def __init__(
        self,
        *decls: str,
        env: Sequence[str],
        type: object = "text",
        is_flag: bool = False,
        default: object = ...,
        multiple: bool = False,
        choices: Sequence[str] = (),
        limits: tuple[str, str] = ("", ""),
        **extra: object,
    ) -> None:
        self.decls = decls
        names = [d for d in decls if not d.startswith("-")]
        self.flags: tuple[str, ...] = ()
        self.off_flags: tuple[str, ...] = ()
        for decl in decls:
            if decl.startswith("-"):
                on, _, off = decl.partition("/")
                self.flags += (on,)
                self.off_flags += (off,) if off else ()
        longest = max(self.flags, key=lambda f: (f.startswith("--"), len(f)))
        self.name = names[0] if names else longest.lstrip("-").replace("-", "_")
        self.env = tuple(env)
        if self.off_flags:
            kind: object = "bool"
        elif is_flag:
            kind = "flag"
        elif choices:
            kind = "choice"
        else:
            kind = type
        self.kind = kind
        self.choices = tuple(choices)
        self.has_default = default is not ...
        self.default = default if self.has_default else (False if kind == "flag" else None)
        self.multiple = multiple
        self.limits = limits  # (lowest, highest) a size or duration may be, as written on the command line
        self.extra = extra

    def convert(self, raw: str) -> object:
        """The value of ``raw`` (from a flag's argument or a variable); ValueError when invalid."""
        from ..units import parse_duration, parse_size

        if self.kind == "size":
            return parse_size(raw)
        if self.kind == "duration":
            return parse_duration(raw)
        if self.kind == "choice":
            for choice in self.choices:
                if raw.lower() == choice.lower():
                    return choice
            raise ValueError(f"{raw!r} is not one of {', '.join(self.choices)}")
        if self.kind in ("flag", "bool"):
            state = BOOL_STATES.get(raw.strip().lower())
            if state is None:
                raise ValueError(f"{raw!r} is not a valid boolean")
            return state
        if self.kind == "text":
            return raw
        raise ValueError(f"{self.name}: kind {self.kind!r} is parsed by click only")

    def click_kwargs(self) -> dict[str, object]:
        """What ``click.option`` needs besides the declarations."""
        from . import clicktypes

        kw: dict[str, object] = dict(self.extra)
        if self.limits[0]:
            kw["help"] = f"{kw.get('help', '')} [range: {self.limits[0]} to {self.limits[1]}]".strip()
        kw["envvar"] = list(self.env)
        kw["show_envvar"] = True
        if self.kind == "flag":
            kw["is_flag"] = True
        elif self.kind == "size":
            kw["type"] = clicktypes.Size()
        elif self.kind == "duration":
            kw["type"] = clicktypes.Duration()
        elif self.kind == "choice":
            kw["type"] = clicktypes.choice(self.choices)
        elif self.kind not in ("text", "bool"):
            kw["type"] = self.kind
        if self.has_default:
            kw["default"] = self.default
        if self.multiple:
            kw["multiple"] = True
        return kw

    def __call__(self, f: F) -> F:
        import click

        return click.option(*self.decls, **self.click_kwargs())(f)  # type: ignore[arg-type]

    def __repr__(self) -> str:
        return f"Option({self.name}: {self.kind})"


# click's reading of a boolean (``BoolParamType.bool_states``); fastparse.py's equivalence test keeps
# them the same.
BOOL_STATES = {
    "1": True,
    "0": False,
    "yes": True,
    "no": False,
    "true": True,
    "false": False,
    "on": True,
    "off": False,
    "t": True,
    "f": False,
    "y": True,
    "n": False,
}


def env_option(*decls: str, env: Sequence[str], **kw: object) -> Option:
    """An option that also reads the environment variables ``env`` (first non-empty one wins)."""
    return Option(*decls, env=env, **kw)  # type: ignore[arg-type]


def apply(options: Sequence[Option], f: F) -> F:
    """Decorate ``f`` with ``options`` in order (the first is listed first in ``--help``)."""
    for option in reversed(options):
        f = option(f)
    return f
