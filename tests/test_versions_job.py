"""Appends and versions end to end (issue 10, item 3): a baseline and two incrementals (a new
article, a corrected one, a retracted one and the retraction of one never seen) ingested as
batches of one shard root, annotated after each; the same with the annotation runs killed at
commit steps and run again; compared with a clean run by DuckDB queries over the tables, the
articles table reconciled with the shards and the other two after each run."""

from __future__ import annotations

import json
import random
import shutil
from collections import Counter
from pathlib import Path

import duckdb
import pytest

from adabiobert import storage
from adabiobert.job_configs import AnnotationJobConfig, IngestConfig
from adabiobert.pmc.ingest import ingest
from tests.annotation_data import doc_blocks
from tests.fault_hooks import CRASH_STATUS
from tests.versions_data import baseline, incremental_1, incremental_2, pmcid

pytestmark = pytest.mark.ray
STEPS = ("staged", "placed", "marked", "amended", "superseded")
RUN_DATES = ("2026-11-24", "2026-11-25", "2026-11-26")


@pytest.fixture(scope="session", autouse=True)
def _s3_env_before_ray(s3_server):
    """Start the loopback S3 server before the suite's Ray (as tests/test_annotation_job.py does):
    Ray workers take their environment from the process that starts Ray, and this module may be
    the first to start it."""
    yield


@pytest.fixture(scope="module")
def packages(tmp_path_factory, ncbi) -> list[Path]:
    # article_xml takes XML-escaped sentences (as corpus_sentences gives them): plain ones without &, < or >
    sentences = [t for t in (" ".join(s.words) for s in ncbi.train[:400]) if not set(t) & set("&<>")]
    folder = tmp_path_factory.mktemp("packages")
    return [write(folder / f"in{i}", sentences) for i, write in enumerate((baseline, incremental_1, incremental_2))]


def add_batch(packages: list[Path], stage: int, root: Path) -> None:
    """Stage 0: the baseline, ingested as a root was before appends (no batch folder); then each
    incremental appended as the batch of its day."""
    batch = ("", "2024-06-19", "2024-06-20")[stage]
    ingest(IngestConfig((str(packages[stage]),), str(root), articles_per_shard=3, show_progress=False,
                        append=bool(batch), batch=batch))


def job_argv(root: Path, out: Path, model, stage: int) -> list[str]:
    return ["--shards", str(root), "--model", str(model), "--output", str(out), "--run-date", RUN_DATES[stage],
            "--run-id", f"run{stage}", "--num-actors", "1", "--cpu-threads", "1", "--documents-per-call", "4",
            "--documents-per-split", "4", "--no-progress"]


def annotate(root: Path, out: Path, model, stage: int) -> dict:
    from adabiobert.distributed.annotation import run_annotation

    config = AnnotationJobConfig(str(root), str(out), str(model), run_date=RUN_DATES[stage], run_id=f"run{stage}",
                                 num_actors=1, cpu_threads_per_actor=1, documents_per_call=4, documents_per_split=4,
                                 show_progress=False)
    return run_annotation(config, log=lambda line: None)


def query(out: Path, sql: str, table: str = "entities") -> list[tuple]:
    """``sql`` over one table, as ``t``, with ``shard`` made relative to the shard root."""
    con = duckdb.connect()
    con.execute(f"""CREATE VIEW t AS SELECT * REPLACE (regexp_extract(shard, '(batch=[^/]+/)?part-[0-9]+\\.parquet$')
                    AS shard) FROM read_parquet('{out}/{table}/**/*.parquet', hive_partitioning = true)""")
    return con.execute(sql).fetchall()


def entity_rows(out: Path) -> list[tuple]:
    return query(out, "SELECT pmcid, shard, CAST(run_date AS VARCHAR), section_index, sentence_index, start_offset, "
                      "end_offset, label, round(confidence, 2) FROM t ORDER BY ALL")


def article_rows(out: Path) -> list[tuple]:
    """The articles table: one row per article version, its status and its mentions."""
    return query(out, "SELECT pmcid, shard, CAST(run_date AS VARCHAR), row_index, status, mention_count FROM t "
                      "ORDER BY ALL", "articles")


def versions_per_article(out: Path) -> list[tuple]:
    """Articles whose rows come from more than one shard: two versions of one article."""
    return query(out, "SELECT pmcid, count(DISTINCT shard) FROM t GROUP BY pmcid HAVING count(DISTINCT shard) > 1")


