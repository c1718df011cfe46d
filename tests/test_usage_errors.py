"""Expected misuse of every job and of the CLI is one line on stderr and exit status 2; --version everywhere.

Each refusal is checked to come before any work: nothing written, and (for the jobs that start
Ray) no Ray used, through the same stand-in as tests/test_train_refusals.py.
"""

from __future__ import annotations

import pytest

from adabiobert import __version__
from adabiobert.cli import command as cli
from adabiobert.distributed import annotation, training
from adabiobert.distributed import sync as sync_on_ray
from jobs import annotate as annotate_job
from jobs import build_linking_index as linking_index_job
from jobs import build_word2vec as word2vec_job
from jobs import ingest_pmc as ingest_job
from jobs import relink as relink_job
from jobs import sync_pmc as sync_job
from jobs import train as train_job
from tests.annotation_data import corpus_articles, write_shard

MAINS = {"train": train_job.main, "annotate": annotate_job.main, "build_word2vec": word2vec_job.main,
         "ingest_pmc": ingest_job.main, "sync_pmc": sync_job.main, "adabiobert": cli.main,
         "build_linking_index": linking_index_job.main, "relink": relink_job.main}


class NoRay:
    """Stands in for the ``ray`` module of a driver: any use fails the test."""

    def __getattr__(self, name: str):
        raise AssertionError(f"ray.{name} was used before the misuse was refused")


@pytest.fixture(autouse=True)
def no_ray(monkeypatch):
    monkeypatch.setattr(training, "ray", NoRay())
    monkeypatch.setattr(annotation, "ray", NoRay())
    monkeypatch.setattr(sync_on_ray, "ray", NoRay())


def run(main, argv: list[str], capsys) -> tuple[int, str, str]:
    """The exit status of ``main(argv)`` (returned or raised by argparse), stdout and stderr."""
    try:
        code = main(argv)
    except SystemExit as exit_:
        code = exit_.code
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def assert_refused(code: int, err: str, *fragments: str) -> None:
    assert code == 2
    assert len(err.strip().splitlines()) == 1, err
    assert "Traceback" not in err
    for fragment in fragments:
        assert fragment in err, err


@pytest.mark.parametrize("name", sorted(MAINS))
def test_version(name, capsys):
    code, out, err = run(MAINS[name], ["--version"], capsys)
    assert (code, out, err) == (0, f"adabiobert {__version__}\n", "")


@pytest.mark.parametrize("name", sorted(MAINS))
def test_an_argument_error_is_one_line_that_points_to_the_help(name, capsys):
    code, _, err = run(MAINS[name], ["--no-such-option"], capsys)
    assert_refused(code, err, "error:", "--help")


# ---- jobs/train.py ---------------------------------------------------------------------------
@pytest.mark.parametrize(("argv", "fragment"), [
    (["--loss", "fixed"], "fixed loss needs a value, e.g. fixed=0.5"),
    (["--num-workers", "0"], "num_workers must be at least 1"),
    (["--dropout", "1.5"], "dropout must be in [0, 1)"),
])
def test_train_refuses_a_bad_setting_while_parsing(argv, fragment, capsys):
    code, _, err = run(train_job.main, argv, capsys)
    assert_refused(code, err, "jobs/train.py: error:", fragment)


def test_train_refuses_missing_word_vectors_before_ray_or_output(tmp_path, capsys):
    folder = tmp_path / "data" / "NCBI-disease-IOB"
    folder.mkdir(parents=True)
    for name in ("train.tsv", "devel.tsv", "test.tsv"):
        (folder / name).write_text("severe\tO\nasthma\tB-Disease\n")
    code, _, err = run(train_job.main, ["--data-root", str(tmp_path / "data"), "--word-vectors", str(tmp_path / "nope.kv"),
                                        "--output", str(tmp_path / "runs")], capsys)
    assert_refused(code, err, "nope.kv", "vectors.kv")
    assert not (tmp_path / "runs").exists()


# ---- jobs/annotate.py ------------------------------------------------------------------------
@pytest.fixture
def shards(tmp_path, ncbi):
    write_shard(str(tmp_path / "shards" / "part-00000.parquet"), corpus_articles([s.words for s in ncbi.test], "PMC", 2))
    return tmp_path / "shards"


def test_annotate_refuses_a_missing_bundle_before_touching_the_output(tmp_path, shards, capsys):
    code, _, err = run(annotate_job.main, ["--shards", str(shards), "--model", str(tmp_path / "runs" / "nope"),
                                           "--output", str(tmp_path / "entities"), "--no-progress"], capsys)
    assert_refused(code, err, "nope: no tagger bundle there", "<output>/<name>/model")
    assert not (tmp_path / "entities").exists()


