"""The IOB reader on small hand-written files, the dataset registry, and the real corpora."""

from __future__ import annotations

import dataclasses
import subprocess
import sys
import warnings
from pathlib import Path

import pytest

from adabiobert.corpora.iob import (
    DATA_ROOT_ENV,
    DATASETS,
    CorpusWarning,
    Sentence,
    get_dataset_spec,
    load_corpus,
    read_iob,
    resolve_data_root,
    validate_for_training,
)
from adabiobert.errors import CorpusError, CorpusFormatError, DatasetNotFoundError
from adabiobert.labels import LabelSet


def write(path: Path, text: str) -> Path:
    path.write_bytes(text.encode("utf-8"))
    return path


def read_quietly(path: Path) -> list[Sentence]:
    with warnings.catch_warnings():
        warnings.simplefilter("error", CorpusWarning)
        return read_iob(path)


def test_reads_sentences_separated_by_blank_lines(tmp_path: Path) -> None:
    path = write(tmp_path / "a.tsv", "Mild\tO\nasthma\tB-Disease\n\nBRCA1\tB-Gene\n\n")
    assert read_quietly(path) == [
        Sentence(("Mild", "asthma"), ("O", "B-Disease")),
        Sentence(("BRCA1",), ("B-Gene",)),
    ]


def test_crlf_line_endings(tmp_path: Path) -> None:
    path = write(tmp_path / "a.tsv", "a\tO\r\nb\tB-Gene\r\n\r\nc\tO\r\n")
    assert read_quietly(path) == [Sentence(("a", "b"), ("O", "B-Gene")), Sentence(("c",), ("O",))]


def test_trailing_spaces(tmp_path: Path) -> None:
    path = write(tmp_path / "a.tsv", "a\tO  \nb\tB-Gene \t\n   \nc\tO\n")
    assert read_quietly(path) == [Sentence(("a", "b"), ("O", "B-Gene")), Sentence(("c",), ("O",))]


def test_docstart_lines_are_skipped(tmp_path: Path) -> None:
    path = write(tmp_path / "a.tsv", "-DOCSTART-\tO\n\na\tO\n\n-DOCSTART-\tO\n\nb\tB-Gene\n")
    assert read_quietly(path) == [Sentence(("a",), ("O",)), Sentence(("b",), ("B-Gene",))]


def test_several_blank_lines_make_one_boundary(tmp_path: Path) -> None:
    path = write(tmp_path / "a.tsv", "\n\na\tO\n\n\n\nb\tO\n\n\n")
    assert read_quietly(path) == [Sentence(("a",), ("O",)), Sentence(("b",), ("O",))]


def test_last_sentence_without_final_blank_line_is_kept(tmp_path: Path) -> None:
    path = write(tmp_path / "a.tsv", "a\tO\n\nb\tB-Gene\nc\tI-Gene")
    assert read_quietly(path)[-1] == Sentence(("b", "c"), ("B-Gene", "I-Gene"))


def test_label_is_the_last_of_several_columns(tmp_path: Path) -> None:
    path = write(tmp_path / "a.tsv", "IL-2\tNN\tB-NP\tB-protein\ngene\tNN\tI-NP\tI-protein\n\nx y O\n")
    assert read_quietly(path) == [
        Sentence(("IL-2", "gene"), ("B-protein", "I-protein")),
        Sentence(("x",), ("O",)),
    ]


def test_space_separated_columns(tmp_path: Path) -> None:
    path = write(tmp_path / "a.txt", "Mild O\nasthma B-Disease\n")
    assert read_quietly(path) == [Sentence(("Mild", "asthma"), ("O", "B-Disease"))]


