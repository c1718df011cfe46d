"""Tag PMC shards with Ray Data and commit entity tables shard by shard, exactly once.

    recover the output (annotation.commit), list the shards, read every shard's article versions
    (pmc.versions: the current version of each PMCID across batches), keep the shards not yet
    tagged (new or changed content, a new model, or an article left out that is current again;
    not those held in quarantine), check each footer and pmcid column on the driver
      -> from_items(pending shard URIs), one block per shard
      -> map_batches(_read_shards, num_cpus=0, TaskPoolStrategy)     waits on one Ray task per shard:
             _read_and_split (1 CPU, max_retries=read_retries)      reads the whole shard, splits it
             and encodes its sentences into subword windows (the bundle's tokenizer, loaded once
             per worker process); any error, or a worker that died read_retries + 1 times,
             becomes one QUARANTINED row
      -> map_batches(TaggerActor, compute=ActorPoolStrategy(size=n)) one model per actor (per GPU),
             tensor work only: it never calls the tokenizer; with a linking index, the actor then
             links each article's mentions over the article's text (its sentences are in the
             batch), the index memory-mapped from one copy per node
      -> iter_batches on the driver: rows are grouped by shard; when every article of a shard is
         back, its entity and rejection tables are committed (AnnotationStore.commit) without
         its articles that are not current, with its articles table (one row per shard row and
         its status), amending the committed shards that still hold rows of articles whose
         current version it holds (their articles rows turn superseded, retracted or removed);
         a QUARANTINED row commits the shard's quarantine instead
      -> amendments whose current version's shard was not tagged by this run, committed alone
      -> shards tagged by this model in the current tables version but linked otherwise (another
         index or threshold, or none) re-linked on the driver (annotation.relink): the encoder
         never runs for them (a shard of tables version 2 has no articles file: it is tagged again)

Why linking in the tagger actor rather than a map stage of its own: the linker needs each
article's text for its abbreviations, and the sentences are in the actor's batch and leave it no
further (the tagged rows carry mentions only), so a separate stage would ship every article's
text through the object store a second time and need an actor pool sized of its own. Linking
costs a few per cent of tagging's CPU time (docs/benchmarks.md, "Linking cost"); the index is
memory-mapped from one copy per node (linking.artifact.node_local_index), so a node's actors
share its pages and none holds a private copy.

Why a Ray task per shard rather than one ``read_parquet`` over all shards: there, one damaged
page fails the dataset and the run, and a read that kills its worker is retried forever
(Ray Data's map tasks retry system failures without limit). Read, split and tag still overlap
in Ray Data's streaming executor; the driver only groups rows and writes one shard's small
tables at a time. Shards that cannot be opened, or that lack a column, are committed from the
driver with their rejection rows and never reach Ray.
"""

from __future__ import annotations

import functools
import json
import time
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor

import pyarrow as pa
import pyarrow.compute as pc
import ray

from adabiobert import storage
from adabiobert.annotation.commit import AnnotationStore, Hook
from adabiobert.annotation.counts import RunCounts
from adabiobert.annotation.planner import (
    Amendments,
    TaggerPool,
    amendments_alone,
    plan_run,
    read_slots,
    run_summary,
    tagger_pool,
    version_index,
)
from adabiobert.annotation.relink import Linking, relink_shard
from adabiobert.annotation.shard_commits import commit_amendment, commit_quarantine, commit_tagged
from adabiobert.annotation.stages import TAGGED_SCHEMA, model_id_for_types, quarantine_row, split_shard, tag_documents
from adabiobert.annotation.status import QUARANTINED
from adabiobert.distributed.session import init_ray, worker_runtime_env
from adabiobert.errors import AdaBioBertError, InputNotFoundError, RelinkError
from adabiobert.job_configs import AnnotateConfig, AnnotationJobConfig
from adabiobert.labels import require_known_types
from adabiobert.linking.artifact import IndexArtifact, inspect_index, open_linker
from adabiobert.model.checkpoint import ENCODER_FILES, MANIFEST, bundle_entity_types, bundle_model_id, load_bundle_encoder
from adabiobert.model.encoding import ExampleEncoder
from adabiobert.model.precision import DEFAULT_TAG_PRECISION
from adabiobert.output_lease import OutputLease, output_lease
from adabiobert.pmc.shards import Shard, ShardCheck, check_shard, find_shards, list_shards, read_failure
from adabiobert.pmc.versions import VersionIndex
from adabiobert.progress import Progress


