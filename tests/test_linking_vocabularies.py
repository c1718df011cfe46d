"""Vocabulary readers: each format on a hand-made file, every kind of bad input, and the shared copies."""

import gzip

import pytest

from adabiobert.errors import ConfigError, VocabularyError
from adabiobert.linking.config import LinkingConfig, Selection, TypeVocabulary, VocabularyFile, read_vocabularies, select_concepts
from adabiobert.linking.vocabularies import (
    read_gene_info,
    read_hgnc_tsv,
    read_mesh_descriptors_tsv,
    read_mesh_descriptors_xml,
    read_mesh_supplementary_tsv,
    read_mesh_supplementary_xml,
    read_omim_lexicon,
)
from tests.linking_data import DESCRIPTORS, HGNC, HGNC_HEADER, OMIM, OMIM_HEADER, small_config, write_tsv, write_vocabularies


# ---- the formats ------------------------------------------------------------------------------
def test_mesh_descriptor_tsv(tmp_path):
    read = read_mesh_descriptors_tsv(write_tsv(tmp_path / "d.tsv.gz", DESCRIPTORS))
    by_id = {c.curie: c for c in read.concepts}
    breast = by_id["MESH:D001943"]
    assert breast.name == "Breast Neoplasms"
    assert breast.synonyms == ("Breast Neoplasm", "Neoplasm, Breast", "Breast Tumors", "Breast Tumor")
    assert breast.tree_numbers == ("C04.588.180", "C17.800.090.500") and breast.taxon is None
    assert by_id["MESH:D006801"].taxon == "NCBITaxon:9606"
    assert by_id["MESH:D051379"].taxon == "NCBITaxon:10090"  # "10090|10092": the smallest
    assert not read.rejected and not read.filtered


def test_mesh_supplementary_tsv_maps_to_descriptors(tmp_path):
    rows = [("C000002", "bevonium", "bevonium benzilate", "D001561,*D002945"), ("C000006", "insulin, neutral", "", "D061389|D007328")]
    read = read_mesh_supplementary_tsv(write_tsv(tmp_path / "s.tsv", rows))
    assert [c.mapped_to for c in read.concepts] == [("MESH:D001561", "MESH:D002945"), ("MESH:D061389", "MESH:D007328")]
    assert read.concepts[1].synonyms == ()


DESCRIPTOR_XML = """<?xml version="1.0"?>
<!DOCTYPE DescriptorRecordSet SYSTEM "https://www.nlm.nih.gov/databases/dtd/nlmdescriptorrecordset_20240101.dtd">
<DescriptorRecordSet LanguageCode="eng">
<DescriptorRecord DescriptorClass="1">
  <DescriptorUI>D001943</DescriptorUI>
  <DescriptorName><String>Breast Neoplasms</String></DescriptorName>
  <TreeNumberList><TreeNumber>C04.588.180</TreeNumber><TreeNumber>C17.800.090.500</TreeNumber></TreeNumberList>
  <ConceptList>
    <Concept PreferredConceptYN="Y"><ConceptUI>M0002681</ConceptUI><ConceptName><String>Breast Neoplasms</String></ConceptName>
      <TermList>
        <Term ConceptPreferredTermYN="Y" IsPermutedTermYN="N" LexicalTag="NON" RecordPreferredTermYN="Y"><TermUI>T005169</TermUI><String>Breast Neoplasms</String></Term>
        <Term ConceptPreferredTermYN="N" IsPermutedTermYN="N" LexicalTag="NON" RecordPreferredTermYN="N"><TermUI>T005170</TermUI><String>Breast Cancer</String></Term>
        <Term ConceptPreferredTermYN="N" IsPermutedTermYN="N" LexicalTag="NON" RecordPreferredTermYN="N"><TermUI>T005171</TermUI><String>Breast Tumors</String></Term>
      </TermList>
    </Concept>
    <Concept PreferredConceptYN="N"><ConceptUI>M0495686</ConceptUI><ConceptName><String>Breast Carcinoma</String></ConceptName>
      <TermList><Term ConceptPreferredTermYN="Y"><TermUI>T650000</TermUI><String>Breast Carcinoma</String></Term></TermList>
    </Concept>
  </ConceptList>
</DescriptorRecord>
<DescriptorRecord DescriptorClass="1">
  <DescriptorUI>D006801</DescriptorUI>
  <DescriptorName><String>Humans</String></DescriptorName>
  <TreeNumberList><TreeNumber>B01.050.150.900.649.313.988.400.112.400.400</TreeNumber></TreeNumberList>
  <ConceptList><Concept PreferredConceptYN="Y"><TermList>
    <Term><String>Humans</String></Term><Term><String>Homo sapiens</String></Term>
  </TermList></Concept></ConceptList>
</DescriptorRecord>
</DescriptorRecordSet>
"""

