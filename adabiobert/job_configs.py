"""Typed, frozen configuration of the jobs that make and read PMC shards: ingest, the PMC sync,
the Word2Vec build and the annotation job.

They sit beside the training configs (``adabiobert.training_config``, with ``TrainJobConfig``) and follow
the same rules: frozen dataclasses, a docstring under each field, checks in ``__post_init__``,
and one error type for a bad value, :class:`~adabiobert.errors.ConfigError`, which every entry
point reports as one line on stderr with exit status 2. Pure Python: building a config imports
neither torch, gensim nor Ray.
"""

from __future__ import annotations

import datetime
import os
import uuid
from dataclasses import asdict, dataclass, field, replace
from typing import Any

from adabiobert.errors import ConfigError
from adabiobert.training_config import DEFAULT_TAG_PRECISION, TAG_PRECISIONS

PMC_OPEN_DATA = "s3://pmc-oa-opendata"
"""PMC's Cloud Service bucket (us-east-1, public: read without credentials)."""


@dataclass(frozen=True)
class SyncConfig:
    """What a PMC sync run reads and where it writes (``jobs/sync_pmc.py``; docs/pmc-shards.md,
    "The PMC Cloud Service")."""

    output: str
    """The shard root (local or ``s3://``): each run appends the batch ``batch=pmc-<inventory date>/``
    and keeps the state of the last successful sync in ``<output>/_sync/``."""
    source: str = PMC_OPEN_DATA
    """The bucket (or a local folder laid out like it, for tests and mirrors)."""
    license: str = "open-access"
    """Which licences to ingest: ``open-access`` (every article of the bucket), ``commercial``
    (CC0, CC BY, CC BY-SA, CC BY-ND), or ``license_code`` values joined by commas."""
    inventory: str = ""
    """The inventory to sync to (its folder name, ``2026-12-05T01-00Z``); empty: the newest."""
    since: str = ""
    """Only article versions whose metadata changed on or after this UTC date (``YYYY-MM-DD``);
    the rest stay pending for a later run. Empty: no bound."""
    max_articles: int | None = None
    """Fetch at most this many article versions this run (the newest first); the rest stay
    pending. None: no bound."""
    articles_per_shard: int = 1000
    """Article versions per fetch unit, hence per shard (the unit of resumption)."""
    workers: int = 2
    """Fetch units at once, one Ray task each."""
    fetch_threads: int = 16
    """Concurrent GETs inside one unit (S3 requests wait on the network, not the CPU)."""
    show_progress: bool = True

    def __post_init__(self) -> None:
        for name in ("articles_per_shard", "workers", "fetch_threads"):
            if getattr(self, name) < 1:
                raise ConfigError(f"SyncConfig.{name} must be >= 1, got {getattr(self, name)}")
        if self.max_articles is not None and self.max_articles < 0:
            raise ConfigError(f"SyncConfig.max_articles must be >= 0, got {self.max_articles}")
        if self.since:
            try:
                datetime.date.fromisoformat(self.since)
            except ValueError:
                raise ConfigError(f"SyncConfig.since must be a date YYYY-MM-DD, got {self.since!r}") from None


# ---------------------------------------------------------------------------------------------
# Ingest (jobs/ingest_pmc.py)
# ---------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class IngestConfig:
    """What to ingest and where to write it."""

    inputs: tuple[str, ...]
    """Files, folders or ``.tar.gz`` packages, local paths or ``s3://`` URIs, read in this order."""
    output: str
    """Folder (local or ``s3://``) for the shards, ``rejects.parquet`` and ``ingest_stats.json``.
    It must not hold ``.parquet`` files yet: a second run never mixes with an older one (unless
    ``append``)."""
    articles_per_shard: int = 1000
    """Rows per shard (the last shard may hold fewer)."""
    show_progress: bool = True
    """Show the progress over the input files (``adabiobert.progress``)."""
    append: bool = False
    """Add a batch to the shard root ``output`` (which may hold shards): the run writes to
    ``<output>/batch=<batch>/`` and rejects articles whose version is not newer than the one the
    root holds (``docs/pmc-shards.md``, "Appends and versions")."""
    batch: str = ""
    """The appended batch's id (letters, digits, ``.``, ``_``, ``-``); empty: the run's UTC time.
    ``ingest_stats.json`` records the id written to, and ``output`` the batch folder."""

    def __post_init__(self) -> None:
        if self.batch and not self.append:
            raise ConfigError("IngestConfig.batch names a batch of an appending run; set append too")
        if not self.inputs:
            raise ConfigError("IngestConfig.inputs is empty; name at least one file or folder")
        if self.articles_per_shard < 1:
            raise ConfigError(f"IngestConfig.articles_per_shard must be >= 1, got {self.articles_per_shard}")


