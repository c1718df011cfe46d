"""Training and evaluation loops, free of Ray.

``fit`` is a generator that yields one ``EpochReport`` per epoch and lets the caller decide
what to save and where to report (the Ray Train worker loop, a notebook, a test). Under
``torch.distributed`` each process trains on its shard of the data and the reports are
averaged over processes, so every rank yields the same numbers.
"""

from __future__ import annotations

import contextlib
import math
import random
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field

import torch
from torch import nn

from adabiobert.labels import LabelSet
from adabiobert.metrics import evaluation_summary
from adabiobert.model import adaptive_alpha
from adabiobert.model.batching import Example, budget_batches, collate, move_to
from adabiobert.model.network import predictions_to_lists
from adabiobert.spans import OUTSIDE, split_tag
from adabiobert.training_config import TrainConfig

_BUCKET_BATCHES = 50  # micro-batches sorted by length together: little padding, still shuffled


@dataclass(frozen=True)
class EpochReport:
    """What one epoch did. Losses are means over the epoch's micro-batches (and processes)."""

    epoch: int
    steps: int
    train_loss: float
    train_ce: float
    train_crf: float
    alpha: float
    learning_rate: float
    dev: dict = field(default_factory=dict)
    train_seconds: float = 0.0
    eval_seconds: float = 0.0
    alpha_steps: list = field(default_factory=list)
    """Where alpha changes within the epoch: one entry per change, ``{"step", "alpha"}`` plus the
    step's ``ce``/``crf`` (``learned``) or the probe's ``cos_ce``/``cos_crf`` (``adaptive``)."""
    probe_seconds: float = 0.0
    """Time spent in the adaptive rule's held-out probes (included in ``train_seconds``)."""

    def to_dict(self) -> dict:
        return dict(self.__dict__)


@dataclass(frozen=True)
class StepProgress:
    """Where training stands, for a progress line: passed to ``fit``'s ``progress`` callback."""

    epoch: int
    epochs: int
    """The last epoch of the run (``config.epochs``)."""
    first_epoch: int
    """The first epoch this call of ``fit`` trains (later than 1 when resuming)."""
    step: int
    """Optimizer steps done in this epoch."""
    steps: int
    """Optimizer steps in this epoch (the same in every epoch)."""
    loss: float
    """Mean training loss over this epoch's micro-batches so far, on this process."""
    alpha: float

    @property
    def run_step(self) -> int:
        """Optimizer steps done by this call of ``fit``."""
        return (self.epoch - self.first_epoch) * self.steps + self.step

    @property
    def run_steps(self) -> int:
        """Optimizer steps this call of ``fit`` will take in all."""
        return (self.epochs - self.first_epoch + 1) * self.steps


def unwrap(model: nn.Module) -> nn.Module:
    """The model inside a DistributedDataParallel wrapper (or the model itself)."""
    return getattr(model, "module", model)


