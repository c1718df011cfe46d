"""The PubTator reader on small hand-written files (every bad input named by file and line, or
counted), its type mapping and identifiers, and the real NCBI-disease test file."""

from __future__ import annotations

from pathlib import Path

import pytest

from adabiobert.corpora.pubtator import (
    CORPORA,
    ENTITY_TYPES,
    GENERIC,
    CorpusSpec,
    Mention,
    corpus_name,
    parse_identifiers,
    read_pubtator,
)
from adabiobert.errors import CorpusFormatError, DatasetNotFoundError

# Title: 28 characters, so the abstract starts at 29.
#        0         1         2
#        0123456789012345678901234567
TITLE = "BRCA1 mutations cause tumour"
ABSTRACT = "Aspirin reduced breast cancer risk in mice."
#          0         1         2         3         4
#          0123456789012345678901234567890123456789012
# in the document text (abstract at 29): Aspirin 29-36, breast cancer 45-58, mice 67-71.
GOOD = (
    f"7|t|{TITLE}\n"
    f"7|a|{ABSTRACT}\n"
    "7\t0\t5\tBRCA1\tGeneOrGeneProduct\t672\n"
    "7\t29\t36\tAspirin\tChemicalEntity\tD001241\n"
    "7\t45\t58\tbreast cancer\tDiseaseOrPhenotypicFeature\tD001943|D009369\n"
    "7\t67\t71\tmice\tOrganismTaxon\t10090\n"
    "\n"
)


def second_document(pmid: str = "8", extra: str = "") -> str:
    """A clean document, then whatever lines ``extra`` adds to it."""
    return f"{pmid}|t|Gene talk\n{pmid}|a|TP53 again.\n{pmid}\t10\t14\tTP53\tGene\t7157\n{extra}\n"


def write(folder: Path, name: str, text: str | bytes) -> Path:
    path = folder / name
    path.write_bytes(text.encode("utf-8") if isinstance(text, str) else text)
    return path


def test_reads_documents_mentions_and_maps_types(tmp_path: Path) -> None:
    assert len(TITLE) == 28
    path = write(tmp_path, "BioRED_Test.PubTator", GOOD + second_document())
    documents, report = read_pubtator(path)
    assert [d.pmid for d in documents] == ["7", "8"]
    first = documents[0]
    assert first.text == TITLE + " " + ABSTRACT
    assert first.line == 1 and documents[1].line == 8
    assert first.mentions == (
        Mention(0, 5, "BRCA1", "Gene", "GeneOrGeneProduct", ("672",), "672"),
        Mention(29, 36, "Aspirin", "Chemical", "ChemicalEntity", ("D001241",), "D001241"),
        Mention(45, 58, "breast cancer", "Disease", "DiseaseOrPhenotypicFeature", ("D001943", "D009369"), "D001943|D009369"),
        Mention(67, 71, "mice", "Species", "OrganismTaxon", ("10090",), "10090"),
    )
    assert all(first.text[m.start:m.end] == m.text for m in first.mentions)
    assert report.corpus == "BioRED"
    assert report.annotated_types == frozenset(ENTITY_TYPES)
    assert report.documents == 2
    assert report.mentions == {"Chemical": 1, "Disease": 1, "Gene": 2, "Species": 1}
    assert not report.problems and report.skipped_documents == 0


@pytest.mark.parametrize(
    ("corpus", "source_type", "expected"),
    [
        ("NCBIdisease", "SpecificDisease", "Disease"),
        ("NCBIdisease", "DiseaseClass", "Disease"),
        ("NCBIdisease", "Modifier", "Disease"),
        ("NCBIdisease", "CompositeMention", "Disease"),
        ("BC5CDR", "Chemical", "Chemical"),
        ("GNormPlus", "Gene", "Gene"),
        ("tmVar3", "ProteinMutation", "Variant"),
        ("tmVar3", "DNAMutation", "Variant"),
        ("tmVar3", "SNP", "Variant"),
        ("tmVar3", "CellLine", "CellLine"),
        ("BioRED", "SequenceVariant", "Variant"),
        ("BioRED", "OrganismTaxon", "Species"),
        ("SPECIES", "Species", "Species"),
        ("BioID", "CellLine", "CellLine"),
    ],
)
def test_type_mapping(tmp_path: Path, corpus: str, source_type: str, expected: str) -> None:
    text = f"1|t|Word\n1|a|x\n1\t0\t4\tWord\t{source_type}\t-\n\n"
    documents, report = read_pubtator(write(tmp_path, f"{corpus}_Train.PubTator", text))
    assert documents[0].mentions[0].type == expected
    assert documents[0].mentions[0].source_type == source_type
    assert report.annotated_types == CORPORA[corpus].types


