"""``ObjectStoreHandler``: a ``logging.Handler`` that stores formatted records through a ``Logger``.

``logging.getLogger().addHandler(ObjectStoreHandler(config))`` is all a user writes: each record
is formatted (the handler's formatter is respected), encoded and appended to the Logger, which
uploads in the background. ``logging.shutdown()`` (run at interpreter exit) flushes and closes
it. ``JsonFormatter`` gives one JSON object per line.
"""

from __future__ import annotations

import datetime
import json
import logging
from typing import Any, Optional, Union

from .config import ObjectStoreConfig
from .errors import ObjectStoreError
from .logger import Logger, Size
from .stores import ScrubbingReporter
from .textstream import Seconds


class ObjectStoreHandler(logging.Handler):
    """Formats each record as one line and appends it to a ``Logger``.

    Give a config (default: ``ObjectStoreConfig.from_env()``) and the handler creates and owns
    its Logger (``close()`` closes it), or give a ``Logger`` you manage yourself. ``flush()``
    waits until the records so far are stored. Storage problems never raise from ``emit``;
    they are reported on stderr, one line each.
    """

    def __init__(
        self,
        config: Union[ObjectStoreConfig, Logger, None] = None,
        *,
        level: Union[int, str] = logging.NOTSET,
        prefix: Optional[str] = None,
        max_size: Optional[Size] = None,
        flush_interval: Optional[Seconds] = None,
        flush_timeout: Optional[Seconds] = None,
        encoding: str = "utf-8",
        terminator: str = "\n",
    ) -> None:
        # The Logger first: logging.Handler.__init__ registers the handler for logging.shutdown()
        # at exit, which must not find it half-built when the config is refused.
        if isinstance(config, Logger):
            logger, owns = config, False
        else:
            logger = Logger(
                config if config is not None else ObjectStoreConfig.from_env(),
                max_size=max_size,
                flush_interval=flush_interval,
                prefix=prefix,
                flush_timeout=flush_timeout,
                close_at_exit=False,  # logging.shutdown() closes the handler, after every other hook
            )
            owns = True
        try:
            super().__init__(level)
        except BaseException:
            if owns:
                logger.close()
            raise
        self.logger = logger
        self.owns_logger = owns
        self.encoding = encoding
        self.terminator = terminator

    def __repr__(self) -> str:
        return f"<ObjectStoreHandler {self.logger.prefix} ({logging.getLevelName(self.level)})>"

    def emit(self, record: logging.LogRecord) -> None:
        try:
            data = (self.format(record) + self.terminator).encode(self.encoding, "backslashreplace")
            self.logger.write(data)
        except ValueError:
            if not self.logger.closed:  # records after close (late atexit hooks) are dropped
                self.handleError(record)
        except RecursionError:
            raise
        except Exception:
            self.handleError(record)

    def flush(self) -> None:
        """Wait until every record emitted so far is stored (up to the Logger's flush_timeout)."""
        try:
            self.logger.flush()
        except ObjectStoreError as exc:
            self._report(exc)

    def close(self) -> None:
        try:
            if self.owns_logger:
                self.logger.close()
        except ObjectStoreError as exc:
            self._report(exc)
        finally:
            super().close()

    def _report(self, exc: ObjectStoreError) -> None:
        ScrubbingReporter(self.logger.config or ObjectStoreConfig()).error(f"log handler: {exc}")


class JsonFormatter(logging.Formatter):
    """One JSON object per record: time (UTC, ISO 8601), level, logger, message, and the
    ``extra`` fields given in ``fields``; ``exc_info`` and ``stack_info`` when present."""

    def __init__(self, fields: tuple[str, ...] = ()) -> None:
        super().__init__()
        self.fields = fields

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.datetime.fromtimestamp(record.created, datetime.timezone.utc).isoformat(),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for name in self.fields:
            if hasattr(record, name):
                entry[name] = getattr(record, name)
        if record.exc_info:
            entry["exc_info"] = self.formatException(record.exc_info)
        if record.stack_info:
            entry["stack_info"] = self.formatStack(record.stack_info)
        return json.dumps(entry, ensure_ascii=False, default=str)
