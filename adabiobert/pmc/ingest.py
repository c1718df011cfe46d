"""PMC OA files to Parquet shards: the library side of ``jobs/ingest_pmc.py``.

Inputs are ``.nxml`` files, PMC OA ``.tar.gz`` packages, or folders of them, local or on S3.
A package read with the ``.filelist.csv`` PMC put beside its bulk packages (legacy archives:
PMC removed them in August 2026; the nightly source is ``adabiobert/pmc/sync.py``) takes each
article's version (``LastUpdated``) and retraction status from it (``adabiobert/pmc/filelist.py``).
Articles are written in input order to ``part-00000.parquet``, ``part-00001.parquet``, ... with
``articles_per_shard`` rows each (the last one may hold fewer), so the same inputs always give
the same shards. Files that cannot be read go to ``rejects.parquet`` (source, reason) and the run
goes on; ``ingest_stats.json`` sums the run up. See ``docs/pmc-shards.md``.

:func:`ingest` runs in one process; ``adabiobert.distributed.ingest.ingest_parallel`` writes the
same files on Ray (a pool of tasks), packages (or groups of loose files) at once (``adabiobert/pmc/ingest_units.py``).
"""

from __future__ import annotations

import json
import tarfile
import time
import zlib
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field, replace
from datetime import datetime, timezone
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from adabiobert import storage
from adabiobert.errors import InputNotFoundError, OutputExistsError
from adabiobert.job_configs import IngestConfig
from adabiobert.output_lease import OutputLease, output_lease
from adabiobert.pmc import filelist
from adabiobert.pmc.jats import JatsError, iter_package_members, parse_jats
from adabiobert.pmc.shards import (
    BATCH_PREFIX,
    COMMITTED_MARKER,
    REJECTS_FILE,
    STARTED_MARKER,
    batch_folder,
    find_shards,
    is_unfinished,
    new_batch_id,
    records_to_table,
    shard_batch,
    shard_name,
)
from adabiobert.pmc.versions import newest_versions, read_root_versions, version_stamp
from adabiobert.progress import Progress

INPUT_SUFFIXES = (".nxml", ".xml", ".tar.gz", ".tgz")
"""What is taken from an input folder; a file named directly is read whatever its name."""

PACKAGE_SUFFIXES = (".tar.gz", ".tgz")

REJECTS_SCHEMA = pa.schema([pa.field("source", pa.string(), nullable=False),
                            pa.field("reason", pa.string(), nullable=False)])
"""``rejects.parquet`` (:data:`~adabiobert.pmc.shards.REJECTS_FILE`): one row per file (or package
member) that gave no article."""

# What a bad input can raise; anything else is a bug or an outage and stops the run.
_INPUT_ERRORS = (JatsError, OSError, tarfile.TarError, EOFError, zlib.error, UnicodeError)


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
    file_lists: int = 0
    """Packages read with a ``.filelist.csv`` beside them."""
    without_file_list: int = 0
    """Packages read with no file list beside them: their articles' versions come from the JATS
    dates (or the member's mtime), and ``retracted`` is null."""
    unlisted_members: int = 0
    """Articles of a package whose file list has no usable row for them (versioned as above)."""
    already_ingested: int = 0
    """Articles of an appending run whose version the root holds already (an incremental applied
    twice): rejects ``already ingested``."""
    stale_versions: int = 0
    """Articles of an appending run older than the version the root holds (``LastUpdated`` goes
    backwards): rejects ``version goes backwards``."""
    workers: int = 1
    """Input units ingested at once: 1 for a run in one process (:func:`ingest`), else the
    ``workers`` of a Ray run (``adabiobert.distributed.ingest``). The files written are the
    same either way."""
    resumed: bool = False
    """True when this appending run finished a batch that an earlier run had started and not
    committed (killed): the earlier run's files were deleted first (:func:`start_batch`)."""


@dataclass(frozen=True)
class Reject:
    """A file or package member that gave no article: one row of ``rejects.parquet``."""

    source: str
    reason: str


