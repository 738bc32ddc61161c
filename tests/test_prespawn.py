"""What the start-up path does without typing, re, pathlib, urllib.parse and ipaddress (issue 16).

The checks that run before COMMAND starts are plain string tests, and the records are
``entrypoint.records.Record``: here each is held against what it replaces, on inputs built to
reach every branch (the same inputs, the same answers).
"""

from __future__ import annotations

import ipaddress
import itertools
import pickle
import random
import re
import threading
from pathlib import Path
from typing import NamedTuple, Optional

import pytest

from entrypoint import threads
from entrypoint.formats.layout import attempt_problem
from entrypoint.records import Record, path, path_text
from entrypoint.settings import podinfo, store
from entrypoint.settings.store import ConfigError
from entrypoint.units import parse_duration, parse_size


class Point(Record):
    x: int
    y: str = "d"
    where: Optional[Path] = None

    def twice(self) -> int:
        return 2 * self.x


class OldPoint(NamedTuple):
    x: int
    y: str = "d"
    where: Optional[Path] = None


def test_a_record_behaves_as_a_named_tuple() -> None:
    p, q = Point(1), OldPoint(1)
    assert Point._fields == OldPoint._fields and Point._field_defaults == OldPoint._field_defaults
    assert p == q == (1, "d", None) and tuple(p) == tuple(q) and hash(p) == hash(q)
    assert repr(p) == repr(q).replace("OldPoint", "Point")
    assert p._replace(y="e") == q._replace(y="e") and p._asdict() == q._asdict()
    assert Point._make([2, "f", None]) == (2, "f", None) and p.twice() == 2
    assert Point(x=3, y="g").y == "g" and isinstance(p, tuple)
    assert pickle.loads(pickle.dumps(Point(4, "h"))) == Point(4, "h")
    with pytest.raises(AttributeError):
        p.x = 2  # type: ignore[misc]
    with pytest.raises(AttributeError):
        p.other = 2  # type: ignore[attr-defined]
    for bad in (lambda: Point(), lambda: Point(1, "a", None, 4), lambda: Point(1, z=2)):
        with pytest.raises(TypeError):
            bad()  # type: ignore[no-untyped-call]
    with pytest.raises(ValueError):
        p._replace(z=1)


def test_a_path_field_holds_text_and_reads_as_a_path() -> None:
    p = Point(1, where=path("a//b/./c/"))
    assert tuple.__getitem__(p, 2) == "a/b/c"  # what it holds until read
    assert p.where == Path("a/b/c") and isinstance(p.where, Path)
    assert p._asdict()["where"] == Path("a/b/c") and "PosixPath('a/b/c')" in repr(p)
    assert Point(1, where=Path("/x")).where == Path("/x") and Point(1).where is None


def test_path_text_is_the_text_of_a_path() -> None:
    for parts in itertools.product(["", "/", "//", "///"], ["", ".", "..", "a"], ["", "/", "//"], ["", ".", "b"]):
        raw = "".join(parts)
        assert path_text(raw) == str(Path(raw)), raw


def test_threads_start_gives_a_handle_to_join() -> None:
    release = threading.Event()
    ran: list[str] = []
    handle = threads.start(lambda: (release.wait(), ran.append("done")), "handle-test")
    assert handle.name == "handle-test" and isinstance(handle.ident, int)
    handle.join(0.01)
    assert handle.is_alive() and ran == []
    release.set()
    handle.join()
    assert not handle.is_alive() and ran == ["done"]


def _strings(alphabet: list[str], count: int, longest: int, seed: int) -> list[str]:
    rng = random.Random(seed)
    return ["".join(rng.choice(alphabet) for _ in range(rng.randint(0, longest))) for _ in range(count)]


def test_sizes_and_durations_parse_as_the_pattern_they_replace() -> None:
    number = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([a-zA-Z]*)\s*$")
    alphabet = list("0123456789.. \t\n\u00a0kKmMiIbBgGsShHe+-\u0663\u00b2")
    for text in _strings(alphabet, 20000, 8, 16):
        match = number.match(text)
        for parse, units in ((parse_size, "b k kb m mb g gb kib mib gib tib"), (parse_duration, "ms s m h")):
            accepted = match is not None and match[2].lower() in ["", *units.split()]
            try:
                parse(text)
                assert accepted, text
            except ValueError:
                assert not accepted, text


def _endpoint_or_error(parse: object, url: str) -> object:
    try:
        return parse(url)  # type: ignore[operator]
    except ConfigError as exc:
        return str(exc)


def test_plain_endpoints_are_read_as_urllib_reads_them() -> None:
    pieces = ["http", "https", "file", "HTTP", "://", "/", "//", "localhost", "LOCALHOST", "host", "a.b-c", ":",
              "9000", "65535", "65536", "0080", "@", "u:p@", "?", "#", "%20", "%2f", "[::1]", " ", "\n", "é", "."]  # fmt: skip
    urls = ["http://minio:9000", "https://s3.example.com/", "file:///tmp/store", "file://localhost/a//b/"]
    for text in [*urls, *_strings(pieces, 20000, 6, 17)]:
        for prefix in ("", "http://", "https://", "file://", "file:///"):
            url = prefix + text
            assert _endpoint_or_error(store._endpoint_of, url) == _endpoint_or_error(store._endpoint_by_urllib, url)


def test_bucket_and_region_checks_are_the_patterns_they_replace() -> None:
    bucket = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")
    region = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$")
    rng = random.Random(18)
    texts = _strings(list("aZ09._-\n \u0663"), 20000, 6, 18)
    texts += ["".join(rng.choice("a0.-_") for _ in range(n)) for n in (61, 62, 63, 64, 65) for _ in range(50)]
    for text in texts:
        ends = text[:-1] if text.endswith("\n") else text
        assert (len(ends) >= 3 and store._matches(text, store._LOWER_ALNUM, store._BUCKET_CHARS, store._LOWER_ALNUM, 63)) == bool(bucket.match(text)), text
        assert store._matches(text, store._ALNUM, store._REGION_CHARS, store._REGION_CHARS, 63) == bool(region.match(text)), text


def test_the_ip_address_test_is_ipaddress_s() -> None:
    plain = ["1.2.3.4", "255.255.255.255", "01.2.3.4", "256.1.1.1", "0.0.0.0"]
    for text in [*_strings(list("0123456789..\n a\u0663"), 30000, 16, 19), *plain]:
        try:
            ipaddress.IPv4Address(text)
            expected = True
        except ValueError:
            expected = False
        assert store._is_ipv4(text) == expected, text


def test_name_suffixes_are_the_patterns_they_replace() -> None:
    retry = re.compile(r"-retry([0-9]{1,5})$")
    attempt = re.compile(r"-attempt-[0-9]+$")
    for text in _strings(["-retry", "-attempt-", "-pod", "1", "0", "\n", "x", "\u0663", "-"], 20000, 8, 20):
        found = retry.search(text)
        assert podinfo._retry_of(text) == (int(found[1]) if found else None), text
        assert (attempt_problem(text) is not None) == bool(attempt.search(text)), text
