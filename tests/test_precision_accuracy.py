"""benchmarks/precision_accuracy.py on the tiny bundle and a few NCBI test sentences (a smoke run:
the real re-scoring of trained bundles is a benchmark, not a test)."""

from __future__ import annotations

import json
import shutil

from adabiobert.model.checkpoint import MANIFEST, VALIDATED, bundle_hash
from benchmarks.precision_accuracy import main


def test_rescoring_writes_a_validation_record_per_precision(tiny_bundle, corpora_root, tmp_path, capsys):
    model = shutil.copytree(tiny_bundle, tmp_path / "model")
    before = bundle_hash(model)
    argv = ["--model", str(model), "--data-root", str(corpora_root), "--max-sentences", "12",
            "--precision", "int8", "--precision", "fp32"]
    assert main(argv) == 0
    out = capsys.readouterr().out.splitlines()
    result = json.loads(out[-1])["results"]
    assert list(result) == ["fp32", "int8"]  # fp32 first, as the reference
    assert result["fp32"]["sentences_changed_vs_fp32"] == 0
    assert 0 <= result["int8"]["sentences_changed_vs_fp32"] <= 12
    record = json.loads((model / MANIFEST).read_text())[VALIDATED]
    assert set(record) == {"fp32", "int8"}
    for precision, scores in record.items():
        assert 0.0 <= scores["entity_f1"] <= 1.0 and scores["sentences"] == 12
        assert scores["dataset"] == "NCBI-disease" and scores["split"] == "test"
    assert sum(line.startswith("| NCBI-disease |") for line in out) == 2
    assert bundle_hash(model) == before


def test_a_refused_precision_is_reported_not_scored(tiny_bundle, ncbi, monkeypatch):
    import adabiobert.model.precision
    from benchmarks.precision_accuracy import rescore

    monkeypatch.setattr(adabiobert.model.precision, "cpu_flags", lambda: frozenset({"avx2"}))
    sentences = ncbi.test[:4]
    result = rescore(tiny_bundle, [list(s.words) for s in sentences], [list(s.tags) for s in sentences],
                     ["bf16"], "cpu")
    assert list(result) == ["fp32", "bf16"] and "no native bf16" in result["bf16"]["refused"]
