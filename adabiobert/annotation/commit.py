"""Exactly-once output per input shard: the annotation manifest and the per-shard commit.

Layout under the output root (local or ``s3://``):

    _manifest/commits/<shard id>/<work key>.json   one marker per committed shard (the truth)
    _manifest/manifest.json                        all markers in one file (a cache, rewritten)
    _staging/<run id>/...                          files being written (never read by queries)
    entities/run_date=.../*.parquet, rejections/..., articles/...       the three table roots

``shard id`` hashes the shard's name (its path under the input root); ``work key`` hashes (size,
version, model id, tables version, linker id): what was tagged, how it was linked, and how it
was written. A shard is up to date when its current marker has the key of (its listed size and
version, the model, :data:`~adabiobert.annotation.tables.TABLES_VERSION`, the run's linker).
A new model or an older tables version (version 2 has no articles table) tags every shard again;
a new linker (another index or threshold) of a shard in the current tables version only re-links
it (:meth:`AnnotationStore.relink`: its entity file rewritten with new concept columns, its
rejections and articles files carried over as they are, never tagged again).
Committing one shard (:meth:`AnnotationStore.commit`):

1. write its tables under ``_staging/<run id>/`` (temporary keys): one file per table, even with
   no rows, so that each table root exists, with its schema, once anything is committed;
2. move them into ``entities/``, ``rejections/`` and ``articles/`` (names unique per shard and run);
3. create the marker with a conditional put (``IfNoneMatch="*"``; a hard link locally): the
   commit point. If the key exists, another run committed the same work: our files are deleted;
4. for each shard this commit *amends* (below): write its new marker, delete its old files and
   marker;
5. delete the shard's previous output and its marker (an older version or model).

Amending (article versions, ``docs/pmc-shards.md``): when the shard being committed holds the
current version (or a retraction) of an article whose rows another committed shard holds, the
commit also rewrites that shard's files without the article's entity and rejection rows, and
with its articles row set to the status it now has (``superseded``, ``retracted``, ``removed``;
no mention), under new names, staged and placed with its own files in 1-2, and embeds that
shard's new commit in its own marker, so the one put of step 3 commits the new rows, the removal
of the old ones and the old version's new status together. A marker records the pmcids its
entity and rejection files leave out (``excluded``); its name then carries their hash
(``<work key>.excluded-<hash>.json``).

A shard whose read or split failed is committed the same way with one ``quarantined`` rejection
row, under the marker ``<work key>.quarantined-<n>.json`` (n: the runs that failed on this exact
work, at most :data:`QUARANTINE_ATTEMPTS`). Such a shard is not up to date: the next run tries it
again, until it failed :data:`QUARANTINE_ATTEMPTS` times; then it is held (skipped) until its
content or the model changes. A run that succeeds replaces the quarantine like any older output.

Re-linking (:meth:`AnnotationStore.relink`) rewrites a committed shard's two files the way an
amendment does, under new names beside the old ones (``<stem>-<shard id>-<run id>-link.parquet``:
the rows keep their run id and date), with new concept columns; its new marker (the linker id is
part of the key) is the commit point, and the old files and marker are dropped after it.

A run killed anywhere leaves at worst unmarked files (2), two markers for a shard (3-5), or an
embedded commit whose own marker was not yet written (3-4).
:meth:`AnnotationStore.recover`, called at the start of every run, keeps the newest marker per
shard (an embedded commit newer than the shard's own markers counts, and gets its own marker),
deletes what the others list, deletes every table file no marker lists and the staging
area, so a re-run ends with exactly the rows of a clean run. One run at a time per output root:
recovery treats unmarked files as debris.
"""

from __future__ import annotations

import datetime
import hashlib
import json
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, replace

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from adabiobert import storage
from adabiobert.annotation.tables import (
    ARTICLES,
    CONCEPT_COLUMNS,
    ENTITIES,
    ENTITY_SCHEMA,
    REJECTIONS,
    TABLE_SCHEMAS,
    TABLES,
    TABLES_VERSION,
    TABLES_VERSION_KEY,
    partition_folder,
    shard_file_name,
    with_statuses,
)
from adabiobert.pmc.shards import Shard
from adabiobert.pmc.versions import SUPERSEDED

