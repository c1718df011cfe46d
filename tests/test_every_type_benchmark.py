"""benchmarks/every_type.py on a smoke setting: two real PubTator corpora cut to a few documents,
a tiny random BERT, one epoch; four runs through the training job, then a resume that trains nothing,
then benchmarks/one_pass.py timing the union bundle against the single-corpus ones."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from benchmarks import every_type, one_pass

pytestmark = [pytest.mark.ray, pytest.mark.slow]


def test_the_benchmark_writes_every_configuration_per_test_set_and_resumes(ray_session, shared_root: Path,
                                                                          tmp_path: Path, monkeypatch, capsys) -> None:
    argv = ["--pubtator-root", str(shared_root / "pubtator"), "--corpora", "NCBIdisease,SPECIES", "--tiny-backbone",
            "--epochs", "1", "--batch-size", "16", "--max-train-sentences", "40", "--max-eval-sentences", "15",
            "--cpu-threads", "1", "--runs", str(tmp_path / "runs"), "--results", str(tmp_path / "every_type.json")]
    assert every_type.main(argv) == 0
    figures = json.loads((tmp_path / "every_type.json").read_text())
    assert set(figures) == {"NCBIdisease_Test/Disease", "NCBIdisease_Test/micro", "SPECIES_Test/Species",
                            "SPECIES_Test/micro"}
    for row in figures.values():
        assert set(row) == {"single", "naive_union", "union"} and all(0.0 <= f1 <= 1.0 for f1 in row.values())
    assert len(list((tmp_path / "runs").glob("every-type-*/results.json"))) == 4
    naive = json.loads(next((tmp_path / "runs").glob("every-type-naive_union-*/results.json")).read_text())
    assert naive["mix"]["partial_annotation"] is False
    assert "| SPECIES_Test/micro |" in capsys.readouterr().out

    def no_training(job):
        raise AssertionError(f"{job.name} was trained again")

    monkeypatch.setattr("adabiobert.distributed.training.run_training", no_training)
    assert every_type.main(argv) == 0
    assert json.loads((tmp_path / "every_type.json").read_text()) == figures

    union = next((tmp_path / "runs").glob("every-type-union-*/model"))
    singles = sorted((tmp_path / "runs").glob("every-type-single-*/model"))
    output = tmp_path / "one_pass.json"
    assert one_pass.main(["--union", str(union), *[a for s in singles for a in ("--single", str(s))],
                          "--texts", str(shared_root / "pubtator" / "NCBIdisease_Test.PubTator"), "--max-documents", "6",
                          "--chunks", "2", "--precision", "fp32", "--output", str(output)]) == 0
    timing = json.loads(output.read_text())
    assert timing["texts"]["documents"] == 6
    assert {name: row["types"] for name, row in timing["taggers"].items()} == {
        "union": ["Disease", "Species"], "single:0": ["Disease"], "single:1": ["Species"]}
    cpu = {name: row["cpu_seconds"] for name, row in timing["taggers"].items()}
    assert timing["one_pass_ratio"] == pytest.approx(cpu["union"] / cpu["single:0"], rel=0.05)
    assert timing["in_turn_ratio"] == pytest.approx(cpu["union"] / (cpu["single:0"] + cpu["single:1"]), rel=0.05)


def test_the_shipped_union_runs_first_and_configurations_can_be_chosen() -> None:
    runs = every_type.runs(["NCBIdisease", "SPECIES"], ["union", "naive_union", "single"])
    assert [(c, label, partial) for c, label, _, partial in runs] == [
        ("union", "all", True), ("naive_union", "all", False), ("single", "NCBIdisease", False),
        ("single", "SPECIES", False)]
    assert runs[0][2] == "pubtator:NCBIdisease,pubtator:SPECIES"
    assert [c for c, *_ in every_type.runs(["SPECIES"], ["single"])] == ["single"]
