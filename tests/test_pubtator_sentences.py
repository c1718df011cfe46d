"""PubTator documents to IOB2 training sentences: the split the annotation job makes, and the
counted rules for mentions across sentences, off word boundaries and overlapping."""

from __future__ import annotations

from pathlib import Path

import pytest

from adabiobert.corpora.iob import Sentence
from adabiobert.corpora.pubtator import Mention, PubTatorDocument
from adabiobert.corpora.pubtator_sentences import document_sentences, read_sentences, to_sentences

# Title (0-39):  BRCA1 0-5, - 5-6, associated 6-16, breast 17-23, cancer 24-30, in 31-33, mice 34-38, . 38-39
TITLE = "BRCA1-associated breast cancer in mice."
# Abstract (from 40): Aspirin 40-47, reduced 48-55, Ca2 56-59, + 59-60, levels 61-67, . 67-68,
# We 69-71, saw 72-75, it 76-78, . 78-79, Then 80-84, more 85-89, . 89-90
ABSTRACT = "Aspirin reduced Ca2+ levels. We saw it. Then more."


def mention(start: int, end: int, type_: str) -> Mention:
    return Mention(start, end, (TITLE + " " + ABSTRACT)[start:end], type_, type_, ())


MENTIONS = (
    mention(0, 30, "Disease"),  # BRCA1-associated breast cancer
    mention(0, 5, "Gene"),  # BRCA1, inside the disease: dropped by the overlap rule
    mention(34, 38, "Species"),  # mice
    mention(34, 38, "Species"),  # mice again: a duplicate
    mention(40, 47, "Chemical"),  # Aspirin
    mention(56, 58, "Chemical"),  # "Ca" inside the word "Ca2": snapped to it
    mention(76, 84, "Disease"),  # "it. Then": across a sentence boundary
    mention(34, 47, "Chemical"),  # "mice. Aspirin": across the title and the abstract
    mention(72, 75, "Gene"),  # saw
    mention(72, 75, "Chemical"),  # saw again, another type, same length: the first in the file wins
    mention(39, 40, "Gene"),  # the space between title and abstract: no word
)
DOCUMENT = PubTatorDocument("42", TITLE, ABSTRACT, MENTIONS)


def test_words_tags_and_offsets() -> None:
    sentences, _ = to_sentences([DOCUMENT], {"Gene", "Disease", "Chemical", "Species"}, "BioRED")
    assert [(s.words, s.tags) for s in sentences] == [
        (("BRCA1", "-", "associated", "breast", "cancer", "in", "mice", "."),
         ("B-Disease", "I-Disease", "I-Disease", "I-Disease", "I-Disease", "O", "B-Species", "O")),
        (("Aspirin", "reduced", "Ca2", "+", "levels", "."), ("B-Chemical", "O", "B-Chemical", "O", "O", "O")),
        (("We", "saw", "it", "."), ("O", "B-Gene", "O", "O")),
        (("Then", "more", "."), ("O", "O", "O")),
    ]
    assert sentences[1].starts == (40, 48, 56, 59, 61, 67)
    assert sentences[1].ends == (47, 55, 59, 60, 67, 68)
    for sentence in sentences:
        assert isinstance(sentence, Sentence)  # what training takes from the IOB reader
        assert (sentence.corpus, sentence.pmid) == ("BioRED", "42")
        assert sentence.annotated_types == {"Gene", "Disease", "Chemical", "Species"}
        assert [DOCUMENT.text[s:e] for s, e in zip(sentence.starts, sentence.ends)] == list(sentence.words)


