"""The nightly source end to end (issue 21): a bucket on the loopback S3 server laid out as PMC's
Cloud Service, two days of inventories, a baseline sync and a second day with a new article, a new
version, a replaced XML, a retraction, a removed version, a malformed JSON and an object the
inventory lists before the bucket has it; annotation over the result, checked with DuckDB; the
second day's sync killed at each step and run again, equal to the clean run."""

from __future__ import annotations

import json
import subprocess
import sys
import uuid
from collections import Counter
from datetime import datetime, timezone
from pathlib import Path

import boto3
import duckdb
import pyarrow.parquet as pq
import pytest

from adabiobert import storage
from adabiobert.job_configs import SyncConfig
from adabiobert.pmc.sync import SYNC_FOLDER, read_state, sync
from adabiobert.testing.opendata_bucket import delete_articles, make_article, write_articles, write_inventory
from tests.fault_hooks import CRASH_STATUS

REPO = Path(__file__).resolve().parents[1]
DAY1, DAY2 = datetime(2026, 9, 1, 1, tzinfo=timezone.utc), datetime(2026, 9, 2, 1, tzinfo=timezone.utc)
BATCH1, BATCH2 = "batch=pmc-2026-09-01T01-00Z", "batch=pmc-2026-09-02T01-00Z"
BEFORE1, BEFORE2 = datetime(2026, 8, 31, 12, tzinfo=timezone.utc), datetime(2026, 9, 1, 12, tzinfo=timezone.utc)


@pytest.fixture(scope="module")
def bucket(s3_server, ncbi):
    """The source bucket as it is on day 1, with day 1's inventory; ``next_day()`` applies day 2's
    changes and writes day 2's inventory (every change of day 2 is newer than day 1's inventory)."""
    name = f"pmc-oa-{uuid.uuid4().hex[:8]}"
    boto3.client("s3", endpoint_url=s3_server["endpoint_url"]).create_bucket(Bucket=name)
    root = f"s3://{name}"
    sentences = [t for t in (" ".join(s.words) for s in ncbi.train[:400]) if not set(t) & set("&<>")]

    def article(number, version=1, when=BEFORE1, **kwargs):
        return make_article(number, version, sentences=sentences, last_modified=when, **kwargs)

    day1 = [article(n) for n in range(1, 7)] + [article(7, 1), article(7, 2), article(8, license_code="CC BY-NC")]
    write_articles(root, day1)
    write_inventory(root, DAY1, day1)
    changed = {
        "new article": article(9, when=BEFORE2),
        "new version": article(2, 2, when=BEFORE2),
        "replaced XML": article(3, when=BEFORE2, seed=1),
        "retraction": article(4, when=BEFORE2, is_retracted=True),
        "malformed JSON": article(10, when=BEFORE2, metadata=b'{"pmcid": "PMC10", "version": '),
    }
    missing = article(11, when=BEFORE2)  # listed by the inventory, not yet in the bucket
    kept = [a for a in day1 if (a.pmcid, a.version) not in {("PMC7", 2), ("PMC3", 1), ("PMC4", 1)}]
    listed = kept + list(changed.values()) + [missing]

    def next_day():
        delete_articles(root, [("PMC7", 2)])
        write_articles(root, changed.values())
        write_inventory(root, DAY2, listed)

    return {"root": root, "missing": missing, "listed": listed, "next_day": next_day}


def run(source: str, output: Path, inventory: str = "", workers: int = 1, **overrides) -> dict:
    config = SyncConfig(str(output), source, inventory=inventory, articles_per_shard=2, workers=workers,
                        show_progress=False, **overrides)
    if workers == 1:
        return sync(config, log=lambda line: None)
    from adabiobert.distributed.sync import sync_on_ray

    return sync_on_ray(config, log=lambda line: None)


def shard_rows(root: Path, batch: str) -> dict[str, list[dict]]:
    """Every Parquet file of a batch (shards, tombstones, rejects) as rows, by name."""
    return {p.name: pq.read_table(p).to_pylist() for p in sorted((root / batch).glob("*.parquet"))}


