"""Scores of predicted tags against gold tags: entity-level (the honest ones) and the paper's.

Entity scores are strict: a predicted mention counts only if its first word, last word and type
all match a gold mention. Mentions are read with ``spans.tags_to_spans`` (conlleval's rules), so
these numbers equal seqeval's default mode, and seqeval's ``mode="strict", scheme=IOB2`` on valid
IOB2.

The paper's metric is different: scikit-learn's ``f1_score`` over every word's tag, ``O``
included. Since most words are ``O`` and trivially right, it inflates scores well above entity F1
(micro-averaged it equals word accuracy). It is reported here, always under a ``paper_`` name, so
that the paper's tables can be compared, never as the score to select models by.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

from adabiobert.spans import tags_to_spans


@dataclass(frozen=True)
class PRF:
    """Precision, recall and F1 of one entity type or an average, with the gold mention count."""

    precision: float
    recall: float
    f1: float
    support: int
    """Gold mentions counted (all types for an average)."""


@dataclass(frozen=True)
class EntityScores:
    """Strict entity-level scores (exact span and type)."""

    micro: PRF
    """Counts pooled over all mentions."""
    macro: PRF
    """Unweighted mean of the per-type scores over types in gold or predicted (seqeval's)."""
    per_type: dict[str, PRF]
    """One entry per type in gold or predicted, sorted by type."""


@dataclass(frozen=True)
class TokenScores:
    """The paper's word-level F1 (``O`` included; inflated, see the module docstring)."""

    micro_f1: float
    """Pooled over all words; equals word accuracy."""
    macro_f1: float
    """Unweighted mean of per-tag F1 over the tags in gold or predicted, ``O`` among them."""


def entity_scores(gold: Sequence[Sequence[str]], predicted: Sequence[Sequence[str]]) -> EntityScores:
    """Strict entity-level precision, recall and F1, micro, macro and per type.

    A zero denominator gives 0 (precision with no predictions, recall with no gold mentions, F1
    when both are 0). With no mention of any type in gold or predicted, macro scores are 0.

    Args:
        gold: the reference tags, one sequence per sentence.
        predicted: the predicted tags, same shape.

    Returns:
        The scores; ``support`` counts gold mentions.

    Raises:
        ValueError: if the sentence counts differ, a sentence's lengths differ (the message gives
            its index), or a tag is not ``O``, ``B-<type>`` or ``I-<type>``.
    """
    _check_shapes(gold, predicted)
    gold_mentions = _mentions(gold)
    predicted_mentions = _mentions(predicted)
    per_type: dict[str, PRF] = {}
    for type_ in sorted({m[-1] for m in gold_mentions | predicted_mentions}):
        gold_of_type = {m for m in gold_mentions if m[-1] == type_}
        predicted_of_type = {m for m in predicted_mentions if m[-1] == type_}
        true_positives = len(gold_of_type & predicted_of_type)
        per_type[type_] = _prf(true_positives, len(gold_of_type), len(predicted_of_type))
    micro = _prf(len(gold_mentions & predicted_mentions), len(gold_mentions), len(predicted_mentions))
    macro = _mean(list(per_type.values()), support=len(gold_mentions))
    return EntityScores(micro=micro, macro=macro, per_type=per_type)


def token_scores(gold: Sequence[Sequence[str]], predicted: Sequence[Sequence[str]]) -> TokenScores:
    """The paper's word-level F1: ``sklearn.metrics.f1_score`` over all words' tags, ``O`` included.

    Equal to ``f1_score(flat_gold, flat_predicted, average=a)`` for ``a`` in ``micro`` and
    ``macro`` (labels: sorted union of gold and predicted tags). It counts every ``O`` word, so it
    inflates scores; report it only to compare with the paper.

    Args:
        gold: the reference tags, one sequence per sentence.
        predicted: the predicted tags, same shape.

    Returns:
        Micro and macro F1 over words (both 0 when there are no words).

    Raises:
        ValueError: if the sentence counts differ or a sentence's lengths differ.
    """
    _check_shapes(gold, predicted)
    pairs = [(g, p) for gold_tags, tags in zip(gold, predicted) for g, p in zip(gold_tags, tags)]
    gold_count = Counter(g for g, _ in pairs)
    predicted_count = Counter(p for _, p in pairs)
    true_positives = Counter(g for g, p in pairs if g == p)
    labels = sorted(gold_count.keys() | predicted_count.keys())
    if not labels:
        return TokenScores(micro_f1=0.0, macro_f1=0.0)
    # sklearn's F-beta from counts: (1 + b^2) tp / (b^2 (tp + fn) + (tp + fp)), with b = 1.
    per_label = [2 * true_positives[t] / (gold_count[t] + predicted_count[t]) for t in labels]
    # Every word's gold and predicted tag are among the labels, so pooled P = R = F1 = accuracy.
    micro = sum(true_positives.values()) / len(pairs)
    return TokenScores(micro_f1=micro, macro_f1=sum(per_label) / len(per_label))


def evaluation_summary(
    gold: Sequence[Sequence[str]], predicted: Sequence[Sequence[str]]
) -> dict[str, float | dict]:
    """Every score of one evaluation as a flat JSON-able dict.

    Keys: ``entity_precision``, ``entity_recall``, ``entity_f1`` (strict, micro over mentions),
    ``entity_macro_f1``, ``entity_per_type`` (type -> ``{precision, recall, f1, support}``),
    ``paper_token_micro_f1`` and ``paper_token_macro_f1`` (the paper's word-level F1, ``O``
    included, inflated), ``sentences``, ``gold_mentions``, ``predicted_mentions``.

    Args:
        gold: the reference tags, one sequence per sentence.
        predicted: the predicted tags, same shape.

    Returns:
        The dict described above.

    Raises:
        ValueError: as ``entity_scores``.
    """
    entities = entity_scores(gold, predicted)
    tokens = token_scores(gold, predicted)
    return {
        "entity_precision": entities.micro.precision,
        "entity_recall": entities.micro.recall,
        "entity_f1": entities.micro.f1,
        "entity_macro_f1": entities.macro.f1,
        "entity_per_type": {
            type_: {"precision": s.precision, "recall": s.recall, "f1": s.f1, "support": s.support}
            for type_, s in entities.per_type.items()
        },
        "paper_token_micro_f1": tokens.micro_f1,
        "paper_token_macro_f1": tokens.macro_f1,
        "sentences": len(gold),
        "gold_mentions": entities.micro.support,
        "predicted_mentions": sum(len(tags_to_spans(tags)) for tags in predicted),
    }


def _check_shapes(gold: Sequence[Sequence[str]], predicted: Sequence[Sequence[str]]) -> None:
    if len(gold) != len(predicted):
        raise ValueError(f"gold has {len(gold)} sentences but predicted has {len(predicted)}")
    for i, (gold_tags, predicted_tags) in enumerate(zip(gold, predicted)):
        if len(gold_tags) != len(predicted_tags):
            raise ValueError(
                f"sentence {i}: gold has {len(gold_tags)} tags but predicted has {len(predicted_tags)}"
            )


def _mentions(seqs: Sequence[Sequence[str]]) -> set[tuple[int, int, int, str]]:
    """Every mention as (sentence, start, end, type)."""
    mentions = set()
    for i, tags in enumerate(seqs):
        try:
            mentions.update((i, s.start, s.end, s.label) for s in tags_to_spans(tags))
        except ValueError as error:
            raise ValueError(f"sentence {i}: {error}") from None
    return mentions


def _divide(numerator: float, denominator: float) -> float:
    return numerator / denominator if denominator else 0.0


def _prf(true_positives: int, gold: int, predicted: int) -> PRF:
    precision = _divide(true_positives, predicted)
    recall = _divide(true_positives, gold)
    # F1 as seqeval computes it, from P and R (not from the counts), 0 when both are 0.
    f1 = _divide(2 * precision * recall, precision + recall)
    return PRF(precision=precision, recall=recall, f1=f1, support=gold)


def _mean(scores: list[PRF], support: int) -> PRF:
    if not scores:
        return PRF(precision=0.0, recall=0.0, f1=0.0, support=support)
    n = len(scores)
    return PRF(
        precision=sum(s.precision for s in scores) / n,
        recall=sum(s.recall for s in scores) / n,
        f1=sum(s.f1 for s in scores) / n,
        support=support,
    )
