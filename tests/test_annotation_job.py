"""The annotation job end to end on the suite's local Ray: local paths and s3://, incremental runs,
a new model, a run killed mid-way, shards quarantined and retried, and the DuckDB queries of
docs/entity-tables.md."""

from __future__ import annotations

import contextlib
import io
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path, PurePosixPath

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from adabiobert import storage
from adabiobert.job_configs import AnnotationJobConfig
from adabiobert.model.tagger import Tagger
from adabiobert.pmc.shards import REJECTS_FILE
from tests.annotation_data import (
    bad_articles,
    corpus_articles,
    damage_data_pages,
    doc_blocks,
    expected_mentions,
    long_sentence_article,
    without_column,
    write_shard,
)
from tests.fault_hooks import CRASH_STATUS

pytestmark = pytest.mark.ray
REPO = Path(__file__).resolve().parents[1]
RUN_DATE = "2026-11-24"


@pytest.fixture(scope="session", autouse=True)
def _s3_env_before_ray(s3_server):
    """Start the loopback S3 server before the suite's Ray: Ray workers take their environment
    (the endpoint and the dummy credentials) from the process that starts Ray."""
    yield



@pytest.fixture(scope="module")
def shard_rows(ncbi):
    """Rows of four shards: good and bad articles, good ones, one without a column, one broken file."""
    sentences = [s.words for s in ncbi.test]
    missing, missing_schema = without_column(corpus_articles(sentences[300:], "PMC3", 2), "sections")
    return {
        "part-0.parquet": (corpus_articles(sentences, "PMC0", 4) + bad_articles("PMC0"), None),
        "part-1.parquet": (corpus_articles(sentences[150:], "PMC1", 3), None),
        "part-2.parquet": (missing, missing_schema),
        "part-3.parquet": None,
    }


def write_shards(root: str, shard_rows) -> str:
    """The shards, and the ingest job's rejects table beside them (which is no shard)."""
    for name, content in shard_rows.items():
        uri = storage.join(root, name)
        if content is None:
            storage.write_bytes(uri, b"PAR1 not a parquet file")
        else:
            write_shard(uri, content[0], *(content[1:] if content[1] is not None else ()))
    write_ingest_rejects(storage.join(root, REJECTS_FILE))
    return root


def write_ingest_rejects(uri: str) -> None:
    with storage.open_output(uri) as sink:
        pq.write_table(pa.table({"source": ["x.nxml"], "reason": ["line 3: not well-formed"]}), sink)


def job_config(shards: str, output: str, model, **overrides) -> AnnotationJobConfig:
    settings = dict(run_date=RUN_DATE, num_actors=1, cpu_threads_per_actor=1, documents_per_call=4,
                    documents_per_split=4, show_progress=False)
    settings.update(overrides)
    return AnnotationJobConfig(shards, output, str(model), **settings)


def read_rows(output: str, table: str, drop=("run_id",), uris: bool = False) -> list[dict]:
    """Every row of a table; ``shard`` holds the input URI with ``uris``, else the shard's file
    name, so that the rows of two runs over copies of the same shards compare equal."""
    rows = []
    for info in storage.list_files(storage.join(output, table), (".parquet",)):
        filesystem, path = storage.filesystem_for(info.uri)
        partition = re.search(r"run_date=([0-9-]+)", info.uri).group(1)
        for row in pq.read_table(path, filesystem=filesystem).to_pylist():
            if not uris:
                row["shard"] = PurePosixPath(row["shard"]).name
            rows.append({**{k: v for k, v in row.items() if k not in drop}, "run_date": partition})
    return rows


