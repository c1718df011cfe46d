"""Typed, frozen configuration for the model, the loss and training (the other jobs' configs are
beside it, in ``adabiobert.job_configs``).

Every artifact this project writes carries the resolved configuration (``to_dict``), and every
config can be rebuilt from that dict (``from_dict``), which rejects unknown keys so that a typo
in a preset fails loudly instead of being ignored.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, TypeVar

from adabiobert.errors import ConfigError

T = TypeVar("T")

LOSS_MODES = ("adaptive", "learned", "paper", "fixed", "ce", "crf")
ALPHA_MODES = ("adaptive", "learned", "paper")  # modes whose alpha changes during training
ALPHA_UPDATES = ("step", "epoch")
PRECISIONS = ("auto", "bf16", "fp32")
"""Training precisions (``TrainConfig.precision``)."""

TAG_PRECISIONS = ("auto", "fp32", "bf16", "int8")
"""Tagging precisions (``adabiobert.model.precision``; ``AnnotationJobConfig.precision``)."""
DEFAULT_TAG_PRECISION = "fp32"
"""The default until ``auto``'s choices are measured (issue 13: benchmarks/throughput.py and
benchmarks/precision_accuracy.py, not yet run): ``auto`` picks bf16 on CPUs with avx512_bf16, and a
tagger's decisions near a boundary change with it. Ask for ``auto`` (or int8/bf16) explicitly."""


@dataclass(frozen=True)
class ModelConfig:
    """The tagger's architecture."""

    backbone: str = "minilm"
    """Encoder checkpoint: a local folder, a Hugging Face hub id (e.g.
    ``dmis-lab/biobert-base-cased-v1.2``, the production default) or ``minilm`` for the packaged
    offline all-MiniLM-L6-v2 folder."""

    dropout: float = 0.1
    """Dropout on the concatenated [encoder; word vector] features, before the linear layer."""

    use_word_vectors: bool = True
    """Concatenate a frozen Word2Vec vector to each word's encoder output (ignored when no
    vectors are given)."""

    max_subwords: int = 512
    """Subwords per encoder window, special tokens included; capped by the encoder's limit."""

    window_overlap: int = 128
    """Subwords shared by consecutive windows of a sentence longer than one window."""

    def __post_init__(self) -> None:
        if not 0.0 <= self.dropout < 1.0:
            raise ConfigError(f"dropout must be in [0, 1), got {self.dropout}")
        if self.max_subwords < 8:
            raise ConfigError(f"max_subwords must be at least 8, got {self.max_subwords}")
        if not 0 <= self.window_overlap < self.max_subwords // 2:
            raise ConfigError(
                f"window_overlap must be in [0, max_subwords/2), got {self.window_overlap} "
                f"with max_subwords={self.max_subwords}"
            )


