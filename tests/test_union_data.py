"""One tagger for every type, the data side: mixes of corpora by name, the PubTator train/dev cut,
the types each sentence's corpus annotates reaching the loss and the dev score, the overlap rule,
and the offset evaluation of raw text (issue 22)."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
import torch

from adabiobert.corpora.iob import Sentence, load_corpus
from adabiobert.corpora.mix import (
    MIXES,
    PUBTATOR_ROOT_ENV,
    is_dev_document,
    load_training_data,
    resolve_pubtator_root,
    source_names,
)
from adabiobert.corpora.offset_evaluation import evaluate_documents, scores_to_dict
from adabiobert.corpora.pubtator import CORPORA, Mention, PubTatorDocument
from adabiobert.errors import ConfigError, CorpusError, DatasetNotFoundError
from adabiobert.model.engine import only_types
from tests.union_data import DISEASE_DOCS, SPECIES, SPECIES_DOCS, dev_and_train_pmids, write_corpus


# ---------------------------------------------------------------------------------------------
# Names
# ---------------------------------------------------------------------------------------------
def test_union_is_every_pubtator_corpus_and_names_are_canonical() -> None:
    assert source_names("union") == [f"pubtator:{c}" for c in CORPORA] == list(MIXES["union"])
    assert source_names(" ncbi_disease , pubtator:bc5cdr,pubtator:MyOwn ") == [
        "NCBI-disease", "pubtator:BC5CDR", "pubtator:MyOwn"]
    # Without the prefix, a name is an IOB dataset (IOB names ignore case, - and _).
    assert source_names("NCBIdisease") == ["NCBI-disease"]


@pytest.mark.parametrize("dataset, error, words", [
    ("BioRED", DatasetNotFoundError, ["pubtator:BioRED", "union", "NCBI-disease"]),
    ("pubtator:", DatasetNotFoundError, ["pubtator:NCBIdisease"]),
    ("union,pubtator:SPECIES", ConfigError, ["pubtator:SPECIES more than once"]),
    (" , ", ConfigError, ["names no dataset"]),
])
def test_bad_dataset_names_are_refused_with_what_is_known(dataset: str, error, words: list[str]) -> None:
    with pytest.raises(error) as raised:
        source_names(dataset)
    assert all(w in str(raised.value) for w in words), str(raised.value)


# ---------------------------------------------------------------------------------------------
# Roots and the dev cut
# ---------------------------------------------------------------------------------------------
def test_pubtator_root_flag_then_environment_then_beside_the_data_root(tmp_path: Path, monkeypatch) -> None:
    (tmp_path / "corpora").mkdir()
    (tmp_path / "pubtator").mkdir()
    (tmp_path / "elsewhere").mkdir()
    monkeypatch.delenv(PUBTATOR_ROOT_ENV, raising=False)
    assert resolve_pubtator_root(None, str(tmp_path / "corpora")) == tmp_path / "pubtator"
    monkeypatch.setenv(PUBTATOR_ROOT_ENV, str(tmp_path / "elsewhere"))
    assert resolve_pubtator_root(None, str(tmp_path / "corpora")) == tmp_path / "elsewhere"
    assert resolve_pubtator_root(str(tmp_path / "corpora"), None) == tmp_path / "corpora"
    monkeypatch.setenv(PUBTATOR_ROOT_ENV, str(tmp_path / "missing"))
    with pytest.raises(DatasetNotFoundError, match="missing.*from ADABIOBERT_PUBTATOR_ROOT"):
        resolve_pubtator_root(None, None)


def test_the_dev_cut_is_ten_percent_of_pmids_by_hash_whatever_the_order() -> None:
    pmids = [str(10_000_000 + i) for i in range(2000)]
    dev = {p for p in pmids if is_dev_document(p)}
    assert 0.08 < len(dev) / len(pmids) < 0.12
    assert dev == {p for p in reversed(pmids) if is_dev_document(p)}
    # The documented rule, computed here by hand for one PMID.
    digest = hashlib.sha256(b"10000000").hexdigest()
    assert is_dev_document("10000000") == (int(digest[:16], 16) % 100 < 10)


# ---------------------------------------------------------------------------------------------
# A mix of two PubTator corpora
# ---------------------------------------------------------------------------------------------
@pytest.fixture
def pubtator_root(tmp_path: Path) -> Path:
    root = tmp_path / "pubtator"
    write_corpus(root, "NCBIdisease", "TrainDev", DISEASE_DOCS, bad_document=True)
    write_corpus(root, "NCBIdisease", "Test", DISEASE_DOCS[:3])
    write_corpus(root, "SPECIES", "Train", SPECIES_DOCS)
    write_corpus(root, "SPECIES", "Test", SPECIES_DOCS[:3])
    return root


def test_a_mix_has_the_union_of_types_and_each_sentence_its_corpus_types(pubtator_root: Path) -> None:
    data = load_training_data("pubtator:NCBIdisease,pubtator:SPECIES", pubtator_root=str(pubtator_root))
    assert data.labels.entity_types == ("Disease", "Species")
    assert data.partial_annotation is True  # the default for several corpora
    for source, types in zip(data.sources, ({"Disease"}, {"Species"})):
        for split in ("train", "dev", "test"):
            assert all(s.annotated_types == types for s in getattr(source, split))
    # The cut is by document: a dev PMID's sentences are all in dev, and only there.
    dev_pmids, train_pmids = dev_and_train_pmids(DISEASE_DOCS)
    disease = data.sources[0]
    assert {s.pmid for s in disease.dev} == dev_pmids and {s.pmid for s in disease.train} == train_pmids
    assert data.corpus.train == [*disease.train, *data.sources[1].train]


def test_the_mix_summary_counts_sentences_mentions_and_skipped_documents(pubtator_root: Path) -> None:
    data = load_training_data("pubtator:NCBIdisease,pubtator:SPECIES", pubtator_root=str(pubtator_root))
    summary = json.loads(json.dumps(data.summary()))  # what results.json holds
    assert summary["sources"] == ["pubtator:NCBIdisease", "pubtator:SPECIES"]
    assert summary["entity_types"] == ["Disease", "Species"] and summary["partial_annotation"] is True
    disease = summary["corpora"]["pubtator:NCBIdisease"]
    assert disease["annotated_types"] == ["Disease"]
    assert disease["read"]["train"]["skipped_documents"] == 1
    assert disease["read"]["train"]["problems"] == {"text_mismatch": 1}
    dev_pmids, train_pmids = dev_and_train_pmids(DISEASE_DOCS)
    train = disease["splits"]["train"]
    assert train["documents"] == len(train_pmids)
    assert train["sentences"] == 2 * len(train_pmids)  # a title and a one-sentence abstract each
    assert train["mentions"] == {"Disease": 2 * len(train_pmids)}  # species words are not mentions here
    assert train["alignment"]["tagged"] == 2 * len(train_pmids)
    assert summary["corpora"]["pubtator:SPECIES"]["splits"]["test"]["mentions"] == {"Species": 6}


def test_one_corpus_trains_without_partial_annotation_unless_asked(pubtator_root: Path) -> None:
    one = load_training_data("pubtator:SPECIES", pubtator_root=str(pubtator_root))
    assert one.partial_annotation is False and one.labels.entity_types == ("Species",)
    naive = load_training_data("pubtator:NCBIdisease,pubtator:SPECIES", pubtator_root=str(pubtator_root),
                               partial_annotation=False)
    assert naive.partial_annotation is False


def test_limits_take_whole_documents(pubtator_root: Path) -> None:
    data = load_training_data("pubtator:NCBIdisease,pubtator:SPECIES", pubtator_root=str(pubtator_root),
                              max_train_sentences=5, max_eval_sentences=2)
    disease = data.sources[0]
    assert len(disease.train) == 4 and len({s.pmid for s in disease.train}) == 2  # 2 sentences a document
    assert [d.pmid for d in disease.test_documents] == sorted({s.pmid for s in disease.test})
    assert len(disease.test_documents) == 1


def test_a_corpus_without_files_names_what_was_looked_for(pubtator_root: Path) -> None:
    with pytest.raises(DatasetNotFoundError, match=r"BioRED: no file matching .*BioRED_Train\*\.PubTator"):
        load_training_data("pubtator:BioRED,pubtator:SPECIES", pubtator_root=str(pubtator_root))


def test_a_corpus_left_without_train_sentences_is_refused(pubtator_root: Path) -> None:
    with pytest.raises(CorpusError, match="no train sentence"):
        load_training_data("pubtator:NCBIdisease,pubtator:SPECIES", pubtator_root=str(pubtator_root),
                           max_train_sentences=1)


def test_a_single_iob_dataset_is_read_as_before(corpora_root: Path) -> None:
    data = load_training_data("NCBI-disease", str(corpora_root), max_train_sentences=30, max_eval_sentences=10)
    corpus = load_corpus("NCBI-disease", corpora_root)
    assert data.corpus.train == corpus.train[:30] and data.corpus.test == corpus.test[:10]
    assert type(data.corpus.train[0]) is Sentence  # no annotated types: scored and trained as ever
    assert data.labels == corpus.labels and data.partial_annotation is False
    assert data.files == corpus.files and data.roots == {"data_root": str(corpora_root.resolve())}


def test_an_iob_dataset_in_a_mix_annotates_its_own_types(corpora_root: Path, pubtator_root: Path) -> None:
    data = load_training_data("NCBI-disease,pubtator:SPECIES", str(corpora_root), str(pubtator_root),
                              max_train_sentences=20, max_eval_sentences=10)
    assert data.labels.entity_types == ("Disease", "Species")
    assert {s.annotated_types for s in data.sources[0].train} == {frozenset({"Disease"})}
    assert set(data.files) >= {"NCBI-disease/train", "pubtator:SPECIES/test"}


# ---------------------------------------------------------------------------------------------
# The overlap rule, from a file
# ---------------------------------------------------------------------------------------------
def test_a_gene_inside_a_disease_name_becomes_one_disease_span(tmp_path: Path) -> None:
    title = "BRCA1-associated breast cancer in mice."
    documents = [(str(pmid), title, "Nothing else.", [(0, 30, "Disease"), (0, 5, "Gene")]) for pmid in range(30)]
    write_corpus(tmp_path, "BioRED", "TrainDev", documents)
    write_corpus(tmp_path, "BioRED", "Test", documents[:2])
    data = load_training_data("pubtator:BioRED", pubtator_root=str(tmp_path))
    sentence = data.sources[0].test[0]
    assert sentence.words[:6] == ("BRCA1", "-", "associated", "breast", "cancer", "in")
    assert sentence.tags[:6] == ("B-Disease", "I-Disease", "I-Disease", "I-Disease", "I-Disease", "O")
    assert data.summary()["corpora"]["pubtator:BioRED"]["splits"]["test"]["alignment"]["overlapping"] == 2


# ---------------------------------------------------------------------------------------------
# Scoring: dev on the corpus's types, raw text by offsets
# ---------------------------------------------------------------------------------------------
def test_predictions_of_types_the_corpus_does_not_annotate_are_not_scored() -> None:
    tags = ["B-Species", "I-Species", "O", "B-Disease", "B-Species"]
    assert only_types(tags, frozenset({"Disease"})) == ["O", "O", "O", "B-Disease", "O"]
    assert only_types(tags, None) == tags


def test_offset_evaluation_tags_title_and_abstract_and_moves_offsets_into_the_document() -> None:
    title, abstract = "Aspirin in mice.", "Mice got aspirin."  # abstract from 17
    gold = [Mention(0, 7, "Aspirin", "Chemical", "Chemical", ()), Mention(11, 15, "mice", "Species", "Species", ()),
            Mention(26, 33, "aspirin", "Chemical", "Chemical", ())]
    document = PubTatorDocument("7", title, abstract, tuple(gold))
    calls = []

    class Found:
        def __init__(self, start, end, label):
            self.start, self.end, self.label = start, end, label

    def tag(texts):
        calls.append(list(texts))
        answers = {title: [Found(0, 7, "Chemical"), Found(11, 15, "Gene")],  # right; a gene where gold has species
                   abstract: [Found(9, 16, "Chemical"), Found(0, 4, "Species")]}  # right (26-33); a species not in gold
        return [answers[t] for t in texts]

    scores = evaluate_documents(tag, [document], types={"Chemical", "Species"})
    assert calls == [[title, abstract]]
    # Chemical: 2 right of 2. Species: gold "mice" missed (fn), "Mice" at 17-21 wrong (fp). Gene: not scored.
    assert (scores.per_type["Chemical"].tp, scores.per_type["Chemical"].fp, scores.per_type["Chemical"].fn) == (2, 0, 0)
    assert (scores.per_type["Species"].tp, scores.per_type["Species"].fp, scores.per_type["Species"].fn) == (0, 1, 1)
    assert set(scores.per_type) == {"Chemical", "Species"}
    as_json = scores_to_dict(scores, documents=1)
    assert as_json["micro"]["f1"] == pytest.approx(2 * 2 / (2 * 2 + 1 + 1))
    assert as_json["documents"] == 1 and as_json["per_type"]["Chemical"]["support"] == 2


# ---------------------------------------------------------------------------------------------
# The partial annotation reaches the loss
# ---------------------------------------------------------------------------------------------
def test_allowed_tags_reach_the_loss_through_a_batch(pubtator_root: Path, tiny_backbone_dir: Path) -> None:
    from adabiobert.model.assembly import build_example_encoder, build_model
    from adabiobert.model.backbone import load_tokenizer
    from adabiobert.model.batching import collate
    from adabiobert.training_config import ModelConfig, TrainConfig

    data = load_training_data("pubtator:NCBIdisease,pubtator:SPECIES", pubtator_root=str(pubtator_root))
    config = TrainConfig(model=ModelConfig(backbone=str(tiny_backbone_dir), max_subwords=64, window_overlap=16))
    torch.manual_seed(0)
    model = build_model(config, data.labels, None).eval()  # no dropout: two forwards agree
    tokenizer = load_tokenizer(config.model.backbone)
    encoder = build_example_encoder(config.model, model, tokenizer, None)
    disease_title, species_title = data.sources[0].train[0], data.sources[1].train[0]
    partial = collate(encoder.encode_tagged([disease_title, species_title], partial=True), tokenizer.pad_token_id)
    naive = collate(encoder.encode_tagged([disease_title, species_title], partial=False), tokenizer.pad_token_id)
    assert "allowed_tags" not in naive

    allowed = partial["allowed_tags"]  # (2, words, 5): O, B-Disease, I-Disease, B-Species, I-Species
    tags = data.labels.tags
    species_word = next(i for i, w in enumerate(disease_title.words) if w in SPECIES)  # unannotated by NCBI-disease
    assert disease_title.tags[species_word] == "O"
    assert [tags[k] for k in allowed[0, species_word].nonzero().flatten()] == ["O", "B-Species", "I-Species"]
    disease_word = disease_title.tags.index("B-Disease")
    assert [tags[k] for k in allowed[0, disease_word].nonzero().flatten()] == ["B-Disease"]
    assert not allowed[0, len(disease_title.words):].any()  # padding

    with torch.no_grad():
        emissions = model.emissions(partial)
        expected = model.crf.partial_nll(emissions, allowed, partial["word_mask"], reduction="token_mean")
        assert model(partial).crf == pytest.approx(expected.item(), rel=1e-5)
        assert model(naive).crf > model(partial).crf  # the naive union pays for every unannotated species
