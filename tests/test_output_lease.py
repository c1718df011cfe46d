"""The output lease (adabiobert/output_lease.py) and the compare-and-swap it stands on
(adabiobert/storage.py), locally and on the loopback S3 server: one holder at a time, a refusal
that names the holder, takeover of a stale lease by exactly one contender, and release."""

from __future__ import annotations

import socket
import subprocess
import sys
import threading
from dataclasses import replace
from datetime import datetime, timedelta, timezone

import pytest

from adabiobert import storage
from adabiobert.cli.kit import refuse
from adabiobert.output_lease import (
    EXIT_OUTPUT_LEASED,
    LEASE_FILE,
    LeaseLostError,
    LeaseRecord,
    OutputLeasedError,
    _heartbeat,
    acquire,
    output_lease,
    read_lease,
)


@pytest.fixture(params=["local", "s3"])
def output(request, tmp_path) -> str:
    """An output root that does not exist yet, local or on the loopback S3 server."""
    if request.param == "local":
        return str(tmp_path / "out")
    return f"s3://{request.getfixturevalue('s3_bucket')}/out"


def dead_pid() -> int:
    """The id of a process of this host that has ended (and been reaped)."""
    done = subprocess.Popen([sys.executable, "-c", "pass"])
    done.wait()
    return done.pid


def stamp(when: datetime) -> str:
    return when.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def foreign_lease(output: str, host: str, pid: int, renewed_ago_s: float = 0.0, stale_after_s: float = 600.0) -> LeaseRecord:
    """Write the lease of another run (``host``, ``pid``) renewed ``renewed_ago_s`` seconds ago."""
    renewed = stamp(datetime.now(timezone.utc) - timedelta(seconds=renewed_ago_s))
    record = LeaseRecord("annotate", output, host, pid, "raysubmit_abc", renewed, renewed, stale_after_s, "f" * 32)
    storage.write_bytes(storage.join(output, LEASE_FILE), record.to_json())
    return record


# ---- storage: compare-and-swap ---------------------------------------------------------------
def test_replace_and_delete_happen_only_at_the_version_read(output):
    uri = storage.join(output, "cell.json")
    assert storage.write_bytes_if_absent(uri, b"one") and not storage.write_bytes_if_absent(uri, b"two")
    data, version = storage.read_versioned(uri)
    assert data == b"one"
    new = storage.replace_if_version(uri, b"three", version)
    assert new is not None and storage.read_versioned(uri) == (b"three", new)
    assert storage.replace_if_version(uri, b"four", version) is None  # the version read is gone
    assert not storage.delete_if_version(uri, version)
    assert storage.delete_if_version(uri, new) and not storage.exists(uri)
    assert storage.replace_if_version(uri, b"five", new) is None and not storage.exists(uri)
    with pytest.raises(FileNotFoundError):
        storage.read_versioned(uri)


