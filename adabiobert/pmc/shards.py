"""The PMC shard: one Parquet file of articles, one row each (see ``docs/pmc-shards.md``).

This module is the one place that knows what a shard is, for every job that writes or reads one
(the ingest job, the Word2Vec build, the annotation job and its exports):

* its schema (:data:`PMC_SHARD_SCHEMA`) and the check against it (:func:`validate_shard_schema`);
* the names in a shard folder: ``part-00000.parquet``, ... (:func:`shard_name`) and the ingest
  job's ``rejects.parquet`` (:data:`REJECTS_FILE`), which is never a shard; the ``batch=<id>``
  folders an appending run adds to a root (:func:`batch_folder`, :func:`shard_batch`);
* listing (:func:`list_shards`, :func:`find_shards`): one rule for every reader (a location
  without a shard is an error; the shards of an unfinished ingest batch, one with a
  :data:`STARTED_MARKER` but no :data:`COMMITTED_MARKER`, are left out), and :class:`Shard`, a
  shard as listed (its name, URI, size and version);
* the footer check that turns a bad shard into rejection rows (:func:`check_shard`);
* the text of an article (:func:`read_articles`, :func:`article_sections`).

Readers check a shard before they use it, so a shard made by another tool fails early with the
name of the column that does not fit.

Schema versions: 1 had the nine columns up to ``source``; 2 adds the article's version and
retraction status (``version``, ``version_source``, ``retracted``), taken from PMC's file lists;
3 (:data:`SCHEMA_VERSION`) adds what PMC's Cloud Service says of an article version
(``pmc_version``, ``license_code``, ``is_manuscript``, ``etag``, ``inventory_date``) and
``removed``, the mark of a tombstone row: a version PMC took down (``docs/pmc-shards.md``,
"The PMC Cloud Service"). Older shards still pass every check: later columns are checked only
when present.
"""

from __future__ import annotations

import datetime
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from adabiobert import storage
from adabiobert.errors import ConfigError, InputNotFoundError, ShardSchemaError

SECTION_TYPE = pa.struct([pa.field("title", pa.string()), pa.field("text", pa.string())])
"""One flattened body section: its title path (``"Methods / Cell culture"``) and its text."""

SCHEMA_VERSION = 3
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
        # Schema version 3 (rows from PMC's Cloud Service; null in rows from packages or files):
        pa.field("pmc_version", pa.int32()),
        pa.field("license_code", pa.string()),
        pa.field("is_manuscript", pa.bool_()),
        pa.field("etag", pa.string()),
        pa.field("inventory_date", pa.string()),
        pa.field("removed", pa.bool_()),
    ],
    metadata={SCHEMA_VERSION_KEY: str(SCHEMA_VERSION).encode()},
)
"""Columns a shard written now has, in this order (``docs/pmc-shards.md``). Extra columns are
allowed and ignored by readers."""

REQUIRED_COLUMNS = ("pmcid", "pmid", "doi", "title", "abstract", "sections", "license", "last_updated", "source")
"""The schema-version-1 columns: every shard, old or new, must have them."""

VERSION_SOURCES = ("pmc-cloud", "filelist", "jats", "mtime")
"""Where ``version`` came from: PMC's Cloud Service (the inventory's last-modified time of the
version's metadata object; ``pmc_version`` is PMC's own number), a legacy package's
``.filelist.csv`` (``LastUpdated``), else the article's latest JATS date, else the file's
modification time."""

TEXT_COLUMNS = ("title", "abstract", "sections")
"""The columns that hold article text (what the Word2Vec build and the tagger read)."""

ARTICLE_COLUMNS = ("pmcid", *TEXT_COLUMNS)
"""An article's id and text: what :func:`read_articles` reads."""

