"""Tiny PubTator corpora for the union tests: one annotates diseases, the other species, and each
text holds the other type unannotated (the case partial annotation is for)."""

from __future__ import annotations

from pathlib import Path

from adabiobert.corpora.mix import is_dev_document

DISEASES = ("breast cancer", "cystic fibrosis", "muscular dystrophy", "diabetes", "hemophilia", "asthma", "epilepsy")
SPECIES = ("mice", "rats", "zebrafish", "humans", "yeast", "dogs")

Document = tuple[str, str, str, list[tuple[int, int, str]]]
"""(PMID, title, abstract, mentions as (start, end, source type)), offsets into title + " " + abstract."""


def _documents(annotate: str, source_type: str, count: int, first_pmid: int) -> list[Document]:
    documents = []
    for i in range(count):
        disease, species = DISEASES[i % len(DISEASES)], SPECIES[i % len(SPECIES)]
        title = f"Study of {disease} in {species}."
        abstract = f"The {species} with {disease} were treated."
        text = f"{title} {abstract}"
        name = disease if annotate == "Disease" else species
        first = text.index(name)
        second = text.index(name, len(title) + 1)
        documents.append((str(first_pmid + i), title, abstract,
                          [(first, first + len(name), source_type), (second, second + len(name), source_type)]))
    return documents


DISEASE_DOCS = _documents("Disease", "SpecificDisease", 20, 31_000_000)
"""NCBI-disease-like: diseases annotated, species in the same sentences not."""
SPECIES_DOCS = _documents("Species", "Species", 20, 32_000_000)
"""SPECIES-like: species annotated, diseases not."""


def write_corpus(root: Path, corpus: str, split: str, documents: list[Document], bad_document: bool = False) -> Path:
    """``<root>/<corpus>_<split>.PubTator``; ``bad_document`` adds one whose mention's offsets do not
    match its text (the reader skips and counts it)."""
    blocks = []
    for pmid, title, abstract, mentions in documents:
        text = f"{title} {abstract}"
        lines = [f"{pmid}|t|{title}", f"{pmid}|a|{abstract}"]
        lines += [f"{pmid}\t{s}\t{e}\t{text[s:e]}\t{t}\t-" for s, e, t in mentions]
        blocks.append("\n".join(lines) + "\n")
    if bad_document:
        blocks.append("999|t|Bad offsets here.\n999|a|Nothing.\n999\t0\t3\tXYZ\tSpecificDisease\t-\n")
    root.mkdir(parents=True, exist_ok=True)
    path = root / f"{corpus}_{split}.PubTator"
    path.write_text("\n".join(blocks), encoding="utf-8")
    return path


def dev_and_train_pmids(documents: list[Document]) -> tuple[set[str], set[str]]:
    """The PMIDs of the dev and of the train documents of a train file."""
    dev = {d[0] for d in documents if is_dev_document(d[0])}
    return dev, {d[0] for d in documents} - dev
