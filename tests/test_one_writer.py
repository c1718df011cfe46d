"""Two annotation runs at once on one output (issue 24, item 1): the second is refused with one
line naming the first and exit status 4, the first ends with exactly the tables of a clean run,
and nothing is left in ``_staging``; locally (the second run a process of its own) and on the
loopback S3 server. The shard root also holds an unfinished ingest batch, which no run tags.

The second run starts from the first run's commit hook, at its first commit step, so that the
two overlap at the moment the issue's crash happened (``_stage_amendment`` under another run's
recovery), without any sleep.
"""

from __future__ import annotations

import contextlib
import io
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from adabiobert import storage
from adabiobert.output_lease import EXIT_OUTPUT_LEASED, LEASE_FILE
from adabiobert.pmc.shards import STARTED_MARKER
from tests.annotation_data import corpus_articles, write_shard
from tests.test_annotation_job import job_config, read_rows, same_rows

pytestmark = pytest.mark.ray
REPO = Path(__file__).resolve().parents[1]
RUN_DATE = "2026-11-24"


@pytest.fixture(scope="session", autouse=True)
def _s3_env_before_ray(s3_server):
    """The loopback S3 server before the suite's Ray: Ray workers take their environment from the
    process that starts Ray."""
    yield


@pytest.fixture(scope="module")
def shards(ncbi, tmp_path_factory) -> Path:
    """Two shards, and a batch an ingest run started and never committed (``PMC9...`` articles)."""
    root = tmp_path_factory.mktemp("one-writer") / "shards"
    sentences = [s.words for s in ncbi.test]
    for i in range(2):
        write_shard(str(root / f"part-{i:05d}.parquet"), corpus_articles(sentences[i * 40:], f"PMC{i}", 3))
    write_shard(str(root / "batch=b1" / "part-00000.parquet"), corpus_articles(sentences[200:], "PMC9", 2))
    (root / "batch=b1" / STARTED_MARKER).write_text("{}")
    return root


def argv(shards: Path, output: str, model) -> list[str]:
    return ["--shards", str(shards), "--model", str(model), "--output", output, "--run-date", RUN_DATE,
            "--num-actors", "1", "--cpu-threads", "1", "--documents-per-call", "2", "--documents-per-split", "2",
            "--no-progress"]


@pytest.fixture(scope="module")
def clean(ray_data, shards, tiny_bundle, tmp_path_factory) -> str:
    from adabiobert.distributed.annotation import run_annotation

    output = str(tmp_path_factory.mktemp("clean") / "out")
    run_annotation(job_config(str(shards), output, tiny_bundle), log=lambda line: None)
    return output


class SecondRunAtFirstCommit:
    """The first run's commit hook: at its first commit step (its tables staged, not yet placed)
    it starts the second run and keeps what it gave (exit status, stderr)."""

    def __init__(self, second_run) -> None:
        self.second_run = second_run
        self.result: tuple[int, str] | None = None

    def __call__(self, step: str, shard: str) -> None:
        if self.result is None and step == "staged":
            self.result = self.second_run()


def in_a_process(args: list[str]) -> tuple[int, str]:
    done = subprocess.run([sys.executable, str(REPO / "jobs" / "annotate.py"), *args], cwd=REPO, capture_output=True,
                          text=True, timeout=300, env={**os.environ, "RAY_ADDRESS": ""})
    return done.returncode, done.stderr


def in_this_process(args: list[str]) -> tuple[int, str]:
    from jobs.annotate import main

    with contextlib.redirect_stderr(io.StringIO()) as err, contextlib.redirect_stdout(io.StringIO()):
        status = main(args)
    return status, err.getvalue()


def run_two_at_once(shards: Path, output: str, model, second_run) -> tuple[int, str]:
    from adabiobert.distributed.annotation import run_annotation

    told: list[str] = []
    hook = SecondRunAtFirstCommit(lambda: second_run(argv(shards, output, model)))
    run_annotation(job_config(str(shards), output, model), hook=hook, log=told.append)
    assert hook.result is not None, "the first run committed nothing"
    assert any("unfinished ingest batch" in line and "batch=b1" in line for line in told)
    return hook.result


def assert_refused_in_one_line(status: int, stderr: str) -> None:
    assert status == EXIT_OUTPUT_LEASED == 4, stderr[-3000:]
    assert "Traceback" not in stderr
    [line] = [line for line in stderr.splitlines() if line.startswith("error: ")]
    assert f"annotate on host {socket.gethostname()} pid {os.getpid()}" in line and ", started 20" in line


def assert_as_the_clean_run(output: str, clean: str) -> None:
    for table in ("entities", "rejections"):
        assert same_rows(read_rows(output, table), read_rows(clean, table)), table
    assert not any(row["pmcid"].startswith("PMC9") for row in read_rows(output, "entities"))
    assert storage.list_files(storage.join(output, "_staging")) == []
    assert not storage.exists(storage.join(output, LEASE_FILE))


def test_a_second_process_on_a_local_output_is_refused_and_the_first_ends_clean(clean, shards, tiny_bundle, tmp_path):
    output = str(tmp_path / "out")
    status, stderr = run_two_at_once(shards, output, tiny_bundle, in_a_process)
    assert_refused_in_one_line(status, stderr)
    assert_as_the_clean_run(output, clean)


def test_a_second_run_on_an_s3_output_is_refused_and_the_first_ends_clean(clean, shards, tiny_bundle, s3_bucket):
    output = f"s3://{s3_bucket}/annotations"
    status, stderr = run_two_at_once(shards, output, tiny_bundle, in_this_process)
    assert_refused_in_one_line(status, stderr)
    assert_as_the_clean_run(output, clean)
