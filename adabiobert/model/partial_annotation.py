"""Which tags a word of a partially annotated corpus may take.

A corpus that annotates only some entity types (NCBI-disease: Disease) leaves the other types'
mentions unlabelled: its ``O`` means "not a mention of a type I annotate", not "not a mention".
The sets built here say exactly that, word by word, for ``ConstrainedCRF.partial_nll`` and the
partial cross-entropy of the ATS loss:

- a word labelled ``B-X`` or ``I-X`` may take only that tag;
- a word labelled ``O`` by a corpus that annotates the types T may take ``O``, ``B-Y`` or ``I-Y``
  for every type Y of the label set outside T.

Which of those paths are valid IOB2 is left to the CRF's transition constraints. A corpus that
annotates every type of the label set gets one tag per word, the ordinary likelihood.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence

import torch

from adabiobert.labels import LabelSet
from adabiobert.spans import OUTSIDE, split_tag


def allowed_tags(tags: Sequence[str], annotated_types: Collection[str], labels: LabelSet) -> torch.Tensor:
    """The tags each word of one sentence may take, given the types its corpus annotates.

    Pad a batch with ``torch.nn.utils.rnn.pad_sequence(masks, batch_first=True)``: padding rows
    are ignored by ``partial_nll``.

    Args:
        tags: the sentence's IOB2 tags as its corpus gives them.
        annotated_types: the entity types the sentence's corpus annotates, all in ``labels``.
        labels: the tagger's label set (the union of every corpus's types).

    Returns:
        (words, tags) bool, columns in ``labels.tags`` order.

    Raises:
        ValueError: if an annotated type is not in ``labels``, a word is labelled with a type
            the corpus does not declare it annotates, or a tag is not IOB2.
    """
    unknown = sorted(set(annotated_types) - set(labels.entity_types))
    if unknown:
        raise ValueError(f"annotated types {unknown} are not in the label set {list(labels.entity_types)}")
    unlabelled = torch.tensor([_may_be_unannotated(tag, annotated_types) for tag in labels.tags])  # (tags,)
    mask = torch.zeros((len(tags), len(labels)), dtype=torch.bool)  # (words, tags)
    for word, tag in enumerate(tags):
        if tag == OUTSIDE:
            mask[word] = unlabelled
            continue
        type_ = split_tag(tag)[1]
        if type_ not in annotated_types:
            raise ValueError(
                f"word {word} is tagged {tag!r}, but its corpus annotates only {sorted(annotated_types)}"
            )
        mask[word, labels.index(tag)] = True
    return mask


def _may_be_unannotated(tag: str, annotated_types: Collection[str]) -> bool:
    """Whether a word its corpus labels ``O`` may take ``tag``."""
    return tag == OUTSIDE or split_tag(tag)[1] not in annotated_types
