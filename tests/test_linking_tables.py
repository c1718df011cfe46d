"""Identifiers in the entity tables (issue 23): the index build job, linked rows, re-linking with a
new index (killed at every commit step and run again), an output of tables version 2 (tagged
again, never re-linked: it has no articles table), the refusal of an index of other vocabularies, identifiers in the exports, and the node-local copy
of an index on S3.

The outputs are made without Ray (the library calls the job's driver makes per shard), tagged by a
phrase list (tests/linking_data.py) and linked with a hand-made index of real MeSH, HGNC and OMIM
rows: these tests are about the tables and their commits, not the tagger.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from adabiobert import storage
from adabiobert.annotation.commit import AnnotationStore, ShardCommit
from adabiobert.annotation.relink import Linking, relink_output
from adabiobert.annotation.tables import ARTICLE_SCHEMA, ARTICLES, CONCEPT_COLUMNS, ENTITY_SCHEMA, TABLES, TABLES_VERSION_KEY
from adabiobert.errors import LinkingIndexError
from adabiobert.linking.artifact import inspect_index, node_local_index, open_linker
from adabiobert.linking.index import MANIFEST, index_hash
from adabiobert.pmc.shards import list_shards
from jobs import build_linking_index as build_job
from jobs import relink as relink_job
from tests.annotation_data import annotate_without_ray
from tests.fault_hooks import CRASH_STATUS
from tests.linking_data import EXPECTED_LINKS, PhraseTagger, linking_for, small_index, write_linked_shards, write_vocabularies

REPO = Path(__file__).resolve().parents[1]
THALASSEMIA = ("D013789", "Thalassemia", "Thalassemias", "C15.378.071.141.150.890|C16.320.365.890", "")
"""A descriptor the second release adds: "Thalassemia", which the first abstains on, gets an ID."""


# ---- fixtures --------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def index(tmp_path_factory) -> str:
    return small_index(tmp_path_factory.mktemp("release-1"))


@pytest.fixture(scope="module")
def new_index(tmp_path_factory) -> str:
    return small_index(tmp_path_factory.mktemp("release-2"), extra=[THALASSEMIA])


@pytest.fixture(scope="module")
def made(tmp_path_factory, index) -> dict:
    """The shards, an output linked from the start, and one of the same run without links."""
    root = tmp_path_factory.mktemp("linked-tables")
    shards = write_linked_shards(root / "shards")
    annotate_without_ray(shards, root / "linked", PhraseTagger(), linking=linking_for(index))
    annotate_without_ray(shards, root / "unlinked", PhraseTagger())
    return {"root": root, "shards": shards, "linked": root / "linked", "unlinked": root / "unlinked"}


def copy_of(folder: Path, tmp_path: Path) -> Path:
    return shutil.copytree(folder, tmp_path / folder.name)


def rows(out: Path) -> list[tuple]:
    """Every entity row, all columns, the file's run_date folder last; in a fixed order."""
    found = []
    for path in (out / "entities").rglob("*.parquet"):
        table = pq.read_table(path, partitioning=None)
        found += [(*row.values(), path.parent.name) for row in table.to_pylist()]
    return sorted(found, key=repr)


def concepts(out: Path) -> dict[tuple, str | None]:
    names = ENTITY_SCHEMA.names
    at = [names.index(c) for c in ("pmcid", "section_index", "mention", "concept_id")]
    return {(r[at[0]], r[at[1]], r[at[2]]): r[at[3]] for r in rows(out)}


def markers(out: Path) -> list[ShardCommit]:
    return [c for commits in AnnotationStore(str(out)).markers().values() for c in commits]


def table_files(out: Path) -> set[str]:
    return {str(p.relative_to(out)) for table in TABLES for p in (out / table).rglob("*.parquet")}


def article_rows(out: Path) -> list[tuple]:
    """Every articles row, all columns, the file's run_date folder last; in a fixed order."""
    found = []
    for path in (out / ARTICLES).rglob("*.parquet"):
        found += [(*row.values(), path.parent.name) for row in pq.read_table(path, partitioning=None).to_pylist()]
    return sorted(found, key=repr)


def run(main, argv: list[str], capsys) -> tuple[int, str, str]:
    code = main(argv)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


# ---- the build job -----------------------------------------------------------------------------------
def build_argv(vocab: dict[str, Path], out: Path) -> list[str]:
    return ["--out", str(out), "--mesh-descriptors", str(vocab["mesh_descriptors"]), "--mesh-supplementary",
            str(vocab["mesh_supplementary"]), "--hgnc", str(vocab["hgnc"]), "--omim", str(vocab["omim"]), "--release", "t1"]


