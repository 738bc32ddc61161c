"""``Record``: ``typing.NamedTuple`` for the modules loaded before COMMAND starts.

``typing`` (with ``re``, ``collections``, ``functools`` and ``contextlib`` behind it) costs
milliseconds to import, and each ``NamedTuple`` class more to create (its ``__new__`` is built with
``exec``): the wrapper's start-up pays that on every step. A ``Record`` is a
tuple with named fields, defaults, ``_fields``, ``_field_defaults``, ``_make``, ``_replace`` and
``_asdict``, declared the same way::

    class Attempt(Record):
        number: int
        source: str = "default"

Type checkers see ``typing.NamedTuple`` itself, so call sites are checked as before.

A field annotated ``Path`` or ``Optional[Path]`` may hold the path as text, given by ``path()``: it
reads as a ``pathlib.Path`` all the same. pathlib (with re, urllib.parse, ipaddress, fnmatch behind
it) is then imported when such a field is first read, after COMMAND has started.
"""

from __future__ import annotations

from _operator import itemgetter

__all__ = ["Record", "path", "path_text", "text"]

TYPE_CHECKING = False
if TYPE_CHECKING:
    from pathlib import Path
    from typing import Any, ClassVar, TypeVar

    R = TypeVar("R", bound="_Record")


_PATH_TYPES = ("Path", "Optional[Path]")  # as written (annotations are strings here)


def path(raw: str) -> Path:
    """The value of a record field annotated ``Path`` for the path ``raw``: kept as text (as
    ``str(Path(raw))`` gives it) until the field is read, which gives the ``Path``. Only for
    such fields: anywhere else it is a ``str``."""
    return path_text(raw)  # type: ignore[return-value]


def path_text(raw: str) -> str:
    """``str(pathlib.Path(raw))`` on POSIX, without pathlib: empty and ``.`` parts dropped, one
    or two leading slashes kept (three or more are one)."""
    stripped = raw.lstrip("/")
    slashes = len(raw) - len(stripped)
    root = "//" if slashes == 2 else "/" if slashes else ""
    return root + "/".join(p for p in stripped.split("/") if p and p != ".") or "."


def text(record: Any, field: str) -> Any:
    """The value of ``record``'s field ``field``, annotated ``Path`` or ``Optional[Path]``, as
    text (None stays None), without importing pathlib as reading the field would."""
    value = tuple.__getitem__(record, type(record)._fields.index(field))
    return value if value is None else str(value)


def _path_getter(index: int) -> Any:
    def read(record: tuple[Any, ...]) -> Any:
        value = record[index]
        if isinstance(value, str):
            from pathlib import Path

            return Path(value)
        return value

    return read


class _RecordType(type):
    """Makes each class body's annotated names its fields (read-only, by position)."""

    def __new__(mcs, name: str, bases: tuple[type, ...], namespace: dict[str, Any]) -> _RecordType:
        fields = tuple(f for f in namespace.get("__annotations__", {}) if not f.startswith("_"))
        if fields and any(isinstance(b, _RecordType) and getattr(b, "_fields", ()) for b in bases):
            raise TypeError(f"{name}: a record's fields are declared in one class")
        namespace.setdefault("__slots__", ())
        defaults = {f: namespace.pop(f) for f in fields if f in namespace}
        annotations = namespace.get("__annotations__", {})
        for i, field in enumerate(fields):
            read = _path_getter(i) if annotations[field] in _PATH_TYPES else itemgetter(i)
            namespace[field] = property(read, doc=f"field {i}: {field}")
        cls = super().__new__(mcs, name, bases, namespace)
        if fields:
            cls._fields = fields  # type: ignore[attr-defined]
            cls._field_defaults = defaults  # type: ignore[attr-defined]
        return cls


class _Record(tuple, metaclass=_RecordType):  # type: ignore[type-arg]
    __slots__ = ()
    _fields: ClassVar[tuple[str, ...]] = ()
    _field_defaults: ClassVar[dict[str, Any]] = {}

    def __new__(cls: type[R], *args: Any, **kwargs: Any) -> R:
        fields = cls._fields
        if len(args) > len(fields):
            raise TypeError(f"{cls.__name__}() takes {len(fields)} arguments, {len(args)} given")
        values = list(args)
        for field in fields[len(args) :]:
            if field in kwargs:
                values.append(kwargs.pop(field))
            elif field in cls._field_defaults:
                values.append(cls._field_defaults[field])
            else:
                raise TypeError(f"{cls.__name__}() missing argument {field!r}")
        if kwargs:
            raise TypeError(f"{cls.__name__}() got unexpected or repeated arguments {sorted(kwargs)}")
        return tuple.__new__(cls, values)

    @classmethod
    def _make(cls: type[R], iterable: Any) -> R:
        values = tuple(iterable)
        if len(values) != len(cls._fields):
            raise TypeError(f"{cls.__name__}: expected {len(cls._fields)} values, got {len(values)}")
        return tuple.__new__(cls, values)

    def _replace(self: R, **changes: Any) -> R:
        values = [changes.pop(f, v) for f, v in zip(self._fields, self)]
        if changes:
            raise ValueError(f"{type(self).__name__}: no fields {sorted(changes)}")
        return tuple.__new__(type(self), values)

    def _asdict(self) -> dict[str, Any]:
        return {f: getattr(self, f) for f in self._fields}

    def __getnewargs__(self) -> tuple[Any, ...]:
        return tuple(self)

    def __repr__(self) -> str:
        inner = ", ".join(f"{f}={getattr(self, f)!r}" for f in self._fields)
        return f"{type(self).__name__}({inner})"


if TYPE_CHECKING:
    from typing import NamedTuple as Record
else:
    Record = _Record
