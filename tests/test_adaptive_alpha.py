"""The adaptive rule: its hypergradient against finite differences, its scale invariance, and the
direction a moves on toy problems where one term clearly helps held-out data."""

import copy

import pytest
import torch
from torch import nn

from adabiobert.labels import LabelSet
from adabiobert.model import adaptive_alpha
from adabiobert.model.assembly import build_example_encoder, build_model
from adabiobert.model.backbone import load_tokenizer
from adabiobert.model.batching import collate
from adabiobert.model.crf import ConstrainedCRF
from adabiobert.model.loss import ATSLoss, TermLosses
from adabiobert.training_config import LossConfig, ModelConfig, TrainConfig


# ---------------------------------------------------------------------------------------------
# On the real model (tiny random BERT): the hypergradient is what the rule claims it is.
# ---------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def tiny(tiny_backbone_dir, ncbi):
    config = TrainConfig(model=ModelConfig(backbone=str(tiny_backbone_dir), max_subwords=64, window_overlap=16),
                         loss=LossConfig(mode="adaptive"))
    torch.manual_seed(0)
    tokenizer = load_tokenizer(config.model.backbone)
    model = build_model(config, ncbi.labels, None)
    with torch.no_grad():  # a head that is not at its symmetric start, so both terms have structure
        model.classifier.weight.normal_(0, 0.5)
    encoder = build_example_encoder(config.model, model, tokenizer, None)
    pad = tokenizer.pad_token_id
    train = collate(encoder.encode_tagged([s for s in ncbi.train if s.tags.count("O") < len(s.tags)][:8]), pad)
    dev = collate(encoder.encode_tagged(ncbi.dev[:8]), pad)
    return model, train, dev


def _dev_loss_after_lookahead(model: nn.Module, train: dict, dev: dict, alpha: float, eta: float) -> float:
    """L_dev(w - eta*(a*u_CE + (1-a)*u_CRF)) by real steps on a copy, gradients by .backward()."""
    clone = copy.deepcopy(model).eval()
    params = adaptive_alpha.trained_parameters(clone)
    units = []
    for pick in ("ce", "crf"):
        clone.zero_grad()
        getattr(clone.term_losses(train), pick).backward()
        grads = [p.grad.detach().clone() if p.grad is not None else torch.zeros_like(p) for p in params]
        norm = torch.sqrt(sum((g.double() ** 2).sum() for g in grads))
        units.append([g / norm.float() for g in grads])
    with torch.no_grad():
        for p, u_ce, u_crf in zip(params, *units):
            p -= eta * (alpha * u_ce + (1 - alpha) * u_crf)
        return clone.term_losses(dev).crf.item()


@pytest.mark.parametrize("alpha", [0.2, 0.5, 0.8])
def test_lookahead_hypergradient_matches_a_finite_difference(tiny, alpha):
    model, train, dev = tiny
    eta, eps = 0.5, 0.05
    analytic = adaptive_alpha.lookahead_hypergradient(model, train, dev, alpha, eta)
    numeric = (_dev_loss_after_lookahead(model, train, dev, alpha + eps, eta)
               - _dev_loss_after_lookahead(model, train, dev, alpha - eps, eta)) / (2 * eps)
    assert abs(numeric) > 1e-4  # the test would be vacuous on a flat dev loss
    assert analytic == pytest.approx(numeric, rel=0.02, abs=1e-5)


def test_lookahead_leaves_the_weights_as_they_were(tiny):
    model, train, dev = tiny
    before = {k: v.clone() for k, v in model.state_dict().items()}
    adaptive_alpha.lookahead_hypergradient(model, train, dev, 0.5, 0.5)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())


