"""PMC's daily S3 Inventory of ``metadata/``: the newest one, read into one Arrow table, and the
difference between two of them, which is all the change list PMC publishes.

Checked (2026-12, with the project's ``search`` tool):

- Layout: ``inventory-reports/pmc-oa-opendata/metadata/<YYYY-MM-DDTHH-MMZ>/manifest.json``
  (PMC's folders end ``T01-00Z``), data files under ``.../metadata/data/<uuid>.csv.gz``, and a
  ``hive/`` folder; kept 30 days (bucket ``README.txt``; a published audit of the bucket lists
  the manifest of ``2026-09-01T01-00Z`` with five data files of 7 to 80 MB and 9,284,625
  records). This is S3 Inventory's documented layout, ``destination-prefix/source-bucket/
  config-ID/YYYY-MM-DDTHH-MMZ/manifest.json`` (docs.aws.amazon.com, "Locating your inventory
  list"); the folder's time is when S3 began scanning, so the inventory lags the bucket a little.
- ``manifest.json``: ``sourceBucket``, ``destinationBucket``, ``version`` (``2016-11-30``),
  ``creationTimestamp``, ``fileFormat`` (``CSV``), ``fileSchema`` (the CSV's columns in order,
  comma-separated; PMC's is ``Bucket, Key, LastModifiedDate, ETag``) and ``files``, each
  ``{key, size, MD5checksum}`` with ``key`` relative to the destination bucket (here the same
  bucket). The CSVs are gzipped, without a header, every field quoted. This module takes the
  column order from ``fileSchema`` (falling back to PMC's four columns when it is absent),
  checks each file's size and MD5 against the manifest, and refuses other formats (ORC, Parquet).
- S3 Inventory URL-encodes the keys of a CSV inventory (AWS's S3 Inventory guide); article keys
  (``metadata/PMC13901.1.json``) hold no character that encoding changes. Any other key is
  counted and reported, never dropped quietly.

Memory and time: the data files are read one at a time, each streamed in blocks through Arrow's
CSV reader; rows never become Python objects. 8 million versions take 0.48 GB as a table. Reading
the newest inventory (245 MB of gzipped CSV), reading the previous snapshot, diffing and saving the
new snapshot took 8.4 s (10.5 CPU-seconds) and a peak RSS of 1.63 GB on the 2-core development
machine (``benchmarks/inventory_diff.py``, ``benchmarks/results/inventory_diff.json``).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import date, datetime, timezone

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from adabiobert import storage
from adabiobert.errors import InventoryError
from adabiobert.pmc.opendata import INVENTORY_PREFIX

INVENTORY_SCHEMA = pa.schema([
    ("pmcid", pa.string()),
    ("version", pa.int32()),
    ("etag", pa.string()),
    ("last_modified", pa.timestamp("ms", tz="UTC")),
])
"""One row per article version listed: ``metadata/<pmcid>.<version>.json``, its ETag (no quotes)
and its last-modified time."""
KEYS = ["pmcid", "version"]

DEFAULT_COLUMNS = ("Bucket", "Key", "LastModifiedDate", "ETag")
"""PMC's ``fileSchema``; used only for a manifest that gives none."""
NEEDED = ("Key", "LastModifiedDate", "ETag")
MANIFEST = "manifest.json"
FOLDER_FORMAT = "%Y-%m-%dT%H-%MZ"
ARTICLE_KEY = r"^metadata/(?P<pmcid>PMC[0-9]{1,12})\.(?P<version>[1-9][0-9]{0,5})\.json$"
"""An article version's metadata key (PMC numbers are eight digits in 2026, versions one)."""
EXAMPLES = 10
"""How many keys that are not articles an :class:`Inventory` keeps as examples."""
BLOCK_BYTES = 16 << 20
"""Uncompressed CSV bytes per block of the streaming reader."""


@dataclass(frozen=True)
class InventoryFile:
    """One data file named by a manifest."""

    key: str
    """Its key in the bucket, as the manifest gives it."""
    uri: str
    """The key under the root the inventory was found in."""
    size: int | None
    md5: str | None


