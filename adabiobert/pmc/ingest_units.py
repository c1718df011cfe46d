"""Ingest in units that can run at once: the framework-free half of a parallel ingest run.

``adabiobert.distributed.ingest`` runs these steps as Ray tasks; each can also run here, in one
process, which is how the tests check them. The files written are those of
:func:`adabiobert.pmc.ingest.ingest` for the same inputs, byte for byte:

    plan_units(files)                 the run's input files, in order -> units: each package alone,
                                      runs of loose files FILES_PER_UNIT at a time
    ingest_unit(unit)      one task   stream the unit's articles; stage them, articles_per_shard
                                      rows per Arrow file (<output>/_staging/unit-<u>-<c>.arrow);
                                      return its candidates (PMC id, version, where staged) and
                                      its rejects, in stream order
    plan_shards(results)   driver     walk the candidates in input order: a PMC id seen before is
                                      a duplicate reject (one run keeps the first, as in one
                                      process), the others are numbered; output shard k takes
                                      numbers [k * n, (k + 1) * n) -> which staged rows, in order
    write_planned_shard(plan)  one task  read those staged rows, write part-<k>.parquet

Why stage and re-cut instead of letting each unit write its own shards: a unit cannot know how
many articles the units before it kept (nor which of its own PMC ids an earlier unit had), so
shard boundaries and the duplicate rule need the whole run's candidates first. Re-cutting costs
one Arrow read and one Parquet write per article, small beside parsing its JATS.

Memory: a unit task holds at most ``articles_per_shard`` parsed articles (and one package's file
list); a shard task at most the staged files its shard draws on (two, at most, each of
``articles_per_shard`` rows); the driver holds one small :class:`Candidate` per article.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import pyarrow as pa

from adabiobert import storage
from adabiobert.pmc.ingest import (
    PACKAGE_SUFFIXES,
    Reject,
    duplicate_reject,
    iter_articles,
    version_reject,
    write_parquet,
)
from adabiobert.pmc.shards import records_to_table, shard_name

FILES_PER_UNIT = 64
"""Loose files (not packages) per unit: enough to keep a task's start-up small beside its work,
few enough that a folder of loose files spreads over the workers."""

STAGING = "_staging"
"""Folder under the output for the staged Arrow files; deleted when the run ends. Its files are
not ``.parquet``, so a reader of the shards never takes one for a shard."""


@dataclass(frozen=True)
class Unit:
    """One task's share of a run: consecutive input files."""

    index: int
    """Position in the run (0-based); names the unit's staged files."""
    files: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Candidate:
    """An article a unit parsed, in stream order, before the run-wide duplicate rule."""

    pmcid: str
    version: datetime | None
    source: str
    rejects_before: int
    """How many of the unit's rejects came before it in the stream (so that the driver puts a
    duplicate reject where one process would have)."""
    staged: int | None
    """Its row among the unit's staged rows (file ``staged // articles_per_shard``, row
    ``staged % articles_per_shard``); None for the second of two equal PMC ids within the unit
    (never staged: it is a duplicate whatever came before)."""


@dataclass(frozen=True)
class UnitResult:
    """What :func:`ingest_unit` returns to the driver."""

    index: int
    candidates: tuple[Candidate, ...]
    rejects: tuple[Reject, ...]
    """In stream order, without duplicates (the driver makes those)."""
    counts: dict[str, int] = field(default_factory=dict)
    """``file_lists``, ``without_file_list``, ``unlisted_members`` (see ``IngestStats``)."""


@dataclass(frozen=True)
class ShardPlan:
    """One output shard: the staged rows it is made of, in order."""

    name: str
    slices: tuple[tuple[str, tuple[int, ...]], ...]
    """``(staged file URI, its rows)``, in shard order."""

    @property
    def articles(self) -> int:
        return sum(len(rows) for _, rows in self.slices)


@dataclass(frozen=True)
class RunPlan:
    """What the driver makes of all the units' results."""

    shards: tuple[ShardPlan, ...]
    rejects: tuple[Reject, ...]
    """The run's rejects in input order (the inputs not found first), as one process writes them."""
    counts: Counter[str]


def plan_units(files: Sequence[str], files_per_unit: int = FILES_PER_UNIT) -> list[Unit]:
    """Split a run's input files, in order, into units: a package is a unit of its own; runs of
    other files make units of up to ``files_per_unit`` files. The output does not depend on the
    split (only the speed does)."""
    if files_per_unit < 1:
        raise ValueError(f"files_per_unit must be >= 1, got {files_per_unit}")
    units: list[list[str]] = []
    loose = False  # is units[-1] a run of loose files with room left?
    for uri in files:
        if uri.endswith(PACKAGE_SUFFIXES):
            units.append([uri])
            loose = False
        elif loose and len(units[-1]) < files_per_unit:
            units[-1].append(uri)
        else:
            units.append([uri])
            loose = True
    return [Unit(index, tuple(group)) for index, group in enumerate(units)]


def staged_uri(output: str, unit: int, chunk: int) -> str:
    """Where unit ``unit`` stages its ``chunk``-th run of ``articles_per_shard`` articles."""
    return storage.join(output, STAGING, f"unit-{unit:05d}-{chunk:05d}.arrow")


