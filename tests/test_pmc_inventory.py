"""pmc.inventory: finding the newest inventory in a bucket-shaped folder (and on the loopback S3
server, without credentials), reading it into one table, diffing two days, the sync snapshot."""

from __future__ import annotations

import gzip
import json
import random
from datetime import date, datetime, timedelta, timezone

import pyarrow as pa
import pytest

from adabiobert import storage
from adabiobert.errors import InventoryError
from adabiobert.pmc import inventory
from adabiobert.pmc.inventory import INVENTORY_SCHEMA, diff_inventories, latest_inventory, read_inventory
from adabiobert.testing.opendata_bucket import (
    DEFAULT_TIME, InventoryRow, delete_articles, make_article, write_articles, write_inventory)

DAY1 = datetime(2026, 9, 1, 1, tzinfo=timezone.utc)
DAY2 = DAY1 + timedelta(days=1)
LATER = DEFAULT_TIME + timedelta(days=1)
NOT_ARTICLES = [InventoryRow("metadata/README.txt", DEFAULT_TIME, "aa"),
                InventoryRow("metadata/PMC20000001.0.json", DEFAULT_TIME, "bb"),
                InventoryRow("metadata/PMC20000001.1.json.tmp", DEFAULT_TIME, "cc")]


def two_days(root: str) -> dict:
    """Day 1: A.1, B.1, C.1, D.1, D.2. Day 2: E.1 new, B.2 a new version, C.1's XML replaced,
    D.1 removed, A.1 untouched. Each day's inventory lists what the bucket then holds."""
    a, b, c, d1, d2 = (make_article(20_000_001), make_article(20_000_002), make_article(20_000_003),
                       make_article(20_000_004), make_article(20_000_004, 2))
    write_articles(root, [a, b, c, d1, d2])
    write_inventory(root, DAY1, [a, b, c, d1, d2], extra=NOT_ARTICLES, files=2)
    e, b2 = make_article(20_000_005, last_modified=LATER), make_article(20_000_002, 2, last_modified=LATER)
    c_new = make_article(20_000_003, seed=1, last_modified=LATER)
    write_articles(root, [e, b2, c_new])
    delete_articles(root, [("PMC20000004", 1)])
    write_inventory(root, DAY2, [a, b, c_new, d2, b2, e], files=3)
    return {"a": a, "b": b, "c": c, "d1": d1, "d2": d2, "e": e, "b2": b2, "c_new": c_new}


def rows(table: pa.Table) -> list[tuple]:
    return [(r["pmcid"], r["version"], r["etag"]) for r in table.to_pylist()]


def expected_rows(*articles) -> list[tuple]:
    return [(a.pmcid, a.version, a.etag) for a in articles]


# --- finding the newest inventory -------------------------------------------------------------
def test_the_newest_complete_inventory_is_chosen(tmp_path):
    root = str(tmp_path)
    for when in (DAY1 - timedelta(days=1), DAY1, DAY2):
        write_inventory(root, when, [make_article(20_000_001)])
    folder = inventory.inventory_root(root)
    storage.write_bytes(storage.join(folder, "2026-09-03T01-00Z", "manifest.checksum"), b"x")  # being written
    storage.write_bytes(storage.join(folder, "hive", "dt=2026-09-02-01-00", "symlink.txt"), b"x")
    storage.write_bytes(storage.join(folder, "notes", "manifest.json"), b"{}")  # not a day folder
    assert latest_inventory(root).folder == "2026-09-02T01-00Z"
    assert latest_inventory(root, on_or_before=date(2026, 9, 1)).folder == "2026-09-01T01-00Z"
    assert latest_inventory(root, on_or_before=datetime(2026, 9, 1, 0, 59)).folder == "2026-08-31T01-00Z"
    assert [when.day for when, _ in inventory.list_manifests(root)] == [31, 1, 2]