def ingest(config: IngestConfig, prior: Mapping[str, datetime | None] | None = None,
           lease: OutputLease | None = None, log: Callable[[str], None] | None = None) -> IngestStats:
    """Read every input article and write shards, rejects and stats to ``config.output``, in this
    process. ``adabiobert.distributed.ingest.ingest_parallel`` writes the same files on Ray.

    The run holds the lease of ``config.output`` (the root, with ``append``;
    ``adabiobert.output_lease``) from before it reads the root until its last file is written.

    Args:
        config: the run; with ``append``, it writes a batch of the root (:func:`open_batch`).
        prior: what :func:`open_batch` returned for a config it already resolved, under a lease
            the caller holds (``lease``); None: take the lease and resolve.
        lease: with ``prior``, the caller's lease, checked before the batch is committed.
        log: told when the run takes over a stale lease (None: silent).

    Raises:
        OutputLeasedError: another run holds the output (or the root).
        OutputExistsError: (a ``FileExistsError``) ``config.output`` already holds Parquet files
            (with ``append``: a committed batch of that id), or the root holds an unfinished
            batch other than ``config.batch`` (:func:`open_batch`).
        InputNotFoundError: none of ``config.inputs`` exists or holds an input file (when some do,
            the others become rejects and the run goes on).
    """
    if prior is None:
        with root_lease(config, log) as held:
            opened, prior = open_batch(config)
            return _ingest(opened, prior, held)
    return _ingest(config, prior, lease)


@contextmanager
def root_lease(config: IngestConfig, log: Callable[[str], None] | None = None) -> Iterator[OutputLease]:
    """The lease of a run's output (the root, with ``append``), held for the block; a bad batch id
    is refused first (``ConfigError``), before the lease creates the root. ``log`` is told of a
    takeover (``adabiobert.output_lease.output_lease``).

    Raises:
        OutputLeasedError: another run holds it.
    """
    if config.append and config.batch:
        batch_folder(config.output, config.batch)
    with output_lease(config.output, job="ingest", log=log) as lease:
        yield lease


def _ingest(config: IngestConfig, prior: Mapping[str, datetime | None], lease: OutputLease | None) -> IngestStats:
    """:func:`ingest` of an opened batch (or a whole output) under the lease."""
    started = time.perf_counter()
    files, rejects = find_run_inputs(config)
    resumed = start_batch(config)
    shards: list[str] = []
    pending: list[dict[str, Any]] = []
    seen: dict[str, datetime | None] = {}  # pmcid -> its version
    counts: Counter[str] = Counter()
    articles = 0
    progress = Progress("ingest", len(files), "file", enabled=config.show_progress)
    for uri in files:
        for item in iter_articles(uri, counts):
            if isinstance(item, Reject):
                rejects.append(item)
            elif item["pmcid"] in seen:
                rejects.append(duplicate_reject(item["source"], item["pmcid"], item["version"], seen[item["pmcid"]]))
            elif (stale := version_reject(item["source"], item["pmcid"], item["version"], prior, counts)) is not None:
                rejects.append(stale)
            else:
                seen[item["pmcid"]] = item["version"]
                pending.append(item)
                if len(pending) == config.articles_per_shard:
                    shards.append(_write_shard(config.output, len(shards), pending))
                    articles += len(pending)
                    pending = []
        done = articles + len(pending)
        progress.update(1, note=f"{done} article{'s' * (done != 1)}, {len(rejects)} rejected")
    progress.close()
    if pending:
        shards.append(_write_shard(config.output, len(shards), pending))
        articles += len(pending)
    if lease is not None:
        lease.check()  # a run whose lease was taken over commits nothing
    counts["resumed"] = resumed
    return write_run_summary(config, len(files), articles, rejects, shards, counts, started)


