"""Sync a shard root with PMC's Cloud Service on Ray: one plain Ray task per fetch unit.

    state and in-progress record (adabiobert.pmc.sync) -> the inventory to sync to
    -> read it and the last snapshot, diff (adabiobert.pmc.inventory), plan (pmc.sync.plan_sync)
    -> units without a marker: fetch_unit as Ray tasks, ``workers`` at once (distributed.task_pool)
    -> tombstones, then commit_sync (rejects, stats, snapshot, state: the commit point)

The driver holds the inventory and the plan as Arrow tables and one small result per unit; each
task gets its unit's rows (``articles_per_shard`` of them) and writes its own shard.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from datetime import datetime, timezone

import ray

from adabiobert import storage
from adabiobert.distributed.session import init_ray, worker_runtime_env
from adabiobert.distributed.task_pool import pooled
from adabiobert.job_configs import SyncConfig
from adabiobert.pmc.inventory import diff_inventories, latest_inventory, read_inventory
from adabiobert.pmc.opendata import LicenseFilter, license_filter
from adabiobert.pmc.sync import (
    UnitResult,
    batch_of,
    commit_sync,
    fetch_unit,
    plan_sync,
    previous_snapshot,
    read_state,
    read_unit,
    record_in_progress,
    resume_or_start,
    write_tombstones,
)
from adabiobert.progress import Progress

UNIT_RETRIES = 3
"""Times a unit's task is started again after its worker died: a unit rewrites its shard whole."""


@ray.remote(num_cpus=1, retry_exceptions=False)
def _unit_task(index, rows, config: SyncConfig, batch: str, inventory_date: str, allowed: LicenseFilter) -> UnitResult:
    return fetch_unit(index, rows, config, batch, inventory_date, allowed)


def run_sync(config: SyncConfig, log: Callable[[str], None] = print) -> dict:
    """Bring ``config.output`` up to the newest inventory (or ``config.inventory``), resuming an
    interrupted sync first.

    Returns:
        The run's stats (also ``<batch>/sync_stats.json``), or ``{"up_to_date": ...}`` when the
        state already records the inventory.

    Raises:
        InputNotFoundError: no inventory at ``config.source``.
        ConfigError: an unknown licence filter.
    """
    started = datetime.now(timezone.utc)
    allowed = license_filter(config.license)
    state = read_state(config.output)
    config, resumed = resume_or_start(config.output, config, state)
    manifest = latest_inventory(config.source, config.inventory or None)
    if resumed:
        log(f"finishing the interrupted sync to inventory {manifest.date} first (as it was started)")
    if state is not None and state.inventory_date >= manifest.date:
        log(f"{config.output}: up to date with inventory {state.inventory_date}; nothing to fetch")
        return {"up_to_date": state.inventory_date}

    mark = datetime.now(timezone.utc)
    current = read_inventory(manifest)
    previous = previous_snapshot(config.output, state)
    diff = diff_inventories(previous, current)
    plan = plan_sync(previous, diff.added, diff.changed, diff.removed, config)
    del current, diff  # the plan holds what the run needs
    log(f"inventory {manifest.date}: {plan.fetch.num_rows} article versions to fetch, {plan.removed.num_rows} removed, "
        f"{plan.pending} left for later runs ({'baseline' if previous is None else f'since {state.inventory_date}'}; "
        f"{(datetime.now(timezone.utc) - mark).total_seconds():.1f} s to read and compare)")

    config = _recorded(config, manifest.date)
    record_in_progress(config.output, config)
    batch = batch_of(config.output, manifest.date)
    units = plan.units(config.articles_per_shard)
    results = [r for r in (read_unit(batch, i) for i in range(len(units))) if r is not None]
    todo = [i for i in range(len(units)) if i not in {r.index for r in results}]
    if results:
        log(f"{len(results)} of {len(units)} units already fetched by the interrupted run; fetching {len(todo)}")
    if todo:
        results += _fetch_all(todo, units, config, batch, manifest.date, allowed)
    tombstones = write_tombstones(batch, plan.removed, manifest.date)
    stats = commit_sync(config.output, batch, manifest, plan, sorted(results, key=lambda r: r.index), tombstones,
                        config, started)
    log(f"synced to inventory {manifest.date}: {stats['ingested']} versions ingested, {stats['skipped_license']} "
        f"skipped by licence, {stats['rejected'] + stats['missing']} rejected ({stats['missing']} missing, tried "
        f"again next run), {stats['removed']} removed -> {storage.basename(batch)}")
    return stats


def _recorded(config: SyncConfig, inventory_date: str) -> SyncConfig:
    """The config as the in-progress record keeps it: with the inventory named."""
    return replace(config, inventory=inventory_date)


def _fetch_all(todo: list[int], units: list, config: SyncConfig, batch: str, inventory_date: str,
               allowed: LicenseFilter) -> list[UnitResult]:
    """Fetch the units ``todo``, ``config.workers`` at once; a task that raises fails the run."""
    init_ray()  # $RAY_ADDRESS when set, else a local instance
    task = _unit_task.options(max_retries=UNIT_RETRIES, runtime_env=worker_runtime_env())
    results = []
    progress = Progress("sync", sum(units[i].num_rows for i in todo), "article", enabled=config.show_progress)
    with progress:
        for index, ref in pooled(todo, lambda i: task.remote(i, units[i], config, batch, inventory_date, allowed),
                                 config.workers):
            results.append(ray.get(ref))
            progress.update(units[index].num_rows, note=f"{len(results)} of {len(todo)} units")
    return results