# ---------------------------------------------------------------------------------------------
# Worker side
# ---------------------------------------------------------------------------------------------
class TaggerActor:
    """Ray Data UDF: loads the bundle once per actor, then tags article batches whose sentences
    the split stage encoded (``tag_documents``: collate, encoder, CRF; no tokenizer call)."""

    def __init__(self, model: str, model_id: str, device: str, subword_budget: int, cpu_threads: int | None,
                 precision: str = DEFAULT_TAG_PRECISION, types: tuple[str, ...] | None = None,
                 linking: tuple[str, str, float] | None = None) -> None:
        import torch

        from adabiobert.model.tagger import Tagger

        if cpu_threads:
            torch.set_num_threads(cpu_threads)
        folder, self._download = _local_bundle(model)
        self.tagger = Tagger.from_pretrained(folder, device=device, subword_budget=subword_budget, precision=precision)
        self.tagger.model_id = model_id  # the driver's id, also for a downloaded copy
        self.types = types
        self.linker = open_linker(*linking) if linking else None  # (index URI, its hash, threshold)

    def __call__(self, batch: pa.Table) -> pa.Table:
        return tag_documents(self.tagger, batch, self.types, self.linker)


def _choose_precision(requested: str, device_type: str) -> dict[str, str]:
    """Ray task: ``resolve_precision`` on a worker like the tagger actors' (its CPU flags, its GPU)."""
    import torch

    from adabiobert.model.precision import resolve_precision

    return resolve_precision(requested, torch.device(device_type)).to_dict()


def _read_and_split(uri: str, config: AnnotateConfig, documents_per_split: int, model: str, model_id: str) -> pa.Table:
    """Ray task: one shard, read whole, split and encoded with ``model``'s encoder (``split_shard``);
    raises what reading raised."""
    return split_shard(uri, config, documents_per_split, _split_encoder(model, model_id))


@functools.lru_cache(maxsize=2)
def _split_encoder(model: str, model_id: str) -> ExampleEncoder:
    """The bundle's sentence encoder, loaded once per worker process (keyed by ``model_id`` too, so
    a bundle replaced at the same URI is loaded again). From S3 only its ``ENCODER_FILES`` (manifest,
    tokenizer, Word2Vec words) are downloaded, not the weights."""
    with storage.local_folder(model, only=ENCODER_FILES) as bundle:
        return load_bundle_encoder(bundle.path)  # held in memory: a downloaded copy can go


_read_task = ray.remote(num_cpus=1, retry_exceptions=False)(_read_and_split)
"""Application errors are not retried (a damaged page stays damaged); a dead worker is, up to
``max_retries`` (set per run from ``read_retries``)."""


def _read_shards(batch: pa.Table, config: AnnotateConfig, documents_per_split: int,
                 read_retries: int, model: str, model_id: str) -> Iterator[pa.Table]:
    """Ray Data UDF over shard URIs: each shard's split rows in slices, or its QUARANTINED row.

    The read runs in a task of its own so that a worker that dies while reading is retried a
    bounded number of times and then reported here, against its shard, instead of failing the
    dataset. This UDF only waits, so it holds no CPU (``num_cpus=0``); the read task holds one.
    """
    read = _read_task.options(max_retries=read_retries)
    for uri in batch.column("uri").to_pylist():
        try:
            table = ray.get(read.remote(uri, config, documents_per_split, model, model_id))
        except ray.exceptions.RayTaskError as error:  # an exception raised by the read or the split
            cause = error.cause if error.cause is not None else error
            yield quarantine_row(uri, read_failure(uri, cause))
            continue
        except ray.exceptions.RayError as error:  # its worker died read_retries + 1 times
            yield quarantine_row(uri, _died(uri, error, read_retries))
            continue
        for start in range(0, table.num_rows, documents_per_split):
            yield table.slice(start, documents_per_split)


