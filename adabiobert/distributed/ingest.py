"""Ingest PMC files on Ray Data: the same shards, rejects and stats as one process, sooner.

    find the inputs, split them into units (adabiobert.ingest_units.plan_units: a package each,
    loose files 64 at a time)
      -> from_items(units), one block per unit
      -> map_batches(_ingest_units, num_cpus=0, TaskPoolStrategy(workers))  waits on one task per unit:
             _unit_task (1 CPU, max_retries=unit_retries)   streams the unit's members, stages
             its articles as Arrow files under <output>/_staging; a unit whose task died
             unit_retries + 1 times becomes one reject per file of it
      -> the driver gathers every unit's candidates: duplicates and shard boundaries as one
         process would decide them (plan_shards)
      -> from_items(shard plans) -> map_batches(_write_shards, 1 CPU, TaskPoolStrategy(workers))
             each task reads its shard's staged rows and writes part-<k>.parquet
      -> the driver writes rejects.parquet and ingest_stats.json, deletes _staging

Why a Ray task per unit inside a zero-CPU map: Ray Data retries a map task whose worker died
without limit, so a package that kills its worker (memory) would be parsed again forever; the
inner task's retries are bounded and the unit is then recorded. A run whose plan has one unit
runs in this process (:func:`adabiobert.ingest.ingest`): Ray's start-up would buy nothing.
"""

from __future__ import annotations

import os
import pickle
import time
from collections.abc import Callable, Iterator

import pyarrow as pa
import ray