def autocast_for(device: torch.device, precision: str):
    """bf16 autocast on CUDA for ``auto``/``bf16``; on CPU only when ``bf16`` is asked for."""
    if precision == "bf16" or (precision == "auto" and device.type == "cuda"):
        return torch.autocast(device_type=device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


def linear_warmup_schedule(optimizer: torch.optim.Optimizer, total_steps: int, warmup_ratio: float):
    """Linear warm-up to each group's lr over ``warmup_ratio`` of the steps, then linear decay to 0."""
    warmup = max(1, int(total_steps * warmup_ratio)) if warmup_ratio > 0 else 0

    def factor(step: int) -> float:
        if warmup and step < warmup:
            return (step + 1) / warmup
        return max(0.0, (total_steps - step) / max(1, total_steps - warmup))

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


def steps_per_epoch(num_examples: int, config: TrainConfig, world_size: int) -> int:
    """Optimizer steps per epoch on every process."""
    per_process = num_examples // world_size
    micro = micro_batch_size(config, world_size)
    return max(1, math.ceil(math.ceil(per_process / micro) / config.grad_accumulation))


def micro_batch_size(config: TrainConfig, world_size: int) -> int:
    return max(1, config.batch_size // (world_size * config.grad_accumulation))


def epoch_micro_batches(examples: Sequence[Example], config: TrainConfig, epoch: int, rank: int, world_size: int) -> list[list[int]]:
    """This process's micro-batches for one epoch: a seeded shuffle, cut to equal shares per
    process, bucketed by length within groups of micro-batches, in shuffled order."""
    rng = random.Random(config.seed * 1_000_003 + epoch)
    order = list(range(len(examples)))
    rng.shuffle(order)
    usable = len(order) - len(order) % world_size
    mine = order[rank:usable:world_size]
    micro = micro_batch_size(config, world_size)
    batches = []
    bucket = micro * _BUCKET_BATCHES
    for start in range(0, len(mine), bucket):
        group = sorted(mine[start : start + bucket], key=lambda i: examples[i].num_subwords)
        batches.extend(group[i : i + micro] for i in range(0, len(group), micro))
    rng.shuffle(batches)
    return batches


def fit(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    scheduler,
    train: Sequence[Example],
    dev: Sequence[Example],
    labels: LabelSet,
    config: TrainConfig,
    device: torch.device,
    pad_subword_id: int,
    start_epoch: int = 0,
    progress: Callable[[StepProgress], None] | None = None,
    progress_every: int = 20,
) -> Iterator[EpochReport]:
    """Train from ``start_epoch`` (epochs already done) to ``config.epochs``, yielding after each.

    Args:
        model: the ``AdaBioBert`` model, possibly wrapped in DistributedDataParallel.
        train, dev: encoded examples; dev examples carry gold tags.
        pad_subword_id: the tokenizer's padding id.
        progress: called every ``progress_every`` optimizer steps and after an epoch's last step,
            on every process (the caller decides which one reports).
    """
    rank, world_size = _rank_and_world()
    inner = unwrap(model)
    for epoch in range(start_epoch + 1, config.epochs + 1):
        started = time.perf_counter()
        model.train()
        sums = torch.zeros(3, dtype=torch.float64)
        batches = epoch_micro_batches(train, config, epoch, rank, world_size)
        steps, alpha_steps, probe_seconds = 0, [], 0.0
        epoch_steps = math.ceil(len(batches) / config.grad_accumulation)
        optimizer.zero_grad(set_to_none=True)
        for index, batch_indices in enumerate(batches):
            batch = move_to(collate([train[i] for i in batch_indices], pad_subword_id), device)
            last_in_step = (index + 1) % config.grad_accumulation == 0 or index + 1 == len(batches)
            sync = contextlib.nullcontext() if last_in_step or not hasattr(model, "no_sync") else model.no_sync()
            with sync:
                with autocast_for(device, config.precision):
                    parts = model(batch)
                (parts.total / config.grad_accumulation).backward()
            sums += torch.tensor([parts.total.item(), parts.ce.item(), parts.crf.item()], dtype=torch.float64)
            if last_in_step:
                global_step = scheduler.last_epoch + 1  # optimizer steps over the run, this one included
                if inner.ats.is_adaptive and dev and global_step % config.loss.adaptive_every == 0:
                    probe_started = time.perf_counter()
                    alpha_steps.append(_adaptive_update(inner, batch, dev, config, device, pad_subword_id, global_step, rank))
                    probe_seconds += time.perf_counter() - probe_started
                if config.optim.max_grad_norm > 0:
                    torch.nn.utils.clip_grad_norm_(model.parameters(), config.optim.max_grad_norm)
                optimizer.step()
                scheduler.step()
                optimizer.zero_grad(set_to_none=True)
                steps += 1
                if inner.ats.trains_theta_by_step:
                    alpha = float(inner.ats.alpha().detach())
                    alpha_steps.append({"step": global_step, "alpha": alpha, "ce": parts.ce.item(), "crf": parts.crf.item()})
                if progress is not None and (steps % progress_every == 0 or steps == epoch_steps):
                    progress(StepProgress(epoch, config.epochs, start_epoch + 1, steps, epoch_steps,
                                          float(sums[0]) / (index + 1), float(inner.ats.alpha().detach())))
        means = _all_mean(sums / max(1, len(batches)))
        inner.ats.epoch_update(float(means[1]), float(means[2]), lr=config.optim.alpha_lr)
        train_seconds = time.perf_counter() - started
        started = time.perf_counter()
        dev_summary = evaluate(inner, dev, labels, config, device, pad_subword_id) if dev else {}
        yield EpochReport(
            epoch=epoch,
            steps=steps,
            train_loss=float(means[0]),
            train_ce=float(means[1]),
            train_crf=float(means[2]),
            alpha=float(inner.ats.alpha().detach()),
            learning_rate=float(scheduler.get_last_lr()[0]),
            dev=dev_summary,
            train_seconds=train_seconds,
            eval_seconds=time.perf_counter() - started,
            alpha_steps=alpha_steps,
            probe_seconds=probe_seconds,
        )


def dev_probe_batch(dev: Sequence[Example], size: int, seed: int, step: int, rank: int) -> list[int]:
    """The dev sentences of one adaptive probe: a seeded sample, different per step and process."""
    rng = random.Random((seed * 1_000_003 + step) * 7_919 + rank)
    return rng.sample(range(len(dev)), min(size, len(dev)))


def _adaptive_update(inner, batch, dev, config: TrainConfig, device, pad_subword_id: int, step: int, rank: int) -> dict:
    """Probe the held-out signal on this step's (last micro-)batch, average it over processes, move theta."""
    dev_indices = dev_probe_batch(dev, config.loss.adaptive_dev_batch, config.seed, step, rank)
    dev_batch = move_to(collate([dev[i] for i in dev_indices], pad_subword_id), device)
    measured = adaptive_alpha.probe(inner, batch, dev_batch, autocast=lambda: autocast_for(device, config.precision))
    cos_ce, cos_crf = (float(v) for v in _all_mean(torch.tensor([measured.cos_ce, measured.cos_crf], dtype=torch.float64)))
    inner.ats.heldout_update(cos_ce - cos_crf)
    return {"step": step, "alpha": float(inner.ats.alpha()), "cos_ce": cos_ce, "cos_crf": cos_crf}


def predict(
    model: nn.Module,
    examples: Sequence[Example],
    config: TrainConfig,
    device: torch.device,
    pad_subword_id: int,
    with_confidence: bool = False,
):
    """Tag ids (and optionally confidences) per example, in the order given.

    Batches are formed from length-sorted examples within ``config.eval_subword_budget``. The loop
    runs one batch ahead: batch k+1 is collated (and on CUDA copied from pinned memory) while
    batch k's device work is queued, and batch k's results come to the host only after batch k+1
    has been launched. On CPU this only reorders the work; the results are the same.
    """
    model = unwrap(model)
    model.eval()
    paths: list = [None] * len(examples)
    confidences: list = [None] * len(examples)

    def launch(indices: list[int]) -> dict[str, torch.Tensor]:
        batch = collate([examples[i] for i in indices], pad_subword_id)
        if device.type == "cuda":
            batch = {k: v.pin_memory() for k, v in batch.items()}  # so the copy below is asynchronous
        batch = move_to(batch, device)
        with autocast_for(device, config.precision):
            return model.predict_on_device(batch, with_confidence=with_confidence)

    def finish(indices: list[int], predicted: dict[str, torch.Tensor]) -> None:
        result = predictions_to_lists(predicted)  # the batch's one host sync
        batch_paths, batch_conf = result if with_confidence else (result, [None] * len(indices))
        for i, path, conf in zip(indices, batch_paths, batch_conf):
            paths[i], confidences[i] = path, conf

    pending = None
    for indices in budget_batches(examples, config.eval_subword_budget):
        launched = (indices, launch(indices))
        if pending is not None:
            finish(*pending)
        pending = launched
    if pending is not None:
        finish(*pending)
    return (paths, confidences) if with_confidence else paths


def evaluate(
    model: nn.Module,
    examples: Sequence[Example],
    labels: LabelSet,
    config: TrainConfig,
    device: torch.device,
    pad_subword_id: int,
    groups: Sequence[str] | None = None,
) -> dict:
    """Entity-level strict scores and the paper's token-level scores on tagged examples.

    ``groups`` names each example's group (its corpus, in a mix): the summary then also holds
    ``by_group``, each group's own summary, from the same predictions.

    An example with ``annotated_types`` (a sentence of a mix) is scored on those types only: its
    predictions of other types become ``O``, since its corpus cannot say whether they are right.
    Under torch.distributed every process tags its share and the predictions are gathered, so
    all processes return the same summary.
    """
    rank, world_size = _rank_and_world()
    mine = list(range(rank, len(examples), world_size))
    paths = predict(model, [examples[i] for i in mine], config, device, pad_subword_id)
    predicted: list = [None] * len(examples)
    for part in _all_gather(list(zip(mine, paths))):
        for index, path in part:
            predicted[index] = path
    gold = [[labels.tags[t] for t in e.tag_ids] for e in examples]
    tagged = [only_types([labels.tags[t] for t in path], e.annotated_types) for path, e in zip(predicted, examples)]
    summary = evaluation_summary(gold, tagged)
    if groups is not None:
        assert len(groups) == len(examples), (len(groups), len(examples))
        summary["by_group"] = {
            name: evaluation_summary([g for g, k in zip(gold, groups) if k == name],
                                     [t for t, k in zip(tagged, groups) if k == name])
            for name in dict.fromkeys(groups)
        }
    return summary


def only_types(tags: list[str], types: frozenset[str] | None) -> list[str]:
    """``tags`` with every tag of a type outside ``types`` made ``O`` (None: unchanged). Whole
    spans go, so valid IOB2 stays valid."""
    if types is None:
        return tags
    return [tag if tag == OUTSIDE or split_tag(tag)[1] in types else OUTSIDE for tag in tags]


def _rank_and_world() -> tuple[int, int]:
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return torch.distributed.get_rank(), torch.distributed.get_world_size()
    return 0, 1


def _all_mean(values: torch.Tensor) -> torch.Tensor:
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        # NCCL reduces CUDA tensors only; gloo takes CPU tensors.
        on_gpu = torch.distributed.get_backend() == "nccl"
        reduced = values.to(torch.device("cuda", torch.cuda.current_device())) if on_gpu else values.clone()
        torch.distributed.all_reduce(reduced)
        return reduced.cpu() / torch.distributed.get_world_size()
    return values


def _all_gather(obj) -> list:
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        gathered: list = [None] * torch.distributed.get_world_size()
        torch.distributed.all_gather_object(gathered, obj)
        return gathered
    return [obj]