def same_rows(left: list[dict], right: list[dict]) -> bool:
    """Equal multisets of rows, confidences within 1e-3 (batching may move the 4th decimal)."""
    def key(row):  # None sorts before any value of its column (concept columns are null when not linked)
        return tuple(sorted((k, (v is not None, v if v is not None else 0)) for k, v in row.items() if k != "confidence"))

    left, right = sorted(left, key=key), sorted(right, key=key)
    return len(left) == len(right) and all(
        key(a) == key(b) and abs(a.get("confidence", 0) - b.get("confidence", 0)) < 1e-3 for a, b in zip(left, right))


def files_under(output: str) -> set[str]:
    return {info.uri for info in storage.list_files(output) if "/runs/" not in info.uri.replace(os.sep, "/")}


@pytest.fixture(scope="module")
def first_run(ray_data, shard_rows, tiny_bundle, tmp_path_factory):
    """One clean run over local shards; later tests copy its folders."""
    from adabiobert.distributed.annotation import run_annotation

    root = tmp_path_factory.mktemp("annotate")
    shards = write_shards(str(root / "shards"), shard_rows)
    summary = run_annotation(job_config(shards, str(root / "out"), tiny_bundle), log=lambda line: None)
    return {"root": root, "shards": shards, "out": str(root / "out"), "summary": summary}


def section_texts(shard_rows) -> dict[str, list[str]]:
    texts = {}
    for content in shard_rows.values():
        for row in (content or ((),))[0]:
            if row.get("pmcid"):
                texts[row["pmcid"]] = [row["title"], row["abstract"]] + [s["text"] for s in row.get("sections") or ()]
    return texts


# ---- local ------------------------------------------------------------------------------------
def test_a_run_counts_every_article_and_records_every_rejection(first_run, shard_rows):
    summary = first_run["summary"]
    articles_in = sum(len(c[0]) for c in shard_rows.values() if c)
    assert summary["documents_in"] == articles_in == summary["documents_tagged"] + summary["documents_rejected"]
    assert summary["documents_tagged"] == 7 and summary["shards_committed"] == 4 and summary["shards_unreadable"] == 1
    assert summary["shards_listed"] == 4  # not rejects.parquet beside them
    assert summary["rejections_by_reason"] == {"bad_schema": 2, "unreadable": 1, "null_pmcid": 1, "no_text": 1,
                                               "too_long": 1, "control_characters": 1}
    rejections = read_rows(first_run["out"], "rejections")
    assert len(rejections) == sum(summary["rejections_by_reason"].values())
    assert {(r["reason"], r["pmcid"], r["row_index"]) for r in rejections if r["reason"] in ("null_pmcid", "unreadable")} == {
        ("null_pmcid", None, 7), ("unreadable", None, None)}
    assert {r["pmcid"] for r in rejections if r["reason"] == "bad_schema"} == {"PMC30", "PMC31"}
    assert {"recover", "list", "check", "stream", "commit", "total", "split_busy", "tag_busy"} <= set(summary["seconds"])
    on_disk = json.loads(Path(first_run["out"], "runs", f"{summary['run_id']}.json").read_text())
    assert on_disk["documents_in"] == articles_in


def test_the_run_summary_records_the_precision_and_why(first_run):
    precision = first_run["summary"]["precision"]
    assert precision == {"requested": "fp32", "precision": "fp32", "reason": "fp32 asked for, on the CPU"}  # the default


def test_entity_rows_point_into_their_section_and_carry_model_and_run(first_run, shard_rows, tiny_bundle):
    rows = read_rows(first_run["out"], "entities", drop=(), uris=True)
    summary = first_run["summary"]
    assert len(rows) == summary["mentions"] > 0
    texts = section_texts(shard_rows)
    for row in rows:
        assert texts[row["pmcid"]][row["section_index"]][row["start_offset"]:row["end_offset"]] == row["mention"]
    assert {r["model_id"] for r in rows} == {Tagger.from_pretrained(tiny_bundle, device="cpu").model_id}
    assert {r["run_id"] for r in rows} == {summary["run_id"]} and {r["run_date"] for r in rows} == {RUN_DATE}
    assert {r["pmcid"][:4] for r in rows} == {"PMC0", "PMC1"}
    assert {r["section"] for r in rows} <= {"title", "abstract", "Introduction", "Methods / Patients"}
    assert {r["shard"] for r in rows} == {storage.join(first_run["shards"], f"part-{i}.parquet") for i in (0, 1)}


