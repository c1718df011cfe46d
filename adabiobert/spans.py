"""IOB tags and the entity spans they encode.

Only the IOB2 alphabet is known here: ``O``, ``B-<type>`` and ``I-<type>`` (the type is any
non-empty string, and may itself contain ``-``, as in ``B-cell_line`` or ``B-DNA-fragment``).

Chunks are read with the rules of conlleval and of seqeval's default (non-strict) mode, so that
scores computed from these spans are the scores everyone reports:

* ``B-X`` always starts an entity;
* ``I-X`` continues an entity of type ``X`` and starts a new one after ``O``, at the start of a
  sentence, or after a tag of another type;
* an entity ends at ``O``, at ``B-*``, at a change of type, or at the end of the sentence.

Spans are word indices with ``end`` exclusive: ``Span(2, 4, "Disease")`` covers words 2 and 3.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

OUTSIDE = "O"


@dataclass(frozen=True, order=True)
class Span:
    """An entity mention: words ``start`` to ``end - 1`` of a sentence, of type ``label``."""

    start: int
    end: int
    label: str


def split_tag(tag: str) -> tuple[str, str]:
    """Split an IOB2 tag into its prefix and entity type.

    Args:
        tag: ``"O"``, ``"B-<type>"`` or ``"I-<type>"``.

    Returns:
        ``("O", "")`` for ``O``, else ``("B", type)`` or ``("I", type)``.

    Raises:
        ValueError: for any other string (``"X-Disease"``, ``"B-"``, ``"B"``, ``"S-Gene"``).
    """
    if tag == OUTSIDE:
        return OUTSIDE, ""
    if len(tag) > 2 and tag[0] in "BI" and tag[1] == "-":
        return tag[0], tag[2:]
    raise ValueError(f"tag {tag!r} is not O, B-<type> or I-<type>")


def tags_to_spans(tags: Sequence[str]) -> list[Span]:
    """Read the entities of one sentence, with conlleval's (seqeval's default) chunk rules.

    Args:
        tags: one tag per word; IOB1 and broken IOB2 are read as conlleval reads them.

    Returns:
        The entities in order of their start.

    Raises:
        ValueError: if a tag is not ``O``, ``B-<type>`` or ``I-<type>``.
    """
    spans: list[Span] = []
    start: int | None = None
    current = ""
    for i, tag in enumerate(tags):
        prefix, type_ = split_tag(tag)
        if start is not None and (prefix != "I" or type_ != current):
            spans.append(Span(start, i, current))
            start = None
        if prefix == "B" or (prefix == "I" and start is None):
            start, current = i, type_
    if start is not None:
        spans.append(Span(start, len(tags), current))
    return spans


def repair_iob2(tags: Sequence[str]) -> tuple[list[str], int]:
    """Turn IOB1 or broken IOB2 into valid IOB2 that encodes the same entities.

    An ``I-X`` that starts an entity (first word, after ``O`` or after another type) becomes
    ``B-X``; nothing else changes, so ``tags_to_spans`` gives the same spans before and after.

    Args:
        tags: one tag per word.

    Returns:
        The repaired tags and how many of them changed.

    Raises:
        ValueError: if a tag is not ``O``, ``B-<type>`` or ``I-<type>``.
    """
    repaired: list[str] = []
    changed = 0
    previous_prefix, previous_type = OUTSIDE, ""
    for tag in tags:
        prefix, type_ = split_tag(tag)
        if prefix == "I" and (previous_prefix == OUTSIDE or previous_type != type_):
            repaired.append(f"B-{type_}")
            changed += 1
        else:
            repaired.append(tag)
        previous_prefix, previous_type = prefix, type_
    return repaired, changed


def is_valid_iob2(tags: Sequence[str]) -> bool:
    """Whether every tag is well formed and every ``I-X`` follows ``B-X`` or ``I-X``.

    Args:
        tags: one tag per word.

    Returns:
        ``True`` for valid IOB2 (an empty sentence is valid); ``False`` otherwise, malformed tags
        included.
    """
    previous = OUTSIDE
    for tag in tags:
        try:
            prefix, type_ = split_tag(tag)
        except ValueError:
            return False
        if prefix == "I" and previous not in (f"B-{type_}", f"I-{type_}"):
            return False
        previous = tag
    return True


def spans_to_tags(spans: Iterable[Span], length: int) -> list[str]:
    """Write entities as IOB2 tags.

    Args:
        spans: non-overlapping entities, in any order.
        length: the number of words in the sentence.

    Returns:
        ``length`` tags: ``B-type`` on each entity's first word, ``I-type`` on the rest, ``O``
        elsewhere.

    Raises:
        ValueError: if a span is empty, falls outside ``[0, length)``, has an empty label, or
            overlaps another span.
    """
    tags = [OUTSIDE] * length
    for span in sorted(spans):
        if not 0 <= span.start < span.end <= length:
            raise ValueError(f"{span} is empty or outside a sentence of {length} words")
        if not span.label:
            raise ValueError(f"{span} has an empty label")
        if any(tag != OUTSIDE for tag in tags[span.start : span.end]):
            raise ValueError(f"{span} overlaps another span")
        tags[span.start] = f"B-{span.label}"
        tags[span.start + 1 : span.end] = [f"I-{span.label}"] * (span.end - span.start - 1)
    return tags