def test_annotated_types_per_corpus() -> None:
    assert {name: sorted(spec.types) for name, spec in CORPORA.items()} == {
        "NCBIdisease": ["Disease"],
        "BC5CDR": ["Chemical", "Disease"],
        "GNormPlus": ["Gene"],
        "BioRED": sorted(ENTITY_TYPES),
        "SPECIES": ["Species"],
        "tmVar3": ["CellLine", "Disease", "Gene", "Species", "Variant"],
        "BioID": ["CellLine"],
    }


def test_gnormplus_family_names_are_left_out_and_counted(tmp_path: Path) -> None:
    text = (
        "1|t|TIF1 family and RING finger\n1|a|x\n"
        "1\t0\t4\tTIF1\tGene\t8805\n"
        "1\t0\t11\tTIF1 family\tFamilyName\n"  # GNormPlus writes no identifier field on these
        "1\t16\t27\tRING finger\tDomainMotif\n\n"
    )
    documents, report = read_pubtator(write(tmp_path, "GNormPlus_Test.PubTator", text))
    assert [(m.text, m.type) for m in documents[0].mentions] == [("TIF1", "Gene")]
    assert report.left_out == {"DomainMotif": 1, "FamilyName": 1}
    assert report.mentions == {"Gene": 1}


@pytest.mark.parametrize(
    ("field", "variant", "expected"),
    [
        ("D009369", False, ("D009369",)),
        ("D001943|D009369", False, ("D001943", "D009369")),
        ("672,673", False, ("672", "673")),
        ("672;673", False, ("672", "673")),
        ("672(Tax:10090),673", False, ("672(Tax:10090)", "673")),
        ("OMIM:215600", False, ("OMIM:215600",)),
        ("OMIM:1+OMIM:2", False, ("OMIM:1+OMIM:2",)),
        ("D000001|-1", False, ("D000001",)),
        ("-", False, ()),
        ("-1", False, ()),
        ("", False, ()),
        ("p|SUB|V|1763|M;Gene:6331;RS#:137854600;Disease:D008133;VariantGroup:0", True, ("p|SUB|V|1763|M",)),
        ("c|DEL|350_351,351_352|TCC", True, ("c|DEL|350_351,351_352|TCC",)),
        ("rs1805007;VariantGroup:3", True, ("rs1805007",)),
        ("-", True, ()),
    ],
)
def test_identifiers(field: str, variant: bool, expected: tuple[str, ...]) -> None:
    assert parse_identifiers(field, variant=variant) == expected


def test_variant_identifiers_from_a_tmvar_line(tmp_path: Path) -> None:
    text = "1|t|V1763M\n1|a|x\n1\t0\t6\tV1763M\tProteinMutation\tp|SUB|V|1763|M;Gene:6331;VariantGroup:0\n\n"
    documents, _ = read_pubtator(write(tmp_path, "tmVar3_Test.PubTator", text))
    mention = documents[0].mentions[0]
    assert mention.identifiers == ("p|SUB|V|1763|M",)
    assert mention.raw_identifiers == "p|SUB|V|1763|M;Gene:6331;VariantGroup:0"


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("NCBIdisease_Test.PubTator", "NCBIdisease"),
        ("BioID_Train_revision.PubTator", "BioID"),
        ("tmvar3_train.txt", "tmVar3"),
        ("BC5CDR.PubTator", "BC5CDR"),
        ("my_genes.PubTator", "my"),
    ],
)
def test_corpus_name_from_file_name(name: str, expected: str) -> None:
    assert corpus_name(name) == expected


