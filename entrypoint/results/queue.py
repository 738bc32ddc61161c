"""Result files queued for upload after COMMAND exits, each archived in the spool within --spool-limit."""

from __future__ import annotations

import os

from ..formats.layout import KeyTooLong, NotSent, key_length_problem
from ..formats.manifest import Skipped
from ..records import text
from ..report import Reporter
from ..settings.step import Config
from ..spool.budget import SpoolBudget, worst_compressed
from ..store.payload import Payload
from ..transfer.uploader import Job, Uploader
from . import files as results

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Optional


class Queued:
    """A result file queued for upload, and its job (for offloading and provenance). (A plain
    class, as every record loaded after the spawn: a ``typing.NamedTuple`` costs ~0.1 ms to define.)"""

    __slots__ = ("directory", "job", "result", "step")

    def __init__(self, result: results.ResultFile, job: Job, directory: str, step: bool) -> None:
        self.result, self.job = result, job
        self.directory = directory  # the results directory it is in
        self.step = step  # a step result (--step-results-dir), stored under <step>/


TAR_SLACK = 8 * 1024  # tar header(s), padding and end blocks around a result's bytes


class ResultArchive:
    """Builds one result's ``.tgz`` in the spool within ``--spool-limit`` (``SpoolBudget.hold``),
    and deletes it once its upload is over (stored or not), so results never pile up on disk."""

    def __init__(
        self, result: results.ResultFile, path: str, mtime: Optional[float], budget: SpoolBudget
    ) -> None:
        self.result, self.path, self.mtime, self.budget = result, path, mtime, budget
        self.held = 0

    def build(self) -> Payload:
        try:
            size = os.stat(self.result.path).st_size
        except OSError:
            size = 0  # archive_result reports why it cannot be read
        self.held = worst_compressed(size + TAR_SLACK)
        self.budget.hold(self.held)
        try:
            payload = results.archive_result(self.result, self.path, self.mtime)
        except BaseException:
            self.done()
            raise
        self.budget.drop(self.held - payload.size)  # keep what the archive really takes
        self.held = payload.size
        return payload

    def done(self, _job: Optional[Job] = None) -> None:
        try:
            os.unlink(self.path)
        except FileNotFoundError:
            pass
        self.budget.drop(self.held)
        self.held = 0


def _refuse(problem: str, hint: bool = True) -> Callable[[], Payload]:
    def build() -> Payload:
        if not hint:
            raise NotSent(problem)
        raise KeyTooLong(f"{problem}; shorten the result's name or --key-prefix")

    return build


def submit_results(
    cfg: Config, uploader: Uploader, spool: str, reporter: Reporter, code: int, budget: SpoolBudget
) -> tuple[list[str], list[Skipped], list[Queued]]:
    """Queue each result file: the names queued, the ones not uploaded with the reason, and the
    queued files with their jobs (task results first, then step results)."""
    dirs: list[tuple[str, bool]] = [(text(cfg, "results_dir"), False)]  # text: no pathlib on the run path
    if cfg.step_results_dir is not None:
        dirs.append((text(cfg, "step_results_dir"), True))
    if code != 0 and cfg.skip_results_on_failure:
        names: list[str] = []
        for directory, _step in dirs:
            try:
                names += sorted(os.listdir(directory))
            except OSError:
                pass
        if names:
            reporter.info(f"COMMAND failed: {len(names)} result(s) not uploaded (--skip-results-on-failure)")
        return [], [Skipped(n, "COMMAND failed and --skip-results-on-failure is set") for n in names], []
    queued: list[Queued] = []
    not_uploaded: list[Skipped] = []
    reason = "not a regular file in the results directory, or an unusable name"
    for directory, step in dirs:
        try:
            found, skipped = results.scan(directory, reporter)
        except results.UnreadableResults as exc:  # a missing-result condition, listed in the manifest
            key = cfg.layout.step_result_key("*") if step else cfg.layout.result_key("*")
            problem = str(exc)
            uploader.submit(Job(key=key, build=_refuse(problem, hint=False), kind="results-dir"))
            continue
        for result in found:
            key = cfg.layout.step_result_key(result.name) if step else cfg.layout.result_key(result.name)
            archive = ResultArchive(
                result, os.path.join(spool, f"result-{len(queued):05d}.tgz"), cfg.archive_mtime, budget
            )
            too_long = key_length_problem(key)  # checked as found: never sent, reported missing
            job = uploader.submit(
                Job(
                    key=key,
                    build=archive.build if too_long is None else _refuse(too_long),
                    content_type="application/gzip",
                    on_done=archive.done,
                    kind="step-result" if step else "result",
                )
            )
            queued.append(Queued(result, job, directory, step))
        not_uploaded += [Skipped(f"{cfg.layout.step}/{n}" if step else n, reason) for n in skipped]
    return [q.result.name for q in queued if not q.step], not_uploaded, queued