def _died(uri: str, error: BaseException, read_retries: int) -> str:
    """The detail of a shard whose read task's worker died on every attempt."""
    lines = str(error).strip().splitlines()
    reason = f": {lines[0][:200]}" if lines else ""
    return f"{uri}: {type(error).__name__}: the task reading it died {read_retries + 1} times{reason}"


def _local_bundle(model: str) -> tuple[str, storage.LocalCopy]:
    """A local folder holding the bundle, and the copy to keep while it is used (a download when
    ``model`` is on S3, deleted by its ``cleanup``)."""
    copy = storage.local_folder(model)
    return copy.path, copy


# ---------------------------------------------------------------------------------------------
# Driver side
# ---------------------------------------------------------------------------------------------
def run_annotation(config: AnnotationJobConfig, hook: Hook | None = None, log: Callable[[str], None] = print) -> dict:
    """Tag every shard that is new, changed or tagged by another model; commit each atomically.

    A shard whose data cannot be read or split is quarantined, not fatal: the run commits one
    ``quarantined`` rejection row for it and goes on. It is tried again by the next run, then held
    (skipped) while its content and the model stay the same (``AnnotationStore.is_held``).

    One run at a time per output: after the model and the shards are checked, and before the
    output is touched, the run takes the output's lease (``adabiobert.output_lease``), and checks
    it is still its own before each commit step.

    Args:
        config: the run (``resolved()`` is applied here).
        hook: called after each commit step (``annotation.commit.Hook``; the crash tests pass one
            that kills the process); None: nothing is called.
        log: where one-line progress messages go.

    Returns:
        The run summary, also written to ``<output>/runs/<run_id>.json``. ``shards_quarantined``
        and ``shards_held`` say whether the run completed without some shards.

    Raises:
        InputNotFoundError: no bundle at ``config.model``, or no shard at ``config.shards``
            (``pmc.shards.list_shards``; raised before the output is touched or Ray starts).
        OutputLeasedError: another run holds the output (before it is touched or Ray starts);
            ``LeaseLostError`` when this run's lease was taken over (it commits nothing more).
        ConfigError: ``use_gpu`` without a GPU in the cluster; ``annotate.types`` names a type the
            bundle does not tag (before the output is touched).
        LinkingIndexError: ``annotate.linking_index`` is no index, or one built from other
            vocabularies than ``annotate.linking_vocabulary_hash`` (before the output is touched).
        RuntimeError: naming a shard whose articles did not all come back from the pipeline.
    """
    config = config.resolved()
    started = time.perf_counter()
    annotate = config.annotate  # the linking index first, like the model: refused before the output is touched
    artifact = inspect_index(annotate.linking_index, annotate.linking_vocabulary_hash) if annotate.linking_index else None
    # The model and the input first: a wrong path is refused before the output is touched.
    with storage.local_folder(config.model) as bundle:
        try:
            model_id = bundle_model_id(bundle.path, storage.parent_name(config.model))
        except InputNotFoundError:
            raise InputNotFoundError(f"{config.model}: no tagger bundle there ({MANIFEST} is missing); pass the "
                                     "'model' folder of a training run, <output>/<name>/model") from None
        if config.annotate.types is not None:
            require_known_types(config.annotate.types, bundle_entity_types(bundle.path), f"the bundle {config.model}")
            model_id = model_id_for_types(model_id, config.annotate.types)
    listing = find_shards(config.shards)
    if not listing.shards:
        list_shards(config.shards)  # raises InputNotFoundError (naming any unfinished ingest batch)
    if listing.unfinished:
        log(f"{config.shards}: left out the shards of {len(listing.unfinished)} unfinished ingest "
            f"batch{'es' if len(listing.unfinished) > 1 else ''} ({', '.join(f or '.' for f in listing.unfinished)}): "
            "no commit marker yet")
    with output_lease(config.output, job="annotate", log=log) as lease:
        return _annotate(config, model_id, listing.shards, _guarded(hook, lease), log, started, artifact)


