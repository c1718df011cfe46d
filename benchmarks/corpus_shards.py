"""The raw text of the corpora's TRAIN splits as PMC-schema shards, for the Word2Vec build stage.

    python benchmarks/corpus_shards.py --data-root ../shared/corpora --output /work/bench/w2v-shards/corpora

Issue 14 asks for vectors from the largest in-domain text available offline: the train
sentences of every visible corpus plus the PMC samples, filtered by the lexicon exactly as the
build stage filters PMC. This writes one shard per corpus (``corpus-<dataset>.parquet``), one row
per 50 sentences, the words joined by spaces in ``abstract``; ``jobs/build_word2vec.py`` then reads
these shards beside the ingested PMC samples. Only train splits are used (dev and test text must
not reach the features), and corpora that share their sentences (BC5CDR and its chemical and
disease subsets) are read once.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import pyarrow.parquet as pq  # noqa: E402

from adabiobert.corpora.iob import load_corpus  # noqa: E402
from adabiobert.pmc.shards import records_to_table  # noqa: E402

DATASETS = ("NCBI-disease", "BC5CDR", "BC2GM")
"""Every visible corpus with a train split (JNLPBA has none here; BC5CDR-chem/-disease repeat BC5CDR)."""
SENTENCES_PER_ROW = 50


def corpus_records(dataset: str, data_root: str) -> list[dict]:
    sentences = load_corpus(dataset, data_root).train
    records = []
    for start in range(0, len(sentences), SENTENCES_PER_ROW):
        block = sentences[start : start + SENTENCES_PER_ROW]
        records.append({
            "pmcid": f"{dataset}-train-{start // SENTENCES_PER_ROW:05d}",
            "abstract": "\n".join(" ".join(s.words) for s in block),
            "sections": [],
            "source": f"{dataset}/train",
        })
    return records


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-root", required=True)
    parser.add_argument("--output", required=True, type=Path)
    parser.add_argument("--datasets", nargs="+", default=list(DATASETS))
    args = parser.parse_args(argv)
    args.output.mkdir(parents=True, exist_ok=True)
    for dataset in args.datasets:
        records = corpus_records(dataset, args.data_root)
        path = args.output / f"corpus-{dataset}.parquet"
        pq.write_table(records_to_table(records), path)
        print(f"{dataset}: {sum(r['abstract'].count(chr(10)) + 1 for r in records)} sentences in {len(records)} rows -> {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
