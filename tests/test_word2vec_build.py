"""Word2Vec build: the kept-sentence filter, gensim training, and the job end to end on local Ray."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from gensim.models import KeyedVectors

from adabiobert import storage
from adabiobert.errors import ConfigError, InputNotFoundError, ShardSchemaError
from adabiobert.job_configs import IngestConfig, Word2VecBuildConfig, Word2VecConfig
from adabiobert.model.word_vectors import WordVectors
from adabiobert.pmc.ingest import ingest
from adabiobert.pmc.lexicon import Lexicon
from adabiobert.pmc.shards import REJECTS_FILE, records_to_table
from adabiobert.pmc.word2vec_build import (
    VECTORS_FILE,
    LineSentences,
    kept_sentence_lines,
    save_vectors,
    train_vectors,
    train_vectors_from_iterable,
)

REPO_ROOT = Path(__file__).resolve().parents[1]
TINY = Word2VecConfig(vector_size=8, window=2, min_count=1, epochs=1, workers=1)


def _job(name: str):
    spec = importlib.util.spec_from_file_location(name, REPO_ROOT / "jobs" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_only_sentences_that_mention_a_term_are_kept_words_keep_their_case():
    lexicon = Lexicon(["breast cancer"], case_sensitive_terms=["BRCA1"])
    text = ("BRCA1 mutations raise the risk. The weather was fine. Breast cancer (BC) is common, e.g. in "
            "Europe. Brca1 in lower case is not the symbol.")
    seen, lines = kept_sentence_lines([text], lexicon)
    assert seen == 4
    assert lines == ["BRCA1 mutations raise the risk .", "Breast cancer ( BC ) is common , e . g . in Europe ."]


def test_training_keeps_case_and_saves_loadable_vectors(tmp_path):
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("BRCA1 binds DNA .\nbrca1 is the mouse symbol .\n" * 5, encoding="utf-8")
    vectors = train_vectors(corpus, TINY)
    assert {"BRCA1", "brca1", "DNA"} <= set(vectors.key_to_index)
    loaded = KeyedVectors.load(str(save_vectors(vectors, tmp_path / "out")))
    assert loaded.vector_size == 8 and (loaded["BRCA1"] == vectors["BRCA1"]).all()


def test_corpus_file_and_iterator_give_the_same_vocabulary(tmp_path):
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("TP53 regulates the cell cycle .\nThe cell divides .\n" * 3, encoding="utf-8")
    from_file = train_vectors(corpus, TINY)
    from_iterator = train_vectors_from_iterable(LineSentences(corpus), TINY)
    assert from_file.key_to_index.keys() == from_iterator.key_to_index.keys()


def test_nothing_to_train_is_a_clear_error(tmp_path):
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("only once\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="no word occurs min_count=2 times"):
        train_vectors(corpus, Word2VecConfig(min_count=2, workers=1))


@pytest.mark.parametrize("separate_arrays", [False, True])
def test_vectors_built_to_s3_load_as_the_same_vectors(tmp_path, s3_bucket, separate_arrays):
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("BRCA1 binds DNA .\nbrca1 is the mouse symbol .\n" * 5, encoding="utf-8")
    local = tmp_path / "w2v"
    local.mkdir()
    # gensim puts arrays above sep_limit bytes in .npy files beside the .kv: both layouts must load
    train_vectors(corpus, TINY).save(str(local / VECTORS_FILE), sep_limit=0 if separate_arrays else 10 << 20)
    assert any(p.suffix == ".npy" for p in local.iterdir()) == separate_arrays
    storage.upload_dir(local, f"s3://{s3_bucket}/w2v")
    storage.write_bytes(f"s3://{s3_bucket}/w2v/vectors.kv-old", b"not gensim")  # beside it, not one of its files
    from_s3 = WordVectors.load(f"s3://{s3_bucket}/w2v/{VECTORS_FILE}")
    from_disk = WordVectors.load(local / VECTORS_FILE)
    assert from_s3.words == from_disk.words and {"BRCA1", "brca1"} <= set(from_s3.words)
    assert (from_s3.vectors == from_disk.vectors).all()
    with pytest.raises(InputNotFoundError, match="word vectors not found: s3://.*/missing.kv"):
        WordVectors.load(f"s3://{s3_bucket}/w2v/missing.kv")


def test_a_folder_of_nothing_but_rejects_is_refused_before_ray_starts(tmp_path):
    from adabiobert.distributed.word2vec import build_word2vec

    pq.write_table(pa.table({"source": ["x.nxml"], "reason": ["bad XML"]}), tmp_path / REJECTS_FILE)
    with pytest.raises(InputNotFoundError, match="no shard there"):
        build_word2vec(Word2VecBuildConfig(str(tmp_path), str(tmp_path / "out")), Lexicon(["cancer"]))
    assert not (tmp_path / "out").exists()


def test_a_shard_without_text_columns_fails_before_ray_starts(tmp_path, shared_root):
    from adabiobert.distributed.word2vec import build_word2vec
    from adabiobert.pmc.jats import parse_jats

    record = parse_jats((shared_root / "pmc-sample" / "mds526.nxml").read_bytes(), "x")
    pq.write_table(records_to_table([record]).drop_columns(["sections"]), tmp_path / "part-00000.parquet")
    with pytest.raises(ShardSchemaError, match="'sections'"):
        build_word2vec(Word2VecBuildConfig(str(tmp_path), str(tmp_path / "out")), Lexicon(["cancer"]))


@pytest.mark.ray
def test_the_build_job_end_to_end_on_the_sample_shards(ray_session, shared_root, tmp_path, capsys):
    shards = tmp_path / "shards"
    ingest(IngestConfig((str(shared_root / "pmc-sample"),), str(shards), articles_per_shard=3, show_progress=False))
    out = tmp_path / "w2v"
    code = _job("build_word2vec").main([
        "--shards", str(shards), "--out", str(out), "--lexicon", str(shared_root / "lexicon"),
        "--epochs", "1", "--min-count", "2", "--workers", "1", "--num-actors", "1", "--no-progress",
    ])
    assert code == 0
    vectors = KeyedVectors.load(str(out / "vectors.kv"))
    assert vectors.vector_size == 128
    assert {"PBDE", "thyroid", "cancer"} <= set(vectors.key_to_index)  # words of the samples, case kept
    stats = json.loads((out / "word2vec_stats.json").read_text())
    assert stats["documents"] == 8 and stats["shards"] == 3  # rejects.parquet is not a shard
    assert 0 < stats["sentences_kept"] < stats["sentences_seen"]
    assert stats["vocabulary_size"] == len(vectors.key_to_index)
    assert stats["tokens"] > stats["sentences_kept"]
    assert set(stats["seconds"]) == {"corpus", "train", "save"}
    assert stats["config"]["word2vec"]["epochs"] == 1
    assert not (out / "corpus.txt").exists()
    assert "8 articles" in capsys.readouterr().out


@pytest.mark.ray
def test_the_build_writes_to_s3_and_reads_a_shard_named_like_rejects(ray_session, s3_bucket, tmp_path):
    from adabiobert.distributed.word2vec import build_word2vec

    shards = tmp_path / "shards"
    shards.mkdir()
    corpus_text = "BRCA1 carriers have breast cancer . " * 3
    record = {"pmcid": "PMC1", "pmid": None, "doi": None, "title": corpus_text, "abstract": "", "sections": [],
              "license": None, "last_updated": None, "source": "x"}
    pq.write_table(records_to_table([record]), shards / "part-00000.parquet")
    pq.write_table(records_to_table([{**record, "pmcid": "PMC2"}]), shards / "old-rejects.parquet")  # a shard
    pq.write_table(pa.table({"source": ["x.nxml"], "reason": ["bad XML"]}), shards / REJECTS_FILE)  # not one
    out = f"s3://{s3_bucket}/word2vec"
    config = Word2VecBuildConfig(str(shards), out, Word2VecConfig(vector_size=8, min_count=1, epochs=1, workers=1),
                                 num_actors=1, keep_corpus=True, show_progress=False)
    stats = build_word2vec(config, Lexicon(["breast cancer"]))
    assert (stats.shards, stats.documents, stats.sentences_kept) == (2, 2, 6)
    names = {f.uri.rsplit("/", 1)[1] for f in storage.list_files(out)}
    assert {"vectors.kv", "word2vec_stats.json", "corpus.txt"} <= names
    storage.download_dir(out, tmp_path / "back")
    assert "BRCA1" in KeyedVectors.load(str(tmp_path / "back" / "vectors.kv")).key_to_index
    assert WordVectors.load(f"{out}/vectors.kv").words == WordVectors.load(tmp_path / "back" / "vectors.kv").words
