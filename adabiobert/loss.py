"""The Adaptive Token-Sequence (ATS) loss of AdaBioBERT: ``L = a*L_CE + (1-a)*L_CRF``.

Reductions, both per WORD so that the two terms are on one scale:
- ``L_CE``: cross-entropy of the emissions, mean over the real words of the batch.
- ``L_CRF``: the CRF negative log-likelihood, summed over the batch's sentences and divided by
  its number of real words (pytorch-crf's ``token_mean``). This equals the mean NLL per
  sentence divided by the mean sentence length. Mixed raw, pytorch-crf's default (a sum over
  the batch) is tens of times larger than a per-word CE, and ``a`` would be pushed to one side
  by scale alone.

``a`` is ``sigmoid(theta)``. Its gradient is ``(L_CE - L_CRF) * a * (1 - a)``: the learned
weight moves toward whichever loss is smaller, by construction of the paper's formula. That
drift is recorded every epoch, not hidden.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from adabiobert.config import LossConfig
from adabiobert.crf import ConstrainedCRF


@dataclass(frozen=True)
class LossParts:
    """The total loss and its parts; ``ce``, ``crf`` and ``alpha`` are detached."""

    total: torch.Tensor
    ce: torch.Tensor
    crf: torch.Tensor
    alpha: torch.Tensor


class ATSLoss(nn.Module):
    """Holds ``theta`` (so data-parallel training all-reduces it with the model) and mixes the
    two losses.

    Modes: ``learned`` trains theta (step-wise by the optimizer, or once per epoch with
    ``alpha_update="epoch"``), ``fixed`` keeps a constant, ``ce`` is a = 1, ``crf`` is a = 0.
    Both terms are always computed, so the CRF transitions take part in every step (data-
    parallel training needs every trainable parameter in the graph) and both are logged in
    every mode. theta only requires a gradient when the optimizer trains it.
    """

    def __init__(self, config: LossConfig) -> None:
        super().__init__()
        self.config = config
        alpha = config.alpha if config.mode in ("learned", "fixed") else (1.0 if config.mode == "ce" else 0.0)
        alpha = min(max(alpha, 1e-6), 1 - 1e-6) if config.mode == "learned" else alpha
        self.theta = nn.Parameter(torch.tensor(math.log(alpha / (1 - alpha)) if config.mode == "learned" else 0.0))
        self.theta.requires_grad_(self.trains_theta_by_step)
        self.register_buffer("fixed_alpha", torch.tensor(float(alpha)))

    @property
    def trains_theta_by_step(self) -> bool:
        return self.config.mode == "learned" and self.config.alpha_update == "step"

    def alpha(self) -> torch.Tensor:
        if self.config.mode == "learned":
            return torch.sigmoid(self.theta)
        return self.fixed_alpha

    def forward(self, emissions: torch.Tensor, tags: torch.Tensor, mask: torch.Tensor, crf: ConstrainedCRF) -> LossParts:
        """Args:
            emissions: (batch, words, tags).
            tags: (batch, words).
            mask: (batch, words) bool.
            crf: the model's CRF.
        """
        emissions = emissions.float()
        words = mask.sum().clamp(min=1)
        ce = F.cross_entropy(emissions[mask], tags[mask], reduction="sum") / words
        crf_nll = crf.negative_log_likelihood(emissions, tags, mask).sum() / words
        alpha = self.alpha()
        total = alpha * ce + (1 - alpha) * crf_nll
        return LossParts(total, ce.detach(), crf_nll.detach(), alpha.detach())

    @torch.no_grad()
    def epoch_update(self, mean_ce: float, mean_crf: float, lr: float) -> None:
        """The paper's per-epoch variant: one gradient step on theta from the epoch's mean losses.

        dL/dtheta = (L_CE - L_CRF) * a * (1 - a).
        """
        if self.config.mode != "learned" or self.config.alpha_update != "epoch":
            return
        a = torch.sigmoid(self.theta)
        self.theta -= lr * (mean_ce - mean_crf) * a * (1 - a)