def test_no_inventory_is_an_error_naming_the_folder(tmp_path):
    with pytest.raises(InventoryError, match="no inventory") as error:
        latest_inventory(str(tmp_path))
    assert "inventory-reports/pmc-oa-opendata/metadata" in str(error.value)
    write_inventory(str(tmp_path), DAY1, [make_article(20_000_001)])
    with pytest.raises(InventoryError, match="on or before 2026-08-31"):
        latest_inventory(str(tmp_path), on_or_before=date(2026, 8, 31))


# --- reading one inventory --------------------------------------------------------------------
def test_an_inventory_is_one_table_of_versions_and_other_keys_are_counted(tmp_path):
    versions = two_days(str(tmp_path))
    day1 = read_inventory(latest_inventory(str(tmp_path), on_or_before=DAY1))
    assert day1.table.schema.equals(INVENTORY_SCHEMA) and len(day1.manifest.files) == 2
    assert rows(day1.table) == expected_rows(*(versions[k] for k in ("a", "b", "c", "d1", "d2")))
    assert day1.table.column("last_modified").to_pylist() == [DEFAULT_TIME] * 5
    assert day1.not_articles == 3
    assert day1.not_article_examples == tuple(row.key for row in NOT_ARTICLES)


def test_the_column_order_comes_from_the_manifest_file_schema(tmp_path):
    articles = [make_article(20_000_001), make_article(20_000_002, 3)]
    write_inventory(str(tmp_path / "pmc"), DAY1, articles)
    columns = ("Bucket", "Key", "Size", "ETag", "StorageClass", "LastModifiedDate")
    write_inventory(str(tmp_path / "other"), DAY1, articles, columns=columns)
    other = latest_inventory(str(tmp_path / "other"))
    assert other.columns == columns
    assert read_inventory(other).table.equals(read_inventory(latest_inventory(str(tmp_path / "pmc"))).table)


def test_quoted_etags_lose_their_quotes(tmp_path):
    article = make_article(20_000_001)
    write_inventory(str(tmp_path), DAY1, [], extra=[InventoryRow(article.key, DEFAULT_TIME, f'"{article.etag}"')])
    assert rows(read_inventory(latest_inventory(str(tmp_path))).table) == expected_rows(article)


def manifest_with(tmp_path, **changes) -> inventory.InventoryManifest:
    uri = write_inventory(str(tmp_path), DAY1, [make_article(20_000_001)], files=1)
    manifest = json.loads(storage.read_bytes(uri))
    manifest.update(changes)
    storage.write_bytes(uri, json.dumps(manifest).encode())
    return latest_inventory(str(tmp_path))


@pytest.mark.parametrize("changes, message", [
    ({"fileFormat": "Parquet"}, "only CSV"),
    ({"fileSchema": "Bucket, Key, Size"}, "lacks LastModifiedDate, ETag"),
    ({"files": None}, "no files list"),
    ({"files": [{"size": 3}]}, r"files\[1\] has no key"),
])
def test_an_unusable_manifest_is_refused(tmp_path, changes, message):
    with pytest.raises(InventoryError, match=message):
        manifest_with(tmp_path, **changes)


def test_a_data_file_that_is_not_what_the_manifest_says_is_refused(tmp_path):
    manifest = manifest_with(tmp_path)
    data_file = manifest.files[0].uri
    good = storage.read_bytes(data_file)
    storage.write_bytes(data_file, good[:-1] + bytes([good[-1] ^ 1]))
    with pytest.raises(InventoryError, match="MD5 differs"):
        read_inventory(manifest)
    storage.write_bytes(data_file, good + b"x")
    with pytest.raises(InventoryError, match="bytes, the manifest says"):
        read_inventory(manifest)
    storage.delete([data_file])
    with pytest.raises(InventoryError, match="missing") as error:
        read_inventory(manifest)
    assert error.value.source == data_file


