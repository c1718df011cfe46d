"""Small vocabulary files in the shared copies' formats, written by hand for the linking tests.

The rows are real MeSH, HGNC and OMIM entries (names and synonyms cut down), so that what the
tests link is what the full vocabularies link.
"""

from __future__ import annotations

import gzip
from pathlib import Path

from adabiobert.linking.config import LinkingConfig, Selection, TypeVocabulary, VocabularyFile
from adabiobert.linking.vocabularies import HUMAN

DESCRIPTORS = [
    ("D001943", "Breast Neoplasms", "Breast Neoplasm|Neoplasm, Breast|Breast Tumors|Breast Tumor", "C04.588.180|C17.800.090.500", ""),
    ("D010051", "Ovarian Neoplasms", "Ovarian Neoplasm|Neoplasm, Ovarian|Ovary Neoplasms", "C04.588.322.455|C19.391.630.705", ""),
    ("D009369", "Neoplasms", "Tumor|Neoplasm|Tumors|Neoplasia", "C04", ""),
    ("D006527", "Hepatolenticular Degeneration", "Wilson Disease|Wilson's Disease|Degeneration, Hepatolenticular", "C06.552.413|C10.228.140.163.100.362", ""),
    ("D003866", "Depressive Disorder", "Depressive Disorders|Depression, Endogenous|Depressive Syndrome", "F03.600.300", ""),
    ("D002945", "Cisplatin", "cis-Diamminedichloroplatinum(II)|Platinol|cis-Platinum", "D01.210.375.240|D01.710.100.240", ""),
    ("D004317", "Doxorubicin", "Adriamycin|Adriblastin|Hydroxydaunomycin", "D02.455.426.559.847.638.400.450", ""),
    ("D006801", "Humans", "Homo sapiens|Man (Taxonomy)|Human", "B01.050.150.900.649.313.988.400.112.400.400", "9606"),
    ("D051379", "Mice", "Mus|Mouse", "B01.050.150.900.649.313.992.635.505.500", "10090|10092"),
    ("D000003", "Abattoirs", "Abattoir|Slaughter Houses", "J01.576.423.200.700.100", ""),
]
SUPPLEMENTARY = [
    ("C562840", "Breast Cancer, Familial", "Familial Breast Cancer", "D001943"),
    ("C000002", "bevonium", "bevonium benzilate", "D001561,D002945"),
]
HGNC_HEADER = ("HGNC ID", "Approved symbol", "Approved name", "Status", "Alias symbols", "NCBI Gene ID(supplied by NCBI)",
               "Previous symbols", "Locus type")
HGNC = [
    ("HGNC:1100", "BRCA1", "BRCA1 DNA repair associated", "Approved", "RNF53, FANCS", "672", "", "gene with protein product"),
    ("HGNC:1101", "BRCA2", "BRCA2 DNA repair associated", "Approved", "FAD, FACD, FANCD1", "675", "FANCD1", "gene with protein product"),
    ("HGNC:11998", "TP53", "tumor protein p53", "Approved", "p53, LFS1", "7157", "", "gene with protein product"),
    ("HGNC:6018", "IL6", "interleukin 6", "Approved", "HGF, HSF, BSF2, IL-6", "3569", "IFNB2", "gene with protein product"),
    ("HGNC:99999", "OLD1~withdrawn", "withdrawn", "Symbol Withdrawn", "", "", "", ""),
]
OMIM_HEADER = ("geneId", "geneSymbol", "diseaseId", "diseaseName", "diseaseType", "source")
OMIM = [
    ("672", "BRCA1", "OMIM:114480", "Breast cancer", "disease", "HPO"),
    ("675", "BRCA2", "OMIM:114480", "Breast cancer", "disease", "HPO"),
    ("540", "ATP7B", "OMIM:277900", "Wilson disease", "disease", "HPO"),
    ("280", "AMY2B", "ORPHA:905", "Wilson disease", "disease", "HPO"),
    ("7157", "TP53", "OMIM:151623", "Li-Fraumeni syndrome", "disease", "HPO"),
]


def write_tsv(path: Path, rows, header=None) -> Path:
    text = "".join("\t".join(r) + "\n" for r in ([header] if header else []) + list(rows))
    if path.suffix == ".gz":
        with gzip.open(path, "wt", encoding="utf-8") as handle:
            handle.write(text)
    else:
        path.write_text(text, encoding="utf-8")
    return path


def write_vocabularies(folder: Path) -> dict[str, Path]:
    """The four files of the default configuration, small; returns name -> path."""
    folder.mkdir(parents=True, exist_ok=True)
    return {
        "mesh_descriptors": write_tsv(folder / "mesh_descriptors.tsv.gz", DESCRIPTORS),
        "mesh_supplementary": write_tsv(folder / "mesh_supplementary.tsv.gz", SUPPLEMENTARY),
        "hgnc": write_tsv(folder / "hgnc_genes.tsv.gz", HGNC, HGNC_HEADER),
        "omim": write_tsv(folder / "gene_disease_associations.tsv", OMIM, OMIM_HEADER),
    }


def small_config(paths: dict[str, Path]) -> LinkingConfig:
    """The default configuration's types over the small files."""
    return LinkingConfig(
        vocabularies=(
            VocabularyFile("mesh_descriptors", "mesh-descriptors-tsv", str(paths["mesh_descriptors"])),
            VocabularyFile("mesh_supplementary", "mesh-supplementary-tsv", str(paths["mesh_supplementary"])),
            VocabularyFile("hgnc", "hgnc-tsv", str(paths["hgnc"])),
            VocabularyFile("omim", "omim-lexicon", str(paths["omim"])),
        ),
        types=(
            TypeVocabulary("Disease", (Selection("mesh_descriptors", ("C", "F03")), Selection("omim"),
                                       Selection("mesh_supplementary", ("C", "F03"))), aliases=("SpecificDisease",)),
            TypeVocabulary("Chemical", (Selection("mesh_descriptors", ("D",)), Selection("mesh_supplementary", ("D",)))),
            TypeVocabulary("Gene", (Selection("hgnc", taxa=(HUMAN,)),), aliases=("GENE",)),
            TypeVocabulary("Species", (Selection("mesh_descriptors", ("B01",), as_taxon=True),)),
        ),
    )


