"""Ingest PMC files on Ray: the same shards, rejects and stats as one process, sooner.

    find the inputs, split them into units (adabiobert.pmc.ingest_units.plan_units: a package each,
    loose files 64 at a time)
      -> _unit_task per unit (1 CPU, max_retries=unit_retries), at most `workers` at once:
             streams the unit's members, stages its articles as Arrow files under
             <output>/_staging; a unit whose task died unit_retries + 1 times becomes one reject
             per file of it
      -> the driver gathers every unit's candidates: duplicates and shard boundaries as one
         process would decide them (plan_shards)
      -> _shard_task per shard (1 CPU), at most `workers` at once: reads its shard's staged rows
         and writes part-<k>.parquet
      -> the driver writes rejects.parquet and ingest_stats.json, deletes _staging

Why plain Ray tasks and not Ray Data: the input is a short list of units, not a dataset, and
Ray Data retries a map task whose worker died without limit, so a package that kills its worker
(memory) would be parsed again forever. Its map therefore used to only wait (0 CPUs) on a Ray
task per unit, whose retries are bounded. That cost twice the worker processes (Ray keeps as
many idle as there are CPUs, so each run started the others again and imported ray.data in
them), two scheduling hops per unit and the streaming executor's CPU in the driver: 14.0 CPU
seconds where one process takes 10.0 (8 packages of 500 articles, 2 CPUs), against 11.6 for the
pool of plain tasks here (ray.wait in the driver), which bounds each task's retries itself.

A run whose plan has one unit runs in this process (:func:`adabiobert.pmc.ingest.ingest`): Ray's
start-up would buy nothing.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import ray

from adabiobert import storage
from adabiobert.distributed.session import init_ray, worker_runtime_env
from adabiobert.distributed.task_pool import pooled
from adabiobert.errors import ConfigError
from adabiobert.job_configs import IngestConfig
from adabiobert.output_lease import OutputLease
from adabiobert.pmc.ingest import (
    IngestStats,
    Reject,
    find_run_inputs,
    ingest,
    open_batch,
    root_lease,
    start_batch,
    write_run_summary,
)
from adabiobert.pmc.ingest_units import (
    FILES_PER_UNIT,
    STAGING,
    ShardPlan,
    Unit,
    UnitResult,
    ingest_unit,
    plan_shards,
    plan_units,
    write_planned_shard,
)
from adabiobert.progress import Progress

UnitHook = Callable[[Unit], None]
"""``hook(unit)``, called in a unit's task before it ingests the unit: the fault tests pass one
that kills the worker. It travels to the workers, so it must pickle."""


SHARD_RETRIES = 3
"""Times a shard's task is started again after its worker died (Ray's default for a task):
writing a shard again is harmless, and one that keeps dying fails the run."""


def ingest_parallel(config: IngestConfig, workers: int, files_per_unit: int = FILES_PER_UNIT,
                    unit_retries: int = 2, unit_hook: UnitHook | None = None,
                    log: Callable[[str], None] | None = None) -> IngestStats:
    """Ingest on Ray (starting it when needed): the files :func:`adabiobert.pmc.ingest.ingest`
    writes for the same inputs, byte for byte; only ``seconds`` and ``workers`` in the stats differ.

    Args:
        config: inputs, output and shard size.
        workers: units ingested at once (one CPU each); at least 2.
        files_per_unit: loose files per unit (packages are a unit each); the output does not
            depend on it.
        unit_retries: times a unit's task is started again after its worker died (a crash, or
            killed for memory); then each of the unit's files is a reject.
        unit_hook: see :data:`UnitHook` (None: nothing is called).
        log: told when the run takes over a stale lease (None: silent).

    Raises:
        ConfigError: fewer than 2 workers.
        OutputLeasedError, OutputExistsError, InputNotFoundError: as
            :func:`adabiobert.pmc.ingest.ingest`, before Ray starts.
    """
    if workers < 2:
        raise ConfigError(f"workers must be >= 2 for a Ray run, got {workers}; use adabiobert.pmc.ingest.ingest")
    with root_lease(config, log) as lease:  # the root, with append
        return _ingest_parallel(config, workers, files_per_unit, unit_retries, unit_hook, lease)


def _ingest_parallel(config: IngestConfig, workers: int, files_per_unit: int, unit_retries: int,
                     unit_hook: UnitHook | None, lease: OutputLease) -> IngestStats:
    """:func:`ingest_parallel` under the output's lease."""
    started = time.perf_counter()
    config, prior = open_batch(config)
    files, input_rejects = find_run_inputs(config)
    units = plan_units(files, files_per_unit)
    if len(units) < 2:
        return ingest(config, prior, lease)
    resumed = start_batch(config)
    init_ray()  # $RAY_ADDRESS when set, else a local instance
    runtime_env = worker_runtime_env()
    results = _ingest_all(units, config, workers, unit_retries, runtime_env, unit_hook)
    plan = plan_shards(results, input_rejects, config.output, config.articles_per_shard, prior)
    articles = _write_all(plan.shards, config, workers, runtime_env)
    storage.delete_tree(storage.join(config.output, STAGING))
    lease.check()  # a run whose lease was taken over commits nothing
    plan.counts["resumed"] = resumed
    return write_run_summary(config, len(files), articles, list(plan.rejects), [s.name for s in plan.shards],
                             plan.counts, started, workers)