# ---------------------------------------------------------------------------------------------
# Word2Vec (jobs/build_word2vec.py)
# ---------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Word2VecConfig:
    """gensim Word2Vec settings."""

    vector_size: int = 128
    """Dimensions of a word vector."""
    window: int = 7
    """Largest distance between a word and a context word, in words."""
    min_count: int = 2
    """Words seen fewer times in the corpus get no vector."""
    epochs: int = 5
    """Passes over the corpus."""
    skip_gram: bool = True
    """Skip-gram (True) or CBOW (False); skip-gram is the usual choice for biomedical vectors
    (Chiu et al., 2016, "How to Train Good Word Embeddings for Biomedical NLP")."""
    seed: int = 13
    """Seed of the initial vectors and sampling. Runs repeat exactly only with ``workers=1``
    (thread scheduling changes the order of updates)."""
    workers: int | None = None
    """Training threads; None means ``os.cpu_count()``."""

    def __post_init__(self) -> None:
        for name in ("vector_size", "window", "min_count", "epochs"):
            if getattr(self, name) < 1:
                raise ConfigError(f"Word2VecConfig.{name} must be >= 1, got {getattr(self, name)}")
        if self.workers is not None and self.workers < 1:
            raise ConfigError(f"Word2VecConfig.workers must be >= 1 or None, got {self.workers}")

    def resolved_workers(self) -> int:
        return self.workers or os.cpu_count() or 1


@dataclass(frozen=True)
class Word2VecBuildConfig:
    """Where the build reads and writes, and how wide the Ray stage runs."""

    shards: str
    """A shard, or a folder of shards (local or ``s3://``; ``adabiobert.pmc.shards.list_shards``)."""
    out: str
    """Output folder (local or ``s3://``) for ``vectors.kv`` and ``word2vec_stats.json``."""
    word2vec: Word2VecConfig = field(default_factory=Word2VecConfig)
    """gensim settings."""
    num_actors: int = 2
    """Sentence-filter actors (one CPU each), at most the cluster's CPUs minus one: the read
    tasks need a CPU too, or the pipeline waits forever (ray-project/ray#44687)."""
    batch_size: int = 16
    """Articles per ``map_batches`` call."""
    keep_corpus: bool = False
    """Also write the line corpus to ``<out>/corpus.txt``."""
    show_progress: bool = True
    """Progress over the articles while the corpus is written (``adabiobert.progress``)."""

    def __post_init__(self) -> None:
        if self.num_actors < 1 or self.batch_size < 1:
            raise ConfigError(f"num_actors and batch_size must be >= 1, got {self.num_actors}, {self.batch_size}")


# ---------------------------------------------------------------------------------------------
# Annotation (jobs/annotate.py)
# ---------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class AnnotateConfig:
    """What an article must look like to be tagged."""

    max_document_chars: int = 1_000_000
    """Articles with more characters of text (title + abstract + sections) are rejected as
    ``too_long``: in PMC such texts are data tables flattened into prose, and one of them would
    hold a tagger call (and its memory) for minutes."""
    reject_control_characters: bool = True
    """Reject articles whose text holds a C0/C1 control character other than tab, LF, CR (they
    cannot come from valid JATS XML and mark a broken conversion). When False, the word tokenizer
    treats them as white space or punctuation and the article is tagged."""
    types: tuple[str, ...] | None = None
    """Write mentions of these entity types only (``--types Gene,Disease``); None: every type the
    bundle tags. A type the bundle does not tag is refused before any work; the run's model id
    says the restriction (``annotation.stages.model_id_for_types``), so a shard tagged under
    another one is tagged again."""
    linking_index: str | None = None
    """A linking index folder (local or ``s3://``, ``jobs/build_linking_index.py``): every mention
    gets a concept identifier (``docs/entity-tables.md``, "Identifiers"). None: the concept columns
    stay null. The run records the index's hash; a shard linked by another index (or threshold)
    is re-linked, not tagged again."""
    linking_threshold: float = 0.7
    """Below this score the linker abstains (``adabiobert.linking.linker.DEFAULT_THRESHOLD``)."""
    linking_vocabulary_hash: str | None = None
    """The vocabularies' combined sha256 the run expects its index to be built from (what the
    build job prints); an index built from others is refused, naming both. None: any."""

    def __post_init__(self) -> None:
        if self.max_document_chars < 1:
            raise ConfigError(f"max_document_chars must be >= 1, got {self.max_document_chars}")
        if not 0.0 <= self.linking_threshold <= 1.0:
            raise ConfigError(f"linking_threshold must be in [0, 1], got {self.linking_threshold}")
        if self.linking_vocabulary_hash is not None and self.linking_index is None:
            raise ConfigError("linking_vocabulary_hash is set but linking_index is not: give the index to check")
        if self.types is not None:
            if not self.types or not all(isinstance(t, str) and t.strip() == t and t for t in self.types):
                raise ConfigError(f"types must be non-empty type names, got {self.types!r}")
            object.__setattr__(self, "types", tuple(sorted(set(self.types))))


