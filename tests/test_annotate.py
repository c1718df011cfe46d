"""Batch tagging without Ray: articles to sentences to entity rows, rejections, counts, the commit."""

from __future__ import annotations

import os
from collections import Counter

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from adabiobert import storage
from adabiobert.annotation.commit import QUARANTINE_ATTEMPTS, AnnotationStore, ShardCommit, work_key
from adabiobert.annotation.counts import RunCounts
from adabiobert.annotation.stages import check_article, shard_tables, split_documents, split_shard, tag_documents
from adabiobert.annotation.status import OK
from adabiobert.annotation.tables import (
    ARTICLE_SCHEMA,
    ENTITY_SCHEMA,
    REJECTION_SCHEMA,
    TABLE_SCHEMAS,
    TABLES,
    TABLES_VERSION,
    TABLES_VERSION_KEY,
    entity_table,
    rejection_table,
)
from adabiobert.job_configs import AnnotateConfig
from adabiobert.model.checkpoint import bundle_model_id, load_bundle_encoder
from adabiobert.model.tagger import Tagger
from adabiobert.pmc.shards import Shard, article_sections, check_shard, list_shards
from adabiobert.text import split_sentences
from tests.annotation_data import (
    bad_articles,
    corpus_articles,
    damage_data_pages,
    expected_mentions,
    long_sentence_article,
    without_column,
    write_shard,
)


@pytest.fixture(scope="module")
def tagger(tiny_bundle):
    return Tagger.from_pretrained(tiny_bundle, device="cpu")


@pytest.fixture(scope="module")
def articles(ncbi):
    return corpus_articles([s.words for s in ncbi.test], "PMC", 4)


@pytest.fixture(scope="module")
def long_article(ncbi):
    """An article with a sentence of 150 words: several overlapping windows of the tiny bundle's 64."""
    return long_sentence_article([s.words for s in ncbi.test[20:40]], "PMClong")


@pytest.fixture(scope="module")
def w2v_bundle(tiny_backbone_dir, ncbi, tmp_path_factory):
    """An untrained bundle with Word2Vec features (random vectors for 500 corpus words)."""
    import numpy as np
    import torch

    from adabiobert.model.assembly import build_model
    from adabiobert.model.backbone import load_tokenizer
    from adabiobert.model.checkpoint import save_bundle
    from adabiobert.model.word_vectors import WordVectors
    from adabiobert.training_config import ModelConfig, TrainConfig

    words = tuple(dict.fromkeys(w for s in ncbi.train for w in s.words))[:500]
    vectors = WordVectors(words, np.random.default_rng(0).normal(size=(len(words), 8)).astype(np.float32))
    config = TrainConfig(model=ModelConfig(backbone=str(tiny_backbone_dir), max_subwords=64, window_overlap=16))
    torch.manual_seed(0)
    model = build_model(config, ncbi.labels, vectors)
    return save_bundle(tmp_path_factory.mktemp("w2v-bundle") / "model", model, load_tokenizer(config.model.backbone),
                       config.model, vectors, {"name": "tiny-w2v"})


class RaisingTokenizer:
    """Stands in for a tagger's tokenizer where none may be called."""

    def __call__(self, *args, **kwargs):
        raise AssertionError("the tokenizer was called")

    def __getattr__(self, name):
        raise AssertionError(f"the tokenizer was used ({name})")


def without_tokenizer(tagger: Tagger) -> Tagger:
    """``tagger`` with every reference to its tokenizer replaced by one that raises when used."""
    from dataclasses import replace

    tagger.bundle = replace(tagger.bundle, tokenizer=RaisingTokenizer())
    tagger.encoder.subwords.tokenizer = RaisingTokenizer()
    tagger.encoder.subwords._cache.clear()
    return tagger


def shard_batch(rows, path="/shards/a.parquet") -> pa.Table:
    """Shard rows as the read stage gives them (text columns plus ``path``)."""
    return pa.Table.from_pylist([{**{k: r[k] for k in ("pmcid", "title", "abstract", "sections")}, "path": path} for r in rows])


def sentence_structs(split: pa.Table) -> pa.StructArray:
    """Every sentence of a SPLIT_SCHEMA table, in order."""
    return pa.compute.list_flatten(split.column("sentences").combine_chunks())


def mention_keys(row) -> list[tuple]:
    """A TAGGED_SCHEMA row's mentions, confidence aside."""
    return [(m["section_index"], m["sentence_index"], m["start_offset"], m["end_offset"], m["mention"], m["label"])
            for m in row["entities"]]


# ---- one article -------------------------------------------------------------------------------
def test_article_sections_keep_article_order_and_indexes_and_skip_empty_pieces():
    pieces = article_sections("T", None, [{"title": "Methods / Cells", "text": "x"}, {"title": None, "text": "y"},
                                          {"title": "Empty", "text": ""}])
    assert [(p.section, p.section_index, p.text) for p in pieces] == [
        ("title", 0, "T"), ("Methods / Cells", 2, "x"), ("body", 3, "y")]


