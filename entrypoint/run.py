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

from . import exitcodes, results
from .capture import Chunk, LogArchiver, LogCapture
from .config import Config
from .payload import Payload
from .report import Reporter
from .store import Store, open_store
from .supervisor import SpawnError, Supervisor
from .uploader import Job, Uploader

StoreFactory = Callable[[], Store]


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
        self.store_factory = store_factory or (lambda: open_store(cfg.store))
        self.spool = self._make_spool()
        (self.spool / "chunks").mkdir()
        self.uploader = Uploader(self.store_factory, reporter, clock=clock)
        self.archiver = LogArchiver(self.spool, f"{cfg.layout.step}.log")
        self.capture = LogCapture(
            self.spool / "chunks", cfg.log_chunk_size, cfg.log_flush_interval, self._sealed, clock
        )
        self.supervisor = Supervisor(cfg.command, self.capture, reporter, clock)

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
            ),
            ordered=True,
        )

    def execute(self) -> int:
        try:
            return self._execute()
        finally:
            shutil.rmtree(self.spool, ignore_errors=True)

    def _execute(self) -> int:
        cfg = self.cfg
        sup = self.supervisor
        sup.install_signals()
        try:
            sup.spawn()
        except SpawnError as exc:
            sup.restore_signals()
            self.reporter.error(str(exc))
            return exc.code
        self.uploader.start()  # after the spawn: the S3 client is imported in the background
        if cfg.embedded_default:
            self.reporter.info(f"no --endpoint set: storing objects in {cfg.store.describe()}")
        code = sup.run()
        finished = time.time()

        found, skipped = results.scan(cfg.results_dir, self.reporter)
        jobs = [
            self.uploader.submit(
                Job(
                    key=cfg.layout.result_key(result.name),
                    build=lambda r=result, i=i: results.archive_result(r, self.spool, i),  # type: ignore[misc]
                    content_type="application/gzip",
                )
            )
            for i, result in enumerate(found)
        ]
        self.capture.close()
        total = self.capture.total
        jobs.append(
            self.uploader.submit(
                Job(
                    key=cfg.layout.log_archive_key(),
                    build=lambda: self.archiver.finish(total, finished),
                    content_type="application/gzip",
                )
            )
        )
        missing = self.uploader.close(self.clock() + cfg.flush_timeout)
        sup.restore_signals()
        for job in missing:
            self.reporter.error(f"not stored: {job.key} ({job.error or 'still uploading at the deadline'})")
        if skipped:
            self.reporter.warn(f"{len(skipped)} result(s) skipped: {', '.join(map(repr, skipped))}")
        if missing and code == 0:
            self.reporter.error(f"{len(missing)} object(s) missing; exiting with {exitcodes.UPLOAD_FAILED}")
            return exitcodes.UPLOAD_FAILED
        return code
