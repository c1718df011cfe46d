"""Appends and versions without Ray: which version is current (pmc.versions), and an ingest
run that appends a batch to a shard root, with the bad incrementals of issue 10, item 3."""

from __future__ import annotations

import json
from datetime import datetime, timezone
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from adabiobert.errors import OutputExistsError
from adabiobert.job_configs import IngestConfig
from adabiobert.pmc.ingest import ingest
from adabiobert.pmc.shards import list_shards, shard_batch
from adabiobert.pmc.versions import REMOVED, RETRACTED, SUPERSEDED, ArticleVersion, build_index, read_versions
from tests.versions_data import DAY0, DAY1, baseline, incremental_1, incremental_2, pmcid, write_package


def at(day: int) -> datetime:
    return datetime(2024, 6, day, tzinfo=timezone.utc)


def row(pmcid: str, day: int | None, shard: str, retracted: bool = False, index: int = 0) -> ArticleVersion:
    return ArticleVersion(pmcid, at(day) if day else None, retracted, shard, index)


# ---- the rule ---------------------------------------------------------------------------------
def test_the_newest_version_is_current_whatever_the_batch_order():
    index = build_index([row("PMC1", 19, "batch=a/part-00000.parquet"), row("PMC1", 18, "batch=b/part-00000.parquet")])
    assert index.owner("PMC1") == "batch=a/part-00000.parquet"
    assert index.excluded("batch=b/part-00000.parquet") == {"PMC1"}
    assert index.left_out["batch=b/part-00000.parquet"]["PMC1"] == SUPERSEDED
    assert index.counts() == {"articles": 1, "superseded": 1, "ties": 0, "retracted": 0, "retracted_unseen": 0,
                              "removed": 0, "removed_rows": 0}


def test_a_tie_goes_to_the_oldest_batch_and_a_root_without_batches_is_the_oldest():
    index = build_index([row("PMC1", 18, "batch=2024-06-19/part-00000.parquet"), row("PMC1", 18, "part-00003.parquet"),
                         row("PMC1", 18, "batch=2024-06-18/part-00000.parquet")])
    assert index.owner("PMC1") == "part-00003.parquet"
    assert index.counts()["ties"] == 2 and index.excluded("part-00003.parquet") == frozenset()
    assert shard_batch("part-00003.parquet") == "" < shard_batch("batch=2024-06-18/part-00000.parquet") == "2024-06-18"


def test_a_retracted_current_version_leaves_its_own_shard_and_the_older_ones():
    index = build_index([row("PMC1", 18, "a.parquet"), row("PMC1", 20, "b.parquet", retracted=True),
                         row("PMC2", 20, "b.parquet", retracted=True, index=1)])
    assert index.left_out == {"a.parquet": {"PMC1": SUPERSEDED}, "b.parquet": {"PMC1": RETRACTED, "PMC2": RETRACTED}}
    assert index.counts()["retracted"] == 2 and index.counts()["retracted_unseen"] == 1


# ---- the rule for rows from PMC's Cloud Service (pmc_version set) ---------------------------------
def cloud(pmcid: str, number: int, day: int, shard: str, removed: bool = False, retracted: bool = False) -> ArticleVersion:
    return ArticleVersion(pmcid, at(day), retracted, shard, 0, pmc_version=number, removed=removed)


def test_the_highest_pmc_version_is_current_whatever_its_date():
    index = build_index([cloud("PMC1", 2, 18, "batch=a/part-00000.parquet"), cloud("PMC1", 1, 20, "batch=b/part-00000.parquet")])
    assert index.owner("PMC1") == "batch=a/part-00000.parquet"
    assert index.left_out == {"batch=b/part-00000.parquet": {"PMC1": SUPERSEDED}}


def test_a_replaced_object_of_the_same_version_is_current_and_a_refetch_is_a_tie():
    index = build_index([cloud("PMC1", 1, 18, "batch=a/part-00000.parquet"), cloud("PMC1", 1, 19, "batch=b/part-00000.parquet"),
                         cloud("PMC1", 1, 19, "batch=c/part-00000.parquet")])
    assert index.owner("PMC1") == "batch=b/part-00000.parquet"
    assert index.counts()["superseded"] == 2 and index.counts()["ties"] == 1


def test_a_removed_version_leaves_the_tables_and_the_one_below_is_current_again():
    index = build_index([cloud("PMC1", 1, 18, "batch=a/part-00000.parquet"), cloud("PMC1", 2, 19, "batch=b/part-00000.parquet"),
                         cloud("PMC1", 2, 20, "batch=c/removed-00000.parquet", removed=True)])
    assert index.owner("PMC1") == "batch=a/part-00000.parquet"
    assert index.left_out == {"batch=b/part-00000.parquet": {"PMC1": REMOVED}, "batch=c/removed-00000.parquet": {"PMC1": REMOVED}}
    assert index.counts()["removed"] == 0 and index.counts()["removed_rows"] == 2


