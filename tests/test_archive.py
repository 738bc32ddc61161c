"""archive: gzip members and one-member .tgz files, with ISA-L's deflate and with zlib's."""

from __future__ import annotations

import gzip
import importlib
import io
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import untar_single

from entrypoint.formats import archive


@pytest.fixture(params=["installed", "zlib"])
def backend(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """Each test runs with the compressor the wrapper picks here, and with the zlib fallback."""
    archive.deflate_module.cache_clear()
    if request.param == "zlib":
        real = importlib.import_module

        def no_isal(name: str, package: str | None = None):  # type: ignore[no-untyped-def]
            if name.startswith("isal"):
                raise ImportError(name)
            return real(name, package)

        monkeypatch.setattr(archive.importlib, "import_module", no_isal)
    yield archive.deflate_module()[1]
    archive.deflate_module.cache_clear()


def test_backend_is_the_module_in_use(backend: str, request: pytest.FixtureRequest) -> None:
    module, name, level = archive.deflate_module()
    assert module.__name__ == {"isal": "isal.isal_zlib", "zlib": "zlib"}[name]
    assert level == 1
    if request.node.callspec.params["backend"] == "zlib":
        assert name == "zlib"


def test_members_concatenate_into_one_tgz(backend: str, tmp_path: Path) -> None:
    text = os.urandom(300_000) + b"log line\n" * 100_000
    chunks = [text[:123_457], text[123_457:700_001], text[700_001:]]
    out = io.BytesIO()
    out.write(archive.gzip_member(archive.tar_header("main.log", len(text), 0)))
    for piece in chunks:
        path = tmp_path / "chunk"
        path.write_bytes(piece)
        fd = os.open(path, os.O_RDONLY)
        try:
            assert archive.gzip_file(fd, out) == len(piece)
        finally:
            os.close(fd)
    out.write(archive.gzip_member(archive.tar_trailer(len(text))))
    assert untar_single(out.getvalue()) == ("main.log", text)


def test_write_tgz_and_tgz_bytes_agree(backend: str, tmp_path: Path) -> None:
    data = b"result value\n" * 50_000
    src = tmp_path / "r"
    src.write_bytes(data)
    out = io.BytesIO()
    fd = os.open(src, os.O_RDONLY)
    try:
        archive.write_tgz(fd, "r", len(data), 0, out)
    finally:
        os.close(fd)
    assert untar_single(out.getvalue()) == ("r", data)
    assert gzip.decompress(out.getvalue()) == gzip.decompress(archive.tgz_bytes("r", data, 0))


def _tarfile_header(name: str, size: int, mtime: float, mode: int = 0o644) -> bytes:
    import tarfile

    info = tarfile.TarInfo(name)
    info.size, info.mtime, info.mode = size, int(mtime), mode
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    info.type = tarfile.REGTYPE
    return info.tobuf(tarfile.PAX_FORMAT, encoding="utf-8", errors="surrogateescape")


@pytest.mark.parametrize(
    ("name", "size", "mtime", "mode"),
    [
        ("main.log", 0, 0, 0o644),
        ("main.log", 123_456, 1_700_000_000.9, 0o644),
        ("step-with-a-long-name.log", 8**11 - 1, 8**11 - 1, 0o644),
        ("n" * 100, 1, 1, 0o644),  # the longest name a ustar block holds
        ("n" * 101, 1, 1, 0o644),  # PAX
        ("été.log", 1, 1, 0o644),  # PAX
        ("main.log", 8**11, 1, 0o644),  # 8 GiB: PAX
        ("main.log", 1, 8**11, 0o644),  # PAX
        ("main.log", 1, -1, 0o644),  # PAX
        ("main.log", 1, 1, 0o100755),
    ],
)
def test_tar_header_is_byte_for_byte_tarfiles(name: str, size: int, mtime: float, mode: int) -> None:
    """Built without tarfile where one ustar block holds it; the same bytes tarfile writes."""
    assert archive.tar_header(name, size, mtime, mode) == _tarfile_header(name, size, mtime, mode)
