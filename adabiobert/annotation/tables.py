"""The annotation job's output tables: Arrow schemas and where their files go.

Three tables live under the job's output root, each a Hive-partitioned Parquet dataset with a root
of its own (see ``docs/entity-tables.md``, which also has the Spark, Polars and Athena readers):

    entities/run_date=YYYY-MM-DD/<shard stem>-<shard id>-<run id>.parquet     ENTITY_SCHEMA
    rejections/run_date=YYYY-MM-DD/<shard stem>-<shard id>-<run id>.parquet   REJECTION_SCHEMA
    articles/run_date=YYYY-MM-DD/<shard stem>-<shard id>-<run id>.parquet     ARTICLE_SCHEMA

``run_date`` exists only in the path (engines read it as a partition column and prune on it).
Each committed shard has exactly one file in each table, holding its rows from one run, possibly
none: so every table exists, with its schema, as soon as one shard is committed. Nothing else is
written under a table root; the manifest, staging area and run summaries live beside them, which
is why a reader is pointed at a table root and never at the output root.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from pathlib import PurePosixPath

import pyarrow as pa
import pyarrow.compute as pc

from adabiobert.annotation.status import OK
from adabiobert.pmc.versions import REMOVED, RETRACTED, SUPERSEDED

ENTITIES = "entities"
REJECTIONS = "rejections"
ARTICLES = "articles"
TABLES = (ENTITIES, REJECTIONS, ARTICLES)
"""Folder names of the tables under the output root: each is a table root."""

TABLES_VERSION = 3
"""Version of the tables' layout and schema, in every file's metadata (:data:`TABLES_VERSION_KEY`)
and in every commit marker. 1: columns ``start``/``end``, ``shard`` the path under the input root,
no rejections file for a shard without rejections. 2: ``start_offset``/``end_offset``, ``shard``
the input URI, one file per table for every committed shard. 3: the ``articles`` table (a
rejected article's ``row_index`` is always set) and the entity table's concept columns
(``concept_id``, ``concept_name``, ``link_score``, ``linker_id``; nullable, last). A shard committed
at version 2 has no articles file, so it is tagged again; within version 3 a new linker only
re-links a shard (``AnnotationStore.relink``)."""

READABLE_VERSIONS = (2, 3)
"""Tables versions whose entities and rejections files :func:`upgrade` reads as the current schema
(what the exports read). Version 1 files (other column names, ``shard`` not a URI) are not read."""

TABLES_VERSION_KEY = b"adabiobert.entity_tables_version"

ENTITY_SCHEMA = pa.schema(
    [
        pa.field("pmcid", pa.string(), nullable=False),
        pa.field("section", pa.string(), nullable=False),
        pa.field("section_index", pa.int32(), nullable=False),
        pa.field("sentence_index", pa.int32(), nullable=False),
        pa.field("start_offset", pa.int32(), nullable=False),
        pa.field("end_offset", pa.int32(), nullable=False),
        pa.field("mention", pa.string(), nullable=False),
        pa.field("label", pa.string(), nullable=False),
        pa.field("confidence", pa.float32(), nullable=False),
        pa.field("model_id", pa.string(), nullable=False),
        pa.field("run_id", pa.string(), nullable=False),
        pa.field("shard", pa.string(), nullable=False),
        pa.field("concept_id", pa.string()),
        pa.field("concept_name", pa.string()),
        pa.field("link_score", pa.float32()),
        pa.field("linker_id", pa.string()),
    ],
    metadata={TABLES_VERSION_KEY: str(TABLES_VERSION).encode()},
)
"""One row per mention. ``section`` is ``title``, ``abstract`` or the body section's title path;
``section_index`` is 0 for the title, 1 for the abstract, 2 + i for body section i;
``sentence_index`` counts the sentences of that section from 0; ``start_offset``/``end_offset`` are
character offsets (code points) into that section's text (``text[start_offset:end_offset] ==
mention``; not ``start``/``end``, which SQL engines reserve); ``confidence`` is the mean CRF
marginal of the mention's words; ``model_id`` is ``name@bundle hash``; ``shard`` the URI the run read
the input shard from (``s3://...`` or an absolute local path), the key to join back to its text.

The concept columns (version 3) are the entity linker's (``adabiobert.linking``): ``concept_id`` a
CURIE (``MESH:D001943``, ``NCBIGene:672``; the parts' CURIEs joined by ``|`` for a composite
mention), null when the linker abstained or the type has no vocabulary; ``concept_name`` the
concept's preferred name (joined alike); ``link_score`` the linker's score, kept when it abstained,
null when the type has no vocabulary; ``linker_id`` what linked the row
(``IndexArtifact.linker_id``). All four are null when the run linked nothing (no index)."""

CONCEPT_COLUMNS = ("concept_id", "concept_name", "link_score", "linker_id")
"""The entity table's columns that a re-link rewrites (and nothing else)."""

REJECTION_SCHEMA = pa.schema(
    [
        pa.field("shard", pa.string(), nullable=False),  # the input shard's URI
        pa.field("row_index", pa.int64()),
        pa.field("pmcid", pa.string()),
        pa.field("reason", pa.string(), nullable=False),
        pa.field("detail", pa.string(), nullable=False),
        pa.field("model_id", pa.string(), nullable=False),
        pa.field("run_id", pa.string(), nullable=False),
    ],
    metadata={TABLES_VERSION_KEY: str(TABLES_VERSION).encode()},
)
"""One row per article not tagged (or per shard that could not be opened or read: ``row_index``
and ``pmcid`` null). ``reason`` is a code from :data:`REJECTION_REASONS`, ``detail`` says more."""

ARTICLE_SCHEMA = pa.schema(
    [
        pa.field("pmcid", pa.string()),  # null only for a ``null_pmcid`` row
        pa.field("row_index", pa.int64(), nullable=False),
        pa.field("version", pa.timestamp("ms", tz="UTC")),
        pa.field("pmc_version", pa.int32()),
        pa.field("status", pa.string(), nullable=False),
        pa.field("mention_count", pa.int32(), nullable=False),
        pa.field("model_id", pa.string(), nullable=False),
        pa.field("run_id", pa.string(), nullable=False),
        pa.field("shard", pa.string(), nullable=False),
    ],
    metadata={TABLES_VERSION_KEY: str(TABLES_VERSION).encode()},
)
"""One row per article version (shard row) a run decided on: every row of every committed shard
but an ``unreadable`` or ``quarantined`` one. ``(shard, row_index)`` is the row's identity;
``version`` and ``pmc_version`` are the shard row's own (``version`` is ``last_updated`` in a
schema-1 shard, as ``pmc.versions`` compares them; ``pmc_version`` is null outside PMC's Cloud
Service); ``status`` is one of :data:`ARTICLE_STATUSES`; ``mention_count`` is the article's rows in
``entities`` (0 unless ``tagged``)."""

TAGGED = "tagged"
REJECTED = "rejected"
ARTICLE_STATUSES = {
    TAGGED: "the current version, tagged: its mentions are in entities (mention_count of them, "
            "possibly 0)",
    REJECTED: "the current version, not tagged: its row in rejections says why",
    SUPERSEDED: "not the current version: a newer one (or an equal one of an older batch) is current",
    RETRACTED: "the current version, and it is retracted: no row of the article is in entities",
    REMOVED: "a tombstone, or a PMC version that PMC took down",
}
"""Every ``status`` of the articles table, with its meaning. The last three are
:mod:`adabiobert.pmc.versions`' reasons, and an amendment turns a tagged or rejected row into one
of them when its version stops being current."""

TABLE_SCHEMAS = {ENTITIES: ENTITY_SCHEMA, REJECTIONS: REJECTION_SCHEMA, ARTICLES: ARTICLE_SCHEMA}
"""The schema of each table."""

REJECTION_REASONS = {
    "unreadable": "the shard file could not be opened as Parquet (one row for the whole shard)",
    "quarantined": "reading or splitting the shard failed (one row for the whole shard; see "
                   "docs/entity-tables.md for when it is retried)",
    "bad_schema": "the shard lacks a column of the PMC shard schema or has it with another type",
    "null_pmcid": "the article has no pmcid",
    "no_text": "title, abstract and every section are null or empty",
    "too_long": "more characters of text than AnnotateConfig.max_document_chars",
    "control_characters": "a C0/C1 control character other than tab, line feed, carriage return",
}
"""Every ``reason`` the job writes, with its meaning."""

_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


def partition_folder(table: str, run_date: str) -> str:
    """``entities/run_date=2026-11-25``: the relative folder of one run date's files."""
    if table not in TABLES:
        raise ValueError(f"unknown table {table!r}; expected one of {TABLES}")
    return f"{table}/run_date={run_date}"


def shard_file_name(shard_name: str, shard_id: str, run_id: str) -> str:
    """The file name of one shard's rows from one run, unique per (shard, run)."""
    stem = _UNSAFE.sub("_", PurePosixPath(shard_name).stem)[:80] or "shard"
    return f"{stem}-{shard_id[:12]}-{run_id}.parquet"


def rejection_table(
    shard: str, rows: Sequence[tuple[int | None, str | None, str, str]], model_id: str, run_id: str
) -> pa.Table:
    """Rejection rows of one shard from ``(row_index, pmcid, reason, detail)`` tuples.

    Args:
        shard: the URI the shard was read from (:attr:`adabiobert.pmc.shards.Shard.uri`).
    """
    for _, _, reason, _ in rows:
        if reason not in REJECTION_REASONS:
            raise ValueError(f"{shard}: unknown rejection reason {reason!r}")
    columns = list(zip(*rows)) if rows else [(), (), (), ()]
    n = len(rows)
    return pa.table(
        {
            "shard": [shard] * n,
            "row_index": list(columns[0]),
            "pmcid": list(columns[1]),
            "reason": list(columns[2]),
            "detail": list(columns[3]),
            "model_id": [model_id] * n,
            "run_id": [run_id] * n,
        },
        schema=REJECTION_SCHEMA,
    )


def entity_table(documents: pa.Table, shard: str, model_id: str, run_id: str, linker_id: str | None = None) -> pa.Table:
    """Flatten tagged documents (``pmcid`` + ``entities`` list column) to :data:`ENTITY_SCHEMA`.

    Args:
        documents: rows of :data:`adabiobert.annotation.stages.TAGGED_SCHEMA` of one shard.
        shard: the URI the shard was read from (:attr:`adabiobert.pmc.shards.Shard.uri`).
        model_id, run_id: written on every row.
        linker_id: written on every row when the mentions were linked; None: not linked.
    """
    entities = documents.column("entities").combine_chunks()
    flat = pc.list_flatten(entities)  # (mentions,) struct
    owner = pc.list_parent_indices(entities)  # (mentions,) row of ``documents`` per mention
    n = len(flat)
    columns = {"pmcid": pc.take(documents.column("pmcid"), owner)}
    for name in ("section", "section_index", "sentence_index", "start_offset", "end_offset", "mention", "label",
                 "confidence"):
        columns[name] = pc.struct_field(flat, name)
    columns.update(model_id=pa.array([model_id] * n), run_id=pa.array([run_id] * n), shard=pa.array([shard] * n))
    for name in ("concept_id", "concept_name", "link_score"):
        columns[name] = pc.struct_field(flat, name)
    columns["linker_id"] = pa.array([linker_id] * n, pa.string())
    return pa.table(columns).cast(ENTITY_SCHEMA)


def upgrade(table_name: str, table: pa.Table) -> pa.Table:
    """An entities or rejections file of a :data:`READABLE_VERSIONS` version as the current schema:
    the columns it lacks (all nullable: version 3's concept columns) added as nulls, in schema order.

    Raises:
        ValueError: the table lacks a column that is not nullable (a version-1 file).
    """
    schema = TABLE_SCHEMAS[table_name]
    missing = [f for f in schema if f.name not in table.column_names]
    required = [f.name for f in missing if not f.nullable]
    if required:
        raise ValueError(f"the {table_name} table lacks {required}: not a file of tables version "
                         f"{' or '.join(map(str, READABLE_VERSIONS))}")
    for field in missing:
        table = table.append_column(field, pa.nulls(table.num_rows, field.type))
    return table.select(schema.names).cast(schema)


def article_table(shard: str, documents: pa.Table, rejected_rows: Sequence[tuple[int, str | None]],
                  left_out: Mapping[str, str], model_id: str, run_id: str) -> pa.Table:
    """One shard's articles rows, sorted by ``row_index``.

    Args:
        shard: the URI the shard was read from.
        documents: every tagged or rejected article of the shard (``TAGGED_SCHEMA`` rows, with
            ``row_index``, ``version`` and ``pmc_version``), those of ``left_out`` included.
        rejected_rows: ``(row_index, pmcid)`` of the rows the shard check rejected
            (``bad_schema``, ``null_pmcid``): rows that never became documents.
        left_out: ``{pmcid: status}`` of the shard's articles that are not current
            (``pmc.versions.VersionIndex.left_out`` of the shard): the status they take.

    Raises:
        ValueError: a document without its ``row_index`` (split from rows not read by
            ``stages.read_shard_rows``).
    """
    if documents.column("row_index").null_count:
        raise ValueError(f"{shard}: {documents.column('row_index').null_count} documents without a row_index; "
                         "split the shard with annotation.stages.split_shard")
    statuses = [left_out.get(pmcid) or (TAGGED if status == OK else REJECTED)
                for pmcid, status in zip(*(documents.column(n).to_pylist() for n in ("pmcid", "status")))]
    counts = pc.list_value_length(documents.column("entities")).to_pylist()
    mentions = [n if status == TAGGED else 0 for n, status in zip(counts, statuses)]
    n, checked = documents.num_rows + len(rejected_rows), len(rejected_rows)
    version = ARTICLE_SCHEMA.field("version").type
    table = pa.table(
        {
            "pmcid": documents.column("pmcid").to_pylist() + [pmcid for _, pmcid in rejected_rows],
            "row_index": documents.column("row_index").to_pylist() + [row for row, _ in rejected_rows],
            "version": pa.concat_arrays([documents.column("version").combine_chunks().cast(version),
                                         pa.nulls(checked, version)]),
            "pmc_version": documents.column("pmc_version").to_pylist() + [None] * checked,
            "status": statuses + [REJECTED] * checked,
            "mention_count": mentions + [0] * checked,
            "model_id": [model_id] * n,
            "run_id": [run_id] * n,
            "shard": [shard] * n,
        },
        schema=ARTICLE_SCHEMA,
    )
    return table.sort_by("row_index")


def with_statuses(articles: pa.Table, statuses: Mapping[str, str]) -> pa.Table:
    """``articles`` with the rows of the pmcids of ``statuses`` set to their status, and no mention
    (an amendment: their version stopped being current, and their entity rows leave with it)."""
    for status in statuses.values():
        if status not in ARTICLE_STATUSES:
            raise ValueError(f"unknown article status {status!r}")
    pmcids = articles.column("pmcid").to_pylist()
    new = [statuses.get(p, s) if p is not None else s for p, s in zip(pmcids, articles.column("status").to_pylist())]
    counts = [0 if p in statuses else n for p, n in zip(pmcids, articles.column("mention_count").to_pylist())]
    articles = articles.set_column(articles.schema.get_field_index("status"), ARTICLE_SCHEMA.field("status"),
                                   pa.array(new, pa.string()))
    return articles.set_column(articles.schema.get_field_index("mention_count"), ARTICLE_SCHEMA.field("mention_count"),
                               pa.array(counts, pa.int32()))
