"""Build Word2Vec vectors from PMC shards: Ray Data makes the corpus, gensim trains on one node.

Pipeline (all lazy until the driver iterates it, so the read, the split and the write overlap):

    list_shards(shards), check_shard on each footer (adabiobert.pmc.shards)
      -> read_parquet(shards).select_columns(title, abstract, sections)
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
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa
import ray

from adabiobert import storage
from adabiobert.distributed.session import init_ray
from adabiobert.job_configs import Word2VecBuildConfig
from adabiobert.output_lease import OutputLease, output_lease
from adabiobert.pmc.lexicon import Lexicon
from adabiobert.pmc.shards import TEXT_COLUMNS, Shard, article_sections, check_shard, list_shards
from adabiobert.pmc.word2vec_build import STATS_FILE, kept_sentence_lines, save_vectors, train_vectors
from adabiobert.progress import Progress

CORPUS_FILE = "corpus.txt"
"""Name of the line corpus (kept in the output only with ``keep_corpus``)."""

_OUTPUT_SCHEMA = pa.schema([pa.field("sentences_seen", pa.int64()), pa.field("lines", pa.list_(pa.string()))])


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
            texts = [piece.text for piece in article_sections(title, abstract, sections)]
            seen, lines = kept_sentence_lines(texts, self.lexicon)
            seen_counts.append(seen)
            kept.append(lines)
        return pa.table({"sentences_seen": seen_counts, "lines": kept}, schema=_OUTPUT_SCHEMA)


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

    One build at a time per output: it holds the lease of ``config.out`` (``adabiobert.output_lease``)
    from after the shards are checked, before Ray starts, until its files are written.

    Raises:
        InputNotFoundError: (a ``FileNotFoundError``) no shard at ``config.shards``
            (``pmc.shards.list_shards``).
        ShardSchemaError: a shard that cannot be read, or lacks a column (naming the shard and column).
        OutputLeasedError: another build holds ``config.out`` (before Ray starts).
        ConfigError: the kept corpus has no word ``min_count`` times.
    """
    shards = list_shards(config.shards)
    documents_total = _check_shards(shards)
    with output_lease(config.out, job="word2vec", log=log) as lease:
        return _build(config, lexicon, [shard.uri for shard in shards], documents_total, lease, log)


def _build(config: Word2VecBuildConfig, lexicon: Lexicon, uris: list[str], documents_total: int, lease: OutputLease,
           log) -> Word2VecStats:
    """:func:`build_word2vec` under the output's lease."""
    with storage.staged_output(config.out) as local_out:  # uploaded at the end when config.out is on S3
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
        lease.check()  # a build whose lease was taken over writes no stats and uploads nothing
        (Path(local_out) / STATS_FILE).write_text(json.dumps(asdict(stats), indent=2))
    return stats


def _check_shards(shards: list[Shard]) -> int:
    """Check every shard's footer (``pmc.shards.check_shard``); return the total number of articles.

    Raises:
        ShardSchemaError: the first shard that cannot be read or lacks a column.
    """
    total = 0
    for shard in shards:
        check = check_shard(shard)
        check.require_usable()
        total += check.documents
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
