"""The parts of benchmarks/throughput.py that decide what is measured (the timings themselves are a
benchmark, not a test): refused precisions, the job's shards, the CPU description."""

from __future__ import annotations

import pyarrow.compute as pc
import torch

from adabiobert.annotation.stages import split_shard
from adabiobert.job_configs import AnnotateConfig
from adabiobert.pmc.shards import list_shards
from benchmarks.throughput import cpu_description, load_taggers, write_job_shards


def test_a_refused_precision_is_reported_and_not_loaded(tiny_bundle, monkeypatch):
    import adabiobert.model.precision

    monkeypatch.setattr(adabiobert.model.precision, "cpu_flags", lambda: frozenset({"avx2"}))
    taggers, choices = load_taggers(tiny_bundle, ["int8", "bf16"], torch.device("cpu"), 8192)
    assert list(taggers) == ["int8"] and taggers["int8"].precision.precision == "int8"
    assert choices["int8"]["precision"] == "int8"
    assert "no native bf16" in choices["bf16"]["refused"]


def test_the_job_shards_hold_the_benchmark_sentences_one_section_each(tmp_path, ncbi):
    texts = [" ".join(s.words) for s in ncbi.test[:23]]
    sections = write_job_shards(tmp_path, texts, shards=2, sentences_per_article=5)
    assert sorted(sections) == sorted(texts)
    split = [split_shard(s.uri, AnnotateConfig(), 64) for s in list_shards(str(tmp_path))]
    assert len(split) == 2 and sum(t.num_rows for t in split) == 5  # 23 sentences: 4 articles of 5, one of 3
    sentences = [pc.list_flatten(t.column("sentences").combine_chunks()) for t in split]
    split_texts = [text for s in sentences for text in s.field("text").to_pylist()]
    assert sorted(split_texts) == sorted(texts)  # each corpus sentence is one sentence of the job


def test_the_cpu_description_reads_the_model_and_flags(tmp_path):
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text("processor\t: 0\nmodel name\t: Test CPU 9000\nflags\t\t: fpu avx2 fma avx512_vnni sse2\n")
    description = cpu_description(str(cpuinfo))
    assert description["model"] == "Test CPU 9000"
    assert {"avx2", "fma", "avx512_vnni", "sse2"} <= set(description["flags"])
    assert description["tagging_flags"][:3] == ["avx2", "fma", "avx512_vnni"]