def _guarded(hook: Hook | None, lease: OutputLease) -> Hook:
    """The commit hook, preceded by the lease check: a run whose lease was taken over stops at its
    next commit step (``LeaseLostError``)."""
    def guarded(step: str, shard: str) -> None:
        lease.check()
        if hook is not None:
            hook(step, shard)

    return guarded


def _annotate(config: AnnotationJobConfig, model_id: str, listed: list[Shard], hook: Hook,
              log: Callable[[str], None], started: float, artifact: IndexArtifact | None) -> dict:
    """:func:`run_annotation` once the output's lease is held; ``artifact``: the linking index
    inspected (None: no links)."""
    seconds = {"list": time.perf_counter() - started}
    counts = RunCounts()
    linker_id = artifact.linker_id(config.annotate.linking_threshold) if artifact else ""
    mark = time.perf_counter()
    store = AnnotationStore(config.output, hook)
    recovery = store.recover()
    seconds["recover"] = time.perf_counter() - mark

    mark = time.perf_counter()
    index = version_index(listed)
    counts.versions = index.counts()
    seconds["versions"] = time.perf_counter() - mark

    mark = time.perf_counter()
    plan = plan_run(store, listed, model_id, index, counts, linker_id)
    pending, amend = plan.pending, plan.amendments
    counts.shards_listed = len(listed)
    counts.shards_up_to_date = plan.up_to_date
    seconds["list"] += time.perf_counter() - mark
    log(f"{model_id}: {len(pending)} of {len(listed)} shards to tag, {len(plan.relink)} to re-link"
        f"{' with ' + linker_id if linker_id else ' (no links)'}, {counts.shards_held} held in quarantine "
        f"({recovery.orphan_files} orphan files and {recovery.superseded_markers} superseded markers cleaned up); "
        f"{len(index.current)} articles, {index.superseded} older versions, {index.retracted} retracted; "
        f"{plan.amendment_rows()} to remove from committed shards")

    mark = time.perf_counter()
    with ThreadPoolExecutor(max_workers=8) as pool:
        checks = list(pool.map(check_shard, pending))
    seconds["check"] = time.perf_counter() - mark

    streamed = [c for c in checks if c.expected > 0]
    pool = None
    if streamed:
        mark = time.perf_counter()
        init_ray(log)  # $RAY_ADDRESS when set, else a local instance
        pool = tagger_pool(config, ray.cluster_resources())  # raises before anything is committed
        precision = _run_precision(config)  # raises (a refused precision) before anything is committed
        log(f"tagging precision {precision['precision']}: {precision['reason']}")
        log(f"tagging {sum(c.expected for c in streamed)} articles of {len(streamed)} shard{'s' if len(streamed) > 1 else ''} "
            f"with {pool.actors} tagger actor{'s' if pool.actors > 1 else ''} ({pool.describe()} each); "
            "each loads the model first")
        seconds["ray_start"] = time.perf_counter() - mark
    else:
        precision = {"precision": None, "reason": "no shard to tag: no tagger was loaded", "requested": config.precision}

    commit_seconds = 0.0
    empty = TAGGED_SCHEMA.empty_table()
    for check in checks:
        if check.expected == 0:
            mark = time.perf_counter()
            if check.failure is None:
                commit_tagged(store, check, empty, config, model_id, counts, index, amend, linker_id)
            else:
                commit_quarantine(store, check, check.failure, config, model_id, counts)
            commit_seconds += time.perf_counter() - mark

    mark = time.perf_counter()
    stream_commit_seconds = (
        _stream_and_commit(store, streamed, config, model_id, pool, precision["precision"], counts, index, amend,
                           artifact)
        if streamed else 0.0)
    seconds["stream"] = time.perf_counter() - mark - stream_commit_seconds
    mark = time.perf_counter()
    for name, pmcids in amendments_alone(store, amend, listed, pending):
        commit_amendment(store, name, pmcids, index, config, counts)
    seconds["commit"] = commit_seconds + stream_commit_seconds + time.perf_counter() - mark
    relink_failed = _relink(store, plan.relink, model_id, index, config, artifact, counts, log) if plan.relink else []
    store.write_manifest()
    seconds["total"] = time.perf_counter() - started
    counts.seconds = {**{k: round(v, 3) for k, v in seconds.items()}, **counts.seconds}

    linked_with = None if artifact is None else {**artifact.to_dict(), "threshold": config.annotate.linking_threshold,
                                                 "linker_id": linker_id}
    summary = run_summary(config, model_id, precision, counts, recovery, linked_with)
    summary["relink_failed"] = relink_failed
    summary_uri = storage.join(config.output, "runs", f"{config.run_id}.json")
    storage.write_bytes(summary_uri, json.dumps(summary, indent=2).encode())
    return summary