def test_the_build_job_prints_the_hash_that_names_the_artifact_and_keeps_a_release_as_it_is(tmp_path, capsys):
    vocab = write_vocabularies(tmp_path / "vocab")
    code, out, err = run(build_job.main, build_argv(vocab, tmp_path / "index"), capsys)
    assert code == 0, err
    artifact = inspect_index(str(tmp_path / "index"))
    assert artifact.index_hash == index_hash((tmp_path / "index" / MANIFEST).read_bytes())
    assert f"hash {artifact.index_hash}" in out and f"vocabularies {artifact.vocabulary_hash}" in out
    assert artifact.release == "t1"
    manifest = json.loads((tmp_path / "index" / MANIFEST).read_text())
    listed = {p.relative_to(tmp_path / "index").as_posix() for p in (tmp_path / "index").rglob("*.npy")}
    assert set(manifest["files"]) == listed  # every array's sha256 is in the manifest the hash covers

    code, _, err = run(build_job.main, build_argv(vocab, tmp_path / "index"), capsys)
    assert code == 2 and len(err.strip().splitlines()) == 1 and "holds an index already" in err
    assert inspect_index(str(tmp_path / "index")).index_hash == artifact.index_hash


def test_the_build_job_refuses_a_missing_vocabulary_in_one_line(tmp_path, capsys):
    vocab = write_vocabularies(tmp_path / "vocab")
    vocab["hgnc"] = tmp_path / "typo.tsv.gz"
    with pytest.raises(SystemExit) as exit_:
        build_job.main(build_argv(vocab, tmp_path / "index"))
    err = capsys.readouterr().err
    assert exit_.value.code == 2 and len(err.strip().splitlines()) == 1 and "typo.tsv.gz: no such file" in err
    assert not (tmp_path / "index").exists()


# ---- linked rows -------------------------------------------------------------------------------------
def test_linked_rows_carry_the_concepts_of_their_mentions(made, index):
    assert concepts(made["linked"]) == EXPECTED_LINKS
    table = pa.concat_tables([pq.read_table(p, partitioning=None) for p in (made["linked"] / "entities").rglob("*.parquet")])
    by_mention = {(r["pmcid"], r["mention"]): r for r in table.to_pylist()}
    linker_id = inspect_index(index).linker_id(0.7)
    assert set(table.column("linker_id").to_pylist()) == {linker_id}
    assert {c.linker_id for c in markers(made["linked"])} == {linker_id}
    assert by_mention[("PMC1", "HeLa")]["link_score"] is None  # a type without a vocabulary: not scored
    abstained = by_mention[("PMC1", "Thalassemia")]
    assert abstained["concept_id"] is None and 0.0 < abstained["link_score"] < 0.7  # below the threshold: score kept
    assert by_mention[("PMC1", "breast and ovarian cancers")]["concept_name"] == "Breast Neoplasms|Ovarian Neoplasms"
    unlinked = pa.concat_tables([pq.read_table(p, partitioning=None) for p in (made["unlinked"] / "entities").rglob("*.parquet")])
    assert all(unlinked.column(c).null_count == unlinked.num_rows for c in CONCEPT_COLUMNS)


# ---- re-linking --------------------------------------------------------------------------------------
def test_relinking_an_unlinked_output_gives_the_rows_of_a_run_linked_from_the_start(made, index, tmp_path):
    out = copy_of(made["unlinked"], tmp_path)
    before = table_files(out)
    summary = relink_output(str(out), linking_for(index), "relink1")
    assert (summary.shards_relinked, summary.shards_up_to_date) == (2, 0)
    assert (summary.mentions_relinked, summary.mentions_linked) == (19, 15)  # PMC3's undefined WD twice, unlinked
    assert rows(out) == rows(made["linked"])
    assert not before & table_files(out) and all("-relink1-link.parquet" in f for f in table_files(out))
    assert len(table_files(out)) == 3 * 2  # every table's file of each shard, the articles carried over as they were
    assert article_rows(out) == article_rows(made["unlinked"]) and len(article_rows(out)) == 3
    assert {c.linker_id for c in markers(out)} == {inspect_index(index).linker_id(0.7)} and len(markers(out)) == 2
    assert json.loads((out / "runs" / "relink1.json").read_text())["linking"]["index_hash"] == inspect_index(index).index_hash


