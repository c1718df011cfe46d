"""The jobs as Ray Jobs: `ray job submit` to a real local head (dashboard on loopback), as the
README's "Ray Jobs on a local head" block does, on a tiny slice with the tiny test model.

The head is private to this module (its own temp dir and ports) and is killed in teardown; the
suite's shared `ray_session` is not used, because a job needs the Jobs API of a started head. It
runs with token authentication and the venv first on PATH, as the README's block sets up, and is
driven with the `ray` CLI only (submit and wait, status, logs), as a user would.
"""

from __future__ import annotations

import importlib
import json
import re
import shlex
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.local_ray import PORT_FLAGS, RAY_CLI, REPO, LocalHead

pytestmark = [pytest.mark.ray, pytest.mark.slow]

UPLOAD_EXCLUDES = [".venv", ".git", "runs", "outputs", ".pytest_cache", "benchmarks/results", "**/__pycache__"]
JOB_TIMEOUT_S = 300
README_SECTION = "## Ray Jobs on a local head"
HEAD_AUTH_MODE = "token"  # as the README's block exports
PATH_FLAGS = {"--data-root", "--output", "--word-vectors", "--shards", "--model", "--out", "--lexicon"}


# ---------------------------------------------------------------------------------------------
# The README's block
# ---------------------------------------------------------------------------------------------
def readme_commands() -> list[list[str]]:
    """The README's Ray Jobs block as argument lists (continuation lines joined, comments dropped,
    nothing expanded: ``"$PWD/runs"`` stays ``$PWD/runs``)."""
    section = (REPO / "README.md").read_text(encoding="utf-8").split(README_SECTION, 1)[1]
    block = section.split("```bash\n", 1)[1].split("```", 1)[0]
    return [words for line in block.replace("\\\n", " ").splitlines() if (words := shlex.split(line, comments=True))]


def split_submit(words: list[str]) -> tuple[dict[str, str], list[str]]:
    """``ray job submit <options> -- <entrypoint>`` -> (options, entrypoint words)."""
    cut = words.index("--")
    options, flag = {}, None
    for word in words[3:cut]:
        if word.startswith("--"):
            flag, _, value = word.partition("=")
            options[flag] = value or None
        elif flag is not None:
            options[flag], flag = word, None
    return options, words[cut + 1:]


def test_the_readme_block_sets_up_the_head_as_these_tests_do():
    commands = readme_commands()
    assert commands[0] == ["source", ".venv/bin/activate"]  # the tests' ray_env: the venv first on PATH
    assert ["export", f"RAY_AUTH_MODE={HEAD_AUTH_MODE}"] in commands
    assert ["ray", "get-auth-token", "--generate"] in [c[:3] for c in commands]  # LocalHead.start does the same
    start = next(c for c in commands if c[:3] == ["ray", "start", "--head"])
    assert "--dashboard-host=127.0.0.1" in start
    assert any(c[:3] == ["ray", "job", "logs"] for c in commands)


def test_the_readme_head_takes_free_ports_for_every_port_these_tests_do_and_stops_alone():
    """Beside another Ray: every port LocalHead sets (52365, the dashboard agent's, among them) is
    a free one in the README too; the head has a folder of its own; and the block stops it by its
    own process (``--block``), never with ``ray stop``, which stops every Ray of the machine."""
    commands = readme_commands()
    start = next(c for c in commands if c[:3] == ["ray", "start", "--head"])
    flags = dict(word.partition("=")[::2] for word in start if word.startswith("--"))
    assert set(PORT_FLAGS) <= set(flags) and all(flags[flag].startswith("$") for flag in PORT_FLAGS)
    [read] = [c for c in commands if c[:2] == ["read", "-r"]]
    assert read[2:-2] == [flags[flag][1:] for flag in PORT_FLAGS] and read[-1] == f"$(python scripts/free_ports.py {len(PORT_FLAGS)})"
    assert flags["--temp-dir"] == "$HEAD" and "--block" in start and start[-1] == "&"
    assert ["HEAD_PID=$!"] in commands and commands[-1] == ["kill", "$HEAD_PID"]
    assert [f"JOBS=http://127.0.0.1:{flags['--dashboard-port']}"] in commands
    assert not any(c[:2] == ["ray", "stop"] for c in commands)
    printed = subprocess.run([sys.executable, "scripts/free_ports.py", str(len(PORT_FLAGS))], cwd=REPO,
                             capture_output=True, text=True, check=True).stdout.split()
    assert len(set(printed)) == len(PORT_FLAGS) and all(1024 < int(port) < 65536 for port in printed)