SUPPLEMENTARY_XML = """<?xml version="1.0"?>
<SupplementalRecordSet LanguageCode="eng">
<SupplementalRecord SCRClass="3">
  <SupplementalRecordUI>C562840</SupplementalRecordUI>
  <SupplementalRecordName><String>Breast Cancer, Familial</String></SupplementalRecordName>
  <HeadingMappedToList>
    <HeadingMappedTo><DescriptorReferredTo><DescriptorUI>*D001943</DescriptorUI>
      <DescriptorName><String>Breast Neoplasms</String></DescriptorName></DescriptorReferredTo></HeadingMappedTo>
    <HeadingMappedTo><DescriptorReferredTo><DescriptorUI>D009386</DescriptorUI></DescriptorReferredTo>
      <QualifierReferredTo><QualifierUI>Q000235</QualifierUI></QualifierReferredTo></HeadingMappedTo>
  </HeadingMappedToList>
  <ConceptList><Concept PreferredConceptYN="Y"><TermList>
    <Term><String>Breast Cancer, Familial</String></Term><Term><String>Familial Breast Cancer</String></Term>
  </TermList></Concept></ConceptList>
</SupplementalRecord>
</SupplementalRecordSet>
"""


def test_mesh_descriptor_xml(tmp_path):
    path = tmp_path / "desc2024.xml.gz"
    with gzip.open(path, "wt", encoding="utf-8") as handle:
        handle.write(DESCRIPTOR_XML)
    read = read_mesh_descriptors_xml(path, taxonomy_ids={"D006801": "9606"})
    breast, humans = read.concepts
    assert breast.curie == "MESH:D001943" and breast.name == "Breast Neoplasms"
    assert breast.synonyms == ("Breast Cancer", "Breast Tumors", "Breast Carcinoma")  # terms of every concept, name left out
    assert breast.tree_numbers == ("C04.588.180", "C17.800.090.500")
    assert humans.taxon == "NCBITaxon:9606" and breast.taxon is None


def test_mesh_supplementary_xml(tmp_path):
    path = tmp_path / "supp2024.xml"
    path.write_text(SUPPLEMENTARY_XML, encoding="utf-8")
    (familial,) = read_mesh_supplementary_xml(path).concepts
    assert familial.curie == "MESH:C562840" and familial.synonyms == ("Familial Breast Cancer",)
    assert familial.mapped_to == ("MESH:D001943", "MESH:D009386")  # the leading * removed


def test_mesh_xml_that_does_not_parse_names_file_and_line(tmp_path):
    path = tmp_path / "desc.xml"
    path.write_text(DESCRIPTOR_XML.replace("</DescriptorRecord>\n<DescriptorRecord", "</DescriptorRecord>\n<Descriptor", 1))
    with pytest.raises(VocabularyError, match=r"desc\.xml:\d+: not well-formed XML") as error:
        read_mesh_descriptors_xml(path)
    assert error.value.line is not None and error.value.line > 20


def test_mesh_xml_non_utf8_bytes_name_file_and_line(tmp_path):
    path = tmp_path / "desc.xml"
    path.write_bytes(DESCRIPTOR_XML.replace("Homo sapiens", "Homo sapi\xe9ns").encode("latin-1"))
    with pytest.raises(VocabularyError, match=r"desc\.xml:\d+") as error:
        read_mesh_descriptors_xml(path)
    assert error.value.line == DESCRIPTOR_XML.splitlines().index("    <Term><String>Humans</String></Term><Term><String>Homo sapiens</String></Term>") + 1


def test_hgnc_custom_download(tmp_path):
    read = read_hgnc_tsv(write_tsv(tmp_path / "hgnc.tsv.gz", HGNC, HGNC_HEADER))
    by_id = {c.curie: c for c in read.concepts}
    brca2 = by_id["NCBIGene:675"]
    assert brca2.name == "BRCA2" and brca2.taxon == "NCBITaxon:9606"
    assert brca2.synonyms == ("BRCA2 DNA repair associated", "FANCD1")  # approved name, previous symbols
    assert brca2.weak_synonyms == ("FAD", "FACD")  # aliases, without those already stronger
    assert dict(read.filtered) == {"status Symbol Withdrawn": 1}


