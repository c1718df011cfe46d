"""The partial-annotation CRF loss against brute force over every tag path of tiny inputs."""

import itertools

import pytest
import torch
import torch.nn.functional as F

from adabiobert.labels import LabelSet
from adabiobert.model.crf import ConstrainedCRF
from adabiobert.model.loss import ATSLoss, partial_cross_entropy
from adabiobert.spans import is_valid_iob2
from adabiobert.training_config import LossConfig

LABELS = LabelSet.from_entity_types(["Chem", "Dis", "Gene"])  # O, B-/I- of three types: 7 tags
TAGS = len(LABELS)


def make_crf(seed: int, dtype=torch.float32) -> ConstrainedCRF:
    torch.manual_seed(seed)
    crf = ConstrainedCRF(TAGS, *LABELS.transition_constraints())
    with torch.no_grad():  # make transitions matter
        for p in crf.parameters():
            p.normal_(0, 1.0)
    return crf.to(dtype)


def all_paths(length: int) -> torch.Tensor:
    """Every tag path of this length that is valid IOB2, as (paths, length) tag ids."""
    paths = [p for p in itertools.product(range(TAGS), repeat=length) if is_valid_iob2([LABELS.tags[i] for i in p])]
    return torch.tensor(paths)


def path_scores(crf: ConstrainedCRF, emissions: torch.Tensor, paths: torch.Tensor) -> torch.Tensor:
    """Score of each path (paths, length) of one sentence's emissions (length, tags): (paths,)."""
    steps = torch.arange(paths.shape[1])
    score = crf.start_transitions[paths[:, 0]] + crf.end_transitions[paths[:, -1]]
    score = score + emissions[steps, paths].sum(dim=1)
    return score + crf.transitions[paths[:, :-1], paths[:, 1:]].sum(dim=1)


def brute_force_nll(crf, emissions, allowed) -> float:
    """log Z over valid paths minus log Z over the valid paths that keep to ``allowed`` (length, tags)."""
    paths = all_paths(emissions.shape[0])
    scores = path_scores(crf, emissions, paths).detach().double()
    steps = torch.arange(paths.shape[1])
    consistent = allowed[steps, paths].all(dim=1)  # (paths,)
    assert consistent.any(), "the test drew a mask no valid path keeps to"
    return float(torch.logsumexp(scores, 0) - torch.logsumexp(scores[consistent], 0))


def random_masks(generator: torch.Generator, lengths: list[int], words: int) -> torch.Tensor:
    """Random allowed masks, (batch, words, tags), each sentence redrawn until a valid path keeps to it."""
    masks = torch.zeros(len(lengths), words, TAGS, dtype=torch.bool)
    for b, n in enumerate(lengths):
        paths = all_paths(n)
        while True:
            mask = torch.rand(n, TAGS, generator=generator) < 0.4
            if mask[torch.arange(n), paths].all(dim=1).any():
                break
        masks[b, :n] = mask
    return masks


def padded(lengths: list[int]) -> torch.Tensor:
    words = max(lengths)
    return torch.tensor([[t < n for t in range(words)] for n in lengths])


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_partial_nll_equals_brute_force_over_the_paths_the_masks_allow(seed):
    crf = make_crf(seed)
    lengths = [5, 1, 3, 4, 2]
    generator = torch.Generator().manual_seed(seed)
    emissions = torch.randn(len(lengths), 5, TAGS, generator=generator) * 2
    word_mask = padded(lengths)
    allowed = random_masks(generator, lengths, 5)
    nll = crf.partial_nll(emissions, allowed, word_mask)
    for b, n in enumerate(lengths):
        assert nll[b].item() == pytest.approx(brute_force_nll(crf, emissions[b, :n], allowed[b, :n]), abs=1e-4)