@dataclass(frozen=True)
class LossConfig:
    """The Adaptive Token-Sequence loss ``L = a*L_CE + (1-a)*L_CRF`` and how ``a`` moves."""

    mode: str = "crf"
    """The default is ``crf``: tied with ``paper`` and ``adaptive`` across three corpora, the steadiest
    across seeds (docs/benchmarks.md, issue 14).
    ``adaptive``: a = sigmoid(theta), theta moved by the held-out gradient-alignment rule
    (``adabiobert.model.adaptive_alpha``); ``learned``: theta trained on the training loss itself;
    ``paper``: the paper's reductions (per-sentence CRF NLL beside per-word CE) with one step on
    theta per epoch; ``fixed`` (a = ``alpha``), ``ce`` (a = 1) or ``crf`` (a = 0)."""

    alpha: float = 0.5
    """Initial a for ``adaptive``, ``learned`` and ``paper``; the constant for ``fixed``."""

    alpha_update: str = "step"
    """For ``learned``: ``step``, theta is updated by the optimizer with every step; ``epoch``,
    one gradient step on theta per epoch from the epoch's mean losses (``paper`` always does)."""

    adaptive_every: int = 10
    """``adaptive``: optimizer steps between two held-out probes (each costs about one extra
    training step's forward and backward work on a train and a dev batch)."""

    adaptive_step: float = 0.5
    """``adaptive``: change of theta = logit(a) per probe for a cosine difference of 1."""

    adaptive_dev_batch: int = 32
    """``adaptive``: dev sentences per probe, drawn afresh (seeded) each time."""

    def __post_init__(self) -> None:
        if self.mode not in LOSS_MODES:
            raise ConfigError(f"loss mode must be one of {LOSS_MODES}, got {self.mode!r}")
        if self.alpha_update not in ALPHA_UPDATES:
            raise ConfigError(f"alpha_update must be one of {ALPHA_UPDATES}, got {self.alpha_update!r}")
        if not 0.0 <= self.alpha <= 1.0:
            raise ConfigError(f"alpha must be in [0, 1], got {self.alpha}")
        if self.mode in ALPHA_MODES and not 0.0 < self.alpha < 1.0:
            raise ConfigError(f"a {self.mode} alpha must start strictly inside (0, 1)")
        if self.adaptive_every < 1 or self.adaptive_dev_batch < 1 or self.adaptive_step <= 0:
            raise ConfigError("adaptive_every and adaptive_dev_batch must be at least 1, adaptive_step positive")

    @classmethod
    def parse(cls, text: str, alpha_update: str = "step", **settings: Any) -> LossConfig:
        """Read the command-line form: ``adaptive[=a0]``, ``learned[=a0]``, ``paper[=a0]``,
        ``fixed=<a>``, ``ce``, ``crf``; ``settings`` are further LossConfig fields."""
        mode, _, value = text.partition("=")
        if mode in ("ce", "crf"):
            if value:
                raise ConfigError(f"loss {mode!r} takes no value, got {text!r}")
            return cls(mode=mode, alpha=1.0 if mode == "ce" else 0.0, alpha_update=alpha_update, **settings)
        if mode == "fixed" and not value:
            raise ConfigError("fixed loss needs a value, e.g. fixed=0.5")
        try:
            alpha = float(value) if value else 0.5
        except ValueError:
            raise ConfigError(f"alpha in {text!r} is not a number") from None
        return cls(mode=mode, alpha=alpha, alpha_update=alpha_update, **settings)


@dataclass(frozen=True)
class OptimConfig:
    """AdamW with one parameter group per part of the model."""

    encoder_lr: float = 1e-4
    """Learning rate of the encoder (the paper's 1e-4)."""

    head_lr: float = 1e-3
    """Learning rate of the linear layer, the CRF and the unknown-word vector."""

    alpha_lr: float = 1e-3
    """Learning rate of theta, where a = sigmoid(theta)."""

    weight_decay: float = 0.01
    """AdamW decoupled weight decay; never applied to biases, LayerNorm, the CRF or theta."""

    warmup_ratio: float = 0.1
    """Fraction of optimizer steps with a linear warm-up, followed by linear decay to zero."""

    max_grad_norm: float = 1.0
    """Gradient clipping norm (0 disables it)."""

    def __post_init__(self) -> None:
        for name in ("encoder_lr", "head_lr", "alpha_lr"):
            if getattr(self, name) <= 0:
                raise ConfigError(f"{name} must be positive, got {getattr(self, name)}")
        if not 0.0 <= self.warmup_ratio < 1.0:
            raise ConfigError(f"warmup_ratio must be in [0, 1), got {self.warmup_ratio}")