@pytest.fixture(scope="module")
def clean(ray_data, packages, tiny_bundle, tmp_path_factory):
    """The three stages, each ingested then annotated, nothing killed; a copy after stage 0."""
    folder = tmp_path_factory.mktemp("clean")
    root, out = folder / "root", folder / "out"
    summaries, rows, articles = [], [], []
    for stage in range(3):
        add_batch(packages, stage, root)
        summaries.append(annotate(root, out, tiny_bundle, stage))
        rows.append(entity_rows(out))
        articles.append(article_rows(out))
        if stage == 0:
            stage0 = shutil.copytree(folder, tmp_path_factory.mktemp("stage0") / "copy")
    return {"root": root, "out": out, "summaries": summaries, "rows": rows, "articles": articles, "stage0": stage0}


def articles(rows: list[tuple]) -> dict[str, set[str]]:
    found: dict[str, set[str]] = {}
    for row in rows:
        found.setdefault(row[0], set()).add(row[1])
    return found


def test_the_baseline_tags_every_article(clean):
    summary = clean["summaries"][0]
    assert (summary["documents_tagged"], summary["articles_superseded"], summary["articles_retracted"]) == (6, 0, 0)
    assert set(articles(clean["rows"][0])) <= {pmcid(n) for n in range(1, 7)}
    assert len(articles(clean["rows"][0])) >= 5  # the tiny tagger finds mentions in (nearly) every article


def test_a_corrected_article_replaces_its_old_rows_in_the_same_commit_and_a_new_one_is_added(clean):
    summary, rows = clean["summaries"][1], articles(clean["rows"][1])
    assert (summary["shards_committed"], summary["shards_amended"], summary["articles_superseded"]) == (1, 1, 1)
    assert rows[pmcid(2)] == {"batch=2024-06-19/part-00000.parquet"}
    assert rows[pmcid(7)] == {"batch=2024-06-19/part-00000.parquet"}
    old = {r for r in clean["rows"][0] if r[0] != pmcid(2)}
    assert old <= set(clean["rows"][1])  # every other article's rows kept, byte for byte


def test_a_retracted_article_leaves_the_tables_and_the_summary_counts_it(clean):
    summary, rows = clean["summaries"][2], articles(clean["rows"][2])
    assert pmcid(4) not in rows and pmcid(99) not in rows
    assert (summary["articles_retracted"], summary["shards_amended"]) == (2, 1)  # 4 removed, 99 never tagged
    assert summary["versions"] == {"articles": 8, "superseded": 2, "ties": 0, "retracted": 2, "retracted_unseen": 1,
                                   "removed": 0, "removed_rows": 0}
    assert {r for r in clean["rows"][1] if r[0] != pmcid(4)} == set(clean["rows"][2])


def test_no_article_has_two_versions_in_the_tables_after_any_run(clean):
    assert versions_per_article(clean["out"]) == []
    assert query(clean["out"], "SELECT count(*) FROM t WHERE pmcid IN ('%s', '%s')" % (pmcid(4), pmcid(99)),
                 "rejections") == [(0,)]


BASE0, BASE1, INCR1, INCR2 = ("part-00000.parquet", "part-00001.parquet", "batch=2024-06-19/part-00000.parquet",
                              "batch=2024-06-20/part-00000.parquet")
STATUSES = [
    {(pmcid(n), BASE0 if n <= 3 else BASE1): "tagged" for n in range(1, 7)},
    {(pmcid(2), BASE0): "superseded", (pmcid(2), INCR1): "tagged", (pmcid(7), INCR1): "tagged"},
    {(pmcid(4), BASE1): "superseded", (pmcid(4), INCR2): "retracted", (pmcid(99), INCR2): "retracted"},
]
"""(pmcid, shard) -> status after each stage: what it changed, by hand from versions_data's packages."""


@pytest.mark.parametrize("stage", range(3))
def test_the_articles_table_gives_every_ingested_version_its_status(clean, stage):
    expected: dict = {}
    for changes in STATUSES[:stage + 1]:
        expected.update(changes)
    rows = clean["articles"][stage]
    assert {(r[0], r[1]): r[4] for r in rows} == expected and len(rows) == len(expected)
    ingested = (6, 8, 10)[stage]  # rows of the baseline and the incrementals ingested so far
    assert len(rows) == ingested == sum(c for c in Counter(r[4] for r in rows).values())
    mentions = Counter((r[0], r[1]) for r in clean["rows"][stage])
    assert {(r[0], r[1]): r[5] for r in rows if r[4] == "tagged"} == {k: mentions.get(k, 0) for k in expected
                                                                     if expected[k] == "tagged"}
    assert set(mentions) <= {k for k, status in expected.items() if status == "tagged"}


