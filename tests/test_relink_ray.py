"""Re-linking with the linking fanned out (``jobs/relink.py --workers N``, adabiobert.distributed.relink)
and the commits kept on the driver: the rows are those of the in-process run, and a table computed
from rows that changed before its commit is refused.

The output is made as in tests/test_linking_tables.py: two shards tagged without Ray by a phrase
list, unlinked, then re-linked with the hand-made index of real MeSH, HGNC and OMIM rows.
"""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from adabiobert.annotation.commit import AnnotationStore
from adabiobert.annotation.relink import link_in_process, relink_output
from adabiobert.annotation.tables import ENTITIES, ENTITY_SCHEMA
from adabiobert.linking.artifact import inspect_index
from jobs import relink as relink_job
from tests.annotation_data import annotate_without_ray
from tests.linking_data import EXPECTED_LINKS, PhraseTagger, linking_for, small_index, write_linked_shards
from tests.test_linking_tables import concepts, copy_of, markers, rows, table_files

CHANGED = "part-00000.parquet"


@pytest.fixture(scope="module")
def index(tmp_path_factory) -> str:
    return small_index(tmp_path_factory.mktemp("release-1"))


@pytest.fixture(scope="module")
def unlinked(tmp_path_factory) -> Path:
    """An output of the two shards, tagged without links."""
    root = tmp_path_factory.mktemp("unlinked-tables")
    shards = write_linked_shards(root / "shards")
    annotate_without_ray(shards, root / "unlinked", PhraseTagger())
    return root / "unlinked"


def test_relinking_on_ray_ends_with_the_rows_of_the_in_process_run(ray_session, unlinked, index, tmp_path):
    local, on_ray = copy_of(unlinked, tmp_path / "local"), copy_of(unlinked, tmp_path / "ray")
    argv = ["--linking-index", index]
    assert relink_job.main(["--annotations", str(local), *argv, "--run-id", "local"]) == 0
    assert relink_job.main(["--annotations", str(on_ray), *argv, "--workers", "2", "--run-id", "fanned"]) == 0
    assert rows(on_ray) == rows(local)  # every column, the concept columns included, and the run_date folder
    assert concepts(on_ray) == EXPECTED_LINKS
    summary = json.loads((on_ray / "runs" / "fanned.json").read_text())
    assert (summary["shards_relinked"], summary["mentions_relinked"], summary["mentions_linked"]) == (2, 19, 15)
    assert summary["shards_failed"] == [] and summary["linking"]["index_hash"] == inspect_index(index).index_hash
    assert {c.linker_id for c in markers(on_ray)} == {inspect_index(index).linker_id(0.7)} and len(markers(on_ray)) == 2
    assert table_files(on_ray) == {f for c in markers(on_ray) for f in c.files}  # no file that no marker lists


def test_a_shard_whose_text_changed_is_reported_by_its_task_and_left_as_it_was(ray_session, index, tmp_path, capsys):
    shards = write_linked_shards(tmp_path / "shards")
    out = tmp_path / "out"
    annotate_without_ray(shards, out, PhraseTagger())
    before = rows(out)
    with open(shards / CHANGED, "ab") as handle:
        handle.write(b"\0")  # another size: not the content that was tagged
    code = relink_job.main(["--annotations", str(out), "--linking-index", index, "--workers", "2", "--run-id", "r"])
    assert code == 3 and "run jobs/annotate.py" in capsys.readouterr().err
    summary = json.loads((out / "runs" / "r.json").read_text())
    assert [f["shard"] for f in summary["shards_failed"]] == [CHANGED] and summary["shards_relinked"] == 1
    assert "changed after run" in summary["shards_failed"][0]["error"]  # the task's RelinkError, as its message
    assert [r for r in rows(out) if r[0] in ("PMC1", "PMC2")] == [r for r in before if r[0] in ("PMC1", "PMC2")]


def test_a_shard_whose_rows_changed_after_its_links_were_computed_is_refused_and_reported(unlinked, index, tmp_path):
    out = copy_of(unlinked, tmp_path)
    store = AnnotationStore(str(out))
    store.recover()
    before = store.committed(CHANGED)

    def compute_then_change(work, linking):
        """Links as the in-process run does, then, before the driver commits, the committed rows
        of one shard become those of another run (what a second writer would do)."""
        for item, result in link_in_process(work, linking):
            if item.commit.shard == CHANGED:
                (entities,) = [out / f for f in item.commit.files if f.startswith(f"{ENTITIES}/")]
                table = pq.read_table(entities, partitioning=None)
                other_run = pa.array(["another-run"] * table.num_rows, pa.string())
                pq.write_table(table.set_column(ENTITY_SCHEMA.get_field_index("run_id"), "run_id", other_run), entities)
            yield item, result

    summary = relink_output(str(out), linking_for(index), "r", compute=compute_then_change)
    assert [f["shard"] for f in summary.shards_failed] == [CHANGED] and summary.shards_relinked == 1
    assert "changed after its links were computed" in summary.shards_failed[0]["error"]
    after = {c.shard: c for c in markers(out)}
    assert after[CHANGED] == before  # its marker and files as they were: nothing of the stale table committed
    changed_rows = [r for r in rows(out) if r[0] in ("PMC1", "PMC2")]
    run_id, concept_id = ENTITY_SCHEMA.names.index("run_id"), ENTITY_SCHEMA.names.index("concept_id")
    assert changed_rows and all(r[run_id] == "another-run" and r[concept_id] is None for r in changed_rows)
    assert concepts(out)[("PMC3", 1, "Li-Fraumeni syndrome")] == "OMIM:151623"  # the other shard was re-linked
    assert not (out / "_staging").exists() or not any((out / "_staging").rglob("*.parquet"))
