"""Which version of each article is current, across every batch of a shard root.

A shard root grows by batches (``docs/pmc-shards.md``, "Appends and versions"), so one PMCID may
have several rows: the baseline's, a corrected one, a retraction, a new PMC version. The rule, for
ingest, the PMC sync and annotation alike:

* Rows from PMC's Cloud Service (``pmc_version`` set) outrank rows from legacy packages or files.
  Among them, each PMC version's state is its newest row (``version``: the inventory's
  last-modified time, so a replaced object re-ingested later wins); a version whose newest row is
  a tombstone (``removed``) is gone. The current row is the state of the highest version still
  present; when every version is gone, the newest tombstone stands for the article and it is
  *removed*: no entity row of it remains.
* Rows from packages or files: the row with the newest ``version`` is current (a version-1 shard
  has no ``version``: its ``last_updated`` stands in, and ``retracted`` is unknown, taken as False).
* Of rows equal in all of that, the row of the oldest batch (then shard name, then row) wins; the
  others are *ties* (an incremental applied twice, an object fetched again), counted, never current.
* A current version that is retracted is *withdrawn*: no entity row of that article remains.
* Tombstone rows are never current text: they are always left out of the entity tables.

Everything here is pure except :func:`read_versions`, which reads three columns of one shard, and
:func:`read_root_versions`, which does so for many.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime

import pyarrow as pa
import pyarrow.parquet as pq

from adabiobert import storage
from adabiobert.errors import ShardSchemaError
from adabiobert.pmc.shards import Shard, shard_batch, validate_shard_schema

SUPERSEDED = "superseded"
"""Why a row of a shard is not current: a newer (or equal, earlier-batch) version is elsewhere."""
RETRACTED = "retracted"
"""Why a row of a shard is not current: it is the current version, and it is retracted."""
REMOVED = "removed"
"""Why a row of a shard is not current: a tombstone, or a PMC version that PMC took down (the
article's other versions, if any, decide what is current)."""


@dataclass(frozen=True)
class ArticleVersion:
    """One row of one shard, as far as versions go."""

    pmcid: str
    version: datetime | None
    retracted: bool
    shard: str
    """The shard's name (its path under the root)."""
    row: int
    pmc_version: int | None = None
    """PMC's version number (rows from PMC's Cloud Service), else None."""
    removed: bool = False
    """A tombstone: PMC took this version down."""


def read_versions(shard: Shard) -> list[ArticleVersion]:
    """The ``pmcid``, ``version`` and ``retracted`` of every row of a shard with a pmcid.

    A version-1 shard (no ``version`` column) is versioned by ``last_updated``; a row without a
    ``retracted`` value counts as not retracted. A shard that fails the schema check
    (``pmc.shards.validate_shard_schema``; the annotation job rejects all its rows) holds none.

    Raises:
        OSError, pyarrow.ArrowException: the shard cannot be read (the caller decides).
    """
    filesystem, path = storage.filesystem_for(shard.uri)
    schema = pq.read_schema(path, filesystem=filesystem)
    try:
        validate_shard_schema(schema, shard.uri)
    except ShardSchemaError:  # its check rejects every row of it: it holds no version
        return []
    version = "version" if "version" in schema.names else "last_updated"
    optional = [c for c in ("retracted", "pmc_version", "removed") if c in schema.names]
    table = pq.read_table(path, filesystem=filesystem, columns=["pmcid", version, *optional])
    pmcids = table.column("pmcid").to_pylist()
    versions = table.column(version).to_pylist()
    missing = [None] * len(pmcids)
    retracted, pmc_versions, removed = (
        table.column(c).to_pylist() if c in optional else missing for c in ("retracted", "pmc_version", "removed"))
    return [ArticleVersion(p, v, bool(r), shard.name, i, n, bool(d))
            for i, (p, v, r, n, d) in enumerate(zip(pmcids, versions, retracted, pmc_versions, removed)) if p]


def read_root_versions(shards: Sequence[Shard], threads: int = 8) -> list[ArticleVersion]:
    """:func:`read_versions` of every shard, ``threads`` at once; a shard that cannot be read adds
    nothing (the annotation job's footer check records it; ingest goes on without it)."""
    def versions(shard: Shard) -> list[ArticleVersion]:
        try:
            return read_versions(shard)
        except (OSError, pa.ArrowException):
            return []

    with ThreadPoolExecutor(max_workers=threads) as pool:
        return [row for rows in pool.map(versions, shards) for row in rows]


def version_stamp(version: datetime | None) -> float:
    """A version as a number to compare: its timestamp; no version is older than any."""
    return version.timestamp() if version is not None else float("-inf")


def _stamp(row: ArticleVersion) -> float:
    return version_stamp(row.version)


def _place(row: ArticleVersion) -> tuple[str, str, int]:
    """Where a row is: (batch, shard name, row); the smallest is the oldest."""
    return shard_batch(row.shard), row.shard, row.row


def _newest(rows: Iterable[ArticleVersion]) -> ArticleVersion:
    """The row with the newest ``version``; of equals, the oldest placed (ties lose)."""
    rows = list(rows)
    newest = max(_stamp(row) for row in rows)
    return min((row for row in rows if _stamp(row) == newest), key=_place)


def _current(versions: list[ArticleVersion]) -> ArticleVersion:
    """The current row of one article's rows (the rules of the module docstring)."""
    cloud = [row for row in versions if row.pmc_version is not None]
    if not cloud:
        return _newest(versions)
    by_number: dict[int, list[ArticleVersion]] = {}
    for row in cloud:
        by_number.setdefault(row.pmc_version, []).append(row)
    states = [_newest(rows) for rows in by_number.values()]
    present = [row for row in states if not row.removed]
    if present:
        return max(present, key=lambda row: row.pmc_version)
    return _newest(states)  # every version taken down: the newest tombstone stands for the article


@dataclass(frozen=True)
class VersionIndex:
    """The current version of every article of a root, and what each shard holds that is not."""

    current: Mapping[str, ArticleVersion]
    """pmcid -> its current row."""
    left_out: Mapping[str, Mapping[str, str]] = field(default_factory=dict)
    """shard name -> {pmcid: :data:`SUPERSEDED` or :data:`RETRACTED`} for its rows that must have
    no row in the entity tables."""
    superseded: int = 0
    """Rows that are not their article's current version (older, or tied)."""
    ties: int = 0
    """Rows whose version equals the current one but lost to an older batch."""
    retracted: int = 0
    """Articles whose current version is retracted."""
    retracted_unseen: int = 0
    """Of those, articles with no other version: a retraction of an article never seen (no rows
    to remove; counted, nothing else)."""
    removed: int = 0
    """Articles every PMC version of which was taken down (their newest tombstone is current)."""
    removed_rows: int = 0
    """Rows left out because their PMC version was taken down, tombstones included."""

    def excluded(self, shard: str) -> frozenset[str]:
        """The pmcids of ``shard`` whose rows the entity tables must not hold."""
        return frozenset(self.left_out.get(shard, {}))

    def owner(self, pmcid: str) -> str:
        """The shard holding the article's current version: the one whose commit removes the
        article's rows from other shards."""
        return self.current[pmcid].shard

    def counts(self) -> dict[str, int]:
        """For the run summary (``versions``)."""
        return {"articles": len(self.current), "superseded": self.superseded, "ties": self.ties,
                "retracted": self.retracted, "retracted_unseen": self.retracted_unseen,
                "removed": self.removed, "removed_rows": self.removed_rows}


def build_index(rows: Iterable[ArticleVersion]) -> VersionIndex:
    """Decide the current version of every article (the rules of the module docstring)."""
    by_pmcid: dict[str, list[ArticleVersion]] = {}
    for row in rows:
        by_pmcid.setdefault(row.pmcid, []).append(row)
    current: dict[str, ArticleVersion] = {}
    left_out: dict[str, dict[str, str]] = {}
    superseded = ties = retracted = unseen = removed = removed_rows = 0
    for pmcid, versions in by_pmcid.items():
        winner = current[pmcid] = _current(versions)
        gone = _taken_down(versions)
        for row in versions:
            if row is winner or row.shard == winner.shard:  # rows of one shard go together
                continue
            if row.removed or (row.pmc_version, row.shard) in gone:
                left_out.setdefault(row.shard, {})[pmcid] = REMOVED
                removed_rows += 1
            else:
                left_out.setdefault(row.shard, {})[pmcid] = SUPERSEDED
                superseded += 1
                ties += _same_state(row, winner)
        if winner.removed:
            left_out.setdefault(winner.shard, {})[pmcid] = REMOVED
            removed += 1
            removed_rows += 1
        elif winner.retracted:
            left_out.setdefault(winner.shard, {})[pmcid] = RETRACTED
            retracted += 1
            unseen += len(versions) == 1
    return VersionIndex(current, left_out, superseded, ties, retracted, unseen, removed, removed_rows)


def _taken_down(versions: list[ArticleVersion]) -> set[tuple[int, str]]:
    """``(pmc_version, shard)`` of the rows whose PMC version's newest row is a tombstone."""
    by_number: dict[int, list[ArticleVersion]] = {}
    for row in versions:
        if row.pmc_version is not None:
            by_number.setdefault(row.pmc_version, []).append(row)
    return {(row.pmc_version, row.shard) for rows in by_number.values() if _newest(rows).removed for row in rows}


def _same_state(row: ArticleVersion, winner: ArticleVersion) -> bool:
    """A tie: the row says what the current row says, and lost only to an older batch."""
    return row.pmc_version == winner.pmc_version and _stamp(row) == _stamp(winner)


def newest_versions(rows: Iterable[ArticleVersion]) -> dict[str, datetime | None]:
    """pmcid -> the newest version ingested (what an appending ingest run compares with)."""
    index = build_index(rows)
    return {pmcid: row.version for pmcid, row in index.current.items()}