def versions_in(root: Path) -> dict[tuple[str, int], str]:
    """(pmcid, PMC version) -> the shard (relative to the root) holding its row."""
    found = {}
    for path in sorted(root.glob("batch=*/part-*.parquet")):
        for row in pq.read_table(path, columns=["pmcid", "pmc_version"]).to_pylist():
            found[(row["pmcid"], row["pmc_version"])] = str(path.relative_to(root))
    return found


@pytest.fixture(scope="module")
def clean(bucket, ray_data, tiny_bundle, tmp_path_factory):
    """Day 1 on Ray (two workers), day 2 in one process; each annotated after its sync."""
    from adabiobert.distributed.annotation import run_annotation
    from adabiobert.job_configs import AnnotationJobConfig

    folder = tmp_path_factory.mktemp("sync")
    root, out = folder / "root", folder / "annotations"
    stats = [run(bucket["root"], root, workers=2)]
    day1_copy = tmp_path_factory.mktemp("day1") / "root"
    subprocess.run(["cp", "-a", str(root), str(day1_copy)], check=True)
    summaries = []
    for day, date in enumerate(("2026-09-01", "2026-09-02")):
        if day == 1:
            bucket["next_day"]()
            stats.append(run(bucket["root"], root))
        config = AnnotationJobConfig(str(root), str(out), str(tiny_bundle), run_date=date, run_id=f"day{day + 1}",
                                     num_actors=1, cpu_threads_per_actor=1, documents_per_call=4,
                                     documents_per_split=4, show_progress=False)
        summaries.append(run_annotation(config, log=lambda line: None))
    return {"root": root, "out": out, "stats": stats, "summaries": summaries, "day1": day1_copy}


def entities(out: Path, sql: str) -> list[tuple]:
    con = duckdb.connect()
    con.execute(f"CREATE VIEW e AS SELECT * FROM read_parquet('{out}/entities/**/*.parquet', hive_partitioning = true)")
    return con.execute(sql).fetchall()


def test_the_baseline_fetches_every_version_and_keeps_two_versions_of_one_article_in_different_shards(clean):
    day1 = clean["stats"][0]
    assert (day1["baseline"], day1["fetched"], day1["ingested"], day1["rejected"], day1["missing"]) == (True, 9, 9, 0, 0)
    shards = versions_in(clean["root"])
    assert shards[("PMC7", 1)] != shards[("PMC7", 2)]
    assert read_state(str(clean["root"])).inventory_date == "2026-09-02T01-00Z"


def test_the_second_day_fetches_only_what_changed_and_records_what_it_could_not_read(clean):
    day2 = clean["stats"][1]
    assert (day2["baseline"], day2["fetched"], day2["ingested"], day2["rejected"], day2["missing"], day2["removed"]) == (
        False, 6, 4, 1, 1, 1)
    rejects = {row["source"].rsplit("/", 1)[-1]: row["reason"] for row in pq.read_table(
        clean["root"] / BATCH2 / "rejects.parquet").to_pylist()}
    assert set(rejects) == {"PMC10.1.json", "PMC11.1.json"}
    assert "PMC10.1" in rejects["PMC10.1.json"] or "JSON" in rejects["PMC10.1.json"]
    assert rejects["PMC11.1.json"].startswith("missing")
    snapshot = pq.read_table(clean["root"] / SYNC_FOLDER / "inventory-2026-09-02T01-00Z.parquet").to_pylist()
    keys = {(r["pmcid"], r["version"]) for r in snapshot}
    assert ("PMC10", 1) in keys and ("PMC11", 1) not in keys  # a malformed object waits for a change; a missing one is retried
    assert ("PMC7", 2) not in keys and len(keys) == 11


