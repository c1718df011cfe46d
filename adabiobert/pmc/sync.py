"""A sync from PMC's Cloud Service, without Ray: what to fetch, how one unit is fetched, and the commit.

    read the state of the last sync (<root>/_sync/), the newest inventory and its difference
      -> plan_sync: versions to fetch (new, or a changed ETag or date), versions to remove,
         what stays pending under --since/--max-articles, and the snapshot to save at the end
      -> fetch_unit, per unit of ``articles_per_shard`` versions (a Ray task each in
         adabiobert.distributed.sync): metadata JSON, licence filter, JATS XML, one shard
         ``part-<unit>.parquet`` and then the unit's marker ``_units/unit-<unit>.json``
      -> write_tombstones: ``removed-00000.parquet``, one row per version taken down
      -> commit_sync: the batch's rejects.parquet and sync_stats.json, then the snapshot, then
         ``_sync/state.json``: the commit point of the run

Everything a run writes goes to the batch ``<root>/batch=pmc-<inventory date>/``, named by the
inventory, so a run killed at any point and started again plans the same units, skips those whose
marker exists and rewrites the rest whole: it ends as the clean run, with nothing fetched twice
into the shards. A run whose inventory the state already records does nothing.

Outcomes of one article version: ingested (a row in the unit's shard), ``skipped_license`` (its
``license_code`` is not asked for; remembered, not fetched again), rejected for its content (a
malformed metadata JSON, an XML that does not parse: a row of ``rejects.parquet``; remembered until
PMC changes the object), or missing (the inventory lists it but the object cannot be read: a row
of ``rejects.parquet``, and tried again by the next run, since the inventory lags the bucket).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field, replace
from datetime import datetime, timezone
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from adabiobert import storage
from adabiobert.errors import AdaBioBertError
from adabiobert.job_configs import SyncConfig
from adabiobert.output_lease import OutputLease, output_lease
from adabiobert.pmc.ingest import REJECTS_SCHEMA, write_parquet
from adabiobert.pmc.inventory import (
    FOLDER_FORMAT,
    InventoryManifest,
    diff_inventories,
    latest_inventory,
    read_inventory,
    read_snapshot,
    write_snapshot,
)
from adabiobert.pmc.jats import JatsError, parse_jats
from adabiobert.pmc.opendata import LicenseFilter, license_filter, metadata_key, parse_metadata, xml_key
from adabiobert.pmc.shards import (
    COMMITTED_MARKER,
    REJECTS_FILE,
    STARTED_MARKER,
    batch_folder,
    records_to_table,
    shard_name,
)
from adabiobert.progress import Progress

SYNC_FOLDER = "_sync"
"""Under the shard root: the state of the last successful sync (readers of shards skip ``_`` folders)."""
STATE_FILE = "state.json"
IN_PROGRESS_FILE = "in_progress.json"
"""Written before a run fetches anything, removed after its state: a run that finds it finishes that sync first."""
UNITS_FOLDER = "_units"
TOMBSTONES = "removed-00000.parquet"
STATS_FILE = "sync_stats.json"
KEY_COLUMNS = ["pmcid", "version"]

INGESTED, SKIPPED_LICENSE, REJECTED, MISSING = "ingested", "skipped_license", "rejected", "missing"


@dataclass(frozen=True)
class SyncState:
    """``_sync/state.json``: what the last successful sync applied."""

    inventory_date: str
    synced_at: str
    batch: str
    snapshot: str
    """The snapshot file under ``_sync/`` (``inventory-<date>.parquet``): the inventory as applied."""
    versions: int
    """Article versions in the snapshot (applied: ingested, skipped by licence or rejected)."""
    pending: int = 0
    """New or changed versions of this inventory that ``since``/``max_articles`` left for later:
    while there are some, a run on the same inventory fetches them (in a batch of its own)."""
    part: int = 1
    """Which sync of this inventory it was (1, then 2, ... for runs that fetch what bounds left)."""


def read_state(root: str) -> SyncState | None:
    """The state of the last successful sync of ``root``, None before the first."""
    uri = storage.join(root, SYNC_FOLDER, STATE_FILE)
    if not storage.exists(uri):
        return None
    return SyncState(**json.loads(storage.read_bytes(uri)))


def snapshot_name(inventory_date: str, part: int = 1) -> str:
    """``inventory-2026-12-05T01-00Z.parquet``; a later part of the same inventory adds ``.<part>``."""
    return f"inventory-{_part(inventory_date, part)}.parquet"


def _part(inventory_date: str, part: int) -> str:
    return inventory_date if part == 1 else f"{inventory_date}.{part}"


def resume_or_start(root: str, config: SyncConfig, state: SyncState | None) -> tuple[SyncConfig, bool]:
    """The config of the sync to run: an interrupted one's, as it was recorded (``True``), else
    ``config`` (``False``). A record left by a sync whose state was written is stale: removed."""
    uri = storage.join(root, SYNC_FOLDER, IN_PROGRESS_FILE)
    if not storage.exists(uri):
        return config, False
    recorded = SyncConfig(**json.loads(storage.read_bytes(uri)))
    if state is not None and state.inventory_date == recorded.inventory:
        storage.delete([uri])
        return config, False
    return recorded, True


def record_in_progress(root: str, config: SyncConfig) -> None:
    """Record the sync about to fetch (``config.inventory`` set), so that a rerun finishes it."""
    storage.write_bytes(storage.join(root, SYNC_FOLDER, IN_PROGRESS_FILE), json.dumps(asdict(config)).encode())


def sync_batch_id(inventory_date: str, part: int = 1) -> str:
    """The batch a sync to this inventory writes: ``pmc-2026-12-05T01-00Z`` (``...Z.2`` for its
    second part: a run that fetches what ``since``/``max_articles`` left)."""
    return f"pmc-{_part(inventory_date, part)}"


# ---------------------------------------------------------------------------------------------
# The run
# ---------------------------------------------------------------------------------------------
def sync(config: SyncConfig, fetch_units: FetchUnits | None = None, hook: Hook | None = None,
         log: Callable[[str], None] = print) -> dict:
    """Bring ``config.output`` up to the newest inventory (or ``config.inventory``), resuming an
    interrupted sync first.

    Args:
        config: the run.
        fetch_units: runs :func:`fetch_unit` for the units to fetch and yields their results
            (``adabiobert.distributed.sync`` passes Ray tasks); None: one after the other, here.
        hook: ``hook(step, detail)`` after each write that a rerun must find (``unit``,
            ``tombstones``, ``state``); the kill tests pass one that ends the process.
        log: where one-line progress messages go.

    Returns:
        The run's stats (also ``<batch>/sync_stats.json``), or ``{"up_to_date": ...}`` when the
        state already records the inventory.

    Raises:
        InputNotFoundError: no inventory at ``config.source``.
        ConfigError: an unknown licence filter.
    """
    allowed = license_filter(config.license)
    with output_lease(config.output, job="sync", log=log) as lease:
        return _sync(config, allowed, fetch_units or fetch_here, _guarded(hook, lease), log)


def _guarded(hook: Hook | None, lease: OutputLease) -> Hook:
    """The hook, after the lease check: a run whose lease was taken over stops at its next step."""
    def guarded(step: str, detail: str) -> None:
        lease.check()
        _call(hook, step, detail)

    return guarded


def _sync(config: SyncConfig, allowed: LicenseFilter, fetch_units: FetchUnits, hook: Hook,
          log: Callable[[str], None]) -> dict:
    """:func:`sync` once the root's lease is held."""
    started = datetime.now(timezone.utc)
    state = read_state(config.output)
    config, resumed = resume_or_start(config.output, config, state)
    bound = datetime.strptime(config.inventory, FOLDER_FORMAT).replace(tzinfo=timezone.utc) if config.inventory else None
    manifest = latest_inventory(config.source, bound)
    date = manifest.folder
    if resumed:
        log(f"finishing the interrupted sync to inventory {date} first (as it was started)")
    if state is not None and (state.inventory_date > date or (state.inventory_date == date and not state.pending)):
        log(f"{config.output}: up to date with inventory {state.inventory_date}; nothing to fetch")
        return {"up_to_date": state.inventory_date}
    part = state.part + 1 if state is not None and state.inventory_date == date else 1

    mark = datetime.now(timezone.utc)
    current = read_inventory(manifest)
    if current.not_articles:
        log(f"inventory {date}: {current.not_articles} keys are not article metadata (left out), "
            f"e.g. {', '.join(current.not_article_examples[:3])}")
    previous = previous_snapshot(config.output, state)
    diff = diff_inventories(previous, current.table)
    plan = plan_sync(previous, diff.added, diff.changed, diff.removed, config)
    del current, diff  # the plan holds what the run needs
    log(f"inventory {date}: {plan.fetch.num_rows} article versions to fetch, {plan.removed.num_rows} removed, "
        f"{plan.pending} left for later runs ({'baseline' if previous is None else f'since {state.inventory_date}'}; "
        f"{(datetime.now(timezone.utc) - mark).total_seconds():.1f} s to read and compare)")

    config = replace(config, inventory=date)  # as the in-progress record keeps it
    record_in_progress(config.output, config)
    batch = batch_folder(config.output, sync_batch_id(date, part))
    started_marker = storage.join(batch, STARTED_MARKER)
    if not storage.exists(started_marker):  # readers leave the batch out until its commit marker
        storage.write_bytes(started_marker, json.dumps({"job": "sync", "inventory": date, "part": part}).encode())
    units = plan.units(config.articles_per_shard)
    results = [r for r in (read_unit(batch, i) for i in range(len(units))) if r is not None]
    todo = [i for i in range(len(units)) if i not in {r.index for r in results}]
    if results:
        log(f"{len(results)} of {len(units)} units already fetched by the interrupted run; fetching {len(todo)}")
    progress = Progress("sync", sum(units[i].num_rows for i in todo), "article", enabled=config.show_progress)
    with progress:
        for result in fetch_units(todo, units, config, batch, date, allowed):
            results.append(result)
            progress.update(units[result.index].num_rows, note=f"{len(results)} of {len(units)} units")
            hook("unit", str(result.index))
    tombstones = write_tombstones(batch, plan.removed, date)
    hook("tombstones", str(tombstones))
    stats = commit_sync(config.output, batch, manifest, part, plan, sorted(results, key=lambda r: r.index),
                        tombstones, config, started)
    hook("state", date)
    log(f"synced to inventory {date}: {stats['ingested']} versions ingested, {stats['skipped_license']} "
        f"skipped by licence, {stats['rejected'] + stats['missing']} rejected ({stats['missing']} missing, tried "
        f"again next run), {stats['removed']} removed -> {storage.basename(batch)}")
    return stats


