"""One run of the wrapper, wired in the direction the data flows.

COMMAND is already running (``cli.py`` spawns it before this module is imported):
supervisor (pump, signals, reaping) -> capture (chunks in the spool) -> uploader (queue,
retries) -> store (S3 or a local directory). When COMMAND has exited, ``final_flush.py`` stores
the results, the log archive, the summary and the manifest, and computes the exit code.
"""

from __future__ import annotations

import os
import time

from .. import threads
from ..formats import live
from ..formats.archive import deflate_module
from ..report import Reporter
from ..settings.step import Config
from ..settings.tekton import WAIT_AFTER, TektonDeadline
from ..spool.archiver import LogArchiver
from ..spool.budget import SpoolBudget
from ..spool.capture import LogCapture
from ..spool.chunk import Chunk
from ..spool.directory import make_spool_dir, remove_spool
from ..store import Store, open_store
from ..store.payload import Payload
from ..transfer.uploader import Job, Uploader
from .cgroup import Cgroup, Memory
from .final_flush import Ended, FinalFlush
from .pressure import MemoryWatch
from .summary import TreeSampler
from .supervisor import Supervisor

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Sequence
    from typing import Any, Optional

PREFLIGHT_TIMEOUT = 30.0  # --preflight strict: how long transient errors are retried


def store_factory(cfg: Config, reporter: Reporter) -> Callable[[], Store]:
    return lambda: open_store(cfg.store, warn=reporter.warn)


def preflight_strict(cfg: Config, reporter: Reporter) -> bool:
    """--preflight strict: check the bucket before COMMAND starts; False to stop."""
    uploader = Uploader(store_factory(cfg, reporter), reporter)
    error = uploader.preflight_strict(cfg.layout.task_prefix, PREFLIGHT_TIMEOUT)
    if error is None:
        return True
    reporter.error(f"preflight: {error}; COMMAND not started (--preflight strict)")
    return False


def warm_up() -> None:
    """Load what the final flush needs (the deflate module) while COMMAND runs, not after."""
    deflate_module()


class Run:
    def __init__(
        self,
        cfg: Config,
        reporter: Reporter,
        supervisor: Supervisor,
        inputs: Sequence[dict[str, Any]] = (),
        tekton: Optional[TektonDeadline] = None,
        memory: tuple[Optional[Cgroup], Optional[Memory]] = (None, None),
        spool: str | None = None,
    ) -> None:
        assert supervisor.pid, "COMMAND is spawned before the run is wired"
        self.cfg = cfg
        self.memory = memory  # the memory cgroup and its reading before COMMAND started
        self.reporter = reporter
        self.supervisor = supervisor
        clock = supervisor.clock
        self.spool = spool if spool is not None else make_spool_dir(cfg.spool_dir)  # cli.py makes it first
        self.budget = SpoolBudget(cfg.spool_limit)
        self.capture = LogCapture(
            os.path.join(self.spool, "chunks"),
            cfg.log_chunk_size,
            cfg.log_flush_interval,
            self._sealed,
            clock,
            budget=self.budget,
            backlog=lambda: self.uploader.backlog(),
            on_pause=reporter.warn,
            heartbeat=live.heartbeat(cfg.log_flush_interval),
        )
        supervisor.sink = self.capture
        self.uploader = Uploader(store_factory(cfg, reporter), reporter, clock=clock, notify=supervisor.wake)
        self.archiver = LogArchiver(self.spool, f"{cfg.layout.step}.log", self.budget)
        self.flush = FinalFlush(
            cfg, reporter, self.uploader, self.capture, self.archiver, self.budget, self.spool,
            supervisor, clock, inputs, tekton,
        )  # fmt: skip

    def _sealed(self, chunk: Chunk) -> None:
        """A chunk goes to the archive and up, promising the next object within a heartbeat (the
        last: within the final flush). An empty one (a heartbeat) is not archived: no bytes."""
        cfg = self.cfg
        within = cfg.flush_timeout if chunk.last else live.heartbeat(cfg.log_flush_interval)
        if chunk.size:
            self.archiver.add(chunk)
        self.uploader.submit(
            Job(
                key=cfg.layout.chunk_key(chunk.seq),
                # raw file, or its member once archived
                build=(lambda: Payload((chunk,), chunk.size)) if chunk.size else (lambda: Payload.of(b"")),
                content_type="text/plain; charset=utf-8",
                on_done=(lambda _job: chunk.done(uploaded=True)) if chunk.size else None,
                kind="log-chunk",
                metadata=live.promise(within),
            ),
            ordered=True,
        )

    def execute(self) -> int:
        """Supervise COMMAND to its end, then the final flush; the wrapper's exit code."""
        cfg, sup = self.cfg, self.supervisor
        try:
            started_wall = time.time() - (sup.clock() - sup.started_at)  # COMMAND's spawn, in wall time
            # after the spawn: the S3 client is imported (and the bucket checked) in the background;
            # a local directory is checked right here when COMMAND is gone already
            local, gone = cfg.store.endpoint is None, sup.status is not None
            self.uploader.start(
                cfg.preflight,
                cfg.layout.task_prefix,
                warm_up=not local,
                here=local and gone,
                ordered_lane=not gone,  # not started by the first chunk, on the pump's thread
            )
            watch = MemoryWatch(
                *self.memory,
                self.capture,
                cfg.fast_flush_at,
                self.reporter,
                terminated=lambda: sup.terminated_at is not None,
                wake=sup.wake,
            )
            sampler = TreeSampler(sup.pid, on_tick=watch.tick)
            if not gone:
                sampler.start()
                self.archiver.start()
                threads.start(warm_up, "warm-up", background=True)
            else:  # COMMAND is gone already: no thread for what only matters while it runs
                watch.tick()  # the sampler's first look, all the same
            if cfg.embedded_default:
                self.reporter.info(f"no --endpoint set: storing objects in {cfg.store.describe()}")
            code = sup.run()
            finished_wall = time.time()
            threads.hurry()  # COMMAND is gone: the background threads need not give way any more
            assert sup.status is not None
            ended = Ended(
                code,
                sup.status,
                sup.timed_out,
                sup.signals_received,
                started_wall,
                finished_wall,
                sampler.stop(),
                watch,
                terminated=sup.terminated_at is not None,
            )
            final = self.flush.run(ended)
            sup.finish()  # the leftovers' grace ran during the flush
        finally:
            remove_spool(self.spool)
        if self.flush.stopped_for_tekton:
            self._await_tekton_kill()
        return final

    def _await_tekton_kill(self) -> None:
        """Everything is stored: let Tekton's entrypoint end the step at its timeout, as it would
        without the wrapper, so the step reads TimeoutExceeded (exit 124 if the SIGKILL does not come)."""
        tekton = self.flush.tekton
        assert tekton is not None
        self.reporter.info(f"waiting for the Tekton step timeout ({tekton.step_timeout:g}s) to end the step")
        remaining = tekton.ends_at + WAIT_AFTER - self.supervisor.clock()
        if remaining > 0:
            time.sleep(remaining)

