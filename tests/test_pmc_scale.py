"""The scale run, small (issue 10, item 4): the PMC-shaped corpus generator, and the whole
generate -> ingest -> annotate benchmark on 300 articles. The 100,000-article run is a benchmark
(``benchmarks/pmc_scale.py``), not a test."""

from __future__ import annotations

import math
import re
import statistics
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from adabiobert.annotation.stages import sentence_records
from adabiobert.job_configs import IngestConfig
from adabiobert.pmc.ingest import ingest
from adabiobert.pmc.shards import article_sections
from adabiobert.testing.pmc_generator import (
    FILE_LIST_HEADER,
    PMC_SAMPLE_LENGTHS,
    CorpusSpec,
    LengthModel,
    corpus_sentences,
    fit_lengths,
    generate,
    generated_pmcids,
    sample_lengths,
)

SPEC = CorpusSpec(articles=300, baseline_packages=2, incremental_packages=2, incremental_share=0.2, seed=7)


@pytest.fixture(scope="session", autouse=True)
def _s3_env_before_ray(s3_server):
    """Start the loopback S3 server before the suite's Ray: Ray workers take their environment
    (the endpoint and the dummy credentials) from the process that starts Ray."""
    yield


@pytest.fixture(scope="module")
def sentences(corpora_root) -> list[str]:
    return corpus_sentences(corpora_root)


@pytest.fixture(scope="module")
def ingested(tmp_path_factory, sentences):
    """SPEC's packages, and what one-process ingest made of them: (generated, folder, stats, rows)."""
    root = tmp_path_factory.mktemp("pmc-generated")
    generated = generate(root / "oa_bulk", SPEC, sentences)
    stats = ingest(IngestConfig((str(root / "oa_bulk"),), str(root / "shards"), 100, show_progress=False))
    rows = pa.concat_tables([pq.read_table(root / "shards" / name) for name in stats.shards]).to_pylist()
    return generated, root / "oa_bulk", stats, rows


def test_packages_are_named_and_listed_as_pmc_publishes_them(ingested):
    generated, folder, _, _ = ingested
    names = [Path(p).name for p in generated.packages]
    assert names == ["oa_comm_xml.PMC020xxxxxx.baseline.2024-06-18.tar.gz",
                     "oa_comm_xml.PMC021xxxxxx.baseline.2024-06-18.tar.gz",
                     "oa_comm_xml.incr.2024-06-19.tar.gz", "oa_comm_xml.incr.2024-06-20.tar.gz"]
    listed = 0
    for package in generated.packages:
        lines = Path(package.removesuffix(".tar.gz") + ".filelist.csv").read_text().splitlines(keepends=True)
        assert lines[0] == FILE_LIST_HEADER
        for line in lines[1:]:
            assert re.fullmatch(r'PMC0\d\dxxxxxx/PMC(\d+)\.xml,".+",PMC\1,2024-06-\d\d \d\d:\d\d:\d\d,\d+,CC BY,no\n', line), line
        listed += len(lines) - 1
    assert listed == generated.articles == 300
    assert sorted(p.name for p in folder.iterdir()) == sorted(names + [n.replace(".tar.gz", ".filelist.csv") for n in names])


def test_ingest_takes_every_generated_article_with_its_file_list_version(ingested):
    _, _, stats, rows = ingested
    assert (stats.articles, stats.rejected, stats.file_lists, stats.without_file_list, stats.unlisted_members) == (300, 0, 4, 0, 0)
    assert [r["pmcid"] for r in rows] == generated_pmcids(SPEC)
    assert {r["version_source"] for r in rows} == {"filelist"}
    assert [r["version"].date().isoformat() for r in rows[238:242]] == ["2024-06-18", "2024-06-18", "2024-06-19", "2024-06-19"]
    assert all(r["retracted"] is False and r["title"] and r["abstract"] and r["sections"] for r in rows)
    titles = {s["title"] for r in rows for s in r["sections"]}
    assert {"Introduction", "Materials and Methods / Statistical analysis", "Discussion"} <= titles


def test_article_lengths_follow_the_length_model(ingested):
    generated, _, _, rows = ingested
    logs = [math.log(n) for n in generated.lengths]
    model = SPEC.lengths
    assert abs(statistics.fmean(logs) - model.mu) < 0.1  # standard error 0.4 / sqrt(300) = 0.023
    assert abs(statistics.stdev(logs) - model.sigma) < 0.08
    assert generated.sentences == sum(generated.lengths)
    # What the annotation job will count: each corpus sentence is one sentence to its splitter,
    # but for a few that it cuts in two.
    split = [len(sentence_records(article_sections(r["title"], r["abstract"], r["sections"]))) for r in rows[::3]]
    ratios = [s / n for s, n in zip(split, generated.lengths[::3])]
    assert 1.0 <= sum(split) / sum(generated.lengths[::3]) < 1.1
    assert min(ratios) >= 0.9 and max(ratios) < 1.35


