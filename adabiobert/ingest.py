"""PMC OA files to Parquet shards: the library side of ``jobs/ingest_pmc.py``.

Inputs are ``.nxml`` files, PMC OA ``.tar.gz`` packages, or folders of them, local or on S3.
Articles are written in input order to ``part-00000.parquet``, ``part-00001.parquet``, ... with
``articles_per_shard`` rows each (the last one may hold fewer), so the same inputs always give
the same shards. Files that cannot be read go to ``rejects.parquet`` (source, reason) and the run
goes on; ``ingest_stats.json`` sums the run up. See ``docs/pmc-shards.md``.
"""

from __future__ import annotations

import json
import os
import tarfile
import time
import zlib
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
from tqdm import tqdm

from adabiobert import storage
from adabiobert.errors import InputNotFoundError, OutputExistsError
from adabiobert.jats import JatsError, iter_package_members, parse_jats
from adabiobert.pmc_schema import records_to_table

INPUT_SUFFIXES = (".nxml", ".xml", ".tar.gz", ".tgz")
"""What is taken from an input folder; a file named directly is read whatever its name."""

PACKAGE_SUFFIXES = (".tar.gz", ".tgz")

REJECTS_SCHEMA = pa.schema([pa.field("source", pa.string(), nullable=False),
                            pa.field("reason", pa.string(), nullable=False)])
"""``rejects.parquet``: one row per file (or package member) that gave no article."""

# What a bad input can raise; anything else is a bug or an outage and stops the run.
_INPUT_ERRORS = (JatsError, OSError, tarfile.TarError, EOFError, zlib.error, UnicodeError)


@dataclass(frozen=True)
class IngestConfig:
    """What to ingest and where to write it."""

    inputs: tuple[str, ...]
    """Files, folders or ``.tar.gz`` packages, local paths or ``s3://`` URIs, read in this order."""
    output: str
    """Folder (local or ``s3://``) for the shards, ``rejects.parquet`` and ``ingest_stats.json``.
    It must not hold ``.parquet`` files yet: a second run never mixes with an older one."""
    articles_per_shard: int = 1000
    """Rows per shard (the last shard may hold fewer)."""
    show_progress: bool = True
    """Show a tqdm bar over the input files."""

    def __post_init__(self) -> None:
        if not self.inputs:
            raise ValueError("IngestConfig.inputs is empty; name at least one file or folder")
        if self.articles_per_shard < 1:
            raise ValueError(f"IngestConfig.articles_per_shard must be >= 1, got {self.articles_per_shard}")


@dataclass(frozen=True)
class IngestStats:
    """What one run did (written as ``ingest_stats.json``)."""

    files: int
    """Input files read (a package counts once)."""
    articles: int
    """Articles written to shards."""
    rejected: int
    """Rows of ``rejects.parquet``."""
    shards: tuple[str, ...]
    """Shard file names, in order."""
    seconds: float
    """Wall-clock time of the run."""
    config: dict[str, Any] = field(default_factory=dict)
    """The resolved :class:`IngestConfig`."""


@dataclass(frozen=True)
class Reject:
    """A file or package member that gave no article: one row of ``rejects.parquet``."""

    source: str
    reason: str


