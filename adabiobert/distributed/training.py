"""Fine-tuning on Ray Train: the per-worker loop and the driver that runs, exports and reports.

The driver reads the corpus (or every corpus of a mix, ``adabiobert.corpora.mix``) and the word
vectors once and hands them to the workers through the object store, so workers need no access to
the data root. A mix's sentences carry the types their corpus annotates; with partial annotation
on, each training example carries the tags its words may take, and the loss marginalises over
them (``adabiobert.model.partial_annotation``). Every epoch rank 0 writes a
checkpoint that is a complete bundle plus training state; Ray Train keeps the best two by dev
entity F1 and the latest. Re-running with the same ``RunConfig(name, storage_path)`` resumes
from the latest checkpoint (Ray Train V2 has no ``TorchTrainer.restore``), and worker failures
restart the group from it (``FailureConfig``).
"""

from __future__ import annotations

import json
import os
import platform
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

import ray
import ray.train
import torch
from ray.train import Checkpoint, CheckpointConfig, FailureConfig, RunConfig, ScalingConfig
from ray.train.torch import TorchTrainer

from adabiobert import storage
from adabiobert.corpora.mix import TrainingData, load_training_data
from adabiobert.distributed.session import init_ray
from adabiobert.model.assembly import build_example_encoder, build_model, build_optimizer
from adabiobert.model.backbone import load_tokenizer
from adabiobert.model.checkpoint import (
    MANIFEST,
    STATE_JSON,
    STATE_TENSORS,
    load_training_state,
    load_weights,
    save_bundle,
    save_training_state,
)
from adabiobert.model.engine import StepProgress, fit
from adabiobert.model.training_report import code_version, data_provenance, plot_training_curve, results_document
from adabiobert.model.word_vectors import WordVectors
from adabiobert.progress import Progress, format_seconds
from adabiobert.training_config import TrainConfig, TrainJobConfig

SCORE = "dev_entity_f1"

EpochHook = Callable[[int, int], None]
"""``hook(epoch, rank)``, called on every worker after it reported an epoch (and rank 0 its
checkpoint): the resume tests pass one that kills the worker. It travels to the workers, so it
must pickle."""


@dataclass(frozen=True)
class TrainingOutcome:
    """Where the run wrote its artifacts and what it measured."""

    run_dir: str
    model_dir: str
    results: dict