@pytest.mark.parametrize(("row", "reason"), [(0, "no_text"), (1, "too_long"), (2, "control_characters")])
def test_bad_articles_get_a_reason(row, reason):
    record = bad_articles("P")[row]
    problem = check_article(article_sections(record["title"], record["abstract"], record["sections"]), AnnotateConfig())
    assert problem is not None and problem[0] == reason


def test_control_character_detail_names_the_character_section_and_offset():
    pieces = article_sections("Breast cancer .", "Tumour\x07 cells grew .", [])
    assert check_article(pieces, AnnotateConfig()) == ("control_characters", "U+0007 in abstract at offset 6")
    assert check_article(pieces, AnnotateConfig(reject_control_characters=False)) is None


def test_split_gives_sentences_whose_words_point_into_the_section_text(articles):
    table = split_documents(shard_batch(articles[:2] + bad_articles("B")), AnnotateConfig())
    rows = table.to_pylist()
    assert [r["pmcid"] for r in rows] == ["PMC0", "PMC1", "Bempty", "Bhuge", "Bctrl"]  # null pmcid left to the check
    assert [r["status"] for r in rows] == [OK, OK, "no_text", "too_long", "control_characters"]
    assert all(not r["sentences"] for r in rows[2:])
    source = articles[0]
    texts = {0: source["title"], 1: source["abstract"], 2: source["sections"][0]["text"], 3: source["sections"][1]["text"]}
    sentences = rows[0]["sentences"]
    assert {s["section"] for s in sentences} == {"title", "abstract", "Introduction", "Methods / Patients"}
    for s in sentences:
        text = texts[s["section_index"]]
        assert text[s["start"]:s["start"] + len(s["text"])] == s["text"]
        assert [s["text"][a:b] for a, b in zip(s["word_starts"], s["word_ends"])] == text[s["start"]:].split()[:len(s["word_starts"])]
    assert [s["sentence_index"] for s in sentences if s["section_index"] == 1] == list(range(len(split_sentences(texts[1]))))


def test_tagging_a_batch_equals_tagging_each_section_alone(articles, tagger):
    documents = tag_documents(tagger, split_documents(shard_batch(articles), AnnotateConfig()))
    assert documents.num_rows == len(articles)
    found = 0
    for source, row in zip(articles, documents.to_pylist()):
        texts = [source["title"], source["abstract"]] + [s["text"] for s in source["sections"]]
        got = mention_keys(row)
        assert got == [e[:-1] for e in expected_mentions(tagger, source)]
        for m in row["entities"]:
            assert texts[m["section_index"]][m["start_offset"]:m["end_offset"]] == m["mention"]
            assert 0.0 <= m["confidence"] <= 1.0
        assert row["sentences"] == sum(len(split_sentences(t)) for t in texts)
        assert row["words"] == sum(len(t.split()) for t in texts)
        found += len(got)
    assert found > 0


# ---- subwords from the split stage ------------------------------------------------------------
def test_the_bundle_encoder_encodes_as_the_taggers_own(tiny_bundle, tagger, articles, long_article):
    encoder = load_bundle_encoder(tiny_bundle)
    sentences = [[w.text for w in s.words] for a in articles + [long_article]
                 for text in (a["title"], a["abstract"]) for s in split_sentences(text)]
    assert [encoder.encode(w) for w in sentences] == [tagger.encoder.encode(w) for w in sentences]
    assert max(len(tagger.encoder.encode(w).encoded.windows) for w in sentences) >= 3  # overlapping windows


def test_split_stage_subwords_give_the_tags_of_tag_words_and_the_tag_stage_never_tokenizes(
        tiny_bundle, tagger, articles, long_article):
    split = split_documents(shard_batch(articles + [long_article]), AnnotateConfig(), load_bundle_encoder(tiny_bundle))
    windows = sentence_structs(split).field("subword_windows").to_pylist()
    assert None not in windows and max(len(w) for w in windows) >= 3
    documents = tag_documents(without_tokenizer(Tagger.from_pretrained(tiny_bundle, device="cpu")), split)
    found = 0
    for source, row in zip(articles + [long_article], documents.to_pylist()):
        expected = expected_mentions(tagger, source)
        assert mention_keys(row) == [e[:-1] for e in expected]
        assert [m["confidence"] for m in row["entities"]] == pytest.approx([e[-1] for e in expected], abs=1e-4)
        found += len(expected)
    assert found > 0 and any(m["section_index"] == 1 for m in documents.to_pylist()[-1]["entities"])


def test_without_split_stage_subwords_the_tag_stage_tokenizes(tiny_bundle, articles):
    split = split_documents(shard_batch(articles[:1]), AnnotateConfig())
    assert set(sentence_structs(split).field("word_position").to_pylist()) == {None}
    with pytest.raises(AssertionError, match="the tokenizer was"):
        tag_documents(without_tokenizer(Tagger.from_pretrained(tiny_bundle, device="cpu")), split)


