"""A killed appending ingest is finished by its rerun, not orphaned (issue 24, item 2); and one
ingest or Word2Vec build at a time per output (item 1).

The kills are real: ``tests/fault_hooks.py --ingest-dies-at-write N`` runs ``jobs/ingest_pmc.py``
in a process of its own that exits (``os._exit``: no ``finally``, the lease left behind) just
before its N-th file write, at every N of a run, or in the middle of one. The rerun is the same
command, without ``--batch``; the root must then be what one clean run makes of it.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from adabiobert import storage
from adabiobert.output_lease import EXIT_OUTPUT_LEASED, LEASE_FILE, output_lease, read_lease
from adabiobert.pmc.shards import COMMITTED_MARKER, STARTED_MARKER, find_shards, list_shards
from adabiobert.pmc.versions import newest_versions, read_root_versions
from jobs import ingest_pmc
from tests.fault_hooks import CRASH_STATUS
from tests.versions_data import DAY0, DAY1, baseline, pmcid, write_package

REPO = Path(__file__).resolve().parents[1]
PER_SHARD = ["--articles-per-shard", "1", "--no-progress"]
WRITES = 7
"""File writes of the clean appending run: started marker, 3 shards, rejects, stats, committed marker."""


@pytest.fixture(scope="module")
def sentences(ncbi) -> list[str]:
    return [t for t in (" ".join(s.words) for s in ncbi.train[:400]) if not set(t) & set("&<>")]


@pytest.fixture(scope="module")
def packages(tmp_path_factory, sentences) -> dict[str, Path]:
    """The baseline, and an incremental of three new or corrected articles and one the baseline
    holds already (a true "already ingested" reject, which a rerun must not multiply)."""
    folder = tmp_path_factory.mktemp("packages")
    incremental = write_package(folder / "in1", "oa_comm_xml.incr.2024-06-19",
                                [(7, DAY1, "no", 0), (2, DAY1, "no", 1), (8, DAY1, "no", 0), (1, DAY0, "no", 0)],
                                sentences)
    return {"baseline": baseline(folder / "in0", sentences), "incremental": incremental}


@pytest.fixture(scope="module")
def base_root(packages, tmp_path_factory) -> Path:
    """A root holding the baseline (no batch): each test appends to a copy of it."""
    root = tmp_path_factory.mktemp("base") / "root"
    assert run_job([str(packages["baseline"]), "--output", str(root), *PER_SHARD])[0] == 0
    return root


def run_job(argv: list[str]) -> tuple[int, str]:
    """``jobs/ingest_pmc.py``'s main in this process: its exit status and stderr."""
    with contextlib.redirect_stderr(io.StringIO()) as err, contextlib.redirect_stdout(io.StringIO()):
        status = ingest_pmc.main(argv)
    return status, err.getvalue()


def killed_run(argv: list[str], at: str) -> subprocess.CompletedProcess:
    """The ingest job in a process of its own that dies at write ``at`` (``N`` or ``N:half``)."""
    return subprocess.run([sys.executable, str(REPO / "tests" / "fault_hooks.py"), "--ingest-dies-at-write", at, "--",
                           *argv], cwd=REPO, capture_output=True, text=True, timeout=120, env=dict(os.environ))


def append_argv(packages, root: Path | str) -> list[str]:
    return [str(packages["incremental"]), "--output", str(root), "--append", *PER_SHARD]


def batch_of(root: Path) -> Path:
    [folder] = [p for p in root.iterdir() if p.name.startswith("batch=")]
    return folder


def files_of(root: Path) -> dict[str, bytes]:
    """Every file of the root, by its path with the batch id left out (the clean run's and the
    rerun's ids are both the time they started)."""
    batch = batch_of(root).name
    return {p.relative_to(root).as_posix().replace(batch, "batch=*"): p.read_bytes()
            for p in sorted(root.rglob("*")) if p.is_file()}


