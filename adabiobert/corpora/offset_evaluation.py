"""Score a tagger on PubTator documents through the public tagging path: text in, offsets out.

Each document's title and abstract are tagged as two texts, as the annotation job tags an
article's title and abstract as two pieces (``pubtator_sentences.document_pieces``); the
entities' offsets are moved into ``title + " " + abstract``, the string the gold offsets point
into, and scored strictly by ``offset_metrics.offset_scores``: a prediction is right only when a
gold mention has its document, start, end and type. The gold side is every mention the reader
kept, as the file writes it: mentions that training dropped (across sentences) or snapped (off
word boundaries) are misses here unless the tagger finds them exactly.

The tagger is any callable ``tag(texts) -> [[entity, ...], ...]`` whose entities have ``start``,
``end`` and ``label`` (``Tagger.tag``), so this module needs no model.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Sequence
from typing import Protocol

from adabiobert.corpora.pubtator import PubTatorDocument
from adabiobert.corpora.pubtator_sentences import document_pieces
from adabiobert.offset_metrics import OffsetMention, OffsetPRF, OffsetScores, offset_scores


class TaggedSpan(Protocol):
    """What the scorer reads of an entity (``adabiobert.tagger.Entity`` has it)."""

    start: int
    end: int
    label: str


TagTexts = Callable[[list[str]], Sequence[Sequence[TaggedSpan]]]
"""``tag(texts)``: the entities of each text, offsets into that text."""


def gold_mentions(documents: Sequence[PubTatorDocument]) -> list[OffsetMention]:
    """Every mention of the documents, as (PMID, start, end, type)."""
    return [OffsetMention(d.pmid, m.start, m.end, m.type) for d in documents for m in d.mentions]


def predicted_mentions(tag: TagTexts, documents: Sequence[PubTatorDocument],
                       documents_per_call: int = 256) -> list[OffsetMention]:
    """Tag each document's title and abstract; the entities as (PMID, start, end, type), offsets
    into ``document.text``.

    Args:
        tag: the tagger (``Tagger.tag``).
        documents: as ``read_pubtator`` gives them.
        documents_per_call: documents whose pieces go to one ``tag`` call (it batches them itself).
    """
    predicted = []
    for first in range(0, len(documents), documents_per_call):
        pieces = [(d.pmid, offset, text) for d in documents[first:first + documents_per_call]
                  for offset, text in document_pieces(d)]
        entities = tag([text for _, _, text in pieces])
        if len(entities) != len(pieces):
            raise ValueError(f"the tagger returned {len(entities)} results for {len(pieces)} texts")
        for (pmid, offset, _), found in zip(pieces, entities):
            predicted.extend(OffsetMention(pmid, e.start + offset, e.end + offset, e.label) for e in found)
    return predicted


def evaluate_documents(tag: TagTexts, documents: Sequence[PubTatorDocument],
                       types: Collection[str] | None = None) -> OffsetScores:
    """Strict character-offset scores of ``tag`` on ``documents``, per type and micro-averaged.

    Args:
        tag: the tagger (``Tagger.tag``).
        documents: gold documents.
        types: the types their corpus annotates (``ReadReport.annotated_types``): only these are
            scored, each with an entry, since a corpus that does not annotate chemicals cannot
            judge a predicted chemical. None: every type seen on either side.
    """
    return offset_scores(gold_mentions(documents), predicted_mentions(tag, documents), types)


def scores_to_dict(scores: OffsetScores, documents: int) -> dict:
    """JSON of one test set's scores: ``{"documents", "micro": {...}, "per_type": {type: {...}}}``,
    each with precision, recall, f1, tp, fp, fn and support."""
    return {"documents": documents, "micro": _prf(scores.micro),
            "per_type": {name: _prf(prf) for name, prf in scores.per_type.items()}}


def _prf(prf: OffsetPRF) -> dict:
    return {"precision": prf.precision, "recall": prf.recall, "f1": prf.f1, "tp": prf.tp, "fp": prf.fp,
            "fn": prf.fn, "support": prf.support}