FetchUnits = Callable[[list[int], list[pa.Table], SyncConfig, str, str, LicenseFilter], Iterator["UnitResult"]]
"""``fetch_units(todo, units, config, batch, inventory_date, allowed)``: run :func:`fetch_unit` for
the unit numbers ``todo`` and yield each result as it is done (in any order)."""
Hook = Callable[[str, str], None]


def fetch_here(todo: list[int], units: list[pa.Table], config: SyncConfig, batch: str, inventory_date: str,
               allowed: LicenseFilter) -> Iterator[UnitResult]:
    """The units one after the other in this process (``--workers 1``)."""
    for index in todo:
        yield fetch_unit(index, units[index], config, batch, inventory_date, allowed)


def _call(hook: Hook | None, step: str, detail: str) -> None:
    if hook is not None:
        hook(step, detail)


# ---------------------------------------------------------------------------------------------
# The plan
# ---------------------------------------------------------------------------------------------
@dataclass
class SyncPlan:
    """What one run does, as Arrow tables (never Python lists of rows)."""

    fetch: pa.Table
    """Inventory rows (pmcid, version, etag, last_modified) to fetch, newest first."""
    removed: pa.Table
    """Snapshot rows whose version is gone from the inventory: tombstones to write."""
    pending: int
    """New or changed versions left for a later run by ``since`` / ``max_articles``."""
    previous: pa.Table | None

    def units(self, per_unit: int) -> list[pa.Table]:
        """The fetch rows cut into units of at most ``per_unit``, never two versions of one article
        in one unit (the tables leave out a shard's rows by pmcid: a shard holds one version of an
        article). The first version fetched of each article goes to the first layer of units, the
        second to the next layer, and so on; within a layer the plan's order is kept. The same
        plan gives the same cut."""
        layers = _version_layers(self.fetch)
        units = []
        for layer in range(int(pc.max(layers).as_py() or 0) + 1 if self.fetch.num_rows else 0):
            rows = self.fetch.filter(pc.equal(layers, layer))
            units += [rows.slice(start, per_unit) for start in range(0, rows.num_rows, per_unit)]
        return units


