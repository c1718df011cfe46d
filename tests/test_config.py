"""Configs: checks in __post_init__, and a round trip through dicts that rejects unknown keys."""

import pytest

from adabiobert.errors import ConfigError
from adabiobert.job_configs import (
    AnnotateConfig,
    AnnotationJobConfig,
    IngestConfig,
    Word2VecBuildConfig,
    Word2VecConfig,
)
from adabiobert.training_config import LossConfig, ModelConfig, TrainConfig, TrainJobConfig
from jobs import train as train_job


def test_job_config_round_trips_through_a_dict():
    job = TrainJobConfig(name="x", train=TrainConfig(loss=LossConfig.parse("fixed=0.25"), epochs=3))
    assert TrainJobConfig.from_dict(job.to_dict()) == job


def test_unknown_keys_are_rejected_with_their_names():
    data = TrainJobConfig().to_dict()
    data["train"]["epoch"] = 3
    with pytest.raises(ConfigError, match="epoch"):
        TrainJobConfig.from_dict(data)


@pytest.mark.parametrize("kwargs", [{"dropout": 1.0}, {"max_subwords": 4}, {"max_subwords": 64, "window_overlap": 40}])
def test_model_config_rejects_out_of_range_values(kwargs):
    with pytest.raises(ConfigError):
        ModelConfig(**kwargs)


def test_command_line_maps_onto_the_config():
    job = train_job.parse_args([
        "--dataset", "BC5CDR", "--loss", "fixed=0.3", "--alpha-update", "epoch", "--epochs", "4",
        "--encoder-lr", "3e-5", "--num-workers", "2", "--gpu", "--no-word-vectors", "--word-vectors", "v.kv",
    ])
    assert job.dataset == "BC5CDR" and job.num_workers == 2 and job.use_gpu
    assert job.word_vectors is None
    assert job.train.loss == LossConfig(mode="fixed", alpha=0.3, alpha_update="epoch")
    assert job.train.epochs == 4 and job.train.optim.encoder_lr == 3e-5


def test_command_line_sets_the_adaptive_rule():
    job = train_job.parse_args(["--loss", "adaptive=0.4", "--adaptive-every", "5", "--adaptive-step", "0.25",
                                "--adaptive-dev-batch", "16"])
    assert job.train.loss == LossConfig(mode="adaptive", alpha=0.4, adaptive_every=5, adaptive_step=0.25, adaptive_dev_batch=16)


@pytest.mark.parametrize("field,value", [("adaptive_every", 0), ("adaptive_step", 0.0), ("adaptive_dev_batch", 0)])
def test_adaptive_settings_out_of_range_are_refused(field, value):
    with pytest.raises(ConfigError):
        LossConfig(mode="adaptive", **{field: value})


@pytest.mark.parametrize("build", [
    lambda: IngestConfig((), "out"),
    lambda: IngestConfig(("in",), "out", articles_per_shard=0),
    lambda: Word2VecConfig(min_count=0),
    lambda: Word2VecConfig(workers=0),
    lambda: Word2VecBuildConfig("s", "o", num_actors=0),
    lambda: AnnotateConfig(max_document_chars=0),
    lambda: AnnotationJobConfig("s", "o", "m", run_date="2026-13-01"),
    lambda: AnnotationJobConfig("s", "o", "m", precision="fp8"),
    lambda: AnnotationJobConfig("s", "o", "m", precision="int8", use_gpu=True),
    lambda: AnnotationJobConfig("s", "o", "m", read_retries=-1),
    lambda: AnnotationJobConfig("s", "o", "m", documents_per_call=0),
    lambda: AnnotationJobConfig("s", "o", "m", num_actors=0),
], ids=["no-inputs", "shard-size", "min-count", "gensim-workers", "actors", "chars", "run-date", "precision",
        "int8-gpu", "retries", "per-call", "annotate-actors"])
def test_every_job_config_refuses_a_bad_value_with_the_one_config_error(build):
    with pytest.raises(ConfigError):
        build()