def test_the_tables_hold_the_current_version_of_each_article_once_and_nothing_retracted_or_removed(clean):
    out, shards = clean["out"], versions_in(clean["root"])
    assert entities(out, "SELECT pmcid FROM e GROUP BY pmcid HAVING count(DISTINCT shard) > 1") == []
    where = dict(entities(out, "SELECT pmcid, any_value(shard) FROM e GROUP BY pmcid"))
    relative = {pmcid: uri.split("/root/", 1)[1] for pmcid, uri in where.items()}
    assert "PMC4" not in relative  # retracted
    assert relative["PMC2"] == shards[("PMC2", 2)]  # the new version
    assert relative["PMC3"].startswith(BATCH2)  # the replaced XML, fetched again
    assert relative["PMC7"] == shards[("PMC7", 1)]  # version 2 removed: version 1 is current again
    assert "PMC10" not in relative and "PMC11" not in relative
    summary = clean["summaries"][1]
    assert summary["articles_retracted"] >= 1 and summary["articles_removed"] >= 1


def test_the_articles_table_gives_each_pmc_version_and_tombstone_its_status(clean):
    from adabiobert.pmc.shards import list_shards

    con = duckdb.connect()
    rows = con.execute(f"""SELECT pmcid, pmc_version, status, mention_count, shard LIKE '%/removed-%' AS tombstone
                           FROM read_parquet('{clean["out"]}/articles/*/*.parquet', hive_partitioning = true)""").fetchall()
    by_article: dict[str, list[tuple]] = {}
    for pmcid, version, status, _, tombstone in rows:
        by_article.setdefault(pmcid, []).append((version, status, tombstone))
    assert sorted(by_article["PMC7"]) == [(1, "tagged", False), (2, "removed", False), (2, "removed", True)]
    assert sorted(by_article["PMC4"]) == [(1, "retracted", False), (1, "superseded", False)]
    assert sorted(by_article["PMC2"]) == [(1, "superseded", False), (2, "tagged", False)]
    assert "PMC10" not in by_article and "PMC11" not in by_article  # never ingested
    ingested = sum(pq.read_metadata(shard.uri).num_rows for shard in list_shards(str(clean["root"])))
    assert len(rows) == ingested  # tagged + rejected + superseded + retracted + removed
    assert all(n == 1 for n in Counter(p for p, _, s, _, _ in rows if s in ("tagged", "rejected", "retracted")).values())
    mentions = Counter(p for (p,) in entities(clean["out"], "SELECT pmcid FROM e"))
    assert {p: n for p, _, s, n, _ in rows if s == "tagged"} == {p: mentions.get(p, 0) for p, _, s, _, _ in rows
                                                                 if s == "tagged"}


def test_a_sync_to_the_inventory_it_has_does_nothing_and_a_missing_object_is_fetched_once_it_exists(clean, bucket,
                                                                                                    tmp_path):
    root = tmp_path / "root"
    subprocess.run(["cp", "-a", str(clean["root"]), str(root)], check=True)
    assert run(bucket["root"], root) == {"up_to_date": "2026-09-02T01-00Z"}
    day3 = datetime(2026, 9, 3, 1, tzinfo=timezone.utc)
    write_articles(bucket["root"], [bucket["missing"]])
    manifest = write_inventory(bucket["root"], day3, bucket["listed"])  # the same versions as day 2
    try:
        stats = run(bucket["root"], root)
        assert (stats["fetched"], stats["ingested"], stats["removed"]) == (1, 1, 0)
        assert ("PMC11", 1) in versions_in(root)
    finally:  # the other tests sync to the newest inventory: day 2
        storage.delete_tree(manifest.rsplit("/", 1)[0])
        delete_articles(bucket["root"], [("PMC11", 1)])


