"""Build Word2Vec vectors from PMC shards: Ray Data makes the corpus, gensim trains on one node.

Pipeline (all lazy until the driver iterates it, so the read, the split and the write overlap):

    read_parquet(shards).select_columns(title, abstract, sections)
      -> map_batches(SentenceFilter, compute=ActorPoolStrategy(size=num_actors))
           one row per article: sentences_seen, lines (kept sentences, words joined by spaces)
      -> iter_batches on the driver, appending the lines to <staging>/corpus.txt as they come
    gensim Word2Vec(corpus_file=corpus.txt) -> <out>/vectors.kv, <out>/word2vec_stats.json

Only the driver holds a batch at a time, so memory stays bounded whatever the corpus size.
The filter is an actor class so that the lexicon's automaton is built once per worker.
gensim itself is not distributed (it is multi-threaded on the node that runs this).
"""

from __future__ import annotations

import json
import tempfile
import time
from contextlib import ExitStack
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import ray

from adabiobert import storage
from adabiobert.distributed.session import init_ray
from adabiobert.errors import InputNotFoundError
from adabiobert.lexicon import Lexicon
from adabiobert.pmc_schema import TEXT_COLUMNS, validate_shard_schema
from adabiobert.progress import Progress
from adabiobert.word2vec import (
    STATS_FILE,
    Word2VecConfig,
    article_texts,
    kept_sentence_lines,
    save_vectors,
    train_vectors,
)

CORPUS_FILE = "corpus.txt"
"""Name of the line corpus (kept in the output only with ``keep_corpus``)."""

_OUTPUT_SCHEMA = pa.schema([pa.field("sentences_seen", pa.int64()), pa.field("lines", pa.list_(pa.string()))])


@dataclass(frozen=True)
class Word2VecBuildConfig:
    """Where the build reads and writes, and how wide the Ray stage runs."""

    shards: str
    """A shard, or a folder of shards (local or ``s3://``): every ``.parquet`` file in it except
    ``rejects.parquet``."""
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
            raise ValueError(f"num_actors and batch_size must be >= 1, got {self.num_actors}, {self.batch_size}")


@dataclass(frozen=True)
class Word2VecStats:
    """What one build did (written as ``word2vec_stats.json``)."""

    shards: int
    """Shard files read."""
    documents: int
    """Articles read."""
    sentences_seen: int
    """Sentences split from titles, abstracts and sections."""
    sentences_kept: int
    """Sentences that mention a lexicon term (the corpus)."""
    tokens: int
    """Words in the kept sentences."""
    vocabulary_size: int
    """Words with a vector (seen at least ``min_count`` times)."""
    lexicon_terms: int
    """Terms in the lexicon used by the filter."""
    seconds: dict[str, float]
    """Wall-clock seconds per stage: ``corpus`` (read, split, filter, write), ``train``, ``save``."""
    config: dict[str, Any]
    """The resolved :class:`Word2VecBuildConfig`."""


class SentenceFilter:
    """Ray Data UDF: articles in, ``(sentences_seen, lines)`` per article out."""

    def __init__(self, lexicon: Lexicon) -> None:
        self.lexicon = lexicon

    def __call__(self, batch: pa.Table) -> pa.Table:
        seen_counts, kept = [], []
        columns = {name: batch.column(name).to_pylist() for name in TEXT_COLUMNS}
        for title, abstract, sections in zip(columns["title"], columns["abstract"], columns["sections"]):
            seen, lines = kept_sentence_lines(article_texts(title, abstract, sections), self.lexicon)
            seen_counts.append(seen)
            kept.append(lines)
        return pa.table({"sentences_seen": seen_counts, "lines": kept}, schema=_OUTPUT_SCHEMA)


def shard_uris(shards: str) -> list[str]:
    """The shard files named by ``shards`` (a file, or a folder without its ``rejects.parquet``)."""
    if shards.endswith(".parquet"):
        if not storage.exists(shards):
            raise InputNotFoundError(f"{shards}: no such shard")
        return [shards]
    found = [info.uri for info in storage.list_files(shards, (".parquet",))]
    found = [uri for uri in found if not uri.endswith("rejects.parquet")]
    if not found:
        raise InputNotFoundError(f"no .parquet shard under {shards}; pass the --output folder of jobs/ingest_pmc.py")
    return found


