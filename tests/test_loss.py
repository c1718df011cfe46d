"""The ATS loss: its reductions, alpha in each mode, and the gradient that makes alpha drift."""

import math

import pytest
import torch
import torch.nn.functional as F

from adabiobert.errors import ConfigError
from adabiobert.labels import LabelSet
from adabiobert.model.crf import ConstrainedCRF
from adabiobert.model.loss import ATSLoss
from adabiobert.training_config import LossConfig

LABELS = LabelSet.from_entity_types(["Disease"])


@pytest.fixture
def batch():
    torch.manual_seed(0)
    emissions = torch.randn(3, 5, len(LABELS), requires_grad=True)
    mask = torch.tensor([[1, 1, 1, 1, 1], [1, 1, 1, 0, 0], [1, 0, 0, 0, 0]], dtype=torch.bool)
    tags = torch.tensor([[0, 1, 2, 0, 0], [1, 2, 2, 0, 0], [0, 0, 0, 0, 0]])
    crf = ConstrainedCRF(len(LABELS), *LABELS.transition_constraints())
    return emissions, tags, mask, crf


def test_ce_is_the_mean_over_real_words(batch):
    emissions, tags, mask, crf = batch
    parts = ATSLoss(LossConfig(mode="fixed", alpha=0.5))(emissions, tags, mask, crf)
    expected = F.cross_entropy(emissions[mask], tags[mask])  # 9 real words
    assert parts.ce.item() == pytest.approx(expected.item(), rel=1e-6)


def test_crf_term_is_the_summed_sentence_nll_over_real_words(batch):
    emissions, tags, mask, crf = batch
    parts = ATSLoss(LossConfig(mode="fixed", alpha=0.5))(emissions, tags, mask, crf)
    per_sentence = -crf(emissions, tags, mask=mask, reduction="none")
    assert parts.crf.item() == pytest.approx((per_sentence.sum() / 9).item(), rel=1e-6)
    # The same as pytorch-crf's token_mean, and far below its default batch sum.
    assert parts.crf.item() == pytest.approx(-crf(emissions, tags, mask=mask, reduction="token_mean").item(), rel=1e-6)


@pytest.mark.parametrize("mode,alpha", [("ce", 1.0), ("crf", 0.0), ("fixed", 0.3), ("learned", 0.7)])
def test_total_mixes_the_terms_with_alpha(batch, mode, alpha):
    emissions, tags, mask, crf = batch
    config = LossConfig.parse(mode if mode in ("ce", "crf") else f"{mode}={alpha}")
    parts = ATSLoss(config)(emissions, tags, mask, crf)
    assert parts.alpha.item() == pytest.approx(alpha, abs=1e-6)
    assert parts.total.item() == pytest.approx(alpha * parts.ce.item() + (1 - alpha) * parts.crf.item(), rel=1e-5)


def test_gradient_on_theta_is_the_loss_difference_times_sigmoid_slope(batch):
    emissions, tags, mask, crf = batch
    loss = ATSLoss(LossConfig(mode="learned", alpha=0.4))
    parts = loss(emissions, tags, mask, crf)
    parts.total.backward()
    a = 0.4
    assert loss.theta.grad.item() == pytest.approx((parts.ce - parts.crf).item() * a * (1 - a), rel=1e-4)


def test_only_learned_step_mode_trains_theta():
    assert ATSLoss(LossConfig(mode="learned")).theta.requires_grad
    assert not ATSLoss(LossConfig(mode="learned", alpha_update="epoch")).theta.requires_grad
    assert not ATSLoss(LossConfig(mode="fixed", alpha=0.5)).theta.requires_grad


def test_epoch_update_steps_theta_toward_the_smaller_loss():
    loss = ATSLoss(LossConfig(mode="learned", alpha=0.5, alpha_update="epoch"))
    loss.epoch_update(mean_ce=0.9, mean_crf=0.4, lr=1.0)  # CE larger: alpha must fall
    expected_theta = -(0.9 - 0.4) * 0.25
    assert loss.theta.item() == pytest.approx(expected_theta)
    assert loss.alpha().item() == pytest.approx(1 / (1 + math.exp(-expected_theta)))


def test_loss_parse_rejects_nonsense():
    for text in ("fixed", "fixed=2", "ce=0.3", "learned=1.0", "mystery", "fixed=abc"):
        with pytest.raises(ConfigError):
            LossConfig.parse(text)


def test_paper_mode_puts_the_per_sentence_crf_nll_beside_the_per_word_ce(batch):
    emissions, tags, mask, crf = batch
    parts = ATSLoss(LossConfig.parse("paper"))(emissions, tags, mask, crf)
    per_sentence = -crf(emissions, tags, mask=mask, reduction="none")
    assert parts.crf.item() == pytest.approx(per_sentence.mean().item(), rel=1e-6)
    assert parts.ce.item() == pytest.approx(F.cross_entropy(emissions[mask], tags[mask]).item(), rel=1e-6)


def test_paper_mode_moves_theta_once_per_epoch_only():
    loss = ATSLoss(LossConfig.parse("paper"))
    assert not loss.theta.requires_grad
    loss.epoch_update(mean_ce=0.2, mean_crf=4.0, lr=1.0)  # per-sentence CRF NLL is larger: alpha rises
    assert loss.alpha().item() > 0.5


@pytest.mark.parametrize("text,mode,alpha", [("adaptive", "adaptive", 0.5), ("adaptive=0.3", "adaptive", 0.3), ("paper", "paper", 0.5)])
def test_loss_parse_reads_the_moving_modes(text, mode, alpha):
    config = LossConfig.parse(text, adaptive_every=5)
    assert (config.mode, config.alpha, config.adaptive_every) == (mode, alpha, 5)
    assert ATSLoss(config).alpha().item() == pytest.approx(alpha, abs=1e-6)