def test_signal_is_the_normalised_hypergradient_in_the_small_step_limit(tiny):
    model, train, dev = tiny
    eta = 1e-4
    probe = adaptive_alpha.probe(model, train, dev)
    g_dev = adaptive_alpha.dev_gradient(model.eval(), dev, adaptive_alpha.trained_parameters(model))
    dev_norm = float(adaptive_alpha.dot(g_dev, g_dev).sqrt())
    hyper = adaptive_alpha.lookahead_hypergradient(model, train, dev, 0.5, eta)
    assert abs(probe.signal) > 1e-4
    assert -hyper / (eta * dev_norm) == pytest.approx(probe.signal, rel=0.05, abs=1e-5)


def test_signal_ignores_the_scale_of_either_term_and_learned_alpha_does_not(tiny, monkeypatch):
    model, train, dev = tiny
    reference = adaptive_alpha.probe(model, train, dev)
    original = type(model).term_losses

    def rescaled(self, batch):
        terms = original(self, batch)
        return TermLosses(terms.ce * 50.0, terms.crf * 0.02)

    monkeypatch.setattr(type(model), "term_losses", rescaled)
    scaled = adaptive_alpha.probe(model, train, dev)
    assert scaled.signal == pytest.approx(reference.signal, rel=1e-4, abs=1e-6)
    # The learned mode's gradient on theta is L_CE - L_CRF: the same rescaling flips or swamps it.
    terms, scaled_terms = original(model, train), rescaled(model, train)
    assert (scaled_terms.ce - scaled_terms.crf).item() != pytest.approx((terms.ce - terms.crf).item(), rel=0.5)


# ---------------------------------------------------------------------------------------------
# Toy problems: a word-embedding tagger with a CRF, where one term clearly helps held-out data.
# ---------------------------------------------------------------------------------------------
LABELS = LabelSet.from_entity_types(["X"])  # O, B-X, I-X
O, B, I = 0, 1, 2


class ToyTagger(nn.Module):
    """Emissions from a per-word table, the project's constrained CRF and ATS loss."""

    def __init__(self, vocabulary: int) -> None:
        super().__init__()
        self.emit = nn.Embedding(vocabulary, len(LABELS))
        nn.init.zeros_(self.emit.weight)
        self.crf = ConstrainedCRF(len(LABELS), *LABELS.transition_constraints())
        with torch.no_grad():
            for p in (self.crf._parameters[n] for n in ("start_transitions", "transitions", "end_transitions")):
                p.zero_()
        self.ats = ATSLoss(LossConfig(mode="adaptive", alpha=0.5, adaptive_step=0.5))

    def term_losses(self, batch: dict) -> TermLosses:
        return self.ats.terms(self.emit(batch["words"]), batch["tags"], batch["word_mask"], self.crf)

    def forward(self, batch: dict):
        return self.ats(self.emit(batch["words"]), batch["tags"], batch["word_mask"], self.crf)


def _chain_batch(generator: torch.Generator, size: int, length: int = 12) -> dict:
    """Words carry no information; tags follow a fixed chain O O B I I O O B I I ...: only the
    CRF's transitions can learn it."""
    words = torch.randint(0, 20, (size, length), generator=generator)
    pattern = torch.tensor([O, O, B, I, I])
    offsets = torch.randint(0, 2, (size,), generator=generator)  # start on O O or O
    tags = torch.stack([pattern.roll(-int(k)).repeat(length)[:length] for k in offsets])
    return {"words": words, "tags": tags, "word_mask": torch.ones(size, length, dtype=torch.bool)}


def _word_batch(generator: torch.Generator, size: int, adjacent_entities: bool, length: int = 12) -> dict:
    """Words 0-9 are entities (B), the rest O: emissions alone tag perfectly. Training sentences
    never hold two entities side by side, held-out ones often do, so the transitions the CRF term
    learns from training (B -> B is rare) are wrong for held-out data."""
    words = torch.randint(10, 40, (size, length), generator=generator)
    starts = torch.randint(0, 3 if adjacent_entities else 2, (size,), generator=generator)
    for row, start in enumerate(starts.tolist()):
        step = 1 if adjacent_entities else 2
        for position in range(start, length, step * 3):
            words[row, position] = int(torch.randint(0, 10, (1,), generator=generator))
            if adjacent_entities and position + 1 < length:
                words[row, position + 1] = int(torch.randint(0, 10, (1,), generator=generator))
    tags = torch.where(words < 10, B, O)
    return {"words": words, "tags": tags, "word_mask": torch.ones(size, length, dtype=torch.bool)}