def test_an_article_whose_every_version_was_removed_has_no_row_left():
    index = build_index([cloud("PMC1", 1, 18, "batch=a/part-00000.parquet"),
                         cloud("PMC1", 1, 20, "batch=c/removed-00000.parquet", removed=True)])
    assert index.owner("PMC1") == "batch=c/removed-00000.parquet"  # its commit removes the old rows
    assert index.left_out == {"batch=a/part-00000.parquet": {"PMC1": REMOVED}, "batch=c/removed-00000.parquet": {"PMC1": REMOVED}}
    assert index.counts()["removed"] == 1


def test_a_version_put_back_after_its_removal_is_current_again():
    index = build_index([cloud("PMC1", 1, 18, "batch=a/part-00000.parquet"),
                         cloud("PMC1", 1, 20, "batch=b/removed-00000.parquet", removed=True),
                         cloud("PMC1", 1, 22, "batch=c/part-00000.parquet")])
    assert index.owner("PMC1") == "batch=c/part-00000.parquet"
    assert index.excluded("batch=c/part-00000.parquet") == frozenset()


def test_cloud_rows_outrank_rows_from_legacy_packages_and_a_retracted_cloud_version_is_withdrawn():
    index = build_index([row("PMC1", 30, "part-00000.parquet"), cloud("PMC1", 1, 2, "batch=a/part-00000.parquet", retracted=True)])
    assert index.owner("PMC1") == "batch=a/part-00000.parquet"
    assert index.left_out == {"part-00000.parquet": {"PMC1": SUPERSEDED}, "batch=a/part-00000.parquet": {"PMC1": RETRACTED}}


def test_a_version_1_shard_is_versioned_by_its_jats_date(tmp_path):
    import pyarrow as pa

    from adabiobert.pmc.shards import PMC_SHARD_SCHEMA, REQUIRED_COLUMNS
    from tests.annotation_data import corpus_articles, write_shard

    old = [{k: v for k, v in a.items() if k in REQUIRED_COLUMNS} for a in corpus_articles([["Tumour", "growth"]] * 9, "PMC5", 1)]
    for article in old:
        article["last_updated"] = at(1)
    write_shard(str(tmp_path / "part-00000.parquet"), old, pa.schema([PMC_SHARD_SCHEMA.field(c) for c in REQUIRED_COLUMNS]))
    (version,) = read_versions(list_shards(str(tmp_path))[0])
    assert (version.pmcid, version.version, version.retracted) == (old[0]["pmcid"], at(1), False)


# ---- ingest appends ---------------------------------------------------------------------------
@pytest.fixture(scope="module")
def sentences(ncbi) -> list[str]:
    # article_xml takes XML-escaped sentences (as corpus_sentences gives them): plain ones without &, < or >
    return [t for t in (" ".join(s.words) for s in ncbi.train[:400]) if not set(t) & set("&<>")]


def append(inputs: Path, root: Path, batch: str | None) -> dict:
    config = IngestConfig((str(inputs),), str(root), articles_per_shard=3, show_progress=False,
                          append=batch is not None, batch=batch or "")
    stats = ingest(config)
    folder = Path(stats.config["output"])
    return {**json.loads((folder / "ingest_stats.json").read_text()),
            "rejects": pq.read_table(folder / "rejects.parquet").to_pylist()}


def shard_rows(root: Path) -> dict[str, list[tuple]]:
    return {s.name: [(r["pmcid"], r["version"], r["retracted"]) for r in pq.read_table(s.uri).to_pylist()]
            for s in list_shards(str(root))}


@pytest.fixture(scope="module")
def appended(tmp_path_factory, sentences):
    """A root ingested without --append, then the two incrementals appended as dated batches."""
    folder = tmp_path_factory.mktemp("appends")
    root = folder / "root"
    stats = [append(baseline(folder / "in0", sentences), root, None)]
    before = {s.name: (s.size, s.version) for s in list_shards(str(root))}
    stats.append(append(incremental_1(folder / "in1", sentences), root, "2024-06-19"))
    stats.append(append(incremental_2(folder / "in2", sentences), root, "2024-06-20"))
    return {"folder": folder, "root": root, "stats": stats, "before": before}