def test_a_data_file_that_is_not_gzipped_csv_is_refused(tmp_path):
    manifest = manifest_with(tmp_path, files=[])
    for blob, message in ((b"not gzip", "not a gzipped CSV"), (gzip.compress(b'"b","k"\n'), "not a gzipped CSV")):
        storage.write_bytes(str(tmp_path / "bad.csv.gz"), blob)
        bad = inventory.InventoryFile("bad.csv.gz", str(tmp_path / "bad.csv.gz"), None, None)
        with pytest.raises(InventoryError, match=message):
            read_inventory(inventory.InventoryManifest(DAY1, manifest.uri, (bad,), manifest.columns, None))


def test_an_empty_inventory_is_an_empty_table(tmp_path):
    write_inventory(str(tmp_path), DAY1, [], files=1)
    found = read_inventory(latest_inventory(str(tmp_path)))
    assert found.table.num_rows == 0 and found.table.schema.equals(INVENTORY_SCHEMA) and found.not_articles == 0


# --- the difference between two days ----------------------------------------------------------
def test_two_days_give_the_new_the_replaced_and_the_removed_versions(tmp_path):
    v = two_days(str(tmp_path))
    previous = read_inventory(latest_inventory(str(tmp_path), on_or_before=date(2026, 9, 1))).table
    current = read_inventory(latest_inventory(str(tmp_path))).table
    diff = diff_inventories(previous, current)
    assert rows(diff.added) == expected_rows(v["b2"], v["e"])  # a new version, a new article
    assert rows(diff.changed) == expected_rows(v["c_new"])  # an object replaced: a new ETag
    assert rows(diff.removed) == expected_rows(v["d1"])  # the previous ETag
    assert diff.counts() == {"added": 2, "changed": 1, "removed": 1}
    assert all(t.schema.equals(INVENTORY_SCHEMA) for t in (diff.added, diff.changed, diff.removed))


def test_a_first_run_adds_every_version(tmp_path):
    two_days(str(tmp_path))
    current = read_inventory(latest_inventory(str(tmp_path))).table
    diff = diff_inventories(None, current)
    assert diff.added.equals(current) and diff.changed.num_rows == 0 and diff.removed.num_rows == 0


def table(entries: list[tuple[str, int, str, int]]) -> pa.Table:
    """Rows ``(pmcid, version, etag, minutes after DEFAULT_TIME)``."""
    return pa.Table.from_pylist([{"pmcid": p, "version": v, "etag": e, "last_modified": DEFAULT_TIME + timedelta(minutes=m)}
                                 for p, v, e, m in entries], schema=INVENTORY_SCHEMA)


def test_a_new_date_with_the_same_etag_is_a_change():
    diff = diff_inventories(table([("PMC1", 1, "e", 0)]), table([("PMC1", 1, "e", 5)]))
    assert rows(diff.changed) == [("PMC1", 1, "e")] and diff.changed.column("last_modified")[0].as_py() == DEFAULT_TIME + timedelta(minutes=5)


def oracle(previous: list[tuple], current: list[tuple]) -> tuple[list, list, list]:
    """Added, changed and removed by dictionaries, sorted as the diff sorts."""
    before = {(p, v): (e, m) for p, v, e, m in previous}
    now = {(p, v): (e, m) for p, v, e, m in current}
    pick = lambda keys, source: sorted(((p, v, source[p, v][0]) for p, v in keys), key=lambda r: (int(r[0][3:]), r[1]))  # noqa: E731
    return (pick(now.keys() - before.keys(), now),
            pick({k for k in now.keys() & before.keys() if now[k] != before[k]}, now),
            pick(before.keys() - now.keys(), before))


@pytest.mark.parametrize("seed", range(5))
def test_the_diff_equals_a_dictionary_oracle_on_random_days(seed):
    rng = random.Random(seed)
    universe = [(f"PMC{rng.randrange(1, 60)}", rng.randrange(1, 4)) for _ in range(120)]
    universe = sorted(set(universe))
    previous = [(p, v, rng.choice("abc"), rng.randrange(3)) for p, v in universe if rng.random() < 0.7]
    current = [(p, v, rng.choice("abc"), rng.randrange(3)) for p, v in universe if rng.random() < 0.7]
    rng.shuffle(previous), rng.shuffle(current)
    diff = diff_inventories(table(previous), table(current))
    assert (rows(diff.added), rows(diff.changed), rows(diff.removed)) == oracle(previous, current)