REJECTS_FILE = "rejects.parquet"
"""The ingest job's table of inputs that gave no article, beside its shards; never a shard."""


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
    """Article records (dicts with the schema's keys, as :func:`adabiobert.pmc.jats.parse_jats`
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


# ---------------------------------------------------------------------------------------------
# Names and listing
# ---------------------------------------------------------------------------------------------
def shard_name(index: int) -> str:
    """The name of an ingest run's ``index``-th shard (0-based): ``part-00000.parquet``, ..."""
    return f"part-{index:05d}.parquet"


BATCH_PREFIX = "batch="
"""An appended batch is the folder ``<root>/batch=<id>/`` (``docs/pmc-shards.md``)."""

_BATCH_ID = re.compile(r"[A-Za-z0-9._-]+")


def batch_folder(root: str, batch_id: str) -> str:
    """Where an appending ingest run writes: ``<root>/batch=<batch_id>``.

    Raises:
        ConfigError: an empty id, or one with a character other than letters, digits, ``.``,
            ``_`` and ``-``.
    """
    if not _BATCH_ID.fullmatch(batch_id or ""):
        raise ConfigError(f"batch id {batch_id!r}: use letters, digits, '.', '_' and '-' only (a date, a run id)")
    return storage.join(root, f"{BATCH_PREFIX}{batch_id}")


def new_batch_id(now: datetime.datetime) -> str:
    """The default batch id of a run started at ``now`` (UTC): ``20261126T021500Z``; ids of later
    runs sort after it."""
    return now.astimezone(datetime.timezone.utc).strftime("%Y%m%dT%H%M%SZ")


def shard_batch(name: str) -> str:
    """The batch of a shard from its name under the root: ``""`` for a shard outside every
    ``batch=`` folder (a root written before appends: the oldest), else the batch id. Batches
    are ordered by id."""
    first = name.split("/", 1)[0]
    return first[len(BATCH_PREFIX):] if first.startswith(BATCH_PREFIX) and "/" in name else ""


def is_rejects(uri: str) -> bool:
    """True for the ingest job's rejects table: a file named exactly :data:`REJECTS_FILE`, in any
    folder (``old-rejects.parquet`` is a shard like any other)."""
    return storage.basename(uri) == REJECTS_FILE


@dataclass(frozen=True)
class Shard:
    """One input shard as listed at the start of a run."""

    name: str
    """Its path relative to the listed folder (``part-00000.parquet``, ``2026/part-1.parquet``;
    the file's name when one file was listed): its identity in the annotation manifest, so that a
    copy of the input and the output under other roots is still up to date."""
    uri: str
    """Where it is read from (``s3://...`` or an absolute local path): the ``shard`` column of the
    entity tables, so that a row leads back to the file holding its article's text."""
    size: int
    version: str
    """ETag (S3) or mtime in nanoseconds (local)."""


STARTED_MARKER = "_started.json"
"""Written first into an appended batch's folder by the ingest run that writes it
(``docs/pmc-shards.md``, "Batch markers")."""

COMMITTED_MARKER = "_committed.json"
"""Written last into an appended batch's folder, once its shards, rejects and stats are all there:
the batch's commit point."""


def is_unfinished(names: Iterable[str]) -> bool:
    """True for a folder whose file names (those directly in it) say an ingest run started it and
    has not committed it: :data:`STARTED_MARKER` without :data:`COMMITTED_MARKER`. A folder with
    neither marker (written before markers, or by another tool) is not unfinished."""
    names = set(names)
    return STARTED_MARKER in names and COMMITTED_MARKER not in names


@dataclass(frozen=True)
class ShardListing:
    """What :func:`find_shards` found at a location."""

    shards: list[Shard]
    """The shards to read, sorted by name."""
    unfinished: tuple[str, ...] = ()
    """Folders (relative to the location, ``""`` for the location itself) of unfinished ingest
    batches (:func:`is_unfinished`), whose shards are left out of :attr:`shards`."""


