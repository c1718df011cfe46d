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
