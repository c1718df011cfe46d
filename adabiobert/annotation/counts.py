"""What an annotation run did, added up shard by shard: the counts of ``runs/<run_id>.json``.

The driver (``adabiobert/distributed/annotation.py``) adds each committed or quarantined shard;
:meth:`RunCounts.add_shard` refuses a shard whose articles do not reconcile.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from adabiobert.annotation.status import OK, QUARANTINED
from adabiobert.annotation.tables import REJECTED, TAGGED
from adabiobert.pmc.shards import Shard
from adabiobert.pmc.versions import REMOVED, RETRACTED


@dataclass
class RunCounts:
    """What a run did, added up shard by shard (written as ``runs/<run_id>.json``)."""

    shards_listed: int = 0
    shards_up_to_date: int = 0
    shards_committed: int = 0
    shards_relinked: int = 0
    """Shards tagged before by this model whose files this run rewrote with its links (another
    linker, in the current tables version), without tagging them again."""
    shards_committed_elsewhere: int = 0
    """Shards whose marker another run created first (this run's files were withdrawn)."""
    shards_quarantined: int = 0
    """Shards this run tried whose read or split failed: committed as one ``quarantined`` rejection."""
    shards_held: int = 0
    """Shards not tried: quarantined by the last runs as often as ``QUARANTINE_ATTEMPTS`` allows, for
    the same content and model."""
    quarantined: list[dict[str, Any]] = field(default_factory=list)
    """One entry per quarantined or held shard: ``shard``, ``uri``, ``attempt``, ``held``, ``error``."""
    shards_unreadable: int = 0
    documents_in: int = 0
    """Articles in the committed shards: always ``documents_tagged + documents_rejected``."""
    documents_tagged: int = 0
    documents_rejected: int = 0
    sentences: int = 0
    words: int = 0
    mentions: int = 0
    mentions_by_label: dict[str, int] = field(default_factory=dict)
    mentions_linked: int = 0
    """Mentions written with a ``concept_id`` (by tagging or re-linking shards), out of ``mentions``
    and the re-linked shards' ``mentions_relinked``."""
    mentions_relinked: int = 0
    """Entity rows of the re-linked shards."""
    rejections_by_reason: dict[str, int] = field(default_factory=dict)
    articles_superseded: int = 0
    """Article versions whose rows this run kept out of the tables or removed from them: a newer
    version (or an equal one of an older batch) is current (``docs/pmc-shards.md``)."""
    articles_retracted: int = 0
    """Articles whose rows this run kept out or removed because their current version is retracted."""
    articles_removed: int = 0
    """Article versions (tombstones included) whose rows this run kept out or removed because PMC
    took the version down."""
    shards_amended: int = 0
    """Committed shards whose files this run rewrote without such articles."""
    articles_by_status: dict[str, int] = field(default_factory=dict)
    """Rows this run wrote to the articles table for the shards it committed, by ``status``
    (``tagged`` is ``documents_tagged``; ``rejected`` is ``documents_rejected``). The rows an
    amendment turned to ``superseded``, ``retracted`` or ``removed`` are not in it: they are in
    ``articles_superseded``, ``articles_retracted`` and ``articles_removed``."""
    versions: dict[str, int] = field(default_factory=dict)
    """What the input holds (``pmc.versions.VersionIndex.counts``): ``articles`` (PMC ids),
    ``superseded`` (rows not current), ``ties``, ``retracted`` (current versions retracted),
    ``retracted_unseen`` (retractions of an article with no other version), ``removed`` (articles
    every PMC version of which was taken down), ``removed_rows``."""
    seconds: dict[str, float] = field(default_factory=dict)
    """Wall seconds of the driver's stages (``recover``, ``list``, ``check``, ``stream``: read,
    split and tag overlapping, ``commit``, ``total``), and busy seconds summed over workers
    (``split_busy``, ``tag_busy``, ``link_busy``: linking inside the tagger actors; ``relink``: the
    driver's re-linking of shards, wall)."""

    def add_shard(self, documents: pa.Table, entities: pa.Table, rejections: pa.Table, documents_in: int,
                  articles: pa.Table | None = None) -> None:
        """Add one committed shard: its tagged articles, entity rows, rejection rows and (given)
        articles rows.

        Raises:
            ValueError: the shard's articles do not reconcile (in != tagged + rejected, or the
                articles rows' ``tagged`` and ``rejected`` are not those counts).
        """
        tagged = _count(documents, "status", OK)
        unreadable = _count(rejections, "reason", "unreadable")
        rejected = rejections.num_rows - unreadable
        shard = rejections.column("shard")[0].as_py() if rejections.num_rows else "?"
        if tagged + rejected != documents_in:
            raise ValueError(f"{shard}: {documents_in} articles in, but {tagged} tagged + {rejected} rejected")
        if articles is not None:
            statuses = Counter(articles.column("status").to_pylist())
            if (statuses[TAGGED], statuses[REJECTED]) != (tagged, rejected):
                raise ValueError(f"{shard}: {tagged} tagged and {rejected} rejected articles, but the articles table "
                                 f"says {statuses[TAGGED]} and {statuses[REJECTED]}")
            _add_counts(self.articles_by_status, articles.column("status").to_pylist())
        self.shards_committed += 1
        self.shards_unreadable += unreadable
        self.documents_in += documents_in
        self.documents_tagged += tagged
        self.documents_rejected += rejected
        if documents.num_rows:
            self.sentences += pc.sum(documents.column("sentences")).as_py() or 0
            self.words += pc.sum(documents.column("words")).as_py() or 0
            self._add_seconds("split_busy", pc.sum(documents.column("split_seconds")).as_py() or 0.0)
            self._add_seconds("tag_busy", pc.sum(documents.column("tag_seconds")).as_py() or 0.0)
            self._add_seconds("link_busy", pc.sum(documents.column("link_seconds")).as_py() or 0.0)
        self.mentions += entities.num_rows
        self.mentions_linked += linked(entities)
        _add_counts(self.mentions_by_label, entities.column("label").to_pylist())
        _add_counts(self.rejections_by_reason, rejections.column("reason").to_pylist())

    def add_relinked(self, entities: int, linked_rows: int, seconds: float) -> None:
        """Count one shard re-linked: its entity rows, those with an identifier, the wall seconds."""
        self.shards_relinked += 1
        self.mentions_relinked += entities
        self.mentions_linked += linked_rows
        self._add_seconds("relink", seconds)

    def add_quarantine(self, shard: Shard, attempt: int, error: str, held: bool = False) -> None:
        """Count a shard quarantined by this run (``held=False``) or held from an earlier one."""
        if held:
            self.shards_held += 1
        else:
            self.shards_quarantined += 1
            _add_counts(self.rejections_by_reason, [QUARANTINED])
        self.quarantined.append({"shard": shard.name, "uri": shard.uri, "attempt": attempt, "held": held, "error": error})

    def add_left_out(self, reasons: Iterable[str]) -> None:
        """Count articles left out of (or removed from) the tables, by reason
        (``pmc.versions.SUPERSEDED``, ``RETRACTED`` or ``REMOVED``)."""
        for reason in reasons:
            if reason == RETRACTED:
                self.articles_retracted += 1
            elif reason == REMOVED:
                self.articles_removed += 1
            else:
                self.articles_superseded += 1

    def _add_seconds(self, stage: str, seconds: float) -> None:
        self.seconds[stage] = round(self.seconds.get(stage, 0.0) + seconds, 3)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def linked(entities: pa.Table) -> int:
    """Entity rows with a ``concept_id``."""
    return entities.num_rows - entities.column("concept_id").null_count if entities.num_rows else 0


def _count(table: pa.Table, column: str, value: str) -> int:
    return int(pc.sum(pc.equal(table.column(column), value)).as_py() or 0) if table.num_rows else 0


def _add_counts(counts: dict[str, int], values: list[str]) -> None:
    for value, n in Counter(values).items():
        counts[value] = counts.get(value, 0) + n
