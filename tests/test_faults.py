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

from adabiobert.checkpoint import load_training_state
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