def find_shards(location: str) -> ShardListing:
    """The shards at ``location``, and the unfinished ingest batches whose shards are left out.

    A ``.parquet`` file named on its own is its own shard (:data:`REJECTS_FILE` is none); a folder
    gives every ``.parquet`` file under it (recursively) but :data:`REJECTS_FILE`, files under a
    folder named ``_...`` or ``....`` (:func:`_hidden`), and the files
    of folders an ingest run has started and not committed (:func:`is_unfinished`: a batch being
    written, or left by a killed run until a rerun finishes it). One listing of the folder.

    Args:
        location: a ``.parquet`` file or a folder, local (made absolute) or ``s3://``.

    Returns:
        The listing, possibly without a shard (:func:`list_shards` refuses that).
    """
    location = storage.absolute(location)
    if location.endswith(".parquet"):
        found = None if is_rejects(location) else storage.stat(location)
        return ShardListing([] if found is None else [Shard(storage.basename(location), found.uri, found.size, found.version)])
    files = [(storage.relative_to(f.uri, location), f) for f in storage.list_files(location)]
    by_folder: dict[str, set[str]] = {}
    for relative, _ in files:
        folder, _, name = relative.rpartition("/")
        by_folder.setdefault(folder, set()).add(name)
    unfinished = tuple(sorted(folder for folder, names in by_folder.items() if is_unfinished(names)))
    shards = [Shard(relative, f.uri, f.size, f.version) for relative, f in files
              if relative.endswith(".parquet") and not is_rejects(f.uri) and not _hidden(relative)
              and relative.rpartition("/")[0] not in unfinished]
    return ShardListing(shards, unfinished)


def list_shards(location: str) -> list[Shard]:
    """The shards at ``location``, sorted by name (:func:`find_shards`: without the unfinished
    ingest batches, and without whatever sits under a folder whose name starts with ``_`` or
    ``.``, such as the sync's state in ``_sync/`` and a batch's ``_units/`` markers; Spark and
    Hive skip such names too).

    Args:
        location: a ``.parquet`` file or a folder, local (made absolute) or ``s3://``.

    Returns:
        At least one shard.

    Raises:
        InputNotFoundError: (a ``FileNotFoundError``) there is no shard there: no such file, a
            folder that does not exist, is empty, holds only rejects or only unfinished batches,
            or ``rejects.parquet`` named on its own. The rule is the same locally and on S3, where
            a missing prefix and an empty one cannot be told apart: a job given a location
            without a shard refuses it, rather than finishing with nothing done.
    """
    listing = find_shards(location)
    if not listing.shards:
        location = storage.absolute(location)
        unfinished = (f"; it holds {len(listing.unfinished)} unfinished ingest batch(es) ({', '.join(listing.unfinished) or '.'}), "
                      "which a rerun of their ingest finishes" if listing.unfinished else "")
        raise InputNotFoundError(f"{location}: no shard there (no such .parquet file, or no .parquet file other than "
                                 f"{REJECTS_FILE} under it{unfinished}); pass the --output folder of jobs/ingest_pmc.py, or one shard")
    return listing.shards


def _hidden(name: str) -> bool:
    """True for a path under a folder named ``_...`` or ``....`` (relative to the listed root)."""
    return any(part.startswith(("_", ".")) for part in name.split("/")[:-1])


# ---------------------------------------------------------------------------------------------
# The footer check
# ---------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ShardCheck:
    """What a shard's footer and ``pmcid`` column say about it, before its text is read."""

    shard: Shard
    documents: int
    """Rows in the shard (0 when unreadable)."""
    rejections: tuple[tuple[int | None, str | None, str, str], ...]
    """``(row_index, pmcid, reason, detail)`` found by the check: ``unreadable`` (the footer; no
    row index), ``bad_schema`` (every row), ``null_pmcid`` (that row)."""
    expected: int
    """Rows that can be read as articles (rows with a pmcid; 0 when the shard cannot be used)."""
    failure: str | None = None
    """Why its ``pmcid`` column could not be read though its footer could (see :func:`read_failure`)."""
    error: ShardSchemaError | None = None
    """The unreadable footer or the schema mismatch behind the ``unreadable`` or ``bad_schema`` rows."""

    def require_usable(self) -> None:
        """For readers that stop at a bad shard (the Word2Vec build) rather than record it.

        Raises:
            ShardSchemaError: naming the shard: an unreadable footer or ``pmcid`` column, or a
                missing or mistyped column (null pmcids are not an error here).
        """
        if self.error is not None:
            raise self.error
        if self.failure is not None:
            raise ShardSchemaError(self.shard.uri, self.failure.removeprefix(f"{self.shard.uri}: "))


