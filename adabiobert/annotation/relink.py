"""Re-linking committed shards: new concept columns from a new index, without the encoder.

A shard's entity rows say where the tagger found mentions; which concept each one names is the
linker's answer, and a new vocabulary release, threshold or linker version changes only that. A
re-link reads the shard's committed entity file, the article text from the input shard (for the
in-document abbreviations; not needed when the shard has no mention or there is no linker), links
every article's mentions (``annotation.concepts``) and commits the rewritten files through
:meth:`AnnotationStore.relink <adabiobert.annotation.commit.AnnotationStore.relink>`: atomic per
shard, a marker as the commit point, so a run killed anywhere and run again ends with the rows of
a run that was not killed.

Only a shard in the current tables version is re-linked: its rejections and articles files are
carried over as they are. A shard of tables version 2 has no articles file, which only tagging it
again can write: a re-link leaves it as it is and names it (``RelinkSummary.shards_to_tag``) for
``jobs/annotate.py``.

A shard's re-link is two steps: computing its new entity table (:func:`link_shard_entities`:
it only reads, and it is the expensive part, TF-IDF linking every mention) and committing it
(:func:`commit_links`, on the driver, the output's only writer). The commit refuses a table
computed from rows that are no longer the shard's committed ones, so the first step may run
anywhere: :func:`relink_output` takes it as ``compute``, in this process by default
(:func:`link_in_process`) or on Ray tasks (``distributed.relink``, ``jobs/relink.py --workers N``).

Two callers: the annotation job, for shards whose tagging is current but whose links are not
(``planner.RunPlan.relink``, :func:`relink_shard`), and ``jobs/relink.py`` (:func:`relink_output`),
for every committed shard of an output.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

import pyarrow as pa

from adabiobert import storage
from adabiobert.annotation.commit import STAGING_DIR, AnnotationStore, Hook, ShardCommit, tagged_shard_uri
from adabiobert.annotation.concepts import link_article
from adabiobert.annotation.counts import linked
from adabiobert.annotation.tables import CONCEPT_COLUMNS, ENTITIES, ENTITY_SCHEMA, TABLES_VERSION
from adabiobert.errors import InputNotFoundError, RelinkError
from adabiobert.linking.artifact import IndexArtifact
from adabiobert.linking.linker import Linker
from adabiobert.pmc.shards import article_sections, read_articles

LINK_COLUMNS = ("pmcid", "section_index", "start_offset", "end_offset", "mention", "label")


@dataclass(frozen=True)
class Linking:
    """What a run links with: a linker and what it records of it, or nothing (concept columns null)."""

    linker: Linker | None = None
    artifact: IndexArtifact | None = None
    threshold: float | None = None

    def __post_init__(self) -> None:
        assert (self.linker is None) == (self.artifact is None) == (self.threshold is None)

    @property
    def linker_id(self) -> str:
        """``IndexArtifact.linker_id``; ``""`` without a linker."""
        return self.artifact.linker_id(self.threshold) if self.artifact is not None else ""

    def to_dict(self) -> dict[str, Any] | None:
        """What a run summary records (None: the run linked nothing)."""
        if self.artifact is None:
            return None
        return {**self.artifact.to_dict(), "threshold": self.threshold, "linker_id": self.linker_id}


def relinked_entities(entities: pa.Table, linking: Linking,
                      sections_of: Callable[[set[str]], Mapping[str, Mapping[int, str]]]) -> pa.Table:
    """``entities`` (:data:`ENTITY_SCHEMA`) with the concept columns of ``linking``.

    Args:
        sections_of: ``pmcids -> {pmcid: {section_index: text}}``, called once, with the articles
            that have rows, only when there is a linker.

    Raises:
        RelinkError: an article missing from the text, or a row whose mention is not at its offsets.
    """
    n = entities.num_rows
    concept = {"concept_id": [None] * n, "concept_name": [None] * n, "link_score": [None] * n}
    if linking.linker is not None and n:
        rows = entities.select(list(LINK_COLUMNS)).to_pylist()
        by_article: dict[str, list[int]] = {}
        for i, row in enumerate(rows):
            by_article.setdefault(row["pmcid"], []).append(i)
        texts = sections_of(set(by_article))
        for pmcid, indexes in by_article.items():
            if pmcid not in texts:
                raise RelinkError(f"article {pmcid} has entity rows but is not in the shard")
            mentions = [rows[i] for i in indexes]
            for row in mentions:
                found = texts[pmcid].get(row["section_index"], "")[row["start_offset"]:row["end_offset"]]
                if found != row["mention"]:
                    raise RelinkError(f"article {pmcid}: section {row['section_index']} has {found!r} at "
                                      f"[{row['start_offset']}:{row['end_offset']}], the table says {row['mention']!r}")
            link_article(linking.linker, texts[pmcid], mentions)
            for i, row in zip(indexes, mentions):
                for name in concept:
                    concept[name][i] = row[name]
    for name, values in concept.items():
        entities = entities.set_column(ENTITY_SCHEMA.get_field_index(name), ENTITY_SCHEMA.field(name),
                                       pa.array(values, ENTITY_SCHEMA.field(name).type))
    linker_id = pa.array([linking.linker_id or None] * n, pa.string())
    return entities.set_column(ENTITY_SCHEMA.get_field_index("linker_id"), ENTITY_SCHEMA.field("linker_id"), linker_id)


def shard_texts(uri: str) -> Callable[[set[str]], dict[str, dict[int, str]]]:
    """``sections_of`` for :func:`relinked_entities`: the articles' texts read from the shard at ``uri``.

    Raises (when called):
        RelinkError: the shard's text cannot be read.
    """

    def sections_of(pmcids: set[str]) -> dict[str, dict[int, str]]:
        try:
            articles = read_articles(uri)
        except (OSError, pa.ArrowException) as error:
            raise RelinkError(f"{uri}: its text cannot be read ({type(error).__name__}: {error})") from None
        texts = {}
        for row in articles.to_pylist():
            if row["pmcid"] in pmcids:
                pieces = article_sections(row["title"], row["abstract"], row["sections"])
                texts[row["pmcid"]] = {p.section_index: p.text for p in pieces}
        return texts

    return sections_of


def input_uri(commit: ShardCommit, shards: str | None = None) -> str:
    """Where the text of a committed shard is now: ``commit.uri``, or ``<shards>/<shard name>``.

    Raises:
        RelinkError: the shard is gone, or changed since it was tagged (its size or version).
    """
    return tagged_shard_uri(commit, shards, RelinkError, ": run jobs/annotate.py, which tags it again")


@dataclass(frozen=True)
class Relinked:
    """A shard re-linked: its new commit, and how many of its entity rows have an identifier."""

    commit: ShardCommit
    linked: int


def link_shard_entities(output: str, commit: ShardCommit, linking: Linking, uri: str | None) -> pa.Table:
    """The committed entity rows of ``commit`` with the concept columns of ``linking``: the first,
    expensive step of a re-link. It only reads (the entity file, the text), so any process may run it.

    Args:
        output: the annotation output ``commit`` belongs to.
        commit: a shard's commit in the current tables version.
        uri: where its text is (checked to be the content tagged); None when no text is needed
            (no linker, or no entity row).

    Raises:
        RelinkError: the text is needed and unreadable, or does not hold the rows' mentions.
        ValueError: ``commit`` is of an older tables version (its entity file lacks the concept columns).
    """
    if commit.tables_version != TABLES_VERSION:
        raise ValueError(f"{commit.shard}: tables version {commit.tables_version}, not {TABLES_VERSION}: "
                         "not re-linked (jobs/annotate.py tags it again)")
    entities = AnnotationStore(output).read_table(commit, ENTITIES)
    return relinked_entities(entities, linking, shard_texts(uri) if uri is not None else _no_text)


def commit_links(store: AnnotationStore, commit: ShardCommit, entities: pa.Table, linker_id: str,
                 run_id: str) -> Relinked | None:
    """Commit ``entities`` (:func:`link_shard_entities` of ``commit``) as the shard's entity rows:
    the second step of a re-link, on the driver (``store`` is the output's only writer).

    Returns:
        What :meth:`AnnotationStore.relink` returns: None when the shard is no longer committed,
        quarantined, or already linked by ``linker_id``.

    Raises:
        RelinkError: the shard's committed entity rows are no longer those ``entities`` was
            computed from (all but the concept columns); nothing is committed.
    """
    kept = [name for name in ENTITY_SCHEMA.names if name not in CONCEPT_COLUMNS]

    def rewrite(table: pa.Table) -> pa.Table:
        if table.num_rows != entities.num_rows or not table.select(kept).equals(entities.select(kept)):
            raise RelinkError(f"{commit.shard}: its committed entity rows changed after its links were computed "
                              f"({table.num_rows} rows now, {entities.num_rows} then); not committed, run again")
        return entities

    new = store.relink(commit.shard, rewrite, linker_id, run_id)
    return None if new is None else Relinked(new, linked(entities))


def relink_shard(store: AnnotationStore, commit: ShardCommit, linking: Linking, run_id: str,
                 uri: str | None = None) -> Relinked | None:
    """Re-link one committed shard in this process (module docstring); None when there is nothing to do.

    Args:
        commit: the shard's current commit in ``store``.
        uri: where its text is (already checked to be the content tagged); None: found by
            :func:`input_uri`, read only when the shard has entity rows and there is a linker.

    Raises:
        RelinkError: the text is needed and gone, changed or unreadable.
    """
    if commit.quarantined or commit.linked_by(linking.linker_id):
        return None  # as the store would answer, without linking first
    if linking.linker is not None and commit.entities and uri is None:
        uri = input_uri(commit)
    entities = link_shard_entities(store.output, commit, linking, uri)
    return commit_links(store, commit, entities, linking.linker_id, run_id)


@dataclass(frozen=True)
class LinkWork:
    """One shard for :func:`relink_output`'s ``compute``: what its re-linked entity table needs,
    small enough to send to a worker (no linker: a worker opens its own)."""

    output: str
    commit: ShardCommit
    """The shard's current commit, in the current tables version."""
    shards: str | None = None
    """The folder the input shards live in now (``--shards``), or None: where they were tagged."""


LinkResult = pa.Table | RelinkError
"""A shard's re-linked entity table, or why it could not be computed."""

ComputeLinks = Callable[[Iterable[LinkWork], Linking], Iterable[tuple[LinkWork, LinkResult]]]
"""``compute(work, linking)``: :func:`link_or_error` of each item, in any order (the driver
commits each as it comes): :func:`link_in_process`, or ``distributed.relink.link_on_ray``."""


def link_or_error(work: LinkWork, linking: Linking) -> LinkResult:
    """:func:`link_shard_entities` of ``work`` (its text found by :func:`input_uri`), or the
    :class:`RelinkError` that says why not."""
    try:
        uri = input_uri(work.commit, work.shards) if linking.linker is not None and work.commit.entities else None
        return link_shard_entities(work.output, work.commit, linking, uri)
    except RelinkError as error:
        return error


def link_in_process(work: Iterable[LinkWork], linking: Linking) -> Iterator[tuple[LinkWork, LinkResult]]:
    """:data:`ComputeLinks` in this process, one shard after the other, as they are asked for."""
    for item in work:
        yield item, link_or_error(item, linking)


def _no_text(pmcids: set[str]) -> dict[str, dict[int, str]]:
    raise AssertionError("the text was needed but no shard was given")


@dataclass
class RelinkSummary:
    """What ``jobs/relink.py`` did (``runs/<run id>.json``)."""

    run_id: str
    output: str
    linking: dict[str, Any] | None
    shards_committed: int = 0
    """Committed shards found (quarantined ones included)."""
    shards_relinked: int = 0
    shards_up_to_date: int = 0
    """Already linked by this linker in the current tables version."""
    shards_quarantined: int = 0
    """Passed over: no entity rows to link (the annotation job retries them)."""
    shards_to_tag: list[str] = field(default_factory=list)
    """Of an older tables version (no articles file): ``jobs/annotate.py`` tags them again."""
    shards_failed: list[dict[str, str]] = field(default_factory=list)
    """``{shard, error}``: their text is gone, changed or unreadable; their rows are as they were."""
    mentions_relinked: int = 0
    mentions_linked: int = 0
    recovery: dict[str, int] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"kind": "relink", **asdict(self)}


