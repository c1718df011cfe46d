"""Spans from IOB tags: conlleval's chunk rules, checked against seqeval's reader as the oracle."""

from __future__ import annotations

import random

import pytest
from seqeval.metrics.sequence_labeling import get_entities

from adabiobert.spans import Span, is_valid_iob2, repair_iob2, spans_to_tags, split_tag, tags_to_spans

TAGS = ["O", "O", "B-Gene", "I-Gene", "B-Disease", "I-Disease"]


def random_tags(rng: random.Random, length: int) -> list[str]:
    """Any sequence over the alphabet, broken IOB2 included (I- after O, type switches)."""
    return [rng.choice(TAGS) for _ in range(length)]


def seqeval_spans(tags: list[str]) -> list[Span]:
    return sorted(Span(start, end + 1, label) for label, start, end in get_entities(list(tags)))


def test_reads_entities_of_valid_iob2() -> None:
    tags = ["O", "B-Disease", "I-Disease", "O", "B-Gene"]
    assert tags_to_spans(tags) == [Span(1, 3, "Disease"), Span(4, 5, "Gene")]


def test_i_after_o_starts_an_entity() -> None:
    assert tags_to_spans(["O", "I-Gene", "I-Gene"]) == [Span(1, 3, "Gene")]


def test_i_of_another_type_starts_a_new_entity() -> None:
    assert tags_to_spans(["B-Gene", "I-Disease"]) == [Span(0, 1, "Gene"), Span(1, 2, "Disease")]


def test_b_after_b_starts_a_new_entity() -> None:
    assert tags_to_spans(["B-Gene", "B-Gene", "I-Gene"]) == [Span(0, 1, "Gene"), Span(1, 3, "Gene")]


def test_type_may_contain_a_hyphen() -> None:
    assert tags_to_spans(["B-DNA-fragment", "I-DNA-fragment"]) == [Span(0, 2, "DNA-fragment")]


def test_empty_sentence_has_no_spans() -> None:
    assert tags_to_spans([]) == []


def test_agrees_with_seqeval_on_random_sequences() -> None:
    rng = random.Random(0)
    for _ in range(500):
        tags = random_tags(rng, rng.randint(0, 12))
        assert tags_to_spans(tags) == seqeval_spans(tags), tags


@pytest.mark.parametrize("tag", ["X-Disease", "B-", "I-", "B", "S-Gene", "E-Gene", "o", ""])
def test_rejects_tags_outside_iob2(tag: str) -> None:
    with pytest.raises(ValueError, match="is not O, B-<type> or I-<type>"):
        split_tag(tag)
    with pytest.raises(ValueError):
        tags_to_spans(["O", tag])


def test_repair_turns_iob1_into_iob2_and_counts() -> None:
    iob1 = ["I-Gene", "I-Gene", "O", "I-Gene", "B-Gene", "I-Disease"]
    repaired, changed = repair_iob2(iob1)
    assert repaired == ["B-Gene", "I-Gene", "O", "B-Gene", "B-Gene", "B-Disease"]
    assert changed == 3


def test_repair_leaves_valid_iob2_alone() -> None:
    tags = ["B-Gene", "I-Gene", "O", "B-Disease"]
    assert repair_iob2(tags) == (tags, 0)


def test_repair_keeps_the_spans_and_gives_valid_iob2() -> None:
    rng = random.Random(1)
    for _ in range(300):
        tags = random_tags(rng, rng.randint(0, 10))
        repaired, changed = repair_iob2(tags)
        assert is_valid_iob2(repaired)
        assert tags_to_spans(repaired) == tags_to_spans(tags)
        assert changed == sum(a != b for a, b in zip(tags, repaired))


@pytest.mark.parametrize(
    ("tags", "valid"),
    [
        ([], True),
        (["O", "B-Gene", "I-Gene", "B-Gene"], True),
        (["I-Gene"], False),
        (["O", "I-Gene"], False),
        (["B-Disease", "I-Gene"], False),
        (["B-Gene", "X-Gene"], False),
    ],
)
def test_is_valid_iob2(tags: list[str], valid: bool) -> None:
    assert is_valid_iob2(tags) is valid


def test_spans_to_tags_inverts_tags_to_spans_on_valid_iob2() -> None:
    rng = random.Random(2)
    for _ in range(300):
        tags, _ = repair_iob2(random_tags(rng, rng.randint(0, 10)))
        assert spans_to_tags(tags_to_spans(tags), len(tags)) == tags


def test_spans_to_tags_accepts_any_order() -> None:
    spans = [Span(3, 4, "Gene"), Span(0, 2, "Disease")]
    assert spans_to_tags(spans, 5) == ["B-Disease", "I-Disease", "O", "B-Gene", "O"]


@pytest.mark.parametrize(
    "spans",
    [
        [Span(0, 2, "A"), Span(1, 3, "A")],
        [Span(2, 6, "A")],
        [Span(2, 2, "A")],
        [Span(-1, 1, "A")],
        [Span(0, 1, "")],
    ],
)
def test_spans_to_tags_rejects_bad_spans(spans: list[Span]) -> None:
    with pytest.raises(ValueError):
        spans_to_tags(spans, 5)
