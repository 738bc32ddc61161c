"""Parsing of sizes and durations: one syntax for every option that takes one."""

from __future__ import annotations

_SIZE_UNITS = {
    "": 1,
    "b": 1,
    "k": 1000,
    "kb": 1000,
    "m": 1000**2,
    "mb": 1000**2,
    "g": 1000**3,
    "gb": 1000**3,
    "kib": 1024,
    "mib": 1024**2,
    "gib": 1024**3,
    "tib": 1024**4,
}
_DURATION_UNITS = {"": 1.0, "ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}
_LETTERS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ")


def _number_and_unit(text: str) -> tuple[str, str] | None:
    r"""``text`` as ``^\s*(\d+(?:\.\d+)?)\s*([a-zA-Z]*)\s*$`` (number, unit lower-cased), without
    ``re``: this runs before COMMAND starts."""
    rest = text.strip()
    end = _digits_end(rest, 0)
    if end == 0:
        return None
    if rest[end : end + 1] == "." and _digits_end(rest, end + 1) > end + 1:
        end = _digits_end(rest, end + 1)
    unit = rest[end:].lstrip()
    if not _LETTERS.issuperset(unit):
        return None
    return rest[:end], unit.lower()


def _digits_end(text: str, start: int) -> int:
    end = start
    while end < len(text) and text[end].isdecimal():  # what \d matches
        end += 1
    return end


def parse_size(text: str) -> int:
    """``"8MiB"`` -> 8388608. Plain numbers are bytes. Raises ValueError."""
    parsed = _number_and_unit(text)
    if parsed is None or parsed[1] not in _SIZE_UNITS:
        raise ValueError(f"{text!r} is not a size (use bytes or a unit: 512KiB, 8MiB, 1GiB)")
    return int(float(parsed[0]) * _SIZE_UNITS[parsed[1]])


def parse_duration(text: str) -> float:
    """``"500ms"`` -> 0.5, ``"2m"`` -> 120.0. Plain numbers are seconds. Raises ValueError."""
    parsed = _number_and_unit(text)
    if parsed is None or parsed[1] not in _DURATION_UNITS:
        raise ValueError(f"{text!r} is not a duration (use seconds or a unit: 500ms, 5s, 2m, 1h)")
    return float(parsed[0]) * _DURATION_UNITS[parsed[1]]


def format_size(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(n) < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} GiB"  # pragma: no cover


def format_duration(seconds: float) -> str:
    """``600`` -> ``10m``, ``90`` -> ``1m30s``, ``0.5`` -> ``0.5s``: as a duration option is written."""
    if seconds < 60:
        return f"{seconds:g}s"
    minutes, rest = divmod(round(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    text = (f"{hours}h" if hours else "") + (f"{minutes}m" if minutes else "") + (f"{rest}s" if rest else "")
    return text