@pytest.mark.parametrize("shards", ["typo", "empty", "only-rejects"])
def test_annotate_refuses_a_location_without_a_shard(shards, tmp_path, tiny_bundle, capsys):
    (tmp_path / "empty").mkdir()
    (tmp_path / "only-rejects").mkdir()
    (tmp_path / "only-rejects" / "rejects.parquet").write_bytes(b"the ingest job's rejects, not a shard")
    code, _, err = run(annotate_job.main, ["--shards", str(tmp_path / shards), "--model", str(tiny_bundle),
                                           "--output", str(tmp_path / "entities"), "--no-progress"], capsys)
    assert_refused(code, err, f"{shards}: no shard there", "jobs/ingest_pmc.py")
    assert not (tmp_path / "entities").exists()


def test_annotate_refuses_a_folder_that_is_no_linking_index_before_touching_the_output(tmp_path, shards, tiny_bundle,
                                                                                       capsys):
    code, _, err = run(annotate_job.main, ["--shards", str(shards), "--model", str(tiny_bundle), "--output",
                                           str(tmp_path / "entities"), "--linking-index", str(tmp_path / "nope"),
                                           "--no-progress"], capsys)
    assert_refused(code, err, "nope: no manifest.json; not a linking index", "jobs/build_linking_index.py")
    assert not (tmp_path / "entities").exists()


@pytest.mark.parametrize(("argv", "fragment"), [
    (["--linking-threshold", "1.5"], "linking_threshold must be in [0, 1], got 1.5"),
    (["--linking-vocabulary-hash", "abc"], "linking_vocabulary_hash is set but linking_index is not"),
])
def test_annotate_refuses_a_bad_linking_setting_while_parsing(argv, fragment, capsys):
    code, _, err = run(annotate_job.main, ["--shards", "s", "--model", "m", "--output", "o", *argv], capsys)
    assert_refused(code, err, "jobs/annotate.py: error:", fragment)


def test_annotate_refuses_a_bad_run_date_while_parsing(tmp_path, capsys):
    code, _, err = run(annotate_job.main, ["--shards", "s", "--model", "m", "--output", "o", "--run-date", "2026-13-01"],
                       capsys)
    assert_refused(code, err, "run_date must be a date YYYY-MM-DD, got '2026-13-01'")


# ---- jobs/ingest_pmc.py ----------------------------------------------------------------------
def test_ingest_refuses_a_folder_that_already_holds_shards(tmp_path, shared_root, capsys):
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "part-00000.parquet").write_bytes(b"an earlier run")
    code, _, err = run(ingest_job.main, [str(shared_root / "pmc-sample"), "--output", str(tmp_path / "out"),
                                         "--no-progress"], capsys)
    assert_refused(code, err, "already holds Parquet files", "choose an empty --output folder")
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["part-00000.parquet"]


def test_ingest_refuses_when_no_input_exists(tmp_path, capsys):
    code, _, err = run(ingest_job.main, [str(tmp_path / "typo.nxml"), "--output", str(tmp_path / "out"), "--no-progress"],
                       capsys)
    assert_refused(code, err, "no input found", "typo.nxml")
    assert not (tmp_path / "out").exists()


def test_ingest_refuses_a_shard_size_below_one_while_parsing(tmp_path, capsys):
    code, _, err = run(ingest_job.main, ["x.nxml", "--output", str(tmp_path), "--articles-per-shard", "0"], capsys)
    assert_refused(code, err, "articles_per_shard must be >= 1")


def test_ingest_refuses_an_output_that_holds_only_an_older_rejects_table(tmp_path, shared_root, capsys):
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "rejects.parquet").write_bytes(b"an earlier run's rejects")
    code, _, err = run(ingest_job.main, [str(shared_root / "pmc-sample"), "--output", str(tmp_path / "out"),
                                         "--no-progress"], capsys)
    assert_refused(code, err, "already holds Parquet files", "rejects.parquet")


# ---- jobs/build_word2vec.py ------------------------------------------------------------------
def test_word2vec_refuses_a_folder_without_shards(tmp_path, capsys):
    (tmp_path / "lexicon.txt").write_text("asthma\n")
    (tmp_path / "empty").mkdir()
    code, _, err = run(word2vec_job.main, ["--shards", str(tmp_path / "empty"), "--out", str(tmp_path / "w2v"),
                                           "--lexicon", str(tmp_path / "lexicon.txt")], capsys)
    assert_refused(code, err, "empty: no shard there", "jobs/ingest_pmc.py")
    assert not (tmp_path / "w2v").exists()