def test_split_stage_word_vector_rows_are_the_taggers(w2v_bundle, articles, long_article):
    from adabiobert.annotation.subword_columns import examples_from_arrow

    tagger = Tagger.from_pretrained(w2v_bundle, device="cpu")
    assert tagger.model.word_vectors is not None
    split = split_documents(shard_batch(articles + [long_article]), AnnotateConfig(), load_bundle_encoder(w2v_bundle))
    sentences = sentence_structs(split)
    starts, ends, texts = (sentences.field(n).to_pylist() for n in ("word_starts", "word_ends", "text"))
    words = [[t[a:b] for a, b in zip(ss, ee)] for t, ss, ee in zip(texts, starts, ends)]
    rows = sentences.field("word_vector_ids").to_pylist()
    assert rows == [list(e.word_vector_ids) for e in tagger.encode_words(words)]
    assert {i for ids in rows for i in ids} - {1}  # some words are in the vocabulary (row 1: unknown)
    got, expected = tagger.tag_encoded(examples_from_arrow(sentences)), tagger.tag_words(words)
    assert [t.tags for t in got] == [t.tags for t in expected]
    assert [c for t in got for c in t.confidences] == pytest.approx([c for t in expected for c in t.confidences], abs=1e-5)


def test_tag_encoded_refuses_windows_longer_than_its_own(tagger, long_article):
    from adabiobert.model.encoding import ExampleEncoder
    from adabiobert.model.subwords import SubwordEncoder

    wider = ExampleEncoder(SubwordEncoder(tagger.bundle.tokenizer, max_subwords=100, overlap=8), tagger.labels, None)
    example = wider.encode(long_article["abstract"].split())
    with pytest.raises(ValueError, match="window of 100 subwords, but this tagger's windows hold at most 64"):
        tagger.tag_encoded([example])


def test_entity_table_has_the_schema_and_one_row_per_mention(articles, tagger):
    documents = tag_documents(tagger, split_documents(shard_batch(articles), AnnotateConfig()))
    table = entity_table(documents, "a.parquet", "tiny@abc", "run1")
    assert table.schema == ENTITY_SCHEMA
    assert table.num_rows == sum(len(e) for e in documents.column("entities").to_pylist())
    assert set(table.column("model_id").to_pylist()) == {"tiny@abc"}
    first = documents.to_pylist()[0]
    assert table.filter(pa.compute.equal(table["pmcid"], first["pmcid"])).num_rows == len(first["entities"])


def test_rejection_table_takes_only_known_reasons():
    table = rejection_table("a.parquet", [(3, None, "null_pmcid", "pmcid is null")], "m", "r")
    assert table.schema == REJECTION_SCHEMA and table.to_pylist()[0]["row_index"] == 3
    with pytest.raises(ValueError, match="unknown rejection reason"):
        rejection_table("a.parquet", [(None, "P", "bored", "")], "m", "r")


def test_counts_reconcile_articles_in_with_tagged_plus_rejected(articles, tagger):
    documents = tag_documents(tagger, split_documents(shard_batch(articles[:2] + bad_articles("B")), AnnotateConfig()))
    entities = entity_table(documents, "a", "m", "r")
    rejected = documents.filter(pa.compute.not_equal(documents["status"], OK)).to_pylist()
    rejections = rejection_table("a", [(None, r["pmcid"], r["status"], r["detail"]) for r in rejected]
                                 + [(5, None, "null_pmcid", "pmcid is null")], "m", "r")
    counts = RunCounts()
    counts.add_shard(documents, entities, rejections, documents_in=6)
    assert (counts.documents_in, counts.documents_tagged, counts.documents_rejected) == (6, 2, 4)
    assert counts.rejections_by_reason == {"no_text": 1, "too_long": 1, "control_characters": 1, "null_pmcid": 1}
    assert counts.mentions == entities.num_rows and sum(counts.mentions_by_label.values()) == entities.num_rows
    with pytest.raises(ValueError, match="7 articles in"):
        counts.add_shard(documents, entities, rejections, documents_in=7)


def test_shard_tables_carry_the_input_uri_and_every_rejection(tmp_path, articles, tagger):
    uri = write_shard(str(tmp_path / "2026" / "part-0.parquet"), articles[:2] + bad_articles("B"))
    (shard,) = list_shards(str(tmp_path))
    check = check_shard(shard)
    tables = shard_tables(check, tag_documents(tagger, split_shard(uri, AnnotateConfig(), 4)), "m", "r")
    assert shard.name == "2026/part-0.parquet" and uri == shard.uri
    assert set(tables["entities"].column("shard").to_pylist()) == set(tables["rejections"].column("shard").to_pylist()) == {uri}
    assert sorted(tables["rejections"].column("reason").to_pylist()) == [
        "control_characters", "no_text", "null_pmcid", "too_long"]
    keys = [(r["pmcid"], r["section_index"], r["sentence_index"], r["start_offset"]) for r in tables["entities"].to_pylist()]
    assert keys == sorted(keys) and keys


