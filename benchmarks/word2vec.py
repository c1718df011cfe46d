"""Word2Vec build speed: the sentence filter per core, and gensim corpus_file vs an iterator.

    .venv/bin/python benchmarks/word2vec.py --shared ../shared

1. read + split + filter: one process (= one core) reads the PMC sample shards with pyarrow,
   splits every text into sentences and keeps those that mention a term of the default lexicon
   (the work of one Ray actor, without Ray's start-up). Reported as sentences seen per second.
2. gensim: the same line corpus trained with ``corpus_file=`` and with a Python iterator
   (``LineSentences``), for each worker count; reported as corpus words per second
   (words x epochs / training seconds). The corpus is every sentence of the samples, repeated
   to ``--words`` words, so the numbers do not depend on how many sentences the filter keeps.

Prints one JSON object; docs/benchmarks.md holds the numbers of a run.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import pyarrow.parquet as pq  # noqa: E402

from adabiobert.job_configs import IngestConfig, Word2VecConfig  # noqa: E402
from adabiobert.pmc.ingest import ingest  # noqa: E402
from adabiobert.pmc.lexicon import Lexicon  # noqa: E402
from adabiobert.pmc.shards import article_sections  # noqa: E402
from adabiobert.pmc.word2vec_build import (  # noqa: E402
    LineSentences,
    kept_sentence_lines,
    train_vectors,
    train_vectors_from_iterable,
)
from adabiobert.text import split_sentences  # noqa: E402


def article_texts(title, abstract, sections) -> list[str]:
    return [piece.text for piece in article_sections(title, abstract, sections)]


def filter_throughput(shards: list[Path], lexicon: Lexicon, repeat: int) -> dict[str, float]:
    seen = kept = 0
    started = time.perf_counter()
    for _ in range(repeat):
        for shard in shards:
            table = pq.read_table(shard, columns=["title", "abstract", "sections"])
            for row in table.to_pylist():
                n_seen, lines = kept_sentence_lines(article_texts(row["title"], row["abstract"], row["sections"]), lexicon)
                seen += n_seen
                kept += len(lines)
    seconds = time.perf_counter() - started
    return {"sentences_seen": seen, "sentences_kept": kept, "seconds": round(seconds, 2),
            "sentences_per_second_per_core": round(seen / seconds, 1)}


def write_corpus(shards: list[Path], path: Path, words: int) -> int:
    """All sentences of the shards, repeated until ``words`` words; returns the word count."""
    lines = []
    for shard in shards:
        for row in pq.read_table(shard, columns=["title", "abstract", "sections"]).to_pylist():
            for text in article_texts(row["title"], row["abstract"], row["sections"]):
                lines.extend(" ".join(w.text for w in s.words) for s in split_sentences(text))
    per_pass = sum(line.count(" ") + 1 for line in lines)
    passes = max(1, words // per_pass)
    with open(path, "w", encoding="utf-8") as handle:
        for _ in range(passes):
            handle.write("\n".join(lines) + "\n")
    return per_pass * passes


def gensim_throughput(corpus: Path, words: int, workers: int, epochs: int) -> dict[str, float]:
    config = Word2VecConfig(min_count=2, epochs=epochs, workers=workers)
    result = {}
    for mode, train in (("corpus_file", lambda: train_vectors(corpus, config)),
                        ("iterator", lambda: train_vectors_from_iterable(LineSentences(corpus), config))):
        started = time.perf_counter()
        train()
        seconds = time.perf_counter() - started
        result[mode] = {"seconds": round(seconds, 2), "words_per_second": round(words * epochs / seconds)}
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--shared", default=str(Path(__file__).resolve().parents[2] / "shared"))
    parser.add_argument("--repeat", type=int, default=5, help="passes over the sample shards for the filter")
    parser.add_argument("--words", type=int, default=2_000_000, help="size of the gensim corpus")
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, os.cpu_count() or 1])
    args = parser.parse_args(argv)

    report: dict = {"machine": {"cpus": os.cpu_count(), "python": platform.python_version(),
                                "load_average_at_start": os.getloadavg()}}
    with tempfile.TemporaryDirectory() as work:
        shard_dir = Path(work) / "shards"
        ingest(IngestConfig((str(Path(args.shared) / "pmc-sample"),), str(shard_dir), show_progress=False))
        shards = sorted(shard_dir.glob("part-*.parquet"))
        started = time.perf_counter()
        lexicon = Lexicon.default(args.shared)
        report["lexicon"] = {"terms": len(lexicon), "load_seconds": round(time.perf_counter() - started, 2)}
        report["read_split_filter"] = filter_throughput(shards, lexicon, args.repeat)
        corpus = Path(work) / "corpus.txt"
        words = write_corpus(shards, corpus, args.words)
        report["gensim"] = {"corpus_words": words, "epochs": args.epochs, "vector_size": 128, "window": 7,
                            "skip_gram": True}
        for workers in args.workers:
            report["gensim"][f"workers={workers}"] = gensim_throughput(corpus, words, workers, args.epochs)
    report["machine"]["load_average_at_end"] = os.getloadavg()
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