def test_hgnc_complete_set_dialect(tmp_path):
    header = ("hgnc_id", "symbol", "name", "locus_group", "status", "alias_symbol", "prev_symbol", "entrez_id")
    rows = [("HGNC:1100", "BRCA1", "BRCA1 DNA repair associated", "protein-coding gene", "Approved", '"RNF53|FANCS"', "", "672"),
            ("HGNC:5", "A1BG", "alpha-1-B glycoprotein", "protein-coding gene", "Approved", "", "", "")]
    read = read_hgnc_tsv(write_tsv(tmp_path / "hgnc_complete_set.txt", rows, header))
    (brca1,) = read.concepts
    assert brca1.curie == "NCBIGene:672" and brca1.weak_synonyms == ("RNF53", "FANCS")
    assert dict(read.filtered) == {"no NCBI Gene ID": 1}


def test_gene_info(tmp_path):
    header = ("#tax_id", "GeneID", "Symbol", "LocusTag", "Synonyms", "dbXrefs", "chromosome", "map_location", "description",
              "type_of_gene", "Symbol_from_nomenclature_authority", "Full_name_from_nomenclature_authority",
              "Nomenclature_status", "Other_designations", "Modification_date", "Feature_type")
    rows = [("10090", "12189", "Brca1", "-", "Brca1-s|BRCA1/BRCA2-containing", "MGI:MGI:104537", "11", "11 D", "breast cancer 1, early onset",
             "protein-coding", "Brca1", "breast cancer 1, early onset", "O", "breast cancer type 1 susceptibility protein homolog", "20240101", "-"),
            ("9606", "672", "BRCA1", "-", "RNF53", "-", "17", "17q21.31", "BRCA1 DNA repair associated", "protein-coding",
             "BRCA1", "BRCA1 DNA repair associated", "O", "-", "20240101", "-")]
    read = read_gene_info(write_tsv(tmp_path / "Mus_musculus.gene_info.gz", rows, header), taxa=("NCBITaxon:10090",))
    (mouse,) = read.concepts
    assert mouse.curie == "NCBIGene:12189" and mouse.taxon == "NCBITaxon:10090" and mouse.name == "Brca1"
    assert mouse.synonyms == ("breast cancer 1, early onset",)
    assert mouse.weak_synonyms == ("Brca1-s", "BRCA1/BRCA2-containing", "breast cancer type 1 susceptibility protein homolog")
    assert dict(read.filtered) == {"taxon 9606": 1}


def test_omim_names_from_the_lexicon(tmp_path):
    read = read_omim_lexicon(write_tsv(tmp_path / "gda.tsv", OMIM, OMIM_HEADER))
    assert [(c.curie, c.name) for c in read.concepts] == [
        ("OMIM:114480", "Breast cancer"), ("OMIM:277900", "Wilson disease"), ("OMIM:151623", "Li-Fraumeni syndrome")]
    assert dict(read.filtered) == {"prefix ORPHA": 1} and not read.rejected  # an ID repeats per gene by design


# ---- bad input ----------------------------------------------------------------------------------
def test_missing_column_is_an_error_naming_file_and_line(tmp_path):
    header = tuple(h for h in HGNC_HEADER if h != "Previous symbols")
    path = write_tsv(tmp_path / "hgnc.tsv", [r[:6] + r[7:] for r in HGNC], header)
    with pytest.raises(VocabularyError, match=r"hgnc\.tsv:1: missing column\(s\) \['Previous symbols'\]"):
        read_hgnc_tsv(path)
    with pytest.raises(VocabularyError, match=r"gda\.tsv:1: missing column\(s\) \['diseaseName'\]"):
        read_omim_lexicon(write_tsv(tmp_path / "gda.tsv", [r[:3] for r in OMIM], OMIM_HEADER[:3]))


@pytest.mark.parametrize("row, reason", [
    (("D000002", "Temefos", "Temephos", "D02.705.400.625.800"), "wrong number of fields"),  # 4 fields, not 5
    (("D000002", "", "Temephos", "D02.705.400.625.800", ""), "empty name"),
    (("D001943", "Breast Neoplasms again", "", "C04", ""), "duplicate ID"),
    (("X12", "Something", "", "C04", ""), "malformed ID"),
])
def test_a_bad_row_is_counted_or_in_strict_mode_an_error(tmp_path, row, reason):
    path = write_tsv(tmp_path / "d.tsv", [*DESCRIPTORS[:3], row, *DESCRIPTORS[3:]])
    read = read_mesh_descriptors_tsv(path)
    assert dict(read.rejected) == {reason: 1}
    assert len(read.concepts) == len(DESCRIPTORS)
    assert read.examples[0].startswith(f"{path}:4: {reason}")
    with pytest.raises(VocabularyError, match=rf"d\.tsv:4: {reason}"):
        read_mesh_descriptors_tsv(path, strict=True)


