"""Paths given to a job under `ray job submit`: relative local paths refused, before any work."""

import json

import pytest

from adabiobert.errors import ConfigError
from adabiobert.submission import JOB_CONFIG_ENV, check_job_paths, is_relative_local, ray_job_submission_id

AS_RAY_JOB = {JOB_CONFIG_ENV: json.dumps({"runtime_env": {}, "metadata": {"job_submission_id": "train-1", "job_name": "train-1"}})}


def test_a_ray_job_is_recognised_by_the_variable_its_supervisor_sets():
    assert ray_job_submission_id(AS_RAY_JOB) == "train-1"
    assert ray_job_submission_id({}) is None
    assert ray_job_submission_id({JOB_CONFIG_ENV: "not json"}) == "?"  # set at all: still a Ray Job


@pytest.mark.parametrize(("path", "relative"), [
    ("runs", True), ("./runs", True), ("../shared/corpora", True), ("runs/demo/model", True),
    ("/data/corpora", False), ("~/runs", False), ("s3://bucket/runs", False), ("/work/../shared", False),
])
def test_which_paths_are_relative_local(path, relative):
    assert is_relative_local(path) is relative


def test_relative_paths_are_refused_in_a_ray_job_with_the_flag_and_what_to_pass():
    with pytest.raises(ConfigError) as refused:
        check_job_paths({"--data-root": "/data/corpora", "--output": "runs", "--word-vectors": None}, AS_RAY_JOB)
    message = str(refused.value)
    assert message.startswith("--output runs: a relative path in Ray Job train-1")
    assert 'pass an absolute path (e.g. --output "$PWD/runs"' in message and "s3://" in message


def test_repeatable_flags_are_checked_value_by_value():
    with pytest.raises(ConfigError, match=r"^--lexicon \.\./shared/lexicon:"):
        check_job_paths({"--lexicon": ["/abs/lexicon", "../shared/lexicon"]}, AS_RAY_JOB)


def test_absolute_and_s3_paths_pass_and_outside_a_ray_job_nothing_is_checked():
    check_job_paths({"--output": "/tmp/runs", "--model": "s3://b/m", "--shards": ["/x"], "--out": None}, AS_RAY_JOB)
    check_job_paths({"--output": "runs"}, {})


@pytest.mark.parametrize(("job", "argv"), [
    ("train", ["--dataset", "NCBI-disease", "--data-root", "/data", "--output", "runs"]),
    ("annotate", ["--shards", "/s", "--model", "/m", "--output", "runs/entities"]),
    ("build_word2vec", ["--shards", "runs/pmc-shards", "--out", "/w"]),
    ("ingest_pmc", ["../shared/pmc-sample", "--output", "/tmp/shards"]),
])
def test_every_job_refuses_a_relative_path_as_a_ray_job_in_one_line_exit_2(job, argv, monkeypatch, capsys):
    import importlib

    monkeypatch.setenv(JOB_CONFIG_ENV, AS_RAY_JOB[JOB_CONFIG_ENV])
    main = importlib.import_module(f"jobs.{job}").main
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and "a relative path in Ray Job train-1" in err[0]