def plan_sync(previous: pa.Table | None, added: pa.Table, changed: pa.Table, removed: pa.Table,
              config: SyncConfig) -> SyncPlan:
    """Bound the difference of two inventories by ``config.since`` and ``config.max_articles``.

    Args:
        previous: the snapshot of the last sync (None: this run is the baseline).
        added, changed, removed: ``adabiobert.pmc.inventory.diff_inventories``'s tables.
        config: the run.

    Returns:
        The plan; its fetch order (newest ``last_modified`` first, then pmcid and version) is a
        function of the inputs alone, so a rerun cuts the same units.
    """
    todo = pa.concat_tables([added.select(_INVENTORY_COLUMNS), changed.select(_INVENTORY_COLUMNS)])
    total = todo.num_rows
    if config.since:
        since = pa.scalar(datetime.fromisoformat(config.since).replace(tzinfo=timezone.utc),
                          todo.schema.field("last_modified").type)
        todo = todo.filter(pc.greater_equal(todo.column("last_modified"), since))
    todo = todo.sort_by([("last_modified", "descending"), ("pmcid", "ascending"), ("version", "ascending")])
    if config.max_articles is not None:
        todo = todo.slice(0, config.max_articles)
    return SyncPlan(todo, removed, total - todo.num_rows, previous)


