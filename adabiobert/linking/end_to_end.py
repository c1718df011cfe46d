"""End-to-end scores of tagging then linking, from raw text: TaggerOne's and BC5CDR's measures.

* **Mention level**, strict on (span, type, identifiers): a predicted mention is right when a gold
  mention has its document, start, end, type and the same set of identifiers (a composite's
  parts in any order). A predicted mention without an identifier (the linker abstained, or no
  vocabulary) is wrong unless the gold mention at its place has none either; gold mentions
  without an identifier are left out, and so are predictions at exactly their place and type,
  which can be neither right nor wrong.
* **Document level** (BC5CDR's measure): per document, the set of (type, identifier) pairs of
  its mentions, predicted against gold; a composite counts each of its identifiers (predictions
  at the place of a gold mention without an identifier are left out here too).

Both are per type and micro-averaged over the types scored. The spans come from
``adabiobert.corpora.offset_evaluation.predicted_mentions`` (each document's title and abstract
tagged as the annotation job tags them, offsets into ``title + " " + abstract``); each document's
spans are then linked in one ``Linker.link`` call over that text, so its abbreviations resolve.
The tagger is any ``tag(texts)`` callable (``Tagger.tag``), so this module needs no model.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass

from adabiobert.corpora.offset_evaluation import TagTexts, predicted_mentions
from adabiobert.corpora.pubtator import PubTatorDocument
from adabiobert.linking.linker import COMPOSITE_SEPARATOR, Linker, Mention
from adabiobert.offset_metrics import OffsetPRF, OffsetScores

PREFIX = {"Disease": "MESH", "Chemical": "MESH", "Gene": "NCBIGene", "Species": "NCBITaxon"}
NO_IDENTIFIER = {"", "-", "-1"}
"""What corpora write for a mention without an identifier."""


@dataclass(frozen=True)
class LinkedMention:
    """A mention with the identifiers it names (empty: none)."""

    document: str
    start: int
    end: int
    type: str
    identifiers: frozenset[str]


@dataclass(frozen=True)
class EndToEndScores:
    mention: OffsetScores
    """Strict on (document, start, end, type, identifiers)."""
    document: OffsetScores
    """On the (document, type, identifier) sets."""


def gold_curie(identifier: str, entity_type: str) -> str:
    """A corpus identifier as a CURIE (``D009369`` -> ``MESH:D009369``, ``672`` -> ``NCBIGene:672``)."""
    identifier = identifier.strip()
    if ":" in identifier:
        prefix, _, local = identifier.partition(":")
        return f"{'MESH' if prefix.upper() == 'MESH' else prefix}:{local}"
    if entity_type in ("Disease", "Chemical") and identifier[:1] in ("D", "C"):
        return f"MESH:{identifier}"
    return f"{PREFIX.get(entity_type, entity_type)}:{identifier}"


def gold_linked(documents: Sequence[PubTatorDocument]) -> list[LinkedMention]:
    """Every gold mention with its identifiers as CURIEs (empty when the corpus gives none)."""
    return [LinkedMention(d.pmid, m.start, m.end, m.type,
                          frozenset(gold_curie(i, m.type) for i in m.identifiers if i.strip() not in NO_IDENTIFIER))
            for d in documents for m in d.mentions]


def predicted_linked(tag: TagTexts, linker: Linker, documents: Sequence[PubTatorDocument],
                     documents_per_call: int = 256) -> list[LinkedMention]:
    """The tagger's mentions of each document, each linked over the document's text."""
    spans: dict[str, list] = defaultdict(list)
    for mention in predicted_mentions(tag, documents, documents_per_call):
        spans[mention.document].append(mention)
    linked = []
    for document in documents:
        found = spans.get(document.pmid, [])
        links = linker.link(document.text, [Mention(m.start, m.end, m.type) for m in found])
        for mention, link in zip(found, links):
            ids = frozenset(link.concept_id.split(COMPOSITE_SEPARATOR)) if link.concept_id else frozenset()
            linked.append(LinkedMention(document.pmid, mention.start, mention.end, mention.type, ids))
    return linked


def end_to_end_scores(gold: Iterable[LinkedMention], predicted: Iterable[LinkedMention],
                      types: Collection[str] | None = None) -> EndToEndScores:
    """Mention- and document-level scores (module docstring) of ``predicted`` against ``gold``.

    Args:
        types: score only these types (each gets an entry); None: every type seen.
    """
    gold = [m for m in gold if types is None or m.type in types]
    predicted = [m for m in predicted if types is None or m.type in types]
    unscored = {(m.document, m.start, m.end, m.type) for m in gold if not m.identifiers}
    mention_gold = {(m.type, (m.document, m.start, m.end, m.identifiers)) for m in gold if m.identifiers}
    scored = [m for m in predicted if (m.document, m.start, m.end, m.type) not in unscored]
    mention_predicted = {(m.type, (m.document, m.start, m.end, m.identifiers)) for m in scored}
    document_gold = {(m.type, (m.document, i)) for m in gold for i in m.identifiers}
    document_predicted = {(m.type, (m.document, i)) for m in scored for i in m.identifiers}
    names = sorted(set(types) if types is not None else {m.type for m in [*gold, *predicted]})
    return EndToEndScores(_scores(mention_gold, mention_predicted, names), _scores(document_gold, document_predicted, names))


def evaluate_end_to_end(tag: TagTexts, linker: Linker, documents: Sequence[PubTatorDocument],
                        types: Collection[str] | None = None) -> EndToEndScores:
    """Tag and link ``documents`` from their text and score both levels against their gold mentions.

    Args:
        tag: the tagger (``Tagger.tag``).
        linker: the linker (``Linker`` over the run's index).
        types: the types the corpus annotates (``ReadReport.annotated_types``); None: every type seen.
    """
    return end_to_end_scores(gold_linked(documents), predicted_linked(tag, linker, documents), types)


def _scores(gold: set[tuple[str, tuple]], predicted: set[tuple[str, tuple]], names: list[str]) -> OffsetScores:
    per_type = {}
    for name in names:
        gold_of = {item for t, item in gold if t == name}
        predicted_of = {item for t, item in predicted if t == name}
        hits = len(gold_of & predicted_of)
        per_type[name] = OffsetPRF(tp=hits, fp=len(predicted_of) - hits, fn=len(gold_of) - hits)
    micro = OffsetPRF(tp=sum(s.tp for s in per_type.values()), fp=sum(s.fp for s in per_type.values()),
                      fn=sum(s.fn for s in per_type.values()))
    return OffsetScores(micro=micro, per_type=per_type)
