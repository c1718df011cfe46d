"""What an annotation run will do, decided without Ray: pending, held and up-to-date shards, the
amendments a version change needs, the size of the tagger pool, and the run summary.

The Ray pipeline (``adabiobert.distributed.annotation``) asks these questions and acts on the
answers; every answer here is a function of the output's commits (``AnnotationStore``), the shard
root's versions (``VersionIndex``) and, for sizing, the cluster's resources as a plain mapping.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from adabiobert.annotation.commit import AnnotationStore
from adabiobert.annotation.counts import RunCounts
from adabiobert.errors import ConfigError
from adabiobert.job_configs import AnnotationJobConfig
from adabiobert.pmc.shards import Shard
from adabiobert.pmc.versions import VersionIndex, build_index, read_root_versions

Amendments = dict[str, dict[str, frozenset[str]]]
"""``{owner shard: {committed shard: pmcids}}``: rows the committed shard holds of articles whose
current version (or retraction) the owner holds; the owner's commit removes them."""


@dataclass
class RunPlan:
    """Which of the listed shards this run tags, and what it removes from committed ones."""

    pending: list[Shard]
    """Shards to tag: new or changed content, a new model, or an article left out that is current again."""
    amendments: Amendments
    held: list[Shard] = field(default_factory=list)
    """Shards held in quarantine (their content and the model unchanged since they failed)."""
    up_to_date: int = 0
    relink: list[Shard] = field(default_factory=list)
    """Shards tagged by this model in the current tables version whose links are not the run's
    (another linker or none): re-linked by the driver, not tagged again. A shard of an older
    tables version is pending instead (version 2 has no articles file)."""

    def amendment_rows(self) -> int:
        """Rows to remove from committed shards, over every owner."""
        return sum(len(pmcids) for shards in self.amendments.values() for pmcids in shards.values())


def version_index(listed: list[Shard]) -> VersionIndex:
    """The current version of every article of the listed shards (a shard that cannot be read
    adds nothing here; its check records it)."""
    return build_index(read_root_versions(listed))


def plan_run(store: AnnotationStore, listed: list[Shard], model_id: str, index: VersionIndex,
             counts: RunCounts, linker_id: str = "") -> RunPlan:
    """Sort the listed shards into held, pending, to re-link and up to date; held shards are added
    to ``counts``.

    Args:
        linker_id: the run's linker (``""``: it links nothing).
    """
    pending, held, relink = [], [], []
    for shard in listed:
        excluded = index.excluded(shard.name)
        if store.is_held(shard, model_id):
            quarantine = store.quarantine(shard, model_id)
            counts.add_quarantine(shard, quarantine.quarantined, quarantine.error, held=True)
            held.append(shard)
        elif store.needs_relink(shard, model_id, excluded, linker_id):
            relink.append(shard)
        elif not store.is_current(shard, model_id, excluded, linker_id):
            pending.append(shard)
    amend = amendments(store, listed, {s.name for s in pending}, index)
    return RunPlan(pending, amend, held, len(listed) - len(pending) - len(held) - len(relink), relink)


def amendments(store: AnnotationStore, listed: list[Shard], pending: set[str], index: VersionIndex) -> Amendments:
    """What the committed shards not tagged again by this run hold that is no longer current."""
    amend: dict[str, dict[str, set[str]]] = {}
    for shard in listed:
        commit = store.committed(shard.name)
        if shard.name in pending or commit is None or commit.quarantined:
            continue
        for pmcid in index.excluded(shard.name) - set(commit.excluded):
            amend.setdefault(index.owner(pmcid), {}).setdefault(shard.name, set()).add(pmcid)
    return {owner: {name: frozenset(p) for name, p in shards.items()} for owner, shards in amend.items()}


def amendments_alone(store: AnnotationStore, amend: Amendments, listed: list[Shard],
                     pending: list[Shard]) -> list[tuple[str, frozenset[str]]]:
    """The amendments that no commit of this run carried, to commit each on its own: those whose
    owner is up to date. An owner that this run tried (and quarantined), or that is held or
    quarantined, keeps them for the run that tags it: its article's old rows stay until its new
    version can be read. Returns ``(committed shard, pmcids)`` pairs in a fixed order."""
    tried = {s.name for s in pending}
    usable = {s.name for s in listed if not (store.committed(s.name) and store.committed(s.name).quarantined)}
    return [(name, pmcids)
            for owner, shards in sorted(amend.items()) if owner not in tried and owner in usable
            for name, pmcids in sorted(shards.items())]


@dataclass(frozen=True)
class TaggerPool:
    """How the tagger actors sit on the cluster."""

    actors: int
    cpus: float | None
    """CPUs per actor (None on GPU: Ray reserves one CPU per GPU actor itself)."""
    gpus: float | None
    """GPUs per actor (None on CPU)."""
    threads: int | None
    """torch threads per actor (None: torch's default, on GPU)."""

    def describe(self) -> str:
        return f"{self.gpus} GPU" if self.gpus else f"{self.cpus} CPU"


def tagger_pool(config: AnnotationJobConfig, resources: Mapping[str, float]) -> TaggerPool:
    """The tagger actors for a cluster with ``resources`` (``ray.cluster_resources()``).

    CPU: actors share the cluster's CPUs minus one, which stays free for the read and split
    tasks (with every CPU held by actors the reads never run: ray-project/ray#44687).

    Raises:
        ConfigError: ``use_gpu`` on a cluster without a GPU.
    """
    if config.use_gpu:
        gpus = int(resources.get("GPU", 0))
        if gpus < 1:
            raise ConfigError("use_gpu was asked for but the Ray cluster has no GPU")
        return TaggerPool(config.num_actors or gpus, None, 1, None)
    cpus = int(resources.get("CPU", 1))
    threads = config.cpu_threads_per_actor or (1 if cpus <= 8 else min(4, (cpus - 1) // 4))
    return TaggerPool(config.num_actors or max(1, (cpus - 1) // threads), threads, None, threads)


def read_slots(pool: TaggerPool, resources: Mapping[str, float]) -> int:
    """Shards read at once: the cluster's CPUs that the tagger actors leave (at least one).

    Each slot is one waiting UDF task (no CPU) and one read task (one CPU), so this also bounds
    the memory of reads in flight to that many shards.
    """
    total = int(resources.get("CPU", 1))
    held = pool.actors * (pool.cpus or 1)  # a GPU actor reserves one CPU (Ray's default)
    return max(1, int(total - held))


def run_summary(config: AnnotationJobConfig, model_id: str, precision: dict, counts: RunCounts, recovery,
                linking: dict | None = None) -> dict:
    """The run summary written to ``<output>/runs/<run_id>.json`` and returned by the job.

    Args:
        linking: what the run linked with (``relink.Linking.to_dict``: the index, its hash, the
            vocabularies' hash, the threshold, the linker id); None: nothing.
    """
    return {
        "run_id": config.run_id,
        "run_date": config.run_date,
        "model_id": model_id,
        "linking": linking,
        "precision": precision,
        **counts.to_dict(),
        "recovery": {"orphan_files": recovery.orphan_files, "superseded_markers": recovery.superseded_markers,
                     "amendments_completed": recovery.amendments_completed},
        "config": config.to_dict(),
    }
