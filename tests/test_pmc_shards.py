"""pmc.shards: shards that fit pass, a missing or mistyped column is named in the error; one
listing rule (no shard is an error; ``rejects.parquet`` is never a shard) locally and on S3."""

from __future__ import annotations

import os
from datetime import datetime, timezone

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from adabiobert import storage
from adabiobert.errors import InputNotFoundError, ShardSchemaError
from adabiobert.pmc.shards import (
    PMC_SHARD_SCHEMA,
    REJECTS_FILE,
    REQUIRED_COLUMNS,
    SCHEMA_VERSION,
    check_shard,
    is_rejects,
    list_shards,
    read_shard,
    records_to_table,
    shard_schema_version,
    validate_shard_schema,
)


def _record(pmcid="PMC1", **overrides):
    record = {
        "pmcid": pmcid,
        "pmid": "123",
        "doi": None,
        "title": "A title",
        "abstract": "An abstract.",
        "sections": [{"title": "Methods / Cell culture", "text": "Cells were grown."}],
        "license": "CC BY",
        "last_updated": datetime(2020, 1, 2, tzinfo=timezone.utc),
        "source": "a.nxml",
    }
    record.update(overrides)
    return record


def _write(table, path):
    pq.write_table(table, path)
    return str(path)


def test_a_written_shard_reads_back_with_the_schema(tmp_path):
    path = _write(records_to_table([_record(), _record("PMC2", title="Ünïcödé β-catenin")]), tmp_path / "s.parquet")
    table = read_shard(path)
    assert table.schema.names == PMC_SHARD_SCHEMA.names
    assert table.column("title").to_pylist()[1] == "Ünïcödé β-catenin"
    assert table.column("sections").to_pylist()[0] == [{"title": "Methods / Cell culture", "text": "Cells were grown."}]


def test_missing_column_is_named(tmp_path):
    table = records_to_table([_record()]).drop_columns(["abstract"])
    path = _write(table, tmp_path / "s.parquet")
    with pytest.raises(ShardSchemaError, match="'abstract'") as caught:
        read_shard(path)
    assert caught.value.column == "abstract"
    assert path in str(caught.value)


@pytest.mark.parametrize(
    ("column", "wrong_type"),
    [("last_updated", pa.string()), ("sections", pa.string()), ("pmcid", pa.int64()),
     ("sections", pa.list_(pa.struct([("heading", pa.string()), ("text", pa.string())])))],
)
def test_wrong_type_is_named(column, wrong_type):
    schema = PMC_SHARD_SCHEMA.set(PMC_SHARD_SCHEMA.get_field_index(column), pa.field(column, wrong_type))
    with pytest.raises(ShardSchemaError, match=f"column '{column}' has type") as caught:
        validate_shard_schema(schema, "shard.parquet")
    assert caught.value.column == column


def test_extra_columns_and_list_item_names_are_accepted():
    sections = pa.list_(pa.field("element", pa.struct([("title", pa.string()), ("text", pa.string())])))
    schema = PMC_SHARD_SCHEMA.set(PMC_SHARD_SCHEMA.get_field_index("sections"), pa.field("sections", sections))
    validate_shard_schema(schema.append(pa.field("journal", pa.string())), "shard.parquet")


def test_null_pmcid_names_the_row(tmp_path):
    loose = pa.schema([f.with_nullable(True) for f in PMC_SHARD_SCHEMA])
    table = pa.Table.from_pylist([_record(), _record(pmcid=None)], schema=loose)
    path = _write(table, tmp_path / "s.parquet")
    with pytest.raises(ShardSchemaError, match="row 1: pmcid is null"):
        read_shard(path)


def test_records_to_table_refuses_a_null_pmcid():
    with pytest.raises(ValueError, match="record 1 .*pmcid is missing"):
        records_to_table([_record(), _record(pmcid=None)])


def test_a_written_shard_carries_the_schema_version(tmp_path):
    path = _write(records_to_table([_record()]), tmp_path / "s.parquet")
    assert shard_schema_version(pq.read_schema(path)) == SCHEMA_VERSION == 3
    assert read_shard(path).column("version_source").to_pylist() == [None]


def test_a_mistyped_version_2_column_is_named():
    schema = PMC_SHARD_SCHEMA.set(PMC_SHARD_SCHEMA.get_field_index("retracted"), pa.field("retracted", pa.string()))
    with pytest.raises(ShardSchemaError, match="column 'retracted' has type"):
        validate_shard_schema(schema, "shard.parquet")


def _version_1_shard(path) -> str:
    """A shard as ingest wrote it before schema version 2: nine columns, no version metadata."""
    schema = pa.schema([PMC_SHARD_SCHEMA.field(name) for name in REQUIRED_COLUMNS])
    table = pa.Table.from_pylist([_record(), _record("PMC2", abstract="Cells grew in culture.")], schema=schema)
    pq.write_table(table, path, compression="zstd")
    return str(path)


def test_a_version_1_shard_passes_the_annotation_readers(tmp_path):
    from adabiobert.annotation.stages import split_shard
    from adabiobert.job_configs import AnnotateConfig

    path = _version_1_shard(tmp_path / "part-00000.parquet")
    assert shard_schema_version(pq.read_schema(path)) == 1
    assert read_shard(path).num_rows == 2
    checked = check_shard(list_shards(path)[0])
    assert (checked.rejections, checked.expected) == ((), 2)
    assert split_shard(path, AnnotateConfig(), 2).column("pmcid").to_pylist() == ["PMC1", "PMC2"]