def test_shard_tables_give_one_articles_row_per_shard_row_with_its_version(tmp_path, articles, tagger):
    import datetime

    day = datetime.datetime(2024, 6, 18, tzinfo=datetime.timezone.utc)
    rows = [{**a, "version": day, "pmc_version": 3} for a in articles[:2]] + bad_articles("B")
    uri = write_shard(str(tmp_path / "part-0.parquet"), rows)
    (shard,) = list_shards(uri)
    documents = tag_documents(tagger, split_shard(uri, AnnotateConfig(), 4))
    tables = shard_tables(check_shard(shard), documents, "m", "r", left_out={"Bhuge": "superseded"})
    found = tables["articles"].to_pylist()
    assert [(r["row_index"], r["pmcid"], r["status"]) for r in found] == [
        (0, "PMC0", "tagged"), (1, "PMC1", "tagged"), (2, "Bempty", "rejected"), (3, "Bhuge", "superseded"),
        (4, "Bctrl", "rejected"), (5, None, "rejected")]
    assert [(r["version"], r["pmc_version"]) for r in found] == [(day, 3)] * 2 + [(None, None)] * 4
    mentions = Counter(tables["entities"].column("pmcid").to_pylist())
    assert [r["mention_count"] for r in found] == [mentions.get("PMC0", 0), mentions.get("PMC1", 0), 0, 0, 0, 0]
    assert {(r["row_index"], r["pmcid"], r["reason"]) for r in tables["rejections"].to_pylist()} == {
        (2, "Bempty", "no_text"), (4, "Bctrl", "control_characters"), (5, None, "null_pmcid")}  # Bhuge left out


def test_a_schema_1_shard_is_versioned_by_last_updated(tmp_path, articles, tagger):
    import datetime

    day = datetime.datetime(2020, 1, 2, tzinfo=datetime.timezone.utc)
    rows, schema = without_column([{**a, "last_updated": day} for a in articles[:1]], "version")
    rows, schema = [{k: v for k, v in r.items() if k != "pmc_version"} for r in rows], pa.schema(
        [f for f in schema if f.name != "pmc_version"])
    uri = write_shard(str(tmp_path / "old.parquet"), rows, schema)
    (shard,) = list_shards(uri)
    tables = shard_tables(check_shard(shard), tag_documents(tagger, split_shard(uri, AnnotateConfig(), 4)), "m", "r")
    assert [(r["version"], r["pmc_version"], r["status"]) for r in tables["articles"].to_pylist()] == [(day, None, "tagged")]


def test_model_id_is_the_taggers(tiny_bundle, tagger):
    assert bundle_model_id(tiny_bundle) == tagger.model_id


# ---- shards ------------------------------------------------------------------------------------
def test_check_shard_turns_bad_shards_into_rejection_rows(tmp_path, articles):
    good = write_shard(str(tmp_path / "good.parquet"), articles[:2] + bad_articles("B"))
    rows, schema = without_column(articles[:3], "abstract")
    missing = write_shard(str(tmp_path / "missing.parquet"), rows, schema)
    (tmp_path / "broken.parquet").write_bytes(b"PAR1 this is not parquet")
    write_shard(str(tmp_path / "rejects.parquet"), articles[:1])
    listed = {shard.name: shard for shard in list_shards(str(tmp_path))}
    assert sorted(listed) == ["broken.parquet", "good.parquet", "missing.parquet"]

    checked = check_shard(listed["good.parquet"])
    assert (checked.shard.uri, checked.shard.name, checked.documents, checked.expected) == (good, "good.parquet", 6, 5)
    assert checked.rejections == ((5, None, "null_pmcid", "pmcid is null"),)
    checked = check_shard(listed["missing.parquet"])
    assert checked.shard.uri == missing and (checked.documents, checked.expected) == (3, 0)
    assert [(r[0], r[1], r[2]) for r in checked.rejections] == [(0, "PMC0", "bad_schema"), (1, "PMC1", "bad_schema"), (2, "PMC2", "bad_schema")]
    assert "abstract" in checked.rejections[0][3]
    checked = check_shard(listed["broken.parquet"])
    assert (checked.documents, checked.expected) == (0, 0)
    assert [r[:3] for r in checked.rejections] == [(None, None, "unreadable")]


def test_a_shard_with_damaged_data_pages_passes_the_check_and_fails_the_split(tmp_path, articles):
    shard = write_shard(str(tmp_path / "bad.parquet"), articles, compression="zstd")
    assert split_shard(shard, AnnotateConfig(), 2).num_rows == len(articles)
    damage_data_pages(shard)
    assert pq.read_metadata(shard).num_rows == len(articles)  # the footer is intact
    checked = check_shard(list_shards(shard)[0])
    assert (checked.expected, checked.failure, checked.rejections) == (len(articles), None, ())
    with pytest.raises(OSError, match="ZSTD decompression failed"):
        pq.read_table(shard)
    with pytest.raises(OSError, match="ZSTD decompression failed"):
        split_shard(shard, AnnotateConfig(), 2)


def test_a_damaged_pmcid_column_makes_the_check_report_a_failure_with_the_uri(tmp_path, articles):
    shard = damage_data_pages(write_shard(str(tmp_path / "bad.parquet"), articles, compression="zstd"), "pmcid")
    checked = check_shard(list_shards(shard)[0])
    assert (checked.documents, checked.expected, checked.rejections) == (len(articles), 0, ())
    assert checked.failure.startswith(f"{shard}: OSError: ")


