"""Allowed-tag masks for partially annotated corpora, and a toy union where only the partial loss learns right.

The toy: corpus A annotates only Disease, corpus B only Chemical, and A's sentences also mention
chemicals, unlabelled. Trained on the union with unlabelled words as ``O`` (the naive union), a
tagger learns chemicals as ``O``; with the partial-annotation loss it tags them.
"""

import random

import pytest
import torch
from torch import nn

from adabiobert.labels import LabelSet
from adabiobert.model.crf import ConstrainedCRF
from adabiobert.model.partial_annotation import allowed_tags

LABELS = LabelSet.from_entity_types(["Chemical", "Disease"])  # O, B-Chemical, I-Chemical, B-Disease, I-Disease


def rows(mask: torch.Tensor) -> list[set[str]]:
    return [{LABELS.tags[k] for k in range(len(LABELS)) if mask[w, k]} for w in range(mask.shape[0])]


def test_a_labelled_word_allows_its_tag_and_an_o_word_also_the_types_its_corpus_does_not_annotate():
    tags = ["O", "B-Disease", "I-Disease", "O"]
    assert rows(allowed_tags(tags, {"Disease"}, LABELS)) == [
        {"O", "B-Chemical", "I-Chemical"},
        {"B-Disease"},
        {"I-Disease"},
        {"O", "B-Chemical", "I-Chemical"},
    ]


def test_a_corpus_annotating_every_type_allows_exactly_its_tags():
    tags = ["B-Chemical", "O", "B-Disease"]
    mask = allowed_tags(tags, {"Chemical", "Disease"}, LABELS)
    assert rows(mask) == [{"B-Chemical"}, {"O"}, {"B-Disease"}]
    assert mask.dtype == torch.bool and mask.shape == (3, len(LABELS))


def test_a_corpus_annotating_nothing_allows_every_tag_on_its_o_words():
    assert rows(allowed_tags(["O", "O"], set(), LABELS)) == [set(LABELS.tags)] * 2


def test_a_label_of_an_undeclared_type_an_unknown_type_or_a_bad_tag_is_refused():
    with pytest.raises(ValueError, match="word 1 is tagged 'B-Chemical', but its corpus annotates only \\['Disease'\\]"):
        allowed_tags(["O", "B-Chemical"], {"Disease"}, LABELS)
    with pytest.raises(ValueError, match="annotated types \\['Gene'\\] are not in the label set"):
        allowed_tags(["O"], {"Gene", "Disease"}, LABELS)
    with pytest.raises(ValueError, match="is not O, B-<type> or I-<type>"):
        allowed_tags(["E-Disease"], {"Disease"}, LABELS)


# ---------------------------------------------------------------------------------------------
# The toy union
# ---------------------------------------------------------------------------------------------
FILLERS = ["patients", "with", "the", "after", "was", "given", "and", "of", "in", "treated"]
DISEASES = ["asthma", "anemia", "gout", "lupus"]
CHEMICALS = ["aspirin", "heparin", "cisplatin", "caffeine"]
VOCABULARY = {word: i for i, word in enumerate(FILLERS + DISEASES + CHEMICALS)}


def sentence(rng: random.Random, entities: list[tuple[str, str]]) -> tuple[list[str], list[str]]:
    """Fillers with the entities placed at random: (words, gold tags of the full annotation)."""
    words = [(rng.choice(FILLERS), "O") for _ in range(rng.randint(2, 4))]
    for entity in entities:
        words.insert(rng.randint(0, len(words)), entity)
    return [w for w, _ in words], [t for _, t in words]


def corpus_a(rng: random.Random, n: int):
    """Disease-only corpus: every sentence a disease and a chemical (each chemical n/4 times), unlabelled."""
    out = []
    for i in range(n):
        words, tags = sentence(rng, [(rng.choice(DISEASES), "B-Disease"), (CHEMICALS[i % 4], "B-Chemical")])
        out.append((words, [t if t != "B-Chemical" else "O" for t in tags], {"Disease"}))
    return out


def corpus_b(rng: random.Random, n: int):
    """Chemical-only corpus: every sentence one chemical (each n/4 times), labelled."""
    return [(*sentence(rng, [(CHEMICALS[i % 4], "B-Chemical")]), {"Chemical"}) for i in range(n)]


