#!/usr/bin/env bash
# The whole pipeline on the embedded default (a local Ray, the offline MiniLM backbone,
# NCBI-disease, the PMC sample articles in ../shared): JATS -> shards -> Word2Vec -> fine-tuning
# -> annotation -> a DuckDB summary. About 3 minutes on an idle 2-core machine (docs/benchmarks.md).
# Everything goes to runs/demo/ (DEMO_OUTPUT), removed first so the demo always starts clean.
#
# What it prints is the story, one line (or one progress bar, on a terminal) per step; Ray's own
# logs stay in its session folder, named on the "ray:" lines. A traceback means something failed.
set -euo pipefail
cd "$(dirname "$0")/.."
SHARED="${ADABIOBERT_SHARED:-$(cd .. && pwd)/shared}"
export ADABIOBERT_DATA_ROOT="${ADABIOBERT_DATA_ROOT:-$SHARED/corpora}"
PY=.venv/bin/python
OUT=${DEMO_OUTPUT:-runs/demo}
rm -rf "$OUT"
START=$SECONDS

stage() {  # stage <n> <what>: a numbered header with the time since the start
  local elapsed=$((SECONDS - START))
  printf '\n[%s/5 at %dm%02ds] %s\n' "$1" $((elapsed / 60)) $((elapsed % 60)) "$2"
}

echo "AdaBioBERT demo: 5 steps, about 3 minutes on an idle 2-core machine; outputs in $OUT/"

stage 1 "PMC JATS articles -> Parquet shards"
$PY jobs/ingest_pmc.py "$SHARED/pmc-sample" --output "$OUT/pmc-shards"

stage 2 "Word2Vec (128 d, window 7) on the sentences that mention a lexicon gene or disease"
$PY jobs/build_word2vec.py --shards "$OUT/pmc-shards" --out "$OUT/word2vec" --lexicon "$SHARED/lexicon" --min-count 1

stage 3 "fine-tune AdaBioBERT on NCBI-disease, 1 epoch (loss: CRF only, the default)"
$PY jobs/train.py --dataset NCBI-disease --backbone minilm --epochs 1 \
  --word-vectors "$OUT/word2vec/vectors.kv" --output "$OUT" --name ncbi-minilm

stage 4 "tag the shards with the exported tagger (Ray Data)"
$PY jobs/annotate.py --shards "$OUT/pmc-shards" --model "$OUT/ncbi-minilm/model" --output "$OUT/annotations" \
  --run-id demo

stage 5 "the entity table, queried with DuckDB"
$PY - "$OUT" $((SECONDS - START)) <<'PYTHON'
import json
import sys
from pathlib import Path

import duckdb

out, seconds = Path(sys.argv[1]), int(sys.argv[2])
table = f"read_parquet('{out}/annotations/entities/*/*.parquet', hive_partitioning = true)"
con = duckdb.connect()
print(f"  {'label':<10} {'mentions':>8} {'articles':>8}")
for label, mentions, articles in con.execute(
    f"SELECT label, count(*), count(DISTINCT pmcid) FROM {table} GROUP BY label ORDER BY 2 DESC"
).fetchall():
    print(f"  {label:<10} {mentions:>8} {articles:>8}")
print(f"\n  {'mentions':>8}  {'label':<10} {'mean confidence':>15}  mention (the 10 most frequent)")
for mention, label, n, confidence in con.execute(
    f"SELECT lower(mention), label, count(*), avg(confidence) FROM {table} "
    "GROUP BY 1, 2 ORDER BY 3 DESC, 1 LIMIT 10"
).fetchall():
    print(f"  {n:>8}  {label:<10} {confidence:>15.3f}  {mention}")

ingest = json.loads((out / "pmc-shards" / "ingest_stats.json").read_text())
w2v = json.loads((out / "word2vec" / "word2vec_stats.json").read_text())
results = json.loads((out / "ncbi-minilm" / "results.json").read_text())
run = json.loads((out / "annotations" / "runs" / "demo.json").read_text())
test, dev = results["test"], results["dev_best"]
minutes, secs = divmod(seconds + 1, 60)
print(f"\nDone in {minutes} min {secs:02d} s. Outputs:")
rows = [
    ("pmc-shards/", f"{len(ingest['shards'])} Parquet shard{'s' * (len(ingest['shards']) != 1)}, {ingest['articles']} "
                    f"articles; {ingest['rejected']} input{'s' * (ingest['rejected'] != 1)} rejected (rejects.parquet)"),
    ("word2vec/vectors.kv", f"{w2v['vocabulary_size']} word vectors, {w2v['config']['word2vec']['vector_size']} dimensions, "
                            f"from {w2v['sentences_kept']} of {w2v['sentences_seen']} sentences"),
    ("ncbi-minilm/", "the training run: results.json, training_curve.png, epoch checkpoints"),
    ("ncbi-minilm/model/", "the tagger (a bundle: adabiobert tag --model, Tagger.from_pretrained)"),
    ("annotations/", f"entities/, rejections/ and articles/ tables (Parquet, by run_date); run summary runs/{run['run_id']}.json"),
]
for path, what in rows:
    print(f"  {out}/{path:<21} {what}")
print(f"Test entity F1 (strict spans, NCBI-disease test, {test['sentences']} sentences): {100 * test['entity_f1']:.1f} % "
      f"(precision {100 * test['entity_precision']:.1f} %, recall {100 * test['entity_recall']:.1f} %); "
      f"dev {100 * dev['entity_f1']:.1f} %")
print(f"Annotation: {run['documents_tagged']} articles, {run['sentences']} sentences, {run['mentions']} mentions "
      f"in {run['seconds']['total']:.0f} s at {run['precision']['precision']}")
PYTHON