def test_a_version_1_shard_passes_the_word2vec_reader(tmp_path):
    from adabiobert.distributed.word2vec import _check_shards  # imports Ray, starts nothing

    assert _check_shards(list_shards(_version_1_shard(tmp_path / "part-00000.parquet"))) == 2


# ---- listing ----------------------------------------------------------------------------------
def _shard_folder(root: str) -> str:
    """Two shards (one in a subfolder), the ingest job's rejects table, and a shard whose name
    merely ends in ``rejects.parquet``."""
    table = records_to_table([_record()])
    for name in ("part-00001.parquet", "2026/part-00000.parquet", "old-rejects.parquet"):
        _write_to(table, storage.join(root, *name.split("/")))
    _write_to(pa.table({"source": ["x.nxml"], "reason": ["bad XML"]}), storage.join(root, REJECTS_FILE))
    storage.write_bytes(storage.join(root, "ingest_stats.json"), b"{}")
    return root


def _write_to(table: pa.Table, uri: str) -> None:
    with storage.open_output(uri) as sink:
        pq.write_table(table, sink)


def test_rejects_is_the_exact_file_name_in_any_folder():
    assert is_rejects("/out/rejects.parquet") and is_rejects("s3://b/out/2026/rejects.parquet")
    assert not is_rejects("/out/old-rejects.parquet") and not is_rejects("s3://b/rejects.parquet.bak")


@pytest.mark.parametrize("where", ["local", "s3"])
def test_a_folder_lists_every_shard_below_it_but_the_rejects_table(where, tmp_path, request):
    root = str(tmp_path / "shards") if where == "local" else f"s3://{request.getfixturevalue('s3_bucket')}/shards"
    listed = list_shards(_shard_folder(root))
    assert [s.name for s in listed] == ["2026/part-00000.parquet", "old-rejects.parquet", "part-00001.parquet"]
    assert [s.uri for s in listed] == [storage.join(root, *s.name.split("/")) for s in listed]
    assert all(s.size > 0 and s.version for s in listed)
    assert list_shards(root + "/") == listed


@pytest.mark.parametrize("where", ["local", "s3"])
def test_one_file_lists_as_itself_with_the_version_the_folder_listing_gives(where, tmp_path, request):
    root = _shard_folder(str(tmp_path) if where == "local" else f"s3://{request.getfixturevalue('s3_bucket')}/x")
    (alone,) = list_shards(storage.join(root, "old-rejects.parquet"))
    assert alone == next(s for s in list_shards(root) if s.name == "old-rejects.parquet")


@pytest.mark.parametrize("where", ["local", "s3"])
@pytest.mark.parametrize("case", ["missing folder", "empty folder", "only rejects", "rejects named", "missing file"])
def test_a_location_without_a_shard_is_refused_locally_and_on_s3(where, case, tmp_path, request):
    root = str(tmp_path / "in") if where == "local" else f"s3://{request.getfixturevalue('s3_bucket')}/in"
    location = {"missing folder": storage.join(root, "typo"), "empty folder": root, "only rejects": root,
                "rejects named": storage.join(root, REJECTS_FILE), "missing file": storage.join(root, "part-9.parquet")}[case]
    if where == "local":
        os.makedirs(root)
    if case in ("only rejects", "rejects named"):
        _write_to(pa.table({"source": ["x.nxml"], "reason": ["bad XML"]}), storage.join(root, REJECTS_FILE))
    with pytest.raises(InputNotFoundError, match="no shard there.*--output folder of jobs/ingest_pmc.py"):
        list_shards(location)


def test_a_relative_folder_lists_absolute_uris(tmp_path, monkeypatch):
    _shard_folder(str(tmp_path / "shards"))
    monkeypatch.chdir(tmp_path)
    assert {s.uri for s in list_shards("shards")} == {s.uri for s in list_shards(str(tmp_path / "shards"))}
    assert all(os.path.isabs(s.uri) for s in list_shards("shards"))


# ---- the footer check, for readers that stop -------------------------------------------------
def test_require_usable_names_the_shard_and_the_column_and_passes_null_pmcids(tmp_path):
    good = _write(pa.Table.from_pylist([_record(), {**_record(), "pmcid": None}],
                                       schema=PMC_SHARD_SCHEMA.set(0, pa.field("pmcid", pa.string()))),
                  tmp_path / "nulls.parquet")
    check_shard(list_shards(good)[0]).require_usable()  # null pmcids are the annotation job's business
    no_sections = _write(records_to_table([_record()]).drop_columns(["sections"]), tmp_path / "bad.parquet")
    with pytest.raises(ShardSchemaError, match=f"{no_sections}: missing column 'sections'") as error:
        check_shard(list_shards(no_sections)[0]).require_usable()
    assert error.value.column == "sections"
    (tmp_path / "broken.parquet").write_bytes(b"PAR1 not parquet")
    with pytest.raises(ShardSchemaError, match="broken.parquet: unreadable footer"):
        check_shard(list_shards(str(tmp_path / "broken.parquet"))[0]).require_usable()
