"""The reader's own messages on stderr: the wrapper's ``Reporter`` (one line each, secrets
redacted) with the reader's prefix. Progress is separate (progress.py)."""

from __future__ import annotations

from typing import TextIO

from ..report import Reporter

PREFIX = "tekton-uploader-read: "


class Console(Reporter):
    def __init__(self, stream: TextIO | None = None) -> None:
        super().__init__(prefix=PREFIX, stream=stream)