MANIFEST_FILE = "_manifest/manifest.json"
COMMITS_DIR = "_manifest/commits"
STAGING_DIR = "_staging"
MANIFEST_SECONDS = 60.0
"""During a run, ``manifest.json`` is rewritten at most this often (and always at the end)."""
QUARANTINE_ATTEMPTS = 2
"""Runs that try a shard's exact work (content and model) before it is held in quarantine: the run
that found it broken, and the next one."""

Hook = Callable[[str, str], None]
"""``hook(step, shard_name)``, called after each commit step (``staged``, ``placed``, ``marked``,
``amended``, ``superseded``): the crash tests' fault injection."""


def shard_id(name: str) -> str:
    """A stable id of a shard name (hex, 16 characters)."""
    return hashlib.sha256(name.encode()).hexdigest()[:16]


def work_key(size: int, version: str, model_id: str, tables_version: int = TABLES_VERSION, linker_id: str = "") -> str:
    """A stable id of (shard content, model, tables version, linker): what a marker says was tagged
    and linked.

    Version 1 markers were keyed without the tables version, and markers of unlinked work are
    keyed without the linker; their keys are computed as then, so that recovery and supersession
    still find them.
    """
    suffix = "" if tables_version == 1 else f"\ntables-{tables_version}"
    if linker_id:
        suffix += f"\nlinker-{linker_id}"
    return hashlib.sha256(f"{size}\n{version}\n{model_id}{suffix}".encode()).hexdigest()[:16]


@dataclass(frozen=True)
class ShardCommit:
    """A committed shard: the content of its marker."""

    shard: str
    """The shard's name (path under the input root): its identity."""
    uri: str
    """Where it was read from."""
    size: int
    version: str
    """ETag (S3) or mtime in ns (local) of the input when it was listed."""
    model_id: str
    run_id: str
    run_date: str
    committed_at: str
    """UTC time of the commit (ISO 8601); the newest marker of a shard wins in recovery."""
    files: tuple[str, ...]
    """Table files (relative to the output root) holding the shard's rows."""
    documents: int
    """Articles in the shard."""
    entities: int
    rejections: int
    quarantined: int = 0
    """0 for a tagged shard; n >= 1 when reading or splitting it failed, on the n-th run that tried
    this content with this model."""
    error: str = ""
    """Why it is quarantined (empty for a tagged shard)."""
    tables_version: int = 1
    """:data:`~adabiobert.annotation.tables.TABLES_VERSION` of its files (markers before version 2
    lack the field: 1)."""
    excluded: tuple[str, ...] = ()
    """PMC ids of the shard whose rows its files leave out: superseded by a newer version in
    another shard, or retracted (sorted)."""
    amends: tuple[ShardCommit, ...] = ()
    """New commits of other shards that this commit made, without the rows of articles whose
    current version this shard holds (see the module docstring)."""
    linker_id: str = ""
    """What linked the entity rows (``IndexArtifact.linker_id``); empty: not linked."""

    def linked_by(self, linker_id: str) -> bool:
        """Its files are of the current tables version and linked by ``linker_id`` (``""``: not linked)."""
        return self.tables_version == TABLES_VERSION and self.linker_id == linker_id

    @property
    def marker(self) -> str:
        """The marker's path relative to the output root."""
        key = work_key(self.size, self.version, self.model_id, self.tables_version, self.linker_id)
        suffix = f".quarantined-{self.quarantined}" if self.quarantined else ""
        if self.excluded:
            suffix += f".excluded-{hashlib.sha256(chr(10).join(self.excluded).encode()).hexdigest()[:12]}"
        return f"{COMMITS_DIR}/{shard_id(self.shard)}/{key}{suffix}.json"

    def to_json(self) -> bytes:
        return json.dumps(asdict(self), indent=1).encode()

    @classmethod
    def from_json(cls, data: bytes | str | Mapping) -> ShardCommit:
        values = dict(json.loads(data) if isinstance(data, (bytes, str)) else data)
        values["files"] = tuple(values["files"])
        values["excluded"] = tuple(values.get("excluded", ()))
        values["amends"] = tuple(cls.from_json(a) for a in values.get("amends", ()))
        return cls(**values)


