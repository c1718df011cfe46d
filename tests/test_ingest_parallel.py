"""Parallel ingest: units and Ray tasks write, byte for byte, what one process writes."""

from __future__ import annotations

import importlib.util
import json
from dataclasses import asdict
from pathlib import Path

import pytest

from adabiobert import storage
from adabiobert.job_configs import IngestConfig
from adabiobert.pmc.ingest import find_run_inputs, ingest, open_batch, start_batch, write_run_summary
from adabiobert.pmc.ingest_units import STAGING, Unit, ingest_unit, plan_shards, plan_units, write_planned_shard
from adabiobert.pmc.shards import read_shard
from tests.fault_hooks import DieOnUnit
from tests.test_ingest import _bad_bulk, _bulk_package, _rejects, _row

REPO_ROOT = Path(__file__).resolve().parents[1]
TIMED = ("seconds", "workers")
"""The stats fields allowed to differ between a run in one process and one on Ray."""


@pytest.fixture(scope="session", autouse=True)
def _s3_env_before_ray(s3_server):
    """Start the loopback S3 server before the suite's Ray: Ray workers take their environment
    (the endpoint and the dummy credentials) from the process that starts Ray."""
    yield


def _inputs(root: Path, shared: Path) -> tuple[str, ...]:
    """Bulk packages with every kind of bad input, a PMC id in two packages and twice in one, the
    sample folder (loose files, one not JATS), a sample named again, and a missing file."""
    bulk = root / "oa_bulk"
    _bad_bulk(bulk, shared)
    _bulk_package(bulk, "oa_zz_xml.incr.2024-06-21", ["PMC1790863", "PMC3166277"],
                  [_row("PMC1790863"), _row("PMC3166277", "2025-01-01 00:00:00")], shared=shared)
    return str(bulk), str(shared), str(shared / "pone.0000217.nxml"), str(root / "missing.nxml")


def _files(output: Path) -> dict[str, bytes]:
    return {p.relative_to(output).as_posix(): p.read_bytes() for p in sorted(output.rglob("*")) if p.is_file()}


def _stats(output: Path) -> dict:
    stats = json.loads((output / "ingest_stats.json").read_text())
    stats["config"].pop("output")
    return {k: v for k, v in stats.items() if k not in TIMED}


def _assert_same_run(left: Path, right: Path) -> None:
    """Same file names, same shard and reject bytes, same stats but for the timing."""
    first, second = _files(left), _files(right)
    assert list(first) == list(second)
    for name in first:
        if name.endswith(".parquet"):
            assert first[name] == second[name], name
    assert _stats(left) == _stats(right)


def test_units_are_packages_alone_and_runs_of_loose_files():
    files = ["a.nxml", "b.nxml", "c.nxml", "p.tar.gz", "d.nxml", "q.tgz", "r.tar.gz", "e.xml"]
    assert plan_units(files, files_per_unit=2) == [
        Unit(0, ("a.nxml", "b.nxml")), Unit(1, ("c.nxml",)), Unit(2, ("p.tar.gz",)), Unit(3, ("d.nxml",)),
        Unit(4, ("q.tgz",)), Unit(5, ("r.tar.gz",)), Unit(6, ("e.xml",))]


@pytest.mark.parametrize("per_shard", [1, 2, 1000])
def test_units_run_in_any_order_write_what_one_process_writes(shared_root, tmp_path, per_shard):
    inputs = _inputs(tmp_path, shared_root / "pmc-sample")
    ingest(IngestConfig(inputs, str(tmp_path / "one"), per_shard, show_progress=False))
    config = IngestConfig(inputs, str(tmp_path / "units"), per_shard, show_progress=False)
    files, missing = find_run_inputs(config)
    results = [ingest_unit(unit, config.output, per_shard) for unit in reversed(plan_units(files, 3))]
    plan = plan_shards(results, missing, config.output, per_shard)
    articles = sum(write_planned_shard(shard, config.output) for shard in plan.shards)
    storage.delete_tree(storage.join(config.output, STAGING))
    write_run_summary(config, len(files), articles, list(plan.rejects), [s.name for s in plan.shards], plan.counts, 0.0)
    _assert_same_run(tmp_path / "one", tmp_path / "units")


