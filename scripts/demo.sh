#!/usr/bin/env bash
# The main job on the embedded default (local Ray, offline MiniLM backbone, NCBI-disease):
# fine-tune on a slice for one epoch, then tag free text with the exported tagger.
# About 10 minutes on 2 CPU cores. Outputs go to runs/demo/.
set -euo pipefail
cd "$(dirname "$0")/.."
export ADABIOBERT_DATA_ROOT="${ADABIOBERT_DATA_ROOT:-$(cd .. && pwd)/shared/corpora}"
PY=.venv/bin/python
OUT=${DEMO_OUTPUT:-runs/demo}

echo "== 1/2 fine-tune AdaBioBERT (ATS loss, learned alpha) on 2000 NCBI-disease sentences, 1 epoch"
$PY jobs/train.py --dataset NCBI-disease --backbone minilm --epochs 1 \
  --max-train-sentences 2000 --output "$OUT" --name ncbi-minilm

echo "== 2/2 tag free text with the exported tagger"
$PY - "$OUT/ncbi-minilm/model" <<'PYTHON'
import sys
from adabiobert.tagger import Tagger

tagger = Tagger.from_pretrained(sys.argv[1])
texts = [
    "Germline mutations in the APC gene cause familial adenomatous polyposis and colorectal cancer.",
    "Patients with Duchenne muscular dystrophy and myotonic dystrophy were compared with healthy controls.",
]
for text, entities in zip(texts, tagger.tag(texts)):
    print(text)
    for e in entities:
        print(f"  [{e.start:3d}:{e.end:3d}] {e.label:<8} {e.confidence:.3f}  {e.text!r}")
PYTHON