@dataclass(frozen=True)
class InventoryManifest:
    """One day's ``manifest.json``."""

    date: datetime
    """The inventory's folder time, UTC (``2026-09-04T01-00Z`` -> 2026-09-04 01:00)."""
    uri: str
    files: tuple[InventoryFile, ...]
    columns: tuple[str, ...]
    """The CSV columns in order (``fileSchema``)."""
    source_bucket: str | None
    """``sourceBucket``: the bucket listed (``pmc-oa-opendata``)."""

    @property
    def folder(self) -> str:
        """``2026-09-04T01-00Z``: how PMC names the day's folder."""
        return self.date.strftime(FOLDER_FORMAT)


@dataclass(frozen=True)
class Inventory:
    """One inventory as a table of article versions."""

    manifest: InventoryManifest
    table: pa.Table
    """:data:`INVENTORY_SCHEMA`, in the files' order."""
    not_articles: int
    """Keys that are not ``metadata/PMC<digits>.<version>.json``, counted, not in ``table``."""
    not_article_examples: tuple[str, ...]
    """The first :data:`EXAMPLES` of them."""


@dataclass(frozen=True)
class InventoryDiff:
    """What changed between two inventories; three tables of :data:`INVENTORY_SCHEMA`, each
    sorted by PMC number then version (except ``added`` against no previous inventory, which is
    the current one as read)."""

    added: pa.Table
    """Versions listed now and not before (a new article, or a new version of one)."""
    changed: pa.Table
    """Versions listed both times whose ETag or last-modified time differ (an object replaced);
    the current values."""
    removed: pa.Table
    """Versions listed before and not now; the previous values."""

    def counts(self) -> dict[str, int]:
        return {"added": self.added.num_rows, "changed": self.changed.num_rows, "removed": self.removed.num_rows}


# ---------------------------------------------------------------------------------------------
# Finding and reading manifests
# ---------------------------------------------------------------------------------------------
def inventory_root(root_uri: str) -> str:
    """The folder of the day folders under a bucket root (``s3://pmc-oa-opendata`` or a local copy)."""
    return storage.join(root_uri, *INVENTORY_PREFIX.strip("/").split("/"))


def list_manifests(root_uri: str) -> list[tuple[datetime, str]]:
    """Every complete inventory under ``root_uri`` (a day folder with its ``manifest.json``, which
    S3 writes after the data files), oldest first, as ``(date, manifest uri)``. Folders whose
    names are not dates (``data``, ``hive``) are not inventories."""
    folder = inventory_root(root_uri)
    found = []
    for info in storage.list_files(folder, (MANIFEST,)):
        parts = storage.relative_to(info.uri, folder).split("/")
        if len(parts) != 2 or parts[1] != MANIFEST:
            continue
        try:
            when = datetime.strptime(parts[0], FOLDER_FORMAT).replace(tzinfo=timezone.utc)
        except ValueError:
            continue
        found.append((when, info.uri))
    return sorted(found)


def latest_inventory(root_uri: str, on_or_before: date | datetime | None = None) -> InventoryManifest:
    """The newest inventory under ``root_uri``, or the newest not after ``on_or_before``.

    Args:
        root_uri: the bucket root, ``s3://pmc-oa-opendata`` or a local folder laid out the same.
        on_or_before: a day (inventories of that day count) or a time (a naive one is UTC); None
            for the newest.

    Raises:
        InventoryError: no inventory there (or none that early), or its manifest is unusable.
    """
    manifests = list_manifests(root_uri)
    if on_or_before is not None:
        manifests = [(when, uri) for when, uri in manifests if _not_after(when, on_or_before)]
    if not manifests:
        bound = "" if on_or_before is None else f" on or before {on_or_before.isoformat()}"
        raise InventoryError(inventory_root(root_uri), f"no inventory{bound} (no <YYYY-MM-DDTHH-MMZ>/{MANIFEST})")
    when, uri = manifests[-1]
    return read_manifest(uri, root_uri, when)


def _not_after(when: datetime, bound: date | datetime) -> bool:
    if isinstance(bound, datetime):
        return when <= (bound if bound.tzinfo else bound.replace(tzinfo=timezone.utc))
    return when.date() <= bound


