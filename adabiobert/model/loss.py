"""The Adaptive Token-Sequence (ATS) loss of AdaBioBERT: ``L = a*L_CE + (1-a)*L_CRF``.

Reductions, both per WORD so that the two terms are on one scale (every mode but ``paper``):
- ``L_CE``: cross-entropy of the emissions, mean over the real words of the batch.
- ``L_CRF``: the CRF negative log-likelihood, summed over the batch's sentences and divided by
  its number of real words (pytorch-crf's ``token_mean``). This equals the mean NLL per
  sentence divided by the mean sentence length. Mixed raw, pytorch-crf's default (a sum over
  the batch) is tens of times larger than a per-word CE, and ``a`` would be pushed to one side
  by scale alone.

``paper`` keeps the paper's reductions instead: ``L_CRF`` is the mean NLL per SENTENCE (about
the sentence length times the per-word value) beside the per-word ``L_CE``, so that its
trajectory can be shown beside ours.

``a`` is ``sigmoid(theta)`` in every mode that moves it:
- ``learned``: theta descends the training loss. Its gradient is ``(L_CE - L_CRF) * a * (1 - a)``:
  the weight moves toward whichever loss is numerically smaller, by construction of the
  paper's formula, at a pace Adam's normalised step and the schedule set (docs/training.md).
- ``paper``: one plain gradient step on theta per epoch from the epoch's mean losses.
- ``adaptive``: theta follows a held-out signal, the gradient alignment of each training term
  with the dev CRF NLL (``adabiobert.model.adaptive_alpha``), not the loss it weighs.

Partial annotation (a union of corpora that each annotate some types): given an ``allowed``
mask (``adabiobert.model.partial_annotation``), both terms marginalise over the tags a word may
take: ``L_CE`` becomes ``-log sum_{k allowed} softmax_k``, ``L_CRF`` the CRF's ``partial_nll``, in
the same reductions. With one allowed tag per word they are the ordinary terms.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from adabiobert.model.crf import ConstrainedCRF, with_padding_allowed
from adabiobert.training_config import ALPHA_MODES, LossConfig

THETA_LIMIT = 6.0
"""|theta| bound for the adaptive rule: a stays within [0.0025, 0.9975], so it can come back."""


@dataclass(frozen=True)
class LossParts:
    """The total loss and its parts; ``ce``, ``crf`` and ``alpha`` are detached."""

    total: torch.Tensor
    ce: torch.Tensor
    crf: torch.Tensor
    alpha: torch.Tensor


@dataclass(frozen=True)
class TermLosses:
    """The two ATS terms with their graphs (for the adaptive rule's per-term gradients)."""

    ce: torch.Tensor
    crf: torch.Tensor


class ATSLoss(nn.Module):
    """Holds ``theta`` (so data-parallel training all-reduces it with the model) and mixes the
    two losses.

    Both terms are always computed, so the CRF transitions take part in every step (data-
    parallel training needs every trainable parameter in the graph) and both are logged in
    every mode. theta only requires a gradient when the optimizer trains it (``learned`` with
    step updates); the other moving modes change it in place, identically on every process.
    """

    def __init__(self, config: LossConfig) -> None:
        super().__init__()
        self.config = config
        moving = config.mode in ALPHA_MODES
        alpha = config.alpha if config.mode in ALPHA_MODES + ("fixed",) else (1.0 if config.mode == "ce" else 0.0)
        self.theta = nn.Parameter(torch.tensor(math.log(alpha / (1 - alpha)) if moving else 0.0))
        self.theta.requires_grad_(self.trains_theta_by_step)
        self.register_buffer("fixed_alpha", torch.tensor(float(alpha)))

    @property
    def trains_theta_by_step(self) -> bool:
        return self.config.mode == "learned" and self.config.alpha_update == "step"

    @property
    def updates_per_epoch(self) -> bool:
        return self.config.mode == "paper" or (self.config.mode == "learned" and self.config.alpha_update == "epoch")

    @property
    def is_adaptive(self) -> bool:
        return self.config.mode == "adaptive"

    def alpha(self) -> torch.Tensor:
        if self.config.mode in ALPHA_MODES:
            return torch.sigmoid(self.theta)
        return self.fixed_alpha

    def terms(
        self,
        emissions: torch.Tensor,
        tags: torch.Tensor,
        mask: torch.Tensor,
        crf: ConstrainedCRF,
        allowed: torch.Tensor | None = None,
    ) -> TermLosses:
        """``L_CE`` and ``L_CRF`` in this mode's reductions, with their graphs.

        Args:
            emissions: (batch, words, tags).
            tags: (batch, words); not read when ``allowed`` is given.
            mask: (batch, words) bool.
            crf: the model's CRF.
            allowed: (batch, words, tags) bool, the tags each word may take under a partial
                annotation; ``None`` for fully annotated sentences.
        """
        emissions = emissions.float()
        words = mask.sum().clamp(min=1)
        if allowed is None:
            ce = F.cross_entropy(emissions[mask], tags[mask], reduction="sum") / words
            per_sentence = crf.negative_log_likelihood(emissions, tags, mask)  # (batch,)
        else:
            ce = partial_cross_entropy(emissions, allowed, mask).sum() / words
            per_sentence = crf.partial_nll(emissions, allowed, mask)  # (batch,)
        crf_nll = per_sentence.mean() if self.config.mode == "paper" else per_sentence.sum() / words
        return TermLosses(ce, crf_nll)

    def forward(
        self,
        emissions: torch.Tensor,
        tags: torch.Tensor,
        mask: torch.Tensor,
        crf: ConstrainedCRF,
        allowed: torch.Tensor | None = None,
    ) -> LossParts:
        terms = self.terms(emissions, tags, mask, crf, allowed)
        alpha = self.alpha()
        total = alpha * terms.ce + (1 - alpha) * terms.crf
        return LossParts(total, terms.ce.detach(), terms.crf.detach(), alpha.detach())

    @torch.no_grad()
    def epoch_update(self, mean_ce: float, mean_crf: float, lr: float) -> None:
        """The paper's per-epoch variant: one gradient step on theta from the epoch's mean losses.

        dL/dtheta = (L_CE - L_CRF) * a * (1 - a). A no-op in modes that do not update per epoch.
        """
        if not self.updates_per_epoch:
            return
        a = torch.sigmoid(self.theta)
        self.theta -= lr * (mean_ce - mean_crf) * a * (1 - a)

    @torch.no_grad()
    def heldout_update(self, signal: float) -> None:
        """The adaptive rule's step: theta += adaptive_step * signal, within +-THETA_LIMIT.

        ``signal`` is cos(g_dev, g_CE) - cos(g_dev, g_CRF) in [-2, 2] (positive: the CE term's
        training gradient agrees better with the held-out gradient, so a grows).
        """
        if not self.is_adaptive:
            raise RuntimeError(f"heldout_update in loss mode {self.config.mode!r}")
        self.theta.add_(self.config.adaptive_step * signal).clamp_(-THETA_LIMIT, THETA_LIMIT)


def partial_cross_entropy(emissions: torch.Tensor, allowed: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Per real word, ``-log`` of the softmax mass on the tags the word may take.

    Args:
        emissions: (batch, words, tags).
        allowed: (batch, words, tags) bool; rows on padding are ignored.
        mask: (batch, words) bool.

    Returns:
        (real words,) in batch order, the cross-entropy itself where one tag is allowed.
    """
    log_probs = emissions.float().log_softmax(dim=-1)  # (batch, words, tags)
    # Padding rows all allowed: a row of -inf would put NaN into the backward pass.
    kept = log_probs.masked_fill(~with_padding_allowed(allowed, mask), float("-inf"))  # (batch, words, tags)
    return -torch.logsumexp(kept, dim=-1)[mask]  # (real words,)
