"""The PMC sync's fetch units as Ray tasks (``jobs/sync_pmc.py --workers N``).

The run itself (state, inventory, plan, tombstones, commit) is :func:`adabiobert.pmc.sync.sync`;
this module only hands it a ``fetch_units`` that runs each unit as one plain Ray task, ``workers``
at once (distributed.task_pool). The driver holds the plan as Arrow tables and one small result
per unit; each task gets its unit's rows (``articles_per_shard`` of them) and writes its own shard.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pyarrow as pa
import ray

from adabiobert.distributed.session import init_ray, worker_runtime_env
from adabiobert.distributed.task_pool import pooled
from adabiobert.job_configs import SyncConfig
from adabiobert.pmc.opendata import LicenseFilter
from adabiobert.pmc.sync import Hook, UnitResult, fetch_unit, sync

UNIT_RETRIES = 3
"""Times a unit's task is started again after its worker died: a unit rewrites its shard whole."""


@ray.remote(num_cpus=1, retry_exceptions=False)
def _unit_task(index: int, rows: pa.Table, config: SyncConfig, batch: str, inventory_date: str,
               allowed: LicenseFilter) -> UnitResult:
    return fetch_unit(index, rows, config, batch, inventory_date, allowed)


def sync_on_ray(config: SyncConfig, hook: Hook | None = None, log: Callable[[str], None] = print) -> dict:
    """:func:`adabiobert.pmc.sync.sync` with its units fetched on Ray ($RAY_ADDRESS, else a local Ray)."""
    return sync(config, fetch_units=fetch_on_ray, hook=hook, log=log)


def fetch_on_ray(todo: list[int], units: list[pa.Table], config: SyncConfig, batch: str, inventory_date: str,
                 allowed: LicenseFilter) -> Iterator[UnitResult]:
    """Fetch the units ``todo``, ``config.workers`` at once; a task that raises fails the run."""
    init_ray()
    task = _unit_task.options(max_retries=UNIT_RETRIES, runtime_env=worker_runtime_env())
    for _, ref in pooled(todo, lambda i: task.remote(i, units[i], config, batch, inventory_date, allowed),
                         config.workers):
        yield ray.get(ref)
