"""``adabiobert tag``: files or stdin in, one JSONL or TSV record per mention out, offsets exact;
or one BioC / PubTator document per text, with the same offsets."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from pathlib import Path

import bioc
import pytest
from bioc import biocjson, biocxml, pubtator

from adabiobert.cli.command import main
from adabiobert.model.tagger import Tagger


@pytest.fixture(scope="module")
def texts(ncbi):
    sentences = [" ".join(s.words) for s in ncbi.test[:40]]
    return ["\n\n".join(sentences[:25]), "  " + "\t".join(sentences[25:])]  # paragraphs; a tab-joined text


def test_files_give_jsonl_with_offsets_into_each_file(tmp_path, texts, tiny_bundle, capsys):
    paths = []
    for i, text in enumerate(texts):
        paths.append(tmp_path / f"doc{i}.txt")
        paths[-1].write_text(text, encoding="utf-8")
    assert main(["tag", "--model", str(tiny_bundle), "--no-progress", *map(str, paths)]) == 0
    captured = capsys.readouterr()
    records = [json.loads(line) for line in captured.out.splitlines()]
    assert records and "mentions in 2 texts" in captured.err
    for record in records:
        assert Path(record["source"]).read_text(encoding="utf-8")[record["start"]:record["end"]] == record["mention"]
        assert "line" not in record
    expected = Tagger.from_pretrained(tiny_bundle, device="cpu").tag(texts)
    got = [[(r["start"], r["end"], r["label"]) for r in records if r["source"] == str(p)] for p in paths]
    assert got == [[(e.start, e.end, e.label) for e in doc] for doc in expected]


def test_lines_from_stdin_as_tsv(texts, tiny_bundle, capsys, monkeypatch):
    lines = texts[0].split("\n\n")
    monkeypatch.setattr(sys, "stdin", io.StringIO("\n".join(lines[:10]) + "\n\n"))
    assert main(["tag", "--model", str(tiny_bundle), "--lines", "--format", "tsv", "--no-progress"]) == 0
    rows = [line.split("\t") for line in capsys.readouterr().out.splitlines()]
    assert tuple(rows[0]) == ("source", "line", "start", "end", "label", "confidence", "mention")
    assert len(rows) > 1
    for source, line, start, end, label, confidence, mention in rows[1:]:
        assert source == "<stdin>" and 1 <= int(line) <= 10
        assert lines[int(line) - 1][int(start):int(end)] == mention
        assert label == "Disease" and 0.0 <= float(confidence) <= 1.0


def test_one_sentence_per_call_gives_the_same_mentions(tmp_path, texts, tiny_bundle, capsys):
    path = tmp_path / "doc.txt"
    path.write_text(texts[0], encoding="utf-8")
    outputs = []
    for batch in ("1", "512"):
        assert main(["tag", "--model", str(tiny_bundle), "--no-progress", "--batch-sentences", batch, str(path)]) == 0
        outputs.append([{k: v for k, v in json.loads(line).items() if k != "confidence"}
                        for line in capsys.readouterr().out.splitlines()])
    assert outputs[0] == outputs[1] and outputs[0]


def test_a_missing_file_is_an_error_not_a_traceback(tmp_path, tiny_bundle, capsys):
    assert main(["tag", "--model", str(tiny_bundle), str(tmp_path / "nope.txt")]) == 2
    assert "nope.txt" in capsys.readouterr().err


def test_a_file_that_is_not_utf8_is_refused_naming_it(tmp_path, tiny_bundle, capsys):
    (tmp_path / "good.txt").write_text("Asthma .", encoding="utf-8")
    (tmp_path / "latin1.txt").write_bytes("Morbus Crohn in Zürich .".encode("latin-1"))
    assert main(["tag", "--model", str(tiny_bundle), str(tmp_path / "good.txt"), str(tmp_path / "latin1.txt")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert f"{tmp_path / 'latin1.txt'}: not UTF-8 text (invalid start byte at byte 17)" in err


def test_the_summary_counts_one_text_as_one_and_two_as_two(tmp_path, texts, tiny_bundle, capsys):
    for i, text in enumerate(texts):
        (tmp_path / f"doc{i}.txt").write_text(text, encoding="utf-8")
    assert main(["tag", "--model", str(tiny_bundle), "--no-progress", str(tmp_path / "doc0.txt")]) == 0
    assert " in 1 text (" in capsys.readouterr().err
    assert main(["tag", "--model", str(tiny_bundle), "--no-progress", str(tmp_path / "doc0.txt"),
                 str(tmp_path / "doc1.txt")]) == 0
    assert " in 2 texts (" in capsys.readouterr().err


def test_the_console_script_reads_stdin(tiny_bundle, texts):
    script = Path(sys.executable).parent / "adabiobert"
    command = [str(script)] if script.exists() else [sys.executable, "-m", "adabiobert.cli.command"]
    result = subprocess.run([*command, "tag", "--model", str(tiny_bundle), "--progress"], input=texts[1],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    records = [json.loads(line) for line in result.stdout.splitlines()]
    assert records and all(texts[1][r["start"]:r["end"]] == r["mention"] for r in records)
    assert "sentence" in result.stderr  # the tqdm bar


def jsonl_records(argv: list[str], capsys) -> list[dict]:
    assert main(argv) == 0
    return [json.loads(line) for line in capsys.readouterr().out.splitlines()]


@pytest.mark.parametrize(("fmt", "loads"), [("bioc-xml", biocxml.loads), ("bioc-json", biocjson.loads)])
def test_bioc_holds_each_file_as_a_document_with_the_jsonl_offsets(fmt, loads, tmp_path, texts, tiny_bundle, capsys):
    paths = []
    for i, text in enumerate(texts):  # paragraph breaks; leading spaces and tabs
        paths.append(str(tmp_path / f"doc{i}.txt"))
        Path(paths[-1]).write_text(text, encoding="utf-8")
    common = ["tag", "--model", str(tiny_bundle), "--no-progress", *paths]
    records = jsonl_records(common, capsys)
    assert main([*common, "--format", fmt]) == 0
    collection = loads(capsys.readouterr().out)
    bioc.validate(collection)
    assert [d.id for d in collection.documents] == paths
    for document, text in zip(collection.documents, texts):
        (passage,) = document.passages
        assert (passage.offset, passage.text) == (0, text)
        got = [(a.locations[0].offset, a.locations[0].end, a.text, a.infons["type"]) for a in passage.annotations]
        assert got == [(r["start"], r["end"], r["mention"], r["label"]) for r in records if r["source"] == document.id]
    assert sum(len(d.passages[0].annotations) for d in collection.documents) == len(records) > 0


def test_pubtator_from_lines_has_one_document_per_line_with_the_jsonl_offsets(texts, tiny_bundle, capsys, monkeypatch):
    lines = texts[0].split("\n\n")[:10]
    common = ["tag", "--model", str(tiny_bundle), "--no-progress", "--lines"]
    monkeypatch.setattr(sys, "stdin", io.StringIO("\n".join(lines)))
    records = jsonl_records(common, capsys)
    monkeypatch.setattr(sys, "stdin", io.StringIO("\n".join(lines)))
    assert main([*common, "--format", "pubtator"]) == 0
    documents = pubtator.loads(capsys.readouterr().out)
    assert [(d.pmid, d.title) for d in documents] == [(f"<stdin>:{i}", line) for i, line in enumerate(lines, start=1)]
    for document in documents:
        pubtator.validate(document)
        line = int(document.pmid.rsplit(":", 1)[1])
        assert [(a.start, a.end, a.text, a.type) for a in document.annotations] == [
            (r["start"], r["end"], r["mention"], r["label"]) for r in records if r["line"] == line]
    assert sum(len(d.annotations) for d in documents) == len(records) > 0