def _relink(store: AnnotationStore, shards: list[Shard], model_id: str, index: VersionIndex,
            config: AnnotationJobConfig, artifact: IndexArtifact | None, counts: RunCounts,
            log: Callable[[str], None]) -> list[dict[str, str]]:
    """Re-link, on the driver, the shards that need it still; the index is loaded here only when
    a shard has mentions to link.

    Returns:
        ``{shard, error}`` of the shards whose text could not be read: left as they were, tried
        again by the next run.
    """
    linking, failed = None, []
    threshold = config.annotate.linking_threshold
    linker_id = artifact.linker_id(threshold) if artifact else ""
    for shard in shards:
        if not store.needs_relink(shard, model_id, index.excluded(shard.name), linker_id):
            counts.shards_up_to_date += 1  # committed meanwhile with this linker
            continue
        commit = store.committed(shard.name)
        if linking is None:
            linker = open_linker(artifact.uri, artifact.index_hash, threshold) if artifact else None
            linking = Linking(linker, artifact, threshold if artifact else None)
        mark = time.perf_counter()
        try:
            done = relink_shard(store, commit, linking, config.run_id, shard.uri)
        except RelinkError as error:
            log(f"{shard.name}: not re-linked: {error}")
            failed.append({"shard": shard.name, "error": str(error)})
            continue
        if done is None:
            counts.shards_committed_elsewhere += 1
        else:
            counts.add_relinked(done.commit.entities, done.linked, time.perf_counter() - mark)
    return failed


def _stream_and_commit(store: AnnotationStore, checks: list[ShardCheck], config: AnnotationJobConfig,
                       model_id: str, pool: TaggerPool, precision: str, counts: RunCounts, index: VersionIndex,
                       amend: Amendments, artifact: IndexArtifact | None = None) -> float:
    """Run the Ray pipeline over ``checks`` and commit each shard as its last article arrives.

    Returns:
        Seconds spent committing (inside the stream's wall time).
    """
    by_uri = {c.shard.uri: c for c in checks}
    linker_id = artifact.linker_id(config.annotate.linking_threshold) if artifact else ""
    dataset = _pipeline(list(by_uri), config, model_id, pool, precision, artifact)

    parts: dict[str, list[pa.Table]] = {}
    seen: Counter[str] = Counter()
    done: set[str] = set()
    commit_seconds = 0.0
    total = sum(c.expected for c in checks)
    progress = Progress("annotate", total, "article", enabled=config.show_progress)
    with progress:
        for batch in dataset.iter_batches(batch_format="pyarrow", batch_size=None, prefetch_batches=2):
            failed = pc.equal(batch.column("status"), QUARANTINED)
            for uri, detail in zip(*(batch.filter(failed).column(n).to_pylist() for n in ("path", "detail"))):
                mark = time.perf_counter()
                commit_quarantine(store, by_uri[uri], detail, config, model_id, counts)
                commit_seconds += time.perf_counter() - mark
                done.add(uri)
                progress.update(by_uri[uri].expected)
            batch = batch.filter(pc.invert(failed))
            uris = batch.column("path")
            for uri in pc.unique(uris).to_pylist():
                part = batch.filter(pc.equal(uris, uri))
                parts.setdefault(uri, []).append(part)
                seen[uri] += part.num_rows
                check = by_uri[uri]
                if uri in done or seen[uri] > check.expected:
                    raise RuntimeError(f"{check.shard.uri}: {seen[uri]} articles came back, expected {check.expected}")
                if seen[uri] == check.expected:
                    mark = time.perf_counter()
                    commit_tagged(store, check, pa.concat_tables(parts.pop(uri)), config, model_id, counts, index, amend,
                                  linker_id)
                    commit_seconds += time.perf_counter() - mark
                    done.add(uri)
            progress.update(batch.num_rows)
    missing = [uri for uri in by_uri if uri not in done]
    if missing:
        raise RuntimeError(f"the pipeline ended before every article came back from: {', '.join(missing)}")
    return commit_seconds