def test_tables_of_another_schema_are_refused():
    with pytest.raises(ValueError, match="current inventory has schema"):
        diff_inventories(None, pa.table({"pmcid": ["PMC1"]}))
    with pytest.raises(ValueError, match="previous inventory has a pmcid that is not PMC<digits>"):
        diff_inventories(table([("PMCX", 1, "e", 0)]), table([("PMC1", 1, "e", 0)]))
    with pytest.raises(ValueError, match="current inventory has a version outside"):
        diff_inventories(table([("PMC1", 1, "e", 0)]), table([("PMC1", 1_000_000, "e", 0)]))


# --- the snapshot of the last sync -----------------------------------------------------------
def test_a_snapshot_round_trips_and_is_none_before_the_first_sync(tmp_path):
    uri = str(tmp_path / "sync" / "inventory.parquet")
    assert inventory.read_snapshot(uri) is None
    saved = table([("PMC1", 1, "e", 0), ("PMC2", 3, "f", 1)])
    inventory.write_snapshot(saved, uri)
    inventory.write_snapshot(saved.slice(1), uri)  # replaced whole
    assert inventory.read_snapshot(uri).equals(saved.slice(1))
    assert sorted(p.name for p in (tmp_path / "sync").iterdir()) == ["inventory.parquet"]


def test_a_snapshot_of_another_schema_is_refused(tmp_path):
    uri = str(tmp_path / "inventory.parquet")
    import pyarrow.parquet as pq

    pq.write_table(pa.table({"pmcid": ["PMC1"]}), uri)
    with pytest.raises(InventoryError, match="snapshot schema"):
        inventory.read_snapshot(uri)
    storage.write_bytes(uri, b"not parquet")
    with pytest.raises(InventoryError, match="not a readable Parquet"):
        inventory.read_snapshot(uri)
    with pytest.raises(ValueError, match="snapshot inventory has schema"):
        inventory.write_snapshot(pa.table({"pmcid": ["PMC1"]}), uri)


# --- the same on the loopback S3 server, read without credentials ----------------------------
def test_a_bucket_on_s3_is_synced_from_without_credentials(s3_bucket, anonymous_s3):
    root = f"s3://{s3_bucket}"
    with anonymous_s3.signed():
        v = two_days(root)
    anonymous_s3.make_public(s3_bucket)
    assert storage.s3_unsigned()
    previous = read_inventory(latest_inventory(root, on_or_before=date(2026, 9, 1)))
    current = read_inventory(latest_inventory(root))
    diff = diff_inventories(previous.table, current.table)
    assert (rows(diff.added), rows(diff.changed), rows(diff.removed)) == (
        expected_rows(v["b2"], v["e"]), expected_rows(v["c_new"]), expected_rows(v["d1"]))
    assert previous.not_articles == 3
    with anonymous_s3.signed():  # the snapshot lives where the project may write
        inventory.write_snapshot(current.table, f"{root}/sync/inventory.parquet")
    assert inventory.read_snapshot(f"{root}/sync/inventory.parquet").equals(current.table)
    assert storage.read_bytes(f"{root}/PMC20000005.1/PMC20000005.1.xml") == v["e"].xml


def test_an_empty_side_makes_everything_added_or_removed():
    some = table([("PMC1", 1, "e", 0), ("PMC12", 2, "f", 0)])
    empty = INVENTORY_SCHEMA.empty_table()
    assert rows(diff_inventories(empty, some).added) == [("PMC1", 1, "e"), ("PMC12", 2, "f")]
    gone = diff_inventories(some, empty)
    assert rows(gone.removed) == [("PMC1", 1, "e"), ("PMC12", 2, "f")] and gone.added.num_rows == 0