def test_corpus_argument_overrides_the_file_name(tmp_path: Path) -> None:
    path = write(tmp_path, "NCBIdisease_Test.PubTator", "1|t|Aspirin\n1|a|x\n1\t0\t7\tAspirin\tChemical\tD1\n\n")
    with pytest.raises(CorpusFormatError, match="unknown_type"):
        read_pubtator(path)
    documents, report = read_pubtator(path, corpus="BC5CDR")
    assert report.corpus == "BC5CDR" and documents[0].mentions[0].type == "Chemical"
    with pytest.raises(DatasetNotFoundError, match="known corpora: NCBIdisease, BC5CDR"):
        read_pubtator(path, corpus="NoSuchCorpus")
    spec = CorpusSpec(types=frozenset({"Chemical"}), mapping={"Chemical": "Chemical"})
    assert read_pubtator(path, corpus=spec)[1].annotated_types == {"Chemical"}


def test_a_file_of_no_known_corpus_annotates_the_types_it_uses(tmp_path: Path) -> None:
    text = "1|t|BRCA1 in mice\n1|a|x\n1\t0\t5\tBRCA1\tGene\t672\n1\t9\t13\tmice\tSpecies\t10090\n\n"
    documents, report = read_pubtator(write(tmp_path, "mine.PubTator", text))
    assert report.corpus == "mine"
    assert report.annotated_types == {"Gene", "Species"}
    assert GENERIC.mapping["SpecificDisease"] == "Disease"


def test_crlf_bom_relations_and_a_missing_blank_line(tmp_path: Path) -> None:
    text = (
        "\ufeff1|t|Aspirin\r\n1|a|x\r\n1\t0\t7\tAspirin\tChemical\tD1\r\n1\tCID\tD1\tD2\r\n"
        "2|t|Aspirin\r\n2|a|y\r\n"  # no blank line before the second document
    )
    documents, report = read_pubtator(write(tmp_path, "BC5CDR_Test.PubTator", text))
    assert [(d.pmid, d.title, d.abstract) for d in documents] == [("1", "Aspirin", "x"), ("2", "Aspirin", "y")]
    assert report.relations == 1


def test_an_empty_abstract_line_is_an_abstract(tmp_path: Path) -> None:
    documents, _ = read_pubtator(write(tmp_path, "BioID_Test.PubTator", "1|t|HeLa cells\n1|a|\n1\t0\t4\tHeLa\tCellLine\tCVCL_0030\n\n"))
    assert documents[0].text == "HeLa cells " and documents[0].mentions[0].text == "HeLa"


def test_a_verbatim_duplicate_document_is_skipped_and_counted(tmp_path: Path) -> None:
    path = write(tmp_path, "GNormPlus_Train.PubTator", second_document() + second_document("10") + second_document())
    documents, report = read_pubtator(path)  # strict: a verbatim copy is no error
    assert [d.pmid for d in documents] == ["8", "10"]
    assert report.duplicate_documents == 1
    assert not report.problems and report.mentions == {"Gene": 2}


# Each bad input: the file text, the reason, and the line it is on. The bad document is PMID 5,
# between two good ones; strict names the file and line, lax counts it and skips document 5 whole.
BAD_INPUTS = {
    "text_mismatch": ("5|t|Aspirin here\n5|a|x\n5\t0\t5\tBRCA1\tGene\t672\n5\t8\t12\there\tGene\t1\n", 3),
    "offsets_past_end": ("5|t|Aspirin\n5|a|x\n5\t4\t30\tirin\tGene\t1\n", 3),
    "unknown_type": ("5|t|Aspirin\n5|a|x\n5\t0\t7\tAspirin\tDrug\tD1\n", 3),
    "no_abstract": ("5|t|Aspirin\n5\t0\t7\tAspirin\tGene\tD1\n", 1),
    "duplicate_pmid": ("8|t|Gene talk\n8|a|Other text.\n", 1),
    "not_utf8": (b"5|t|Aspirin\n5|a|x\n5\t0\t7\tAspirin\tGene\tD\xff1\n", 3),
    "malformed_line": ("5|t|Aspirin\n5|a|x\n5\t0\t7\tAspirin\n", 3),
    "malformed_offsets": ("5|t|Aspirin\n5|a|x\n5\t0\tseven\tAspirin\tGene\t1\n", 3),
    "empty_span": ("5|t|Aspirin\n5|a|x\n5\t7\t7\t\tGene\t1\n", 3),
    "abstract_out_of_place": ("5|t|Aspirin\n5|a|x\n5\t0\t7\tAspirin\tGene\t1\n5|a|y\n", 4),
    "mention_of_another_document": ("5|t|Aspirin\n5|a|x\n6\t0\t7\tAspirin\tGene\t1\n", 3),
}
REASON = {"malformed_offsets": "malformed_line", "empty_span": "malformed_line",
          "abstract_out_of_place": "malformed_line", "mention_of_another_document": "malformed_line"}