def test_one_tag_per_word_gives_the_ordinary_crf_nll():
    crf = make_crf(3)
    lengths = [4, 2, 5, 1]
    emissions = torch.randn(len(lengths), 5, TAGS)
    word_mask = padded(lengths)
    tags = torch.zeros(len(lengths), 5, dtype=torch.long)
    for b, n in enumerate(lengths):
        paths = all_paths(n)
        tags[b, :n] = paths[(7 * b + 3) % len(paths)]
    one_hot = F.one_hot(tags, TAGS).bool()
    assert torch.allclose(crf.partial_nll(emissions, one_hot, word_mask),
                          crf.negative_log_likelihood(emissions, tags, word_mask), atol=1e-4)


def test_every_tag_allowed_gives_zero_loss():
    crf = make_crf(4)
    emissions = torch.randn(3, 5, TAGS) * 3
    everything = torch.ones(3, 5, TAGS, dtype=torch.bool)
    assert crf.partial_nll(emissions, everything, padded([5, 3, 1])).tolist() == [0.0, 0.0, 0.0]


def test_what_padding_rows_hold_changes_neither_the_loss_nor_its_gradient():
    crf = make_crf(5)
    lengths = [5, 2, 3]
    word_mask = padded(lengths)
    allowed = random_masks(torch.Generator().manual_seed(5), lengths, 5)  # False on padding
    results = []
    for padding_rows in (False, True):
        emissions = torch.randn(3, 5, TAGS, generator=torch.Generator().manual_seed(9)).requires_grad_()
        mask = allowed | (~word_mask.unsqueeze(-1) & padding_rows)
        crf.partial_nll(emissions, mask, word_mask, reduction="sum").backward()
        results.append((crf.partial_nll(emissions, mask, word_mask).detach(), emissions.grad))
    (loss_a, grad_a), (loss_b, grad_b) = results
    assert torch.equal(loss_a, loss_b)
    assert torch.isfinite(grad_a).all() and torch.equal(grad_a, grad_b)
    assert grad_a[~word_mask].abs().max() == 0


def test_gradient_with_respect_to_emissions_matches_finite_differences():
    crf = make_crf(6, dtype=torch.float64)
    lengths = [4, 2, 3]
    word_mask = padded(lengths)
    allowed = random_masks(torch.Generator().manual_seed(6), lengths, 4)
    emissions = torch.randn(3, 4, TAGS, dtype=torch.float64, generator=torch.Generator().manual_seed(6))
    emissions.requires_grad_()
    assert torch.autograd.gradcheck(lambda e: crf.partial_nll(e, allowed, word_mask), (emissions,))


def test_gradient_with_respect_to_transitions_matches_finite_differences():
    crf = make_crf(7, dtype=torch.float64)
    lengths = [4, 3]
    word_mask = padded(lengths)
    allowed = random_masks(torch.Generator().manual_seed(7), lengths, 4)
    emissions = torch.randn(2, 4, TAGS, dtype=torch.float64, generator=torch.Generator().manual_seed(7))
    crf.partial_nll(emissions, allowed, word_mask, reduction="sum").backward()
    learned = crf._parameters["transitions"]
    eps = 1e-6
    for i, j in [(0, 1), (1, 2), (3, 0), (5, 6), (2, 2)]:
        with torch.no_grad():
            learned[i, j] += eps
            up = crf.partial_nll(emissions, allowed, word_mask, reduction="sum").item()
            learned[i, j] -= 2 * eps
            down = crf.partial_nll(emissions, allowed, word_mask, reduction="sum").item()
            learned[i, j] += eps
        assert learned.grad[i, j].item() == pytest.approx((up - down) / (2 * eps), abs=1e-6)


def test_reductions_are_those_of_pytorch_crf():
    crf = make_crf(8)
    lengths = [5, 2, 3]
    word_mask = padded(lengths)
    allowed = random_masks(torch.Generator().manual_seed(8), lengths, 5)
    emissions = torch.randn(3, 5, TAGS)
    per_sentence = crf.partial_nll(emissions, allowed, word_mask)
    assert crf.partial_nll(emissions, allowed, word_mask, "sum").item() == pytest.approx(per_sentence.sum().item())
    assert crf.partial_nll(emissions, allowed, word_mask, "mean").item() == pytest.approx(per_sentence.mean().item())
    assert crf.partial_nll(emissions, allowed, word_mask, "token_mean").item() == pytest.approx(per_sentence.sum().item() / 10)


