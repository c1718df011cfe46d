"""Run a job on a multi-node Ray cluster on this machine and kill a worker node under it.

Executed by tests/test_faults.py in a subprocess (`.venv/bin/python tests/fault_cluster.py ...`),
so that its cluster never meets the suite's shared Ray session. The cluster is
`ray.cluster_utils.Cluster`: one head that takes no work (0 CPUs, like cluster/aws.yaml) and
worker nodes that are separate raylets; killing a node kills its raylet, object store and every
worker process on it, as losing a spot instance does (Ray's chaos release tests remove nodes the
same way with their `RayletKiller`).

    train: the training worker of rank 0 parks after epoch 1, once its checkpoint is registered;
           its node is killed and a replacement node joins (what an autoscaler does). The run must
           finish through FailureConfig, resuming from the epoch-1 checkpoint.

Each mode writes a JSON report to --report for the test to check.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import ray  # noqa: E402

PARK_TIMEOUT_S = 240.0
"""How long a parked worker waits for its node to be killed before it fails the run."""


def start_cluster(temp_dir: Path, workers: int, cpus_per_worker: int):
    """A head with no CPUs and ``workers`` worker nodes; the driver connects to the head."""
    from ray.cluster_utils import Cluster

    cluster = Cluster(
        initialize_head=True,
        head_node_args={"num_cpus": 0, "temp_dir": str(temp_dir), "include_dashboard": False,
                        "object_store_memory": 300 * 1024 * 1024},
    )
    nodes = [add_worker(cluster, temp_dir, cpus_per_worker) for _ in range(workers)]
    cluster.wait_for_nodes()
    cluster.connect()
    return cluster, nodes


def add_worker(cluster, temp_dir: Path, cpus: int):
    return cluster.add_node(num_cpus=cpus, temp_dir=str(temp_dir), object_store_memory=200 * 1024 * 1024)


def wait_for_file(path: Path, timeout_s: float, job: "Background") -> str:
    """The text of ``path`` once it exists; gives up when the job ends first or time runs out."""
    deadline = time.monotonic() + timeout_s
    while not path.exists():
        if not job.is_alive():
            job.outcome(timeout_s=0)  # raises the job's error
            raise RuntimeError(f"the job finished without writing {path}")
        if time.monotonic() > deadline:
            raise TimeoutError(f"{path} did not appear within {timeout_s} s")
        time.sleep(0.2)
    return path.read_text()


def kill_parked_node(cluster, nodes, marker: Path, temp_dir: Path, cpus: int, job: "Background") -> tuple[str, str]:
    """Wait for a worker to name the node it parked on, kill that node, add a replacement.

    Runs on the main thread: starting a node installs signal handlers, which Python allows
    there only. Returns (killed node id, replacement node id).
    """
    node_id = wait_for_file(marker, PARK_TIMEOUT_S, job).strip()
    victim = next(n for n in nodes if n.node_id == node_id)
    cluster.remove_node(victim, allow_graceful=False)
    return node_id, add_worker(cluster, temp_dir, cpus).node_id


class Background(threading.Thread):
    """Runs a job on a thread so that the main thread is free to kill and add nodes."""

    def __init__(self, target):
        super().__init__(daemon=True)
        self.target, self.result, self.error = target, None, None

    def run(self) -> None:
        try:
            self.result = self.target()
        except BaseException as error:  # re-raised by the main thread
            self.error = error

    def outcome(self, timeout_s: float):
        self.join(timeout_s)
        if self.is_alive():
            raise TimeoutError(f"the job did not finish within {timeout_s} s")
        if self.error is not None:
            raise self.error
        return self.result


# ---------------------------------------------------------------------------------------------
# train
# ---------------------------------------------------------------------------------------------
def parked_train_loop(loop_config: dict) -> None:
    """The real training loop, with the fault hook replaced: rank 0 records every epoch (node,
    process) and, after the epoch named by ADABIOBERT_CRASH_AFTER_EPOCH=N:<marker>, writes its
    node id to <marker> and waits there to be killed with its node.

    Defined in __main__ so that Ray ships it by value; it patches the worker's own import.
    """
    from adabiobert.distributed import training

    def after_epoch(setting: str | None, epoch: int, rank: int) -> None:
        if not setting or rank != 0:
            return
        after, _, marker = setting.partition(":")
        node = ray.get_runtime_context().get_node_id()
        with open(marker + ".log", "a", encoding="utf-8") as log:
            log.write(json.dumps({"epoch": epoch, "node": node, "pid": os.getpid()}) + "\n")
        if int(after) == epoch and not os.path.exists(marker):
            ray.train.get_all_reported_checkpoints()  # this epoch's checkpoint is registered
            Path(marker).write_text(node)
            threading.Event().wait(PARK_TIMEOUT_S)
            raise RuntimeError(f"node {node} was not killed within {PARK_TIMEOUT_S} s")

    training._maybe_crash = after_epoch
    training.train_loop_per_worker(loop_config)


def run_train(args) -> dict:
    from adabiobert.config import ModelConfig, TrainConfig, TrainJobConfig
    from adabiobert.distributed import training

    marker = Path(args.scratch) / "parked"
    os.environ[training.CRASH_ENV] = f"1:{marker}"
    cluster, nodes = start_cluster(Path(args.temp_dir), workers=2, cpus_per_worker=1)
    try:
        training.train_loop_per_worker = parked_train_loop
        job = TrainJobConfig(
            dataset="NCBI-disease", data_root=args.data_root, output=args.output, name="node-kill",
            max_train_sentences=120, max_eval_sentences=40, num_workers=2, cpu_threads_per_worker=1,
            max_failures=1,
            train=TrainConfig(model=ModelConfig(backbone=args.backbone, max_subwords=64, window_overlap=16),
                              epochs=2, batch_size=16),
        )
        run = Background(lambda: training.run_training(job, log=lambda line: print(line, flush=True)))
        run.start()
        killed, replacement = kill_parked_node(cluster, nodes, marker, Path(args.temp_dir), cpus=1, job=run)
        outcome = run.outcome(timeout_s=PARK_TIMEOUT_S)
        log = [json.loads(line) for line in Path(str(marker) + ".log").read_text().splitlines()]
        return {"killed": killed, "replacement": replacement, "epochs": log,
                "history": outcome.results["epochs"], "model_dir": outcome.model_dir, "run_dir": outcome.run_dir}
    finally:
        ray.shutdown()
        cluster.shutdown()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("mode", choices=("train",))
    parser.add_argument("--temp-dir", required=True, help="Ray's temp dir (short path)")
    parser.add_argument("--scratch", required=True, help="a folder for markers")
    parser.add_argument("--report", required=True, help="where to write the JSON report")
    parser.add_argument("--data-root")
    parser.add_argument("--backbone")
    parser.add_argument("--output")
    args = parser.parse_args(argv)
    report = {"train": run_train}[args.mode](args)
    Path(args.report).write_text(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
