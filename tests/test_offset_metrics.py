"""Strict character-offset scores against counts and scores worked out by hand."""

from __future__ import annotations

import pytest

from adabiobert.offset_metrics import OffsetPRF, offset_scores

GOLD = [
    ("d1", 0, 5, "Gene"),
    ("d1", 10, 20, "Disease"),
    ("d1", 30, 35, "Chemical"),
    ("d2", 0, 5, "Gene"),
    ("d2", 7, 9, "Gene"),
    ("d2", 10, 20, "Disease"),
]
PREDICTED = [
    ("d1", 0, 5, "Gene"),  # right
    ("d1", 10, 19, "Disease"),  # one character short: wrong
    ("d1", 30, 35, "Disease"),  # right place, wrong type: wrong
    ("d2", 0, 5, "Gene"),  # right
    ("d2", 7, 9, "Gene"),  # right
    ("d2", 12, 14, "Gene"),  # not in gold
    ("d3", 10, 20, "Disease"),  # gold's offsets, but in another document
]


def test_hand_computed_example() -> None:
    scores = offset_scores(GOLD, PREDICTED)
    # By hand: Gene 3 gold, 4 predicted, 3 right; Disease 2 gold, 3 predicted, 0 right;
    # Chemical 1 gold, 0 predicted.
    assert scores.per_type == {
        "Chemical": OffsetPRF(tp=0, fp=0, fn=1),
        "Disease": OffsetPRF(tp=0, fp=3, fn=2),
        "Gene": OffsetPRF(tp=3, fp=1, fn=0),
    }
    gene = scores.per_type["Gene"]
    assert gene.precision == 0.75
    assert gene.recall == 1.0
    assert gene.f1 == pytest.approx(6 / 7)  # 2 * 0.75 * 1 / 1.75
    assert (scores.per_type["Disease"].f1, scores.per_type["Chemical"].precision) == (0.0, 0.0)
    # Micro: tp 3, fp 4, fn 3; P = 3/7, R = 3/6, F1 = 2 * 3 / (2 * 3 + 4 + 3) = 6/13.
    assert scores.micro == OffsetPRF(tp=3, fp=4, fn=3)
    assert scores.micro.precision == pytest.approx(3 / 7)
    assert scores.micro.recall == 0.5
    assert scores.micro.f1 == pytest.approx(6 / 13)
    assert scores.micro.support == 6


def test_types_restricts_both_sides() -> None:
    scores = offset_scores(GOLD, PREDICTED, types={"Gene", "Species"})
    assert scores.per_type == {"Gene": OffsetPRF(3, 1, 0), "Species": OffsetPRF(0, 0, 0)}
    assert scores.micro == OffsetPRF(3, 1, 0)
    assert scores.per_type["Species"].f1 == 0.0


def test_a_mention_given_twice_counts_once() -> None:
    scores = offset_scores(GOLD + GOLD[:1], PREDICTED + PREDICTED[:1])
    assert scores.micro == OffsetPRF(tp=3, fp=4, fn=3)


def test_nothing_to_score() -> None:
    scores = offset_scores([], [])
    assert scores.per_type == {} and scores.micro == OffsetPRF(0, 0, 0)
    assert (scores.micro.precision, scores.micro.recall, scores.micro.f1) == (0.0, 0.0, 0.0)


def test_perfect_prediction() -> None:
    scores = offset_scores(GOLD, list(reversed(GOLD)))
    assert (scores.micro.precision, scores.micro.recall, scores.micro.f1) == (1.0, 1.0, 1.0)


@pytest.mark.parametrize("bad", [("d1", 5, 5, "Gene"), ("d1", -1, 3, "Gene"), ("d1", 6, 2, "Gene")])
def test_offsets_must_make_a_span(bad: tuple[str, int, int, str]) -> None:
    with pytest.raises(ValueError, match="0 <= start < end"):
        offset_scores([bad], [])
