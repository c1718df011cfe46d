"""The tag alphabet of a tagger and the IOB2 transitions a decoder may take.

The order of tags is fixed by the entity types alone: ``O`` first, then ``B-type``, ``I-type``
for each type in sorted order. Two corpora with the same types therefore get the same indices,
whatever order their sentences came in, and a saved tagger's label set can be rebuilt exactly.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from adabiobert.errors import ConfigError
from adabiobert.spans import OUTSIDE, split_tag


@dataclass(frozen=True)
class LabelSet:
    """The tags of a tagger, in their canonical order.

    Build one with ``from_entity_types`` or ``from_tag_sequences``; the constructor only checks
    that ``tags`` is already canonical.
    """

    tags: tuple[str, ...]
    """``("O", "B-A", "I-A", "B-B", "I-B", ...)`` with the types sorted."""

    _index: dict[str, int] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        tags = tuple(self.tags)
        object.__setattr__(self, "tags", tags)
        types = {split_tag(tag)[1] for tag in tags if tag != OUTSIDE}
        expected = _canonical_tags(types)
        if tags != expected:
            raise ValueError(f"tags {list(tags)} are not in canonical order; expected {list(expected)}")
        object.__setattr__(self, "_index", {tag: i for i, tag in enumerate(tags)})

    @classmethod
    def from_entity_types(cls, types: Iterable[str]) -> LabelSet:
        """The label set for these entity types.

        Args:
            types: entity type names (duplicates and order do not matter).

        Returns:
            ``O`` then ``B-type``, ``I-type`` for each type in sorted order.

        Raises:
            ValueError: if a type is empty.
        """
        types = set(types)
        if "" in types:
            raise ValueError("an entity type cannot be empty")
        return cls(_canonical_tags(types))

    @classmethod
    def from_tag_sequences(cls, seqs: Iterable[Sequence[str]]) -> LabelSet:
        """The label set holding every entity type that occurs in some tags.

        A type seen only as ``I-X`` still gets both ``B-X`` and ``I-X``.

        Args:
            seqs: tag sequences, one per sentence.

        Returns:
            The canonical label set of the types found (only ``O`` if none).

        Raises:
            ValueError: if a tag is not ``O``, ``B-<type>`` or ``I-<type>``.
        """
        types = {split_tag(tag)[1] for tags in seqs for tag in tags if tag != OUTSIDE}
        return cls(_canonical_tags(types))

    def index(self, tag: str) -> int:
        """The position of ``tag``.

        Raises:
            KeyError: if the tag is not in this set; the message names it and the known tags.
        """
        try:
            return self._index[tag]
        except KeyError:
            raise KeyError(f"tag {tag!r} is not in this label set; known tags: {list(self.tags)}") from None

    def __len__(self) -> int:
        return len(self.tags)

    @property
    def entity_types(self) -> tuple[str, ...]:
        """The entity types, sorted."""
        return tuple(split_tag(tag)[1] for tag in self.tags[1::2])

    def to_json(self) -> dict:
        """A JSON-able dict from which ``from_json`` rebuilds this set."""
        return {"tags": list(self.tags)}

    @classmethod
    def from_json(cls, d: dict) -> LabelSet:
        """Rebuild a label set written by ``to_json``.

        Raises:
            ValueError: if ``d`` has no ``tags`` list or the tags are not canonical.
        """
        tags = d.get("tags") if isinstance(d, dict) else None
        if not isinstance(tags, list) or not all(isinstance(tag, str) for tag in tags):
            raise ValueError(f"expected {{'tags': [str, ...]}}, got {d!r}")
        return cls(tuple(tags))

    def transition_constraints(self) -> tuple[list[bool], list[list[bool]], list[bool]]:
        """Which tag paths are valid IOB2, as masks for a CRF or a Viterbi decoder.

        ``I-X`` may follow only ``B-X`` or ``I-X`` and may not start a sentence; every other
        transition is allowed, and every tag may end a sentence. A path is allowed by these masks
        exactly when ``spans.is_valid_iob2`` accepts it.

        Returns:
            ``(start, transitions, end)``: ``start[j]`` whether tag ``j`` may be first,
            ``transitions[i][j]`` whether tag ``j`` may follow tag ``i``, ``end[j]`` whether tag
            ``j`` may be last.
        """
        parts = [split_tag(tag) for tag in self.tags]
        start = [prefix != "I" for prefix, _ in parts]
        transitions = [
            [
                to_prefix != "I" or (from_prefix != OUTSIDE and from_type == to_type)
                for to_prefix, to_type in parts
            ]
            for from_prefix, from_type in parts
        ]
        end = [True] * len(parts)
        return start, transitions, end


def _canonical_tags(types: Iterable[str]) -> tuple[str, ...]:
    tags = [OUTSIDE]
    for type_ in sorted(types):
        tags += [f"B-{type_}", f"I-{type_}"]
    return tuple(tags)


def parse_types(text: str) -> tuple[str, ...]:
    """A ``--types`` value, ``Gene,Disease``, as sorted distinct type names.

    Raises:
        ConfigError: no type named (empty, or only commas).
    """
    types = tuple(sorted({part.strip() for part in text.split(",") if part.strip()}))
    if not types:
        raise ConfigError(f"--types {text!r} names no entity type; give names joined by commas, e.g. Gene,Disease")
    return types


def require_known_types(types: Iterable[str], known: Sequence[str], tagger: str) -> None:
    """Refuse types a tagger does not tag (``--types`` of ``adabiobert tag`` and the annotation job).

    Args:
        types: the types asked for.
        known: the tagger's entity types (``LabelSet.entity_types``).
        tagger: what to call the tagger in the message (its bundle folder).

    Raises:
        ConfigError: naming the unknown types and the ones the tagger has.
    """
    unknown = sorted(set(types) - set(known))
    if unknown:
        raise ConfigError(f"--types {','.join(unknown)}: {tagger} does not tag {'this type' if len(unknown) == 1 else 'these types'}; "
                          f"it tags {', '.join(known) or 'nothing'}")
