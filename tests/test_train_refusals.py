"""jobs/train.py refuses data it cannot train on before Ray starts and before writing anything."""

from pathlib import Path

import pytest
import ray

from adabiobert.distributed import training
from jobs import train as train_job


class NoRay:
    """Stands in for the ``ray`` module inside the training driver: any use fails the test."""

    def __getattr__(self, name: str):
        raise AssertionError(f"the training driver used ray.{name} before refusing the data")


def dataset(root: Path, train: str) -> Path:
    folder = root / "NCBI-disease-IOB"
    folder.mkdir(parents=True)
    (folder / "train.tsv").write_text(train)
    (folder / "devel.tsv").write_text("severe\tO\nasthma\tB-Disease\n")
    (folder / "test.tsv").write_text("asthma\tB-Disease\n")
    return folder


@pytest.mark.parametrize("train", ["", "-DOCSTART- -X- O O\n\n"])
def test_an_empty_train_split_exits_2_naming_the_file_without_ray_or_output(tmp_path, capsys, monkeypatch, train):
    folder = dataset(tmp_path / "data", train)
    monkeypatch.setattr(training, "ray", NoRay())
    ray_was_running = ray.is_initialized()  # False when this file runs alone; the suite may share one
    code = train_job.main(["--dataset", "NCBI-disease", "--data-root", str(tmp_path / "data"),
                           "--output", str(tmp_path / "runs"), "--name", "empty"])
    assert code == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and f"{folder / 'train.tsv'}: the train split has no sentences" in err
    assert "Traceback" not in err
    assert not (tmp_path / "runs").exists()
    assert ray.is_initialized() is ray_was_running


def test_a_sentence_limit_of_zero_is_refused_like_an_empty_file(tmp_path, capsys, monkeypatch):
    folder = dataset(tmp_path / "data", "asthma\tB-Disease\n")
    monkeypatch.setattr(training, "ray", NoRay())
    code = train_job.main(["--dataset", "NCBI-disease", "--data-root", str(tmp_path / "data"),
                           "--max-eval-sentences", "0", "--output", str(tmp_path / "runs")])
    assert code == 2
    assert f"{folder / 'devel.tsv'}: the dev split has no sentences" in capsys.readouterr().err
    assert not (tmp_path / "runs").exists()
