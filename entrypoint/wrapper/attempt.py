"""The store as the second signal of the attempt: earlier attempts' objects of the same step.

Inside a Tekton step whose hostname is not a Tekton pod name (``hostNetwork: true`` gives the
node's), the pod name cannot say whether this is a retry. A TaskRun's names are its own, so a
summary, manifest or log archive of this step already in the store was written by an earlier
attempt: this is the one after the latest of them. Asked once, before COMMAND starts, without
retries (the store's connect and read timeouts bound it); a failure keeps attempt 1, with a warning.
"""

from __future__ import annotations

from collections.abc import Iterable

from ..formats.layout import Layout, step_object_of
from ..report import Reporter
from ..settings.podinfo import Attempt
from ..settings.step import Config
from ..store import StoreError, open_store


def latest_stored(keys: Iterable[str], layout: Layout) -> int:
    """The latest attempt of ``layout``'s step among ``keys`` (0 when there is none)."""
    latest = 0
    for key in keys:
        if not key.startswith(layout.task_prefix):
            continue
        found = step_object_of(key[len(layout.task_prefix) :])
        if found is not None and found[0] == layout.step:
            latest = max(latest, found[1])
    return latest


def settle_attempt(cfg: Config, reporter: Reporter) -> Config:
    """``cfg`` with the attempt the store shows, when the pod name said nothing (``ask_store``)."""
    if not cfg.attempt.ask_store:
        return cfg
    layout = cfg.layout
    try:
        keys = open_store(cfg.store, warn=reporter.warn).list(f"{layout.task_prefix}{layout.step}-")
    except (StoreError, OSError) as exc:
        reporter.warn(f"--attempt auto: could not look for earlier attempts in the store ({exc}); attempt 1")
        return cfg._replace(attempt=Attempt(1, "default"))
    latest = latest_stored(keys, layout)
    if latest == 0:
        return cfg._replace(attempt=Attempt(1, "store"))
    number = latest + 1
    reporter.info(f"step {layout.step!r} has stored attempt {latest} already: this is attempt {number}")
    moved = Layout(layout.prefix, layout.pipelinerun, layout.pipelinetask, layout.step, number)
    return cfg._replace(layout=moved, attempt=Attempt(number, "store"))