# ---------------------------------------------------------------------------------------------
# Worker side
# ---------------------------------------------------------------------------------------------
def train_loop_per_worker(loop_config: dict) -> None:
    """Runs on every Ray Train worker: build, resume if a checkpoint exists, train, report."""
    job = TrainJobConfig.from_dict(loop_config["job"])
    config = job.train
    data = ray.get(loop_config["data"])
    context = ray.train.get_context()
    rank, world_size = context.get_world_rank(), context.get_world_size()
    device = ray.train.torch.get_device()
    if device.type == "cpu":
        torch.set_num_threads(loop_config["cpu_threads"])
    torch.manual_seed(config.seed)

    relay = loop_config.get("progress") if rank == 0 else None
    started = time.perf_counter()
    tokenizer = load_tokenizer(config.model.backbone)
    word_vectors: WordVectors | None = data["word_vectors"]
    model = build_model(config, data["labels"], word_vectors)
    encoder = build_example_encoder(config.model, model, tokenizer, word_vectors)
    train = encoder.encode_tagged(data["train"], partial=data["partial"])
    dev = encoder.encode_tagged(data["dev"], partial=data["partial"])
    optimizer, scheduler = build_optimizer(model, config, train, world_size)

    start_epoch, history = 0, []
    checkpoint = ray.train.get_checkpoint()
    if checkpoint is not None:
        with checkpoint.as_directory() as folder:
            load_weights(folder, model)
            state = load_training_state(folder, optimizer, scheduler)
        start_epoch, history = state["epoch"], state["history"]
    model.to(device)
    _move_optimizer_state(optimizer, device)
    wrapped = ray.train.torch.prepare_model(model, move_to_device=False) if world_size > 1 else model

    _tell(relay, {"kind": "ready", "workers": world_size, "train": len(data["train"]), "dev": len(data["dev"]),
                  "seconds": time.perf_counter() - started, "resumed_after": start_epoch})
    progress = (lambda step: _tell(relay, {"kind": "step", **step.__dict__})) if relay is not None else None
    pad_id = tokenizer.pad_token_id or 0
    for report in fit(wrapped, optimizer, scheduler, train, dev, data["labels"], config, device, pad_id, start_epoch, progress):
        _tell(relay, {"kind": "epoch", "epoch": report.epoch, "epochs": config.epochs, "loss": report.train_loss,
                      "alpha": report.alpha, "dev_f1": report.dev.get("entity_f1"), "dev": len(data["dev"]),
                      "seconds": report.train_seconds + report.eval_seconds})
        history.append(report.to_dict())
        metrics = _flat_metrics(report)
        with tempfile.TemporaryDirectory() as folder:
            checkpoint = None
            if rank == 0:
                metadata = {"name": job.name, "dataset": job.dataset, "epoch": report.epoch, "dev": report.dev}
                save_bundle(folder, model, tokenizer, config.model, word_vectors, metadata)
                save_training_state(folder, optimizer, scheduler, {"epoch": report.epoch, "history": history})
                checkpoint = Checkpoint.from_directory(folder)
            ray.train.report(metrics, checkpoint=checkpoint, checkpoint_dir_name=f"epoch_{report.epoch:03d}")
        if loop_config.get("after_epoch") is not None:
            loop_config["after_epoch"](report.epoch, rank)


def _tell(relay, message: dict) -> None:
    """Send one progress message to the driver (rank 0 only: the others have no relay). Progress
    never fails a run: a relay that is gone is ignored."""
    if relay is None:
        return
    try:
        relay.put_nowait(message)
    except Exception:  # noqa: BLE001 - the queue actor died; training goes on without progress
        pass


def _flat_metrics(report) -> dict:
    dev = report.dev
    return {
        "epoch": report.epoch,
        "train_loss": report.train_loss,
        "train_ce": report.train_ce,
        "train_crf": report.train_crf,
        "alpha": report.alpha,
        SCORE: dev.get("entity_f1", 0.0),
        "dev_entity_macro_f1": dev.get("entity_macro_f1", 0.0),
        "dev_paper_token_micro_f1": dev.get("paper_token_micro_f1", 0.0),
        "train_seconds": report.train_seconds,
    }


def _move_optimizer_state(optimizer: torch.optim.Optimizer, device: torch.device) -> None:
    for state in optimizer.state.values():
        for key, value in state.items():
            if torch.is_tensor(value) and key != "step":
                state[key] = value.to(device)


