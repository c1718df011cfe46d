"""Scores against their oracles: seqeval for entity scores, scikit-learn for the paper's metric."""

from __future__ import annotations

import random

import pytest
from seqeval.metrics import v1 as seqeval_v1
from seqeval.metrics.sequence_labeling import get_entities
from seqeval.metrics.sequence_labeling import precision_recall_fscore_support as seqeval_prfs
from seqeval.scheme import IOB2
from sklearn.metrics import f1_score

from adabiobert.metrics import PRF, entity_scores, evaluation_summary, token_scores
from adabiobert.spans import repair_iob2

TAGS = ["O", "O", "O", "B-Gene", "I-Gene", "B-Disease", "I-Disease", "B-Chemical"]


def random_corpus(seed: int, sentences: int, *, valid: bool) -> tuple[list[list[str]], list[list[str]]]:
    """Gold and predicted tags of the same shape; broken IOB2 (I- after O, type switches) unless valid."""
    rng = random.Random(seed)
    gold, predicted = [], []
    for _ in range(sentences):
        length = rng.randint(0, 9)
        pair = [[rng.choice(TAGS) for _ in range(length)] for _ in range(2)]
        if valid:
            pair = [repair_iob2(tags)[0] for tags in pair]
        gold.append(pair[0])
        predicted.append(pair[1])
    return gold, predicted


def assert_prf(ours: PRF, precision: float, recall: float, f1: float, support: int) -> None:
    assert (ours.precision, ours.recall, ours.f1) == pytest.approx((precision, recall, f1), abs=1e-12)
    assert ours.support == support


@pytest.mark.parametrize("seed", range(4))
def test_micro_and_macro_equal_seqeval_default_mode(seed: int) -> None:
    gold, predicted = random_corpus(seed, 100, valid=False)
    scores = entity_scores(gold, predicted)
    for average, ours in (("micro", scores.micro), ("macro", scores.macro)):
        assert_prf(ours, *seqeval_prfs(gold, predicted, average=average, zero_division=0))


@pytest.mark.parametrize("seed", range(4))
def test_per_type_equals_seqeval_default_mode(seed: int) -> None:
    gold, predicted = random_corpus(seed, 100, valid=False)
    names = sorted({label for tags in gold + predicted for label, _, _ in get_entities(tags)})
    precision, recall, f1, support = seqeval_prfs(gold, predicted, average=None, zero_division=0)
    scores = entity_scores(gold, predicted)
    assert list(scores.per_type) == names
    for i, name in enumerate(names):
        assert_prf(scores.per_type[name], precision[i], recall[i], f1[i], support[i])


@pytest.mark.parametrize("seed", range(4))
def test_equals_seqeval_strict_iob2_on_valid_sequences(seed: int) -> None:
    gold, predicted = random_corpus(100 + seed, 100, valid=True)
    scores = entity_scores(gold, predicted)
    for average, ours in (("micro", scores.micro), ("macro", scores.macro)):
        oracle = seqeval_v1.precision_recall_fscore_support(
            gold, predicted, average=average, scheme=IOB2, zero_division=0
        )
        assert_prf(ours, *oracle)
    names = seqeval_v1.unique_labels(gold, predicted, IOB2)
    precision, recall, f1, support = seqeval_v1.precision_recall_fscore_support(
        gold, predicted, average=None, scheme=IOB2, zero_division=0
    )
    assert list(scores.per_type) == names
    for i, name in enumerate(names):
        assert_prf(scores.per_type[name], precision[i], recall[i], f1[i], support[i])


def test_no_entities_anywhere_scores_zero() -> None:
    # seqeval's macro average is NaN here (mean of nothing); ours is 0 by the zero-division rule.
    scores = entity_scores([["O", "O"], []], [["O", "O"], []])
    assert scores.per_type == {}
    assert scores.micro == PRF(0.0, 0.0, 0.0, 0)
    assert scores.macro == PRF(0.0, 0.0, 0.0, 0)


def test_no_predictions_gives_zero_precision_and_recall() -> None:
    scores = entity_scores([["B-Gene", "O"]], [["O", "O"]])
    assert scores.micro == PRF(0.0, 0.0, 0.0, 1)
    assert scores.per_type == {"Gene": PRF(0.0, 0.0, 0.0, 1)}


def test_no_gold_entities_gives_zero_scores() -> None:
    scores = entity_scores([["O", "O"]], [["B-Gene", "O"]])
    assert scores.micro == PRF(0.0, 0.0, 0.0, 0)