def read_manifest(uri: str, root_uri: str, when: datetime) -> InventoryManifest:
    """Read one ``manifest.json``; its data files are resolved under ``root_uri``.

    Raises:
        InventoryError: unreadable JSON, a format other than CSV, a ``fileSchema`` without
            ``Key``, ``LastModifiedDate`` and ``ETag``, or a malformed ``files`` entry.
    """
    try:
        manifest = json.loads(storage.read_bytes(uri))
    except FileNotFoundError:
        raise InventoryError(uri, "manifest is missing") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise InventoryError(uri, f"manifest is not JSON: {error}") from None
    if not isinstance(manifest, dict):
        raise InventoryError(uri, "manifest is not a JSON object")
    file_format = manifest.get("fileFormat", "CSV")
    if file_format != "CSV":
        raise InventoryError(uri, f"fileFormat {file_format!r}; only CSV inventories are read")
    schema = manifest.get("fileSchema")
    columns = DEFAULT_COLUMNS if schema is None else tuple(part.strip() for part in str(schema).split(","))
    missing = [name for name in NEEDED if name not in columns]
    if missing or len(set(columns)) != len(columns):
        raise InventoryError(uri, f"fileSchema {schema!r} lacks {', '.join(missing) or 'unique names'}")
    entries = manifest.get("files")
    if not isinstance(entries, list):
        raise InventoryError(uri, "manifest has no files list")
    files = []
    for number, entry in enumerate(entries, 1):
        if not isinstance(entry, dict) or not isinstance(entry.get("key"), str):
            raise InventoryError(uri, f"files[{number}] has no key")
        size, md5 = entry.get("size"), entry.get("MD5checksum")
        if size is not None and (isinstance(size, bool) or not isinstance(size, int)):
            raise InventoryError(uri, f"files[{number}] size {size!r} is not an integer")
        if md5 is not None and not isinstance(md5, str):
            raise InventoryError(uri, f"files[{number}] MD5checksum {md5!r} is not text")
        key = entry["key"]
        files.append(InventoryFile(key, storage.join(root_uri, *key.split("/")), size, md5))
    source = manifest.get("sourceBucket")
    return InventoryManifest(when, uri, tuple(files), columns, source if isinstance(source, str) else None)


# ---------------------------------------------------------------------------------------------
# Reading the data files into one table
# ---------------------------------------------------------------------------------------------
def read_inventory(manifest: InventoryManifest) -> Inventory:
    """Every article version the inventory lists, as one table.

    The data files are read one by one (each checked against the manifest's size and MD5), and
    each is parsed in blocks of :data:`BLOCK_BYTES` whose rows stay Arrow arrays.

    Raises:
        InventoryError: a data file missing, of the wrong size or MD5, not gzip, not CSV of the
            manifest's columns, or an article row without an ETag or a last-modified time.
    """
    batches: list[pa.RecordBatch] = []
    not_articles = 0
    examples: list[str] = []
    for file in manifest.files:
        for batch, rejected in _read_file(file, manifest.columns):
            batches.append(batch)
            not_articles += len(rejected)
            examples.extend(rejected[:EXAMPLES - len(examples)].to_pylist())
    table = pa.Table.from_batches(batches, INVENTORY_SCHEMA)
    return Inventory(manifest, table, not_articles, tuple(examples))


def _read_file(file: InventoryFile, columns: tuple[str, ...]):
    """Yield ``(article rows, keys that are not articles)`` per block of one data file."""
    try:
        data = storage.read_bytes(file.uri)
    except FileNotFoundError:
        raise InventoryError(file.uri, "data file named by the manifest is missing") from None
    if file.size is not None and len(data) != file.size:
        raise InventoryError(file.uri, f"{len(data)} bytes, the manifest says {file.size}")
    if file.md5 is not None and hashlib.md5(data).hexdigest() != file.md5.lower():
        raise InventoryError(file.uri, "MD5 differs from the manifest's MD5checksum (a corrupt or partial file)")
    text_columns = {name: pa.string() for name in NEEDED if name != "LastModifiedDate"}
    options = (
        pacsv.ReadOptions(column_names=list(columns), block_size=BLOCK_BYTES),
        pacsv.ParseOptions(newlines_in_values=False),
        pacsv.ConvertOptions(include_columns=list(NEEDED), strings_can_be_null=False,
                             column_types={**text_columns, "LastModifiedDate": pa.timestamp("ms", tz="UTC")}),
    )
    stream = pa.CompressedInputStream(pa.BufferReader(data), "gzip")
    try:
        try:
            reader = pacsv.open_csv(stream, *options)
        except pa.ArrowInvalid as error:
            if "Empty CSV file" in str(error):  # a data file of no rows
                return
            raise
        for batch in reader:
            yield _articles(batch, file.uri)
    except (pa.ArrowInvalid, OSError) as error:  # a bad row, or a bad gzip stream
        raise InventoryError(file.uri, f"not a gzipped CSV of columns {', '.join(columns)}: {error}") from None


