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
from adabiobert.job_configs import IngestConfig
from adabiobert.pmc.ingest import ingest
from adabiobert.pmc.shards import read_shard

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


# --- PMC's bulk layout: packages with a .filelist.csv beside each -----------------------------

HEADER = "Article File,Article Citation,AccessionID,LastUpdated (YYYY-MM-DD HH:MM:SS),PMID,License,Retracted\n"
SAMPLE_OF = {"PMC1790863": "pone.0000217.nxml", "PMC2329613": "1472-6831-8-11.nxml",
             "PMC2599765": "ehp-116-1694.nxml", "PMC2994229": "6605965a.nxml", "PMC3166277": "1471-2180-11-174.nxml",
             "PMC3460867": "pone.0046493.nxml", "PMC3574550": "mds526.nxml", "PMC3585041": "pntd.0002065.nxml"}


def _member(pmcid: str) -> str:
    """PMC's member path: ``PMC006xxxxxx/PMC6908519.xml``."""
    return f"PMC{int(pmcid[3:]) // 1_000_000:03d}xxxxxx/{pmcid}.xml"


def _row(pmcid: str, updated: str = "2024-06-18 10:11:12", retracted: str = "no", member: str | None = None) -> str:
    return f'{member or _member(pmcid)},"J. 2020; 1(1):e1",{pmcid},{updated},123,CC BY,{retracted}\n'


def _bulk_package(folder: Path, name: str, pmcids, rows=None, broken=(), shared=None) -> Path:
    """``<name>.tar.gz`` holding the sample articles under PMC member paths (``broken``: damaged
    bytes), and ``<name>.filelist.csv`` with ``rows`` (None: no file list)."""
    folder.mkdir(exist_ok=True)
    package = folder / f"{name}.tar.gz"
    with tarfile.open(package, "w:gz") as archive:
        for pmcid in pmcids:
            data = b"<article><front>" if pmcid in broken else (shared / SAMPLE_OF[pmcid]).read_bytes()
            info = tarfile.TarInfo(_member(pmcid))
            info.size, info.mtime = len(data), 1_700_000_000
            archive.addfile(info, io.BytesIO(data))
    if rows is not None:
        (folder / f"{name}.filelist.csv").write_text(HEADER + "".join(rows))
    return package


def _rows(output) -> list[dict]:
    stats = json.loads((Path(output) / "ingest_stats.json").read_text())
    return [r for name in stats["shards"] for r in read_shard(str(Path(output) / name)).to_pylist()]


def test_bulk_packages_record_each_articles_version_and_retraction(shared_root, tmp_path):
    shared, bulk = shared_root / "pmc-sample", tmp_path / "oa_bulk"
    _bulk_package(bulk, "oa_comm_xml.PMC001xxxxxx.baseline.2024-06-18", ["PMC1790863"],
                  [_row("PMC1790863", "2023-01-02 03:04:05")], shared=shared)
    _bulk_package(bulk, "oa_noncomm_xml.PMC002xxxxxx.baseline.2024-06-18", ["PMC2329613", "PMC2599765"],
                  [_row("PMC2599765", retracted="yes"), _row("PMC2329613")], shared=shared)
    _bulk_package(bulk, "oa_other_xml.incr.2024-06-19", ["PMC3166277"], [_row("PMC3166277", "2024-06-19 01:00:00")],
                  shared=shared)
    _bulk_package(bulk, "oa_comm_xml.incr.2024-06-20", ["PMC3460867"], [_row("PMC3460867", "2024-06-20 23:59:59")],
                  shared=shared)
    stats = ingest(_config([bulk], tmp_path / "out", per_shard=10))
    assert (stats.files, stats.articles, stats.rejected) == (4, 5, 0)
    assert (stats.file_lists, stats.without_file_list, stats.unlisted_members) == (4, 0, 0)
    rows = {r["pmcid"]: r for r in _rows(tmp_path / "out")}
    assert {p: (str(r["version"]), r["version_source"], r["retracted"]) for p, r in rows.items()} == {
        "PMC1790863": ("2023-01-02 03:04:05+00:00", "filelist", False),
        "PMC2329613": ("2024-06-18 10:11:12+00:00", "filelist", False),
        "PMC2599765": ("2024-06-18 10:11:12+00:00", "filelist", True),
        "PMC3166277": ("2024-06-19 01:00:00+00:00", "filelist", False),
        "PMC3460867": ("2024-06-20 23:59:59+00:00", "filelist", False),
    }
    assert rows["PMC2599765"]["source"] == f"{bulk}/oa_noncomm_xml.PMC002xxxxxx.baseline.2024-06-18.tar.gz::PMC002xxxxxx/PMC2599765.xml"
    assert str(rows["PMC1790863"]["last_updated"]) == "2007-02-14 00:00:00+00:00"  # the JATS date stays as it was
    schema = pq.read_schema(tmp_path / "out" / stats.shards[0])
    assert schema.metadata[b"adabiobert.pmc_shard_schema"] == b"3"


