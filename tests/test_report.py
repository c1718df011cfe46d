"""results.json says what was trained on and with which code; the training curve reads at 1 and 40 epochs."""

from __future__ import annotations

import hashlib
import subprocess
from pathlib import Path

import pytest

from adabiobert.corpora.iob import load_corpus
from adabiobert.model.training_report import (
    code_version,
    data_provenance,
    plot_training_curve,
    results_document,
    training_curve_figure,
)
from adabiobert.training_config import TrainJobConfig

REPO = Path(__file__).resolve().parents[1]


def history(epochs: int) -> list[dict]:
    return [{"epoch": e, "alpha": 0.5 + 0.01 * e, "dev": {"entity_f1": 0.6 + 0.005 * e},
             "train_seconds": 10.0, "eval_seconds": 1.0} for e in range(1, epochs + 1)]


def test_results_record_the_data_root_a_hash_per_split_file_and_the_code(corpora_root):
    corpus = load_corpus("NCBI-disease", corpora_root)
    job = TrainJobConfig(dataset="NCBI-disease", data_root=str(corpora_root))
    results = results_document(job, history(2), {"entity_f1": 0.7}, 20.0, 25.0, {"python": "3"},
                               data=data_provenance(corpora_root, corpus.files), code=code_version())
    data = results["data"]
    assert data["root"] == str(corpora_root.resolve())
    assert set(data["files"]) == {"train", "dev", "test"}
    for split, entry in data["files"].items():
        assert entry["path"] == str(Path(corpus.files[split]).resolve())
        assert entry["sha256"] == hashlib.sha256(Path(corpus.files[split]).read_bytes()).hexdigest()
    assert results["code"]["adabiobert"] == __import__("adabiobert").__version__
    assert results["best_epoch"] == 2 and results["alpha_trace"] == [0.51, 0.52]


def test_the_git_commit_is_the_checkouts_when_there_is_one():
    head = subprocess.run(["git", "-C", str(REPO), "rev-parse", "HEAD"], capture_output=True, text=True)
    if head.returncode != 0:
        pytest.skip("this checkout is not a git work tree")
    assert code_version(REPO / "adabiobert")["git_commit"] == head.stdout.strip()


def test_no_repository_or_no_git_gives_no_commit_and_no_error(tmp_path, monkeypatch):
    package = tmp_path / "site-packages" / "adabiobert"
    package.mkdir(parents=True)
    monkeypatch.delenv("ADABIOBERT_GIT_COMMIT", raising=False)
    assert code_version(package)["git_commit"] is None
    monkeypatch.setenv("PATH", str(tmp_path))  # no git executable at all
    assert code_version(REPO / "adabiobert")["git_commit"] is None
    monkeypatch.setenv("ADABIOBERT_GIT_COMMIT", "abc123")  # what the container image records
    assert code_version(package)["git_commit"] == "abc123"


def integer_ticks_in_view(axis) -> list[float]:
    low, high = axis.get_xlim()
    return [t for t in axis.get_xticks() if low <= t <= high]


def test_a_one_epoch_curve_shows_epoch_1_with_markers_a_legend_and_labelled_axes():
    figure = training_curve_figure(history(1), "one epoch")
    f1_axis, alpha_axis = figure.axes
    assert f1_axis.get_xlim() == (0.5, 1.5)
    assert integer_ticks_in_view(f1_axis) == [1.0]
    assert f1_axis.get_xlabel() == "epoch"
    assert "F1" in f1_axis.get_ylabel() and "alpha" in alpha_axis.get_ylabel()
    lines = f1_axis.get_lines() + alpha_axis.get_lines()
    assert all(line.get_marker() not in (None, "None", "") for line in lines)
    assert [t.get_text() for t in f1_axis.get_legend().get_texts()] == [line.get_label() for line in lines]
    assert alpha_axis.get_ylim() == (0.0, 1.0)
    assert [t.get_text() for t in f1_axis.texts + alpha_axis.texts] == ["F1 0.605", "alpha 0.510"]


def test_a_forty_epoch_curve_has_whole_epoch_ticks_across_the_run(tmp_path):
    figure = training_curve_figure(history(40))
    f1_axis = figure.axes[0]
    assert f1_axis.get_xlim() == (0.5, 40.5)
    ticks = integer_ticks_in_view(f1_axis)
    assert all(t == int(t) for t in ticks) and 3 <= len(ticks) <= 12 and ticks[-1] >= 35
    assert plot_training_curve(history(40), tmp_path / "curve.png").read_bytes()[:4] == b"\x89PNG"