def _articles(batch: pa.RecordBatch, source: str) -> tuple[pa.RecordBatch, pa.Array]:
    """The article rows of one block in :data:`INVENTORY_SCHEMA`, and the keys that are not articles."""
    keys = batch.column("Key")
    parts = pc.extract_regex(keys, ARTICLE_KEY)  # struct<pmcid, version>, null where no match
    matched = parts.is_valid()
    rejected = keys.filter(pc.invert(matched))
    parts = parts.filter(matched)
    etag = pc.utf8_trim(batch.column("ETag").filter(matched), '"')
    modified = batch.column("LastModifiedDate").filter(matched)
    if modified.null_count or pc.any(pc.equal(pc.utf8_length(etag), 0)).as_py():
        raise InventoryError(source, "an article row has no ETag or no LastModifiedDate")
    articles = pa.RecordBatch.from_arrays(
        [parts.field("pmcid"), pc.cast(parts.field("version"), pa.int32()), etag, modified], schema=INVENTORY_SCHEMA)
    return articles, rejected


# ---------------------------------------------------------------------------------------------
# The difference between two inventories
# ---------------------------------------------------------------------------------------------
def diff_inventories(previous: pa.Table | None, current: pa.Table) -> InventoryDiff:
    """What was added, changed and removed from ``previous`` to ``current`` (both
    :data:`INVENTORY_SCHEMA`), keyed by ``(pmcid, version)``, with Arrow compute only.

    The tables are compared a tenth at a time (:data:`PARTITIONS`, by the PMC number's last
    digit). In each part every version becomes one integer key (PMC number x
    :data:`VERSION_SPAN` + version); a hash lookup of the current keys among the previous ones
    (``index_in``) gives what is new and, through the previous row it points to, whether the
    ETag or the date differ; a second (``is_in``) what is gone. Keys are unique in an S3
    Inventory; a table with a key twice would give that key's rows twice.

    Args:
        previous: the inventory of the last successful sync (:func:`read_snapshot`), or None
            for a first run, where everything is added.
        current: the newest inventory's table.

    Raises:
        ValueError: a table not of :data:`INVENTORY_SCHEMA`, or a row whose ``pmcid`` is not
            ``PMC<digits>`` or whose version is not below :data:`VERSION_SPAN`.
    """
    _check_schema(current, "current")
    empty = INVENTORY_SCHEMA.empty_table()
    if previous is None:
        return InventoryDiff(current, empty, empty)
    _check_schema(previous, "previous")
    part_now, part_before = _partition(current, "current"), _partition(previous, "previous")
    added, changed, removed = [], [], []
    for part in range(PARTITIONS):
        now = current.filter(pc.equal(part_now, part))  # a tenth of each table
        before = previous.filter(pc.equal(part_before, part)).combine_chunks()
        keys_now, keys_before = _row_keys(now, "current"), _row_keys(before, "previous")
        match = pc.index_in(keys_now, value_set=keys_before)  # (rows of now,) row of before, or null
        differs = pc.fill_null(pc.or_(
            pc.not_equal(now.column("etag"), before.column("etag").take(match)),
            pc.not_equal(now.column("last_modified"), before.column("last_modified").take(match)),
        ), False)
        added.append(now.filter(match.is_null()))
        changed.append(now.filter(differs))
        removed.append(before.filter(pc.invert(pc.is_in(keys_before, value_set=keys_now))))
    return InventoryDiff(*(_sorted(pa.concat_tables(parts)) for parts in (added, changed, removed)))


