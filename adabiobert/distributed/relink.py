"""Re-linking on Ray (``jobs/relink.py --workers N``): the linking fans out, the commits do not.

The run itself (recovery, which shards to re-link, the commits, the summary) is
:func:`adabiobert.annotation.relink.relink_output`; this module only hands it a ``compute`` that
runs each shard's :func:`~adabiobert.annotation.relink.link_or_error` as one plain Ray task,
``workers`` at once (distributed.task_pool). A task reads the shard's committed entity file and
its text and returns the re-linked entity table; the driver commits each as it arrives, the
output's only writer, and the store refuses a table computed from rows that changed meanwhile.

A task gets the index's artifact and threshold, never a linker: each worker process opens the
index once (:func:`_worker_linker`, memory-mapped, one copy per node: ``linking.artifact``) and
keeps it for the tasks that follow.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable, Iterator

import ray

from adabiobert.annotation.commit import Hook
from adabiobert.annotation.relink import (
    LinkResult,
    Linking,
    LinkWork,
    RelinkSummary,
    link_or_error,
    relink_output,
)
from adabiobert.distributed.session import init_ray, worker_runtime_env
from adabiobert.distributed.task_pool import pooled
from adabiobert.errors import ConfigError, RelinkError
from adabiobert.linking.artifact import IndexArtifact, open_linker
from adabiobert.linking.linker import Linker

TASK_RETRIES = 2
"""Times a shard's task is started again after its worker died: it only reads, so running it
again is harmless; one that keeps dying leaves its shard as it was (``shards_failed``)."""


def relink_on_ray(output: str, linking: Linking, run_id: str, workers: int, shards: str | None = None,
                  hook: Hook | None = None, log: Callable[[str], None] = lambda line: None) -> RelinkSummary:
    """:func:`~adabiobert.annotation.relink.relink_output` with its shards linked on Ray
    ($RAY_ADDRESS, else a local Ray), ``workers`` tasks at once.

    Raises:
        ConfigError: fewer than 2 workers.
        InputNotFoundError: as ``relink_output``, before Ray starts.
    """
    if workers < 2:
        raise ConfigError(f"workers must be >= 2 for a Ray run, got {workers}; use annotation.relink.relink_output")
    return relink_output(output, linking, run_id, shards, hook, log,
                         compute=functools.partial(link_on_ray, workers=workers))


def link_on_ray(work: Iterable[LinkWork], linking: Linking, workers: int) -> Iterator[tuple[LinkWork, LinkResult]]:
    """``ComputeLinks`` on Ray: each item's table, as its task finishes, at most ``workers``
    unfinished. Ray starts only when there is work. A task whose worker died ``TASK_RETRIES + 1``
    times is a :class:`RelinkError`; an exception raised in a task (a bug, an outage) fails the run."""
    work = list(work)
    if not work:
        return
    init_ray()
    task = _link_task.options(max_retries=TASK_RETRIES, runtime_env=worker_runtime_env())
    artifact, threshold = linking.artifact, linking.threshold
    for item, ref in pooled(work, lambda item: task.remote(item, artifact, threshold), workers):
        try:
            result = ray.get(ref)
        except ray.exceptions.RayTaskError:  # raised by the linking itself, not a lost worker
            raise
        except ray.exceptions.RayError as error:
            said = (str(error).strip().splitlines() or [""])[0][:200]
            result = RelinkError(f"the task linking it died {TASK_RETRIES + 1} times ({type(error).__name__}: {said})")
        yield item, result


@ray.remote(num_cpus=1, retry_exceptions=False)
def _link_task(work: LinkWork, artifact: IndexArtifact | None, threshold: float | None) -> LinkResult:
    """Ray task: one shard's re-linked entity table (or the RelinkError that says why not)."""
    if artifact is None:
        return link_or_error(work, Linking())
    linker = _worker_linker(artifact.uri, artifact.index_hash, threshold)
    return link_or_error(work, Linking(linker, artifact, threshold))


@functools.lru_cache(maxsize=2)
def _worker_linker(uri: str, index_hash: str, threshold: float) -> Linker:
    """The index opened once per worker process and kept for its next tasks (keyed by the index
    and threshold: a worker serves one run, whose index does not change)."""
    return open_linker(uri, index_hash, threshold)
