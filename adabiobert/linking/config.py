"""Which vocabulary serves which entity type: the linking configuration.

The default (:func:`default_config`, over ``../shared/vocab`` and ``../shared/lexicon``):

========  ==================================================================================
Disease   MeSH descriptors under C (diseases) or F03 (mental disorders), supplementary
          concepts mapped to one of them, OMIM disease names
Chemical  MeSH descriptors under D (chemicals and drugs), supplementary concepts mapped to one
Gene      NCBI Gene through HGNC (human; approved symbols, names, previous and alias symbols)
Species   NCBI Taxonomy through MeSH organism descriptors that carry a taxonomy ID: B01
          (eukaryotes), B02 (archaea), B03 (bacteria), B04 (viruses)
========  ==================================================================================

Any other type (CellLine, Variant, ...) has no vocabulary and its mentions stay unlinked. Mention
types are matched to a :class:`TypeVocabulary` by its name or one of its ``aliases``, ignoring case
(the corpora say ``Gene``, ``GENE``, ``GeneOrGeneProduct``; ``SpecificDisease``, ...).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from adabiobert.errors import ConfigError
from adabiobert.linking.vocabularies import HUMAN, NCBI_TAXON, READERS, Concept, VocabularyRead


ORGANISM_TREES = ("B01", "B02", "B03", "B04")
"""MeSH's organism trees: eukaryotes, archaea, bacteria, viruses."""


@dataclass(frozen=True)
class VocabularyFile:
    """One vocabulary file and how to read it."""

    name: str
    """What selections call it (``mesh_descriptors``)."""
    format: str
    """A key of :data:`adabiobert.linking.vocabularies.READERS`."""
    path: str
    """A local path (gzip-compressed when it ends in ``.gz``)."""


@dataclass(frozen=True)
class Selection:
    """The part of one vocabulary that serves a type."""

    vocabulary: str
    """The :attr:`VocabularyFile.name`."""
    tree_prefixes: tuple[str, ...] = ()
    """MeSH: keep descriptors with a tree number starting with one of these (``"C"``, ``"F03"``),
    and supplementary concepts mapped to such a descriptor; () keeps all."""
    taxa: tuple[str, ...] = ()
    """Genes: keep those of these organisms (NCBITaxon CURIEs); () keeps all."""
    as_taxon: bool = False
    """Organism descriptors: the concept becomes ``NCBITaxon:<id>``; those without an ID are left out."""


@dataclass(frozen=True)
class TypeVocabulary:
    """The vocabularies of one entity type."""

    entity_type: str
    """The type's name in the index (``Disease``)."""
    selections: tuple[Selection, ...]
    aliases: tuple[str, ...] = ()
    """Other mention type names that mean this type, matched ignoring case."""


@dataclass(frozen=True)
class LinkingConfig:
    """The vocabulary files and which of them serve which type."""

    vocabularies: tuple[VocabularyFile, ...]
    types: tuple[TypeVocabulary, ...]
    strict: bool = False
    """Raise on the first bad vocabulary row instead of skipping and counting it."""

    def __post_init__(self) -> None:
        names = [v.name for v in self.vocabularies]
        if len(set(names)) != len(names):
            raise ConfigError(f"vocabulary names repeat: {sorted(n for n, c in Counter(names).items() if c > 1)}")
        for vocabulary in self.vocabularies:
            if vocabulary.format not in READERS:
                raise ConfigError(f"vocabulary {vocabulary.name!r}: unknown format {vocabulary.format!r}; known: {sorted(READERS)}")
        owner: dict[str, str] = {}
        for entity in self.types:
            for name in (entity.entity_type, *entity.aliases):
                if owner.setdefault(name.casefold(), entity.entity_type) != entity.entity_type:
                    raise ConfigError(f"{name!r} names two types: {owner[name.casefold()]!r} and {entity.entity_type!r}")
        for entity in self.types:
            for selection in entity.selections:
                if selection.vocabulary not in names:
                    raise ConfigError(f"type {entity.entity_type!r} selects {selection.vocabulary!r}, which is not among {names}")


