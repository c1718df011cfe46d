"""The Arrow schema of a PMC shard: one row per article (see ``docs/pmc-shards.md``).

Shards are written by ``jobs/ingest_pmc.py`` and read by the Word2Vec build and the annotation
job; both check a shard against :data:`PMC_SHARD_SCHEMA` before they use it, so a shard made by
another tool fails early with the name of the column that does not fit.

Schema versions: 1 had the nine columns up to ``source``; 2 (:data:`SCHEMA_VERSION`) adds the
article's version and retraction status (``version``, ``version_source``, ``retracted``), taken
from PMC's file lists. A version-1 shard still passes every check: the version-2 columns are
checked only when present.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from adabiobert import storage
from adabiobert.errors import ShardSchemaError

SECTION_TYPE = pa.struct([pa.field("title", pa.string()), pa.field("text", pa.string())])
"""One flattened body section: its title path (``"Methods / Cell culture"``) and its text."""

SCHEMA_VERSION = 2
"""The version :data:`PMC_SHARD_SCHEMA` describes, stored in the Parquet key-value metadata
under :data:`SCHEMA_VERSION_KEY`."""

SCHEMA_VERSION_KEY = b"adabiobert.pmc_shard_schema"

PMC_SHARD_SCHEMA = pa.schema(
    [
        pa.field("pmcid", pa.string(), nullable=False),
        pa.field("pmid", pa.string()),
        pa.field("doi", pa.string()),
        pa.field("title", pa.string()),
        pa.field("abstract", pa.string()),
        pa.field("sections", pa.list_(SECTION_TYPE)),
        pa.field("license", pa.string()),
        pa.field("last_updated", pa.timestamp("ms", tz="UTC")),
        pa.field("source", pa.string()),
        # Schema version 2:
        pa.field("version", pa.timestamp("ms", tz="UTC")),
        pa.field("version_source", pa.string()),
        pa.field("retracted", pa.bool_()),
    ],
    metadata={SCHEMA_VERSION_KEY: str(SCHEMA_VERSION).encode()},
)
"""Columns a shard written now has, in this order (``docs/pmc-shards.md``). Extra columns are
allowed and ignored by readers."""

REQUIRED_COLUMNS = ("pmcid", "pmid", "doi", "title", "abstract", "sections", "license", "last_updated", "source")
"""The schema-version-1 columns: every shard, old or new, must have them."""

VERSION_SOURCES = ("filelist", "jats", "mtime")
"""Where ``version`` came from: the package's ``.filelist.csv`` (``LastUpdated``), else the
article's latest JATS date, else the file's modification time."""

TEXT_COLUMNS = ("title", "abstract", "sections")
"""The columns that hold article text (what the Word2Vec build and the tagger read)."""


def validate_shard_schema(schema: pa.Schema, path: str) -> None:
    """Check that ``schema`` has every column of :data:`REQUIRED_COLUMNS`, and that each column of
    :data:`PMC_SHARD_SCHEMA` it has is of the same type (so a version-1 shard passes).

    Field nullability and list item names are not compared (Parquet writers differ in both);
    :func:`read_shard` checks for null ``pmcid`` values instead.

    Args:
        schema: the schema of a shard (``pyarrow.parquet.read_schema`` or a table's).
        path: the shard, for the error message.

    Raises:
        ShardSchemaError: naming the first missing column, or the first column whose type
            differs (with the expected and the found type).
    """
    for expected in PMC_SHARD_SCHEMA:
        index = schema.get_field_index(expected.name)
        if index < 0 and expected.name not in REQUIRED_COLUMNS:
            continue
        if index < 0:
            raise ShardSchemaError(
                path, f"missing column {expected.name!r} (expected {expected.type})", column=expected.name
            )
        found = schema.field(index).type
        if not _same_type(found, expected.type):
            raise ShardSchemaError(
                path, f"column {expected.name!r} has type {found}, expected {expected.type}", column=expected.name
            )


def shard_schema_version(schema: pa.Schema) -> int:
    """The schema version of a shard: its metadata's :data:`SCHEMA_VERSION_KEY`, else 1 (shards
    written before versions were recorded carry no such key)."""
    return int((schema.metadata or {}).get(SCHEMA_VERSION_KEY, b"1"))


def _same_type(found: pa.DataType, expected: pa.DataType) -> bool:
    """Type equality that ignores the name of a list's item field (``item`` vs ``element``)."""
    if pa.types.is_list(expected):
        return pa.types.is_list(found) and _same_type(found.value_type, expected.value_type)
    if pa.types.is_struct(expected):
        return (
            pa.types.is_struct(found)
            and found.num_fields == expected.num_fields
            and all(
                f.name == e.name and _same_type(f.type, e.type)
                for f, e in zip((found.field(i) for i in range(found.num_fields)),
                                (expected.field(i) for i in range(expected.num_fields)))
            )
        )
    return found.equals(expected)


def records_to_table(records: Iterable[Mapping[str, Any]]) -> pa.Table:
    """Article records (dicts with the schema's keys, as :func:`adabiobert.jats.parse_jats`
    returns) to a table with exactly :data:`PMC_SHARD_SCHEMA`.

    Raises:
        ValueError: a record without a ``pmcid`` (naming its index and source); pyarrow does not
            enforce non-null fields itself.
    """
    records = list(records)
    for index, record in enumerate(records):
        if not record.get("pmcid"):
            raise ValueError(f"record {index} ({record.get('source')}): pmcid is missing (it is required)")
    return pa.Table.from_pylist(records, schema=PMC_SHARD_SCHEMA)


def read_shard(uri: str, columns: list[str] | None = None) -> pa.Table:
    """Read one shard (local or ``s3://``) after checking its schema.

    Args:
        uri: the Parquet file.
        columns: read only these (all schema columns when None).

    Returns:
        The table, restricted to ``columns`` when given.

    Raises:
        ShardSchemaError: a missing or mistyped column, or a null ``pmcid`` (naming the row).
    """
    filesystem, path = storage.filesystem_for(uri)
    validate_shard_schema(pq.read_schema(path, filesystem=filesystem), uri)
    table = pq.read_table(path, filesystem=filesystem, columns=columns)
    if "pmcid" in table.column_names and table.column("pmcid").null_count:
        row = table.column("pmcid").is_null().to_pylist().index(True)
        raise ShardSchemaError(uri, f"row {row}: pmcid is null (it is required)", column="pmcid")
    return table