def test_word2vec_refuses_a_bad_setting_while_parsing(tmp_path, capsys):
    (tmp_path / "lexicon.txt").write_text("asthma\n")
    code, _, err = run(word2vec_job.main, ["--shards", str(tmp_path), "--out", str(tmp_path / "w2v"),
                                           "--lexicon", str(tmp_path / "lexicon.txt"), "--min-count", "0"], capsys)
    assert_refused(code, err, "Word2VecConfig.min_count must be >= 1, got 0", "--help")


def test_word2vec_refuses_a_lexicon_that_does_not_exist(tmp_path, capsys):
    code, _, err = run(word2vec_job.main, ["--shards", str(tmp_path), "--out", str(tmp_path / "w2v"),
                                           "--lexicon", str(tmp_path / "typo.tsv")], capsys)
    assert_refused(code, err, "--lexicon", "typo.tsv: no such file or folder")


# ---- adabiobert tag ----------------------------------------------------------------------------
def test_tag_refuses_a_model_path_that_is_not_a_bundle_without_reading_stdin(tmp_path, capsys, monkeypatch):
    class Unread:
        def read(self):
            raise AssertionError("stdin was read before the model was checked")

    monkeypatch.setattr("sys.stdin", Unread())
    code, _, err = run(cli.main, ["tag", "--model", str(tmp_path / "runs" / "demo")], capsys)
    assert_refused(code, err, "is not an AdaBioBERT bundle", "<output>/<name>/model")


def test_tag_refuses_a_device_that_is_not_there(tmp_path, tiny_bundle, capsys):
    (tmp_path / "a.txt").write_text("Asthma .")
    code, _, err = run(cli.main, ["tag", "--model", str(tiny_bundle), "--device", "gpu", str(tmp_path / "a.txt")], capsys)
    assert_refused(code, err, "device 'gpu' is not a torch device")


def test_tag_refuses_a_batch_of_zero_sentences_while_parsing(tiny_bundle, capsys):
    code, _, err = run(cli.main, ["tag", "--model", str(tiny_bundle), "--batch-sentences", "0"], capsys)
    assert_refused(code, err, "--batch-sentences: must be at least 1")


# ---- jobs/sync_pmc.py ------------------------------------------------------------------------
@pytest.mark.parametrize(("argv", "fragment"), [
    (["--since", "2026-02-30"], "since must be a date YYYY-MM-DD, got '2026-02-30'"),
    (["--workers", "0"], "must be at least 1"),
    (["--max-articles", "-1"], "max_articles must be >= 0"),
])
def test_sync_refuses_a_bad_setting_while_parsing(argv, fragment, tmp_path, capsys):
    code, _, err = run(sync_job.main, ["--output", str(tmp_path / "root"), *argv], capsys)
    assert_refused(code, err, "jobs/sync_pmc.py: error:", fragment)
    assert not (tmp_path / "root").exists()


def test_sync_refuses_an_unknown_licence_and_a_source_without_inventory_before_writing(tmp_path, capsys):
    (tmp_path / "bucket").mkdir()
    code, _, err = run(sync_job.main, ["--output", str(tmp_path / "root"), "--source", str(tmp_path / "bucket"),
                                       "--license", "CC-BY-4.0-ish", "--workers", "1"], capsys)
    assert_refused(code, err, "CC-BY-4.0-ish")
    code, _, err = run(sync_job.main, ["--output", str(tmp_path / "root"), "--source", str(tmp_path / "bucket"),
                                       "--workers", "2"], capsys)
    assert_refused(code, err, "no inventory")
    assert not (tmp_path / "root").exists()


# ---- jobs/build_linking_index.py and jobs/relink.py -------------------------------------------------
def test_relink_refuses_a_folder_that_is_not_an_annotation_output(tmp_path, capsys):
    code, _, err = run(relink_job.main, ["--annotations", str(tmp_path / "empty"), "--no-index"], capsys)
    assert_refused(code, err, "no annotation output there", "--output folder of jobs/annotate.py")
    assert not (tmp_path / "empty").exists()


def test_relink_needs_an_index_or_no_index_while_parsing(tmp_path, capsys):
    code, _, err = run(relink_job.main, ["--annotations", str(tmp_path)], capsys)
    assert_refused(code, err, "jobs/relink.py: error:", "--linking-index")


def test_build_linking_index_refuses_a_shared_folder_without_the_vocabularies(tmp_path, capsys):
    code, _, err = run(linking_index_job.main, ["--out", str(tmp_path / "index"), "--shared", str(tmp_path)], capsys)
    assert_refused(code, err, "jobs/build_linking_index.py: error:", "no such file")
    assert not (tmp_path / "index").exists()