_INVENTORY_COLUMNS = ["pmcid", "version", "etag", "last_modified"]


def _version_layers(rows: pa.Table) -> pa.Array:
    """For each row, how many rows of the same pmcid come before it in version order (0, 1, ...)."""
    if not rows.num_rows:
        return pa.array([], pa.int64())
    order = pc.sort_indices(rows, sort_keys=[("pmcid", "ascending"), ("version", "ascending")]).to_numpy()
    pmcids = rows.column("pmcid").take(order).to_numpy(zero_copy_only=False)
    starts = np.ones(len(order), dtype=bool)
    starts[1:] = pmcids[1:] != pmcids[:-1]
    position = np.arange(len(order))
    run_start = np.maximum.accumulate(np.where(starts, position, 0))
    layers = np.empty(len(order), dtype=np.int64)
    layers[order] = position - run_start
    return pa.array(layers)


def next_snapshot(plan: SyncPlan, retry: pa.Table) -> pa.Table:
    """The snapshot after ``plan`` is done: the previous one without the versions removed or
    fetched, plus the fetched ones, less the ``retry`` rows (missing objects, tried again next run).
    Versions the plan left pending keep their previous rows, so the next run still sees them as new
    or changed."""
    fetched = plan.fetch.join(retry.select(KEY_COLUMNS), keys=KEY_COLUMNS, join_type="left anti") \
        if retry.num_rows else plan.fetch
    if plan.previous is None:
        return fetched.select(_INVENTORY_COLUMNS)
    gone = pa.concat_tables([plan.removed.select(KEY_COLUMNS), plan.fetch.select(KEY_COLUMNS)])
    kept = plan.previous.join(gone, keys=KEY_COLUMNS, join_type="left anti")
    return pa.concat_tables([kept.select(_INVENTORY_COLUMNS), fetched.select(_INVENTORY_COLUMNS)]).combine_chunks()


# ---------------------------------------------------------------------------------------------
# One unit
# ---------------------------------------------------------------------------------------------
@dataclass
class UnitResult:
    """What one unit did: its marker ``_units/unit-<index>.json``."""

    index: int
    shard: str | None
    """The shard's name in the batch, None when no version of the unit was ingested."""
    counts: dict[str, int] = field(default_factory=dict)
    """Versions by outcome: ingested, skipped_license, rejected, missing."""
    rejects: list[dict[str, str]] = field(default_factory=list)
    """``{"source", "reason"}`` rows for rejects.parquet."""
    retry: list[tuple[str, int]] = field(default_factory=list)
    """(pmcid, version) of the missing objects."""
    seconds: float = 0.0


