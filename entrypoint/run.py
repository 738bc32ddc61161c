"""One run of the wrapper, wired in the direction the data flows:

config -> supervisor (spawn, signals, reaping) -> capture (pump, rolling buffer, spool)
-> uploader (queue, retries) -> store (S3 or a local directory). Results feed the same uploader.
"""

from __future__ import annotations

import shutil
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from . import exitcodes
from .capture import Chunk, LogArchiver, LogCapture, SpoolBudget
from .config import Config
from .flush import FinalFlush, Outcome
from .payload import Payload
from .report import Reporter
from .store import Store, open_store
from .supervisor import SpawnError, Supervisor
from .uploader import Job, Uploader

StoreFactory = Callable[[], Store]
PREFLIGHT_TIMEOUT = 30.0  # --preflight strict: how long transient errors are retried


class Run:
    def __init__(
        self,
        cfg: Config,
        reporter: Reporter,
        store_factory: StoreFactory | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.cfg = cfg
        self.reporter = reporter
        self.clock = clock
        self.store_factory = store_factory or (lambda: open_store(cfg.store, warn=reporter.warn))
        self.spool = self._make_spool()
        (self.spool / "chunks").mkdir()
        self.uploader = Uploader(self.store_factory, reporter, clock=clock)
        self.budget = SpoolBudget(cfg.spool_limit)
        self.archiver = LogArchiver(self.spool, f"{cfg.layout.step}.log", self.budget)
        self.capture = LogCapture(
            self.spool / "chunks",
            cfg.log_chunk_size,
            cfg.log_flush_interval,
            self._sealed,
            clock,
            budget=self.budget,
            backlog=self.uploader.backlog,
            on_pause=reporter.warn,
        )
        self.supervisor = Supervisor(cfg.command, self.capture, reporter, clock)
        self.flush = FinalFlush(cfg, reporter, self.uploader, self.capture, self.archiver, self.spool, clock)
        self.outcome: Outcome | None = None

    def _make_spool(self) -> Path:
        parent = self.cfg.spool_dir
        if parent is not None:
            parent.mkdir(parents=True, exist_ok=True)
        return Path(tempfile.mkdtemp(prefix="tekton-uploader-", dir=parent))

    def _sealed(self, chunk: Chunk) -> None:
        self.archiver.add(chunk)
        self.uploader.submit(
            Job(
                key=self.cfg.layout.chunk_key(chunk.seq),
                build=lambda: Payload((chunk.path,), chunk.size),
                content_type="text/plain; charset=utf-8",
                on_done=lambda _job: chunk.release(),
                kind="log-chunk",
            ),
            ordered=True,
        )

    def execute(self) -> int:
        try:
            return self._execute()
        finally:
            shutil.rmtree(self.spool, ignore_errors=True)

    def _preflight_strict(self) -> bool:
        """--preflight strict: check the bucket before starting COMMAND; False to stop."""
        error = self.uploader.preflight_strict(self.cfg.layout.task_prefix, PREFLIGHT_TIMEOUT)
        if error is None:
            return True
        self.reporter.error(f"preflight: {error}; COMMAND not started (--preflight strict)")
        return False

    def _execute(self) -> int:
        cfg = self.cfg
        sup = self.supervisor
        if cfg.preflight == "strict" and not self._preflight_strict():
            return exitcodes.USAGE
        sup.install_signals()
        try:
            sup.spawn()
        except SpawnError as exc:
            sup.restore_signals()
            self.reporter.error(str(exc))
            return exc.code
        # after the spawn: the S3 client is imported in the background
        self.uploader.start(cfg.preflight, cfg.layout.task_prefix)
        if cfg.embedded_default:
            self.reporter.info(f"no --endpoint set: storing objects in {cfg.store.describe()}")
        code = sup.run()
        finished = time.time()
        self.outcome = self.flush.run(code, finished)
        sup.restore_signals()
        return self.outcome.exit_code
