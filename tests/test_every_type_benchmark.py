"""benchmarks/every_type.py on a smoke setting: two real PubTator corpora cut to a few documents,
a tiny random BERT, one epoch; four runs through the training job, then a resume that trains nothing."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from benchmarks import every_type

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
