"""The jobs as Ray Jobs: `ray job submit` to a real local head (dashboard on loopback), exactly as
the cluster manifests submit them, on a tiny slice with the tiny test model.

The head is private to this module (its own temp dir and ports) and is killed in teardown; the
suite's shared `ray_session` is not used, because a job needs the Jobs API of a started head.
"""

from __future__ import annotations

import json
import re
import subprocess
import time
from pathlib import Path

import pytest

from tests.local_ray import RAY_CLI, REPO, LocalHead, ray_env

pytestmark = [pytest.mark.ray, pytest.mark.slow]

UPLOAD_EXCLUDES = [".venv", ".git", "runs", "outputs", ".pytest_cache", "benchmarks/results", "**/__pycache__"]
JOB_TIMEOUT_S = 300


@pytest.fixture(scope="module")
def ray_head():
    head = LocalHead(num_cpus=6)
    try:
        head.start()
        wait_for_jobs_api(head.dashboard_url)
        yield head
    finally:
        head.stop()


def wait_for_jobs_api(url: str, timeout_s: float = 90) -> None:
    from ray.job_submission import JobSubmissionClient

    deadline = time.monotonic() + timeout_s
    while True:
        try:
            JobSubmissionClient(url).list_jobs()
            return
        except Exception:  # the dashboard is still starting
            if time.monotonic() > deadline:
                raise
            time.sleep(1)


def submit(head: LocalHead, submission_id: str, argv: list[str]) -> None:
    """`ray job submit --no-wait` from the repository root, the working dir uploaded small."""
    runtime_env = {"excludes": UPLOAD_EXCLUDES, "env_vars": {"OMP_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false"}}
    command = [
        RAY_CLI, "job", "submit", "--address", head.dashboard_url, "--submission-id", submission_id,
        "--working-dir", ".", "--runtime-env-json", json.dumps(runtime_env), "--no-wait", "--", "python", *argv,
    ]
    done = subprocess.run(command, cwd=REPO, env=ray_env(), capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, f"ray job submit failed:\n{done.stdout}\n{done.stderr}"


def wait_for_job(head: LocalHead, submission_id: str, timeout_s: float = JOB_TIMEOUT_S) -> tuple[str, str]:
    """Poll the Jobs API until the job ends; returns (final status, the job's log)."""
    from ray.job_submission import JobStatus, JobSubmissionClient

    client = JobSubmissionClient(head.dashboard_url)
    deadline = time.monotonic() + timeout_s
    while (status := client.get_job_status(submission_id)) not in {JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.STOPPED}:
        if time.monotonic() > deadline:
            client.stop_job(submission_id)
            pytest.fail(f"job {submission_id} still {status} after {timeout_s} s:\n{client.get_job_logs(submission_id)[-4000:]}")
        time.sleep(2)
    return str(status.value), client.get_job_logs(submission_id)


def cli_status(head: LocalHead, submission_id: str) -> str:
    done = subprocess.run([RAY_CLI, "job", "status", "--address", head.dashboard_url, submission_id],
                          env=ray_env(), capture_output=True, text=True, timeout=60)
    return re.sub(r"\x1b\[[0-9;]*m", "", done.stdout + done.stderr)  # drop the colours


def test_training_job_submitted_to_a_ray_head_succeeds_and_writes_its_run(ray_head, tmp_path, tiny_backbone_dir, corpora_root):
    output = tmp_path / "runs"
    submit(ray_head, "train-tiny", [
        "jobs/train.py", "--dataset", "NCBI-disease", "--data-root", str(Path(corpora_root).resolve()),
        "--backbone", str(Path(tiny_backbone_dir).resolve()), "--max-subwords", "64",
        "--max-train-sentences", "64", "--max-eval-sentences", "16", "--epochs", "1", "--batch-size", "16",
        "--num-workers", "1", "--cpu-threads", "1", "--output", str(output), "--name", "ray-job",
    ])
    status, logs = wait_for_job(ray_head, "train-tiny")
    assert status == "SUCCEEDED", logs[-4000:]
    assert "Job 'train-tiny' succeeded" in cli_status(ray_head, "train-tiny")
    assert "test entity F1" in logs
    run = output / "ray-job"
    results = json.loads((run / "results.json").read_text())
    assert [e["epoch"] for e in results["epochs"]] == [1]
    assert results["test"]["sentences"] == 16
    assert (run / "model" / "model.safetensors").is_file()
    assert (run / "model" / "adabiobert.json").is_file()


def test_annotation_job_submitted_to_a_ray_head_succeeds_and_commits_every_shard(ray_head, tmp_path, tiny_bundle, ncbi):
    from tests.annotation_data import corpus_articles, write_shard

    sentences = [s.words for s in ncbi.test]
    for i in range(2):
        write_shard(str(tmp_path / "shards" / f"part-{i:05d}.parquet"), corpus_articles(sentences[i * 60:], f"PMC{i}", 3))
    output = tmp_path / "entities"
    submit(ray_head, "annotate-tiny", [
        "jobs/annotate.py", "--shards", str(tmp_path / "shards"), "--model", str(Path(tiny_bundle).resolve()),
        "--output", str(output), "--run-date", "2026-11-24", "--run-id", "nightly-test", "--num-actors", "1",
        "--cpu-threads", "1", "--documents-per-call", "2", "--documents-per-split", "2", "--no-progress",
    ])
    status, logs = wait_for_job(ray_head, "annotate-tiny")
    assert status == "SUCCEEDED", logs[-4000:]
    assert "Job 'annotate-tiny' succeeded" in cli_status(ray_head, "annotate-tiny")
    summary = json.loads((output / "runs" / "nightly-test.json").read_text())
    assert summary["shards_committed"] == 2 and summary["documents_in"] == summary["documents_tagged"] == 6
    assert sorted(p.name.split("-")[1] for p in (output / "entities" / "run_date=2026-11-24").glob("*.parquet")) == ["00000", "00001"]
    assert "2 shards tagged" in logs