def _now() -> str:
    """A commit's ``committed_at``: UTC, ISO 8601 to the microsecond (markers sort by it)."""
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="microseconds")


def _needs_amending(previous: ShardCommit | None, pmcids: frozenset[str]) -> bool:
    """True when a shard's current commit still holds rows of ``pmcids``: it is committed, not a
    quarantine, and does not leave them all out already."""
    return previous is not None and not previous.quarantined and not pmcids <= set(previous.excluded)


@dataclass(frozen=True)
class Recovery:
    """What :meth:`AnnotationStore.recover` cleaned up."""

    superseded_markers: int
    orphan_files: int
    amendments_completed: int = 0
    """Embedded commits (amendments) whose own marker a killed run had not written yet."""


def tagged_shard_uri(commit: ShardCommit, shards: str | None, error: type[Exception], then: str) -> str:
    """Where the text of a committed shard is now (``commit.uri``, or ``<shards>/<shard name>``),
    checked to be there as it was tagged (its size, and its version unless it moved), so that the
    tables' offsets still point into it.

    Raises:
        error: the shard is gone (naming ``--shards``), or changed since it was tagged (the
            message ends with ``then``, what the caller asks the user to do).
    """
    uri = storage.join(shards, *commit.shard.split("/")) if shards else commit.uri
    found = storage.stat(uri)
    if found is None:
        raise error(f"shard {commit.shard} is not at {uri} any more; pass --shards with the folder it lives in now")
    moved = shards is not None and uri != commit.uri
    if found.size != commit.size or (not moved and found.version != commit.version):
        raise error(f"{uri} changed after run {commit.run_id} tagged it (size or version differ){then}")
    return uri