def test_a_second_run_is_a_no_op(first_run, tiny_bundle):
    from adabiobert.distributed.annotation import run_annotation

    before = files_under(first_run["out"])
    summary = run_annotation(job_config(first_run["shards"], first_run["out"], tiny_bundle), log=lambda line: None)
    assert (summary["shards_up_to_date"], summary["shards_committed"], summary["documents_in"]) == (4, 0, 0)
    assert files_under(first_run["out"]) - {storage.join(first_run["out"], "_manifest", "manifest.json")} == before - {
        storage.join(first_run["out"], "_manifest", "manifest.json")}


def test_a_changed_shard_alone_is_retagged_and_replaces_its_rows(first_run, tiny_bundle, tmp_path, ncbi):
    from adabiobert.distributed.annotation import run_annotation

    shards, out = shutil.copytree(first_run["shards"], tmp_path / "shards"), shutil.copytree(first_run["out"], tmp_path / "out")
    write_shard(str(shards / "part-1.parquet"), corpus_articles([s.words for s in ncbi.test[400:]], "PMC9", 2))
    summary = run_annotation(job_config(str(shards), str(out), tiny_bundle, run_date="2026-11-25"), log=lambda line: None)
    assert (summary["shards_committed"], summary["shards_up_to_date"], summary["documents_in"]) == (1, 3, 2)
    rows = read_rows(str(out), "entities")
    assert {r["pmcid"][:4] for r in rows} == {"PMC0", "PMC9"}
    assert {r["run_date"] for r in rows if r["pmcid"].startswith("PMC9")} == {"2026-11-25"}
    before = [r for r in read_rows(first_run["out"], "entities") if r["pmcid"].startswith("PMC0")]
    assert same_rows([r for r in rows if r["pmcid"].startswith("PMC0")], before)


def test_a_new_model_retags_every_shard(first_run, tiny_bundle, tmp_path):
    from adabiobert.distributed.annotation import run_annotation

    model = shutil.copytree(tiny_bundle, tmp_path / "renamed" / "model")
    manifest = json.loads((model / "adabiobert.json").read_text())
    manifest["metadata"]["name"] = "tiny-v2"  # same weights, another bundle: another model id
    (model / "adabiobert.json").write_text(json.dumps(manifest))
    out = shutil.copytree(first_run["out"], tmp_path / "out")
    summary = run_annotation(job_config(first_run["shards"], str(out), model), log=lambda line: None)
    assert summary["model_id"].startswith("tiny-v2@") and summary["shards_committed"] == 4
    rows = read_rows(str(out), "entities")
    assert {r["model_id"] for r in rows} == {summary["model_id"]}
    old = read_rows(first_run["out"], "entities")
    assert same_rows([{**r, "model_id": ""} for r in rows], [{**r, "model_id": ""} for r in old])
    assert len(read_rows(str(out), "rejections")) == len(read_rows(first_run["out"], "rejections"))


