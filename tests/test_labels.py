"""The label set: canonical order, lookups, JSON, and IOB2 transition masks (brute force)."""

from __future__ import annotations

import itertools
import json

import pytest

from adabiobert.labels import LabelSet
from adabiobert.spans import is_valid_iob2


def test_order_is_o_then_sorted_types() -> None:
    labels = LabelSet.from_entity_types(["Gene", "Chemical", "Gene"])
    assert labels.tags == ("O", "B-Chemical", "I-Chemical", "B-Gene", "I-Gene")


def test_order_does_not_depend_on_data_order() -> None:
    one = LabelSet.from_tag_sequences([["B-Gene", "O"], ["I-Chemical"]])
    other = LabelSet.from_tag_sequences([["B-Chemical"], ["O", "I-Gene"]])
    assert one == other == LabelSet.from_entity_types(["Chemical", "Gene"])


def test_type_seen_only_as_inside_gets_both_tags() -> None:
    assert LabelSet.from_tag_sequences([["O", "I-Gene"]]).tags == ("O", "B-Gene", "I-Gene")


def test_no_entities_gives_only_o() -> None:
    labels = LabelSet.from_tag_sequences([["O", "O"], []])
    assert labels.tags == ("O",)
    assert len(labels) == 1
    assert labels.entity_types == ()


def test_from_tag_sequences_rejects_malformed_tags() -> None:
    with pytest.raises(ValueError, match="X-Gene"):
        LabelSet.from_tag_sequences([["O", "X-Gene"]])


def test_index_and_len() -> None:
    labels = LabelSet.from_entity_types(["Disease"])
    assert [labels.index(tag) for tag in ("O", "B-Disease", "I-Disease")] == [0, 1, 2]
    assert len(labels) == 3


def test_index_of_unknown_tag_names_it_and_the_known_tags() -> None:
    labels = LabelSet.from_entity_types(["Disease"])
    with pytest.raises(KeyError, match=r"B-Gene.*'O', 'B-Disease', 'I-Disease'"):
        labels.index("B-Gene")


def test_entity_types_sorted() -> None:
    labels = LabelSet.from_entity_types(["protein", "DNA", "cell_line"])
    assert labels.entity_types == ("DNA", "cell_line", "protein")


def test_json_round_trip() -> None:
    labels = LabelSet.from_entity_types(["Chemical", "Disease"])
    assert LabelSet.from_json(json.loads(json.dumps(labels.to_json()))) == labels


@pytest.mark.parametrize(
    "bad", [{"tags": ["B-Gene", "I-Gene", "O"]}, {"tags": ["O", "B-Gene"]}, {"labels": ["O"]}]
)
def test_from_json_rejects_non_canonical_tags(bad: dict) -> None:
    with pytest.raises(ValueError):
        LabelSet.from_json(bad)


@pytest.mark.parametrize("types", [["A"], ["A", "B"]])
def test_constraints_allow_exactly_the_valid_iob2_paths(types: list[str]) -> None:
    labels = LabelSet.from_entity_types(types)
    start, transitions, end = labels.transition_constraints()
    n = len(labels)
    assert len(start) == len(end) == len(transitions) == n and all(len(row) == n for row in transitions)
    for length in range(1, 5):
        for path in itertools.product(range(n), repeat=length):
            allowed = (
                start[path[0]] and end[path[-1]] and all(transitions[i][j] for i, j in zip(path, path[1:]))
            )
            assert allowed == is_valid_iob2([labels.tags[i] for i in path]), [labels.tags[i] for i in path]


def test_every_tag_may_end_a_sentence() -> None:
    _, _, end = LabelSet.from_entity_types(["A", "B"]).transition_constraints()
    assert all(end)