def test_a_superseded_version_keeps_its_row_and_date_and_turns_superseded_in_the_amending_run(clean):
    before = {(r[0], r[1]): r for r in clean["articles"][0]}[(pmcid(2), BASE0)]
    after = {(r[0], r[1]): r for r in clean["articles"][1]}[(pmcid(2), BASE0)]
    assert (before[2], before[4]) == (RUN_DATES[0], "tagged")
    assert after == (*before[:4], "superseded", 0)  # same shard, date and row; no mention left


def test_the_documented_reconciliation_query_finds_nothing_amiss(clean):
    (reconciliation,) = [q for q in doc_blocks("Queries (DuckDB)", "sql") if "ANTI JOIN" in q]
    con = duckdb.connect()
    con.execute(f"SET file_search_path = '{clean['out']}'")
    assert con.execute(reconciliation).fetchall() == [(0, 0)]


def test_exports_hold_each_article_once_in_its_current_version(clean):
    from adabiobert.annotation.exports import committed_shards, shard_documents

    found: dict[str, list[str]] = {}
    for commit in committed_shards(str(clean["out"])):
        for document in shard_documents(str(clean["out"]), commit):
            found.setdefault(document.id, []).append(commit.shard)
    assert found == {pmcid(1): ["part-00000.parquet"], pmcid(2): ["batch=2024-06-19/part-00000.parquet"],
                     pmcid(3): ["part-00000.parquet"], pmcid(5): ["part-00001.parquet"],
                     pmcid(6): ["part-00001.parquet"], pmcid(7): ["batch=2024-06-19/part-00000.parquet"]}


def test_the_incremental_tables_equal_one_run_over_the_whole_root(clean, tiny_bundle, tmp_path):
    out = tmp_path / "out"
    summary = annotate(clean["root"], out, tiny_bundle, 2)
    assert summary["documents_tagged"] == 6  # 1, 2 (new), 3, 5, 6, 7
    once = {(r[0], r[1], *r[3:]) for r in entity_rows(out)}
    assert once == {(r[0], r[1], *r[3:]) for r in clean["rows"][2]}


def test_a_second_run_after_the_incrementals_is_a_no_op(clean, tiny_bundle):
    before = sorted(i.uri for i in storage.list_files(str(clean["out"] / "entities")))
    summary = annotate(clean["root"], clean["out"], tiny_bundle, 2)
    assert (summary["shards_committed"], summary["shards_amended"], summary["recovery"]["superseded_markers"]) == (0, 0, 0)
    assert sorted(i.uri for i in storage.list_files(str(clean["out"] / "entities"))) == before


@pytest.mark.parametrize("step", STEPS)
def test_runs_killed_at_commit_steps_and_run_again_end_as_the_clean_run(clean, packages, tiny_bundle, tmp_path, step):
    """Stage 1's run is killed at ``step`` of its commit (which amends the baseline's shard),
    stage 2's at a step drawn at random; each is run again. Then: the clean run's rows, 0
    duplicates, 0 losses."""
    import ray

    from jobs.annotate import main
    from tests.test_annotation_job import run_faulty_driver

    copy = shutil.copytree(clean["stage0"], tmp_path / "copy")
    root, out = copy / "root", copy / "out"
    address = ray.get_runtime_context().gcs_address
    for stage, crash in ((1, step), (2, random.Random(step).choice(STEPS))):
        add_batch(packages, stage, root)
        killed = run_faulty_driver(["--crash-at", f"{crash}:1"], job_argv(root, out, tiny_bundle, stage), address)
        assert killed.returncode == CRASH_STATUS, killed.stderr[-3000:]
        assert main(job_argv(root, out, tiny_bundle, stage)) == 0
        summary = json.loads((out / "runs" / f"run{stage}.json").read_text())
        # Killed after the commit point, the amendment embedded in the marker is finished by
        # recovery (and not made again); killed before it, the run again makes it.
        after_commit_point = STEPS.index(crash) >= STEPS.index("marked")
        assert summary["recovery"]["amendments_completed"] == (crash == "marked")
        assert summary["shards_amended"] == (not after_commit_point)
        assert versions_per_article(out) == []
        assert entity_rows(out) == clean["rows"][stage]
        assert article_rows(out) == clean["articles"][stage]
    assert query(out, "SELECT count(*) FROM t") == query(clean["out"], "SELECT count(*) FROM t")
