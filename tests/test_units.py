import pytest

from entrypoint.units import parse_duration, parse_size


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("0", 0),
        ("123", 123),
        ("512KiB", 512 * 1024),
        ("8MiB", 8 * 1024**2),
        ("1GiB", 1024**3),
        ("1.5MiB", int(1.5 * 1024**2)),
        ("10MB", 10_000_000),
        ("4k", 4000),
        (" 2 mib ", 2 * 1024**2),
    ],
)
def test_parse_size(text: str, expected: int) -> None:
    assert parse_size(text) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [("500ms", 0.5), ("5s", 5.0), ("2m", 120.0), ("1h", 3600.0), ("7", 7.0), ("0.25", 0.25)],
)
def test_parse_duration(text: str, expected: float) -> None:
    assert parse_duration(text) == pytest.approx(expected)


@pytest.mark.parametrize("text", ["", "abc", "-1", "5 parsecs", "1.2.3", "MiB"])
def test_bad_sizes_and_durations(text: str) -> None:
    with pytest.raises(ValueError, match="not a size"):
        parse_size(text)
    with pytest.raises(ValueError, match="not a duration"):
        parse_duration(text)