def ingest(config: IngestConfig) -> IngestStats:
    """Read every input article and write shards, rejects and stats to ``config.output``.

    Raises:
        OutputExistsError: (a ``FileExistsError``) ``config.output`` already holds Parquet files.
        InputNotFoundError: none of ``config.inputs`` exists or holds an input file (when some do,
            the others become rejects and the run goes on).
    """
    started = time.perf_counter()
    existing = storage.list_files(config.output, (".parquet",))
    if existing:
        raise OutputExistsError(f"{config.output} already holds Parquet files ({existing[0].uri}): a run never "
                                "mixes with an older one; choose an empty --output folder, or delete the old shards")
    files, rejects = find_inputs(config.inputs)
    if not files:
        raise InputNotFoundError(f"no input found: {'; '.join(r.source + ': ' + r.reason for r in rejects)}; name "
                                 f"{'/'.join(INPUT_SUFFIXES)} files or folders that hold them")
    shards: list[str] = []
    pending: list[dict[str, Any]] = []
    seen: set[str] = set()
    articles = 0
    progress = tqdm(files, desc="ingest", unit="file", disable=not config.show_progress)
    for uri in progress:
        for item in iter_articles(uri):
            if isinstance(item, Reject):
                rejects.append(item)
            elif item["pmcid"] in seen:
                rejects.append(Reject(item["source"], f"duplicate pmcid {item['pmcid']}: an earlier input had it"))
            else:
                seen.add(item["pmcid"])
                pending.append(item)
                if len(pending) == config.articles_per_shard:
                    shards.append(_write_shard(config.output, len(shards), pending))
                    articles += len(pending)
                    pending = []
        progress.set_postfix(articles=articles + len(pending), rejected=len(rejects))
    if pending:
        shards.append(_write_shard(config.output, len(shards), pending))
        articles += len(pending)
    _write_table(storage.join(config.output, "rejects.parquet"),
                 pa.Table.from_pylist([asdict(r) for r in rejects], schema=REJECTS_SCHEMA))
    stats = IngestStats(len(files), articles, len(rejects), tuple(shards), round(time.perf_counter() - started, 3),
                        {**asdict(config), "inputs": list(config.inputs)})
    storage.write_bytes(storage.join(config.output, "ingest_stats.json"),
                        json.dumps(asdict(stats), indent=2).encode())
    return stats


def find_inputs(inputs: tuple[str, ...]) -> tuple[list[str], list[Reject]]:
    """Expand folders into their input files (sorted); inputs that do not exist become rejects."""
    files: list[str] = []
    rejects: list[Reject] = []
    for uri in inputs:
        if (storage.exists(uri) if storage.is_s3(uri) else os.path.isfile(uri)):
            files.append(uri)
            continue
        found = [info.uri for info in storage.list_files(uri, INPUT_SUFFIXES)]
        if not found:
            rejects.append(Reject(uri, f"no such file, or no {'/'.join(INPUT_SUFFIXES)} files under it"))
        files.extend(found)
    return files, rejects


def iter_articles(uri: str) -> Iterator[dict[str, Any] | Reject]:
    """The article records of one input file, or rejects for what cannot be read.

    A package yields one item per ``.nxml`` member; a package damaged part-way yields the
    members before the damage and then one reject for the package.
    """
    if uri.endswith(PACKAGE_SUFFIXES):
        filesystem, path = storage.filesystem_for(uri)
        members = 0
        try:
            # compression=None: the tar reader decompresses; pyarrow would otherwise do it too.
            with filesystem.open_input_stream(path, compression=None) as stream:
                for member, data, modified in iter_package_members(stream, uri):
                    members += 1
                    yield _parse(data, member, lambda: modified)
        except _INPUT_ERRORS as error:
            yield Reject(uri, _reason(error))
            return
        if not members:
            yield Reject(uri, "the package holds no .nxml file")
        return
    try:
        data = storage.read_bytes(uri)
    except _INPUT_ERRORS as error:
        yield Reject(uri, _reason(error))
        return
    yield _parse(data, uri, lambda: _modified(uri))


def _parse(data: bytes, source: str, modified: Callable[[], datetime | None]) -> dict[str, Any] | Reject:
    try:
        record = parse_jats(data, source)
    except _INPUT_ERRORS as error:
        return Reject(source, _reason(error))
    if record["last_updated"] is None:  # the article has no date: ask the store (one more request)
        record["last_updated"] = modified()
    return record


def _modified(uri: str) -> datetime | None:
    filesystem, path = storage.filesystem_for(uri)
    return filesystem.get_file_info(path).mtime


def _reason(error: BaseException) -> str:
    if isinstance(error, JatsError):
        return f"line {error.line}: {error.reason}" if error.line else error.reason
    return f"{type(error).__name__}: {error}"


def _write_shard(output: str, index: int, records: list[dict[str, Any]]) -> str:
    name = f"part-{index:05d}.parquet"
    _write_table(storage.join(output, name), records_to_table(records))
    return name


def _write_table(uri: str, table: pa.Table) -> None:
    sink = pa.BufferOutputStream()
    pq.write_table(table, sink, compression="zstd")
    storage.write_bytes(uri, sink.getvalue().to_pybytes())