PARTITIONS = 10
"""The tables are compared a tenth at a time, by the last digit of the PMC number, so the copies and
hash tables of one part are all the memory the comparison adds: 0.12 GB of RSS at 8 million
versions, where a full outer join of the whole tables adds over 2 GB (and one lookup over all the
keys 0.55 GB)."""


def _partition(table: pa.Table, name: str) -> pa.ChunkedArray:
    """Each row's part: the last digit of its ``pmcid``, as int8."""
    try:
        return pc.cast(pc.utf8_slice_codeunits(table.column("pmcid"), -1), pa.int8())
    except pa.ArrowInvalid:
        raise ValueError(f"the {name} inventory has a pmcid that is not PMC<digits>") from None


VERSION_SPAN = 1_000_000
"""Versions are below this (six digits, :data:`ARTICLE_KEY`), so ``number x span + version`` is a
unique int64 for PMC numbers up to twelve digits."""


def _row_keys(table: pa.Table, name: str) -> pa.Array:
    """One int64 per row: PMC number x :data:`VERSION_SPAN` + version."""
    versions = table.column("version")
    if table.num_rows and not 0 < pc.min(versions).as_py() <= pc.max(versions).as_py() < VERSION_SPAN:
        raise ValueError(f"the {name} inventory has a version outside 1..{VERSION_SPAN - 1}")
    pmcids = table.column("pmcid")
    try:
        if table.num_rows and not pc.all(pc.starts_with(pmcids, "PMC")).as_py():
            raise pa.ArrowInvalid("no PMC prefix")
        number = pc.cast(pc.utf8_slice_codeunits(pmcids, 3), pa.int64())  # fails on anything but digits and "-"
        if table.num_rows and pc.min(number).as_py() < 0:
            raise pa.ArrowInvalid("a negative number")
    except pa.ArrowInvalid:
        raise ValueError(f"the {name} inventory has a pmcid that is not PMC<digits>") from None
    return pc.add(pc.multiply(number, VERSION_SPAN), pc.cast(versions, pa.int64())).combine_chunks()


def _sorted(table: pa.Table) -> pa.Table:
    """By PMC number, then version (numerically: PMC9 before PMC10), as one chunk."""
    return table.take(pc.sort_indices(_row_keys(table, "result"))).combine_chunks()


def _check_schema(table: pa.Table, name: str) -> None:
    if not table.schema.equals(INVENTORY_SCHEMA):
        raise ValueError(f"the {name} inventory has schema\n{table.schema}\nnot\n{INVENTORY_SCHEMA}")


# ---------------------------------------------------------------------------------------------
# The snapshot of the last successful sync
# ---------------------------------------------------------------------------------------------
def write_snapshot(table: pa.Table, uri: str) -> None:
    """Save an inventory table as one zstd Parquet file at ``uri``, replacing what was there.

    The file is written beside the target under a hidden name, then moved into place, so a
    reader finds the old snapshot or the new one, never a part.

    Raises:
        ValueError: ``table`` is not of :data:`INVENTORY_SCHEMA`.
    """
    _check_schema(table, "snapshot")
    staging = storage.hidden_sibling(storage.absolute(uri), "tmp")
    try:
        with storage.open_output(staging) as sink:
            pq.write_table(table, sink, compression="zstd")
        storage.move(staging, uri)
    except BaseException:
        storage.delete([staging])
        raise


def read_snapshot(uri: str) -> pa.Table | None:
    """The inventory table saved at ``uri`` by :func:`write_snapshot`; None when there is none.

    Raises:
        InventoryError: the file is not Parquet or not of :data:`INVENTORY_SCHEMA`.
    """
    if storage.stat(uri) is None:
        return None
    filesystem, path = storage.filesystem_for(uri)
    try:
        table = pq.read_table(path, filesystem=filesystem)
    except (pa.ArrowInvalid, OSError) as error:
        raise InventoryError(uri, f"not a readable Parquet snapshot: {error}") from None
    if not table.schema.remove_metadata().equals(INVENTORY_SCHEMA):
        raise InventoryError(uri, f"snapshot schema is\n{table.schema}\nnot\n{INVENTORY_SCHEMA}")
    return table.replace_schema_metadata(None)