# ---------------------------------------------------------------------------------------------
# Driver side
# ---------------------------------------------------------------------------------------------
def run_training(job: TrainJobConfig, log=print, after_epoch: EpochHook | None = None) -> TrainingOutcome:
    """Fine-tune, keep the best checkpoint by dev entity F1, test it, export it, write results.

    Writes into ``<job.output>/<job.name>/``: Ray Train's checkpoints, ``results.json``,
    ``training_curve.png`` and, last and atomically, ``model/`` (the best bundle), so a run that
    fails leaves no ``model/`` that looks finished.

    Args:
        job: the run.
        log: where one-line progress messages go.
        after_epoch: see :data:`EpochHook` (None: nothing is called).

    A mix (several corpora, or one PubTator corpus) also gets ``mix`` in results.json (its
    sources, label set, partial-annotation switch and per-corpus counts), ``test_by_corpus``
    (each corpus's IOB test scores) and ``offset_test`` (each PubTator test file's strict
    character-offset scores, tagged through ``Tagger.tag``).

    Raises:
        AdaBioBertError: for a dataset that is missing, unreadable or unfit to train on
            (``validate_for_training``), raised before Ray starts or anything is written.
    """
    started = time.perf_counter()
    training_data = load_training_data(
        job.dataset, job.data_root, job.pubtator_root, max_train_sentences=job.max_train_sentences,
        max_eval_sentences=job.max_eval_sentences, partial_annotation=job.partial_annotation,
    )  # what will be trained on, checked before any work
    corpus = training_data.corpus
    roots = training_data.roots
    provenance = data_provenance(roots.get("data_root") or roots["pubtator_root"], training_data.files)  # before Ray
    if "pubtator_root" in roots:
        provenance["pubtator_root"] = roots["pubtator_root"]
    resolved = replace(job, data_root=roots.get("data_root", job.data_root),
                       pubtator_root=roots.get("pubtator_root", job.pubtator_root),
                       partial_annotation=training_data.partial_annotation)
    train, dev = corpus.train, corpus.dev
    word_vectors = WordVectors.load(job.word_vectors) if job.word_vectors else None
    log(
        f"{corpus.name}: {len(train)} train / {len(dev)} dev / {len(corpus.test)} test sentences, "
        f"tags {list(corpus.labels.tags)}, word vectors: "
        + (f"{len(word_vectors.words)} x {word_vectors.dim}" if word_vectors else "off")
    )
    if _is_mix(training_data):
        _log_sources(training_data, log)
    init_ray(log)

    data = ray.put({"train": train, "dev": dev, "labels": corpus.labels, "word_vectors": word_vectors,
                    "partial": training_data.partial_annotation})
    cpu_threads = job.cpu_threads_per_worker or max(1, (os.cpu_count() or 1) // job.num_workers)
    filesystem, storage_root = storage.filesystem_for(job.output)  # Ray Train's storage, local or S3
    relay = _ProgressRelay(log)
    each = "1 GPU" if job.use_gpu else f"{cpu_threads} CPU threads"
    log(f"training: {job.num_workers} worker{'s' * (job.num_workers > 1)} ({each} each), "
        f"{job.train.epochs} epoch{'s' * (job.train.epochs > 1)}; starting the workers and loading the encoder")
    trainer = TorchTrainer(
        train_loop_per_worker,
        train_loop_config={
            "job": job.to_dict(),
            "data": data,
            "cpu_threads": cpu_threads,
            "after_epoch": after_epoch,
            "progress": relay.queue,
        },
        scaling_config=ScalingConfig(num_workers=job.num_workers, use_gpu=job.use_gpu),
        run_config=RunConfig(
            name=job.name,
            storage_path=storage_root,
            storage_filesystem=filesystem,
            failure_config=FailureConfig(max_failures=job.max_failures),
            checkpoint_config=CheckpointConfig(
                num_to_keep=2, checkpoint_score_attribute=SCORE, checkpoint_score_order="max"
            ),
        ),
    )
    try:
        result = trainer.fit()
    finally:
        relay.close()
    fit_seconds = time.perf_counter() - started
    if result.error is not None:
        raise result.error

    run_dir = storage.join(job.output, job.name)
    best = result.get_best_checkpoint(SCORE, "max")
    with tempfile.TemporaryDirectory() as scratch:
        history = _history(result.checkpoint, Path(scratch) / "latest")
        model_dir = Path(scratch) / "model"
        best.to_directory(str(model_dir))
        for name in (STATE_JSON, STATE_TENSORS):
            (model_dir / name).unlink(missing_ok=True)
        log("evaluating the best checkpoint on test")
        evaluated = ray.get(
            _evaluate_bundle.options(num_gpus=1 if job.use_gpu else 0, num_cpus=1).remote(
                _bundle_bytes(model_dir), _test_sets(training_data), cpu_threads, job.train.to_dict()
            )
        )
        test_summary = evaluated.pop("test")
        if _is_mix(training_data):
            evaluated = {"mix": training_data.summary(), **evaluated}
        results = results_document(resolved, history, test_summary, fit_seconds, time.perf_counter() - started,
                                   _versions(), data=provenance, code=code_version(), extra=evaluated)
        (Path(scratch) / "results.json").write_text(json.dumps(results, indent=2), encoding="utf-8")
        plot_training_curve(history, Path(scratch) / "training_curve.png", title=f"{job.name} ({job.dataset})")
        for name in ("results.json", "training_curve.png"):
            storage.write_bytes(storage.join(run_dir, name), (Path(scratch) / name).read_bytes())
        model_uri = storage.join(run_dir, "model")
        storage.publish_dir(model_dir, model_uri, last=MANIFEST)  # last: model/ means the run finished
    return TrainingOutcome(run_dir, model_uri, results)


class _ProgressRelay:
    """Rank 0's progress, printed once, on the driver.

    Workers' own output stays in their log files (``session.init_ray``), and Ray Train's print
    patch would show each line twice anyway (once through its logger, once through the original
    print). Rank 0 puts small dicts on a Ray queue (an actor holding no CPU); a thread here turns
    them into a :class:`~adabiobert.progress.Progress` over the run's optimizer steps.
    """

    def __init__(self, log) -> None:
        from ray.util.queue import Queue

        self.queue = Queue(actor_options={"num_cpus": 0})
        self._log = log
        self._progress: Progress | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._drain, name="training-progress", daemon=True)
        self._thread.start()

    def close(self) -> None:
        """Show what is still queued, end the bar, remove the queue."""
        from ray.util.queue import Empty

        self._stop.set()
        self._thread.join()
        try:
            while True:
                self._show(self.queue.get_nowait())
        except Empty:
            pass
        except Exception:  # noqa: BLE001 - the queue actor is gone: nothing more to show
            pass
        if self._progress is not None:
            self._progress.close()
        self.queue.shutdown()

    def _drain(self) -> None:
        from ray.util.queue import Empty

        while not self._stop.is_set():
            try:
                message = self.queue.get(timeout=1)
            except Empty:
                continue
            except Exception:  # noqa: BLE001 - the queue actor is gone
                return
            self._show(message)

    def _show(self, message: dict) -> None:
        kind = message.pop("kind")
        if kind == "ready":
            resumed = f"; resuming after epoch {message['resumed_after']}" if message["resumed_after"] else ""
            self._log(f"training: worker{'s' * (message['workers'] > 1)} ready in "
                      f"{format_seconds(message['seconds'])} ({message['train']} train and {message['dev']} dev "
                      f"sentences encoded){resumed}")
            if self._progress is not None:  # a restarted worker group (FailureConfig): a new count
                self._progress.close()
            self._progress = Progress("train", None, "step", every_s=20)  # the clock starts with the steps
        elif kind == "step":
            step = StepProgress(**message)
            if self._progress is None:
                self._progress = Progress("train", None, "step", every_s=20)
            self._progress.total = step.run_steps
            self._progress.update(step.run_step - self._progress.n,
                                  note=f"epoch {step.epoch}/{step.epochs}, loss {step.loss:.4f}, alpha {step.alpha:.3f}")
        elif kind == "epoch":
            f1 = message["dev_f1"]
            scored = f"dev entity F1 {f1:.4f} ({message['dev']} sentences)" if f1 is not None else "no dev set"
            line = (f"train: epoch {message['epoch']}/{message['epochs']} done in {format_seconds(message['seconds'])}: "
                    f"loss {message['loss']:.4f}, alpha {message['alpha']:.3f}, {scored}")
            if self._progress is not None:
                self._progress.write(line)
            else:
                self._log(line)


