"""The constrained CRF against brute force over every tag path of tiny inputs."""

import itertools

import pytest
import torch

from adabiobert.labels import LabelSet
from adabiobert.model.crf import ConstrainedCRF
from adabiobert.spans import is_valid_iob2

LABELS = LabelSet.from_entity_types(["Chem", "Dis"])  # O, B-Chem, I-Chem, B-Dis, I-Dis


def make_crf(seed: int = 0) -> ConstrainedCRF:
    torch.manual_seed(seed)
    crf = ConstrainedCRF(len(LABELS), *LABELS.transition_constraints())
    with torch.no_grad():  # make transitions matter
        for p in crf.parameters():
            p.normal_(0, 1.0)
    return crf


def path_score(crf: ConstrainedCRF, emissions: torch.Tensor, path) -> float:
    score = crf.start_transitions[path[0]] + emissions[0, path[0]]
    for t in range(1, len(path)):
        score = score + crf.transitions[path[t - 1], path[t]] + emissions[t, path[t]]
    return float((score + crf.end_transitions[path[-1]]).detach())


def valid_paths(length: int):
    for path in itertools.product(range(len(LABELS)), repeat=length):
        if is_valid_iob2([LABELS.tags[i] for i in path]):
            yield path


@pytest.mark.parametrize("length", [1, 2, 4])
def test_log_likelihood_equals_brute_force_over_valid_paths(length):
    crf = make_crf(length)
    emissions = torch.randn(1, length, len(LABELS))
    mask = torch.ones(1, length, dtype=torch.bool)
    paths = list(valid_paths(length))
    log_z = torch.logsumexp(torch.tensor([path_score(crf, emissions[0], p) for p in paths]), 0)
    gold = paths[len(paths) // 2]
    expected = log_z - path_score(crf, emissions[0], gold)
    nll = crf.negative_log_likelihood(emissions, torch.tensor([gold]), mask)
    assert nll.item() == pytest.approx(expected.item(), abs=1e-4)


def test_viterbi_finds_the_best_valid_path_for_each_sentence_of_a_padded_batch():
    crf = make_crf(7)
    lengths = [4, 2, 3, 1]
    emissions = torch.randn(len(lengths), 4, len(LABELS)) * 3
    mask = torch.tensor([[t < n for t in range(4)] for n in lengths])
    decoded = crf.viterbi(emissions, mask)
    for b, n in enumerate(lengths):
        best = max(valid_paths(n), key=lambda p: path_score(crf, emissions[b, :n], p))
        assert decoded[b, :n].tolist() == list(best)
        assert decoded[b, n:].tolist() == [0] * (4 - n)


def test_decoding_never_emits_invalid_iob2_even_when_emissions_favour_it():
    crf = make_crf(3)
    emissions = torch.zeros(8, 5, len(LABELS))
    emissions[..., LABELS.index("I-Dis")] = 50.0  # an I- everywhere would be invalid at the start
    emissions[:, 2, LABELS.index("I-Chem")] = 100.0  # and a type switch in the middle
    paths = crf.viterbi(emissions, torch.ones(8, 5, dtype=torch.bool))
    for path in paths.tolist():
        assert is_valid_iob2([LABELS.tags[i] for i in path])


def test_pytorch_crf_own_decode_agrees_with_the_batched_viterbi():
    crf = make_crf(11)
    emissions = torch.randn(6, 5, len(LABELS))
    mask = torch.tensor([[t < n for t in range(5)] for n in [5, 3, 1, 4, 5, 2]])
    ours = crf.viterbi(emissions, mask)
    theirs = crf.decode(emissions, mask=mask)
    for row, path in zip(ours.tolist(), theirs):
        assert row[: len(path)] == path


def test_marginals_equal_brute_force_posteriors():
    crf = make_crf(5)
    length = 3
    emissions = torch.randn(1, length, len(LABELS))
    mask = torch.ones(1, length, dtype=torch.bool)
    paths = list(valid_paths(length))
    weights = torch.softmax(torch.tensor([path_score(crf, emissions[0], p) for p in paths]), 0)
    expected = torch.zeros(length, len(LABELS))
    for weight, path in zip(weights, paths):
        for t, tag in enumerate(path):
            expected[t, tag] += weight
    marginals = crf.marginals(emissions, mask)[0]
    assert torch.allclose(marginals, expected, atol=1e-5)
    assert torch.allclose(marginals.sum(-1), torch.ones(length), atol=1e-5)


def autograd_marginals(crf: ConstrainedCRF, emissions: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """The former method, kept as an oracle: d log Z / d emissions, in float32."""
    with torch.enable_grad():
        leaf = emissions.detach().float().requires_grad_(True)
        (gradient,) = torch.autograd.grad(crf.log_partition(leaf, mask).sum(), leaf)
    return gradient * mask.unsqueeze(-1)


def test_marginals_agree_with_autograd_of_log_partition_on_short_padded_batches():
    crf = make_crf(9)
    lengths = [12, 7, 1, 12, 3]
    emissions = torch.randn(len(lengths), 12, len(LABELS)) * 2
    mask = torch.tensor([[t < n for t in range(12)] for n in lengths])
    assert torch.allclose(crf.marginals(emissions, mask), autograd_marginals(crf, emissions, mask), atol=1e-5)


def test_each_row_of_a_padded_batch_equals_the_marginals_of_that_sentence_alone():
    crf = make_crf(13)
    lengths = [9, 4, 1, 6]
    emissions = torch.randn(len(lengths), 9, len(LABELS)) * 3
    mask = torch.tensor([[t < n for t in range(9)] for n in lengths])
    batched = crf.marginals(emissions, mask)
    for b, n in enumerate(lengths):
        alone = crf.marginals(emissions[b : b + 1, :n], torch.ones(1, n, dtype=torch.bool))[0]
        assert torch.allclose(batched[b, :n], alone, atol=1e-6)
        assert batched[b, n:].abs().sum().item() == 0.0


@pytest.mark.parametrize("num_tags", [3, 5])
def test_marginals_of_a_50000_word_sentence_are_probabilities(num_tags):
    torch.manual_seed(num_tags)
    labels = LabelSet.from_entity_types(["Chem", "Dis"][: (num_tags - 1) // 2])
    crf = ConstrainedCRF(num_tags, *labels.transition_constraints())
    with torch.no_grad():
        for p in crf.parameters():
            p.normal_(0, 2.0)
        emissions = torch.randn(1, 50_000, num_tags) * 5  # the scale of a trained model's scores
        marginals = crf.marginals(emissions, torch.ones(1, 50_000, dtype=torch.bool))[0]
    assert (marginals.sum(-1) - 1).abs().max().item() < 1e-4
    assert marginals.min().item() >= 0.0
    assert marginals.max().item() <= 1.0


def test_constraints_survive_in_the_state_dict_and_training():
    crf = make_crf(1)
    names = set(crf.state_dict())
    assert {"transitions", "start_transitions", "end_transitions", "transition_penalty"} <= names
    i_dis, o = LABELS.index("I-Dis"), LABELS.index("O")
    assert crf.transitions[o, i_dis].item() < -1000
    assert crf.start_transitions[i_dis].item() < -1000
