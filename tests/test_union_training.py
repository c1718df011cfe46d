"""jobs/train.py on a mix of two PubTator corpora that annotate different types: one Ray Train
worker, a tiny random BERT, one epoch; the results record the mix, the bundle tags the union."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from adabiobert.model.checkpoint import bundle_entity_types
from adabiobert.model.tagger import Tagger
from jobs import train as train_job
from tests.union_data import DISEASE_DOCS, SPECIES_DOCS, dev_and_train_pmids, write_corpus

pytestmark = [pytest.mark.ray, pytest.mark.slow]


def test_a_union_run_records_the_mix_and_exports_a_tagger_of_every_type(ray_session, tmp_path: Path,
                                                                        tiny_backbone_dir: Path, capsys) -> None:
    root = tmp_path / "pubtator"
    write_corpus(root, "NCBIdisease", "TrainDev", DISEASE_DOCS, bad_document=True)
    write_corpus(root, "NCBIdisease", "Test", DISEASE_DOCS[:4])
    write_corpus(root, "SPECIES", "Train", SPECIES_DOCS)
    write_corpus(root, "SPECIES", "Test", SPECIES_DOCS[:4])
    code = train_job.main([
        "--dataset", "pubtator:NCBIdisease,pubtator:SPECIES", "--pubtator-root", str(root),
        "--backbone", str(tiny_backbone_dir), "--max-subwords", "64", "--epochs", "1", "--batch-size", "8",
        "--cpu-threads", "1", "--output", str(tmp_path / "runs"), "--name", "union",
    ])
    assert code == 0
    results = json.loads((tmp_path / "runs" / "union" / "results.json").read_text())

    mix = results["mix"]
    assert mix["sources"] == ["pubtator:NCBIdisease", "pubtator:SPECIES"]
    assert mix["entity_types"] == ["Disease", "Species"] and mix["partial_annotation"] is True
    assert results["settings"]["partial_annotation"] is True
    assert results["settings"]["pubtator_root"] == results["data"]["pubtator_root"] == str(root.resolve())
    disease = mix["corpora"]["pubtator:NCBIdisease"]
    dev_pmids, train_pmids = dev_and_train_pmids(DISEASE_DOCS)
    assert disease["splits"]["train"]["sentences"] == 2 * len(train_pmids)
    assert disease["splits"]["dev"]["mentions"] == {"Disease": 2 * len(dev_pmids)}
    assert disease["read"]["train"]["skipped_documents"] == 1
    assert set(results["data"]["files"]) == {f"{s}/{split}" for s in mix["sources"] for split in ("train", "dev", "test")}

    assert set(results["test_by_corpus"]) == set(mix["sources"])
    assert results["test"]["sentences"] == sum(c["sentences"] for c in results["test_by_corpus"].values()) == 16
    offsets = results["offset_test"]
    assert set(offsets) == {"NCBIdisease_Test", "SPECIES_Test"}
    assert set(offsets["NCBIdisease_Test"]["per_type"]) == {"Disease"}  # scored on what the corpus annotates
    assert offsets["SPECIES_Test"]["documents"] == 4 and offsets["SPECIES_Test"]["micro"]["support"] == 8
    assert 0.0 <= offsets["SPECIES_Test"]["micro"]["f1"] <= 1.0
    assert "SPECIES_Test: strict character-offset F1" in capsys.readouterr().out

    model = tmp_path / "runs" / "union" / "model"
    assert bundle_entity_types(model) == ("Disease", "Species")
    text = "Study of asthma in mice."
    for entity in Tagger.from_pretrained(model, device="cpu").tag([text])[0]:
        assert text[entity.start:entity.end] == entity.text and entity.label in ("Disease", "Species")