def check_shard(shard: Shard) -> ShardCheck:
    """Open a shard's footer and ``pmcid`` column; turn what is wrong into rejection rows.

    Never raises for a bad shard: an unreadable footer, a missing or mistyped column and null
    pmcids become :attr:`ShardCheck.rejections`; an unreadable ``pmcid`` column becomes
    :attr:`ShardCheck.failure`.
    """
    filesystem, path = storage.filesystem_for(shard.uri)
    try:
        metadata = pq.read_metadata(path, filesystem=filesystem)
    except (OSError, pa.ArrowException) as error:
        detail = f"{type(error).__name__}: {str(error)[:300]}"
        return ShardCheck(shard, 0, ((None, None, "unreadable", detail),), 0,
                          error=ShardSchemaError(shard.uri, f"unreadable footer: {detail}"))
    rows = metadata.num_rows
    schema = metadata.schema.to_arrow_schema()
    pmcids: list[str | None] = [None] * rows
    if schema.get_field_index("pmcid") >= 0:
        try:
            pmcids = pq.read_table(path, filesystem=filesystem, columns=["pmcid"]).column("pmcid").to_pylist()
        except (OSError, pa.ArrowException) as error:
            return ShardCheck(shard, rows, (), 0, failure=read_failure(shard.uri, error))
    try:
        validate_shard_schema(schema, shard.uri)
    except ShardSchemaError as error:
        detail = str(error).removeprefix(f"{shard.uri}: ")
        rejections = tuple((i, pmcid, "bad_schema", detail) for i, pmcid in enumerate(pmcids))
        return ShardCheck(shard, rows, rejections, 0, error=error)
    nulls = tuple((i, None, "null_pmcid", "pmcid is null") for i, pmcid in enumerate(pmcids) if pmcid is None)
    return ShardCheck(shard, rows, nulls, rows - len(nulls))


def read_failure(uri: str, error: BaseException) -> str:
    """How a shard's data failed to read, on one line: its URI and the error."""
    message = " ".join(str(error).split())[:300]
    return f"{uri}: {type(error).__name__}: {message}"


# ---------------------------------------------------------------------------------------------
# Article text
# ---------------------------------------------------------------------------------------------
def read_articles(uri: str) -> pa.Table:
    """Every row of a shard's :data:`ARTICLE_COLUMNS`, read whole (no check: see :func:`check_shard`).

    Raises:
        OSError, pyarrow.ArrowException: the data cannot be read (a damaged page, a request).
    """
    filesystem, path = storage.filesystem_for(uri)
    return pq.read_table(path, filesystem=filesystem, columns=list(ARTICLE_COLUMNS))


@dataclass(frozen=True)
class SectionText:
    """One piece of an article that holds sentences."""

    section: str
    """``title``, ``abstract``, or the body section's title path (``body`` when it has none)."""
    section_index: int
    """0 title, 1 abstract, 2 + i body section i (kept even when earlier pieces are empty)."""
    text: str


def article_sections(
    title: str | None, abstract: str | None, sections: Sequence[Mapping[str, Any]] | None
) -> list[SectionText]:
    """The non-empty texts of one shard row, in article order: title, abstract, each body section's
    text (section titles such as "Methods" are headings, not text, and are only its name)."""
    pieces = [SectionText("title", 0, title or ""), SectionText("abstract", 1, abstract or "")]
    for i, section in enumerate(sections or ()):
        pieces.append(SectionText((section or {}).get("title") or "body", 2 + i, (section or {}).get("text") or ""))
    return [piece for piece in pieces if piece.text]