def test_an_article_holds_exactly_its_drawn_number_of_sentences(tmp_path):
    """With sentences the splitter cannot cut or merge, it finds exactly the drawn lengths."""
    pool = [f"The patient number {i} had a mild fever and a rash ." for i in range(50)]
    spec = CorpusSpec(articles=30, baseline_packages=1, incremental_packages=1, seed=3)
    generated = generate(tmp_path / "oa_bulk", spec, pool)
    stats = ingest(IngestConfig((str(tmp_path / "oa_bulk"),), str(tmp_path / "shards"), 100, show_progress=False))
    rows = pq.read_table(tmp_path / "shards" / stats.shards[0]).to_pylist()
    split = [len(sentence_records(article_sections(r["title"], r["abstract"], r["sections"]))) for r in rows]
    assert split == list(generated.lengths)


def test_the_default_length_model_is_the_pmc_samples_as_the_job_splits_them(shared_root):
    assert sample_lengths(shared_root / "pmc-sample") == list(PMC_SAMPLE_LENGTHS)
    model = fit_lengths(PMC_SAMPLE_LENGTHS)
    assert CorpusSpec().lengths == model
    assert 160 < model.median < 180 and 0.35 < model.sigma < 0.45  # mean 181.5 sentences


def test_another_length_model_is_followed(tmp_path, sentences):
    spec = CorpusSpec(articles=40, baseline_packages=1, incremental_packages=0,
                      lengths=LengthModel(math.log(30), 0.05, minimum=28, maximum=32))
    generated = generate(tmp_path, spec, sentences)
    assert set(generated.lengths) <= set(range(28, 33)) and generated.articles == 40


def test_generation_is_deterministic_for_a_seed(tmp_path, sentences):
    def files(folder: Path, seed: int) -> dict[str, bytes]:
        generate(folder, CorpusSpec(articles=20, baseline_packages=1, incremental_packages=1, seed=seed), sentences)
        return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}

    first, again, other = files(tmp_path / "a", 0), files(tmp_path / "b", 0), files(tmp_path / "c", 1)
    assert first == again
    assert first.keys() == other.keys()
    assert all(first[name] != other[name] for name in first if name.endswith(".tar.gz"))


def test_generate_refuses_a_folder_that_holds_packages(tmp_path, sentences):
    spec = CorpusSpec(articles=3, baseline_packages=1, incremental_packages=0)
    generate(tmp_path, spec, sentences)
    with pytest.raises(FileExistsError, match="already holds packages"):
        generate(tmp_path, spec, sentences)


@pytest.mark.ray
@pytest.mark.slow
def test_scale_run_small_end_to_end(tmp_path, shared_root, ray_data):
    from benchmarks.pmc_scale import ScaleSettings, markdown, run_scale

    settings = ScaleSettings(shared_root, tmp_path, articles=300, checkpoints=(100, 200, 300), articles_per_shard=50,
                             baseline_packages=2, incremental_packages=1, workers=2, actors=1, documents_per_call=16)
    report = run_scale(settings)

    assert (report["ingest"]["articles"], report["ingest"]["rejected"], report["ingest"]["shards"]) == (300, 0, 6)
    annotate = report["annotate"]
    assert (annotate["articles"], annotate["tagged"], annotate["rejected"], annotate["shards"]) == (300, 300, 0, 6)
    assert report["entity_articles"] == report["generated_articles_with_entities"] == 300
    assert annotate["sentences"] >= report["generate"]["sentences"] > 300 * 100
    assert [c["checkpoint"] for c in annotate["checkpoints"]] == [100, 200, 300]
    assert [s["articles"] for s in annotate["by_shard"]] == [50, 100, 150, 200, 250, 300]
    for row in annotate["checkpoints"] + annotate["by_shard"]:
        assert 0 < row["rss_mb"] <= row["peak_rss_mb"] <= annotate["driver_peak_rss_mb"]
    assert annotate["driver_peak_rss_mb"] <= report["driver_vm_hwm_mb"]
    for phase in ("ingest", "annotate"):
        assert report[phase]["object_store"]["spilled_bytes"] >= 0 and report[phase]["object_store"]["store_bytes_avail"] > 0
    assert 0 < annotate["outside_tagger_share"] < 1
    assert annotate["outside_tagger_share_of_stream"] <= annotate["outside_tagger_share"]
    table = markdown(report)
    assert "| 300 |" in table and "articles/s" in table