def _train_adaptive(make_train, make_dev, steps: int = 40) -> list[float]:
    torch.manual_seed(0)
    generator = torch.Generator().manual_seed(1)
    model = ToyTagger(vocabulary=40)
    optimizer = torch.optim.SGD(adaptive_alpha.trained_parameters(model), lr=0.5)
    trace = []
    for _ in range(steps):
        train, dev = make_train(generator), make_dev(generator)
        model.ats.heldout_update(adaptive_alpha.probe(model, train, dev).signal)
        optimizer.zero_grad()
        model(train).total.backward()
        optimizer.step()
        trace.append(float(model.ats.alpha()))
    return trace


def test_alpha_falls_when_only_the_crf_term_can_fit_held_out_data():
    trace = _train_adaptive(lambda g: _chain_batch(g, 16), lambda g: _chain_batch(g, 16))
    assert trace[-1] < 0.2, trace


def test_alpha_rises_when_the_crf_term_learns_transitions_held_out_data_contradicts():
    trace = _train_adaptive(lambda g: _word_batch(g, 16, adjacent_entities=False),
                            lambda g: _word_batch(g, 16, adjacent_entities=True))
    assert trace[-1] > 0.8, trace


def test_heldout_update_is_refused_outside_the_adaptive_mode():
    with pytest.raises(RuntimeError):
        ATSLoss(LossConfig(mode="learned")).heldout_update(0.1)


# ---------------------------------------------------------------------------------------------
# Inside the training loop: probes at the configured steps, recorded with the alpha they set.
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("mode", ["adaptive", "learned"])
def test_fit_records_alpha_wherever_it_changes_within_an_epoch(tiny_backbone_dir, ncbi, mode):
    from adabiobert.model.assembly import build_optimizer
    from adabiobert.model.engine import fit

    config = TrainConfig(model=ModelConfig(backbone=str(tiny_backbone_dir), max_subwords=64, window_overlap=16),
                         loss=LossConfig(mode=mode, adaptive_every=2, adaptive_dev_batch=8), epochs=2, batch_size=8, seed=2)
    torch.manual_seed(2)
    tokenizer = load_tokenizer(config.model.backbone)
    model = build_model(config, ncbi.labels, None)
    encoder = build_example_encoder(config.model, model, tokenizer, None)
    train, dev = encoder.encode_tagged(ncbi.train[:64]), encoder.encode_tagged(ncbi.dev[:16])
    optimizer, scheduler = build_optimizer(model, config, train, world_size=1)
    reports = list(fit(model, optimizer, scheduler, train, dev, ncbi.labels, config, torch.device("cpu"), tokenizer.pad_token_id))
    steps = [s["step"] for r in reports for s in r.alpha_steps]
    if mode == "adaptive":
        assert steps == [2, 4, 6, 8, 10, 12, 14, 16]  # 8 optimizer steps per epoch, a probe every 2
        assert all(-1 <= s["cos_ce"] <= 1 and -1 <= s["cos_crf"] <= 1 for r in reports for s in r.alpha_steps)
        assert reports[0].probe_seconds > 0
        assert not model.ats.theta.requires_grad  # moved by the rule, never by the optimizer
    else:
        assert steps == list(range(1, 17))
    for report in reports:
        assert report.alpha == pytest.approx(report.alpha_steps[-1]["alpha"])
    assert reports[-1].alpha != pytest.approx(0.5, abs=1e-4)