def default_config(shared_root: str | Path) -> LinkingConfig:
    """The default configuration over the shared offline copies (module docstring).

    Args:
        shared_root: the folder holding ``vocab/`` and ``lexicon/`` (``../shared``).
    """
    root = Path(shared_root)
    return LinkingConfig(
        vocabularies=(
            VocabularyFile("mesh_descriptors", "mesh-descriptors-tsv", str(root / "vocab" / "mesh_descriptors.tsv.gz")),
            VocabularyFile("mesh_supplementary", "mesh-supplementary-tsv", str(root / "vocab" / "mesh_supplementary.tsv.gz")),
            VocabularyFile("hgnc", "hgnc-tsv", str(root / "vocab" / "hgnc_genes.tsv.gz")),
            VocabularyFile("omim", "omim-lexicon", str(root / "lexicon" / "gene_disease_associations.tsv")),
        ),
        types=(
            TypeVocabulary("Disease", (Selection("mesh_descriptors", ("C", "F03")), Selection("omim"),
                                       Selection("mesh_supplementary", ("C", "F03"))),
                           aliases=("DiseaseOrPhenotypicFeature", "SpecificDisease", "DiseaseClass", "Modifier", "CompositeMention")),
            TypeVocabulary("Chemical", (Selection("mesh_descriptors", ("D",)), Selection("mesh_supplementary", ("D",))),
                           aliases=("ChemicalEntity", "Drug")),
            TypeVocabulary("Gene", (Selection("hgnc", taxa=(HUMAN,)),), aliases=("GeneOrGeneProduct", "Protein")),
            TypeVocabulary("Species", (Selection("mesh_descriptors", ORGANISM_TREES, as_taxon=True),), aliases=("OrganismTaxon", "Organism")),
        ),
    )


@dataclass
class TypeConcepts:
    """The concepts selected for one type, in selection order, and what was left out."""

    entity_type: str
    concepts: list[Concept] = field(default_factory=list)
    sources: list[int] = field(default_factory=list)
    """Per concept, the position of the selection it came from: an exact name match on a concept
    of an earlier selection wins over one of a later selection (MeSH descriptors over OMIM)."""
    left_out: Counter = field(default_factory=Counter)


def read_vocabularies(config: LinkingConfig, only: set[str] | None = None) -> dict[str, VocabularyRead]:
    """Read every vocabulary file the configuration names (or those in ``only``).

    Raises:
        VocabularyError: a file that cannot be read (with ``config.strict``, also a bad row).
    """
    return {v.name: READERS[v.format](v.path, strict=config.strict) for v in config.vocabularies
            if only is None or v.name in only}


def select_concepts(config: LinkingConfig, reads: dict[str, VocabularyRead]) -> dict[str, TypeConcepts]:
    """The concepts of each type (see :class:`Selection`); a concept selected twice for one type
    (by two selections, or two organism descriptors of one taxon) is kept once, with the names of
    both (:func:`merge`).

    Supplementary concepts are routed through the tree numbers of the descriptors they map to,
    taken from every descriptor vocabulary read.
    """
    trees: dict[str, tuple[str, ...]] = {}
    for read in reads.values():
        for concept in read.concepts:
            if concept.tree_numbers:
                trees[concept.curie] = concept.tree_numbers
    selected: dict[str, TypeConcepts] = {}
    for entity in config.types:
        chosen = TypeConcepts(entity.entity_type)
        at: dict[str, int] = {}
        for position, selection in enumerate(entity.selections):
            for concept in reads[selection.vocabulary].concepts:
                kept = _select(concept, selection, trees, chosen.left_out)
                if kept is None:
                    continue
                if kept.curie in at:  # two organism descriptors of one taxon, say: one concept
                    chosen.concepts[at[kept.curie]] = merge(chosen.concepts[at[kept.curie]], kept)
                else:
                    at[kept.curie] = len(chosen.concepts)
                    chosen.concepts.append(kept)
                    chosen.sources.append(position)
        selected[entity.entity_type] = chosen
    return selected


def merge(first: Concept, second: Concept) -> Concept:
    """``first`` with the names of ``second`` added as synonyms (weak ones stay weak)."""
    synonyms = tuple(dict.fromkeys(n for n in (*first.synonyms, second.name, *second.synonyms) if n != first.name))
    weak = tuple(dict.fromkeys(n for n in (*first.weak_synonyms, *second.weak_synonyms) if n != first.name and n not in synonyms))
    return Concept(first.curie, first.name, synonyms, weak, tuple(dict.fromkeys((*first.tree_numbers, *second.tree_numbers))),
                   tuple(dict.fromkeys((*first.mapped_to, *second.mapped_to))), first.taxon or second.taxon)


def _select(concept: Concept, selection: Selection, trees: dict[str, tuple[str, ...]], left_out: Counter) -> Concept | None:
    if selection.tree_prefixes:
        numbers = concept.tree_numbers or tuple(n for d in concept.mapped_to for n in trees.get(d, ()))
        if not any(n.startswith(selection.tree_prefixes) for n in numbers):
            return None
    if selection.taxa and concept.taxon not in selection.taxa:
        return None
    if selection.as_taxon:
        if concept.taxon is None:
            left_out[f"{selection.vocabulary}: organism without a taxonomy ID"] += 1
            return None
        assert concept.taxon.startswith(f"{NCBI_TAXON}:")
        return Concept(concept.taxon, concept.name, concept.synonyms, concept.weak_synonyms, concept.tree_numbers,
                       taxon=concept.taxon)
    return concept