def test_a_run_killed_after_placing_a_shard_resumes_to_the_clean_tables(first_run, tiny_bundle, tmp_path, capsys):
    import ray

    from jobs.annotate import main

    shards, out = shutil.copytree(first_run["shards"], tmp_path / "shards"), tmp_path / "out"
    argv = ["--shards", str(shards), "--model", str(tiny_bundle), "--output", str(out), "--run-date", RUN_DATE,
            "--num-actors", "1", "--cpu-threads", "1", "--documents-per-call", "4", "--no-progress"]
    # Shards 1 and 2 (no column, unreadable) commit from the driver; the 3rd is the first tagged one.
    killed = run_faulty_driver(["--crash-at", "placed:3"], argv, ray.get_runtime_context().gcs_address)
    assert killed.returncode == CRASH_STATUS, killed.stderr[-3000:]
    assert len(storage.list_files(str(out / "_manifest" / "commits"))) == 2
    assert read_rows(str(out), "entities")  # the killed shard's rows were visible, not yet committed

    assert main(argv) == 0
    assert "2 shards tagged, 2 up to date" in capsys.readouterr().out
    assert same_rows(read_rows(str(out), "entities"), read_rows(first_run["out"], "entities"))
    assert same_rows(read_rows(str(out), "rejections"), read_rows(first_run["out"], "rejections"))
    assert len(storage.list_files(str(out / "_manifest" / "commits"))) == 4


def test_a_shard_whose_name_ends_in_rejects_is_tagged_and_the_rejects_table_is_not(tiny_bundle, tmp_path):
    from adabiobert.distributed.annotation import run_annotation

    shard = write_shard(str(tmp_path / "shards" / "old-rejects.parquet"), bad_articles("B")[-1:])  # its pmcid is null
    write_ingest_rejects(str(tmp_path / "shards" / REJECTS_FILE))
    summary = run_annotation(job_config(str(tmp_path / "shards"), str(tmp_path / "out"), tiny_bundle), log=lambda line: None)
    assert (summary["shards_listed"], summary["shards_committed"]) == (1, 1)
    [row] = read_rows(str(tmp_path / "out"), "rejections", uris=True)  # committed from the driver: no Ray needed
    assert (row["shard"], row["reason"]) == (shard, "null_pmcid")


# ---- subwords from the split stage ------------------------------------------------------------
def test_the_jobs_split_stage_encodes_every_sentence_as_the_tagger_would(tmp_path, ncbi, tiny_bundle):
    import pyarrow.compute as pc

    from adabiobert.distributed.annotation import _read_and_split
    from adabiobert.job_configs import AnnotateConfig

    rows = corpus_articles([s.words for s in ncbi.test], "PMC", 2) + [long_sentence_article([s.words for s in ncbi.test], "PMCL")]
    uri = write_shard(str(tmp_path / "part-0.parquet"), rows)
    tagger = Tagger.from_pretrained(tiny_bundle, device="cpu")
    split = _read_and_split(uri, AnnotateConfig(), 4, str(tiny_bundle), tagger.model_id)  # the Ray task's function
    sentences = pc.list_flatten(split.column("sentences").combine_chunks())
    texts, starts, ends = (sentences.field(n).to_pylist() for n in ("text", "word_starts", "word_ends"))
    encoded = tagger.encode_words([[t[a:b] for a, b in zip(ss, ee)] for t, ss, ee in zip(texts, starts, ends)])
    assert sentences.field("subword_windows").to_pylist() == [[list(w) for w in e.encoded.windows] for e in encoded]
    assert sentences.field("word_position").to_pylist() == [list(e.encoded.word_position) for e in encoded]
    assert max(len(e.encoded.windows) for e in encoded) >= 3


def test_the_split_stage_reads_a_bundle_on_s3_without_its_weights(s3_bucket, tiny_bundle, monkeypatch):
    from adabiobert.distributed import annotation

    model = f"s3://{s3_bucket}/bundles/model"
    storage.upload_dir(tiny_bundle, model)
    read = []
    real_download = storage._download
    monkeypatch.setattr(storage, "_download", lambda uri, target: read.append(uri) or real_download(uri, target))
    encoder = annotation._split_encoder.__wrapped__(model, "tiny@test")
    assert read and not [uri for uri in read if uri.endswith("model.safetensors")]
    words = "Germline mutations of the APC gene cause familial adenomatous polyposis .".split()
    assert encoder.encode(words) == Tagger.from_pretrained(tiny_bundle, device="cpu").encoder.encode(words)


