#!/usr/bin/env bash
# The whole pipeline on the embedded default (local Ray, offline MiniLM backbone, NCBI-disease,
# the PMC sample articles in ../shared): JATS -> shards -> Word2Vec -> fine-tuning -> annotation
# -> a DuckDB summary. About 10-15 minutes on 2 CPU cores. Everything goes to runs/demo/
# (removed first, so the demo always starts clean).
set -euo pipefail
cd "$(dirname "$0")/.."
SHARED="${ADABIOBERT_SHARED:-$(cd .. && pwd)/shared}"
export ADABIOBERT_DATA_ROOT="${ADABIOBERT_DATA_ROOT:-$SHARED/corpora}"
PY=.venv/bin/python
OUT=${DEMO_OUTPUT:-runs/demo}
rm -rf "$OUT"

echo "== 1/5 PMC JATS articles -> Parquet shards"
$PY jobs/ingest_pmc.py "$SHARED/pmc-sample" --output "$OUT/pmc-shards"

echo "== 2/5 Word2Vec (128 d, window 7) on the sentences that mention a lexicon gene or disease"
$PY jobs/build_word2vec.py --shards "$OUT/pmc-shards" --out "$OUT/word2vec" --lexicon "$SHARED/lexicon" --min-count 1

echo "== 3/5 fine-tune AdaBioBERT (default loss: CRF only, the measured best) on NCBI-disease, 1 epoch"
$PY jobs/train.py --dataset NCBI-disease --backbone minilm --epochs 1 \
  --word-vectors "$OUT/word2vec/vectors.kv" --output "$OUT/runs" --name ncbi-minilm

echo "== 4/5 tag the shards with the exported tagger (Ray Data)"
$PY jobs/annotate.py --shards "$OUT/pmc-shards" --model "$OUT/runs/ncbi-minilm/model" \
  --output "$OUT/annotations" --no-progress

echo "== 5/5 query the entity table with DuckDB"
$PY - "$OUT/annotations" <<'PYTHON'
import sys

import duckdb

table = f"read_parquet('{sys.argv[1]}/entities/*/*.parquet', hive_partitioning = true)"
con = duckdb.connect()
print("mentions by label:")
for label, mentions, articles in con.execute(
    f"SELECT label, count(*), count(DISTINCT pmcid) FROM {table} GROUP BY label ORDER BY 2 DESC"
).fetchall():
    print(f"  {label:<10} {mentions:5d} mentions in {articles} articles")
print("top mentions:")
for mention, label, n, confidence in con.execute(
    f"SELECT lower(mention), label, count(*), round(avg(confidence), 3) FROM {table} "
    "GROUP BY 1, 2 ORDER BY 3 DESC, 1 LIMIT 10"
).fetchall():
    print(f"  {n:4d}  {label:<8} {confidence:.3f}  {mention}")
PYTHON