# ---- the commit --------------------------------------------------------------------------------
def S(name: str, size: int, version: str) -> Shard:
    return Shard(name, f"/in/{name}", size, version)


def tables(pmcids, run_id="r"):
    entities = pa.table({
        "pmcid": pmcids, "section": ["title"] * len(pmcids), "section_index": [0] * len(pmcids),
        "sentence_index": [0] * len(pmcids), "start_offset": [0] * len(pmcids), "end_offset": [4] * len(pmcids),
        "mention": ["Pain"] * len(pmcids), "label": ["Disease"] * len(pmcids), "confidence": [0.5] * len(pmcids),
        "model_id": ["m"] * len(pmcids), "run_id": [run_id] * len(pmcids), "shard": ["s"] * len(pmcids),
        "concept_id": [None] * len(pmcids), "concept_name": [None] * len(pmcids), "link_score": [None] * len(pmcids),
        "linker_id": [None] * len(pmcids),
    }, schema=ENTITY_SCHEMA)
    articles = pa.table({
        "pmcid": pmcids + [None], "row_index": list(range(len(pmcids) + 1)), "version": [None] * (len(pmcids) + 1),
        "pmc_version": [None] * (len(pmcids) + 1), "status": ["tagged"] * len(pmcids) + ["rejected"],
        "mention_count": [1] * len(pmcids) + [0], "model_id": ["m"] * (len(pmcids) + 1),
        "run_id": [run_id] * (len(pmcids) + 1), "shard": ["s"] * (len(pmcids) + 1),
    }, schema=ARTICLE_SCHEMA)
    return {"entities": entities, "rejections": rejection_table("s", [(len(pmcids), None, "null_pmcid", "x")], "m", run_id),
            "articles": articles}


def table_rows(output: str, table: str) -> list[tuple]:
    rows = []
    for info in storage.list_files(storage.join(output, table), (".parquet",)):
        filesystem, path = storage.filesystem_for(info.uri)
        rows += [tuple(v for k, v in r.items() if k != "run_id") for r in pq.read_table(path, filesystem=filesystem).to_pylist()]
    return sorted(rows, key=repr)


def test_a_commit_publishes_files_and_a_new_version_replaces_them(tmp_path):
    out = str(tmp_path / "out")
    store = AnnotationStore(out)
    store.recover()
    first = store.commit(S("s", 10, "v1"), "m", "r1", "2026-11-24", tables(["A", "B"], "r1"), documents=3)
    assert store.is_current(S("s", 10, "v1"), "m") and not store.is_current(S("s", 10, "v2"), "m")
    assert not store.is_current(S("s", 10, "v1"), "other-model")
    assert [f.rsplit("/", 1)[0] for f in first.files] == [f"{t}/run_date=2026-11-24" for t in TABLES]
    second = store.commit(S("s", 11, "v2"), "m", "r2", "2026-11-25", tables(["C"], "r2"), documents=1)
    assert [r[0] for r in table_rows(out, "entities")] == ["C"]
    assert not any(os.path.exists(os.path.join(out, f)) for f in first.files)
    assert all(os.path.exists(os.path.join(out, f)) for f in second.files)
    assert not os.path.exists(os.path.join(out, first.marker)) and os.path.exists(os.path.join(out, second.marker))
    assert storage.list_files(os.path.join(out, "_staging")) == []  # moved out; recover() removes the folders


def test_every_commit_writes_one_file_per_table_even_without_rows(tmp_path):
    out = str(tmp_path / "out")
    store = AnnotationStore(out)
    no_rejections = {"entities": tables(["A"])["entities"], "rejections": REJECTION_SCHEMA.empty_table()}
    tagged = store.commit(S("s", 10, "v1"), "m", "r1", "2026-11-25", no_rejections, documents=1)
    quarantined = store.commit(S("t", 10, "v1"), "m", "r1", "2026-11-25",
                               {"rejections": rejection_table("/in/t", [(None, None, "quarantined", "boom")], "m", "r1")},
                               documents=0, quarantined=1, error="boom")
    for commit in (tagged, quarantined):
        assert [f.split("/")[0] for f in commit.files] == ["entities", "rejections", "articles"]
        assert commit.tables_version == TABLES_VERSION
    files = {f: pq.read_table(os.path.join(out, f)) for c in (tagged, quarantined) for f in c.files}
    assert [t.num_rows for t in files.values()] == [1, 0, 0, 0, 1, 0]  # a quarantined shard has no articles rows
    for name, table in files.items():
        assert table.schema.equals(TABLE_SCHEMAS[name.split("/")[0]])
        assert table.schema.metadata[TABLES_VERSION_KEY] == str(TABLES_VERSION).encode()


