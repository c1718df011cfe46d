"""The ``adaptive`` loss mode: move ``a`` by what each training term does to HELD-OUT data.

The rule, every ``adaptive_every`` optimizer steps (LossConfig):

    g_CE, g_CRF = gradients of the two training terms on the current training batch
    g_dev       = gradient of the dev CRF NLL on a sampled dev batch
    signal      = cos(g_dev, g_CE) - cos(g_dev, g_CRF)              in [-2, 2]
    theta      += adaptive_step * signal,   a = sigmoid(theta)

Gradients are taken with respect to every trained weight but theta, at the same weights, with
dropout off. The held-out objective is the dev CRF NLL because the tagger decodes with that CRF:
its held-out likelihood is the proper score of the distribution that is decoded.

Why this is a hypergradient: take one look-ahead step along the two unit-length term gradients,
``w'(a) = w - eta * (a * g_CE/|g_CE| + (1 - a) * g_CRF/|g_CRF|)``. Then

    d L_dev(w'(a)) / da = -eta * grad L_dev(w') . (g_CE/|g_CE| - g_CRF/|g_CRF|)

(exact: the term gradients are taken at w and do not depend on a), and as eta -> 0 this is
``-eta * |g_dev| * signal``. The rule is gradient descent on the dev loss in ``a`` through that
look-ahead step, with the step normalised by ``eta * |g_dev|``.

Why it cannot drift for reasons of scale: every quantity is a cosine. Multiplying either
training term (or the dev loss) by a constant leaves the signal unchanged, and the loss values
themselves never enter it, unlike ``learned``, whose gradient on theta is L_CE - L_CRF.
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import nn

from adabiobert.model.loss import TermLosses


@dataclass(frozen=True)
class Probe:
    """One held-out measurement: how well each training term's gradient agrees with dev."""

    cos_ce: float
    cos_crf: float

    @property
    def signal(self) -> float:
        """cos(g_dev, g_CE) - cos(g_dev, g_CRF): positive means a should grow."""
        return self.cos_ce - self.cos_crf


def trained_parameters(model: nn.Module) -> list[nn.Parameter]:
    """Every parameter the optimizer trains, theta excluded."""
    return [p for name, p in model.named_parameters() if p.requires_grad and not name.startswith("ats.")]


def gradient(loss: torch.Tensor, params: Sequence[nn.Parameter], retain_graph: bool = False) -> list[torch.Tensor]:
    """d loss / d params (zeros where a parameter is not in the graph), leaving ``.grad`` alone."""
    grads = torch.autograd.grad(loss, params, retain_graph=retain_graph, allow_unused=True)
    return [torch.zeros_like(p) if g is None else g.detach() for p, g in zip(params, grads)]


def dot(left: Sequence[torch.Tensor], right: Sequence[torch.Tensor]) -> torch.Tensor:
    """Inner product of two gradients, accumulated in float64."""
    return sum((a.double() * b.double()).sum() for a, b in zip(left, right))


def cosine(left: Sequence[torch.Tensor], right: Sequence[torch.Tensor]) -> float:
    norms = (dot(left, left) * dot(right, right)).sqrt()
    return float(dot(left, right) / norms) if norms > 0 else 0.0


def term_gradients(model: nn.Module, batch: dict, params: Sequence[nn.Parameter]) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    """Gradients of L_CE and L_CRF on one training batch, from one forward pass."""
    terms: TermLosses = model.term_losses(batch)
    return gradient(terms.ce, params, retain_graph=True), gradient(terms.crf, params)


def dev_gradient(model: nn.Module, batch: dict, params: Sequence[nn.Parameter]) -> list[torch.Tensor]:
    """Gradient of the held-out objective, the CRF NLL, on a dev batch with gold tags."""
    return gradient(model.term_losses(batch).crf, params)


def probe(model: nn.Module, train_batch: dict, dev_batch: dict, autocast=None) -> Probe:
    """Measure the two cosines at the model's current weights, with dropout off.

    Args:
        model: the unwrapped ``AdaBioBert`` (no DistributedDataParallel: this must not sync).
        train_batch, dev_batch: collated batches with ``tags``, on the model's device.
        autocast: a context manager factory for mixed precision, or ``None``.
    """
    was_training = model.training
    model.eval()
    params = trained_parameters(model)
    try:
        with autocast() if autocast else contextlib.nullcontext():
            g_ce, g_crf = term_gradients(model, train_batch, params)
            g_dev = dev_gradient(model, dev_batch, params)
    finally:
        model.train(was_training)
    return Probe(cos_ce=cosine(g_dev, g_ce), cos_crf=cosine(g_dev, g_crf))


def lookahead_hypergradient(model: nn.Module, train_batch: dict, dev_batch: dict, alpha: float, eta: float) -> float:
    """d L_dev(w'(a)) / da at ``alpha`` for the look-ahead step in the module docstring.

    The analytic form the rule rests on; tests check it against a finite difference of the dev
    loss after real look-ahead steps. Runs with dropout off and restores the weights.
    """
    was_training = model.training
    model.eval()
    params = trained_parameters(model)
    g_ce, g_crf = term_gradients(model, train_batch, params)
    unit_ce = [g / dot(g_ce, g_ce).sqrt().to(g.dtype) for g in g_ce]
    unit_crf = [g / dot(g_crf, g_crf).sqrt().to(g.dtype) for g in g_crf]
    saved = [p.detach().clone() for p in params]
    try:
        with torch.no_grad():
            for p, u_ce, u_crf in zip(params, unit_ce, unit_crf):
                p.sub_(eta * (alpha * u_ce + (1 - alpha) * u_crf))
        g_dev_after = dev_gradient(model, dev_batch, params)
    finally:
        with torch.no_grad():
            for p, value in zip(params, saved):
                p.copy_(value)
        model.train(was_training)
    difference = [a - b for a, b in zip(unit_ce, unit_crf)]
    return float(-eta * dot(g_dev_after, difference))

