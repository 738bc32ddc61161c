"""The documented range of every size and duration option (``limits`` in ``options/``), enforced.

A value out of range is refused before COMMAND starts, with one line naming the option and the
range: a zero that silently meant "the default", or a duration too long for the platform's timers
(about 596 h), would otherwise surface only after COMMAND has run.
"""

from __future__ import annotations

from ..options.table import Option

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Mapping
    from typing import Any, Optional


class RangeError(ValueError):
    """A value outside its option's range; the message is one line naming the option."""


_ranged: dict[str, Option] = {}  # filled on first use


def _options() -> dict[str, Option]:
    if not _ranged:
        from ..options.wrapper import OPTIONS

        _ranged.update((o.name, o) for o in OPTIONS if o.limits[0])
    return _ranged


def limits(name: str) -> tuple[float, float]:
    """The lowest and highest value of option ``name`` (bytes or seconds)."""
    option = _options()[name]
    low, high = (float(option.convert(text)) for text in option.limits)  # type: ignore[arg-type]
    return low, high


def check_range(name: str, value: float) -> float:
    """``value`` when option ``name`` allows it; else ``RangeError``."""
    option = _options()[name]
    low, high = limits(name)
    if low <= value <= high:
        return value
    flag = f"--{name.replace('_', '-')}"
    lo_text, hi_text = option.limits
    if value > high:
        what = f"must be at most {hi_text}"
    elif value <= 0 and option.kind == "duration":
        what = "must be greater than 0"
    else:
        what = f"must be at least {lo_text}"
    raise RangeError(f"{flag}: {what}; give a value from {lo_text} to {hi_text}")


def ranged(values: Mapping[str, Any], name: str, default: Optional[float]) -> Any:
    """The value of option ``name`` from ``values`` (``default`` when unset), checked against its range."""
    value = values.get(name)
    if value is None:
        return default
    return check_range(name, float(value))