# ---- a linked annotation output: hand-made articles, a phrase tagger, the small index ----------------
PHRASES = {
    "Wilson disease": "Disease", "WD": "Disease", "Li-Fraumeni syndrome": "Disease", "breast and ovarian cancers": "Disease",
    "Thalassemia": "Disease", "BRCA1": "Gene", "TP53": "Gene", "mice": "Species", "HeLa": "CellLine",
}
"""What :class:`PhraseTagger` tags, and as which type."""

LINKED_SHARDS = {
    "part-00000.parquet": [
        ("PMC1", "Wilson disease and BRCA1", "Wilson disease (WD) is rare . TP53 mutations cause Li-Fraumeni syndrome in mice .",
         [("Results", "WD and breast and ovarian cancers were seen in HeLa cells .\n\nThalassemia was absent .")]),
        ("PMC2", "TP53 in Li-Fraumeni syndrome", "BRCA1 carriers were studied .", []),
    ],
    "2026/part-00001.parquet": [
        ("PMC3", None, "Li-Fraumeni syndrome and WD ; no definition of WD here .", [("Body", "Mice with TP53 loss .")]),
    ],
}
"""Articles ``(pmcid, title, abstract, sections)`` of two shards: an abbreviation defined in the
abstract and used in a section, one used without a definition (PMC3), a composite mention, a type
without a vocabulary, a name the vocabularies lack."""

EXPECTED_LINKS = {
    # (pmcid, section_index, mention) -> concept_id; every mention of the articles
    ("PMC1", 0, "Wilson disease"): "MESH:D006527", ("PMC1", 0, "BRCA1"): "NCBIGene:672",
    ("PMC1", 1, "Wilson disease"): "MESH:D006527", ("PMC1", 1, "WD"): "MESH:D006527", ("PMC1", 1, "TP53"): "NCBIGene:7157",
    ("PMC1", 1, "Li-Fraumeni syndrome"): "OMIM:151623", ("PMC1", 1, "mice"): "NCBITaxon:10090",
    ("PMC1", 2, "WD"): "MESH:D006527", ("PMC1", 2, "breast and ovarian cancers"): "MESH:D001943|MESH:D010051",
    ("PMC1", 2, "HeLa"): None, ("PMC1", 2, "Thalassemia"): None,
    ("PMC2", 0, "TP53"): "NCBIGene:7157", ("PMC2", 0, "Li-Fraumeni syndrome"): "OMIM:151623", ("PMC2", 1, "BRCA1"): "NCBIGene:672",
    ("PMC3", 1, "Li-Fraumeni syndrome"): "OMIM:151623", ("PMC3", 1, "WD"): None, ("PMC3", 2, "Mice"): "NCBITaxon:10090",
    ("PMC3", 2, "TP53"): "NCBIGene:7157",
}
"""What the small index links each mention of :data:`LINKED_SHARDS` to (None: no identifier)."""


class PhraseTagger:
    """Tags the words of each phrase of :data:`PHRASES` (ignoring case) with its type: a tagger for
    tests of the tables, not of a model. Confidence 0.9 everywhere."""

    model_id = "phrases@test"

    def __init__(self, phrases: dict[str, str] = PHRASES) -> None:
        from adabiobert.text import tokenize_words

        self.phrases = {tuple(w.text.lower() for w in tokenize_words(p)): t for p, t in phrases.items()}
        self.longest = max(len(p) for p in self.phrases)

    def tag_words(self, sentences):
        from adabiobert.model.tagger import WordTagging

        taggings = []
        for words in sentences:
            lowered, tags, i = [w.lower() for w in words], ["O"] * len(words), 0
            while i < len(words):
                for n in range(min(self.longest, len(words) - i), 0, -1):
                    entity_type = self.phrases.get(tuple(lowered[i:i + n]))
                    if entity_type:
                        tags[i:i + n] = [f"B-{entity_type}"] + [f"I-{entity_type}"] * (n - 1)
                        i += n
                        break
                else:
                    i += 1
            taggings.append(WordTagging(tuple(tags), tuple(0.9 for _ in tags)))
        return taggings


def write_linked_shards(root: Path) -> Path:
    """The shards of :data:`LINKED_SHARDS` under ``root``."""
    from tests.annotation_data import article, write_shard

    for name, rows in LINKED_SHARDS.items():
        write_shard(str(root / name), [article(*row) for row in rows])
    return root


def small_index(folder: Path, extra: tuple = ()) -> str:
    """The small vocabularies' index at ``folder/index`` (``extra``: more MeSH descriptor rows, for a
    second release); returns its path."""
    from adabiobert.linking.index import build_index

    paths = write_vocabularies(folder / "vocab")
    if extra:
        write_tsv(paths["mesh_descriptors"], DESCRIPTORS + list(extra))
    build_index(small_config(paths), str(folder / "index"))
    return str(folder / "index")


def linking_for(index: str, threshold: float = 0.7):
    """An ``annotation.relink.Linking`` over a local index."""
    from adabiobert.annotation.relink import Linking
    from adabiobert.linking.artifact import inspect_index, open_linker

    artifact = inspect_index(index)
    return Linking(open_linker(index, artifact.index_hash, threshold), artifact, threshold)
