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

from adabiobert.labels import LabelSet
from adabiobert.model.crf import ConstrainedCRF
from adabiobert.model.loss import ATSLoss, LossParts, TermLosses
from adabiobert.model.word_vectors import UNKNOWN_ID
from adabiobert.training_config import LossConfig


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
        """The ATS loss of a batch with ``tags``, marginalised over ``allowed_tags`` where the batch
        has them (a partially annotated union, ``adabiobert.model.partial_annotation``)."""
        return self.ats(self.emissions(batch), batch["tags"], batch["word_mask"], self.crf, batch.get("allowed_tags"))

    def term_losses(self, batch: dict[str, torch.Tensor]) -> TermLosses:
        """L_CE and L_CRF of a batch with ``tags`` (and ``allowed_tags`` if any), unmixed and with their graphs."""
        return self.ats.terms(
            self.emissions(batch), batch["tags"], batch["word_mask"], self.crf, batch.get("allowed_tags")
        )

    @torch.no_grad()
    def predict(self, batch: dict[str, torch.Tensor], with_confidence: bool = False):
        """Viterbi tag ids per sentence, and optionally each word's marginal probability of its tag.

        ``predict_on_device`` followed by ``predictions_to_lists``; callers that overlap batches
        call the two halves themselves.

        Returns:
            ``paths`` as a list of tag-id lists (one per sentence, real words only), and with
            ``with_confidence`` also a matching list of probability lists.
        """
        return predictions_to_lists(self.predict_on_device(batch, with_confidence))

    @torch.no_grad()
    def predict_on_device(self, batch: dict[str, torch.Tensor], with_confidence: bool = False) -> dict[str, torch.Tensor]:
        """The device half of ``predict``: tensors only, no host sync, so the next batch can be queued.

        Returns:
            ``paths`` (batch, words) tag ids, ``lengths`` (batch,) real words per sentence, and with
            ``with_confidence`` also ``confidences`` (batch, words), each word's marginal of its tag.
        """
        emissions = self.emissions(batch)
        mask = batch["word_mask"]
        out = {"paths": self.crf.viterbi(emissions, mask), "lengths": mask.sum(dim=1)}  # (batch, words), (batch,)
        if with_confidence:
            marginals = self.crf.marginals(emissions, mask)  # (batch, words, tags)
            out["confidences"] = marginals.gather(2, out["paths"].unsqueeze(-1)).squeeze(-1)  # (batch, words)
        return out


def predictions_to_lists(predicted: dict[str, torch.Tensor]):
    """The host half of ``AdaBioBert.predict``: one copy to the CPU per batch, then per-sentence lists.

    Returns:
        ``paths`` as tag-id lists trimmed to each sentence's words, and if ``predicted`` holds
        ``confidences`` also a matching list of probability lists.
    """
    paths = predicted["paths"]  # (batch, words)
    words = paths.shape[1]
    parts = [predicted["lengths"].unsqueeze(1), paths] + ([predicted["confidences"]] if "confidences" in predicted else [])
    # float64 holds tag ids, lengths and float32 confidences exactly: one transfer, one sync.
    host = torch.cat([part.double() for part in parts], dim=1).cpu()  # (batch, 1 + words [+ words])
    lengths = host[:, 0].long().tolist()
    tag_lists = [row[:n] for row, n in zip(host[:, 1 : 1 + words].long().tolist(), lengths)]
    if "confidences" not in predicted:
        return tag_lists
    return tag_lists, [row[:n] for row, n in zip(host[:, 1 + words :].tolist(), lengths)]


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
