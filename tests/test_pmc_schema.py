"""pmc_schema: shards that fit pass; a missing or mistyped column is named in the error."""

from __future__ import annotations

from datetime import datetime, timezone

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from adabiobert.errors import ShardSchemaError
from adabiobert.pmc_schema import (
    PMC_SHARD_SCHEMA,
    REQUIRED_COLUMNS,
    SCHEMA_VERSION,
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
    assert shard_schema_version(pq.read_schema(path)) == SCHEMA_VERSION == 2
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
    from adabiobert.annotate import AnnotateConfig, check_shard, list_shards, split_shard

    path = _version_1_shard(tmp_path / "part-00000.parquet")
    assert shard_schema_version(pq.read_schema(path)) == 1
    assert read_shard(path).num_rows == 2
    checked = check_shard(list_shards(path)[0])
    assert (checked.rejections, checked.expected) == ((), 2)
    assert split_shard(path, AnnotateConfig(), 2).column("pmcid").to_pylist() == ["PMC1", "PMC2"]


def test_a_version_1_shard_passes_the_word2vec_reader(tmp_path):
    from adabiobert.distributed.word2vec_corpus import _check_shards  # imports Ray, starts nothing

    assert _check_shards([_version_1_shard(tmp_path / "part-00000.parquet")]) == 2