def unit_marker(batch: str, index: int) -> str:
    return storage.join(batch, UNITS_FOLDER, f"unit-{index:05d}.json")


def read_unit(batch: str, index: int) -> UnitResult | None:
    """The marker of a unit that finished, None when it did not (or never ran)."""
    uri = unit_marker(batch, index)
    if not storage.exists(uri):
        return None
    data = json.loads(storage.read_bytes(uri))
    return UnitResult(**{**data, "retry": [tuple(r) for r in data["retry"]]})


def fetch_unit(index: int, rows: pa.Table, config: SyncConfig, batch: str, inventory_date: str,
               allowed: LicenseFilter) -> UnitResult:
    """Fetch one unit's article versions and write its shard, then its marker (the unit's commit).

    Args:
        index: the unit's number (its shard is ``part-<index>.parquet`` of ``batch``).
        rows: inventory rows (pmcid, version, etag, last_modified).
        config: the run (``source``, ``fetch_threads``).
        batch: the batch folder.
        inventory_date: recorded in every row.
        allowed: the licence filter.

    Returns:
        The unit's result, as written to its marker.
    """
    started = datetime.now(timezone.utc)
    wanted = rows.to_pylist()  # one unit: articles_per_shard rows, never the inventory
    with ThreadPoolExecutor(max_workers=config.fetch_threads) as pool:
        outcomes = list(pool.map(lambda row: _fetch_one(row, config.source, inventory_date, allowed), wanted))
    records = [record for outcome, record, _ in outcomes if outcome == INGESTED]
    result = UnitResult(index, shard_name(index) if records else None)
    for (outcome, _, reject), row in zip(outcomes, wanted):
        result.counts[outcome] = result.counts.get(outcome, 0) + 1
        if reject is not None:
            result.rejects.append(reject)
        if outcome == MISSING:
            result.retry.append((row["pmcid"], row["version"]))
    if records:
        write_parquet(storage.join(batch, result.shard), records_to_table(records))
    result.seconds = round((datetime.now(timezone.utc) - started).total_seconds(), 3)
    storage.write_bytes(unit_marker(batch, index), json.dumps(asdict(result)).encode())
    return result


def _fetch_one(row: dict[str, Any], source: str, inventory_date: str,
               allowed: LicenseFilter) -> tuple[str, dict[str, Any] | None, dict[str, str] | None]:
    """``(outcome, shard record or None, reject row or None)`` of one article version."""
    pmcid, version = row["pmcid"], row["version"]
    meta_uri = storage.join(source, metadata_key(pmcid, version))
    try:
        metadata = parse_metadata(storage.read_bytes(meta_uri), meta_uri)
    except FileNotFoundError:
        return MISSING, None, {"source": meta_uri, "reason": "missing: listed in the inventory, not in the bucket"}
    except AdaBioBertError as error:
        return REJECTED, None, {"source": meta_uri, "reason": str(error)}
    if not allowed.allows(metadata.license_code):
        return SKIPPED_LICENSE, None, None
    xml_uri = storage.join(source, xml_key(pmcid, version))
    try:
        record = parse_jats(storage.read_bytes(xml_uri), xml_uri)
    except FileNotFoundError:
        return MISSING, None, {"source": xml_uri, "reason": "missing: its metadata names it, the bucket has no such object"}
    except JatsError as error:
        reason = f"line {error.line}: {error.reason}" if error.line else error.reason
        return REJECTED, None, {"source": xml_uri, "reason": reason}
    return INGESTED, {
        **record,
        "pmcid": metadata.pmcid,  # the bucket's id is authoritative (the XML's may be absent or older)
        "version": row["last_modified"],
        "version_source": "pmc-cloud",
        "retracted": metadata.is_retracted,
        "pmc_version": metadata.version,
        "license_code": metadata.license_code,
        "is_manuscript": metadata.is_manuscript,
        "etag": row["etag"],
        "inventory_date": inventory_date,
        "removed": False,
    }, None