def test_an_appending_run_in_units_writes_what_one_process_writes(shared_root, tmp_path):
    """The bulk packages make a root; all inputs appended to it (the packages again, so their
    articles are already ingested) give the same batch in units as in one process."""
    inputs = _inputs(tmp_path, shared_root / "pmc-sample")
    for name in ("one", "units"):
        ingest(IngestConfig(inputs[:1], str(tmp_path / name), 2, show_progress=False))
    ingest(IngestConfig(inputs, str(tmp_path / "one"), 2, show_progress=False, append=True, batch="b1"))
    config, prior = open_batch(IngestConfig(inputs, str(tmp_path / "units"), 2, show_progress=False, append=True,
                                            batch="b1"))
    assert prior and config.output == str(tmp_path / "units" / "batch=b1")
    files, missing = find_run_inputs(config)
    assert not start_batch(config)  # a new batch: marked started
    results = [ingest_unit(unit, config.output, 2) for unit in reversed(plan_units(files, 3))]
    plan = plan_shards(results, missing, config.output, 2, prior)
    articles = sum(write_planned_shard(shard, config.output) for shard in plan.shards)
    storage.delete_tree(storage.join(config.output, STAGING))
    write_run_summary(config, len(files), articles, list(plan.rejects), [s.name for s in plan.shards], plan.counts, 0.0)
    _assert_same_run(tmp_path / "one" / "batch=b1", tmp_path / "units" / "batch=b1")
    stats = _stats(tmp_path / "units" / "batch=b1")
    assert stats["already_ingested"] >= len(prior)  # each input of a root article, loose copies too


# --- on Ray -----------------------------------------------------------------------------------


@pytest.mark.ray
def test_ray_writes_what_one_process_writes(ray_data, shared_root, tmp_path):
    from adabiobert.distributed.ingest import ingest_parallel

    inputs = _inputs(tmp_path, shared_root / "pmc-sample")
    one = ingest(IngestConfig(inputs, str(tmp_path / "one"), 2, show_progress=False))
    stats = ingest_parallel(IngestConfig(inputs, str(tmp_path / "ray"), 2, show_progress=False), workers=2,
                            files_per_unit=3)
    _assert_same_run(tmp_path / "one", tmp_path / "ray")
    assert stats.workers == 2 and one.workers == 1
    assert {k: v for k, v in asdict(stats).items() if k not in (*TIMED, "config")} == {
        k: v for k, v in asdict(one).items() if k not in (*TIMED, "config")}
    assert not (tmp_path / "ray" / STAGING).exists()


@pytest.mark.ray
def test_ray_appends_what_one_process_appends(ray_data, shared_root, tmp_path):
    from adabiobert.distributed.ingest import ingest_parallel

    inputs = _inputs(tmp_path, shared_root / "pmc-sample")
    for name in ("one", "ray"):
        ingest(IngestConfig(inputs[:1], str(tmp_path / name), 2, show_progress=False))
    ingest(IngestConfig(inputs, str(tmp_path / "one"), 2, show_progress=False, append=True, batch="b1"))
    stats = ingest_parallel(IngestConfig(inputs, str(tmp_path / "ray"), 2, show_progress=False, append=True,
                                         batch="b1"), workers=2, files_per_unit=3)
    _assert_same_run(tmp_path / "one" / "batch=b1", tmp_path / "ray" / "batch=b1")
    assert stats.workers == 2 and stats.already_ingested > 0


@pytest.mark.ray
def test_ray_runs_are_the_same_whatever_the_workers_and_units(ray_data, shared_root, tmp_path):
    from adabiobert.distributed.ingest import ingest_parallel

    inputs = _inputs(tmp_path, shared_root / "pmc-sample")
    ingest_parallel(IngestConfig(inputs, str(tmp_path / "a"), 3, show_progress=False), workers=2, files_per_unit=2)
    ingest_parallel(IngestConfig(inputs, str(tmp_path / "b"), 3, show_progress=False), workers=3, files_per_unit=5)
    _assert_same_run(tmp_path / "a", tmp_path / "b")


@pytest.mark.ray
def test_a_damaged_member_and_a_damaged_package_are_rejects_on_ray_too(ray_data, shared_root, tmp_path):
    from adabiobert.distributed.ingest import ingest_parallel

    bulk = tmp_path / "oa_bulk"
    _bad_bulk(bulk, shared_root / "pmc-sample")
    stats = ingest_parallel(IngestConfig((str(bulk),), str(tmp_path / "out"), 2, show_progress=False), workers=2)
    reasons = {r["source"].removeprefix(f"{bulk}/"): r["reason"] for r in _rejects(str(tmp_path / "out"))}
    baseline = "oa_comm_xml.PMC003xxxxxx.baseline.2024-06-18"
    assert reasons[f"{baseline}.tar.gz::PMC003xxxxxx/PMC3460867.xml"].startswith("line 1: XML syntax error")
    assert "oa_other_xml.incr.2024-06-20.tar.gz" in reasons  # truncated part-way
    assert (stats.files, stats.file_lists, stats.without_file_list, stats.unlisted_members) == (3, 2, 1, 2)