@dataclass(frozen=True)
class AnnotationJobConfig:
    """One run of the annotation job."""

    shards: str
    """A shard file or a folder of shards (local or ``s3://``): every ``.parquet`` below it except
    ``rejects.parquet`` (``adabiobert.pmc.shards.list_shards``)."""
    output: str
    """Output root (local or ``s3://``): ``entities/``, ``rejections/``, ``runs/``, ``_manifest/``."""
    model: str
    """Bundle folder (local or ``s3://``)."""
    run_date: str | None = None
    """Partition value ``YYYY-MM-DD`` for this run's files; None for today (UTC)."""
    run_id: str | None = None
    """None for a fresh id (UTC time + random suffix)."""
    use_gpu: bool = False
    """One tagger actor per GPU (bf16 autocast under ``precision`` auto)."""
    precision: str = DEFAULT_TAG_PRECISION
    """``auto``, ``fp32``, ``bf16`` or ``int8`` (``adabiobert.model.precision``). Resolved once per run on
    a worker with a tagger actor's resources, and every actor tags at that precision; the choice
    and its reason go into the run summary. ``int8`` is CPU only."""
    num_actors: int | None = None
    """Tagger actors; None: one per GPU, or on CPU (cluster CPUs - 1) // cpu_threads_per_actor."""
    cpu_threads_per_actor: int | None = None
    """torch threads (and Ray CPUs) per CPU tagger actor; None: 1 up to 8 CPUs, then up to 4."""
    documents_per_call: int = 32
    """Articles per tagger call (Ray Data ``batch_size``); each call tags all their sentences at
    once, batched by ``subword_budget`` from length-sorted sentences."""
    documents_per_split: int = 64
    """Articles per sentence-splitting task batch."""
    subword_budget: int = 8192
    """Subwords (padding included) per forward pass."""
    annotate: AnnotateConfig = field(default_factory=AnnotateConfig)
    """Which articles are tagged."""
    show_progress: bool = True
    """tqdm bar over articles on stderr."""
    read_retries: int = 2
    """Times the task that reads and splits a shard is run again after its worker died (a crash,
    out of memory, a lost node) before the shard is quarantined. An error raised while reading
    (a damaged page, a failed request) quarantines it at once."""

    def __post_init__(self) -> None:
        if self.run_date is not None:
            try:
                datetime.date.fromisoformat(self.run_date)
            except ValueError:
                raise ConfigError(f"run_date must be a date YYYY-MM-DD, got {self.run_date!r}") from None
        if self.precision not in TAG_PRECISIONS:
            raise ConfigError(f"precision must be one of {', '.join(TAG_PRECISIONS)}, got {self.precision!r}")
        if self.precision == "int8" and self.use_gpu:
            raise ConfigError("precision int8 is a CPU path (no CUDA kernels); with use_gpu use auto, bf16 or fp32")
        if self.read_retries < 0:
            raise ConfigError(f"read_retries must be >= 0, got {self.read_retries}")
        for name in ("documents_per_call", "documents_per_split", "subword_budget"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.num_actors is not None and self.num_actors < 1:
            raise ConfigError(f"num_actors must be >= 1, got {self.num_actors}")
        if self.cpu_threads_per_actor is not None and self.cpu_threads_per_actor < 1:
            raise ConfigError(f"cpu_threads_per_actor must be >= 1, got {self.cpu_threads_per_actor}")

    def resolved(self) -> AnnotationJobConfig:
        """A copy with ``run_date`` and ``run_id`` filled in."""
        now = datetime.datetime.now(datetime.timezone.utc)
        return replace(self, run_date=self.run_date or now.date().isoformat(),
                       run_id=self.run_id or f"{now:%Y%m%dT%H%M%SZ}-{uuid.uuid4().hex[:6]}")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)