def test_iob1_is_repaired_with_one_warning_giving_the_count(tmp_path: Path) -> None:
    path = write(tmp_path / "iob1.tsv", "a\tI-Gene\nb\tI-Gene\nc\tO\nd\tI-Gene\n\ne\tB-Gene\nf\tI-Disease\n")
    with pytest.warns(CorpusWarning) as record:
        sentences = read_iob(path)
    assert len(record) == 1
    message = str(record[0].message)
    assert "repaired 3 tags" in message and "iob1.tsv" in message
    assert [s.tags for s in sentences] == [("B-Gene", "I-Gene", "O", "B-Gene"), ("B-Gene", "B-Disease")]


def test_line_without_label_names_file_and_line(tmp_path: Path) -> None:
    path = write(tmp_path / "bad.tsv", "a\tO\n\nb\tO\nlonely\n")
    with pytest.raises(CorpusFormatError) as caught:
        read_iob(path)
    assert (caught.value.path, caught.value.line) == (str(path), 4)
    assert f"{path}:4:" in str(caught.value)


def test_empty_word_names_file_and_line(tmp_path: Path) -> None:
    path = write(tmp_path / "bad.tsv", "a\tO\n\tNN\tO\n")
    with pytest.raises(CorpusFormatError, match="expected a word and a tag") as caught:
        read_iob(path)
    assert caught.value.line == 2


def test_utf8_byte_order_mark_is_dropped(tmp_path: Path) -> None:
    path = tmp_path / "bom.tsv"
    path.write_bytes("\ufeffa\tO\n".encode("utf-8"))
    assert read_quietly(path) == [Sentence(("a",), ("O",))]


@pytest.mark.parametrize("label", ["X-Disease", "B-", "I-", "B", "S-Gene", "o"])
def test_unknown_label_names_file_and_line(tmp_path: Path, label: str) -> None:
    path = write(tmp_path / "bad.tsv", f"a\tO\nb\t{label}\n")
    with pytest.raises(CorpusFormatError, match=f"tag '{label}' is not O") as caught:
        read_iob(path)
    assert (caught.value.path, caught.value.line) == (str(path), 2)


def test_invalid_utf8_names_the_line(tmp_path: Path) -> None:
    path = tmp_path / "latin1.tsv"
    path.write_bytes(b"a\tO\n\xe9t\xe9\tO\n")
    with pytest.raises(CorpusFormatError, match="not UTF-8") as caught:
        read_iob(path)
    assert caught.value.line == 2


@pytest.mark.parametrize(
    "name", ["NCBI-disease", "ncbi-disease", "NCBI-DISEASE", "NCBI-disease-IOB", "ncbi_disease"]
)
def test_lookup_ignores_case_and_accepts_the_folder(name: str) -> None:
    assert get_dataset_spec(name) is DATASETS["NCBI-disease"]


def test_registry_holds_the_papers_datasets() -> None:
    paper = {
        "BC4CHEMD", "LINNAEUS", "NCBI-disease", "BC5CDR", "JNLPBA", "AnatEM", "BioNLP13GE", "Species-800",
    }  # fmt: skip
    assert paper | {"BC2GM", "BC5CDR-chem", "BC5CDR-disease"} == set(DATASETS)


def test_unknown_name_lists_the_known_names() -> None:
    with pytest.raises(DatasetNotFoundError, match=r"unknown dataset 'CoNLL2003'.*NCBI-disease.*BC5CDR"):
        get_dataset_spec("CoNLL2003")


def test_data_root_flag_wins_over_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "flag").mkdir()
    (tmp_path / "env").mkdir()
    monkeypatch.setenv(DATA_ROOT_ENV, str(tmp_path / "env"))
    assert resolve_data_root(str(tmp_path / "flag")) == tmp_path / "flag"
    assert resolve_data_root(None) == tmp_path / "env"