def test_the_job_tags_split_stage_subwords_as_tag_words_does(ray_data, ncbi, tiny_bundle, tmp_path):
    from adabiobert.distributed.annotation import run_annotation

    sentences = [s.words for s in ncbi.test]
    rows = corpus_articles(sentences[700:], "PMC7", 3) + [long_sentence_article(sentences[800:], "PMC8long")]
    write_shard(str(tmp_path / "shards" / "part-0.parquet"), rows)
    summary = run_annotation(job_config(str(tmp_path / "shards"), str(tmp_path / "out"), tiny_bundle),
                             log=lambda line: None)
    assert summary["documents_tagged"] == len(rows)
    tagger = Tagger.from_pretrained(tiny_bundle, device="cpu")
    expected = sorted((r["pmcid"], *e) for r in rows for e in expected_mentions(tagger, r))
    got = sorted((r["pmcid"], r["section_index"], r["sentence_index"], r["start_offset"], r["end_offset"], r["mention"],
                  r["label"], r["confidence"]) for r in read_rows(str(tmp_path / "out"), "entities"))
    assert [g[:-1] for g in got] == [e[:-1] for e in expected] and any(g[0] == "PMC8long" for g in got)
    assert [g[-1] for g in got] == pytest.approx([e[-1] for e in expected], abs=1e-4)


def test_asking_for_a_gpu_without_one_fails_before_anything_is_committed(ray_data, shard_rows, tiny_bundle, tmp_path):
    from adabiobert.distributed.annotation import run_annotation
    from adabiobert.errors import ConfigError

    shards = write_shards(str(tmp_path / "shards"), shard_rows)
    with pytest.raises(ConfigError, match="no GPU"):
        run_annotation(job_config(shards, str(tmp_path / "out"), tiny_bundle, use_gpu=True), log=lambda line: None)
    assert storage.list_files(str(tmp_path / "out" / "_manifest" / "commits")) == []


def run_faulty_driver(faults: list[str], argv: list[str], ray_address: str) -> subprocess.CompletedProcess:
    """``jobs/annotate.py`` in a driver process of its own, on the suite's Ray, with the faults of
    ``tests/fault_hooks.py`` (a process of its own: the faults kill it, or its Ray job's workers)."""
    env = {**os.environ, "RAY_ADDRESS": ray_address}
    return subprocess.run([sys.executable, str(REPO / "tests" / "fault_hooks.py"), *faults, "--", *argv], env=env,
                          cwd=REPO, capture_output=True, text=True, timeout=300)


# ---- quarantine -------------------------------------------------------------------------------
def run_job(argv: list[str], run_id: str, output: Path, faults: list[str] = ()) -> dict:
    """``jobs/annotate.py``'s main (in this process; with ``faults``, in a driver of its own): its
    exit status, stderr and run summary."""
    from jobs.annotate import main

    if faults:
        import ray

        done = run_faulty_driver(list(faults), [*argv, "--run-id", run_id], ray.get_runtime_context().gcs_address)
        status, stderr = done.returncode, done.stderr
    else:
        with contextlib.redirect_stderr(io.StringIO()) as captured:
            status = main([*argv, "--run-id", run_id])
        stderr = captured.getvalue()
    summary_file = output / "runs" / f"{run_id}.json"
    assert summary_file.is_file(), f"run {run_id} wrote no summary (exit status {status}):\n{stderr[-3000:]}"
    summary = json.loads(summary_file.read_text())
    return {"status": status, "stderr": stderr, "summary": summary,
            "entities": read_rows(str(output), "entities"), "rejections": read_rows(str(output), "rejections")}