def test_every_mention_is_tagged_or_counted() -> None:
    _, report = to_sentences([DOCUMENT], {"Gene"}, "x")
    assert (report.documents, report.sentences, report.mentions) == (1, 4, 11)
    assert report.tagged == 5  # the disease, mice, Aspirin, Ca2, saw (Gene)
    assert report.crossing_sentence == 2
    assert report.without_words == 1
    assert report.overlapping == 2  # BRCA1 (Gene), saw (Chemical)
    assert report.duplicates == 1
    assert report.off_word_boundary == 1
    assert report.mentions == (report.tagged + report.crossing_sentence + report.without_words
                               + report.overlapping + report.duplicates)
    assert report.examples["overlapping"] == "42 0-5 'BRCA1' (Gene)"
    assert report.examples["crossing_sentence"] == "42 76-84 'it. Then' (Disease)"


def test_the_overlap_rule_keeps_the_longer_mention_whatever_the_order() -> None:
    reordered = PubTatorDocument("1", TITLE, "", (mention(0, 5, "Gene"), mention(0, 30, "Disease")))
    sentences, report = to_sentences([reordered], {"Gene", "Disease"}, "x")
    assert sentences[0].tags[:6] == ("B-Disease", "I-Disease", "I-Disease", "I-Disease", "I-Disease", "O")
    assert report.overlapping == 1


def test_the_split_is_the_annotation_jobs() -> None:
    from adabiobert.annotation.stages import sentence_records
    from adabiobert.pmc.shards import article_sections

    records = sentence_records(article_sections(TITLE, ABSTRACT, []))
    ours = document_sentences(DOCUMENT)
    assert len(records) == len(ours)
    for record, sentence in zip(records, ours):
        piece_offset = 0 if record["section"] == "title" else len(TITLE) + 1
        assert [piece_offset + record["start"] + s for s in record["word_starts"]] == [w.start for w in sentence.words]
        assert [piece_offset + record["start"] + e for e in record["word_ends"]] == [w.end for w in sentence.words]


def test_an_empty_abstract_is_no_sentence() -> None:
    sentences = document_sentences(PubTatorDocument("1", "HeLa cells", "", ()))
    assert [[w.text for w in s.words] for s in sentences] == [["HeLa", "cells"]]


def test_read_sentences_from_a_file(tmp_path: Path) -> None:
    path = tmp_path / "NCBIdisease_Test.PubTator"
    path.write_text("1|t|Fabry disease\n1|a|Rare.\n1\t0\t13\tFabry disease\tSpecificDisease\tD000795\n\n", encoding="utf-8")
    sentences, read, aligned = read_sentences(path)
    assert [(s.words, s.tags, s.annotated_types) for s in sentences] == [
        (("Fabry", "disease"), ("B-Disease", "I-Disease"), {"Disease"}),
        (("Rare", "."), ("O", "O"), {"Disease"}),
    ]
    assert (read.documents, aligned.tagged) == (1, 1)


def test_real_ncbi_disease_test_file_tags_every_mention(shared_root: Path) -> None:
    path = shared_root / "pubtator" / "NCBIdisease_Test.PubTator"
    if not path.is_file():
        pytest.skip(f"{path} is missing")
    sentences, read, aligned = read_sentences(path)
    assert aligned.mentions == read.total_mentions == 960
    assert aligned.tagged == sum(tag.startswith("B-") for s in sentences for tag in s.tags) == 960


def test_corpus_report_table(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from benchmarks.pubtator_report import main

    (tmp_path / "GNormPlus_Test.PubTator").write_text(
        "1|t|TIF1 family\n1|a|x\n1\t0\t4\tTIF1\tGene\t8805\n1\t0\t11\tTIF1 family\tFamilyName\n\n"
        "2|t|Bad\n2|a|x\n2\t0\t3\tBAD\tGene\t1\n\n",
        encoding="utf-8",
    )
    assert main([str(tmp_path)]) == 0
    rows = [line for line in capsys.readouterr().out.splitlines() if line.startswith("| GNormPlus_Test")]
    assert rows == ["| GNormPlus_Test | 1 | 1 | 1 | - | - | - | - | - | FamilyName 1 | 1 (1): text_mismatch 1 | 0 | 0 | 0 | 0 |"]
