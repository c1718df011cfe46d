"""Experiment (issue 13): the annotation job's per-article code path without Ray, against tagger.tag,
in CPU time, 1 thread, bf16, on the throughput benchmark's shards (BC5CDR test)."""
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(__import__("pathlib").Path(__file__).resolve().parents[2]))
import pyarrow as pa

from adabiobert.annotation.stages import split_shard, tag_documents
from adabiobert.corpora.iob import load_corpus
from adabiobert.job_configs import AnnotateConfig
from adabiobert.model.checkpoint import load_bundle_encoder
from adabiobert.model.tagger import Tagger
from benchmarks.throughput import build_bundle, write_job_shards

torch.set_num_threads(1)
corpus = load_corpus("BC5CDR", "../shared/corpora")
texts = [" ".join(s.words) for s in corpus.test if s.words]
work = Path(tempfile.mkdtemp())
bundle = build_bundle(work / "model", "minilm", corpus.labels, False)
section_texts = write_job_shards(work / "shards", texts, 2, 20)
tagger = Tagger.from_pretrained(bundle, device="cpu", precision="bf16")
tagger.tag(section_texts[:16])
enc = load_bundle_encoder(bundle)
for rep in range(2):
    t = time.process_time(); tagger.tag(section_texts); alone = time.process_time() - t
    t = time.process_time()
    splits = [split_shard(str(p), AnnotateConfig(), 64, enc) for p in sorted((work / "shards").glob("*.parquet"))]
    split = time.process_time() - t
    table = pa.concat_tables(splits)
    t = time.process_time(); n = 0
    for i in range(0, table.num_rows, 32):
        out = tag_documents(tagger, table.slice(i, 32)); n += sum(len(x) for x in out.column("entities").to_pylist())
    tag = time.process_time() - t
    print(f"rep {rep}: tagger.tag {alone:.1f} CPU s; split+encode {split:.1f}; tag_documents {tag:.1f} ({n} mentions); ratio alone/tag_documents {alone/tag:.2f}")
import cProfile
import pstats

pr = cProfile.Profile(); pr.enable()
for i in range(0, table.num_rows, 32):
    tag_documents(tagger, table.slice(i, 32))
pr.disable(); pstats.Stats(pr).sort_stats("cumulative").print_stats(25)
t = time.process_time(); tag_documents(tagger, table); print("one call over all articles:", round(time.process_time() - t, 1), "CPU s")