class AnnotationStore:
    """The committed state of one output root, and the only writer of its files.

    Args:
        output: the output root (local or ``s3://``).
        hook: fault injection for tests, see :data:`Hook`.
    """

    def __init__(self, output: str, hook: Hook | None = None) -> None:
        self.output = output
        self.hook = hook or (lambda step, shard: None)
        self.current: dict[str, ShardCommit] = {}  # shard id -> its committed marker
        self._manifest_written = 0.0

    def uri(self, relative: str) -> str:
        return storage.join(self.output, *relative.split("/"))

    def _relative(self, uri: str) -> str:
        return storage.relative_to(uri, self.output)

    # ---- recovery --------------------------------------------------------------------------
    def markers(self) -> dict[str, list[ShardCommit]]:
        """Every marker under ``_manifest/commits``, by shard id, oldest first; reads, never repairs.

        The last of each list is the shard's current commit (what :meth:`recover` keeps), so a
        reader such as the exports can see the committed state without changing it. It may be an
        amendment embedded in another shard's marker, newer than every marker of the shard's own.
        """
        return self._collect()[0]

    def _collect(self) -> tuple[dict[str, list[ShardCommit]], set[str]]:
        """:meth:`markers`, and the markers (paths) of the embedded commits among them."""
        cached = self._read_manifest()
        by_shard: dict[str, list[ShardCommit]] = {}
        for info in storage.list_files(self.uri(COMMITS_DIR), (".json",)):
            relative = self._relative(info.uri)
            commit = cached.get(relative) or ShardCommit.from_json(storage.read_bytes(info.uri))
            by_shard.setdefault(relative.split("/")[-2], []).append(commit)
        own = {key: max(c.committed_at for c in commits) for key, commits in by_shard.items()}
        embedded: dict[str, ShardCommit] = {}
        for commits in list(by_shard.values()):
            for amended in (a for c in commits for a in c.amends):
                key = shard_id(amended.shard)
                newest = embedded.get(key)
                if amended.committed_at > own.get(key, "") and (newest is None or amended.committed_at > newest.committed_at):
                    embedded[key] = amended
        for key, amended in embedded.items():
            by_shard.setdefault(key, []).append(amended)
        for commits in by_shard.values():
            commits.sort(key=lambda c: (c.committed_at, c.run_id))
        return by_shard, {a.marker for a in embedded.values()}

    def recover(self) -> Recovery:
        """Load the markers and repair what a killed run left (see the module docstring)."""
        superseded = 0
        by_shard, embedded = self._collect()
        for key, commits in by_shard.items():
            if commits[-1].marker in embedded:
                storage.write_bytes_if_absent(self.uri(commits[-1].marker), commits[-1].to_json())
            for old in commits[:-1]:
                self._drop(old)
                superseded += 1
            self.current[key] = commits[-1]
        listed = {f for commit in self.current.values() for f in commit.files}
        orphans = [
            info.uri
            for table in TABLES
            for info in storage.list_files(self.uri(table))
            if self._relative(info.uri) not in listed
        ]
        storage.delete(orphans)
        storage.delete_tree(self.uri(STAGING_DIR))
        self.write_manifest()
        return Recovery(superseded, len(orphans), len(embedded))

    def _read_manifest(self) -> dict[str, ShardCommit]:
        try:
            data = json.loads(storage.read_bytes(self.uri(MANIFEST_FILE)))
        except FileNotFoundError:
            return {}
        commits = (ShardCommit.from_json(entry) for entry in data.get("shards", []))
        return {commit.marker: commit for commit in commits}

    def write_manifest(self) -> None:
        """Rewrite ``manifest.json`` from the markers known to this store (atomic replace)."""
        entries = sorted((asdict(c) for c in self.current.values()), key=lambda e: e["shard"])
        storage.write_bytes(self.uri(MANIFEST_FILE), json.dumps({"shards": entries}, indent=1).encode())
        self._manifest_written = time.monotonic()

    # ---- state -----------------------------------------------------------------------------
    def is_current(self, shard: Shard, model_id: str, excluded: frozenset[str] = frozenset(), linker_id: str = "") -> bool:
        """True when the shard's committed output is its listed content tagged by this model and
        linked by this linker (``""``: not linked), in the current tables version, and leaves out
        no article but those of ``excluded`` (an article left out that is current again, its newer
        version gone from the input, makes the shard stale: it is tagged again)."""
        commit = self.current.get(shard_id(shard.name))
        return self._tagged_as(commit, shard, model_id, excluded) and commit.linked_by(linker_id)

    def needs_relink(self, shard: Shard, model_id: str, excluded: frozenset[str] = frozenset(), linker_id: str = "") -> bool:
        """True when the shard's committed rows are its listed content tagged by this model, but
        linked otherwise (another linker, or none), in the current tables version: :meth:`relink`
        brings it up to date without tagging it again. A shard of an older tables version is
        tagged again (version 2 has no articles file), so this is False for it."""
        commit = self.current.get(shard_id(shard.name))
        return (self._tagged_as(commit, shard, model_id, excluded) and commit.tables_version == TABLES_VERSION
                and not commit.linked_by(linker_id))

    @staticmethod
    def _tagged_as(commit: ShardCommit | None, shard: Shard, model_id: str, excluded: frozenset[str]) -> bool:
        return (commit is not None and not commit.quarantined
                and (commit.size, commit.version, commit.model_id) == (shard.size, shard.version, model_id)
                and set(commit.excluded) <= excluded)

    def committed(self, name: str) -> ShardCommit | None:
        """The current commit of the shard named ``name``, if any."""
        return self.current.get(shard_id(name))

    def read_table(self, commit: ShardCommit, table_name: str) -> pa.Table:
        """The rows of ``commit``'s ``table_name`` file (one of :data:`TABLES`), as :meth:`relink`
        reads them: a re-link computed off the driver starts from these.

        Raises:
            ValueError: ``commit`` lists no file of ``table_name`` (version 2 has no articles file).
        """
        found = [relative for relative in commit.files if relative.split("/", 1)[0] == table_name]
        if len(found) != 1:
            raise ValueError(f"{commit.shard}: its commit lists {len(found)} {table_name} files, not one")
        return self._read(found[0])

    def _read(self, relative: str) -> pa.Table:
        filesystem, path = storage.filesystem_for(self.uri(relative))
        return pq.read_table(path, filesystem=filesystem)

    def quarantine(self, shard: Shard, model_id: str) -> ShardCommit | None:
        """The shard's quarantine commit when it is for its listed content and this model, else None."""
        commit = self.current.get(shard_id(shard.name))
        if commit is None or not commit.quarantined:
            return None
        same_work = ((commit.size, commit.version, commit.model_id, commit.tables_version)
                     == (shard.size, shard.version, model_id, TABLES_VERSION))
        return commit if same_work else None

    def is_held(self, shard: Shard, model_id: str) -> bool:
        """True when the shard failed :data:`QUARANTINE_ATTEMPTS` runs for its listed content and
        this model: it is not tried again until one of them changes."""
        commit = self.quarantine(shard, model_id)
        return commit is not None and commit.quarantined >= QUARANTINE_ATTEMPTS

    # ---- commit ----------------------------------------------------------------------------
    def commit(
        self,
        shard: Shard,
        model_id: str,
        run_id: str,
        run_date: str,
        tables: Mapping[str, pa.Table],
        documents: int,
        quarantined: int = 0,
        error: str = "",
        excluded: frozenset[str] = frozenset(),
        amend: Mapping[str, frozenset[str]] | None = None,
        statuses: Mapping[str, Mapping[str, str]] | None = None,
        linker_id: str = "",
    ) -> ShardCommit | None:
        """Publish one shard's tables atomically and record them (steps 1-5 of the module docstring).

        Args:
            shard: the input as listed at the start of the run.
            tables: ``{"entities": ..., "rejections": ..., "articles": ...}``; a table left out or
                empty gets a file with no rows (every committed shard has one file in each table).
            documents: articles in the shard (for the marker).
            quarantined: 0 for a tagged shard, else the number of runs that failed on this work
                (this one included); ``error`` says why.
            excluded: the shard's articles that ``tables`` leave out (not current; recorded).
            amend: ``{other shard's name: pmcids}``: committed shards whose rows of these
                articles leave the tables in this same commit (a shard not committed, or already
                leaving them out, is passed over).
            statuses: ``{other shard's name: {pmcid: status}}`` (``VersionIndex.left_out``): the
                status each amended article's articles row takes; ``superseded`` when not given.
            linker_id: what linked the entity rows (``""``: not linked); part of the work key.

        Returns:
            The commit, or None when another run had already committed this exact work.

        Raises:
            ValueError: a table whose schema is not its :data:`~adabiobert.annotation.tables.TABLE_SCHEMAS` one.
        """
        assert set(tables) <= set(TABLES), f"unknown tables {sorted(set(tables) - set(TABLES))}"
        key = shard_id(shard.name)
        name = shard_file_name(shard.name, key, run_id)
        staged = []
        for table_name in TABLES:
            schema = TABLE_SCHEMAS[table_name]
            table = tables.get(table_name, schema.empty_table())
            if not table.schema.equals(schema):
                raise ValueError(f"{shard.name}: the {table_name} table has schema\n{table.schema}\nnot\n{schema}")
            staged.append((self._stage(table, run_id, table_name, name), f"{partition_folder(table_name, run_date)}/{name}"))
        committed_at = _now()
        amendments = []
        for other, pmcids in sorted((amend or {}).items()):
            previous = self.current.get(shard_id(other))
            if not _needs_amending(previous, pmcids):
                continue
            amended, files = self._stage_amendment(previous, pmcids, run_id, key, committed_at,
                                                   (statuses or {}).get(other, {}))
            amendments.append((previous, amended))
            staged.extend(files)
        self.hook("staged", shard.name)
        for staging, relative in staged:
            storage.move(staging, self.uri(relative))
        placed = [relative for _, relative in staged]
        self.hook("placed", shard.name)
        own = set(placed[:len(TABLES)])
        commit = ShardCommit(
            shard=shard.name,
            uri=shard.uri,
            size=shard.size,
            version=shard.version,
            model_id=model_id,
            run_id=run_id,
            run_date=run_date,
            committed_at=committed_at,
            files=tuple(f for f in placed if f in own),
            documents=documents,
            entities=tables["entities"].num_rows if "entities" in tables else 0,
            rejections=tables["rejections"].num_rows if "rejections" in tables else 0,
            quarantined=quarantined,
            error=error,
            tables_version=TABLES_VERSION,
            excluded=tuple(sorted(excluded)),
            amends=tuple(amended for _, amended in amendments),
            linker_id=linker_id,
        )
        if not storage.write_bytes_if_absent(self.uri(commit.marker), commit.to_json()):
            storage.delete([self.uri(f) for f in placed])
            return None
        self.hook("marked", shard.name)
        for previous, amended in amendments:
            storage.write_bytes_if_absent(self.uri(amended.marker), amended.to_json())
            self._drop(previous)
            self.current[shard_id(amended.shard)] = amended
        if amendments:
            self.hook("amended", shard.name)
        previous = self.current.get(key)
        if previous is not None and previous.marker != commit.marker:
            self._drop(previous)
        self.current[key] = commit
        self.hook("superseded", shard.name)
        if time.monotonic() - self._manifest_written > MANIFEST_SECONDS:
            self.write_manifest()
        return commit

    def amend(self, name: str, pmcids: frozenset[str], run_id: str,
              statuses: Mapping[str, str] | None = None) -> ShardCommit | None:
        """Commit the shard named ``name`` again without the rows of ``pmcids``, on its own (for an
        article whose current version's shard is not committed by this run); None when there is
        nothing to do (the shard is not committed, or leaves them out already). ``statuses``:
        ``{pmcid: status}`` their articles rows take (``superseded`` when not given)."""
        key = shard_id(name)
        previous = self.current.get(key)
        if not _needs_amending(previous, pmcids):
            return None
        amended, staged = self._stage_amendment(previous, pmcids, run_id, key, _now(), statuses or {})
        return self._replace(previous, amended, staged)

    def relink(self, name: str, relinked: Callable[[pa.Table], pa.Table], linker_id: str, run_id: str) -> ShardCommit | None:
        """Commit the shard named ``name`` again with its entity rows' concept columns rewritten
        (``relinked``: the entity table to the same rows re-linked), its rejections and articles
        files carried over as they are; never tagged again.

        The files are staged and placed beside the old ones under names of this run
        (``<run id>-link``), the new marker (keyed with ``linker_id``) is the commit point, then the
        old files and marker go: the steps and hooks of :meth:`amend`.

        Returns:
            The new commit; None when the shard is not committed, is quarantined, or is already
            linked by ``linker_id`` in the current tables version.

        Raises:
            ValueError: ``relinked`` changed anything but the concept columns, or the shard's files
                are of an older tables version (version 2 has no articles file: only tagging the
                shard again, ``jobs/annotate.py``, brings it to the current version).
        """
        previous = self.current.get(shard_id(name))
        if previous is None or previous.quarantined or previous.linked_by(linker_id):
            return None
        if previous.tables_version != TABLES_VERSION:
            raise ValueError(f"{name}: its files are of tables version {previous.tables_version}, not "
                             f"{TABLES_VERSION}; a re-link does not upgrade them: run jobs/annotate.py, which tags it again")

        def rewrite(table_name: str, table: pa.Table) -> pa.Table:
            if table_name != ENTITIES:
                return table
            new = relinked(table)
            kept = [c for c in ENTITY_SCHEMA.names if c not in CONCEPT_COLUMNS]
            if not new.schema.equals(ENTITY_SCHEMA) or not new.select(kept).equals(table.select(kept)):
                raise ValueError(f"{name}: a re-link may change the concept columns {CONCEPT_COLUMNS} only")
            return new

        committed_at = _now()
        files, counts = self._stage_rewrite(previous, run_id, "link", rewrite)
        commit = replace(previous, committed_at=committed_at, files=tuple(target for _, target in files),
                         entities=counts.get(ENTITIES, 0), rejections=counts.get(REJECTIONS, 0),
                         tables_version=TABLES_VERSION, linker_id=linker_id, amends=())
        return self._replace(previous, commit, files)

    def _replace(self, previous: ShardCommit, commit: ShardCommit, staged: list[tuple[str, str]]) -> ShardCommit | None:
        """Place the staged files, write ``commit``'s marker (the commit point), drop ``previous``.
        None (our files withdrawn) when the marker exists already: another run made this exact commit."""
        name = commit.shard
        self.hook("staged", name)
        for staging, relative in staged:
            storage.move(staging, self.uri(relative))
        self.hook("placed", name)
        if not storage.write_bytes_if_absent(self.uri(commit.marker), commit.to_json()):
            storage.delete([self.uri(relative) for _, relative in staged])
            return None
        self.hook("marked", name)
        self._drop(previous)
        self.current[shard_id(name)] = commit
        self.hook("superseded", name)
        return commit

    def _stage(self, table: pa.Table, run_id: str, table_name: str, name: str,
               tables_version: int = TABLES_VERSION) -> str:
        """Write one table file to the staging area (with its schema's metadata, saying
        ``tables_version``: an amended file of an older version keeps its own); its URI."""
        metadata = {**TABLE_SCHEMAS[table_name].metadata, TABLES_VERSION_KEY: str(tables_version).encode()}
        table = table.replace_schema_metadata(metadata)  # the tables version, in every file
        staging = self.uri(f"{STAGING_DIR}/{run_id}/{table_name}/{name}")
        with storage.open_output(staging) as sink:
            pq.write_table(table, sink)
        return staging

    def _stage_amendment(self, previous: ShardCommit, pmcids: frozenset[str], run_id: str, by: str,
                         committed_at: str, statuses: Mapping[str, str]) -> tuple[ShardCommit, list[tuple[str, str]]]:
        """``previous`` without the entity and rejection rows of ``pmcids``, their articles rows
        set to ``statuses`` (``superseded`` by default): its files rewritten to the staging area
        (each to be placed beside the file it replaces, under a name unique to this run and the
        amending shard ``by``), and the commit that lists them. Files of an older tables version
        stay in it (and the shard is tagged again, being of that version)."""
        value_set = pa.array(sorted(pmcids), pa.string())

        def without(table_name: str, table: pa.Table) -> pa.Table:
            if table_name == ARTICLES:  # every version keeps its row: only its status changes
                return with_statuses(table, {pmcid: statuses.get(pmcid, SUPERSEDED) for pmcid in pmcids})
            return table.filter(pc.invert(pc.is_in(table.column("pmcid"), value_set=value_set)))

        files, counts = self._stage_rewrite(previous, run_id, f"by-{by[:8]}", without)
        amended = replace(previous, committed_at=committed_at, files=tuple(target for _, target in files),
                          entities=counts.get(ENTITIES, 0), rejections=counts.get(REJECTIONS, 0),
                          excluded=tuple(sorted(set(previous.excluded) | pmcids)), amends=())
        return amended, files

    def _stage_rewrite(self, previous: ShardCommit, run_id: str, tag: str,
                       rewrite: Callable[[str, pa.Table], pa.Table]) -> tuple[list[tuple[str, str]], dict[str, int]]:
        """Each of ``previous``'s files read, passed through ``rewrite(table name, table)`` and
        written to the staging area (in ``previous``'s tables version), to be placed beside the
        file it replaces under the name of this run and ``tag``.

        Returns:
            ``(staging URI, relative target)`` per file, and the rows written per table.
        """
        counts, files = {}, []
        name = shard_file_name(previous.shard, shard_id(previous.shard), f"{run_id}-{tag}")
        if any(relative.rsplit("/", 1)[-1] == name for relative in previous.files):
            # placing the new files would overwrite the old ones, which the commit then deletes
            raise ValueError(f"{previous.shard}: its files are named for run {run_id} already; give this run another id")
        for relative in previous.files:
            table_name = relative.split("/", 1)[0]
            table = rewrite(table_name, self._read(relative))
            counts[table_name] = table.num_rows
            folder = relative.rsplit("/", 1)[0]
            files.append((self._stage(table, run_id, table_name, name, previous.tables_version), f"{folder}/{name}"))
        return files, counts

    def _drop(self, commit: ShardCommit) -> None:
        """Delete a superseded commit's files, then its marker (in that order: a crash between
        the two leaves a marker whose files are gone, and recovery drops it again)."""
        storage.delete([self.uri(f) for f in commit.files])
        storage.delete([self.uri(commit.marker)])