def relink_output(output: str, linking: Linking, run_id: str, shards: str | None = None, hook: Hook | None = None,
                  log: Callable[[str], None] = lambda line: None,
                  compute: ComputeLinks = link_in_process) -> RelinkSummary:
    """Re-link every committed shard of an annotation output that ``linking`` has not linked.

    Recovers the output first (a killed run's debris), then commits shard by shard, in this
    process, as ``compute`` hands over their tables; writes the summary to
    ``<output>/runs/<run_id>.json``.

    Args:
        output: the annotation job's ``--output``.
        shards: the folder the input shards live in now, when they moved since they were tagged.
        hook: fault injection (``annotation.commit.Hook``).
        compute: computes the shards' re-linked entity tables (:data:`ComputeLinks`; default: in
            this process, each just before its commit).

    Raises:
        InputNotFoundError: ``output`` holds no committed shard.
    """
    started = time.perf_counter()
    store = AnnotationStore(output, hook)
    if not store.markers():  # read only: a wrong path is refused before anything is written there
        raise InputNotFoundError(f"{output}: no annotation output there (no _manifest/commits markers); pass the "
                                 "--output folder of jobs/annotate.py")
    recovery = store.recover()
    summary = RelinkSummary(run_id, output, linking.to_dict(), shards_committed=len(store.current),
                            recovery={"orphan_files": recovery.orphan_files, "superseded_markers": recovery.superseded_markers,
                                      "amendments_completed": recovery.amendments_completed})
    work = []
    for commit in sorted(store.current.values(), key=lambda c: c.shard):
        if commit.quarantined:
            summary.shards_quarantined += 1
        elif commit.linked_by(linking.linker_id):
            summary.shards_up_to_date += 1
        elif commit.tables_version != TABLES_VERSION:
            summary.shards_to_tag.append(commit.shard)
        else:
            work.append(LinkWork(output, commit, shards))
    for item, result in compute(work, linking):
        try:
            if isinstance(result, RelinkError):
                raise result
            new = commit_links(store, item.commit, result, linking.linker_id, run_id)
        except RelinkError as error:
            summary.shards_failed.append({"shard": item.commit.shard, "error": str(error)})
            log(f"{item.commit.shard}: not re-linked: {error}")
            continue
        if new is not None:
            summary.shards_relinked += 1
            summary.mentions_relinked += new.commit.entities
            summary.mentions_linked += new.linked
    summary.shards_failed.sort(key=lambda failed: failed["shard"])  # compute may finish shards in any order
    storage.delete_tree(store.uri(f"{STAGING_DIR}/{run_id}"))  # a failed shard's staged files
    store.write_manifest()
    summary.seconds = {"total": round(time.perf_counter() - started, 3)}
    storage.write_bytes(storage.join(output, "runs", f"{run_id}.json"), json.dumps(summary.to_dict(), indent=2).encode())
    return summary