def bad_file(tmp_path: Path, case: str) -> tuple[Path, int]:
    """A GNormPlus file: document 8, the bad document 5, document 10; and the bad line's number."""
    bad, line_in_bad = BAD_INPUTS[case]
    head = second_document("8").encode()
    bad = bad if isinstance(bad, bytes) else bad.encode()
    text = head + bad + b"\n" + second_document("10").encode()
    return write(tmp_path, "GNormPlus_Test.PubTator", text), head.count(b"\n") + line_in_bad


@pytest.mark.parametrize("case", sorted(BAD_INPUTS))
def test_strict_names_the_file_and_line_of_bad_input(tmp_path: Path, case: str) -> None:
    path, line = bad_file(tmp_path, case)
    with pytest.raises(CorpusFormatError) as raised:
        read_pubtator(path)
    assert raised.value.path == str(path)
    assert raised.value.line == line
    assert str(raised.value).startswith(f"{path}:{line}: ")
    assert f"[{REASON.get(case, case)}]" in str(raised.value)


@pytest.mark.parametrize("case", sorted(BAD_INPUTS))
def test_lax_skips_the_bad_document_and_counts_the_line(tmp_path: Path, case: str) -> None:
    path, line = bad_file(tmp_path, case)
    documents, report = read_pubtator(path, strict=False)
    reason = REASON.get(case, case)
    assert [d.pmid for d in documents] == ["8", "10"]
    assert report.problems == {reason: 1}
    assert report.examples[reason].startswith(f"{path}:{line}: ")
    assert report.skipped_documents == 1
    assert report.mentions == {"Gene": 2}
    assert reason in report.summary()


def test_lax_counts_every_bad_line_of_a_skipped_document(tmp_path: Path) -> None:
    text = "5|t|Aspirin\n5|a|x\n5\t0\t7\tAspirin\tGene\t1\n5\t0\t3\tAsp\tGene\t1\n5\t0\t3\tXyz\tGene\t1\n5\t1\t2\ts\tDrug\t1\n"
    documents, report = read_pubtator(write(tmp_path, "GNormPlus_Test.PubTator", text), strict=False)
    assert documents == []
    assert report.problems == {"text_mismatch": 1, "unknown_type": 1}
    assert (report.skipped_documents, report.skipped_mentions) == (1, 4)


def test_a_stray_line_outside_any_document_is_counted_alone(tmp_path: Path) -> None:
    path = write(tmp_path, "GNormPlus_Test.PubTator", second_document() + "8\t0\t4\tGene\tGene\t1\n")
    with pytest.raises(CorpusFormatError) as raised:
        read_pubtator(path)
    assert raised.value.line == 5
    documents, report = read_pubtator(path, strict=False)
    assert [d.pmid for d in documents] == ["8"] and report.problems == {"malformed_line": 1}
    assert report.skipped_documents == 0


def test_real_ncbi_disease_test_file(shared_root: Path) -> None:
    path = shared_root / "pubtator" / "NCBIdisease_Test.PubTator"
    if not path.is_file():
        pytest.skip(f"{path} is missing")
    documents, report = read_pubtator(path)
    assert report.corpus == "NCBIdisease"
    assert (report.documents, report.total_mentions) == (100, 960)  # the README's counts
    assert len(documents) == 100 and sum(len(d.mentions) for d in documents) == 960
    assert all(d.text[m.start:m.end] == m.text for d in documents for m in d.mentions)
    assert all(m.identifiers for d in documents for m in d.mentions)  # "mentions with an ID: all"