def test_empty_sentences_count_for_nothing() -> None:
    with_empty = entity_scores([[], ["B-Gene"], []], [[], ["B-Gene"], []])
    assert with_empty == entity_scores([["B-Gene"]], [["B-Gene"]])
    assert with_empty.micro == PRF(1.0, 1.0, 1.0, 1)


def test_single_word_entity_at_the_end_is_matched() -> None:
    scores = entity_scores([["O", "O", "B-Disease"]], [["O", "O", "B-Disease"]])
    assert scores.micro == PRF(1.0, 1.0, 1.0, 1)


def test_type_only_predicted_enters_the_macro_average() -> None:
    gold, predicted = [["B-Gene", "O"]], [["B-Gene", "B-Chemical"]]
    scores = entity_scores(gold, predicted)
    assert scores.per_type["Chemical"] == PRF(0.0, 0.0, 0.0, 0)
    assert scores.macro.f1 == pytest.approx(0.5)
    assert_prf(scores.macro, *seqeval_prfs(gold, predicted, average="macro", zero_division=0))


def test_mentions_must_match_exactly() -> None:
    scores = entity_scores([["B-Gene", "I-Gene", "O"]], [["B-Gene", "O", "O"]])
    assert scores.micro == PRF(0.0, 0.0, 0.0, 1)


def test_mentions_in_different_sentences_are_different() -> None:
    scores = entity_scores([["B-Gene"], ["O"]], [["O"], ["B-Gene"]])
    assert scores.micro.f1 == 0.0


def test_different_sentence_counts_are_rejected() -> None:
    with pytest.raises(ValueError, match="2 sentences but predicted has 1"):
        entity_scores([["O"], ["O"]], [["O"]])


def test_different_sentence_lengths_name_the_sentence() -> None:
    with pytest.raises(ValueError, match="sentence 1: gold has 2 tags but predicted has 1"):
        entity_scores([["O"], ["O", "O"]], [["O"], ["O"]])


def test_malformed_tag_names_the_sentence() -> None:
    with pytest.raises(ValueError, match="sentence 1: tag 'X-Gene'"):
        entity_scores([["O"], ["O"]], [["O"], ["X-Gene"]])


@pytest.mark.parametrize("seed", range(4))
def test_paper_token_scores_equal_sklearn(seed: int) -> None:
    gold, predicted = random_corpus(200 + seed, 60, valid=seed % 2 == 0)
    flat_gold = [tag for tags in gold for tag in tags]
    flat_predicted = [tag for tags in predicted for tag in tags]
    scores = token_scores(gold, predicted)
    assert scores.micro_f1 == pytest.approx(f1_score(flat_gold, flat_predicted, average="micro"), abs=1e-12)
    assert scores.macro_f1 == pytest.approx(f1_score(flat_gold, flat_predicted, average="macro"), abs=1e-12)


def test_paper_token_macro_counts_a_tag_only_predicted() -> None:
    gold, predicted = [["O", "B-Gene"]], [["O", "B-Disease"]]
    expected = f1_score(["O", "B-Gene"], ["O", "B-Disease"], average="macro", zero_division=0)
    assert token_scores(gold, predicted).macro_f1 == pytest.approx(expected)
    assert expected == pytest.approx(1 / 3)


def test_paper_token_scores_include_o_and_inflate() -> None:
    gold = [["O"] * 9 + ["B-Gene"]]
    predicted = [["O"] * 10]
    assert token_scores(gold, predicted).micro_f1 == pytest.approx(0.9)
    assert entity_scores(gold, predicted).micro.f1 == 0.0


def test_paper_token_scores_of_no_words_are_zero() -> None:
    assert token_scores([[]], [[]]).micro_f1 == 0.0


def test_summary_has_the_documented_keys_and_values() -> None:
    gold = [["B-Gene", "I-Gene", "O", "B-Chemical"], ["O"]]
    predicted = [["B-Gene", "I-Gene", "O", "O"], ["B-Gene"]]
    summary = evaluation_summary(gold, predicted)
    assert set(summary) == {
        "entity_precision", "entity_recall", "entity_f1", "entity_macro_f1", "entity_per_type",
        "paper_token_micro_f1", "paper_token_macro_f1", "sentences", "gold_mentions", "predicted_mentions",
    }  # fmt: skip
    assert (summary["entity_precision"], summary["entity_recall"]) == pytest.approx((0.5, 0.5))
    gene = summary["entity_per_type"]["Gene"]
    assert gene == {"precision": 0.5, "recall": 1.0, "f1": pytest.approx(2 / 3), "support": 1}
    assert (summary["sentences"], summary["gold_mentions"], summary["predicted_mentions"]) == (2, 2, 2)
    assert summary["paper_token_micro_f1"] == pytest.approx(3 / 5)