def test_the_readme_submits_each_job_as_these_tests_do_with_absolute_paths():
    """Same submit options as `submit` below; entrypoints that each job's own parser accepts; every
    path flag absolute once the shell has expanded $PWD (what a Ray Job requires)."""
    from adabiobert.submission import check_job_paths

    submits = [split_submit(c) for c in readme_commands() if c[:3] == ["ray", "job", "submit"]]
    assert [entry[:2] for _, entry in submits] == [["python", "jobs/train.py"], ["python", "jobs/annotate.py"]]
    for options, entry in submits:
        assert options.get("--address") == "$JOBS" and options.get("--working-dir") == "."
        assert set(options) <= {"--address", "--working-dir", "--submission-id"}
        argv = [word.replace("$PWD", str(REPO)) for word in entry[2:]]
        job = importlib.import_module(f"jobs.{Path(entry[1]).stem}")
        job.parse_args(argv)  # exits 2 on a flag the job does not know
        paths = {flag: value for flag, value in zip(entry[2:], entry[3:]) if flag in PATH_FLAGS}
        assert paths and all(value.startswith("$PWD/") for value in paths.values()), paths
        check_job_paths({flag: value.replace("$PWD", str(REPO)) for flag, value in paths.items()},
                        {"RAY_JOB_CONFIG_JSON_ENV_VAR": "{}"})


# ---------------------------------------------------------------------------------------------
# A real head
# ---------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def ray_head():
    head = LocalHead(num_cpus=6, auth_mode=HEAD_AUTH_MODE)
    try:
        head.start()
        wait_for_jobs_api(head)
        yield head
    finally:
        head.stop()