def test_a_table_of_another_schema_is_refused_before_anything_is_written(tmp_path):
    old = tables(["A"])["entities"].rename_columns({"start_offset": "start", "end_offset": "end"})
    with pytest.raises(ValueError, match="the entities table has schema"):
        AnnotationStore(str(tmp_path)).commit(S("s", 10, "v1"), "m", "r1", "2026-11-25", {"entities": old}, documents=1)
    assert storage.list_files(str(tmp_path)) == []


def test_output_of_the_previous_tables_version_is_retagged_and_replaced(tmp_path):
    import hashlib
    import json

    out = str(tmp_path / "out")
    # a version-1 commit as the job wrote it then: its marker keyed without the tables version
    commit = AnnotationStore(out).commit(S("s", 10, "v1"), "m", "r1", "2026-11-24", tables(["A"], "r1"), documents=1)
    fields = {k: v for k, v in json.loads(commit.to_json()).items() if k != "tables_version"}
    old = ShardCommit.from_json(fields)
    assert old.tables_version == 1
    assert work_key(10, "v1", "m", 1) == hashlib.sha256(b"10\nv1\nm").hexdigest()[:16] != work_key(10, "v1", "m")
    os.remove(os.path.join(out, commit.marker))
    storage.write_bytes(os.path.join(out, old.marker), json.dumps(fields).encode())
    os.remove(os.path.join(out, "_manifest", "manifest.json"))

    store = AnnotationStore(out)
    store.recover()
    assert store.current and not store.is_current(S("s", 10, "v1"), "m")  # a new layout is new work
    assert not store.needs_relink(S("s", 10, "v1"), "m")  # version 1 files are tagged again, not upgraded
    new = store.commit(S("s", 10, "v1"), "m", "r2", "2026-11-25", tables(["A"], "r2"), documents=1)
    assert [m.marker for ms in AnnotationStore(out).markers().values() for m in ms] == [new.marker]
    assert sorted(f.uri for f in storage.list_files(out, (".parquet",))) == sorted(os.path.join(out, f) for f in new.files)


class Crash(Exception):
    """What the commit hook below raises: a process dying at that step."""


def crash_at(step: str):
    """A commit hook that raises :class:`Crash` when the commit reaches ``step``."""
    def crash(name, shard):
        if name == step:
            raise Crash(name)
    return crash


@pytest.mark.parametrize("step", ["staged", "placed", "marked", "superseded"])
def test_a_crash_at_any_commit_step_then_a_rerun_leaves_exactly_the_clean_rows(tmp_path, step):
    crash = crash_at(step)

    clean = str(tmp_path / "clean")
    store = AnnotationStore(clean)
    store.commit(S("s", 10, "v1"), "m", "r1", "2026-11-24", tables(["A", "B"], "r1"), documents=2)
    store.commit(S("s", 11, "v2"), "m", "r2", "2026-11-25", tables(["C"], "r2"), documents=1)

    out = str(tmp_path / "out")
    AnnotationStore(out).commit(S("s", 10, "v1"), "m", "r1", "2026-11-24", tables(["A", "B"], "r1"), documents=2)
    crashing = AnnotationStore(out, hook=crash)
    crashing.recover()
    with pytest.raises(Crash):
        crashing.commit(S("s", 11, "v2"), "m", "r2", "2026-11-25", tables(["C"], "r2"), documents=1)
    rerun = AnnotationStore(out)
    rerun.recover()
    if not rerun.is_current(S("s", 11, "v2"), "m"):
        rerun.commit(S("s", 11, "v2"), "m", "r3", "2026-11-25", tables(["C"], "r3"), documents=1)
    assert table_rows(out, "entities") == table_rows(clean, "entities")
    assert table_rows(out, "rejections") == table_rows(clean, "rejections")
    assert len(storage.list_files(os.path.join(out, "_manifest", "commits"))) == 1
    assert storage.list_files(os.path.join(out, "_staging")) == []


@pytest.mark.parametrize("step", ["staged", "placed", "marked", "amended", "superseded"])
def test_an_amending_commit_is_atomic_whatever_step_it_dies_at(tmp_path, step):
    """Shard b brings the current version of article X, whose old rows shard a holds: after a
    crash and recovery alone (no re-run), either neither happened or both did."""
    crash = crash_at(step)

    out = str(tmp_path / "out")
    AnnotationStore(out).commit(S("a", 10, "v1"), "m", "r1", "2026-11-24", shard_tables_of("a", ["X", "Y"], "r1"),
                                documents=3)
    crashing = AnnotationStore(out, hook=crash)
    crashing.recover()
    with pytest.raises(Crash):
        crashing.commit(S("b", 10, "v1"), "m", "r2", "2026-11-25", shard_tables_of("b", ["X"], "r2"), documents=2,
                        amend={"a": frozenset({"X"})})
    store = AnnotationStore(out)
    recovery = store.recover()
    committed = step in ("marked", "amended", "superseded")
    where = {}  # pmcid -> the run_date folders holding its rows
    for info in storage.list_files(os.path.join(out, "entities"), (".parquet",)):
        for pmcid in pq.read_table(info.uri).column("pmcid").to_pylist():
            where.setdefault(pmcid, []).append(info.uri.split("run_date=")[1][:10])
    assert where == {"X": ["2026-11-25" if committed else "2026-11-24"], "Y": ["2026-11-24"]}
    statuses = {(r[-1], r[0]): (r[4], r[5]) for r in article_rows(out)}  # (shard, pmcid) -> (status, mention_count)
    assert statuses == {("a", "X"): ("superseded", 0) if committed else ("tagged", 1), ("a", "Y"): ("tagged", 1),
                        ("a", None): ("rejected", 0), **({("b", "X"): ("tagged", 1), ("b", None): ("rejected", 0)}
                                                         if committed else {})}
    assert store.is_current(S("b", 10, "v1"), "m") == committed
    assert store.committed("a").excluded == (("X",) if committed else ())
    assert recovery.amendments_completed == (step == "marked")
    markers = [m for ms in store.markers().values() for m in ms]
    assert len(markers) == 1 + committed and all(os.path.exists(os.path.join(out, m.marker)) for m in markers)
    assert store.recover().amendments_completed == 0  # nothing left to finish


