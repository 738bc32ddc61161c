"""click parameter types for the option kinds of ``table.py`` (imported only when click is)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Optional

import click

from ..units import parse_duration, parse_size


class Size(click.ParamType):  # type: ignore[type-arg]
    name = "SIZE"

    def convert(self, value: Any, param: Optional[click.Parameter], ctx: Optional[click.Context]) -> int:
        if isinstance(value, int):
            return value
        try:
            return parse_size(str(value))
        except ValueError as exc:
            self.fail(str(exc), param, ctx)


class Duration(click.ParamType):  # type: ignore[type-arg]
    """A duration; with ``limits`` (as written: ``("10ms", "1h")``) one outside them is refused."""

    name = "DURATION"

    def __init__(self, limits: tuple[str, str] = ("", "")) -> None:
        self.limits = limits

    def convert(self, value: Any, param: Optional[click.Parameter], ctx: Optional[click.Context]) -> float:
        try:
            seconds = float(value) if isinstance(value, (int, float)) else parse_duration(str(value))
        except ValueError as exc:
            self.fail(str(exc), param, ctx)
        low, high = self.limits
        if low and not parse_duration(low) <= seconds <= parse_duration(high):
            self.fail(f"{value!r} is out of range; give a value from {low} to {high}", param, ctx)
        return seconds


def choice(choices: Sequence[str]) -> click.Choice:  # type: ignore[type-arg]
    return click.Choice(list(choices), case_sensitive=False)
