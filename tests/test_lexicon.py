"""lexicon: terms by column name, case rules, word boundaries, offsets, and the fallbacks."""

from __future__ import annotations

import pickle

import pytest

from adabiobert.pmc.lexicon import Lexicon, LexiconFormatError


def _tsv(path, header, rows):
    path.write_text("\n".join(["\t".join(header)] + ["\t".join(r) for r in rows]) + "\n", encoding="utf-8")
    return path


@pytest.fixture
def disgenet(tmp_path):
    # DisGeNET's curated file has more columns, in another order: only the names matter.
    header = ["diseaseId", "score", "diseaseName", "geneId", "geneSymbol", "DSI", "source"]
    rows = [["C1", "0.9", "Breast cancer", "672", "BRCA1", "0.5", "CTD"],
            ["C2", "0.3", "Acute myeloid leukemia", "2322", "FLT3", "0.4", "CTD"],
            ["C3", "0.1", "Some syndrome", "847", "CAT", "0.2", "CTD"]]
    return _tsv(tmp_path / "curated_gene_disease_associations.tsv", header, rows)


def test_columns_are_chosen_by_name(disgenet):
    lexicon = Lexicon.from_disgenet_tsv([disgenet])
    assert len(lexicon) == 6
    assert [m[2] for m in lexicon.mentions("BRCA1 and FLT3 in breast cancer")] == ["BRCA1", "FLT3", "Breast cancer"]
    assert not lexicon.matches("score 0.9 and CTD and 672")


def test_gene_symbols_match_case_sensitively_names_do_not(disgenet):
    lexicon = Lexicon.from_disgenet_tsv([disgenet])
    assert lexicon.matches("CAT activity rose") and not lexicon.matches("The cat sat.")
    assert not lexicon.matches("brca1 in lower case")
    assert lexicon.matches("ACUTE MYELOID LEUKEMIA in capitals")


def test_short_terms_match_case_sensitively(tmp_path):
    terms = tmp_path / "terms.txt"
    terms.write_text("# comment\nAML\n\nmultiple sclerosis\n", encoding="utf-8")
    lexicon = Lexicon.from_term_lists([terms])
    assert len(lexicon) == 2
    assert lexicon.matches("Patients with AML.") and not lexicon.matches("aml is not the abbreviation here")
    assert lexicon.matches("Multiple Sclerosis patients")


def test_matches_start_and_end_on_word_boundaries():
    lexicon = Lexicon(["IL-2", "p53"], case_sensitive_terms=["IL"])
    assert not lexicon.matches("ILK and ILs and TIL")
    assert lexicon.matches("an IL family member")
    assert lexicon.mentions("IL - 2 and IL-2") == [(0, 6, "IL-2"), (11, 15, "IL-2")]
    assert not lexicon.matches("p530 and xp53")


def test_mentions_are_leftmost_longest_with_offsets():
    lexicon = Lexicon(["breast cancer", "cancer", "breast cancer susceptibility"])
    text = "Hereditary  breast   cancer and cancer."
    assert lexicon.mentions(text) == [(12, 27, "breast cancer"), (32, 38, "cancer")]
    assert text[12:27] == "breast   cancer"


def test_non_ascii_terms_and_text():
    lexicon = Lexicon(["Sjögren syndrome", "İnsulinoma"])
    text = "SJÖGREN SYNDROME and İnsulinoma"
    assert [(text[s:e], t) for s, e, t in lexicon.mentions(text)] == [
        ("SJÖGREN SYNDROME", "Sjögren syndrome"), ("İnsulinoma", "İnsulinoma")]


def test_phenotype_term_column_and_the_hpo_root_is_excluded(tmp_path):
    path = _tsv(tmp_path / "phenotypes.tsv", ["hpoId", "term", "kind"],
                [["HP:0000001", "All", "name"], ["HP:0001250", "Seizure", "name"], ["HP:0001250", "Seizures", "synonym"]])
    lexicon = Lexicon.from_disgenet_tsv([path])
    assert len(lexicon) == 2
    assert lexicon.matches("Seizures were frequent.") and not lexicon.matches("All patients were well.")


def test_a_file_without_known_columns_is_named(tmp_path):
    path = _tsv(tmp_path / "x.tsv", ["gene", "disease"], [["A", "B"]])
    with pytest.raises(LexiconFormatError, match=r"x\.tsv:1: no column named geneSymbol"):
        Lexicon.from_disgenet_tsv([path])


def test_a_short_row_names_the_line(tmp_path):
    path = _tsv(tmp_path / "x.tsv", ["geneId", "geneSymbol", "diseaseName"], [["1", "A1", "D"], ["2", "B2"]])
    with pytest.raises(LexiconFormatError, match=r"x\.tsv:3: 2 columns"):
        Lexicon.from_disgenet_tsv([path])


def test_from_mentions_reads_iob_spans_by_type():
    sentences = [
        (["BRCA1", "mutations", "cause", "breast", "cancer", "."], ["B-GENE", "O", "O", "B-Disease", "I-Disease", "O"]),
        (["Loss", "of", "TP53", "in", "tumours"], ["O", "O", "I-GENE", "O", "B-Disease"]),
    ]
    assert len(Lexicon.from_mentions(sentences)) == 4
    diseases = Lexicon.from_mentions(sentences, entity_types={"Disease"})
    assert diseases.matches("Breast cancer risk") and not diseases.matches("BRCA1 carriers")
    with pytest.raises(ValueError, match="sentence 0: 2 words but 1 tags"):
        Lexicon.from_mentions([(["a", "b"], ["O"])])


def test_default_is_the_shared_lexicon(shared_root, monkeypatch):
    monkeypatch.delenv("ADABIOBERT_LEXICON", raising=False)
    lexicon = Lexicon.default(shared_root)
    assert len(lexicon) > 40_000
    assert lexicon.matches("Mutations in AARS1 cause Charcot-Marie-Tooth disease, axonal, type 2N.")
    assert lexicon.matches("Recurrent seizures were observed.")


def test_default_follows_the_environment_and_is_none_without_files(tmp_path, monkeypatch, disgenet):
    monkeypatch.delenv("ADABIOBERT_LEXICON", raising=False)
    assert Lexicon.default(tmp_path / "nowhere") is None
    folder = tmp_path / "lex"
    folder.mkdir()
    (folder / "gene_disease_associations.tsv").write_text(disgenet.read_text())
    monkeypatch.setenv("ADABIOBERT_LEXICON", str(folder))
    assert len(Lexicon.default(tmp_path / "nowhere")) == 6
    monkeypatch.setenv("ADABIOBERT_LEXICON", str(tmp_path / "empty"))
    with pytest.raises(FileNotFoundError, match="ADABIOBERT_LEXICON"):
        Lexicon.default()


def test_from_files_mixes_tables_lists_and_folders(tmp_path, disgenet):
    terms = tmp_path / "extra.txt"
    terms.write_text("glioblastoma\n")
    lexicon = Lexicon.from_files([tmp_path])  # the folder: its .tsv and .txt files
    assert len(lexicon) == 7 and lexicon.matches("Glioblastoma cells") and lexicon.matches("CAT")


def test_pickling_rebuilds_the_matcher(disgenet):
    lexicon = pickle.loads(pickle.dumps(Lexicon.from_disgenet_tsv([disgenet])))
    assert len(lexicon) == 6 and lexicon.matches("FLT3 mutations") and not lexicon.matches("the cat")


def test_an_empty_lexicon_matches_nothing():
    assert not Lexicon().matches("BRCA1 breast cancer") and Lexicon().mentions("x") == []