def test_no_data_root_says_how_to_give_one(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(DATA_ROOT_ENV, raising=False)
    with pytest.raises(DatasetNotFoundError, match=f"--data-root.*{DATA_ROOT_ENV}"):
        resolve_data_root(None)


def test_data_root_that_is_not_a_directory(tmp_path: Path) -> None:
    with pytest.raises(DatasetNotFoundError, match=r"nowhere.*--data-root"):
        resolve_data_root(str(tmp_path / "nowhere"))


def test_missing_dataset_names_the_files_looked_for(tmp_path: Path) -> None:
    with pytest.raises(DatasetNotFoundError) as caught:
        load_corpus("BC4CHEMD", tmp_path)
    message = str(caught.value)
    assert "BC4CHEMD" in message and str(tmp_path) in message
    for name in ("train.tsv", "devel.tsv", "dev.tsv", "test.tsv"):
        assert str(tmp_path / "BC4CHEMD" / name) in message


def make_dataset(root: Path, folder: str, files: dict[str, str]) -> None:
    (root / folder).mkdir(parents=True)
    for name, text in files.items():
        write(root / folder / name, text)


def test_missing_required_split_names_its_files(tmp_path: Path) -> None:
    make_dataset(tmp_path, "AnatEM-IOB", {"train.tsv": "a\tO\n", "test.tsv": "b\tO\n"})
    with pytest.raises(DatasetNotFoundError, match="missing splits: dev") as caught:
        load_corpus("AnatEM", tmp_path)
    message = str(caught.value)
    assert str(tmp_path / "AnatEM-IOB" / "devel.tsv") in message
    assert str(tmp_path / "AnatEM-IOB" / "dev.tsv") in message
    assert "train.tsv" not in message


def test_dev_tsv_is_accepted_and_label_set_covers_all_splits(tmp_path: Path) -> None:
    make_dataset(
        tmp_path,
        "BC5CDR-IOB",
        {"train.tsv": "a\tB-Disease\n", "dev.tsv": "b\tO\n", "test.tsv": "c\tB-Chemical\n"},
    )
    corpus = load_corpus("bc5cdr", tmp_path)
    assert corpus.name == "BC5CDR"
    assert corpus.dev == [Sentence(("b",), ("O",))]
    assert corpus.labels == LabelSet.from_entity_types(["Chemical", "Disease"])


def test_split_not_required_and_absent_is_empty(tmp_path: Path) -> None:
    make_dataset(tmp_path, "JNLPBA", {"devel.tsv": "a\tB-DNA\n", "test.tsv": "b\tO\n"})
    corpus = load_corpus("JNLPBA", tmp_path, require=("dev", "test"))
    assert corpus.train == []


def test_unknown_split_in_require_is_rejected(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="validation"):
        load_corpus("JNLPBA", tmp_path, require=("validation",))


GOOD_SPLITS = {
    "train.tsv": "Mild\tO\nasthma\tB-Disease\n\nBRCA1\tB-Chemical\n",
    "devel.tsv": "severe\tO\nasthma\tB-Disease\n",
    "test.tsv": "aspirin\tB-Chemical\n",
}


def training_corpus(root: Path, **replaced: str):
    """A BC5CDR corpus under ``root`` whose files are GOOD_SPLITS with some replaced."""
    make_dataset(root, "BC5CDR-IOB", {**GOOD_SPLITS, **{f"{k}.tsv": v for k, v in replaced.items()}})
    return load_corpus("BC5CDR", root)


def test_a_trainable_corpus_passes_validation(tmp_path: Path) -> None:
    corpus = training_corpus(tmp_path)
    validate_for_training(corpus)
    assert corpus.files["dev"] == str(tmp_path / "BC5CDR-IOB" / "devel.tsv")


@pytest.mark.parametrize("split, file", [("train", "train.tsv"), ("devel", "devel.tsv"), ("test", "test.tsv")])
@pytest.mark.parametrize("content", ["", "-DOCSTART- -X- O O\n\n", "\n\n"])
def test_a_split_without_sentences_is_refused_naming_its_file(tmp_path: Path, split: str, file: str, content: str) -> None:
    corpus = training_corpus(tmp_path, **{split: content})
    with pytest.raises(CorpusError, match="no sentences") as caught:
        validate_for_training(corpus)
    assert caught.value.path == str(tmp_path / "BC5CDR-IOB" / file)
    assert str(tmp_path / "BC5CDR-IOB" / file) in str(caught.value)


def test_a_sentence_limit_of_zero_is_refused(tmp_path: Path) -> None:
    corpus = dataclasses.replace(training_corpus(tmp_path), train=[])
    with pytest.raises(CorpusError, match="train split has no sentences"):
        validate_for_training(corpus)


def test_a_train_split_without_entities_is_refused_naming_its_file(tmp_path: Path) -> None:
    corpus = training_corpus(tmp_path, train="a\tO\nb\tO\n\nc\tO\n")
    with pytest.raises(CorpusError, match="no entity in its 2 sentences") as caught:
        validate_for_training(corpus)
    assert caught.value.path == str(tmp_path / "BC5CDR-IOB" / "train.tsv")


@pytest.mark.parametrize("split, file", [("devel", "devel.tsv"), ("test", "test.tsv")])
def test_an_eval_split_with_a_type_train_lacks_is_refused_naming_type_and_file(tmp_path: Path, split: str, file: str) -> None:
    corpus = training_corpus(tmp_path, train="asthma\tB-Disease\n", **{split: "a\tB-Chemical\nb\tI-Chemical\n"})
    with pytest.raises(CorpusError, match="entity types the train split lacks: Chemical") as caught:
        validate_for_training(corpus)
    assert caught.value.path == str(tmp_path / "BC5CDR-IOB" / file)
    assert "train has Disease" in str(caught.value)


def test_a_tag_that_does_not_parse_is_refused_when_loading_naming_file_and_line(tmp_path: Path) -> None:
    with pytest.raises(CorpusError, match="tag 'B_Chemical' is not O") as caught:
        training_corpus(tmp_path, devel="severe\tO\naspirin\tB_Chemical\n")
    assert isinstance(caught.value, CorpusFormatError)
    assert (caught.value.path, caught.value.line) == (str(tmp_path / "BC5CDR-IOB" / "devel.tsv"), 2)


def test_ncbi_disease_loads_from_the_data_root(corpora_root: Path) -> None:
    corpus = load_corpus("NCBI-disease", corpora_root)
    assert (len(corpus.train), len(corpus.dev), len(corpus.test)) == (5424, 923, 940)
    assert corpus.labels.tags == ("O", "B-Disease", "I-Disease")


def test_bc5cdr_has_chemicals_and_diseases(corpora_root: Path) -> None:
    assert load_corpus("BC5CDR", corpora_root).labels.entity_types == ("Chemical", "Disease")


def test_jnlpba_loads_without_train_when_not_required(corpora_root: Path) -> None:
    corpus = load_corpus("JNLPBA", corpora_root, require=("dev", "test"))
    assert corpus.train == [] and corpus.dev and corpus.test
    assert corpus.labels.entity_types == DATASETS["JNLPBA"].entity_types
    assert all(s.words[0] != "-DOCSTART-" for s in corpus.dev)


def test_jnlpba_fails_clearly_when_train_is_required(corpora_root: Path) -> None:
    with pytest.raises(DatasetNotFoundError, match=r"JNLPBA.*missing splits: train") as caught:
        load_corpus("JNLPBA", corpora_root)
    assert str(corpora_root / "JNLPBA" / "train.tsv") in str(caught.value)


def test_pure_python_layers_do_not_import_torch() -> None:
    code = (
        "import sys, adabiobert.spans, adabiobert.labels, adabiobert.metrics, adabiobert.corpora.iob\n"
        "assert not {'torch', 'numpy', 'sklearn'} & sys.modules.keys(), sorted(sys.modules)"
    )
    subprocess.run([sys.executable, "-c", code], cwd=Path(__file__).resolve().parents[1], check=True)
