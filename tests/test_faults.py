"""Faults on a real multi-node Ray cluster: a worker node is killed in the middle of a job, and the
job must finish as if nothing had happened.

Each case runs tests/fault_cluster.py in a subprocess: it builds its own `ray.cluster_utils.Cluster`
(several raylets on this machine), so it cannot collide with the suite's shared Ray session. The
subprocess writes a JSON report; its processes are killed by temp dir whatever happens.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from adabiobert.model.checkpoint import load_training_state
from tests.local_ray import REPO, kill_processes_under, ray_env, short_temp_dir

pytestmark = [pytest.mark.ray, pytest.mark.slow]

SUBPROCESS_TIMEOUT_S = 420


def run_fault_cluster(mode: str, tmp_path: Path, *args: str) -> dict:
    temp_dir = short_temp_dir("rf")
    report = tmp_path / f"{mode}-report.json"
    command = [sys.executable, str(REPO / "tests" / "fault_cluster.py"), mode, "--temp-dir", str(temp_dir),
               "--scratch", str(tmp_path), "--report", str(report), *args]
    try:
        done = subprocess.run(command, cwd=REPO, env=ray_env(OMP_NUM_THREADS="1", TOKENIZERS_PARALLELISM="false"),
                              capture_output=True, text=True, timeout=SUBPROCESS_TIMEOUT_S)
    finally:
        kill_processes_under(temp_dir)
        shutil.rmtree(temp_dir, ignore_errors=True)
    assert done.returncode == 0, f"fault_cluster.py {mode} failed:\n{done.stdout[-3000:]}\n{done.stderr[-6000:]}"
    return json.loads(report.read_text())


def test_training_survives_losing_a_worker_node_and_resumes_from_its_checkpoint(tmp_path, tiny_backbone_dir, corpora_root):
    output = tmp_path / "runs"
    report = run_fault_cluster("train", tmp_path, "--data-root", str(corpora_root),
                               "--backbone", str(tiny_backbone_dir), "--output", str(output))

    # Rank 0 trained epoch 1 on the node that was then killed, and epoch 2 on another node.
    first, second = report["epochs"]
    assert (first["epoch"], second["epoch"]) == (1, 2), report["epochs"]
    assert first["node"] == report["killed"]
    assert second["node"] != report["killed"] and second["pid"] != first["pid"]
    # The finished run has the full history, and epoch 1 is the checkpoint's, not a re-run.
    assert [h["epoch"] for h in report["history"]] == [1, 2]
    restored = load_training_state(output / "node-kill" / "epoch_001")["history"]
    assert report["history"][0] == restored[0]
    assert (Path(report["model_dir"]) / "model.safetensors").is_file()
    assert (Path(report["run_dir"]) / "results.json").is_file()


def committed_rows(output: str, table: str) -> list[dict]:
    """Every row of one table under an annotation output, with its run_date, without run_id."""
    import re

    import pyarrow.parquet as pq

    rows = []
    for path in sorted(Path(output, table).rglob("*.parquet")):
        run_date = re.search(r"run_date=([0-9-]+)", str(path)).group(1)
        rows += [{**{k: v for k, v in row.items() if k != "run_id"}, "run_date": run_date}
                 for row in pq.read_table(path).to_pylist()]
    return rows


def assert_same_rows(left: list[dict], right: list[dict]) -> None:
    """Equal multisets of rows: no duplicate, no loss. Confidences may differ below 1e-3 (a
    retried batch can be cut differently, which moves float sums in the last digits)."""
    def key(row):
        return tuple(sorted((k, repr(v)) for k, v in row.items() if k != "confidence"))

    left, right = sorted(left, key=key), sorted(right, key=key)
    assert [key(r) for r in left] == [key(r) for r in right]
    assert all(abs(a.get("confidence", 0) - b.get("confidence", 0)) < 1e-3 for a, b in zip(left, right))


def test_annotation_survives_losing_the_tagger_node_with_exactly_the_clean_rows(tmp_path, tiny_bundle, corpora_root):
    report = run_fault_cluster("annotate", tmp_path, "--data-root", str(corpora_root), "--model", str(tiny_bundle))

    assert report["killed"] and report["replacement"] != report["killed"]
    clean, chaos, again = report["clean"], report["chaos"], report["again"]
    assert clean["shards_committed"] == chaos["shards_committed"] == clean["shards_listed"] == 4
    assert chaos["documents_in"] == chaos["documents_tagged"] == clean["documents_in"] == 20
    assert chaos["mentions"] == clean["mentions"]
    for table in ("entities", "rejections"):
        assert_same_rows(committed_rows(report["chaos_output"], table), committed_rows(report["clean_output"], table))
    assert committed_rows(report["clean_output"], "entities"), "the tiny tagger found nothing to compare"
    # The killed run committed everything: running it again finds nothing to do.
    assert again["shards_committed"] == 0 and again["shards_up_to_date"] == 4
