"""The AdaBioBERT tagger: encoder -> first subword per word [+ Word2Vec] -> dropout -> linear -> CRF.

The encoder is injected (any BERT-family ``PreTrainedModel`` without a task head), so tests
build a tiny random BERT and production code a pretrained one. The loss lives inside the
module: data-parallel training then wraps one module whose forward returns the loss, and the
ATS weight is all-reduced like any other parameter.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from adabiobert.config import LossConfig
from adabiobert.crf import ConstrainedCRF
from adabiobert.labels import LabelSet
from adabiobert.loss import ATSLoss, LossParts, TermLosses
from adabiobert.word_vectors import UNKNOWN_ID


class WordVectorFeatures(nn.Module):
    """A frozen embedding table (row 0 padding, row 1 unknown) with a learned unknown vector."""

    def __init__(self, table: np.ndarray | torch.Tensor) -> None:
        super().__init__()
        table = torch.as_tensor(np.asarray(table), dtype=torch.float32)
        self.register_buffer("table", table)  # (table_size, dim), not trained
        self.unknown = nn.Parameter(torch.zeros(table.shape[1]))

    @property
    def dim(self) -> int:
        return int(self.table.shape[1])

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        vectors = self.table[ids]  # (batch, words, dim)
        return torch.where((ids == UNKNOWN_ID).unsqueeze(-1), self.unknown.to(vectors.dtype), vectors)


class AdaBioBert(nn.Module):
    """Args:
        encoder: a transformers encoder returning ``last_hidden_state``.
        labels: the tag set; its IOB2 constraints shape the CRF.
        loss: ATS loss settings.
        word_vectors: the Word2Vec table, or ``None`` to use the encoder alone.
        dropout: dropout probability before the linear layer.
    """

    def __init__(
        self,
        encoder: nn.Module,
        labels: LabelSet,
        loss: LossConfig,
        word_vectors: WordVectorFeatures | None = None,
        dropout: float = 0.1,
    ) -> None:
        super().__init__()
        self.encoder = encoder
        self.labels = labels
        self.word_vectors = word_vectors
        feature_dim = encoder.config.hidden_size + (word_vectors.dim if word_vectors is not None else 0)
        self.dropout = nn.Dropout(dropout)
        self.classifier = nn.Linear(feature_dim, len(labels))
        self.crf = ConstrainedCRF(len(labels), *labels.transition_constraints())
        self.ats = ATSLoss(loss)

    def emissions(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """Per-word tag scores: (batch, words, tags)."""
        hidden = self.encoder(
            input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]
        ).last_hidden_state  # (windows, subwords, hidden)
        flat = hidden.reshape(-1, hidden.shape[-1])  # (windows * subwords, hidden)
        features = flat[batch["word_index"]]  # (batch, words, hidden): first subwords, windows stitched
        if self.word_vectors is not None:
            vectors = self.word_vectors(batch["word_vector_ids"]).to(features.dtype)  # (batch, words, dim)
            features = torch.cat([features, vectors], dim=-1)  # (batch, words, hidden + dim)
        return self.classifier(self.dropout(features))  # (batch, words, tags)

    def forward(self, batch: dict[str, torch.Tensor]) -> LossParts:
        """The ATS loss of a batch with ``tags``."""
        return self.ats(self.emissions(batch), batch["tags"], batch["word_mask"], self.crf)

    def term_losses(self, batch: dict[str, torch.Tensor]) -> TermLosses:
        """L_CE and L_CRF of a batch with ``tags``, unmixed and with their graphs."""
        return self.ats.terms(self.emissions(batch), batch["tags"], batch["word_mask"], self.crf)

    @torch.no_grad()
    def predict(self, batch: dict[str, torch.Tensor], with_confidence: bool = False):
        """Viterbi tag ids per sentence, and optionally each word's marginal probability of its tag.

        Returns:
            ``paths`` as a list of tag-id lists (one per sentence, real words only), and with
            ``with_confidence`` also a matching list of probability lists.
        """
        emissions = self.emissions(batch)
        mask = batch["word_mask"]
        paths = self.crf.viterbi(emissions, mask)  # (batch, words)
        lengths = mask.sum(dim=1).tolist()
        tag_lists = [row[:n] for row, n in zip(paths.tolist(), lengths)]
        if not with_confidence:
            return tag_lists
        marginals = self.crf.marginals(emissions, mask)  # (batch, words, tags)
        chosen = marginals.gather(2, paths.unsqueeze(-1)).squeeze(-1)  # (batch, words)
        return tag_lists, [row[:n] for row, n in zip(chosen.tolist(), lengths)]


def parameter_groups(model: AdaBioBert, encoder_lr: float, head_lr: float, alpha_lr: float, weight_decay: float) -> list[dict]:
    """AdamW groups: encoder with and without decay, head with and without decay, theta alone.

    No decay on biases, LayerNorm weights, the CRF transitions or theta.
    """
    groups: dict[str, list[nn.Parameter]] = {k: [] for k in ("enc", "enc_nd", "head", "head_nd", "alpha")}
    for name, param in model.named_parameters():
        if not param.requires_grad:
            continue
        no_decay = param.ndim < 2 or "LayerNorm" in name or "layer_norm" in name
        if name.startswith("ats."):
            groups["alpha"].append(param)
        elif name.startswith("encoder."):
            groups["enc_nd" if no_decay else "enc"].append(param)
        else:
            groups["head_nd" if no_decay or name.startswith("crf.") else "head"].append(param)
    settings = {
        "enc": (encoder_lr, weight_decay),
        "enc_nd": (encoder_lr, 0.0),
        "head": (head_lr, weight_decay),
        "head_nd": (head_lr, 0.0),
        "alpha": (alpha_lr, 0.0),
    }
    return [
        {"params": params, "lr": settings[name][0], "weight_decay": settings[name][1], "name": name}
        for name, params in groups.items()
        if params
    ]
