"""The annotation job's output tables: Arrow schemas and where their files go.

Two tables live under the job's output root, each a Hive-partitioned Parquet dataset with a root
of its own (see ``docs/entity-tables.md``, which also has the Spark, Polars and Athena readers):

    entities/run_date=YYYY-MM-DD/<shard stem>-<shard id>-<run id>.parquet     ENTITY_SCHEMA
    rejections/run_date=YYYY-MM-DD/<shard stem>-<shard id>-<run id>.parquet   REJECTION_SCHEMA

``run_date`` exists only in the path (engines read it as a partition column and prune on it).
Each committed shard has exactly one file in each table, holding its rows from one run, possibly
none: so both tables exist, with their schema, as soon as one shard is committed. Nothing else is
written under ``entities/`` or ``rejections/``; the manifest, staging area and run summaries live
beside them, which is why a reader is pointed at a table root and never at the output root.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import PurePosixPath

import pyarrow as pa
import pyarrow.compute as pc

ENTITIES = "entities"
REJECTIONS = "rejections"
TABLES = (ENTITIES, REJECTIONS)
"""Folder names of the tables under the output root: each is a table root."""

TABLES_VERSION = 3
"""Version of the tables' layout and schema, in every file's metadata (:data:`TABLES_VERSION_KEY`)
and in every commit marker. 1: columns ``start``/``end``, ``shard`` the path under the input root,
no rejections file for a shard without rejections. 2: ``start_offset``/``end_offset``, ``shard``
the input URI, one file per table for every committed shard. 3: the entity table's concept
columns (``concept_id``, ``concept_name``, ``link_score``, ``linker_id``; nullable, last)."""

UPGRADABLE_VERSIONS = (2, 3)
"""Tables versions whose files :func:`upgrade` reads as the current schema: a shard committed at one
of them is brought to the current version by rewriting its files (a re-link), not by tagging it
again. Version 1 files (other column names, ``shard`` not a URI) are tagged again."""

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

TABLE_SCHEMAS = {ENTITIES: ENTITY_SCHEMA, REJECTIONS: REJECTION_SCHEMA}
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
    """A table file of an :data:`UPGRADABLE_VERSIONS` version as the current schema: the columns
    it lacks (all nullable: version 3's concept columns) added as nulls, in schema order.

    Raises:
        ValueError: the table lacks a column that is not nullable (a version-1 file).
    """
    schema = TABLE_SCHEMAS[table_name]
    missing = [f for f in schema if f.name not in table.column_names]
    required = [f.name for f in missing if not f.nullable]
    if required:
        raise ValueError(f"the {table_name} table lacks {required}: not a file of tables version "
                         f"{' or '.join(map(str, UPGRADABLE_VERSIONS))}")
    for field in missing:
        table = table.append_column(field, pa.nulls(table.num_rows, field.type))
    return table.select(schema.names).cast(schema)