@pytest.fixture(scope="module")
def quarantine_runs(first_run, ncbi, tiny_bundle, tmp_path_factory):
    """Four runs over the first run's shards plus part-4 (data pages damaged, footer intact) and
    part-5 (healthy, but the task reading it kills its worker in the first run only)."""
    root = tmp_path_factory.mktemp("quarantine")
    shards, out = shutil.copytree(first_run["shards"], root / "shards"), root / "out"
    sentences = [s.words for s in ncbi.test]
    damaged = write_shard(str(shards / "part-4.parquet"), corpus_articles(sentences[500:], "PMC4", 3), compression="zstd")
    damage_data_pages(damaged)
    write_shard(str(shards / "part-5.parquet"), corpus_articles(sentences[600:], "PMC5", 2))
    argv = ["--shards", str(shards), "--model", str(tiny_bundle), "--output", str(out), "--run-date", RUN_DATE,
            "--num-actors", "1", "--cpu-threads", "1", "--documents-per-call", "4", "--no-progress"]
    runs = [run_job(argv, "q1", out, faults=["--die-reading", "part-5.parquet"])]
    runs += [run_job(argv, "q2", out), run_job(argv, "q3", out)]
    write_shard(damaged, corpus_articles(sentences[500:], "PMC4", 3), compression="zstd")  # repaired: new content
    runs.append(run_job(argv, "q4", out))
    return {"damaged": damaged, "runs": runs}


def quarantined_rows(run: dict) -> dict[str, str]:
    return {r["shard"]: r["detail"] for r in run["rejections"] if r["reason"] == "quarantined"}


def shards_add_up(summary: dict) -> bool:
    """Every listed shard is accounted for once, as docs/entity-tables.md says."""
    parts = ("up_to_date", "committed", "committed_elsewhere", "quarantined", "held")
    return summary["shards_listed"] == sum(summary[f"shards_{part}"] for part in parts)


def test_a_damaged_shard_is_quarantined_and_every_healthy_shard_committed(quarantine_runs, first_run):
    run = quarantine_runs["runs"][0]
    assert run["status"] == 3
    assert run["stderr"].strip().splitlines()[-1].startswith("completed with quarantined shards: 2 quarantined")
    summary = run["summary"]
    assert (summary["shards_committed"], summary["shards_quarantined"], summary["shards_held"]) == (4, 2, 0)
    assert shards_add_up(summary)
    assert summary["rejections_by_reason"]["quarantined"] == 2
    assert same_rows(run["entities"], read_rows(first_run["out"], "entities"))  # the healthy shards' rows, all of them
    healthy = [r for r in run["rejections"] if r["reason"] != "quarantined"]
    assert same_rows(healthy, read_rows(first_run["out"], "rejections"))
    details = quarantined_rows(run)
    assert details["part-4.parquet"].startswith(f"{quarantine_runs['damaged']}: OSError: ZSTD decompression failed")
    assert "the task reading it died 3 times" in details["part-5.parquet"]  # a dead worker, after 2 retries
    assert all(d.endswith("(attempt 1 of 2)") for d in details.values())
    assert {(q["shard"], q["attempt"], q["held"]) for q in summary["quarantined"]} == {
        ("part-4.parquet", 1, False), ("part-5.parquet", 1, False)}


def test_the_next_run_retries_a_quarantined_shard(quarantine_runs):
    run = quarantine_runs["runs"][1]
    summary = run["summary"]
    assert run["status"] == 3
    assert (summary["shards_up_to_date"], summary["shards_committed"], summary["shards_quarantined"]) == (4, 1, 1)
    assert quarantined_rows(run)["part-4.parquet"].endswith("(attempt 2 of 2)")
    assert "part-5.parquet" not in quarantined_rows(run)  # read this time: its rows replace the quarantine
    assert {r["pmcid"][:4] for r in run["entities"] if r["shard"] == "part-5.parquet"} == {"PMC5"}


