"""``adabiobert export``: an annotation run as BioC XML, BioC JSON and PubTator, read back with ``bioc``.

The run is made without Ray (the library calls the job's driver makes per shard), so these tests
check the exports alone: every mention of the tables is in the export at the tables' offsets,
with the text the shard holds there, and nothing else is.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import bioc
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from bioc import biocjson, biocxml, pubtator

from adabiobert import storage
from adabiobert.annotation.exports import dumps, lay_out, text_document
from adabiobert.cli.command import main
from adabiobert.model.tagger import Tagger
from tests.annotation_data import annotate_without_ray, article, corpus_articles, write_shard


@pytest.fixture(scope="module")
def tagger(tiny_bundle):
    return Tagger.from_pretrained(tiny_bundle, device="cpu")


@pytest.fixture(scope="module")
def run(tmp_path_factory, tagger, ncbi):
    """Two shards (one in a subfolder): corpus articles, one without a title, one with paragraph
    breaks and a tab, one rejected (no text), one without a pmcid."""
    root = tmp_path_factory.mktemp("export-run")
    sentences = [s.words for s in ncbi.test]
    first = corpus_articles(sentences, "PMC1", 3)
    texts = [" ".join(w) for w in sentences[200:212]]
    first += [
        article("PMC1notitle", None, " ".join(texts[:3]), [("Results", " ".join(texts[3:6]))]),
        article("PMC1breaks", texts[6], "\n\n".join(texts[7:9]), [("Discussion", "\t".join(texts[9:12]))]),
        article("PMC1empty", None, "", []),
        article(None, "No identifier .", "Colon cancer ."),
    ]
    write_shard(str(root / "shards" / "part-00000.parquet"), first)
    write_shard(str(root / "shards" / "2026" / "part-00001.parquet"), corpus_articles(sentences[400:], "PMC2", 2))
    annotate_without_ray(root / "shards", root / "annotations", tagger)
    return root


def table_rows(output: Path) -> list[dict]:
    files = sorted((output / "entities").rglob("*.parquet"))
    return pa.concat_tables([pq.ParquetFile(f).read() for f in files]).to_pylist()


def section_texts(shards: Path) -> dict[str, dict[int, str]]:
    """pmcid -> section_index -> text, from the shards themselves."""
    texts = {}
    for path in shards.rglob("*.parquet"):
        for row in pq.read_table(path).to_pylist():
            pieces = [row["title"], row["abstract"]] + [s["text"] for s in row["sections"]]
            texts[row["pmcid"]] = {i: t for i, t in enumerate(pieces) if t}
    return texts


@pytest.fixture(scope="module")
def exported(run):
    assert main(["export", str(run / "annotations"), "--out", str(run / "exports")]) == 0
    return run / "exports"


def test_one_file_per_shard_and_format_mirroring_the_shard_names(exported):
    assert sorted(str(p.relative_to(exported)) for p in exported.rglob("*") if p.is_file()) == [
        "2026/part-00001.bioc.json", "2026/part-00001.bioc.xml", "2026/part-00001.pubtator",
        "part-00000.bioc.json", "part-00000.bioc.xml", "part-00000.pubtator"]


@pytest.mark.parametrize("fmt", ["bioc.xml", "bioc.json"])
def test_bioc_reads_back_with_the_tables_offsets_and_the_shards_text(fmt, run, exported):
    loader = biocxml.load if fmt == "bioc.xml" else biocjson.load
    rows = table_rows(run / "annotations")
    texts = section_texts(run / "shards")
    found, documents = [], []
    for path in sorted(exported.rglob(f"*.{fmt}")):
        with open(path, encoding="utf-8") as handle:
            collection = loader(handle)
        bioc.validate(collection)  # every annotation's text is the passage text at its location
        for document in collection.documents:
            documents.append(document.id)
            for passage in document.passages:
                section = int(passage.infons["section_index"])
                assert passage.text == texts[document.id].get(section, "")
                for annotation in passage.annotations:
                    (location,) = annotation.locations
                    start = location.offset - passage.offset
                    assert passage.text[start:start + location.length] == annotation.text
                    found.append((document.id, section, start, start + location.length, annotation.text,
                                  annotation.infons["type"]))
    expected = [(r["pmcid"], r["section_index"], r["start_offset"], r["end_offset"], r["mention"], r["label"]) for r in rows]
    assert sorted(found) == sorted(expected) and len(found) > 20
    assert {section for _, section, *_ in found} >= {0, 1, 2, 3}  # title, abstract and body passages
    assert sorted(documents) == sorted(["PMC10", "PMC11", "PMC12", "PMC1notitle", "PMC1breaks", "PMC20", "PMC21"])


def test_pubtator_reads_back_with_document_offsets_laid_out_from_the_tables(run, exported):
    rows = table_rows(run / "annotations")
    texts = section_texts(run / "shards")
    found = []
    for path in sorted(exported.rglob("*.pubtator")):
        with open(path, encoding="utf-8") as handle:
            documents = pubtator.load(handle)
        for document in documents:
            pubtator.validate(document)  # text[start:end] == mention over title + one separator + abstract
            pieces = texts[document.pmid]
            order = [0] + [i for i in sorted(pieces) if i > 0]
            offsets = dict(zip(order, lay_out([pieces.get(i, "") for i in order])))
            for annotation in document.annotations:
                section = max(i for i in order if offsets[i] <= annotation.start)
                found.append((document.pmid, section, annotation.start - offsets[section],
                              annotation.end - offsets[section], annotation.type))
                assert annotation.id == "-"
    expected = [(r["pmcid"], r["section_index"], r["start_offset"], r["end_offset"], r["label"]) for r in rows]
    assert sorted(found) == sorted(expected)
    for path in exported.rglob("*.pubtator"):
        lines = path.read_text(encoding="utf-8").splitlines()
        assert all(len(line.split("\t")) == 6 for line in lines if line and "|t|" not in line and "|a|" not in line)


def test_rejected_articles_are_left_out(run, exported):
    xml = (exported / "part-00000.bioc.xml").read_text(encoding="utf-8")
    assert "PMC1empty" not in xml and "No identifier" not in xml


def test_chosen_formats_only(run, tmp_path):
    assert main(["export", str(run / "annotations"), "--out", str(tmp_path), "--format", "pubtator"]) == 0
    assert sorted(p.name for p in tmp_path.rglob("*") if p.is_file()) == ["part-00000.pubtator", "part-00001.pubtator"]


def test_exports_to_s3(run, s3_bucket):
    assert main(["export", str(run / "annotations"), "--out", f"s3://{s3_bucket}/exports", "--format", "bioc-json"]) == 0
    names = [f.uri for f in storage.list_files(f"s3://{s3_bucket}/exports")]
    assert names == [f"s3://{s3_bucket}/exports/2026/part-00001.bioc.json", f"s3://{s3_bucket}/exports/part-00000.bioc.json"]
    collection = biocjson.loads(storage.read_bytes(names[1]).decode("utf-8"))
    bioc.validate(collection)


# ---- where the text comes from ---------------------------------------------------------------
@pytest.fixture
def small_run(tmp_path, tagger, ncbi):
    write_shard(str(tmp_path / "shards" / "part-00000.parquet"), corpus_articles([s.words for s in ncbi.test], "PMC", 2))
    annotate_without_ray(tmp_path / "shards", tmp_path / "annotations", tagger)
    return tmp_path


def one_error_line(capsys) -> str:
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err, err
    return err


def test_moved_shards_are_found_with_the_shards_option(small_run, capsys):
    shutil.move(small_run / "shards", small_run / "moved")
    assert main(["export", str(small_run / "annotations"), "--out", str(small_run / "out")]) == 2
    err = one_error_line(capsys)
    assert "is not at" in err and "pass --shards" in err
    assert main(["export", str(small_run / "annotations"), "--out", str(small_run / "out"),
                 "--shards", str(small_run / "moved")]) == 0
    bioc.validate(biocxml.loads((small_run / "out" / "part-00000.bioc.xml").read_text(encoding="utf-8")))


def test_a_shard_changed_since_it_was_tagged_is_refused(small_run, ncbi, capsys):
    write_shard(str(small_run / "shards" / "part-00000.parquet"),
                corpus_articles([s.words for s in ncbi.test[300:]], "PMC", 2))
    assert main(["export", str(small_run / "annotations"), "--out", str(small_run / "out")]) == 2
    err = one_error_line(capsys)
    assert "changed after run run1 tagged it" in err and "run jobs/annotate.py again" in err
    assert not (small_run / "out").exists()


def test_an_output_of_tables_version_2_without_articles_exports_as_version_3(small_run):
    """Version 3 added the articles table and left entities and rejections as they were: an output
    written by version 2 (its marker of version 2, no articles file) still exports, the same."""
    from dataclasses import replace

    from adabiobert.annotation.commit import AnnotationStore

    out = small_run / "annotations"
    assert main(["export", str(out), "--out", str(small_run / "v3")]) == 0
    (commit,) = [c[-1] for c in AnnotationStore(str(out)).markers().values()]
    old = replace(commit, tables_version=2, files=tuple(f for f in commit.files if not f.startswith("articles/")))
    (out / commit.marker).unlink()
    (out / "_manifest" / "manifest.json").unlink()
    storage.write_bytes(str(out / old.marker), old.to_json())
    storage.delete_tree(str(out / "articles"))
    assert main(["export", str(out), "--out", str(small_run / "v2")]) == 0
    v3 = sorted(p.relative_to(small_run / "v3") for p in (small_run / "v3").rglob("*") if p.is_file())
    assert v3 and v3 == sorted(p.relative_to(small_run / "v2") for p in (small_run / "v2").rglob("*") if p.is_file())
    assert all((small_run / "v3" / f).read_bytes() == (small_run / "v2" / f).read_bytes() for f in v3)


def test_an_output_of_an_older_tables_version_is_refused(small_run, capsys):
    from adabiobert.annotation.tables import TABLES_VERSION

    (marker,) = (small_run / "annotations" / "_manifest" / "commits").rglob("*.json")
    marker.write_text(marker.read_text().replace(f'"tables_version": {TABLES_VERSION}', '"tables_version": 1'))
    (small_run / "annotations" / "_manifest" / "manifest.json").unlink()  # the markers are the truth
    assert main(["export", str(small_run / "annotations"), "--out", str(small_run / "out")]) == 2
    assert "layout version 1" in one_error_line(capsys)


def test_an_out_that_is_a_file_is_refused_in_one_line(small_run, capsys):
    (small_run / "exports.txt").write_text("in the way")
    assert main(["export", str(small_run / "annotations"), "--out", str(small_run / "exports.txt")]) == 2
    assert f"{small_run / 'exports.txt'} is a file: --out names a folder" in one_error_line(capsys)
    assert (small_run / "exports.txt").read_text() == "in the way"


def test_a_folder_that_is_not_an_annotation_output_is_refused(tmp_path, capsys):
    assert main(["export", str(tmp_path), "--out", str(tmp_path / "out")]) == 2
    assert "no annotation output there" in one_error_line(capsys)


# ---- what each format cannot hold --------------------------------------------------------------
def test_characters_a_format_cannot_hold_are_replaced_one_for_one():
    text = "Bell\x07 palsy\nand\tcolon cancer ."
    mentions = [(0, 11, "Bell\x07 palsy", "Disease", 0.9), (20, 32, "colon cancer", "Disease", 0.8)]
    document = text_document("doc|1", text, mentions)
    xml = biocxml.loads(dumps([document], "bioc-xml", "test"))
    passage = xml.documents[0].passages[0]
    assert passage.text == text.replace("\x07", "\ufffd")
    assert [(a.locations[0].offset, a.text) for a in passage.annotations] == [(0, "Bell\ufffd palsy"), (20, "colon cancer")]
    assert biocjson.loads(dumps([document], "bioc-json", "test")).documents[0].passages[0].text == text
    (parsed,) = pubtator.loads(dumps([document], "pubtator", "test"))
    assert parsed.title == "Bell\x07 palsy and colon cancer ."
    assert [(a.start, a.end, a.text) for a in parsed.annotations] == [(0, 11, "Bell\x07 palsy"), (20, 32, "colon cancer")]


def test_passages_are_laid_out_one_separator_apart():
    assert lay_out(["Title", "", "Abstract"]) == [0, 6, 7]
