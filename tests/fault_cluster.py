"""Run a job on a multi-node Ray cluster on this machine and kill a worker node under it.

Executed by tests/test_faults.py in a subprocess (`.venv/bin/python tests/fault_cluster.py ...`),
so that its cluster never meets the suite's shared Ray session. The cluster is
`ray.cluster_utils.Cluster`: one head that takes no work (0 CPUs, like cluster/aws.yaml) and
worker nodes that are separate raylets; killing a node kills its raylet, object store and every
worker process on it, as losing a spot instance does (Ray's chaos release tests remove nodes the
same way with their `RayletKiller`).

    train: the training worker of rank 0 parks after epoch 1 (an epoch hook), once its checkpoint is registered;
           its node is killed and a replacement node joins (what an autoscaler does). The run must
           finish through FailureConfig, resuming from the epoch-1 checkpoint.
    annotate: a clean annotation run, then the same run into another output, where the tagger
           actor parks in its second call; its node is killed and a replacement joins. Ray Data
           restarts the actor and re-runs the lost tasks; the run must commit exactly the clean
           run's rows. A third run over the same output must find every shard up to date.

Each mode writes a JSON report to --report for the test to check.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import threading
import time
from dataclasses import dataclass
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
@dataclass(frozen=True)
class ParkAfterEpoch:
    """The training job's epoch hook (``run_training(after_epoch=...)``): rank 0 records every
    epoch (node, process) in ``<marker>.log`` and, after epoch ``epoch``, writes its node id to
    ``marker`` and waits there to be killed with its node.

    Defined in __main__ so that Ray ships it by value.
    """

    epoch: int
    marker: str

    def __call__(self, epoch: int, rank: int) -> None:
        if rank != 0:
            return
        node = ray.get_runtime_context().get_node_id()
        with open(self.marker + ".log", "a", encoding="utf-8") as log:
            log.write(json.dumps({"epoch": epoch, "node": node, "pid": os.getpid()}) + "\n")
        if epoch == self.epoch and not os.path.exists(self.marker):
            ray.train.get_all_reported_checkpoints()  # this epoch's checkpoint is registered
            Path(self.marker).write_text(node)
            threading.Event().wait(PARK_TIMEOUT_S)
            raise RuntimeError(f"node {node} was not killed within {PARK_TIMEOUT_S} s")


def run_train(args) -> dict:
    from adabiobert.distributed import training
    from adabiobert.training_config import ModelConfig, TrainConfig, TrainJobConfig

    marker = Path(args.scratch) / "parked"
    cluster, nodes = start_cluster(Path(args.temp_dir), workers=2, cpus_per_worker=1)
    try:
        job = TrainJobConfig(
            dataset="NCBI-disease", data_root=args.data_root, output=args.output, name="node-kill",
            max_train_sentences=64, max_eval_sentences=16, num_workers=2, cpu_threads_per_worker=1,
            max_failures=1,
            train=TrainConfig(model=ModelConfig(backbone=args.backbone, max_subwords=64, window_overlap=16),
                              epochs=2, batch_size=16),
        )
        run = Background(lambda: training.run_training(job, log=lambda line: print(line, flush=True),
                                                       after_epoch=ParkAfterEpoch(1, str(marker))))
        run.start()
        killed, replacement = kill_parked_node(cluster, nodes, marker, Path(args.temp_dir), cpus=1, job=run)
        outcome = run.outcome(timeout_s=PARK_TIMEOUT_S)
        log = [json.loads(line) for line in Path(str(marker) + ".log").read_text().splitlines()]
        return {"killed": killed, "replacement": replacement, "epochs": log,
                "history": outcome.results["epochs"], "model_dir": outcome.model_dir, "run_dir": outcome.run_dir}
    finally:
        ray.shutdown()
        cluster.shutdown()


# ---------------------------------------------------------------------------------------------
# annotate
# ---------------------------------------------------------------------------------------------
SHARDS, ARTICLES_PER_SHARD, RUN_DATE = 4, 5, "2026-11-24"


def parked_tagger_class(marker: Path):
    """The job's tagger actor, except that its second call parks (once, marked by ``marker``)
    after tagging, until its node is killed. Built here so that Ray ships it by value."""
    from adabiobert.distributed.annotation import TaggerActor

    class ParkedTagger(TaggerActor):
        calls = 0

        def __call__(self, batch):
            tagged = super().__call__(batch)
            self.calls += 1
            if self.calls == 2 and not marker.exists():
                marker.write_text(ray.get_runtime_context().get_node_id())
                threading.Event().wait(PARK_TIMEOUT_S)
                raise RuntimeError(f"the tagger's node was not killed within {PARK_TIMEOUT_S} s")
            return tagged

    return ParkedTagger


def write_test_shards(folder: Path, data_root: str) -> str:
    from adabiobert.corpora.iob import load_corpus
    from tests.annotation_data import corpus_articles, write_shard

    sentences = [s.words for s in load_corpus("NCBI-disease", data_root).test]
    for i in range(SHARDS):
        rows = corpus_articles(sentences[i * 60:], f"PMC{i}", ARTICLES_PER_SHARD)
        write_shard(str(folder / f"part-{i:05d}.parquet"), rows)
    return str(folder)


def run_annotate(args) -> dict:
    from adabiobert.distributed import annotation
    from adabiobert.job_configs import AnnotationJobConfig

    scratch = Path(args.scratch)
    shards = write_test_shards(scratch / "shards", args.data_root)

    def run(output: str) -> dict:
        config = AnnotationJobConfig(shards, output, args.model, run_date=RUN_DATE, num_actors=1,
                                     cpu_threads_per_actor=1, documents_per_call=2, documents_per_split=2,
                                     show_progress=False)
        return annotation.run_annotation(config, log=lambda line: print(line, flush=True))

    cluster, nodes = start_cluster(Path(args.temp_dir), workers=2, cpus_per_worker=2)
    try:
        clean = run(str(scratch / "clean"))
        marker = scratch / "tagger-parked"
        annotation.TaggerActor = parked_tagger_class(marker)
        chaos_run = Background(lambda: run(str(scratch / "chaos")))
        chaos_run.start()
        killed, replacement = kill_parked_node(cluster, nodes, marker, Path(args.temp_dir), cpus=2, job=chaos_run)
        chaos = chaos_run.outcome(timeout_s=PARK_TIMEOUT_S)
        again = run(str(scratch / "chaos"))
        keys = ("shards_listed", "shards_committed", "shards_up_to_date", "documents_in", "documents_tagged",
                "documents_rejected", "mentions")
        return {"killed": killed, "replacement": replacement, "clean_output": str(scratch / "clean"),
                "chaos_output": str(scratch / "chaos"),
                **{name: {k: summary[k] for k in keys} for name, summary in
                   (("clean", clean), ("chaos", chaos), ("again", again))}}
    finally:
        ray.shutdown()
        cluster.shutdown()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("mode", choices=("train", "annotate"))
    parser.add_argument("--temp-dir", required=True, help="Ray's temp dir (short path)")
    parser.add_argument("--scratch", required=True, help="a folder for markers")
    parser.add_argument("--report", required=True, help="where to write the JSON report")
    parser.add_argument("--data-root")
    parser.add_argument("--backbone")
    parser.add_argument("--output")
    parser.add_argument("--model", help="a tagger bundle (annotate)")
    args = parser.parse_args(argv)
    report = {"train": run_train, "annotate": run_annotate}[args.mode](args)
    Path(args.report).write_text(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