def test_a_shard_quarantined_twice_is_held_without_being_read(quarantine_runs):
    before, run = quarantine_runs["runs"][1], quarantine_runs["runs"][2]
    summary = run["summary"]
    assert run["status"] == 3
    assert run["stderr"].strip().splitlines()[-1].startswith("completed with quarantined shards: 0 quarantined by this run, 1 held")
    assert (summary["shards_up_to_date"], summary["shards_held"], summary["shards_quarantined"]) == (5, 1, 0)
    assert shards_add_up(summary)
    assert summary["documents_in"] == 0 and "ray_start" not in summary["seconds"]  # nothing was read
    assert [(q["shard"], q["attempt"], q["held"]) for q in summary["quarantined"]] == [("part-4.parquet", 2, True)]
    assert same_rows(run["entities"], before["entities"]) and same_rows(run["rejections"], before["rejections"])


def test_a_held_shard_whose_content_changed_is_tagged(quarantine_runs):
    run = quarantine_runs["runs"][3]
    summary = run["summary"]
    assert run["status"] == 0
    assert (summary["shards_committed"], summary["shards_quarantined"], summary["shards_held"]) == (1, 0, 0)
    assert quarantined_rows(run) == {}
    assert {r["pmcid"][:4] for r in run["entities"] if r["shard"] == "part-4.parquet"} == {"PMC4"}


# ---- S3 ---------------------------------------------------------------------------------------
def test_the_job_runs_on_s3_with_a_bundle_on_s3(ray_data, s3_bucket, shard_rows, tiny_bundle, first_run):
    from adabiobert.distributed.annotation import run_annotation

    shards = write_shards(f"s3://{s3_bucket}/shards", shard_rows)
    storage.upload_dir(tiny_bundle, f"s3://{s3_bucket}/bundles/model")
    out = f"s3://{s3_bucket}/entities-out"
    config = job_config(shards, out, f"s3://{s3_bucket}/bundles/model")
    summary = run_annotation(config, log=lambda line: None)
    local = first_run["summary"]
    assert summary["model_id"] == local["model_id"]  # a downloaded bundle keeps its id
    for key in ("documents_in", "documents_tagged", "documents_rejected", "mentions", "rejections_by_reason"):
        assert summary[key] == local[key]
    assert same_rows(read_rows(out, "entities"), read_rows(first_run["out"], "entities"))
    assert len(storage.list_files(storage.join(out, "_manifest", "commits"))) == 4
    assert storage.exists(storage.join(out, "runs", f"{summary['run_id']}.json"))
    again = run_annotation(config, log=lambda line: None)
    assert (again["shards_up_to_date"], again["shards_committed"]) == (4, 0)


def test_a_damaged_shard_on_s3_is_quarantined_and_the_healthy_one_committed(ray_data, s3_bucket, shard_rows,
                                                                              tiny_bundle, first_run, ncbi):
    from adabiobert.distributed.annotation import run_annotation

    shards = write_shards(f"s3://{s3_bucket}/shards", {"part-1.parquet": shard_rows["part-1.parquet"]})
    damaged = write_shard(f"{shards}/part-4.parquet", corpus_articles([s.words for s in ncbi.test[500:]], "PMC4", 3),
                          compression="zstd")
    damage_data_pages(damaged)
    out = f"s3://{s3_bucket}/entities-out"
    summary = run_annotation(job_config(shards, out, tiny_bundle), log=lambda line: None)
    assert (summary["shards_committed"], summary["shards_quarantined"]) == (1, 1)
    clean = [r for r in read_rows(first_run["out"], "entities") if r["shard"] == "part-1.parquet"]
    assert same_rows(read_rows(out, "entities"), clean)
    [row] = read_rows(out, "rejections", uris=True)
    assert row["reason"] == "quarantined" and row["shard"] == damaged
    assert row["detail"].startswith(f"{damaged}: OSError: ZSTD decompression failed")