def test_duplicate_id_names_the_first_line(tmp_path):
    path = write_tsv(tmp_path / "d.tsv", [*DESCRIPTORS, DESCRIPTORS[1]])
    with pytest.raises(VocabularyError, match=r"duplicate ID: MESH:D010051 \(first on line 2\)"):
        read_mesh_descriptors_tsv(path, strict=True)


def test_non_utf8_line_is_counted_with_its_line(tmp_path):
    path = tmp_path / "d.tsv"
    lines = ["\t".join(r).encode() + b"\n" for r in DESCRIPTORS]
    lines[2] = "D009369\tN\xe9oplasms\t\tC04\t\n".encode("latin-1")
    path.write_bytes(b"".join(lines))
    read = read_mesh_descriptors_tsv(path)
    assert dict(read.rejected) == {"not UTF-8": 1} and read.examples == [f"{path}:3: not UTF-8: byte 0xe9 at column 10"]
    with pytest.raises(VocabularyError, match=r"d\.tsv:3: not UTF-8"):
        read_mesh_descriptors_tsv(path, strict=True)


def test_missing_file_names_it(tmp_path):
    with pytest.raises(VocabularyError, match="nowhere.tsv: no such file"):
        read_mesh_descriptors_tsv(tmp_path / "nowhere.tsv")


# ---- configuration: which vocabulary serves which type ------------------------------------------
def test_types_are_routed_by_tree_and_mapping(tmp_path):
    config = small_config(write_vocabularies(tmp_path))
    selected = select_concepts(config, read_vocabularies(config))
    curies = {t: [c.curie for c in s.concepts] for t, s in selected.items()}
    assert curies["Disease"] == ["MESH:D001943", "MESH:D010051", "MESH:D009369", "MESH:D006527", "MESH:D003866",  # C and F03
                                 "OMIM:114480", "OMIM:277900", "OMIM:151623", "MESH:C562840"]  # OMIM, then SCRs mapped to C
    assert curies["Chemical"] == ["MESH:D002945", "MESH:D004317", "MESH:C000002"]  # bevonium maps to cisplatin (D)
    assert curies["Gene"] == ["NCBIGene:672", "NCBIGene:675", "NCBIGene:7157", "NCBIGene:3569"]
    assert curies["Species"] == ["NCBITaxon:9606", "NCBITaxon:10090"]  # Abattoirs (J01) is in no type
    assert selected["Disease"].sources == [0, 0, 0, 0, 0, 1, 1, 1, 2]


def test_config_refuses_what_cannot_work(tmp_path):
    files = (VocabularyFile("m", "mesh-descriptors-tsv", "m.tsv"),)
    with pytest.raises(ConfigError, match="unknown format 'mesh-rdf'"):
        LinkingConfig((VocabularyFile("m", "mesh-rdf", "m.nt"),), ())
    with pytest.raises(ConfigError, match="selects 'hgnc', which is not among"):
        LinkingConfig(files, (TypeVocabulary("Gene", (Selection("hgnc"),)),))
    with pytest.raises(ConfigError, match="'gene' names two types: 'Gene' and 'Protein'"):
        LinkingConfig(files, (TypeVocabulary("Gene", (Selection("m"),)), TypeVocabulary("Protein", (Selection("m"),), aliases=("gene",))))


# ---- the shared copies ----------------------------------------------------------------------------
def test_shared_mesh_copies_read_with_their_one_bad_row_counted(shared_root):
    descriptors = read_mesh_descriptors_tsv(shared_root / "vocab" / "mesh_descriptors.tsv.gz")
    assert len(descriptors.concepts) == 30_764 and not descriptors.rejected
    supplementary = read_mesh_supplementary_tsv(shared_root / "vocab" / "mesh_supplementary.tsv.gz")
    assert len(supplementary.concepts) == 323_303  # and C483025, whose quoted synonym holds a stray tab
    assert dict(supplementary.rejected) == {"wrong number of fields": 1}
    assert supplementary.examples[0].endswith("mesh_supplementary.tsv.gz:236005: wrong number of fields: expected 4 tab-separated fields, found 5")