# ---------------------------------------------------------------------------------------------
# Worker side
# ---------------------------------------------------------------------------------------------
@ray.remote(num_cpus=1, retry_exceptions=False)
def _unit_task(unit: Unit, output: str, articles_per_shard: int, unit_hook: UnitHook | None) -> UnitResult:
    """Ray task: one unit. Exceptions are not retried (an outage or a bug fails the run); a dead
    worker is, up to ``max_retries`` (set per run from ``unit_retries``)."""
    if unit_hook is not None:
        unit_hook(unit)
    return ingest_unit(unit, output, articles_per_shard)


@ray.remote(num_cpus=1, retry_exceptions=False, max_retries=SHARD_RETRIES)
def _shard_task(plan: ShardPlan, output: str) -> int:
    """Ray task: write one planned shard; return its number of articles."""
    return write_planned_shard(plan, output)


# ---------------------------------------------------------------------------------------------
# Driver side
# ---------------------------------------------------------------------------------------------
def _ingest_all(units: list[Unit], config: IngestConfig, workers: int, unit_retries: int,
                runtime_env: dict | None, unit_hook: UnitHook | None) -> list[UnitResult]:
    """Run every unit, ``workers`` at once; return their results (in the order they finished).
    An exception raised while ingesting (an outage, a bug) fails the run, as in one process."""
    task = _unit_task.options(max_retries=unit_retries, runtime_env=runtime_env)

    def submit(unit: Unit) -> ray.ObjectRef:
        return task.remote(unit, config.output, config.articles_per_shard, unit_hook)

    results: list[UnitResult] = []
    progress = Progress("ingest", sum(len(u.files) for u in units), "file", enabled=config.show_progress)
    with progress:
        for unit, ref in pooled(units, submit, workers):
            try:
                result = ray.get(ref)
            except ray.exceptions.RayTaskError:  # raised by ingest_unit itself: not an input problem
                raise
            except ray.exceptions.RayError as error:  # its worker died unit_retries + 1 times
                result = _died(unit, error, unit_retries)
            results.append(result)
            progress.update(len(unit.files), note=f"{len(results)} of {len(units)} units")
    return results


def _died(unit: Unit, error: BaseException, unit_retries: int) -> UnitResult:
    """A unit whose task never finished: each of its files is a reject, nothing of it is kept."""
    lines = str(error).strip().splitlines()
    said = f": {lines[0][:200]}" if lines else ""
    others = f" and {len(unit.files) - 1} other files" if len(unit.files) > 1 else ""
    reason = (f"the task ingesting it{others} died {unit_retries + 1} times, {type(error).__name__}{said}; "
              "none of its articles is in the shards")
    return UnitResult(unit.index, (), tuple(Reject(uri, reason) for uri in unit.files), {})


def _write_all(shards: tuple[ShardPlan, ...], config: IngestConfig, workers: int, runtime_env: dict | None) -> int:
    """Write every planned shard, ``workers`` at once; return the number of articles written."""
    task = _shard_task.options(runtime_env=runtime_env)
    written = {plan.name: ray.get(ref)
               for plan, ref in pooled(shards, lambda plan: task.remote(plan, config.output), workers)}
    expected = {s.name: s.articles for s in shards}
    if written != expected:
        raise RuntimeError(f"shards written {len(written)}, planned {len(expected)}: "
                           f"{sorted(set(expected) ^ set(written))[:5]} differ")
    return sum(written.values())