def sentence_dataset(uris: list[str], lexicon: Lexicon, config: Word2VecBuildConfig, log=None) -> ray.data.Dataset:
    """The lazy Ray dataset of kept sentences, one row per article (starts Ray if needed, saying so to ``log``)."""
    init_ray(log)  # $RAY_ADDRESS when set, else a local instance
    actors = max(1, min(config.num_actors, int(ray.cluster_resources().get("CPU", 1)) - 1))
    filesystem, _ = storage.filesystem_for(uris[0])
    paths = [storage.filesystem_for(uri)[1] for uri in uris]
    # select_columns right after the read is pushed into it (``columns=`` is deprecated in 2.60).
    dataset = ray.data.read_parquet(paths, filesystem=filesystem).select_columns(list(TEXT_COLUMNS))
    return dataset.map_batches(
        SentenceFilter,
        fn_constructor_args=(lexicon,),
        compute=ray.data.ActorPoolStrategy(size=actors),
        batch_size=config.batch_size,
        batch_format="pyarrow",
        num_cpus=1,
    )


def build_word2vec(config: Word2VecBuildConfig, lexicon: Lexicon, log=None) -> Word2VecStats:
    """Make the kept-sentence corpus on Ray Data, train gensim on it, save vectors and stats.

    Args:
        config: shards, output and settings.
        lexicon: the terms a sentence must mention to be kept.
        log: called with a line per stage (None: silent).

    Returns:
        The statistics also written to ``<out>/word2vec_stats.json``.

    Raises:
        InputNotFoundError: (a ``FileNotFoundError``) no shard found.
        ShardSchemaError: a shard without the text columns (naming the shard and column).
        ConfigError: the kept corpus has no word ``min_count`` times.
    """
    uris = shard_uris(config.shards)
    documents_total = _check_shards(uris)
    with ExitStack() as stack:
        local_out = config.out
        if storage.is_s3(config.out):
            local_out = stack.enter_context(tempfile.TemporaryDirectory(prefix="word2vec-"))
        Path(local_out).mkdir(parents=True, exist_ok=True)
        corpus = Path(local_out) / CORPUS_FILE
        started = time.perf_counter()
        counts = _write_corpus(sentence_dataset(uris, lexicon, config, log), corpus, documents_total, config.show_progress)
        corpus_seconds = time.perf_counter() - started
        if log is not None:
            log(f"word2vec: training gensim ({config.word2vec.epochs} epochs) on {counts['sentences_kept']} sentences, "
                f"{counts['tokens']} words")
        vectors = train_vectors(corpus, config.word2vec)
        train_seconds = time.perf_counter() - started - corpus_seconds
        save_vectors(vectors, local_out)
        if not config.keep_corpus:
            corpus.unlink()
        stats = Word2VecStats(
            shards=len(uris),
            vocabulary_size=len(vectors.key_to_index),
            lexicon_terms=len(lexicon),
            seconds={"corpus": round(corpus_seconds, 3), "train": round(train_seconds, 3),
                     "save": round(time.perf_counter() - started - corpus_seconds - train_seconds, 3)},
            config=asdict(config),
            **counts,
        )
        (Path(local_out) / STATS_FILE).write_text(json.dumps(asdict(stats), indent=2))
        if storage.is_s3(config.out):
            storage.upload_dir(local_out, config.out)
    return stats


def _check_shards(uris: list[str]) -> int:
    """Check every shard's schema from its footer; return the total number of articles."""
    total = 0
    for uri in uris:
        filesystem, path = storage.filesystem_for(uri)
        metadata = pq.read_metadata(path, filesystem=filesystem)
        validate_shard_schema(metadata.schema.to_arrow_schema(), uri)
        total += metadata.num_rows
    return total


def _write_corpus(dataset: ray.data.Dataset, corpus: Path, documents_total: int, show_progress: bool) -> dict[str, int]:
    """Stream the dataset's kept lines into ``corpus``; return the counts for the stats."""
    counts = {"documents": 0, "sentences_seen": 0, "sentences_kept": 0, "tokens": 0}
    progress = Progress("word2vec corpus", documents_total, "article", enabled=show_progress)
    with open(corpus, "w", encoding="utf-8") as handle, progress:
        for batch in dataset.iter_batches(batch_format="pyarrow", batch_size=None):
            counts["documents"] += batch.num_rows
            counts["sentences_seen"] += sum(batch.column("sentences_seen").to_pylist())
            for lines in batch.column("lines").to_pylist():
                for line in lines:
                    handle.write(line + "\n")
                    counts["tokens"] += line.count(" ") + 1
                counts["sentences_kept"] += len(lines)
            progress.update(batch.num_rows)
    return counts