def ingest_unit(unit: Unit, output: str, articles_per_shard: int) -> UnitResult:
    """Stream the unit's articles (as one process would) and stage them under ``output``.

    The second of two equal PMC ids within the unit is not staged; whether the first is kept is
    the driver's call (an earlier unit may hold it too).

    Raises:
        Whatever :func:`adabiobert.pmc.ingest.iter_articles` does not turn into a reject (an outage,
        a bug): the run stops, as in one process.
    """
    counts: Counter[str] = Counter()
    candidates: list[Candidate] = []
    rejects: list[Reject] = []
    pending: list[dict[str, Any]] = []
    staged: set[str] = set()
    for uri in unit.files:
        for item in iter_articles(uri, counts):
            if isinstance(item, Reject):
                rejects.append(item)
                continue
            position = None
            if item["pmcid"] not in staged:
                staged.add(item["pmcid"])
                position = len(staged) - 1
                pending.append(item)
            candidates.append(Candidate(item["pmcid"], item["version"], item["source"], len(rejects), position))
            if len(pending) == articles_per_shard:
                _stage(staged_uri(output, unit.index, (len(staged) - 1) // articles_per_shard), pending)
                pending = []
    if pending:
        _stage(staged_uri(output, unit.index, (len(staged) - 1) // articles_per_shard), pending)
    return UnitResult(unit.index, tuple(candidates), tuple(rejects), dict(counts))


def plan_shards(results: Sequence[UnitResult], input_rejects: Sequence[Reject], output: str,
                articles_per_shard: int, prior: Mapping[str, datetime | None] | None = None) -> RunPlan:
    """Apply the run-wide duplicate rule to every unit's candidates and cut the kept articles
    into shards of ``articles_per_shard``, in input order, named as one process names them.

    Args:
        results: one per unit of the run, in any order.
        input_rejects: the inputs that were not found (they come first, as in one process).
        prior: an appending run's versions already in the root (``adabiobert.pmc.ingest.open_batch``):
            an article not newer is a reject, as in one process.
    """
    rejects = list(input_rejects)
    counts: Counter[str] = Counter()
    first: dict[str, datetime | None] = {}  # pmcid -> the kept article's version
    kept: list[tuple[str, int]] = []  # (staged file, row) of each kept article, in input order
    for result in sorted(results, key=lambda r: r.index):
        counts.update(result.counts)
        taken = 0  # the unit's rejects already placed
        for candidate in result.candidates:
            if candidate.pmcid in first:
                rejects.extend(result.rejects[taken:candidate.rejects_before])
                taken = candidate.rejects_before
                rejects.append(duplicate_reject(candidate.source, candidate.pmcid, candidate.version,
                                                first[candidate.pmcid]))
                continue
            stale = version_reject(candidate.source, candidate.pmcid, candidate.version, prior or {}, counts)
            if stale is not None:
                rejects.extend(result.rejects[taken:candidate.rejects_before])
                taken = candidate.rejects_before
                rejects.append(stale)
                continue
            assert candidate.staged is not None, f"{candidate.source}: unstaged, yet the first of {candidate.pmcid}"
            first[candidate.pmcid] = candidate.version
            chunk, row = divmod(candidate.staged, articles_per_shard)
            kept.append((staged_uri(output, result.index, chunk), row))
        rejects.extend(result.rejects[taken:])
    shards = []
    for start in range(0, len(kept), articles_per_shard):
        slices: list[tuple[str, list[int]]] = []
        for uri, row in kept[start:start + articles_per_shard]:
            if slices and slices[-1][0] == uri:
                slices[-1][1].append(row)
            else:
                slices.append((uri, [row]))
        shards.append(ShardPlan(shard_name(len(shards)), tuple((uri, tuple(rows)) for uri, rows in slices)))
    return RunPlan(tuple(shards), tuple(rejects), counts)


def write_planned_shard(plan: ShardPlan, output: str) -> int:
    """Write one output shard from its staged rows; return its number of articles.

    The Parquet file is the one :func:`adabiobert.pmc.ingest.ingest` writes for the same articles:
    same schema, one chunk per column, the same writer settings.
    """
    parts = [_read_staged(uri).take(pa.array(rows, pa.int64())) for uri, rows in plan.slices]
    table = pa.concat_tables(parts).combine_chunks()
    write_parquet(storage.join(output, plan.name), table)
    return table.num_rows


def _stage(uri: str, records: list[dict[str, Any]]) -> None:
    """Arrow IPC with lz4: written and read back once, so speed matters more than size."""
    table = records_to_table(records)
    sink = pa.BufferOutputStream()
    with pa.ipc.new_file(sink, table.schema, options=pa.ipc.IpcWriteOptions(compression="lz4")) as writer:
        writer.write_table(table)
    storage.write_bytes(uri, sink.getvalue().to_pybytes())


def _read_staged(uri: str) -> pa.Table:
    return pa.ipc.open_file(pa.BufferReader(storage.read_bytes(uri))).read_all()
