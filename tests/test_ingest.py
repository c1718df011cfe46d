"""ingest: PMC files to deterministic shards, rejects and stats, locally and on loopback S3."""

from __future__ import annotations

import importlib.util
import io
import json
import shutil
import tarfile
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from adabiobert import storage
from adabiobert.ingest import IngestConfig, ingest
from adabiobert.pmc_schema import read_shard

REPO_ROOT = Path(__file__).resolve().parents[1]


def _job(name: str):
    spec = importlib.util.spec_from_file_location(name, REPO_ROOT / "jobs" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _rejects(output: str) -> list[dict]:
    filesystem, path = storage.filesystem_for(storage.join(output, "rejects.parquet"))
    return pq.read_table(path, filesystem=filesystem).to_pylist()


def _config(inputs, output, per_shard=3):
    return IngestConfig(tuple(str(i) for i in inputs), str(output), per_shard, show_progress=False)


def test_samples_to_local_shards_rejects_and_stats(shared_root, tmp_path):
    out = tmp_path / "shards"
    stats = ingest(_config([shared_root / "pmc-sample"], out))
    assert stats.shards == ("part-00000.parquet", "part-00001.parquet", "part-00002.parquet")
    assert (stats.articles, stats.files, stats.rejected) == (8, 9, 1)
    tables = [read_shard(str(out / name)) for name in stats.shards]
    assert [t.num_rows for t in tables] == [3, 3, 2]
    sources = [s for t in tables for s in t.column("source").to_pylist()]
    assert sources == sorted(sources)  # input order, deterministic
    assert {"PMC1790863", "PMC3585041"} <= {p for t in tables for p in t.column("pmcid").to_pylist()}
    [reject] = _rejects(str(out))
    assert reject["source"].endswith("pubmed-29768149.xml") and "not a JATS article" in reject["reason"]
    written = json.loads((out / "ingest_stats.json").read_text())
    assert written["articles"] == 8 and written["config"]["articles_per_shard"] == 3


def test_a_malformed_file_goes_to_rejects_and_the_run_continues(shared_root, tmp_path):
    inputs = tmp_path / "in"
    inputs.mkdir()
    (inputs / "a-broken.nxml").write_bytes(b"<article>\n<front>\n<oops></front>")
    shutil.copy(shared_root / "pmc-sample" / "pone.0000217.nxml", inputs / "b-good.nxml")
    stats = ingest(_config([inputs, tmp_path / "missing.nxml"], tmp_path / "out"))
    assert stats.articles == 1
    rejects = {Path(r["source"]).name: r["reason"] for r in _rejects(str(tmp_path / "out"))}
    assert rejects["a-broken.nxml"].startswith("line 3: XML syntax error")
    assert "no such file" in rejects["missing.nxml"]


def test_duplicate_pmcids_are_rejected_after_the_first(shared_root, tmp_path):
    sample = shared_root / "pmc-sample" / "pone.0000217.nxml"
    stats = ingest(_config([sample, sample], tmp_path / "out"))
    assert stats.articles == 1
    assert "duplicate pmcid PMC1790863" in _rejects(str(tmp_path / "out"))[0]["reason"]


def test_tar_gz_packages_are_read_member_by_member(shared_root, tmp_path):
    package = tmp_path / "oa_package.tar.gz"
    with tarfile.open(package, "w:gz") as archive:
        archive.add(shared_root / "pmc-sample" / "pone.0000217.nxml", "PMC1790863/pone.0000217.nxml")
        archive.add(shared_root / "pmc-sample" / "mds526.nxml", "PMC3574550/mds526.nxml")
        broken = b"<article><front>"
        info = tarfile.TarInfo("PMC0/broken.nxml")
        info.size = len(broken)
        archive.addfile(info, io.BytesIO(broken))
    damaged = tmp_path / "damaged.tar.gz"
    damaged.write_bytes(package.read_bytes()[:200])
    stats = ingest(_config([package, damaged], tmp_path / "out", per_shard=1000))
    assert stats.articles == 2
    table = read_shard(str(tmp_path / "out" / "part-00000.parquet"))
    assert table.column("source").to_pylist()[0] == f"{package}::PMC1790863/pone.0000217.nxml"
    reasons = {r["source"]: r["reason"] for r in _rejects(str(tmp_path / "out"))}
    assert f"{package}::PMC0/broken.nxml" in reasons
    assert str(damaged) in reasons


def test_an_output_that_already_holds_shards_is_refused(shared_root, tmp_path):
    ingest(_config([shared_root / "pmc-sample" / "mds526.nxml"], tmp_path / "out"))
    with pytest.raises(FileExistsError, match="already holds Parquet files"):
        ingest(_config([shared_root / "pmc-sample" / "mds526.nxml"], tmp_path / "out"))


def test_local_files_to_s3_shards(shared_root, s3_bucket):
    out = f"s3://{s3_bucket}/shards"
    stats = ingest(_config([shared_root / "pmc-sample"], out, per_shard=5))
    assert stats.shards == ("part-00000.parquet", "part-00001.parquet")
    assert [f.uri.rsplit("/", 1)[1] for f in storage.list_files(out)] == [
        "ingest_stats.json", "part-00000.parquet", "part-00001.parquet", "rejects.parquet"]
    assert read_shard(f"{out}/part-00001.parquet").num_rows == 3
    assert len(_rejects(out)) == 1


def test_s3_inputs_files_and_packages_to_s3_shards(shared_root, s3_bucket, tmp_path):
    for name in ("pone.0000217.nxml", "mds526.nxml"):
        storage.write_bytes(f"s3://{s3_bucket}/oa/{name}", (shared_root / "pmc-sample" / name).read_bytes())
    package = tmp_path / "p.tar.gz"
    with tarfile.open(package, "w:gz") as archive:
        archive.add(shared_root / "pmc-sample" / "pntd.0002065.nxml", "PMC3585041/pntd.0002065.nxml")
    storage.write_bytes(f"s3://{s3_bucket}/oa/packages/p.tar.gz", package.read_bytes())
    stats = ingest(_config([f"s3://{s3_bucket}/oa"], f"s3://{s3_bucket}/out", per_shard=10))
    assert (stats.files, stats.articles, stats.rejected) == (3, 3, 0)
    table = read_shard(f"s3://{s3_bucket}/out/part-00000.parquet")
    assert f"s3://{s3_bucket}/oa/packages/p.tar.gz::PMC3585041/pntd.0002065.nxml" in table.column("source").to_pylist()


def test_the_job_entry_point(shared_root, tmp_path, capsys):
    code = _job("ingest_pmc").main([str(shared_root / "pmc-sample"), "--output", str(tmp_path / "out"),
                                    "--articles-per-shard", "4", "--no-progress"])
    assert code == 0
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [
        "ingest_stats.json", "part-00000.parquet", "part-00001.parquet", "rejects.parquet"]
    assert "8 articles in 2 shards, 1 rejected" in capsys.readouterr().out
