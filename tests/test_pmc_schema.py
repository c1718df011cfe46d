"""pmc_schema: shards that fit pass; a missing or mistyped column is named in the error."""

from __future__ import annotations

from datetime import datetime, timezone

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from adabiobert.errors import ShardSchemaError
from adabiobert.pmc_schema import PMC_SHARD_SCHEMA, read_shard, records_to_table, validate_shard_schema


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
