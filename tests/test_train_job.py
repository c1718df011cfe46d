"""jobs/train.py on Ray Train: two gloo workers, the exported bundle, resume and retry."""

import json
from pathlib import Path

import pytest

from adabiobert.distributed.training import run_training
from adabiobert.model.checkpoint import load_training_state
from adabiobert.model.tagger import Tagger
from adabiobert.training_config import ModelConfig, TrainConfig, TrainJobConfig
from jobs import train as train_job
from tests.fault_hooks import CrashAfterEpoch

pytestmark = [pytest.mark.ray, pytest.mark.slow]


def tiny_job(tmp_path, backbone, corpora_root, name, epochs, **overrides) -> TrainJobConfig:
    return TrainJobConfig(
        dataset="NCBI-disease",
        data_root=str(corpora_root),
        output=str(tmp_path / "runs"),
        name=name,
        max_train_sentences=120,
        max_eval_sentences=40,
        cpu_threads_per_worker=1,
        train=TrainConfig(model=ModelConfig(backbone=str(backbone), max_subwords=64, window_overlap=16),
                          epochs=epochs, batch_size=16),
        **overrides,
    )


def test_two_worker_run_reports_checkpoints_and_exports_a_loadable_tagger(ray_session, tmp_path, tiny_backbone_dir, corpora_root, capsys):
    code = train_job.main([
        "--dataset", "NCBI-disease", "--data-root", str(corpora_root), "--backbone", str(tiny_backbone_dir),
        "--max-subwords", "64", "--max-train-sentences", "200", "--max-eval-sentences", "50",
        "--epochs", "1", "--batch-size", "16", "--num-workers", "2", "--cpu-threads", "1",
        "--output", str(tmp_path / "runs"), "--name", "two-workers",
        "--loss", "adaptive", "--adaptive-every", "2", "--adaptive-dev-batch", "8",  # probes synced over workers
    ])
    assert code == 0
    run = tmp_path / "runs" / "two-workers"
    results = json.loads((run / "results.json").read_text())
    assert results["settings"]["num_workers"] == 2
    assert results["data"]["root"] == results["settings"]["data_root"] == str(Path(corpora_root).resolve())
    assert set(results["data"]["files"]) == {"train", "dev", "test"}
    assert all(len(f["sha256"]) == 64 for f in results["data"]["files"].values())
    assert results["code"]["adabiobert"] == results["versions"]["adabiobert"]
    assert [e["epoch"] for e in results["epochs"]] == [1]
    assert len(results["alpha_trace"]) == 1 and 0 < results["alpha_trace"][0] < 1
    probes = results["epochs"][0]["alpha_steps"]
    assert [p["step"] for p in probes] == [2, 4, 6, 8, 10, 12]  # 13 steps of 8 sentences per worker
    assert results["alpha_trace"][0] == pytest.approx(probes[-1]["alpha"]) and probes[-1]["alpha"] != pytest.approx(0.5)
    assert results["test"]["sentences"] == 50
    assert 0.0 <= results["test"]["entity_f1"] <= 1.0 and results["test"]["paper_token_micro_f1"] > 0.5
    assert (run / "epoch_001" / "model.safetensors").is_file()
    assert (run / "training_curve.png").read_bytes()[:4] == b"\x89PNG"
    captured = capsys.readouterr()
    assert "test entity F1" in captured.out
    # rank 0's progress, relayed through the driver: once, with the run's total, not once per worker
    assert captured.err.count("train: epoch 1/1 done") == 1 and captured.err.count("train: 13/13 steps in ") == 1
    tagger = Tagger.from_pretrained(run / "model", device="cpu")
    text = "Patients with Duchenne muscular dystrophy were studied."
    for entity in tagger.tag([text])[0]:
        assert text[entity.start : entity.end] == entity.text


def test_interrupted_run_resumes_from_its_last_checkpoint(ray_session, tmp_path, tiny_backbone_dir, corpora_root):
    with pytest.raises(Exception):
        run_training(tiny_job(tmp_path, tiny_backbone_dir, corpora_root, "resume", epochs=2, max_failures=0),
                     after_epoch=CrashAfterEpoch(1, str(tmp_path / "crashed")))
    assert (tmp_path / "crashed").exists()
    first = load_training_state(tmp_path / "runs" / "resume" / "epoch_001")["history"]
    assert [h["epoch"] for h in first] == [1]
    assert not (tmp_path / "runs" / "resume" / "epoch_002").exists()

    outcome = run_training(tiny_job(tmp_path, tiny_backbone_dir, corpora_root, "resume", epochs=2, max_failures=0))
    history = outcome.results["epochs"]
    assert [h["epoch"] for h in history] == [1, 2]
    assert history[0] == first[0]  # epoch 1 was restored, not trained again


def test_worker_crash_is_retried_from_the_checkpoint_within_one_run(ray_session, tmp_path, tiny_backbone_dir, corpora_root):
    outcome = run_training(tiny_job(tmp_path, tiny_backbone_dir, corpora_root, "retry", epochs=2, max_failures=1),
                           after_epoch=CrashAfterEpoch(1, str(tmp_path / "crashed")))
    assert (tmp_path / "crashed").exists()
    assert [h["epoch"] for h in outcome.results["epochs"]] == [1, 2]
    assert Path(outcome.model_dir, "model.safetensors").is_file()


def test_missing_dataset_is_a_clear_error(tmp_path, capsys):
    code = train_job.main(["--dataset", "LINNAEUS", "--data-root", str(tmp_path), "--output", str(tmp_path / "r")])
    assert code == 2
    err = capsys.readouterr().err
    assert "LINNAEUS" in err and str(tmp_path) in err
