"""Strict scores of mentions by character offsets: what lands in the entity tables.

A predicted mention is right only when a gold mention has the same document, start, end and
type. Scores are per type and micro-averaged (counts pooled over every type). Mentions are sets:
the same (document, start, end, type) given twice counts once, on either side, since it names
one place in one text. The IOB metric (``adabiobert.metrics``) scores word tags of sentences;
this one scores raw text, whatever the sentence split or tokenization that made the mentions.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable
from dataclasses import dataclass
from typing import NamedTuple


class OffsetMention(NamedTuple):
    """A mention as the metric sees it; any 4-tuple in this order will do."""

    document: str
    start: int
    end: int
    """Exclusive."""
    type: str


@dataclass(frozen=True)
class OffsetPRF:
    """Counts and scores of one type, or of all types pooled. A zero denominator gives 0."""

    tp: int
    fp: int
    fn: int

    @property
    def precision(self) -> float:
        return self.tp / (self.tp + self.fp) if self.tp + self.fp else 0.0

    @property
    def recall(self) -> float:
        return self.tp / (self.tp + self.fn) if self.tp + self.fn else 0.0

    @property
    def f1(self) -> float:
        # 2PR / (P + R) written with counts: 2tp / (2tp + fp + fn).
        return 2 * self.tp / (2 * self.tp + self.fp + self.fn) if self.tp else 0.0

    @property
    def support(self) -> int:
        """Gold mentions."""
        return self.tp + self.fn


@dataclass(frozen=True)
class OffsetScores:
    """Strict offset scores of one evaluation."""

    micro: OffsetPRF
    """Counts pooled over every type scored."""
    per_type: dict[str, OffsetPRF]
    """One entry per type in gold or predicted (or per type asked for), sorted by type."""


def offset_scores(
    gold: Iterable[tuple[str, int, int, str]],
    predicted: Iterable[tuple[str, int, int, str]],
    types: Collection[str] | None = None,
) -> OffsetScores:
    """Strict precision, recall and F1 of predicted mentions against gold ones.

    Args:
        gold: (document, start, end, type) of each gold mention.
        predicted: the same of each predicted mention.
        types: score only these types, ignoring mentions of others on both sides (a corpus that
            does not annotate chemicals cannot judge a predicted chemical); each of them gets a
            ``per_type`` entry even without any mention. None: every type seen.

    Returns:
        Micro-averaged and per-type counts and scores.

    Raises:
        ValueError: for a mention whose offsets are not ``0 <= start < end``.
    """
    gold_set = _mention_set(gold, types)
    predicted_set = _mention_set(predicted, types)
    names = sorted(set(types) if types is not None else {m.type for m in gold_set | predicted_set})
    per_type = {}
    for name in names:
        gold_of = {m for m in gold_set if m.type == name}
        predicted_of = {m for m in predicted_set if m.type == name}
        hits = len(gold_of & predicted_of)
        per_type[name] = OffsetPRF(tp=hits, fp=len(predicted_of) - hits, fn=len(gold_of) - hits)
    micro = OffsetPRF(
        tp=sum(s.tp for s in per_type.values()),
        fp=sum(s.fp for s in per_type.values()),
        fn=sum(s.fn for s in per_type.values()),
    )
    return OffsetScores(micro=micro, per_type=per_type)


def _mention_set(mentions: Iterable[tuple[str, int, int, str]], types: Collection[str] | None) -> set[OffsetMention]:
    result = set()
    for document, start, end, type_ in mentions:
        if not 0 <= start < end:
            raise ValueError(f"mention ({document!r}, {start}, {end}, {type_!r}) does not have 0 <= start < end")
        if types is None or type_ in types:
            result.add(OffsetMention(str(document), int(start), int(end), type_))
    return result