def _bad_bulk(bulk: Path, shared: Path) -> None:
    _bulk_package(bulk, "oa_comm_xml.PMC003xxxxxx.baseline.2024-06-18",
                  ["PMC3166277", "PMC3460867", "PMC3574550", "PMC3585041"],
                  [_row("PMC3166277"), _row("PMC3460867"),  # PMC3460867's member is damaged
                   _row("PMC3585041", "2024-13-45 25:00:00"),  # unparseable LastUpdated
                   _row("PMC3999999")],  # listed, not in the package; PMC3574550 is in it, not listed
                  broken={"PMC3460867"}, shared=shared)
    _bulk_package(bulk, "oa_noncomm_xml.incr.2024-06-19", ["PMC1790863"], None, shared=shared)  # no file list
    damaged = _bulk_package(bulk, "oa_other_xml.incr.2024-06-20", ["PMC2994229", "PMC2329613", "PMC2599765"],
                            [_row("PMC2994229"), _row("PMC2329613"), _row("PMC2599765")], shared=shared)
    damaged.write_bytes(damaged.read_bytes()[: damaged.stat().st_size * 2 // 3])


def test_bulk_bad_input_is_recorded_and_no_article_is_lost(shared_root, tmp_path):
    bulk = tmp_path / "oa_bulk"
    _bad_bulk(bulk, shared_root / "pmc-sample")
    stats = ingest(_config([bulk], tmp_path / "out", per_shard=2))
    rows = {r["pmcid"]: r for r in _rows(tmp_path / "out")}
    rejects = _rejects(str(tmp_path / "out"))
    reasons = {r["source"].removeprefix(f"{bulk}/"): r["reason"] for r in rejects}
    baseline = "oa_comm_xml.PMC003xxxxxx.baseline.2024-06-18"
    assert rows["PMC3166277"]["version_source"] == "filelist"
    assert reasons[f"{baseline}.tar.gz::PMC003xxxxxx/PMC3460867.xml"].startswith("line 1: XML syntax error")
    assert "LastUpdated '2024-13-45 25:00:00' is not YYYY-MM-DD HH:MM:SS" in reasons[f"{baseline}.filelist.csv:4"]
    assert "PMC3999999 (PMC003xxxxxx/PMC3999999.xml) not ingested: it is not in the package" in reasons[
        f"{baseline}.filelist.csv:5"]
    for unlisted in ("PMC3574550", "PMC3585041"):  # kept, versioned by their JATS date, retraction unknown
        assert (rows[unlisted]["version"], rows[unlisted]["version_source"], rows[unlisted]["retracted"]) == (
            rows[unlisted]["last_updated"], "jats", None)
    assert (rows["PMC1790863"]["version_source"], rows["PMC1790863"]["retracted"]) == ("jats", None)
    assert (stats.file_lists, stats.without_file_list, stats.unlisted_members) == (2, 1, 2)
    assert "oa_other_xml.incr.2024-06-20.tar.gz" in reasons
    # Never lost: every article in a package or a file list is in a shard or named by a reject.
    named = " ".join(f"{r['source']} {r['reason']}" for r in rejects)
    for pmcid in [*SAMPLE_OF, "PMC3999999"]:
        assert pmcid in rows or pmcid in named, pmcid


def test_bulk_ingest_is_deterministic(shared_root, tmp_path):
    bulk = tmp_path / "oa_bulk"
    _bad_bulk(bulk, shared_root / "pmc-sample")
    first = ingest(_config([bulk], tmp_path / "a", per_shard=2))
    second = ingest(_config([bulk], tmp_path / "b", per_shard=2))
    assert first.shards == second.shards
    for name in (*first.shards, "rejects.parquet"):
        assert pq.read_table(tmp_path / "a" / name).equals(pq.read_table(tmp_path / "b" / name))


def test_s3_bulk_package_with_its_file_list(shared_root, s3_bucket, tmp_path):
    name = "oa_comm_xml.PMC001xxxxxx.baseline.2024-06-18"
    _bulk_package(tmp_path / "b", name, ["PMC1790863"], [_row("PMC1790863", retracted="yes")], shared=shared_root / "pmc-sample")
    for suffix in (".tar.gz", ".filelist.csv"):
        storage.write_bytes(f"s3://{s3_bucket}/oa_bulk/{name}{suffix}", (tmp_path / "b" / f"{name}{suffix}").read_bytes())
    stats = ingest(_config([f"s3://{s3_bucket}/oa_bulk"], f"s3://{s3_bucket}/out"))
    assert (stats.files, stats.articles, stats.rejected, stats.file_lists) == (1, 1, 0, 1)
    row = read_shard(f"s3://{s3_bucket}/out/part-00000.parquet").to_pylist()[0]
    assert (row["version_source"], row["retracted"]) == ("filelist", True)


def test_a_file_list_row_that_names_another_pmcid_rejects_the_article(shared_root, tmp_path):
    bulk = tmp_path / "oa_bulk"
    _bulk_package(bulk, "oa_comm_xml.incr.2024-06-19", ["PMC1790863"],
                  [_row("PMC1790899", member=_member("PMC1790863"))], shared=shared_root / "pmc-sample")
    stats = ingest(_config([bulk], tmp_path / "out"))
    [reject] = _rejects(str(tmp_path / "out"))
    assert stats.articles == 0
    assert reject["reason"].endswith("oa_comm_xml.incr.2024-06-19.filelist.csv:2 lists PMC1790899, the article is PMC1790863")


def test_a_file_list_without_its_columns_is_rejected_and_its_articles_kept(shared_root, tmp_path):
    bulk = tmp_path / "oa_bulk"
    _bulk_package(bulk, "oa_other_xml.incr.2024-06-19", ["PMC1790863"], [], shared=shared_root / "pmc-sample")
    (bulk / "oa_other_xml.incr.2024-06-19.filelist.csv").write_text("Article File,AccessionID\nx.xml,PMC1\n")
    stats = ingest(_config([bulk], tmp_path / "out"))
    [reject] = _rejects(str(tmp_path / "out"))
    assert reject["source"] == str(bulk / "oa_other_xml.incr.2024-06-19.filelist.csv")
    assert "header lacks column" in reject["reason"]
    assert (stats.articles, stats.unlisted_members) == (1, 1)
    assert _rows(tmp_path / "out")[0]["version_source"] == "jats"