@pytest.mark.ray
def test_s3_inputs_to_s3_shards_on_ray(ray_data, shared_root, s3_bucket, tmp_path):
    from adabiobert.distributed.ingest import ingest_parallel

    shared = shared_root / "pmc-sample"
    name = "oa_comm_xml.PMC001xxxxxx.baseline.2024-06-18"
    _bulk_package(tmp_path / "b", name, ["PMC1790863", "PMC2329613"], [_row("PMC1790863"), _row("PMC2329613")],
                  shared=shared)
    for suffix in (".tar.gz", ".filelist.csv"):
        storage.write_bytes(f"s3://{s3_bucket}/oa/{name}{suffix}", (tmp_path / "b" / f"{name}{suffix}").read_bytes())
    storage.write_bytes(f"s3://{s3_bucket}/oa/loose/mds526.nxml", (shared / "mds526.nxml").read_bytes())
    inputs = (f"s3://{s3_bucket}/oa",)
    one = ingest(IngestConfig(inputs, f"s3://{s3_bucket}/one", 2, show_progress=False))
    on_ray = ingest_parallel(IngestConfig(inputs, f"s3://{s3_bucket}/ray", 2, show_progress=False), workers=2)
    assert (on_ray.files, on_ray.articles, on_ray.rejected, on_ray.shards) == (2, 3, 0, one.shards)
    for shard in (*one.shards, "rejects.parquet"):
        assert storage.read_bytes(f"s3://{s3_bucket}/ray/{shard}") == storage.read_bytes(
            f"s3://{s3_bucket}/one/{shard}")
    assert [f.uri.rsplit("/", 1)[1] for f in storage.list_files(f"s3://{s3_bucket}/ray")] == [
        "ingest_stats.json", "part-00000.parquet", "part-00001.parquet", "rejects.parquet"]


def test_one_unit_stays_in_this_process(shared_root, tmp_path):
    from adabiobert.distributed.ingest import ingest_parallel

    stats = ingest_parallel(IngestConfig((str(shared_root / "pmc-sample"),), str(tmp_path / "out"), 4,
                                         show_progress=False), workers=2)
    assert (stats.articles, stats.workers) == (8, 1)


def _job():
    spec = importlib.util.spec_from_file_location("ingest_pmc", REPO_ROOT / "jobs" / "ingest_pmc.py")
    job = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(job)
    return job


def test_the_job_refuses_fewer_than_one_worker_while_parsing(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_:
        _job().main(["x.nxml", "--output", str(tmp_path), "--workers", "0"])
    assert exit_.value.code == 2 and "--workers must be >= 1, got 0" in capsys.readouterr().err


@pytest.mark.ray
def test_the_job_runs_on_ray_with_workers(ray_data, shared_root, tmp_path, capsys):
    job = _job()
    bulk = tmp_path / "oa_bulk"
    _bad_bulk(bulk, shared_root / "pmc-sample")
    assert job.main([str(bulk), "--output", str(tmp_path / "out"), "--workers", "2", "--no-progress"]) == 0
    assert json.loads((tmp_path / "out" / "ingest_stats.json").read_text())["workers"] == 2
    assert " articles in 1 shards" in capsys.readouterr().out


@pytest.mark.ray
def test_a_unit_whose_worker_dies_is_one_reject_per_file_and_the_run_goes_on(ray_data, shared_root, tmp_path):
    from adabiobert.distributed.ingest import ingest_parallel

    bulk = tmp_path / "oa_bulk"
    _bad_bulk(bulk, shared_root / "pmc-sample")
    crashing = "oa_noncomm_xml.incr.2024-06-19.tar.gz"  # holds PMC1790863 only, no file list
    stats = ingest_parallel(IngestConfig((str(bulk),), str(tmp_path / "out"), 2, show_progress=False), workers=2,
                            unit_retries=0, unit_hook=DieOnUnit(crashing))
    reasons = {r["source"]: r["reason"] for r in _rejects(str(tmp_path / "out"))}
    assert "died 1 times" in reasons[str(bulk / crashing)]
    assert "none of its articles is in the shards" in reasons[str(bulk / crashing)]
    pmcids = {r["pmcid"] for name in stats.shards for r in read_shard(str(tmp_path / "out" / name)).to_pylist()}
    assert "PMC1790863" not in pmcids and "PMC3166277" in pmcids  # the other packages' articles are kept