def stats_of(folder: Path) -> dict:
    stats = json.loads((folder / "ingest_stats.json").read_text())
    for key in ("output", "batch"):
        stats["config"].pop(key)
    return {k: v for k, v in stats.items() if k not in ("seconds", "resumed")}


def assert_same_root(left: Path, right: Path) -> None:
    """The same files, the same shard and reject bytes, the same stats but for time and batch id."""
    first, second = files_of(left), files_of(right)
    assert sorted(first) == sorted(second)
    for name in first:
        if name.endswith(".parquet"):
            assert first[name] == second[name], name
    assert stats_of(batch_of(left)) == stats_of(batch_of(right))


@pytest.fixture(scope="module")
def clean(packages, base_root, tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("clean") / "root"
    shutil.copytree(base_root, root)
    status, _ = run_job(append_argv(packages, root))
    assert status == 0
    stats = json.loads((batch_of(root) / "ingest_stats.json").read_text())
    assert (stats["articles"], stats["already_ingested"], stats["resumed"]) == (3, 1, False)
    return root


def test_the_clean_append_writes_the_writes_the_kills_count(clean):
    names = sorted(p.name for p in batch_of(clean).iterdir())
    assert names == [COMMITTED_MARKER, STARTED_MARKER, "ingest_stats.json", "part-00000.parquet", "part-00001.parquet",
                     "part-00002.parquet", "rejects.parquet"]
    assert len(names) == WRITES and not (clean / LEASE_FILE).exists()


@pytest.mark.parametrize("at", [*(str(n) for n in range(1, WRITES + 1)), "3:half", "7:half"])
def test_an_append_killed_at_any_write_and_run_again_ends_as_the_clean_run(packages, base_root, clean, tmp_path, at):
    root = tmp_path / "root"
    shutil.copytree(base_root, root)
    killed = killed_run(append_argv(packages, root), at)
    assert killed.returncode == CRASH_STATUS, killed.stderr[-2000:]
    killed_pid_was = read_lease(str(root)).pid  # the killed run's lease is left behind
    assert killed_pid_was != os.getpid()
    started = int(at.split(":")[0]) > 1  # the first write is the started marker
    if started:
        assert find_shards(str(root)).unfinished == (batch_of(root).name,)
        assert all("/" not in s.name for s in list_shards(str(root)))  # readers leave the batch out
    status, err = run_job(append_argv(packages, root))  # the same command: no --batch
    assert status == 0
    assert f"took over a stale lease (its process {killed_pid_was} on" in err
    assert json.loads((batch_of(root) / "ingest_stats.json").read_text())["resumed"] is started
    assert_same_root(clean, root)
    assert not (root / LEASE_FILE).exists()


def test_a_rerun_killed_too_is_finished_by_the_next(packages, base_root, clean, tmp_path):
    root = tmp_path / "root"
    shutil.copytree(base_root, root)
    assert killed_run(append_argv(packages, root), "4").returncode == CRASH_STATUS
    assert killed_run(append_argv(packages, root), "3:half").returncode == CRASH_STATUS
    assert run_job(append_argv(packages, root))[0] == 0
    assert_same_root(clean, root)


def test_the_version_index_of_the_root_ignores_an_unfinished_batch(packages, base_root, tmp_path):
    root = tmp_path / "root"
    shutil.copytree(base_root, root)
    assert killed_run(append_argv(packages, root), str(WRITES)).returncode == CRASH_STATUS  # all but its marker
    newest = newest_versions(read_root_versions(list_shards(str(root))))
    assert pmcid(7) not in newest and newest[pmcid(2)].day == 18  # the baseline's version of article 2


def test_another_batch_id_is_refused_while_a_batch_is_unfinished(packages, base_root, tmp_path):
    root = tmp_path / "root"
    shutil.copytree(base_root, root)
    assert killed_run(append_argv(packages, root), "3").returncode == CRASH_STATUS
    unfinished = batch_of(root)
    status, err = run_job([*append_argv(packages, root), "--batch", "2024-06-19"])
    [line] = [line for line in err.splitlines() if line.startswith("error: ")]  # after the lease takeover's
    assert status == 2 and f"{unfinished}: left unfinished" in line and "--append" in line
    assert [p.name for p in root.iterdir() if p.name.startswith("batch=")] == [unfinished.name]


def test_an_unfinished_batch_is_not_finished_with_another_package(packages, base_root, tmp_path):
    root = tmp_path / "root"
    shutil.copytree(base_root, root)
    assert killed_run(append_argv(packages, root), "4").returncode == CRASH_STATUS
    before = sorted(p.name for p in batch_of(root).iterdir())
    status, err = run_job([str(packages["baseline"]), "--output", str(root), "--append", *PER_SHARD])
    [line] = [line for line in err.splitlines() if line.startswith("error: ")]
    assert status == 2 and "left unfinished by a run of other inputs" in line and str(packages["incremental"]) in line
    assert sorted(p.name for p in batch_of(root).iterdir()) == before  # nothing deleted
    assert run_job(append_argv(packages, root))[0] == 0  # the right package finishes it


def test_a_batch_written_before_markers_is_read_as_committed_and_not_overwritten(packages, clean, tmp_path):
    """A root from before this change: its batch folders have no marker; readers take them whole,
    and an append to the same batch id is still refused."""
    root = tmp_path / "root"
    shutil.copytree(clean, root)
    batch = batch_of(root)
    (batch / STARTED_MARKER).unlink()
    (batch / COMMITTED_MARKER).unlink()
    assert find_shards(str(root)).unfinished == ()
    assert sum(s.name.startswith(batch.name) for s in list_shards(str(root))) == 3
    status, err = run_job([*append_argv(packages, root), "--batch", batch.name.removeprefix("batch=")])
    assert status == 2 and "already holds Parquet files" in err


def test_a_killed_append_to_s3_is_finished_by_its_rerun(packages, base_root, clean, s3_bucket, tmp_path):
    root = f"s3://{s3_bucket}/root"
    storage.upload_dir(base_root, root)
    assert killed_run(append_argv(packages, root), "5").returncode == CRASH_STATUS
    assert find_shards(root).unfinished and storage.exists(storage.join(root, LEASE_FILE))
    assert run_job(append_argv(packages, root))[0] == 0
    storage.download_dir(root, tmp_path / "copy")
    assert_same_root(clean, tmp_path / "copy")


# ---- one writer per output ------------------------------------------------------------------------
def test_an_ingest_on_a_root_another_run_holds_is_refused_with_status_4(packages, base_root, tmp_path):
    root = tmp_path / "root"
    shutil.copytree(base_root, root)
    with output_lease(str(root), job="ingest", renew_every=None) as held:
        status, err = run_job(append_argv(packages, root))
    assert status == EXIT_OUTPUT_LEASED == 4
    assert err.count("\n") == 1 and err.startswith("error: ") and f"pid {held.record.pid}" in err
    assert f"started {held.record.started}" in err
    assert not [p for p in root.iterdir() if p.name.startswith("batch=")]  # nothing written


def test_a_word2vec_build_on_an_output_another_build_holds_is_refused_before_ray(base_root, tmp_path, shared_root):
    from jobs import build_word2vec

    out = tmp_path / "w2v"
    with output_lease(str(out), job="word2vec", renew_every=None) as held:
        with contextlib.redirect_stderr(io.StringIO()) as err:
            status = build_word2vec.main(["--shards", str(base_root), "--out", str(out), "--no-progress",
                                          "--lexicon", str(shared_root / "lexicon")])
    assert status == 4 and f"word2vec on host {held.record.host} pid {held.record.pid}" in err.getvalue()
    assert not out.exists()  # no vectors, no stats; the holder's lease released, with the folder it made