@pytest.mark.parametrize("step, nth", [("unit", 1), ("unit", 2), ("tombstones", 1), ("state", 1)])
def test_the_second_day_killed_at_each_step_and_run_again_ends_as_the_clean_run(clean, bucket, tmp_path, step, nth):
    root = tmp_path / "root"
    subprocess.run(["cp", "-a", str(clean["day1"]), str(root)], check=True)
    script = (
        "import sys; sys.path.insert(0, '.')\n"
        "from adabiobert.job_configs import SyncConfig\n"
        "from adabiobert.pmc.sync import sync\n"
        "from tests.fault_hooks import CrashAtCommitStep\n"
        f"config = SyncConfig({str(root)!r}, {bucket['root']!r}, articles_per_shard=2, workers=1, show_progress=False)\n"
        f"sync(config, hook=CrashAtCommitStep({step!r}, {nth}), log=lambda line: None)\n"
    )
    killed = subprocess.run([sys.executable, "-c", script], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert killed.returncode == CRASH_STATUS, killed.stderr
    again = run(bucket["root"], root)
    if step == "state":  # killed after its commit point: the rerun finds the sync done
        assert again == {"up_to_date": "2026-09-02T01-00Z"}
    assert shard_rows(root, BATCH2) == shard_rows(clean["root"], BATCH2)
    assert versions_in(root) == versions_in(clean["root"])
    assert not (root / SYNC_FOLDER / "in_progress.json").exists()
    state, expected = read_state(str(root)), read_state(str(clean["root"]))
    assert (state.inventory_date, state.snapshot, state.versions) == (expected.inventory_date, expected.snapshot,
                                                                      expected.versions)
    assert sorted(p.name for p in (root / SYNC_FOLDER).iterdir()) == ["inventory-2026-09-02T01-00Z.parquet",
                                                                       "state.json"]
    stats = json.loads((root / BATCH2 / "sync_stats.json").read_text())
    assert {k: stats[k] for k in ("fetched", "ingested", "rejected", "missing", "removed")} == {
        "fetched": 6, "ingested": 4, "rejected": 1, "missing": 1, "removed": 1}


def test_the_commercial_preset_leaves_out_a_noncommercial_licence(clean, bucket, tmp_path):
    stats = run(bucket["root"], tmp_path / "root", license="commercial")
    assert (stats["ingested"], stats["skipped_license"]) == (9, 1)
    assert ("PMC8", 1) not in versions_in(tmp_path / "root")


def test_bounds_leave_the_rest_pending_for_the_next_run(clean, bucket, tmp_path):
    first = run(bucket["root"], tmp_path / "root", since="2026-09-01", max_articles=4)
    assert (first["fetched"], first["pending"]) == (4, 8)  # day 2's six changes are the only recent ones
    rest = run(bucket["root"], tmp_path / "root")  # the same inventory: what the bounds left, in a batch of its own
    assert (rest["fetched"], rest["pending"], rest["batch"]) == (9, 0, "batch=pmc-2026-09-02T01-00Z.2")  # PMC11 again
    assert run(bucket["root"], tmp_path / "root") == {"up_to_date": "2026-09-02T01-00Z"}
    assert len(versions_in(tmp_path / "root")) == 10  # every version but the malformed and the missing one


def test_a_second_sync_of_a_root_another_run_holds_is_refused_before_it_writes(clean, bucket, tmp_path):
    from adabiobert.output_lease import OutputLeasedError, output_lease

    root = tmp_path / "root"
    with output_lease(str(root), job="sync", renew_every=None):
        with pytest.raises(OutputLeasedError, match="sync"):
            run(bucket["root"], root)
        assert sorted(p.name for p in root.iterdir()) == ["_lease.json"]
    assert run(bucket["root"], root)["ingested"] == 10  # once it is free


def test_annotation_leaves_out_a_sync_batch_that_has_not_committed(clean, bucket, tmp_path):
    from adabiobert.pmc.shards import find_shards

    root = tmp_path / "root"
    subprocess.run(["cp", "-a", str(clean["root"]), str(root)], check=True)
    (root / BATCH2 / "_committed.json").unlink()
    listing = find_shards(str(root))
    assert listing.unfinished == (BATCH2,)
    assert not any(s.name.startswith(BATCH2) for s in listing.shards)
    assert all(not s.name.startswith("_") and "/_" not in s.name for s in listing.shards)