def test_of_many_writers_at_one_version_exactly_one_replaces_it(output):
    uri = storage.join(output, "cell.json")
    storage.write_bytes(uri, b"start")
    _, version = storage.read_versioned(uri)
    results: list[str | None] = []
    threads = [threading.Thread(target=lambda i=i: results.append(storage.replace_if_version(uri, f"w{i}".encode(), version)))
               for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    winners = [i for i, result in enumerate(results) if result is not None]
    assert len(winners) == 1 and storage.read_versioned(uri)[0].startswith(b"w")


# ---- one holder --------------------------------------------------------------------------------
def test_a_second_run_is_refused_with_a_line_that_names_the_holder(output, capsys):
    with output_lease(output, job="annotate", renew_every=None) as lease:
        with pytest.raises(OutputLeasedError) as refused:
            acquire(output, job="ingest")
        assert refused.value.holder == lease.record
        assert refuse(refused.value) == EXIT_OUTPUT_LEASED == 4
    line = capsys.readouterr().err
    assert line.count("\n") == 1 and line.startswith("error: ")
    holder = lease.record
    assert f"annotate on host {socket.gethostname()} pid {holder.pid}" in line and f"started {holder.started}" in line
    assert read_lease(output) is None and not storage.exists(storage.join(output, LEASE_FILE))  # released


def test_the_lease_is_released_when_the_work_fails(output):
    with pytest.raises(RuntimeError, match="the work failed"):
        with output_lease(output, job="word2vec", renew_every=None):
            raise RuntimeError("the work failed")
    assert read_lease(output) is None
    with output_lease(output, job="word2vec", renew_every=None) as lease:
        assert lease.took_over is None


def test_a_local_folder_the_lease_made_goes_with_it_when_the_run_wrote_nothing(tmp_path):
    with output_lease(str(tmp_path / "new"), job="ingest", renew_every=None):
        assert (tmp_path / "new" / LEASE_FILE).is_file()
    assert not (tmp_path / "new").exists()
    with output_lease(str(tmp_path / "new"), job="ingest", renew_every=None):
        (tmp_path / "new" / "part-00000.parquet").write_bytes(b"work")
    assert sorted(p.name for p in (tmp_path / "new").iterdir()) == ["part-00000.parquet"]


def test_a_renewal_moves_the_renewed_time_and_keeps_the_lease(output):
    with output_lease(output, job="ingest", renew_every=None) as lease:
        first = read_lease(output)
        lease.renew()
        assert read_lease(output) == lease.record and lease.record.renewed > first.renewed
        assert (lease.record.started, lease.record.token) == (first.started, first.token)
    assert read_lease(output) is None


def test_a_ray_job_holder_is_named_by_its_submission_id(output, monkeypatch):
    monkeypatch.setenv("RAY_JOB_CONFIG_JSON_ENV_VAR", '{"metadata": {"job_submission_id": "raysubmit_XYZ"}}')
    with output_lease(output, job="annotate", renew_every=None):
        with pytest.raises(OutputLeasedError, match=r"pid \d+ \(Ray job raysubmit_XYZ\)"):
            acquire(output, job="annotate")


# ---- stale leases --------------------------------------------------------------------------------
def test_the_lease_of_a_process_gone_from_this_host_is_taken_over(output):
    foreign_lease(output, socket.gethostname(), dead_pid())
    told = []
    with output_lease(output, job="ingest", renew_every=None, log=told.append) as lease:
        assert lease.took_over.startswith("its process") and "is gone" in lease.took_over
        assert read_lease(output) == lease.record
    assert len(told) == 1 and "took over a stale lease" in told[0]


def test_a_fresh_lease_of_another_host_holds_even_if_its_pid_is_free_here(output):
    foreign_lease(output, "another-host", dead_pid(), renewed_ago_s=30)
    with pytest.raises(OutputLeasedError, match="annotate on host another-host"):
        acquire(output, job="annotate")


def test_a_lease_not_renewed_past_its_limit_is_taken_over_from_any_host(output):
    foreign_lease(output, "another-host", 1, renewed_ago_s=601, stale_after_s=600)
    with output_lease(output, job="annotate", renew_every=None) as lease:
        assert lease.took_over.startswith("it was not renewed for 601 s")


def test_of_many_contenders_for_a_stale_lease_exactly_one_takes_it(output):
    foreign_lease(output, socket.gethostname(), dead_pid())
    outcomes: list[object] = []

    def contend() -> None:
        try:
            outcomes.append(acquire(output, job="annotate"))
        except OutputLeasedError as error:
            outcomes.append(error)

    threads = [threading.Thread(target=contend) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    [winner] = [o for o in outcomes if not isinstance(o, OutputLeasedError)]
    assert read_lease(output) == winner.record
    assert all(o.holder == winner.record for o in outcomes if isinstance(o, OutputLeasedError))


def test_a_holder_whose_lease_was_taken_over_stops_and_leaves_the_takers_lease(output):
    with pytest.raises(LeaseLostError, match="taken over"):
        with output_lease(output, job="annotate", renew_every=None) as lease:
            taker = foreign_lease(output, "another-host", 7)  # as a takeover after a long freeze
            with pytest.raises(LeaseLostError, match="annotate on host another-host pid 7"):
                lease.renew()
            assert lease.lost
    assert read_lease(output) == taker  # the release left it alone


def test_an_unreadable_lease_file_is_refused_not_taken(output):
    storage.write_bytes(storage.join(output, LEASE_FILE), b"{not json")
    with pytest.raises(OutputLeasedError, match="cannot be read"):
        acquire(output, job="annotate")


class Ticks:
    """A stand-in for the heartbeat's stop event: ``wait`` returns False ``ticks`` times (a period
    passed), then True (stop), so the heartbeat loop runs exactly ``ticks`` renewals, without sleeping."""

    def __init__(self, ticks: int) -> None:
        self.left = ticks

    def wait(self, timeout: float) -> bool:
        self.left -= 1
        return self.left < 0


def test_the_heartbeat_renews_the_lease_each_period(output):
    with output_lease(output, job="annotate", renew_every=None) as lease:
        first = lease.record.renewed
        _heartbeat(lease, Ticks(2), 60.0, None)
        assert read_lease(output) == lease.record and lease.record.renewed > first
    assert read_lease(output) is None


def test_the_heartbeat_stops_and_says_so_when_the_lease_is_lost(output):
    told = []
    with pytest.raises(LeaseLostError):
        with output_lease(output, job="annotate", renew_every=None) as lease:
            foreign_lease(output, "another-host", 7)
            ticks = Ticks(5)
            _heartbeat(lease, ticks, 60.0, told.append)
            assert ticks.left == 4  # the first renewal found the lease lost, and the loop ended
    assert len(told) == 1 and "taken over" in told[0]


def test_a_record_round_trips_and_describes_itself():
    record = LeaseRecord("ingest", "s3://b/root", "h1", 42, None, "2026-11-25T02:00:00.000000Z",
                         "2026-11-25T02:01:00.000000Z", 600.0, "0" * 32)
    assert LeaseRecord.from_json(record.to_json()) == record
    assert record.describe() == "ingest on host h1 pid 42, started 2026-11-25T02:00:00.000000Z, last renewed 2026-11-25T02:01:00.000000Z"
    assert replace(record, ray_job="raysubmit_1").describe().startswith("ingest on host h1 pid 42 (Ray job raysubmit_1)")