def _history(checkpoint: Checkpoint | None, scratch: Path) -> list[dict]:
    if checkpoint is None:
        return []
    checkpoint.to_directory(str(scratch))
    return load_training_state(scratch)["history"]


def _bundle_bytes(folder: Path) -> dict[str, bytes]:
    """A bundle as {relative path: bytes}, so the evaluation task need not share a filesystem."""
    return {str(p.relative_to(folder)): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


def _is_mix(data: TrainingData) -> bool:
    """Whether results.json gets a mix's sections: several sources, or a PubTator corpus."""
    return data.is_mix or bool(data.sources[0].test_set)


def _log_sources(data: TrainingData, log) -> None:
    switch = "on" if data.partial_annotation else "off (naive union: every O is O)"
    log(f"partial annotation {switch}; label set: {', '.join(data.labels.entity_types)}")
    for source in data.sources:
        log(f"  {source.name} (annotates {', '.join(sorted(source.annotated_types))}): {len(source.train)} train / "
            f"{len(source.dev)} dev / {len(source.test)} test sentences")


@dataclass(frozen=True)
class _TestSet:
    """One source's test data, for the evaluation task."""

    name: str
    sentences: list
    test_set: str = ""
    """The PubTator test file's stem; empty for an IOB test split (no offset scores)."""
    documents: tuple = ()
    annotated_types: frozenset[str] = frozenset()


def _test_sets(data: TrainingData) -> list[_TestSet]:
    return [_TestSet(s.name, s.test, s.test_set, s.test_documents, s.annotated_types) for s in data.sources]


@ray.remote
def _evaluate_bundle(files: dict[str, bytes], tests: list[_TestSet], cpu_threads: int, train_config: dict) -> dict:
    """Tag the test splits with a bundle and score them (a Ray task, on a GPU when asked).

    Returns:
        ``test``: the IOB scores of every test sentence pooled; with several test sets also
        ``test_by_corpus`` (each one's IOB scores); for PubTator test files ``offset_test``
        (test file stem -> strict character-offset scores, ``corpora.offset_evaluation``).
    """
    from adabiobert.corpora.offset_evaluation import evaluate_documents, scores_to_dict
    from adabiobert.model.checkpoint import load_bundle
    from adabiobert.model.engine import evaluate
    from adabiobert.model.tagger import Tagger

    torch.set_num_threads(cpu_threads)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    with tempfile.TemporaryDirectory() as scratch:
        for name, content in files.items():
            path = Path(scratch) / name
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(content)
        bundle = load_bundle(scratch, device)
    config = TrainConfig.from_dict(train_config)
    encoder = build_example_encoder(bundle.model_config, bundle.model, bundle.tokenizer, bundle.word_vectors)
    examples, groups = [], []
    for test in tests:
        encoded = encoder.encode_tagged(test.sentences)
        examples += encoded
        groups += [test.name] * len(encoded)
    started = time.perf_counter()
    summary = evaluate(bundle.model, examples, bundle.model.labels, config, device, bundle.tokenizer.pad_token_id or 0,
                       groups=groups if len(tests) > 1 else None)
    summary["tagging_seconds"] = time.perf_counter() - started
    summary["tagging_sentences_per_second"] = len(examples) / max(summary["tagging_seconds"], 1e-9)
    evaluated = {"test": summary}
    if len(tests) > 1:
        evaluated["test_by_corpus"] = summary.pop("by_group")
    raw_text = [test for test in tests if test.test_set]
    if raw_text:
        tagger = Tagger(bundle, device, subword_budget=config.eval_subword_budget)
        evaluated["offset_test"] = {
            test.test_set: scores_to_dict(evaluate_documents(tagger.tag, test.documents, test.annotated_types),
                                          len(test.documents))
            for test in raw_text
        }
    return evaluated


def _versions() -> dict:
    import transformers

    import adabiobert

    return {
        "adabiobert": adabiobert.__version__,
        "python": platform.python_version(),
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "ray": ray.__version__,
        "cuda": torch.version.cuda,
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs",
    }