def write_tombstones(batch: str, removed: pa.Table, inventory_date: str) -> int:
    """One row per version taken down (``removed`` true, no text), so that annotation drops its
    rows; returns the number written (no file when there is none)."""
    if not removed.num_rows:
        return 0
    when = datetime.now(timezone.utc) if not inventory_date else _inventory_time(inventory_date)
    records = [{"pmcid": pmcid, "pmc_version": version, "version": when, "version_source": "pmc-cloud",
                "inventory_date": inventory_date, "removed": True, "source": "inventory"}
               for pmcid, version in zip(removed.column("pmcid").to_pylist(), removed.column("version").to_pylist())]
    write_parquet(storage.join(batch, TOMBSTONES), records_to_table(records))
    return len(records)


def _inventory_time(inventory_date: str) -> datetime:
    """``2026-12-05T01-00Z`` as a UTC time (later than any object it lists)."""
    return datetime.strptime(inventory_date, FOLDER_FORMAT).replace(tzinfo=timezone.utc)


# ---------------------------------------------------------------------------------------------
# The commit
# ---------------------------------------------------------------------------------------------
def commit_sync(root: str, batch: str, manifest: InventoryManifest, part: int, plan: SyncPlan,
                results: list[UnitResult], tombstones: int, config: SyncConfig, started: datetime) -> dict[str, Any]:
    """Write the batch's rejects and stats, the new snapshot, then the state (the commit point)."""
    rejects = [reject for result in results for reject in result.rejects]
    write_parquet(storage.join(batch, REJECTS_FILE), pa.Table.from_pylist(rejects, schema=REJECTS_SCHEMA))
    retry = pa.Table.from_pylist([{"pmcid": p, "version": v} for r in results for p, v in r.retry],
                                 schema=pa.schema([pa.field("pmcid", pa.string()), pa.field("version", pa.int32())]))
    snapshot = next_snapshot(plan, retry)
    counts: dict[str, int] = {}
    for result in results:
        for outcome, n in result.counts.items():
            counts[outcome] = counts.get(outcome, 0) + n
    stats = {
        "inventory": manifest.folder,
        "batch": storage.basename(batch),
        "baseline": plan.previous is None,
        "fetched": plan.fetch.num_rows,
        **{outcome: counts.get(outcome, 0) for outcome in (INGESTED, SKIPPED_LICENSE, REJECTED, MISSING)},
        "removed": tombstones,
        "pending": plan.pending,
        "shards": sorted(r.shard for r in results if r.shard) + ([TOMBSTONES] if tombstones else []),
        "units": len(results),
        "seconds": round((datetime.now(timezone.utc) - started).total_seconds(), 3),
        "config": asdict(config),
    }
    storage.write_bytes(storage.join(batch, STATS_FILE), json.dumps(stats, indent=2).encode())
    storage.write_bytes(storage.join(batch, COMMITTED_MARKER), json.dumps({"job": "sync", "inventory": manifest.folder,
                                                                           "part": part}).encode())
    write_snapshot(snapshot, storage.join(root, SYNC_FOLDER, snapshot_name(manifest.folder, part)))
    previous = read_state(root)
    state = SyncState(manifest.folder, datetime.now(timezone.utc).isoformat(timespec="seconds"),
                      storage.basename(batch), snapshot_name(manifest.folder, part), snapshot.num_rows, plan.pending,
                      part)
    storage.write_bytes(storage.join(root, SYNC_FOLDER, STATE_FILE), json.dumps(asdict(state), indent=2).encode())
    # After the commit point: what only the interrupted or the older sync needed.
    storage.delete([storage.join(root, SYNC_FOLDER, IN_PROGRESS_FILE)])
    if previous is not None and previous.snapshot != state.snapshot:
        storage.delete([storage.join(root, SYNC_FOLDER, previous.snapshot)])
    return stats


def previous_snapshot(root: str, state: SyncState | None) -> pa.Table | None:
    """The snapshot the state names (None before the first sync)."""
    return None if state is None else read_snapshot(storage.join(root, SYNC_FOLDER, state.snapshot))