@dataclass(frozen=True)
class TrainConfig:
    """One fine-tuning run: model, loss, optimizer and schedule."""

    model: ModelConfig = field(default_factory=ModelConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)

    epochs: int = 20
    """Passes over the training split (the paper uses 20)."""

    batch_size: int = 32
    """Sentences per optimizer step, summed over workers and accumulation steps."""

    grad_accumulation: int = 1
    """Micro-batches per optimizer step on each worker."""

    eval_subword_budget: int = 8192
    """Subwords (padding included) per batch when evaluating or tagging."""

    precision: str = "auto"
    """``auto`` (bf16 autocast on CUDA, fp32 on CPU), ``bf16`` or ``fp32``."""

    seed: int = 13

    def __post_init__(self) -> None:
        if self.epochs < 1:
            raise ConfigError(f"epochs must be at least 1, got {self.epochs}")
        if self.batch_size < 1 or self.grad_accumulation < 1:
            raise ConfigError("batch_size and grad_accumulation must be at least 1")
        if self.precision not in PRECISIONS:
            raise ConfigError(f"precision must be one of {PRECISIONS}, got {self.precision!r}")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainConfig:
        return from_dict(cls, data)


def from_dict(cls: type[T], data: dict[str, Any]) -> T:
    """Rebuild a (nested) config dataclass from ``asdict`` output; unknown keys are an error."""
    known = {f.name: f for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    unknown = sorted(set(data) - set(known))
    if unknown:
        raise ConfigError(f"unknown {cls.__name__} keys: {unknown}; known: {sorted(known)}")
    values = {}
    for name, value in data.items():
        field_type = _NESTED.get((cls.__name__, name))
        values[name] = from_dict(field_type, value) if field_type and isinstance(value, dict) else value
    return cls(**values)




@dataclass(frozen=True)
class TrainJobConfig:
    """A training job: which data, where to write, how many workers, and the run itself."""

    dataset: str = "NCBI-disease"
    """A dataset name from the registry (``adabiobert.corpora.iob.DATASETS``), ``pubtator:<corpus>``,
    a named mix (``union``), or several of these joined by commas (``adabiobert.corpora.mix``)."""

    data_root: str | None = None
    """Folder holding the dataset folders; default: the ADABIOBERT_DATA_ROOT variable."""

    pubtator_root: str | None = None
    """Folder holding the PubTator files; default: the ADABIOBERT_PUBTATOR_ROOT variable, else
    ``pubtator/`` beside the data root."""

    partial_annotation: bool | None = None
    """Train with the partial-annotation loss: a word a corpus leaves ``O`` may be a mention of a
    type that corpus does not annotate. False: the naive union (every ``O`` is ``O``). None: on
    for several corpora, off for one."""

    output: str = "runs"
    """Storage path (local folder or ``s3://bucket/prefix``); the run lives in ``<output>/<name>``."""

    name: str = "adabiobert"
    """Run name. Re-running with the same name and output resumes from the latest checkpoint."""

    word_vectors: str | None = None
    """gensim KeyedVectors file (``.kv``, ``.bin``, ``.txt``), local or ``s3://``; ``None`` trains without them."""

    max_train_sentences: int | None = None
    """Use only the first N training sentences (a quick run); ``None`` uses all."""

    max_eval_sentences: int | None = None
    """Use only the first N dev and N test sentences; ``None`` uses all."""

    num_workers: int = 1
    """Ray Train workers (one per GPU on a GPU cluster)."""

    use_gpu: bool = False
    cpu_threads_per_worker: int | None = None
    """torch threads per CPU worker; ``None``: the machine's cores divided among the workers."""

    max_failures: int = 2
    """Worker-group restarts from the latest checkpoint before the run fails."""

    train: TrainConfig = field(default_factory=TrainConfig)

    def __post_init__(self) -> None:
        if self.num_workers < 1:
            raise ConfigError(f"num_workers must be at least 1, got {self.num_workers}")
        if not self.name or "/" in self.name:
            raise ConfigError(f"run name must be non-empty and without '/', got {self.name!r}")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainJobConfig:
        return from_dict(cls, data)


_NESTED = {
    ("TrainConfig", "model"): ModelConfig,
    ("TrainConfig", "loss"): LossConfig,
    ("TrainConfig", "optim"): OptimConfig,
    ("TrainJobConfig", "train"): TrainConfig,
}