def article_rows(output: str) -> list[tuple]:
    """The articles rows, run id aside: ``(pmcid, row_index, version, pmc_version, status,
    mention_count, model_id, shard)``."""
    return table_rows(output, "articles")


def shard_tables_of(name: str, pmcids: list[str], run_id: str) -> dict:
    """:func:`tables` whose ``shard`` column names the shard, so rows tell which shard they are of."""
    found = tables(pmcids, run_id)
    return {t: table.set_column(table.schema.get_field_index("shard"), table.schema.field("shard"),
                                pa.array([name] * table.num_rows, pa.string()))
            for t, table in found.items()}


def test_an_amendment_gives_each_left_out_row_its_status_and_keeps_every_other(tmp_path):
    out = str(tmp_path / "out")
    store = AnnotationStore(out)
    store.commit(S("a", 10, "v1"), "m", "r1", "2026-11-24", shard_tables_of("a", ["X", "Y", "Z"], "r1"), documents=4)
    store.commit(S("b", 10, "v1"), "m", "r2", "2026-11-25", shard_tables_of("b", [], "r2"), documents=1,
                 amend={"a": frozenset({"X", "Y"})}, statuses={"a": {"X": "retracted"}})
    store.amend("a", frozenset({"Z"}), "r3", {"Z": "removed"})
    statuses = {(r[-1], r[0]): (r[4], r[5]) for r in article_rows(out)}
    assert statuses == {("a", "X"): ("retracted", 0), ("a", "Y"): ("superseded", 0), ("a", "Z"): ("removed", 0),
                        ("a", None): ("rejected", 0), ("b", None): ("rejected", 0)}
    assert table_rows(out, "entities") == []
    assert [f.split("/")[1] for f in store.committed("a").files] == ["run_date=2026-11-24"] * 3  # the rows keep their date


def test_an_amendment_of_an_amendment_keeps_both_removals(tmp_path):
    out = str(tmp_path / "out")
    store = AnnotationStore(out)
    store.commit(S("a", 10, "v1"), "m", "r1", "2026-11-24", tables(["X", "Y", "Z"], "r1"), documents=3)
    store.commit(S("b", 10, "v1"), "m", "r2", "2026-11-25", tables(["X"], "r2"), documents=1, amend={"a": frozenset({"X"})})
    store.commit(S("c", 10, "v1"), "m", "r2", "2026-11-25", tables([]), documents=1, excluded=frozenset({"Y"}),
                 amend={"a": frozenset({"Y"})})
    assert sorted(r[0] for r in table_rows(out, "entities")) == ["X", "Z"]
    assert store.committed("a").excluded == ("X", "Y") and store.committed("c").excluded == ("Y",)
    fresh = AnnotationStore(out)
    assert fresh.recover().superseded_markers == 0 and len(fresh.current) == 3
    assert fresh.is_current(S("a", 10, "v1"), "m", frozenset({"X", "Y"}))
    assert not fresh.is_current(S("a", 10, "v1"), "m", frozenset({"X"}))  # Y is current again: tag a again


def test_the_second_of_two_runs_committing_the_same_work_backs_out(tmp_path):
    out = str(tmp_path / "out")
    first, second = AnnotationStore(out), AnnotationStore(out)
    assert first.commit(S("s", 10, "v1"), "m", "r1", "2026-11-25", tables(["A"], "r1"), documents=1) is not None
    assert second.commit(S("s", 10, "v1"), "m", "r2", "2026-11-25", tables(["A"], "r2"), documents=1) is None
    assert [r[0] for r in table_rows(out, "entities")] == ["A"]