from adabiobert import storage
from adabiobert.distributed.session import init_ray
from adabiobert.errors import ConfigError
from adabiobert.ingest import IngestStats, Reject, find_run_inputs, ingest, open_batch, write_run_summary
from adabiobert.ingest_units import (
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
from adabiobert.job_configs import IngestConfig
from adabiobert.progress import Progress

UnitHook = Callable[[Unit], None]
"""``hook(unit)``, called in a unit's task before it ingests the unit: the fault tests pass one
that kills the worker. It travels to the workers, so it must pickle."""

_FORWARDED_ENV = ("AWS_ENDPOINT_URL", "AWS_REGION", "AWS_DEFAULT_REGION")
"""Settings (never credentials) that workers need: the same S3 endpoint as the driver."""


def ingest_parallel(config: IngestConfig, workers: int, files_per_unit: int = FILES_PER_UNIT,
                    unit_retries: int = 2, unit_hook: UnitHook | None = None) -> IngestStats:
    """Ingest on Ray Data (starting Ray when needed): the files :func:`adabiobert.ingest.ingest`
    writes for the same inputs, byte for byte; only ``seconds`` and ``workers`` in the stats differ.

    Args:
        config: inputs, output and shard size.
        workers: units ingested at once (one CPU each); at least 2.
        files_per_unit: loose files per unit (packages are a unit each); the output does not
            depend on it.
        unit_retries: times a unit's task is started again after its worker died (a crash, or
            killed for memory); then each of the unit's files is a reject.
        unit_hook: see :data:`UnitHook` (None: nothing is called).

    Raises:
        ConfigError: fewer than 2 workers.
        OutputExistsError, InputNotFoundError: as :func:`adabiobert.ingest.ingest`, before Ray starts.
    """
    if workers < 2:
        raise ConfigError(f"workers must be >= 2 for a Ray run, got {workers}; use adabiobert.ingest.ingest")
    started = time.perf_counter()
    config, prior = open_batch(config)
    files, input_rejects = find_run_inputs(config)
    units = plan_units(files, files_per_unit)
    if len(units) < 2:
        return ingest(config, prior)
    init_ray()  # $RAY_ADDRESS when set, else a local instance; Ray Data's bars off (ours below)
    env = {k: os.environ[k] for k in _FORWARDED_ENV if os.environ.get(k)}
    runtime_env = {"env_vars": env} if env else None
    results = _ingest_all(units, config, workers, unit_retries, runtime_env, unit_hook)
    plan = plan_shards(results, input_rejects, config.output, config.articles_per_shard, prior)
    articles = _write_all(plan.shards, config, workers, runtime_env)
    storage.delete_tree(storage.join(config.output, STAGING))
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


def _ingest_units(batch: pa.Table, output: str, articles_per_shard: int, unit_retries: int,
                  unit_hook: UnitHook | None) -> Iterator[dict]:
    """Ray Data UDF over units: one ``(index, pickled UnitResult)`` row per unit.

    It only waits (``num_cpus=0``); the unit's task holds the CPU. An exception raised while
    ingesting (an outage, a bug) fails the run, as in one process.
    """
    task = _unit_task.options(max_retries=unit_retries)
    for index, files in zip(batch.column("index").to_pylist(), batch.column("files").to_pylist()):
        unit = Unit(index, tuple(files))
        try:
            result = ray.get(task.remote(unit, output, articles_per_shard, unit_hook))
        except ray.exceptions.RayTaskError:  # raised by ingest_unit itself: not an input problem
            raise
        except ray.exceptions.RayError as error:  # its worker died unit_retries + 1 times
            result = _died(unit, error, unit_retries)
        yield {"index": [index], "result": [pickle.dumps(result)]}


def _died(unit: Unit, error: BaseException, unit_retries: int) -> UnitResult:
    """A unit whose task never finished: each of its files is a reject, nothing of it is kept."""
    lines = str(error).strip().splitlines()
    said = f": {lines[0][:200]}" if lines else ""
    others = f" and {len(unit.files) - 1} other files" if len(unit.files) > 1 else ""
    reason = (f"the task ingesting it{others} died {unit_retries + 1} times, {type(error).__name__}{said}; "
              "none of its articles is in the shards")
    return UnitResult(unit.index, (), tuple(Reject(uri, reason) for uri in unit.files), {})


def _write_shards(batch: pa.Table, output: str) -> dict:
    """Ray Data UDF over shard plans: write each shard, return ``(name, articles)`` rows."""
    names, articles = [], []
    for name, slices in zip(batch.column("name").to_pylist(), batch.column("slices").to_pylist()):
        plan = ShardPlan(name, tuple((s["uri"], tuple(s["rows"])) for s in slices))
        names.append(name)
        articles.append(write_planned_shard(plan, output))
    return {"name": names, "articles": articles}


# ---------------------------------------------------------------------------------------------
# Driver side
# ---------------------------------------------------------------------------------------------
def _ingest_all(units: list[Unit], config: IngestConfig, workers: int, unit_retries: int,
                runtime_env: dict | None, unit_hook: UnitHook | None) -> list[UnitResult]:
    """Run every unit; return their results (in the order they finished)."""
    dataset = ray.data.from_items([{"index": u.index, "files": list(u.files)} for u in units],
                                  override_num_blocks=len(units)).map_batches(
        _ingest_units,
        fn_kwargs={"output": config.output, "articles_per_shard": config.articles_per_shard,
                   "unit_retries": unit_retries, "unit_hook": unit_hook},
        batch_size=1,
        batch_format="pyarrow",
        num_cpus=0,  # the unit's own task holds the CPU
        compute=ray.data.TaskPoolStrategy(size=min(workers, len(units))),
        runtime_env=runtime_env,
    )
    results: list[UnitResult] = []
    progress = Progress("ingest", sum(len(u.files) for u in units), "file", enabled=config.show_progress)
    with progress:
        for row in dataset.iter_rows():
            result = pickle.loads(row["result"])
            results.append(result)
            progress.update(len(units[result.index].files), note=f"{len(results)} of {len(units)} units")
    if sorted(r.index for r in results) != list(range(len(units))):  # one per unit, none twice
        raise RuntimeError(f"{len(results)} unit results came back for {len(units)} units")
    return results


def _write_all(shards: tuple[ShardPlan, ...], config: IngestConfig, workers: int, runtime_env: dict | None) -> int:
    """Write every planned shard; return the number of articles written."""
    if not shards:
        return 0
    rows = [{"name": s.name, "slices": [{"uri": uri, "rows": list(r)} for uri, r in s.slices]} for s in shards]
    dataset = ray.data.from_items(rows, override_num_blocks=len(rows)).map_batches(
        _write_shards,
        fn_kwargs={"output": config.output},
        batch_size=1,
        batch_format="pyarrow",
        num_cpus=1,
        compute=ray.data.TaskPoolStrategy(size=min(workers, len(rows))),
        runtime_env=runtime_env,
    )
    written = {row["name"]: row["articles"] for row in dataset.iter_rows()}
    expected = {s.name: s.articles for s in shards}
    if written != expected:
        raise RuntimeError(f"shards written {len(written)}, planned {len(expected)}: "
                           f"{sorted(set(expected) ^ set(written))[:5]} differ")
    return sum(written.values())