def test_bad_inputs_are_refused_with_what_was_expected():
    crf = make_crf(9)
    emissions = torch.randn(2, 3, TAGS)
    word_mask = padded([3, 2])
    allowed = torch.ones(2, 3, TAGS, dtype=torch.bool)
    with pytest.raises(ValueError, match="reduction"):
        crf.partial_nll(emissions, allowed, word_mask, "batch_mean")
    with pytest.raises(ValueError, match="must be"):
        crf.partial_nll(emissions, allowed[:, :2], word_mask)
    empty = allowed.clone()
    empty[1, 1] = False
    with pytest.raises(ValueError, match="sentence 1 of the batch, word 1"):
        crf.partial_nll(emissions, empty, word_mask)
    empty[1, 1], empty[1, 2] = True, False  # padding: ignored
    assert crf.partial_nll(emissions, empty, word_mask)[1].item() == 0.0


def test_partial_cross_entropy_is_minus_log_the_mass_on_allowed_tags():
    torch.manual_seed(10)
    emissions = torch.randn(2, 3, TAGS)
    word_mask = padded([3, 2])
    allowed = random_masks(torch.Generator().manual_seed(10), [3, 2], 3)
    probs = emissions.softmax(-1)
    expected = [-torch.log((probs[b, t] * allowed[b, t]).sum()).item() for b in range(2) for t in range([3, 2][b])]
    assert partial_cross_entropy(emissions, allowed, word_mask).tolist() == pytest.approx(expected, abs=1e-5)


def test_ats_terms_with_one_tag_per_word_are_the_ordinary_terms():
    crf = make_crf(11)
    emissions = torch.randn(2, 4, TAGS)
    word_mask = padded([4, 3])
    tags = torch.tensor([[1, 2, 0, 5], [0, 3, 4, 0]])
    loss = ATSLoss(LossConfig(mode="fixed", alpha=0.5))
    ordinary = loss.terms(emissions, tags, word_mask, crf)
    partial = loss.terms(emissions, tags, word_mask, crf, allowed=F.one_hot(tags, TAGS).bool())
    assert partial.ce.item() == pytest.approx(ordinary.ce.item(), rel=1e-5)
    assert partial.crf.item() == pytest.approx(ordinary.crf.item(), rel=1e-5)


def test_the_network_marginalises_over_allowed_tags_when_a_batch_carries_them():
    from transformers import BertConfig, BertModel

    from adabiobert.model.network import AdaBioBert

    torch.manual_seed(12)
    encoder = BertModel(BertConfig(vocab_size=30, hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                                   intermediate_size=32, max_position_embeddings=16))
    model = AdaBioBert(encoder, LABELS, LossConfig(mode="fixed", alpha=0.5), dropout=0.0).eval()
    batch = {  # two sentences, one window each, every subword a word
        "input_ids": torch.randint(5, 30, (2, 4)),
        "attention_mask": torch.ones(2, 4, dtype=torch.long),
        "word_index": torch.tensor([[0, 1, 2, 3], [4, 5, 6, 0]]),
        "word_mask": padded([4, 3]),
        "tags": torch.tensor([[1, 2, 0, 5], [0, 3, 0, 0]]),
    }
    ordinary = model(batch).total.item()
    assert model({**batch, "allowed_tags": F.one_hot(batch["tags"], TAGS).bool()}).total.item() == pytest.approx(ordinary, rel=1e-5)
    everything = model({**batch, "allowed_tags": torch.ones(2, 4, TAGS, dtype=torch.bool)})
    assert everything.ce.item() == pytest.approx(0.0, abs=1e-6) and everything.crf.item() == pytest.approx(0.0, abs=1e-6)