def test_the_markers_are_the_truth_and_the_manifest_only_a_copy(tmp_path):
    out = str(tmp_path / "out")
    commit = AnnotationStore(out).commit(S("s", 10, "v1"), "m", "r1", "2026-11-25", tables(["A"], "r1"), documents=1)
    AnnotationStore(out).commit(S("t", 10, "v1"), "m", "r1", "2026-11-25", tables(["B"], "r1"), documents=1)
    os.remove(os.path.join(out, "_manifest", "manifest.json"))
    os.remove(os.path.join(out, commit.marker))  # as if the commit of "s" never happened
    store = AnnotationStore(out)
    recovery = store.recover()
    assert store.is_current(S("t", 10, "v1"), "m") and not store.is_current(S("s", 10, "v1"), "m")
    assert recovery.orphan_files == len(commit.files)
    assert [r[0] for r in table_rows(out, "entities")] == ["B"]
    assert os.path.exists(os.path.join(out, "_manifest", "manifest.json"))


def test_the_commit_works_on_s3(s3_bucket):
    out = f"s3://{s3_bucket}/entities-out"
    store = AnnotationStore(out)
    store.recover()
    first = store.commit(S("a.parquet", 10, "etag1"), "m", "r1", "2026-11-25", tables(["A"], "r1"), documents=1)
    assert storage.exists(storage.join(out, first.marker))
    assert store.commit(S("a.parquet", 10, "etag2"), "m", "r2", "2026-11-25", tables(["B"], "r2"), documents=1)
    assert [r[0] for r in table_rows(out, "entities")] == ["B"]
    assert not storage.list_files(storage.join(out, "_staging"))
    fresh = AnnotationStore(out)
    fresh.recover()
    assert fresh.is_current(S("a.parquet", 10, "etag2"), "m")


def quarantine(store, shard, run_id):
    """Commit ``shard`` as quarantined the way the job does: attempt = earlier attempts + 1."""
    previous = store.quarantine(shard, "m")
    attempt = (previous.quarantined if previous else 0) + 1
    rejections = rejection_table(shard.name, [(None, None, "quarantined", "boom")], "m", run_id)
    return store.commit(shard, "m", run_id, "2026-11-25", {"rejections": rejections}, 0, quarantined=attempt, error="boom")


def test_a_quarantined_shard_is_tried_again_once_then_held_until_its_content_changes(tmp_path):
    out, shard = str(tmp_path / "out"), S("s", 10, "v1")
    store = AnnotationStore(out)
    quarantine(store, shard, "r1")
    assert not store.is_current(shard, "m") and not store.is_held(shard, "m")  # the next run retries it
    assert QUARANTINE_ATTEMPTS == 2
    quarantine(store, shard, "r2")
    reopened = AnnotationStore(out)
    reopened.recover()
    assert reopened.is_held(shard, "m") and reopened.quarantine(shard, "m").quarantined == 2
    assert not reopened.is_held(S("s", 11, "v2"), "m")  # new content: tried again
    assert not reopened.is_held(shard, "other-model")  # a new model too
    assert [r[3] for r in table_rows(out, "rejections")] == ["quarantined"]  # one row, the latest attempt's
    assert len(storage.list_files(os.path.join(out, "_manifest", "commits"))) == 1


def test_a_quarantined_shard_that_reads_on_retry_replaces_its_quarantine(tmp_path):
    out, shard = str(tmp_path / "out"), S("s", 10, "v1")
    store = AnnotationStore(out)
    quarantine(store, shard, "r1")
    store.commit(shard, "m", "r2", "2026-11-25", tables(["A"], "r2"), documents=1)
    assert store.is_current(shard, "m") and store.quarantine(shard, "m") is None
    assert [r[3] for r in table_rows(out, "rejections")] == ["null_pmcid"]
    assert [r[0] for r in table_rows(out, "entities")] == ["A"]


# ---- the storage primitives the commit uses -----------------------------------------------------
@pytest.mark.parametrize("where", ["local", "s3"])
def test_write_if_absent_move_and_delete_tree(where, tmp_path, request):
    root = str(tmp_path) if where == "local" else f"s3://{request.getfixturevalue('s3_bucket')}"
    marker = storage.join(root, "m", "marker.json")
    assert storage.write_bytes_if_absent(marker, b"one") is True
    assert storage.write_bytes_if_absent(marker, b"two") is False
    assert storage.read_bytes(marker) == b"one"
    storage.write_bytes(storage.join(root, "stage", "a.bin"), b"data")
    storage.move(storage.join(root, "stage", "a.bin"), storage.join(root, "final", "a.bin"))
    assert storage.read_bytes(storage.join(root, "final", "a.bin")) == b"data"
    assert not storage.exists(storage.join(root, "stage", "a.bin"))
    storage.delete_tree(storage.join(root, "final"))
    assert storage.list_files(storage.join(root, "final")) == []
    storage.delete([storage.join(root, "m", "marker.json"), storage.join(root, "m", "gone.json")])
    assert not storage.exists(marker)


def test_shards_are_named_by_their_path_under_the_root(tmp_path, articles):
    write_shard(str(tmp_path / "2026" / "part-0.parquet"), articles[:1])
    write_shard(str(tmp_path / "part-1.parquet"), articles[1:2])
    assert [s.name for s in list_shards(str(tmp_path))] == ["2026/part-0.parquet", "part-1.parquet"]
    assert [s.name for s in list_shards(str(tmp_path / "part-1.parquet"))] == ["part-1.parquet"]