def test_a_new_index_changes_the_concept_columns_only_and_a_second_run_is_a_no_op(made, new_index, tmp_path):
    out = copy_of(made["linked"], tmp_path)
    assert relink_output(str(out), linking_for(new_index), "relink2").shards_relinked == 2
    new = concepts(out)
    assert new == {**EXPECTED_LINKS, ("PMC1", 2, "Thalassemia"): "MESH:D013789"}
    kept = [i for i, name in enumerate(ENTITY_SCHEMA.names) if name not in CONCEPT_COLUMNS]
    assert [[r[i] for i in kept] for r in rows(out)] == [[r[i] for i in kept] for r in rows(made["linked"])]
    files = table_files(out)
    again = relink_output(str(out), linking_for(new_index), "relink3")
    assert (again.shards_relinked, again.shards_up_to_date) == (0, 2) and table_files(out) == files


def test_an_index_of_other_vocabularies_than_the_run_expects_is_refused_naming_both_hashes(made, index, new_index,
                                                                                           tmp_path, capsys):
    out = copy_of(made["linked"], tmp_path)
    expected, found = inspect_index(index).vocabulary_hash, inspect_index(new_index).vocabulary_hash
    assert expected != found
    code, _, err = run(relink_job.main, ["--annotations", str(out), "--linking-index", new_index,
                                         "--linking-vocabulary-hash", expected], capsys)
    assert code == 2 and len(err.strip().splitlines()) == 1 and expected in err and found in err
    assert rows(out) == rows(made["linked"])


def test_a_shard_changed_since_it_was_tagged_is_left_as_it_was_and_reported(made, index, tmp_path, capsys):
    shards = write_linked_shards(tmp_path / "shards")
    out = tmp_path / "out"
    annotate_without_ray(shards, out, PhraseTagger())
    before = rows(out)
    with open(shards / "part-00000.parquet", "ab") as handle:
        handle.write(b"\0")  # another size: not the content that was tagged
    code, _, err = run(relink_job.main, ["--annotations", str(out), "--linking-index", index, "--run-id", "r"], capsys)
    assert code == 3 and "run jobs/annotate.py" in err
    summary = json.loads((out / "runs" / "r.json").read_text())
    assert [f["shard"] for f in summary["shards_failed"]] == ["part-00000.parquet"] and summary["shards_relinked"] == 1
    untouched = [r for r in rows(out) if r[0] in ("PMC1", "PMC2")]
    assert untouched == [r for r in before if r[0] in ("PMC1", "PMC2")]
    assert not (out / "_staging").exists() or not any((out / "_staging").rglob("*.parquet"))