def open_batch(config: IngestConfig) -> tuple[IngestConfig, dict[str, datetime | None]]:
    """An appending run's first step, under the root's lease: which batch it writes, and what the
    committed batches of the root already hold.

    The batch is ``config.batch``; without one, the root's unfinished batch when it has one (a
    killed run's: the rerun finishes it, :func:`start_batch`), else a new id, the run's UTC time.

    Returns:
        Without ``config.append``: ``(config, {})``. With it: the config writing to the batch
        folder ``<output>/batch=<id>`` and, for every PMC id under the root, the newest version
        ingested (``adabiobert.pmc.versions``; a shard that cannot be read, or of an unfinished
        batch, adds nothing).

    Raises:
        ConfigError: a batch id with other characters than letters, digits, ``.``, ``_``, ``-``.
        OutputExistsError: the root holds an unfinished batch other than ``config.batch`` (or,
            without ``config.batch``, more than one): it must be finished (or deleted) first, or
            its articles would come back as "already ingested" rejects when it is.
    """
    if not config.append:
        return config, {}
    listing = find_shards(config.output)
    unfinished = [shard_batch(f"{folder}/-") for folder in listing.unfinished if folder.startswith(BATCH_PREFIX)]
    others = [b for b in unfinished if b != config.batch]
    if others and (config.batch or len(others) > 1):
        folders = ", ".join(batch_folder(config.output, b) for b in others)
        raise OutputExistsError(f"{folders}: left unfinished by an ingest run that did not end (no {COMMITTED_MARKER}); "
                                "finish it first by running that ingest again with --append (its --batch id, or none), "
                                "or delete the folder")
    batch = config.batch or (others[0] if others else new_batch_id(datetime.now(timezone.utc)))
    folder = batch_folder(config.output, batch)  # ConfigError for a batch id that is not a folder name
    return replace(config, output=folder, batch=batch), newest_versions(read_root_versions(listing.shards))


