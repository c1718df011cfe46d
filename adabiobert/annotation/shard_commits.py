"""What the annotation driver commits, one shard at a time: tagged tables, quarantines and
amendments, each through ``AnnotationStore`` and added to the run's counts. No Ray here: the
pipeline hands over a shard's tagged articles and these functions decide what lands."""

from __future__ import annotations

import pyarrow as pa

from adabiobert.annotation.commit import QUARANTINE_ATTEMPTS, AnnotationStore
from adabiobert.annotation.counts import RunCounts
from adabiobert.annotation.planner import Amendments
from adabiobert.annotation.stages import current_documents, shard_tables
from adabiobert.annotation.status import QUARANTINED
from adabiobert.annotation.tables import ARTICLES, ENTITIES, REJECTIONS, rejection_table
from adabiobert.job_configs import AnnotationJobConfig
from adabiobert.pmc.shards import ShardCheck
from adabiobert.pmc.versions import VersionIndex


def commit_tagged(store: AnnotationStore, check: ShardCheck, documents: pa.Table, config: AnnotationJobConfig,
                  model_id: str, counts: RunCounts, index: VersionIndex, amend: Amendments, linker_id: str = "") -> None:
    """Build one shard's tables from its tagged articles and the check's rejections, leaving its
    articles that are not current (``index``) out of entities and rejections (in articles with
    their status); commit them, with the amendments of committed shards whose articles' current
    version this shard holds (``amend``, whose entry is removed; their articles rows take the
    status ``index`` gives them). ``linker_id``: what linked the articles' mentions (``""``: nothing)."""
    name = check.shard.name
    reasons = index.left_out.get(name, {})
    tables = shard_tables(check, documents, model_id, config.run_id, reasons, linker_id or None)
    current, left_out = current_documents(documents, reasons)
    owned = amend.get(name, {})
    commit = store.commit(check.shard, model_id, config.run_id, config.run_date, tables, check.documents,
                          excluded=index.excluded(name), amend=owned, statuses=index.left_out, linker_id=linker_id)
    if commit is None:
        counts.shards_committed_elsewhere += 1
        return
    counts.add_shard(current, tables[ENTITIES], tables[REJECTIONS], check.documents - len(left_out), tables[ARTICLES])
    counts.add_left_out(reasons[pmcid] for pmcid in left_out)
    for amended in commit.amends:
        reasons = index.left_out.get(amended.shard, {})
        counts.add_left_out(reasons[pmcid] for pmcid in owned[amended.shard])
        counts.shards_amended += 1
    amend.pop(name, None)


def commit_amendment(store: AnnotationStore, name: str, pmcids: frozenset[str], index: VersionIndex,
                     config: AnnotationJobConfig, counts: RunCounts) -> None:
    """Remove ``pmcids``' rows from the committed shard ``name`` in a commit of its own."""
    if store.amend(name, pmcids, config.run_id, index.left_out.get(name, {})) is not None:
        reasons = index.left_out.get(name, {})
        counts.add_left_out(reasons[pmcid] for pmcid in pmcids)
        counts.shards_amended += 1


def commit_quarantine(store: AnnotationStore, check: ShardCheck, detail: str, config: AnnotationJobConfig,
                      model_id: str, counts: RunCounts) -> None:
    """Commit a shard whose read or split failed as one ``quarantined`` rejection row (and no entity row)."""
    previous = store.quarantine(check.shard, model_id)
    attempt = (previous.quarantined if previous else 0) + 1
    rows = [(None, None, QUARANTINED, f"{detail} (attempt {attempt} of {QUARANTINE_ATTEMPTS})")]
    rejections = rejection_table(check.shard.uri, rows, model_id, config.run_id)
    commit = store.commit(check.shard, model_id, config.run_id, config.run_date,
                          {REJECTIONS: rejections}, check.documents, quarantined=attempt, error=detail)
    if commit is None:
        counts.shards_committed_elsewhere += 1
    else:
        counts.add_quarantine(check.shard, attempt, detail)