@pytest.mark.parametrize("step", ["staged", "placed", "marked", "superseded"])
def test_a_relink_killed_at_any_commit_step_and_run_again_ends_as_the_clean_run(made, index, tmp_path, step):
    out = copy_of(made["unlinked"], tmp_path)
    argv = ["--annotations", str(out), "--linking-index", index]
    killed = subprocess.run([sys.executable, str(REPO / "tests" / "fault_hooks.py"), "--relink", "--crash-at", f"{step}:2",
                             "--", *argv, "--run-id", "killed"], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert killed.returncode == CRASH_STATUS, killed.stderr[-3000:]
    assert relink_job.main([*argv, "--run-id", "again"]) == 0
    assert rows(out) == rows(made["linked"])
    commits = markers(out)
    assert len(commits) == 2 and len({c.shard for c in commits}) == 2
    assert table_files(out) == {f for c in commits for f in c.files}  # no file that no marker lists
    assert not any((out / "_staging").rglob("*")) if (out / "_staging").exists() else True


# ---- an output of tables version 2 ------------------------------------------------------------------
def as_version_2(out: Path) -> None:
    """Rewrite an unlinked output as tables version 2 wrote it: entity files without the concept
    columns, no articles files, version 2 in every file's metadata and marker (keyed as version 2
    keyed it)."""
    for path in (out / "entities").rglob("*.parquet"):
        table = pq.read_table(path, partitioning=None).drop_columns(list(CONCEPT_COLUMNS))
        pq.write_table(table.replace_schema_metadata({TABLES_VERSION_KEY: b"2"}), path)
    for path in (out / "rejections").rglob("*.parquet"):
        pq.write_table(pq.read_table(path, partitioning=None).replace_schema_metadata({TABLES_VERSION_KEY: b"2"}), path)
    shutil.rmtree(out / ARTICLES)
    for commit in markers(out):
        os.remove(out / commit.marker)
        old = json.loads(commit.to_json())
        old["tables_version"] = 2
        old["files"] = [f for f in old["files"] if not f.startswith(f"{ARTICLES}/")]
        del old["linker_id"]  # version-2 markers lack the field
        old_commit = ShardCommit.from_json(old)
        storage.write_bytes(str(out / old_commit.marker), json.dumps(old).encode())
    (out / "_manifest" / "manifest.json").unlink()


def duckdb_rows(out: Path | list[Path], union: bool = False,
                columns: str = "pmcid, section_index, mention, concept_id") -> list[tuple]:
    option = ", union_by_name = true" if union else ""
    globs = [f"'{o}/entities/*/*.parquet'" for o in (out if isinstance(out, list) else [out])]
    return duckdb.connect().execute(
        f"SELECT {columns} FROM read_parquet([{', '.join(globs)}], hive_partitioning = true{option}) "
        "ORDER BY ALL").fetchall()


def test_an_output_of_tables_version_2_is_tagged_again_not_relinked(made, index, tmp_path, capsys):
    out = copy_of(made["unlinked"], tmp_path)
    as_version_2(out)
    assert {c.tables_version for c in markers(out)} == {2} and not (out / ARTICLES).exists()
    mentions = sorted((p, s, m) for (p, s, m) in EXPECTED_LINKS for _ in range(1 + (m == "WD" and p == "PMC3")))
    assert duckdb_rows(out, columns="pmcid, section_index, mention") == mentions  # version 2 alone: as it always read
    mixed = duckdb_rows([out, made["linked"]], union=True)  # versions 2 and 3 side by side, as while a run tags it again
    assert [r[:3] for r in mixed] == sorted(mentions * 2)
    assert sorted(r for r in mixed if r[3] is not None) == sorted(
        (*k, v) for k, v in EXPECTED_LINKS.items() if v is not None)  # version 2's rows: their concept columns null
    with pytest.raises(duckdb.InvalidInputException, match="union_by_name"):
        duckdb_rows([made["linked"], out])  # a version-3 file first: why the docs' queries say union_by_name = true

    store = AnnotationStore(str(out))
    store.recover()
    listed = list_shards(str(made["shards"]))
    linking = linking_for(index)
    assert not any(store.needs_relink(s, "phrases@test", linker_id=linking.linker_id) or store.is_current(s, "phrases@test")
                   for s in listed)  # no articles file to carry over: the annotation job tags them again
    with pytest.raises(ValueError, match="tables version 2.*run jobs/annotate.py"):
        store.relink("part-00000.parquet", lambda table: table, linking.linker_id, "r0")
    before, files = rows(out), table_files(out)
    code, _, err = run(relink_job.main, ["--annotations", str(out), "--linking-index", index, "--run-id", "r1"], capsys)
    assert code == 3 and "no articles table" in err and "run jobs/annotate.py" in err
    summary = json.loads((out / "runs" / "r1.json").read_text())
    assert sorted(summary["shards_to_tag"]) == sorted(s.name for s in listed) and summary["shards_relinked"] == 0
    assert rows(out) == before and table_files(out) == files and {c.tables_version for c in markers(out)} == {2}
    code, _, err = run(relink_job.main, ["--annotations", str(out), "--no-index", "--run-id", "r2"], capsys)
    assert code == 3 and "run jobs/annotate.py" in err and rows(out) == before  # without an index alike

    counts = annotate_without_ray(made["shards"], out, PhraseTagger(), run_id="run2", linking=linking)
    assert (counts.shards_committed, counts.shards_relinked) == (len(listed), 0)
    assert {(c.tables_version, c.linker_id) for c in markers(out)} == {(3, linking.linker_id)}
    assert len(table_files(out)) == 3 * len(listed) and all("-run2.parquet" in f for f in table_files(out))
    entity_run, article_run = ENTITY_SCHEMA.names.index("run_id"), ARTICLE_SCHEMA.names.index("run_id")
    assert ([r[:entity_run] + r[entity_run + 1:] for r in rows(out)]
            == [r[:entity_run] + r[entity_run + 1:] for r in rows(made["linked"])])  # as a run linked from the start
    assert ([r[:article_run] + r[article_run + 1:] for r in article_rows(out)]
            == [r[:article_run] + r[article_run + 1:] for r in article_rows(made["linked"])])


# ---- exports -----------------------------------------------------------------------------------------
def test_bioc_and_pubtator_exports_carry_the_identifiers(made, tmp_path):
    from bioc import biocjson, pubtator

    from adabiobert.cli.command import main

    assert main(["export", str(made["linked"]), "--out", str(tmp_path / "exports")]) == 0
    expected = {(p, m): c for (p, _, m), c in EXPECTED_LINKS.items()}
    found_bioc, found_pubtator = {}, {}
    for path in (tmp_path / "exports").rglob("*.bioc.json"):
        for document in biocjson.loads(path.read_text(encoding="utf-8")).documents:
            for passage in document.passages:
                for annotation in passage.annotations:
                    found_bioc[(document.id, annotation.text)] = annotation.infons.get("identifier")
                    if "identifier" in annotation.infons:
                        assert annotation.infons["concept_name"] and float(annotation.infons["link_score"]) >= 0.7
    for path in (tmp_path / "exports").rglob("*.pubtator"):
        for document in pubtator.loads(path.read_text(encoding="utf-8")):
            for annotation in document.annotations:
                found_pubtator[(document.pmid, annotation.text)] = None if annotation.id == "-" else annotation.id
    assert found_bioc == found_pubtator == expected


# ---- the index on S3, one copy per node --------------------------------------------------------------
def test_an_index_on_s3_is_downloaded_once_per_node_and_checked(s3_bucket, index, tmp_path, monkeypatch):
    uri = f"s3://{s3_bucket}/linking/release-1"
    storage.upload_dir(index, uri)
    artifact = inspect_index(uri)
    assert artifact.index_hash == inspect_index(index).index_hash
    downloads = []
    download_dir = storage.download_dir
    monkeypatch.setattr(storage, "download_dir", lambda *args: downloads.append(args) or download_dir(*args))
    first = node_local_index(uri, artifact.index_hash, tmp_path / "cache")
    assert first == str(tmp_path / "cache" / artifact.index_hash)
    assert node_local_index(uri, artifact.index_hash, tmp_path / "cache") == first and len(downloads) == 1
    linker = open_linker(uri, artifact.index_hash, 0.7, tmp_path / "cache")
    assert linker.link_text("BRCA1", "Gene").concept_id == "NCBIGene:672" and len(downloads) == 1

    with pytest.raises(LinkingIndexError, match="replaced during the run"):
        node_local_index(uri, "0" * 64, tmp_path / "other-cache")  # the run recorded another index
    damaged = f"s3://{s3_bucket}/linking/damaged"
    storage.upload_dir(index, damaged)
    storage.write_bytes(f"{damaged}/types/Gene/idf.npy", storage.read_bytes(f"{damaged}/types/Disease/idf.npy"))
    with pytest.raises(LinkingIndexError, match="types/Gene/idf.npy is missing or differs"):
        node_local_index(damaged, artifact.index_hash, tmp_path / "cache-2")
    assert [p.name for p in (tmp_path / "cache-2").iterdir() if not p.name.endswith(".lock")] == []


def test_a_local_index_is_used_where_it_is_once_its_hash_is_checked(index):
    artifact = inspect_index(index)
    assert node_local_index(index, artifact.index_hash) == index
    with pytest.raises(LinkingIndexError, match=f"index hash {artifact.index_hash}, but the run recorded"):
        node_local_index(index, "f" * 64)


def test_linking_records_the_index_and_says_when_nothing_was_linked(index):
    linking = linking_for(index, threshold=0.8)
    assert linking.linker_id == f"linker1:{inspect_index(index).index_hash[:16]}@0.8"
    assert linking.to_dict()["threshold"] == 0.8 and linking.to_dict()["index"] == index
    assert (Linking().linker_id, Linking().to_dict()) == ("", None)


def test_an_output_of_tables_version_2_is_exported_with_no_identifiers(made, tmp_path):
    from bioc import pubtator

    from adabiobert.cli.command import main

    out = copy_of(made["unlinked"], tmp_path)
    as_version_2(out)
    assert main(["export", str(out), "--out", str(tmp_path / "exports"), "--format", "pubtator"]) == 0
    found = [a for path in (tmp_path / "exports").rglob("*.pubtator")
             for document in pubtator.loads(path.read_text(encoding="utf-8")) for a in document.annotations]
    assert len(found) == 19 and {a.id for a in found} == {"-"}