def _pipeline(uris: list[str], config: AnnotationJobConfig, model_id: str, pool: TaggerPool,
              precision: str, artifact: IndexArtifact | None = None) -> ray.data.Dataset:
    """The lazy read -> split -> tag dataset (one row per article, :data:`TAGGED_SCHEMA`, or one
    QUARANTINED row per shard that failed); every tagger actor runs at the resolved ``precision``
    and links with ``artifact`` (the index the driver inspected, by its hash) when given."""
    linking = (artifact.uri, artifact.index_hash, config.annotate.linking_threshold) if artifact else None
    runtime_env = worker_runtime_env()  # the read tasks inherit it from _read_shards
    return (
        ray.data.from_items([{"uri": uri} for uri in uris], override_num_blocks=len(uris))
        .map_batches(
            _read_shards,
            fn_kwargs={"config": config.annotate, "documents_per_split": config.documents_per_split,
                       "read_retries": config.read_retries, "model": config.model, "model_id": model_id},
            batch_size=1,
            batch_format="pyarrow",
            num_cpus=0,  # also keeps it from being fused into the tagger actors (other resources)
            compute=ray.data.TaskPoolStrategy(size=min(len(uris), read_slots(pool, ray.cluster_resources()))),
            runtime_env=runtime_env,
        )
        .map_batches(
            TaggerActor,
            fn_constructor_kwargs={
                "model": config.model,
                "model_id": model_id,
                "device": "cuda" if config.use_gpu else "cpu",
                "subword_budget": config.subword_budget,
                "cpu_threads": pool.threads,
                "precision": precision,
                "types": config.annotate.types,
                "linking": linking,
            },
            compute=ray.data.ActorPoolStrategy(size=pool.actors),
            batch_size=config.documents_per_call,
            batch_format="pyarrow",
            num_cpus=pool.cpus,
            num_gpus=pool.gpus,
            runtime_env=runtime_env,
        )
    )


def _run_precision(config: AnnotationJobConfig) -> dict[str, str]:
    """The run's precision, resolved once on a worker with a tagger actor's resources.

    Every actor then gets the concrete precision (never ``auto``), so all of them tag alike and
    the summary says what they did. A CPU cluster is assumed to be of one CPU kind: an actor on a
    node without native bf16, given ``bf16`` resolved elsewhere, refuses it and fails the run
    (pass ``--precision int8`` on mixed clusters).

    Raises:
        ConfigError: the precision is refused there (``bf16`` on a CPU without native bf16).
    """
    resources = {"num_gpus": 1} if config.use_gpu else {"num_cpus": 1}
    task = ray.remote(**resources, max_retries=1)(_choose_precision)
    try:
        return ray.get(task.remote(config.precision, "cuda" if config.use_gpu else "cpu"))
    except ray.exceptions.RayTaskError as error:
        if isinstance(error.cause, AdaBioBertError):
            raise error.cause from None
        raise