def ray_cli(head: LocalHead, *args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    """A `ray` command against the head, from the repository root; colours dropped from its output."""
    done = subprocess.run([RAY_CLI, *args], cwd=REPO, env=head.env(), capture_output=True, text=True, timeout=timeout)
    done.stdout = re.sub(r"\x1b\[[0-9;]*m", "", done.stdout + done.stderr)
    return done


def wait_for_jobs_api(head: LocalHead, timeout_s: float = 90) -> None:
    deadline = time.monotonic() + timeout_s
    while (done := ray_cli(head, "job", "list", "--address", head.dashboard_url)).returncode != 0:
        if time.monotonic() > deadline:
            raise RuntimeError(f"the Jobs API did not answer in {timeout_s} s:\n{done.stdout[-2000:]}")
        time.sleep(1)  # the dashboard is still starting


def submit_and_wait(head: LocalHead, submission_id: str, argv: list[str]) -> subprocess.CompletedProcess:
    """`ray job submit` as in the README (it waits and streams the job's log; exit 1 if the job
    failed), with the upload kept small."""
    runtime_env = {"excludes": UPLOAD_EXCLUDES, "env_vars": {"OMP_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false"}}
    return ray_cli(head, "job", "submit", "--address", head.dashboard_url, "--submission-id", submission_id,
                   "--working-dir", ".", "--runtime-env-json", json.dumps(runtime_env), "--", "python", *argv,
                   timeout=JOB_TIMEOUT_S)


def job_logs(head: LocalHead, submission_id: str) -> str:
    done = ray_cli(head, "job", "logs", "--address", head.dashboard_url, submission_id)
    assert done.returncode == 0, done.stdout
    return done.stdout


def job_status(head: LocalHead, submission_id: str) -> str:
    return ray_cli(head, "job", "status", "--address", head.dashboard_url, submission_id).stdout


def test_training_job_submitted_to_a_ray_head_succeeds_and_writes_its_run(ray_head, tmp_path, tiny_backbone_dir, corpora_root):
    output = tmp_path / "runs"
    done = submit_and_wait(ray_head, "train-tiny", [
        "jobs/train.py", "--dataset", "NCBI-disease", "--data-root", str(Path(corpora_root).resolve()),
        "--backbone", str(Path(tiny_backbone_dir).resolve()), "--max-subwords", "64",
        "--max-train-sentences", "64", "--max-eval-sentences", "16", "--epochs", "1", "--batch-size", "16",
        "--num-workers", "1", "--cpu-threads", "1", "--output", str(output), "--name", "ray-job",
    ])
    assert done.returncode == 0, done.stdout[-4000:]
    assert "Job 'train-tiny' succeeded" in job_status(ray_head, "train-tiny")
    logs = job_logs(ray_head, "train-tiny")
    assert "test entity F1" in logs and "Traceback" not in logs
    assert logs.count("train: epoch 1/1 done") == 1  # progress relayed once by the driver, not per worker print
    run = output / "ray-job"
    results = json.loads((run / "results.json").read_text())
    assert [e["epoch"] for e in results["epochs"]] == [1]
    assert results["test"]["sentences"] == 16
    assert (run / "model" / "model.safetensors").is_file()
    assert (run / "model" / "adabiobert.json").is_file()


def test_a_relative_output_is_refused_in_a_ray_job_with_a_line_that_says_why(ray_head, corpora_root):
    done = submit_and_wait(ray_head, "train-relative", [
        "jobs/train.py", "--dataset", "NCBI-disease", "--data-root", str(Path(corpora_root).resolve()),
        "--output", "runs", "--name", "never-written",
    ])
    assert done.returncode == 1  # the job failed, and `ray job submit` says so
    assert "Job 'train-relative' failed" in job_status(ray_head, "train-relative")
    [line] = [line for line in job_logs(ray_head, "train-relative").splitlines() if line.startswith("error: ")]
    assert line.startswith("error: --output runs: a relative path in Ray Job train-relative resolves in the job's")
    assert '--output "$PWD/runs"' in line


def test_annotation_job_submitted_to_a_ray_head_succeeds_and_commits_every_shard(ray_head, tmp_path, tiny_bundle, ncbi):
    from tests.annotation_data import corpus_articles, write_shard

    sentences = [s.words for s in ncbi.test]
    for i in range(2):
        write_shard(str(tmp_path / "shards" / f"part-{i:05d}.parquet"), corpus_articles(sentences[i * 60:], f"PMC{i}", 3))
    output = tmp_path / "entities"
    done = submit_and_wait(ray_head, "annotate-tiny", [
        "jobs/annotate.py", "--shards", str(tmp_path / "shards"), "--model", str(Path(tiny_bundle).resolve()),
        "--output", str(output), "--run-date", "2026-11-24", "--run-id", "nightly-test", "--num-actors", "1",
        "--cpu-threads", "1", "--documents-per-call", "2", "--documents-per-split", "2", "--no-progress",
    ])
    assert done.returncode == 0, done.stdout[-4000:]
    assert "Job 'annotate-tiny' succeeded" in job_status(ray_head, "annotate-tiny")
    summary = json.loads((output / "runs" / "nightly-test.json").read_text())
    assert summary["shards_committed"] == 2 and summary["documents_in"] == summary["documents_tagged"] == 6
    assert sorted(p.name.split("-")[1] for p in (output / "entities" / "run_date=2026-11-24").glob("*.parquet")) == ["00000", "00001"]
    assert "2 shards tagged" in job_logs(ray_head, "annotate-tiny")