def test_an_append_adds_a_batch_folder_and_never_rewrites_committed_shards(appended):
    root = appended["root"]
    names = sorted(shard_rows(root))
    assert names == ["batch=2024-06-19/part-00000.parquet", "batch=2024-06-20/part-00000.parquet",
                     "part-00000.parquet", "part-00001.parquet"]
    assert {s.name: (s.size, s.version) for s in list_shards(str(root)) if "/" not in s.name} == appended["before"]
    rows = shard_rows(root)
    assert [p for p, _, _ in rows["batch=2024-06-19/part-00000.parquet"]] == [pmcid(7), pmcid(2)]
    assert rows["batch=2024-06-20/part-00000.parquet"] == [(pmcid(4), at(20), True), (pmcid(99), at(20), True)]
    config = appended["stats"][1]["config"]
    assert (config["batch"], config["append"], config["output"]) == ("2024-06-19", True, str(root / "batch=2024-06-19"))


def test_without_append_a_root_that_holds_shards_is_still_refused(appended, sentences):
    with pytest.raises(OutputExistsError, match="--append"):
        append(appended["folder"] / "in1", appended["root"], None)


def test_a_batch_folder_that_holds_shards_is_refused(appended):
    with pytest.raises(OutputExistsError):
        append(appended["folder"] / "in1", appended["root"], "2024-06-19")


def test_an_incremental_applied_twice_is_a_batch_of_counted_rejects_and_no_shard(appended):
    before = shard_rows(appended["root"])
    stats = append(appended["folder"] / "in1", appended["root"], "2024-06-19-again")
    assert (stats["articles"], stats["shards"], stats["already_ingested"], stats["stale_versions"]) == (0, [], 2, 0)
    assert all(r["reason"].startswith("already ingested") for r in stats["rejects"]) and len(stats["rejects"]) == 2
    assert shard_rows(appended["root"]) == before


def test_bad_incremental_input_is_recorded_and_every_good_article_kept(appended, sentences):
    """A damaged member, a listed article missing from the package, a member missing from the
    list, and a LastUpdated that goes backwards: rejects and counts, never a crash or a loss."""
    folder = appended["folder"] / "in3"
    write_package(folder, "oa_comm_xml.incr.2024-06-21",
                  [(3, "2024-06-01 00:00:00", "no", 2), (8, "2024-06-21 00:00:00", "no", 0),
                   (9, "2024-06-21 00:00:00", "no", 0), (10, "2024-06-21 00:00:00", "no", 0),
                   (11, "2024-06-21 00:00:00", "no", 0)],
                  sentences, damaged=(9,), listed_only=(10,), unlisted=(11,))
    stats = append(folder, appended["root"], "2024-06-21")
    reasons = {r["source"].rsplit("::", 1)[-1].rsplit(":", 1)[0].rsplit("/", 1)[-1]: r["reason"] for r in stats["rejects"]}
    assert stats["stale_versions"] == 1 and stats["unlisted_members"] == 1
    assert any("version goes backwards" in r and pmcid(3) in r for r in reasons.values())
    assert any(f"PMC{20_000_009}" in r["source"] for r in stats["rejects"])  # the damaged member, named
    assert any(f"listed article {pmcid(10)}" in r["reason"] for r in stats["rejects"])
    kept = [p for p, _, _ in shard_rows(appended["root"])["batch=2024-06-21/part-00000.parquet"]]
    assert kept == [pmcid(8), pmcid(11)]


def test_the_first_appended_batch_of_a_new_root_is_a_batch_folder(tmp_path, sentences):
    stats = append(incremental_1(tmp_path / "in", sentences), tmp_path / "root", "2024-06-19")
    assert stats["articles"] == 2 and [s.name for s in list_shards(str(tmp_path / "root"))] == [
        "batch=2024-06-19/part-00000.parquet"]


def test_a_batch_id_with_a_slash_is_refused(tmp_path, sentences):
    from adabiobert.errors import ConfigError

    with pytest.raises(ConfigError, match="batch id"):
        append(incremental_1(tmp_path / "in", sentences), tmp_path / "root", "2024/06")
    assert not (tmp_path / "root").exists()


def test_versions_in_the_file_list_reach_the_shard(appended):
    rows = shard_rows(appended["root"])
    assert (pmcid(2), at(18), False) in rows["part-00000.parquet"]
    assert (pmcid(2), at(19), False) in rows["batch=2024-06-19/part-00000.parquet"]
    assert DAY0 and DAY1


def test_a_shard_that_fails_the_schema_check_holds_no_version(tmp_path):
    import pyarrow as pa

    from tests.annotation_data import write_shard

    schema = pa.schema([("pmcid", pa.string()), ("version", pa.string()), ("retracted", pa.string())])
    write_shard(str(tmp_path / "a.parquet"), [{"pmcid": "PMC1", "version": "2024-06-19", "retracted": "no"}], schema)
    write_shard(str(tmp_path / "b.parquet"), [{"pmcid": 1}], pa.schema([("pmcid", pa.int64())]))
    a, b = list_shards(str(tmp_path))
    assert read_versions(a) == [] and read_versions(b) == []