# ---- entity linking ------------------------------------------------------------------------------
def test_the_actors_link_as_a_relink_does_and_a_new_index_relinks_without_tagging(first_run, shard_rows, tiny_bundle,
                                                                                   tmp_path):
    """A run with an index links in the tagger actors (from the sentences); the same index given
    to a run over the unlinked output re-links on the driver (from the shards' text): the same
    rows, each what the linker gives on its article's text. A second index re-links, tags nothing."""
    from adabiobert.annotation.concepts import link_article
    from adabiobert.distributed.annotation import run_annotation
    from adabiobert.job_configs import AnnotateConfig
    from adabiobert.linking.artifact import inspect_index
    from adabiobert.linking.index import load_index
    from adabiobert.linking.linker import Linker
    from tests.linking_data import small_index
    from tests.test_linking_tables import THALASSEMIA

    index, new_index = small_index(tmp_path / "release-1"), small_index(tmp_path / "release-2", extra=[THALASSEMIA])
    linked = run_annotation(job_config(first_run["shards"], str(tmp_path / "linked"), tiny_bundle,
                                       annotate=AnnotateConfig(linking_index=index)), log=lambda line: None)
    artifact = inspect_index(index)
    assert linked["linking"]["index_hash"] == artifact.index_hash and linked["shards_committed"] == 4
    assert linked["seconds"]["link_busy"] > 0

    relinked_out = shutil.copytree(first_run["out"], tmp_path / "relinked")  # tagged by the same model, no links
    relinked = run_annotation(job_config(first_run["shards"], str(relinked_out), tiny_bundle,
                                         annotate=AnnotateConfig(linking_index=index)), log=lambda line: None)
    assert (relinked["shards_relinked"], relinked["shards_committed"], relinked["documents_in"]) == (4, 0, 0)
    rows = read_rows(str(tmp_path / "linked"), "entities")
    assert same_rows(rows, read_rows(str(relinked_out), "entities"))
    assert linked["mentions_linked"] == relinked["mentions_linked"] == sum(r["concept_id"] is not None for r in rows)

    texts, linker = section_texts(shard_rows), Linker(load_index(index))
    by_article = {}
    for row in rows:
        by_article.setdefault(row["pmcid"], []).append(row)
    for pmcid, found in by_article.items():
        expected = [dict(r) for r in found]
        link_article(linker, {i: t for i, t in enumerate(texts[pmcid]) if t}, expected)
        assert [(r["concept_id"], r["link_score"]) for r in found] == [
            (e["concept_id"], pytest.approx(e["link_score"])) for e in expected]
    assert {r["linker_id"] for r in rows} == {artifact.linker_id(0.7)} and all(r["link_score"] is not None for r in rows)

    again = run_annotation(job_config(first_run["shards"], str(relinked_out), tiny_bundle,
                                      annotate=AnnotateConfig(linking_index=new_index)), log=lambda line: None)
    assert (again["shards_relinked"], again["shards_committed"], again["documents_in"]) == (4, 0, 0)
    assert again["linking"]["index_hash"] == inspect_index(new_index).index_hash
    unchanged = run_annotation(job_config(first_run["shards"], str(relinked_out), tiny_bundle,
                                          annotate=AnnotateConfig(linking_index=new_index)), log=lambda line: None)
    assert (unchanged["shards_up_to_date"], unchanged["shards_relinked"]) == (4, 0)


# ---- the documented queries -------------------------------------------------------------------
def test_the_duckdb_queries_in_the_docs_run_on_real_output(first_run):
    import duckdb

    queries = doc_blocks("Queries (DuckDB)", "sql")
    assert len(queries) >= 6
    con = duckdb.connect()
    con.execute(f"SET file_search_path = '{first_run['out']}'")
    results = [con.execute(query).fetchall() for query in queries]
    assert all(results), "every documented query returns rows on real output"
    mentions = first_run["summary"]["mentions"]
    assert results[0] == [(mentions,)] or any(row == (mentions,) for result in results for row in result)
    (joined,) = [result for query, result in zip(queries, results) if "getvariable('shards')" in query]
    assert len(joined) == mentions and all(mention == text for *_, mention, text in joined)
