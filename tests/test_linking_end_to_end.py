"""End-to-end scores of tagging then linking (adabiobert/linking/end_to_end.py) on two hand-made
PubTator documents, a stand-in tagger and the small index; every count worked out by hand."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from adabiobert.corpora.pubtator import Mention, PubTatorDocument
from adabiobert.linking.end_to_end import LinkedMention, end_to_end_scores, evaluate_end_to_end, gold_linked
from adabiobert.linking.index import load_index
from adabiobert.linking.linker import Linker
from tests.linking_data import small_index


@dataclass(frozen=True)
class Found:
    start: int
    end: int
    label: str


def document(pmid: str, title: str, abstract: str, gold: list[tuple[str, int, str, tuple[str, ...]]]) -> PubTatorDocument:
    """``gold``: (phrase, its occurrence in the text, type, identifiers)."""
    text = f"{title} {abstract}"
    mentions = []
    for phrase, nth, entity_type, ids in gold:
        at = -1
        for _ in range(nth + 1):
            at = text.index(phrase, at + 1)
        mentions.append(Mention(at, at + len(phrase), phrase, entity_type, entity_type, ids))
    return PubTatorDocument(pmid, title, abstract, tuple(mentions))


DOCUMENTS = [
    document("1", "BRCA1 and breast and ovarian cancers", "Wilson disease (WD) is rare . WD patients were seen .", [
        ("BRCA1", 0, "Gene", ("672",)), ("breast and ovarian cancers", 0, "Disease", ("D001943", "D010051")),
        ("Wilson disease", 0, "Disease", ("D006527",)), ("WD", 0, "Disease", ("D006527",)), ("WD", 1, "Disease", ("D006527",)),
    ]),
    document("2", "Thalassemia in mice", "TP53 was studied .", [
        ("Thalassemia", 0, "Disease", ("D013789",)), ("mice", 0, "Species", ("10090",)), ("TP53", 0, "Gene", ("-",)),
    ]),
]
FOUND = {  # what the stand-in tagger finds in each piece: (phrase, occurrence, label)
    "BRCA1 and breast and ovarian cancers": [("BRCA1", 0, "Gene"), ("breast and ovarian cancers", 0, "Disease")],
    "Wilson disease (WD) is rare . WD patients were seen .": [("Wilson disease", 0, "Disease"), ("WD", 0, "Disease")],
    "Thalassemia in mice": [("Thalassemia", 0, "Disease"), ("mice", 0, "Species")],
    "TP53 was studied .": [("TP53", 0, "Gene")],
}
"""Every gold mention but the second WD, and TP53, which the gold has without an identifier."""


def tag(texts: list[str]) -> list[list[Found]]:
    found = []
    for text in texts:
        entities = []
        for phrase, nth, label in FOUND[text]:
            at = -1
            for _ in range(nth + 1):
                at = text.index(phrase, at + 1)
            entities.append(Found(at, at + len(phrase), label))
        found.append(entities)
    return found


@pytest.fixture(scope="module")
def linker(tmp_path_factory):
    return Linker(load_index(small_index(tmp_path_factory.mktemp("e2e"))))


def counts(prf) -> tuple[int, int, int]:
    return prf.tp, prf.fp, prf.fn


def test_mention_and_document_scores_by_hand(linker):
    scores = evaluate_end_to_end(tag, linker, DOCUMENTS)
    mention, by_document = scores.mention.per_type, scores.document.per_type
    # Disease: composite, Wilson disease and the first WD right; the second WD missed; Thalassemia,
    # not in the small vocabularies, abstained: a wrong prediction and a missed gold mention
    assert counts(mention["Disease"]) == (3, 1, 2)
    assert counts(mention["Gene"]) == (1, 0, 0)  # TP53: gold without an identifier, not scored
    assert counts(mention["Species"]) == (1, 0, 0)
    assert counts(scores.mention.micro) == (5, 1, 2) and scores.mention.micro.f1 == pytest.approx(10 / 13)
    # per document: {D001943, D010051, D006527} found in 1, D013789 of 2 not
    assert counts(by_document["Disease"]) == (3, 0, 1)
    assert counts(by_document["Gene"]) == (1, 0, 0) and counts(by_document["Species"]) == (1, 0, 0)
    assert scores.document.micro.f1 == pytest.approx(2 * 5 / (2 * 5 + 0 + 1))


def test_a_wrong_identifier_is_a_wrong_mention_and_the_types_asked_for_are_scored(linker):
    gold = gold_linked(DOCUMENTS)
    assert gold[1].identifiers == frozenset({"MESH:D001943", "MESH:D010051"}) and gold[-1].identifiers == frozenset()
    wrong = [LinkedMention("1", gold[0].start, gold[0].end, "Gene", frozenset({"NCBIGene:675"}))]
    scores = end_to_end_scores(gold, wrong, types=("Gene", "Chemical"))
    assert list(scores.mention.per_type) == ["Chemical", "Gene"]
    assert counts(scores.mention.per_type["Gene"]) == (0, 1, 1)  # right span and type, wrong gene
    assert counts(scores.document.per_type["Gene"]) == (0, 1, 1)
    assert counts(scores.mention.per_type["Chemical"]) == (0, 0, 0)