def start_batch(config: IngestConfig) -> bool:
    """An appending run's step after :func:`find_run_inputs`: mark its batch folder started
    (:data:`~adabiobert.pmc.shards.STARTED_MARKER`), or, when an earlier run started it and never
    committed it, delete that run's files (shards, rejects, stats, staged files) so that this run
    writes the batch as a clean run would. Readers leave an unfinished batch out, so none sees a
    mix. Nothing to do without ``config.append``.

    Returns:
        True when it cleared an unfinished batch (the run then *resumes* it).

    Raises:
        OutputExistsError: the unfinished batch was started with other inputs (another package:
            finishing it with these would drop that one's articles unseen).
    """
    if not config.append:
        return False
    inputs = [storage.absolute(uri) for uri in config.inputs]
    found = storage.list_files(config.output)
    names = {storage.relative_to(f.uri, config.output) for f in found}
    if is_unfinished(names):
        marker = storage.join(config.output, STARTED_MARKER)
        earlier = json.loads(storage.read_bytes(marker)).get("inputs")
        if earlier != inputs:
            raise OutputExistsError(f"{config.output}: left unfinished by a run of other inputs ({', '.join(earlier or [])}); "
                                    "finish it by running that ingest again, or delete the folder")
        storage.delete([f.uri for f in found if storage.relative_to(f.uri, config.output) != STARTED_MARKER])
        return True
    started = {"batch": config.batch, "inputs": inputs,
               "started_at": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")}
    storage.write_bytes(storage.join(config.output, STARTED_MARKER), json.dumps(started, indent=1).encode())
    return False


def version_reject(source: str, pmcid: str, version: datetime | None, prior: Mapping[str, datetime | None],
                   counts: Counter[str]) -> Reject | None:
    """The reject for an article of an appending run that is not newer than the root's version of
    it (None when it is newer, or new); counts ``already_ingested`` or ``stale_versions``."""
    if pmcid not in prior:
        return None
    held = prior[pmcid]
    stamp, held_stamp = version_stamp(version), version_stamp(held)
    if stamp > held_stamp:
        return None
    if stamp == held_stamp:
        counts["already_ingested"] += 1
        return Reject(source, f"already ingested: {pmcid} version {_when(version)} is in the shard root already "
                      "(an incremental applied twice?)")
    counts["stale_versions"] += 1
    return Reject(source, f"version goes backwards: {pmcid} version {_when(version)} is older than the "
                  f"ingested version {_when(held)}")


def find_run_inputs(config: IngestConfig) -> tuple[list[str], list[Reject]]:
    """A run's first step: refuse an output that holds shards, then :func:`find_inputs`.

    Raises:
        OutputExistsError, InputNotFoundError: as :func:`ingest`.
    """
    existing = storage.list_files(config.output, (".parquet",))
    if existing and not (config.append and _unfinished(config.output)):  # start_batch clears an unfinished batch
        raise OutputExistsError(f"{config.output} already holds Parquet files ({existing[0].uri}): a run never "
                                "mixes with an older one; choose an empty --output folder, add a batch with --append "
                                "(a new --batch id), or delete the old shards")
    files, rejects = find_inputs(config.inputs)
    if not files:
        raise InputNotFoundError(f"no input found: {'; '.join(r.source + ': ' + r.reason for r in rejects)}; name "
                                 f"{'/'.join(INPUT_SUFFIXES)} files or folders that hold them")
    return files, rejects


def _unfinished(folder: str) -> bool:
    return is_unfinished(storage.relative_to(f.uri, folder) for f in storage.list_files(folder))


def write_run_summary(config: IngestConfig, files: int, articles: int, rejects: list[Reject], shards: list[str],
                      counts: Counter[str], started: float, workers: int = 1) -> IngestStats:
    """A run's last step: write ``rejects.parquet`` and ``ingest_stats.json``, then, with
    ``append``, the batch's :data:`~adabiobert.pmc.shards.COMMITTED_MARKER` (its commit point);
    return the stats.

    Args:
        counts: the run's counters; ``counts["resumed"]`` is :attr:`IngestStats.resumed`.
        started: the run's ``time.perf_counter()`` at its start.
        workers: see :attr:`IngestStats.workers`.
    """
    write_parquet(storage.join(config.output, REJECTS_FILE),
                  pa.Table.from_pylist([asdict(r) for r in rejects], schema=REJECTS_SCHEMA))
    stats = IngestStats(files, articles, len(rejects), tuple(shards), round(time.perf_counter() - started, 3),
                        {**asdict(config), "inputs": list(config.inputs)}, counts["file_lists"],
                        counts["without_file_list"], counts["unlisted_members"], counts["already_ingested"],
                        counts["stale_versions"], workers, bool(counts["resumed"]))
    storage.write_bytes(storage.join(config.output, "ingest_stats.json"),
                        json.dumps(asdict(stats), indent=2).encode())
    if config.append:
        committed = {"batch": config.batch, "shards": list(shards), "articles": articles, "rejected": len(rejects),
                     "committed_at": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")}
        storage.write_bytes(storage.join(config.output, COMMITTED_MARKER), json.dumps(committed, indent=1).encode())
    return stats


def duplicate_reject(source: str, pmcid: str, version: datetime | None, first: datetime | None) -> Reject:
    """The reject for an article whose PMC id an earlier input of the run gave (``first``: that one's version)."""
    return Reject(source, f"duplicate pmcid {pmcid} (version {_when(version)}): an earlier input had it (version "
                  f"{_when(first)}); one run keeps the first")


def find_inputs(inputs: tuple[str, ...]) -> tuple[list[str], list[Reject]]:
    """Expand folders into their input files (sorted); inputs that do not exist become rejects."""
    files: list[str] = []
    rejects: list[Reject] = []
    for uri in inputs:
        if storage.stat(uri) is not None:
            files.append(uri)
            continue
        found = [info.uri for info in storage.list_files(uri, INPUT_SUFFIXES)]
        if not found:
            rejects.append(Reject(uri, f"no such file, or no {'/'.join(INPUT_SUFFIXES)} files under it"))
        files.extend(found)
    return files, rejects


def iter_articles(uri: str, counts: Counter[str] | None = None) -> Iterator[dict[str, Any] | Reject]:
    """The article records of one input file, or rejects for what cannot be read.

    A package yields one item per ``.nxml`` or ``.xml`` member, streamed; a package damaged
    part-way yields the members before the damage and then one reject for the package. A package
    with a file list beside it also yields a reject for each bad row of the list and for each
    listed article the package did not give (so none is lost unrecorded).

    Args:
        uri: a file or package.
        counts: when given, gains ``file_lists``, ``without_file_list`` and ``unlisted_members``.
    """
    counts = Counter() if counts is None else counts
    if uri.endswith(PACKAGE_SUFFIXES):
        yield from _package_articles(uri, counts)
        return
    try:
        data = storage.read_bytes(uri)
    except _INPUT_ERRORS as error:
        yield Reject(uri, _reason(error))
        return
    yield _parse(data, uri, lambda: _modified(uri))


def _package_articles(uri: str, counts: Counter[str]) -> Iterator[dict[str, Any] | Reject]:
    """One package's items: its file list's bad rows, its members in package order, then a reject
    for each listed article the stream never gave (``docs/pmc-shards.md``, "PMC's bulk layout")."""
    try:
        found = filelist.read_file_list(uri)
    except _INPUT_ERRORS as error:
        found = None
        yield Reject(filelist.file_list_uri(uri), f"file list unreadable, versions taken from the JATS: {_reason(error)}")
    if found is None:
        counts["without_file_list"] += 1
        listed, list_uri = None, None
    else:
        list_uri, listed, bad_rows = found
        counts["file_lists"] += 1
        for row in bad_rows:  # line 0: the whole list (its members are then versioned as unlisted)
            yield Reject(f"{list_uri}:{row.line}" if row.line else list_uri, f"file list row not used: {row.reason}")
    filesystem, path = storage.filesystem_for(uri)
    members, damage = 0, None
    try:
        # compression=None: the tar reader decompresses; pyarrow would otherwise do it too.
        with filesystem.open_input_stream(path, compression=None) as stream:
            for source, data, modified in iter_package_members(stream, uri):
                members += 1
                # source is "<uri>::<member path>"; popping leaves the listed rows still unseen
                entry = listed.pop(source[len(uri) + 2:], None) if listed is not None else None
                item = _parse(data, source, lambda: modified)
                if isinstance(item, dict) and entry is None and listed is not None:
                    counts["unlisted_members"] += 1
                yield _apply_listing(item, entry, list_uri) if isinstance(item, dict) else item
    except _INPUT_ERRORS as error:
        damage = _reason(error)
        yield Reject(uri, damage)
    if not members and damage is None:
        yield Reject(uri, "the package holds no .nxml or .xml file")
    for member, entry in sorted((listed or {}).items(), key=lambda pair: pair[1].line):
        why = f"the package is damaged before it ({damage})" if damage else "it is not in the package"
        yield Reject(f"{list_uri}:{entry.line}", f"listed article {entry.pmcid} ({member}) not ingested: {why}")


def _apply_listing(record: dict[str, Any], entry: filelist.Listed | None, list_uri: str | None) -> dict[str, Any] | Reject:
    """Take the article's version and retraction from its file-list row, when it has one."""
    if entry is None:
        return record
    if entry.pmcid != record["pmcid"]:
        return Reject(record["source"], f"{list_uri}:{entry.line} lists {entry.pmcid}, the article is {record['pmcid']}")
    return {**record, "version": entry.version, "version_source": "filelist", "retracted": entry.retracted}


def _parse(data: bytes, source: str, modified: Callable[[], datetime | None]) -> dict[str, Any] | Reject:
    """Parse one article; its version is its JATS date (or mtime) until a file list says otherwise."""
    try:
        record = parse_jats(data, source)
    except _INPUT_ERRORS as error:
        return Reject(source, _reason(error))
    version_source = "jats"
    if record["last_updated"] is None:  # the article has no date: ask the store (one more request)
        record["last_updated"] = modified()
        version_source = "mtime" if record["last_updated"] is not None else None
    return {**record, "version": record["last_updated"], "version_source": version_source, "retracted": None}


def _when(version: datetime | None) -> str:
    return version.strftime("%Y-%m-%d %H:%M:%S") if version else "unknown"


def _modified(uri: str) -> datetime | None:
    filesystem, path = storage.filesystem_for(uri)
    return filesystem.get_file_info(path).mtime


def _reason(error: BaseException) -> str:
    if isinstance(error, JatsError):
        return f"line {error.line}: {error.reason}" if error.line else error.reason
    return f"{type(error).__name__}: {error}"


def _write_shard(output: str, index: int, records: list[dict[str, Any]]) -> str:
    name = shard_name(index)
    write_parquet(storage.join(output, name), records_to_table(records))
    return name


def write_parquet(uri: str, table: pa.Table) -> None:
    """Write ``table`` as one zstd Parquet file, as every shard and ``rejects.parquet`` is written."""
    sink = pa.BufferOutputStream()
    pq.write_table(table, sink, compression="zstd")
    storage.write_bytes(uri, sink.getvalue().to_pybytes())
