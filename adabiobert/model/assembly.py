"""Put the pieces together: encoder + tokenizer + labels + word vectors -> model, optimizer, data."""

from __future__ import annotations

from collections.abc import Sequence

import torch

from adabiobert.labels import LabelSet
from adabiobert.model.backbone import load_encoder
from adabiobert.model.batching import Example
from adabiobert.model.encoding import ExampleEncoder, example_encoder_for
from adabiobert.model.engine import linear_warmup_schedule, steps_per_epoch
from adabiobert.model.network import AdaBioBert, WordVectorFeatures, parameter_groups
from adabiobert.model.word_vectors import WordVectors
from adabiobert.training_config import ModelConfig, TrainConfig


def build_model(
    config: TrainConfig,
    labels: LabelSet,
    word_vectors: WordVectors | None,
    encoder: torch.nn.Module | None = None,
) -> AdaBioBert:
    """A fresh tagger over ``encoder`` (default: the configured pretrained backbone)."""
    encoder = encoder if encoder is not None else load_encoder(config.model.backbone)
    features = None
    if word_vectors is not None and config.model.use_word_vectors:
        features = WordVectorFeatures(word_vectors.table())
    return AdaBioBert(encoder, labels, config.loss, features, dropout=config.model.dropout)


def build_example_encoder(config: ModelConfig, model: AdaBioBert, tokenizer, word_vectors: WordVectors | None) -> ExampleEncoder:
    """The encoder of sentences into examples that matches ``model`` and ``tokenizer``.

    Windows are as long as both the config and the encoder allow (``example_encoder_for``).
    """
    vectors = word_vectors if model.word_vectors is not None else None
    return example_encoder_for(config, model.encoder.config, tokenizer, model.labels, vectors)


def build_optimizer(model: AdaBioBert, config: TrainConfig, train: Sequence[Example], world_size: int):
    """AdamW with per-part learning rates and a linear warm-up/decay schedule over the run."""
    groups = parameter_groups(
        model, config.optim.encoder_lr, config.optim.head_lr, config.optim.alpha_lr, config.optim.weight_decay
    )
    optimizer = torch.optim.AdamW(groups, lr=config.optim.head_lr, weight_decay=config.optim.weight_decay)
    total_steps = steps_per_epoch(len(train), config, world_size) * config.epochs
    return optimizer, linear_warmup_schedule(optimizer, total_steps, config.optim.warmup_ratio)