def tensors(corpus, annotated_by_corpus: bool):
    """(ids, word_mask, allowed): the corpus's own annotated types, or every type (the naive union)."""
    words = max(len(w) for w, _, _ in corpus)
    ids = torch.zeros(len(corpus), words, dtype=torch.long)
    word_mask = torch.zeros(len(corpus), words, dtype=torch.bool)
    allowed = torch.zeros(len(corpus), words, len(LABELS), dtype=torch.bool)
    for b, (ws, tags, types) in enumerate(corpus):
        ids[b, : len(ws)] = torch.tensor([VOCABULARY[w] for w in ws])
        word_mask[b, : len(ws)] = True
        allowed[b, : len(ws)] = allowed_tags(tags, types if annotated_by_corpus else LABELS.entity_types, LABELS)
    return ids, word_mask, allowed


class ToyTagger(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.embedding = nn.Embedding(len(VOCABULARY), 8)
        self.linear = nn.Linear(8, len(LABELS))
        self.crf = ConstrainedCRF(len(LABELS), *LABELS.transition_constraints())

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        return self.linear(self.embedding(ids))  # (batch, words, tags)


def train(corpus, partial: bool) -> ToyTagger:
    torch.manual_seed(0)
    model = ToyTagger()
    ids, word_mask, allowed = tensors(corpus, annotated_by_corpus=partial)
    optimizer = torch.optim.Adam(model.parameters(), lr=0.05)
    for _ in range(200):
        optimizer.zero_grad()
        model.crf.partial_nll(model(ids), allowed, word_mask, reduction="token_mean").backward()
        optimizer.step()
    return model


def chemical_tagging(model: ToyTagger, held_out) -> dict[str, float]:
    """On fully annotated sentences: the share of chemicals Viterbi tags B-Chemical, their mean
    marginal probability of B-Chemical, and the share of the other words tagged right."""
    ids, word_mask, _ = tensors([(w, t, {"Chemical", "Disease"}) for w, t in held_out], annotated_by_corpus=True)
    emissions = model(ids).detach()  # (sentences, words, tags)
    gold = torch.zeros_like(ids)
    for b, (_, tags) in enumerate(held_out):
        gold[b, : len(tags)] = torch.tensor([LABELS.index(t) for t in tags])
    chemical = gold == LABELS.index("B-Chemical")  # (sentences, words)
    others = word_mask & ~chemical
    right = model.crf.viterbi(emissions, word_mask) == gold
    marginals = model.crf.marginals(emissions, word_mask)[..., LABELS.index("B-Chemical")]
    return {
        "recall": right[chemical].float().mean().item(),
        "marginal": marginals[chemical].mean().item(),
        "others_right": right[others].float().mean().item(),
    }


@pytest.fixture
def one_thread():
    """Seconds on one core; the default thread count only fights other processes over tiny ops."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def test_the_naive_union_learns_chemicals_as_o_and_the_partial_loss_does_not(one_thread):
    rng = random.Random(0)
    union = corpus_a(rng, 60) + corpus_b(rng, 20)  # each chemical: 15 times unlabelled in A, 5 labelled in B
    held_out = [
        sentence(rng, [(rng.choice(DISEASES), "B-Disease"), (rng.choice(CHEMICALS), "B-Chemical")]) for _ in range(40)
    ]  # A-like sentences, fully annotated
    naive = chemical_tagging(train(union, partial=False), held_out)
    partial = chemical_tagging(train(union, partial=True), held_out)
    # Naive: taught O three times for each time it was taught Chemical, it learns about that
    # (measured: marginal 0.28, recall 0.20, Viterbi tagging a chemical only beside some fillers).
    assert 0.15 <= naive["marginal"] <= 0.4 and naive["recall"] <= 0.25
    # Partial: A's unlabelled chemicals may be Chemical, B's must be (measured: 1.00 and 1.00).
    assert partial["marginal"] >= 0.99 and partial["recall"] == 1.0
    assert partial["others_right"] == 1.0 and naive["others_right"] == 1.0  # diseases and fillers in both
