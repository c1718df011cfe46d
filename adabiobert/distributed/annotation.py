"""Tag PMC shards with Ray Data and commit entity tables shard by shard, exactly once.

    recover the output (annotation_commit), list the shards, keep those not yet tagged
    (new or changed content, or a new model), check each footer on the driver
      -> read_parquet(pending shards, include_paths=True)            Ray read tasks
      -> map_batches(split_documents)                                CPU tasks: sentences + offsets
      -> map_batches(TaggerActor, compute=ActorPoolStrategy(size=n)) one model per actor (per GPU)
      -> iter_batches on the driver: rows are grouped by shard; when every article of a shard is
         back, its entity and rejection tables are committed (AnnotationStore.commit)

Read, split and tag overlap in Ray Data's streaming executor; the driver only groups rows and
writes one shard's small tables at a time. Shards that cannot be read, or that lack a column, are
committed from the driver with their rejection rows and never reach Ray.
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import PurePosixPath

import pyarrow as pa
import pyarrow.compute as pc
import ray
from tqdm import tqdm

from adabiobert import storage
from adabiobert.annotate import (
    OK,
    TAGGED_SCHEMA,
    TEXT_INPUT_COLUMNS,
    AnnotateConfig,
    AnnotationJobConfig,
    RunCounts,
    ShardCheck,
    bundle_model_id,
    check_shard,
    list_shards,
    split_documents,
    tag_documents,
)
from adabiobert.annotation_commit import AnnotationStore, Hook
from adabiobert.entity_tables import ENTITIES, REJECTIONS, entity_table, rejection_table
from adabiobert.errors import ConfigError

CRASH_ENV = "ADABIOBERT_ANNOTATE_CRASH"
"""Fault injection for the kill-and-resume test: ``<step>:<n>`` hard-exits the driver when the
n-th shard reaches commit step ``<step>`` (``staged``, ``placed``, ``marked``, ``superseded``)."""

_FORWARDED_ENV = ("AWS_ENDPOINT_URL", "AWS_REGION", "AWS_DEFAULT_REGION")
"""Settings (never credentials) that workers need to reach the same S3 endpoint as the driver."""


# ---------------------------------------------------------------------------------------------
# Worker side
# ---------------------------------------------------------------------------------------------
class TaggerActor:
    """Ray Data UDF: loads the bundle once per actor, then tags article batches."""

    def __init__(self, model: str, model_id: str, device: str, subword_budget: int, cpu_threads: int | None) -> None:
        import torch

        from adabiobert.tagger import Tagger

        if cpu_threads:
            torch.set_num_threads(cpu_threads)
        folder, self._download = _local_bundle(model)
        self.tagger = Tagger.from_pretrained(folder, device=device, subword_budget=subword_budget)
        self.tagger.model_id = model_id  # the driver's id, also for a downloaded copy

    def __call__(self, batch: pa.Table) -> pa.Table:
        return tag_documents(self.tagger, batch)


def _split(batch: pa.Table, config: AnnotateConfig) -> pa.Table:
    return split_documents(batch, config)


def _local_bundle(model: str) -> tuple[str, tempfile.TemporaryDirectory | None]:
    """A local folder holding the bundle (downloaded when ``model`` is on S3)."""
    if not storage.is_s3(model):
        return model, None
    download = tempfile.TemporaryDirectory(prefix="adabiobert-bundle-")
    storage.download_dir(model, download.name)
    return download.name, download


# ---------------------------------------------------------------------------------------------
# Driver side
# ---------------------------------------------------------------------------------------------
def run_annotation(config: AnnotationJobConfig, hook: Hook | None = None, log: Callable[[str], None] = print) -> dict:
    """Tag every shard that is new, changed or tagged by another model; commit each atomically.

    Args:
        config: the run (``resolved()`` is applied here).
        hook: commit-step callback for fault-injection tests (default: from ``$ADABIOBERT_ANNOTATE_CRASH``).
        log: where one-line progress messages go.

    Returns:
        The run summary, also written to ``<output>/runs/<run_id>.json``.

    Raises:
        ConfigError: ``use_gpu`` without a GPU in the cluster.
        RuntimeError: naming a shard whose articles did not all come back from the pipeline.
    """
    config = config.resolved()
    started, seconds = time.perf_counter(), {}
    counts = RunCounts()
    store = AnnotationStore(config.output, hook or _env_hook())
    recovery = store.recover()
    seconds["recover"] = time.perf_counter() - started

    mark = time.perf_counter()
    folder, download = _local_bundle(config.model)
    model_id = bundle_model_id(folder, PurePosixPath(config.model.rstrip("/")).parent.name if download else None)
    if download is not None:
        download.cleanup()
    listed = list_shards(config.shards)
    pending = [shard for shard in listed if not store.is_current(shard, model_id)]
    counts.shards_listed, counts.shards_up_to_date = len(listed), len(listed) - len(pending)
    seconds["list"] = time.perf_counter() - mark
    log(f"{model_id}: {len(pending)} of {len(listed)} shards to tag ({recovery.orphan_files} orphan files and "
        f"{recovery.superseded_markers} superseded markers cleaned up)")

    mark = time.perf_counter()
    with ThreadPoolExecutor(max_workers=8) as pool:
        checks = list(pool.map(check_shard, pending))
    seconds["check"] = time.perf_counter() - mark

    streamed = [c for c in checks if c.expected > 0]
    pool = None
    if streamed:
        mark = time.perf_counter()
        if not ray.is_initialized():
            ray.init(configure_logging=False)  # $RAY_ADDRESS when set, else a local instance
        pool = _tagger_pool(config)  # raises before anything is committed
        seconds["ray_start"] = time.perf_counter() - mark

    commit_seconds = 0.0
    empty = TAGGED_SCHEMA.empty_table()
    for check in checks:
        if check.expected == 0:
            mark = time.perf_counter()
            _commit(store, check, empty, config, model_id, counts)
            commit_seconds += time.perf_counter() - mark

    mark = time.perf_counter()
    stream_commit_seconds = _stream_and_commit(store, streamed, config, model_id, pool, counts) if streamed else 0.0
    seconds["stream"] = time.perf_counter() - mark - stream_commit_seconds
    seconds["commit"] = commit_seconds + stream_commit_seconds
    store.write_manifest()
    seconds["total"] = time.perf_counter() - started
    counts.seconds = {**{k: round(v, 3) for k, v in seconds.items()}, **counts.seconds}

    summary = {
        "run_id": config.run_id,
        "run_date": config.run_date,
        "model_id": model_id,
        **counts.to_dict(),
        "recovery": {"orphan_files": recovery.orphan_files, "superseded_markers": recovery.superseded_markers},
        "config": config.to_dict(),
    }
    summary_uri = storage.join(config.output, "runs", f"{config.run_id}.json")
    storage.write_bytes(summary_uri, json.dumps(summary, indent=2).encode())
    return summary


def _stream_and_commit(store: AnnotationStore, checks: list[ShardCheck], config: AnnotationJobConfig,
                       model_id: str, pool: tuple, counts: RunCounts) -> float:
    """Run the Ray pipeline over ``checks`` and commit each shard as its last article arrives.

    Returns:
        Seconds spent committing (inside the stream's wall time).
    """
    ray.data.DataContext.get_current().enable_progress_bars = False  # our own bar below
    filesystem, _ = storage.filesystem_for(checks[0].shard.uri)
    by_path = {storage.filesystem_for(c.shard.uri)[1]: c for c in checks}
    dataset = _pipeline(list(by_path), filesystem, config, model_id, pool)

    parts: dict[str, list[pa.Table]] = {}
    seen: Counter[str] = Counter()
    commit_seconds = 0.0
    total = sum(c.expected for c in checks)
    progress = tqdm(total=total, desc="annotate", unit="article", disable=not config.show_progress)
    with progress:
        for batch in dataset.iter_batches(batch_format="pyarrow", batch_size=None, prefetch_batches=2):
            paths = batch.column("path")
            for path in pc.unique(paths).to_pylist():
                part = batch.filter(pc.equal(paths, path))
                parts.setdefault(path, []).append(part)
                seen[path] += part.num_rows
                check = by_path[path]
                if seen[path] > check.expected:
                    raise RuntimeError(f"{check.shard.uri}: {seen[path]} articles came back, expected {check.expected}")
                if seen[path] == check.expected:
                    mark = time.perf_counter()
                    _commit(store, check, pa.concat_tables(parts.pop(path)), config, model_id, counts)
                    commit_seconds += time.perf_counter() - mark
            progress.update(batch.num_rows)
    missing = [by_path[p].shard.uri for p in by_path if seen[p] < by_path[p].expected]
    if missing:
        raise RuntimeError(f"the pipeline ended before every article came back from: {', '.join(missing)}")
    return commit_seconds


def _pipeline(paths: list[str], filesystem, config: AnnotationJobConfig, model_id: str, pool: tuple) -> ray.data.Dataset:
    """The lazy read -> split -> tag dataset (one row per article, :data:`TAGGED_SCHEMA`)."""
    actors, cpus, gpus, threads = pool
    env = {k: os.environ[k] for k in _FORWARDED_ENV if os.environ.get(k)}
    runtime_env = {"env_vars": env} if env else None
    return (
        ray.data.read_parquet(paths, filesystem=filesystem, include_paths=True, runtime_env=runtime_env)
        .select_columns([*TEXT_INPUT_COLUMNS, "path"])  # pushed down into the read
        .map_batches(_split, fn_kwargs={"config": config.annotate}, batch_size=config.documents_per_split,
                     batch_format="pyarrow", num_cpus=1, runtime_env=runtime_env)
        .map_batches(
            TaggerActor,
            fn_constructor_kwargs={
                "model": config.model,
                "model_id": model_id,
                "device": "cuda" if config.use_gpu else "cpu",
                "subword_budget": config.subword_budget,
                "cpu_threads": threads,
            },
            compute=ray.data.ActorPoolStrategy(size=actors),
            batch_size=config.documents_per_call,
            batch_format="pyarrow",
            num_cpus=cpus,
            num_gpus=gpus,
            runtime_env=runtime_env,
        )
    )


def _tagger_pool(config: AnnotationJobConfig) -> tuple[int, float | None, float | None, int | None]:
    """``(actors, CPUs per actor, GPUs per actor, torch threads)`` for this cluster.

    CPU: actors share the cluster's CPUs minus one, which stays free for the read and split
    tasks (with every CPU held by actors the reads never run: ray-project/ray#44687).
    """
    resources = ray.cluster_resources()
    if config.use_gpu:
        gpus = int(resources.get("GPU", 0))
        if gpus < 1:
            raise ConfigError("use_gpu was asked for but the Ray cluster has no GPU")
        return config.num_actors or gpus, None, 1, None  # Ray reserves 1 CPU per GPU actor itself
    cpus = int(resources.get("CPU", 1))
    threads = config.cpu_threads_per_actor or (1 if cpus <= 8 else min(4, (cpus - 1) // 4))
    return config.num_actors or max(1, (cpus - 1) // threads), threads, None, threads


def _commit(store: AnnotationStore, check: ShardCheck, documents: pa.Table, config: AnnotationJobConfig,
            model_id: str, counts: RunCounts) -> None:
    """Build one shard's tables from its tagged articles and the check's rejections; commit them."""
    run_id = config.run_id
    rejected = documents.filter(pc.not_equal(documents.column("status"), OK))
    rows = list(check.rejections) + [
        (None, pmcid, reason, detail)
        for pmcid, reason, detail in zip(*(rejected.column(n).to_pylist() for n in ("pmcid", "status", "detail")))
    ]
    rejections = rejection_table(check.shard.name, rows, model_id, run_id)
    order = [(column, "ascending") for column in ("pmcid", "section_index", "sentence_index", "start")]
    entities = entity_table(documents, check.shard.name, model_id, run_id).sort_by(order)
    commit = store.commit(check.shard, model_id, run_id, config.run_date, {ENTITIES: entities, REJECTIONS: rejections},
                          check.documents)
    if commit is None:
        counts.shards_committed_elsewhere += 1
    else:
        counts.add_shard(documents, entities, rejections, check.documents)


def _env_hook() -> Hook | None:
    """The crash hook asked for by ``$ADABIOBERT_ANNOTATE_CRASH`` (``<step>:<n>``), if any."""
    setting = os.environ.get(CRASH_ENV)
    if not setting:
        return None
    step, _, nth = setting.partition(":")
    reached: Counter[str] = Counter()

    def hook(name: str, shard: str) -> None:
        if name == step:
            reached[name] += 1
            if reached[name] == int(nth or 1):
                os._exit(3)  # a hard kill: no finally, no cleanup

    return hook
