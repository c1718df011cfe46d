"""One writer per output: a lease file that a job creates before it touches its output.

    with output_lease(config.output, job="annotate", log=log) as lease:
        ...                      # the work; lease.check() before each commit point
                                 # released on leaving the block, by an error too

The lease is the file ``<output>/_lease.json`` (:data:`LEASE_FILE`), created with an exclusive
create (``storage.write_bytes_if_absent``: a conditional PUT with ``IfNoneMatch="*"`` on S3, a
hard link locally), so of two runs that start on the same output exactly one gets it. The other
is refused with :class:`OutputLeasedError`, whose one-line message names the holder: its job,
host, process id, Ray job (when it runs as one), start time and last renewal. The job entry
points exit with status :data:`EXIT_OUTPUT_LEASED` (4) on it.

While the block runs, a daemon thread renews the lease every ``renew_every`` seconds (it
rewrites ``renewed`` with a compare-and-swap, ``storage.replace_if_version``). A lease may be
taken over, by a compare-and-swap on the version read, when it is *stale*:

* its holder ran on this host and its process is gone (killed, crashed: no process with that id,
  or a zombie); or
* it was not renewed for ``stale_after`` seconds (the holder's own figure, recorded in the lease;
  :data:`STALE_AFTER_S` by default), whatever the host: a holder on another machine that died,
  or a machine that is gone. Hosts' clocks are taken to agree within a minute.

A holder whose lease was taken over (its process was frozen past the limit, or its storage
unreachable that long) finds out at its next renewal; :meth:`OutputLease.check` then raises
:class:`LeaseLostError`, and the jobs call it before each commit point, so a run that lost its
lease commits nothing more. Release deletes the lease only if it is still this holder's
(``storage.delete_if_version``). A lease left by a holder that is known to be gone can also be
deleted by hand.

Framework-free: ``storage`` is the only module here that knows local from S3.
"""

from __future__ import annotations

import json
import os
import socket
import threading
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, replace
from datetime import datetime, timezone
from pathlib import Path

from adabiobert import storage
from adabiobert.errors import AdaBioBertError
from adabiobert.submission import ray_job_submission_id

LEASE_FILE = "_lease.json"
"""The lease's name under the output root."""

EXIT_OUTPUT_LEASED = 4
"""Exit status of a job refused because another run holds its output's lease (2 is a usage
error, 3 a run completed with quarantined shards, 75 a Ray start-up timeout)."""

STALE_AFTER_S = 600.0
"""Seconds without a renewal after which a lease may be taken over from a holder on any host."""

RENEW_EVERY_S = 60.0
"""Seconds between two renewals by the holder's heartbeat thread (a tenth of :data:`STALE_AFTER_S`,
so that a few failed renewals in a row do not lose the lease)."""


@dataclass(frozen=True)
class LeaseRecord:
    """The content of ``_lease.json``: who holds the output, since when."""

    job: str
    """What holds it: ``annotate``, ``ingest``, ``word2vec``, ..."""
    output: str
    host: str
    pid: int
    ray_job: str | None
    """The Ray Job submission id when the holder runs as a Ray Job's entry point, else None."""
    started: str
    """UTC, ISO 8601 (``2026-11-25T02:00:00Z``)."""
    renewed: str
    """UTC, ISO 8601: the last renewal (the start, at first)."""
    stale_after_s: float
    """The holder's promise: it renews more often than this; a contender may take over after it."""
    token: str
    """Random, one per lease: tells two holders with the same host and pid apart."""

    def to_json(self) -> bytes:
        return json.dumps(asdict(self), indent=1).encode()

    @classmethod
    def from_json(cls, data: bytes) -> LeaseRecord:
        """Raises ``ValueError``, ``KeyError`` or ``TypeError`` for content that is not a lease."""
        fields = json.loads(data)
        return cls(**{name: fields[name] for name in cls.__dataclass_fields__})

    def describe(self) -> str:
        """``annotate on host h1 pid 4242 (Ray job raysubmit_X), started ..., renewed ...``."""
        ray = f" (Ray job {self.ray_job})" if self.ray_job else ""
        return f"{self.job} on host {self.host} pid {self.pid}{ray}, started {self.started}, last renewed {self.renewed}"


class OutputLeasedError(AdaBioBertError):
    """Another run holds the output's lease (or its lease file cannot be read).

    Attributes:
        uri: the lease file.
        holder: what the lease says (None when it cannot be read).
    """

    def __init__(self, uri: str, holder: LeaseRecord | None, message: str | None = None) -> None:
        self.uri = uri
        self.holder = holder
        if message is None:
            assert holder is not None
            message = (f"{uri}: another run writes this output: {holder.describe()}; refused so that two runs never "
                       f"write it at once. It is taken over once that process is gone (same host) or "
                       f"{holder.stale_after_s:g} s pass without a renewal; delete the lease file only if you know "
                       "that run is gone")
        super().__init__(message)


class LeaseLostError(OutputLeasedError):
    """This run's lease was taken over by another run (it had not been renewed in time)."""


def _now() -> datetime:
    return datetime.now(timezone.utc)


def _stamp(when: datetime) -> str:
    return when.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _parse(stamp: str) -> datetime:
    return datetime.strptime(stamp, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=timezone.utc)


def _process_gone(pid: int) -> bool:
    """True when no process ``pid`` runs on this host (a zombie counts as gone)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:  # another user's process: alive
        return False
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0]
    except (OSError, IndexError):
        return False
    return state == "Z"


def stale_reason(holder: LeaseRecord, now: datetime | None = None, host: str | None = None) -> str | None:
    """Why ``holder``'s lease may be taken over, or None while it holds (module docstring).

    Args:
        now: the time to judge by (default: now, UTC).
        host: this host's name (default: ``socket.gethostname()``).
    """
    now = now or _now()
    host = host or socket.gethostname()
    if holder.host == host and holder.pid != os.getpid() and _process_gone(holder.pid):
        return f"its process {holder.pid} on {host} is gone"
    silent = (now - _parse(holder.renewed)).total_seconds()
    if silent > holder.stale_after_s:
        return f"it was not renewed for {silent:.0f} s (its limit: {holder.stale_after_s:g} s)"
    return None


class OutputLease:
    """A lease this process holds (made by :func:`acquire`)."""

    def __init__(self, uri: str, record: LeaseRecord, version: str, took_over: str | None,
                 created_output: bool = False) -> None:
        self.uri = uri
        self.record = record
        self.took_over = took_over
        """Why the lease was taken over from another holder (None: it was free)."""
        self._created_output = created_output
        self._version = version
        self._lost: LeaseRecord | None = None
        self._released = False
        self._lock = threading.Lock()

    def renew(self) -> None:
        """Write a new ``renewed`` time, if the lease is still this holder's.

        Raises:
            LeaseLostError: another run took the lease over (also for every later :meth:`check`).
        """
        with self._lock:
            if self._lost is None and not self._released:
                record = replace(self.record, renewed=_stamp(_now()))
                data = record.to_json()
                version = storage.replace_if_version(self.uri, data, self._version)
                if version is not None:
                    self.record, self._version = record, version
                else:
                    self._lost = _read_holder(self.uri) or self.record
        self.check()

    def check(self) -> None:
        """Raises :class:`LeaseLostError` once a renewal found the lease taken over."""
        if self._lost is not None:
            taker = self._lost.describe() if self._lost.token != self.record.token else "the lease file is gone"
            raise LeaseLostError(self.uri, self._lost,
                                 f"{self.uri}: this run's lease was taken over ({taker}), so this run commits nothing "
                                 f"more; a lease not renewed for {self.record.stale_after_s:g} s may be taken over")

    @property
    def lost(self) -> bool:
        return self._lost is not None

    def release(self) -> bool:
        """Delete the lease if it is still this holder's; True when it was. Idempotent. A local
        output folder that the lease created and the run left empty (it was refused) goes too."""
        with self._lock:
            if self._released:
                return False
            self._released = True
            deleted = self._lost is None and storage.delete_if_version(self.uri, self._version)
        if deleted and self._created_output:
            storage.remove_empty_folder(self.record.output)
        return deleted


def _read_holder(uri: str) -> LeaseRecord | None:
    try:
        return LeaseRecord.from_json(storage.read_versioned(uri)[0])
    except (FileNotFoundError, ValueError, KeyError, TypeError):
        return None


def read_lease(output: str) -> LeaseRecord | None:
    """Who holds ``output`` now (None: nobody, or a lease file that cannot be read)."""
    return _read_holder(storage.join(output, LEASE_FILE))


def acquire(output: str, job: str, stale_after: float = STALE_AFTER_S, log: Callable[[str], None] | None = None,
            attempts: int = 3) -> OutputLease:
    """Take the lease of ``output`` for this process (without a heartbeat: see :func:`output_lease`).

    Args:
        output: the output root (local or ``s3://``); the lease is ``<output>/_lease.json``.
        job: what takes it, for the holder's description.
        stale_after: recorded in the lease: after this many seconds without a renewal, others may
            take it over.
        log: told when a stale lease is taken over (None: silent).
        attempts: tries when the lease changes between reading and taking it over.

    Raises:
        OutputLeasedError: another run holds it, or its lease file cannot be read as one.
    """
    uri = storage.join(output, LEASE_FILE)
    now = _stamp(_now())
    record = LeaseRecord(job, output, socket.gethostname(), os.getpid(), ray_job_submission_id(), now, now,
                         float(stale_after), uuid.uuid4().hex)
    data = record.to_json()
    holder = None
    created_output = not storage.exists(output)
    for _ in range(attempts):
        if storage.write_bytes_if_absent(uri, data):
            return OutputLease(uri, record, storage.read_versioned(uri)[1], None, created_output)
        try:
            content, version = storage.read_versioned(uri)
        except FileNotFoundError:  # released in between: try the create again
            continue
        try:
            holder = LeaseRecord.from_json(content)
        except (ValueError, KeyError, TypeError):
            raise OutputLeasedError(uri, None, f"{uri}: a lease file that cannot be read holds this output; delete it "
                                    "if no run is writing the output") from None
        why = stale_reason(holder)
        if why is None:
            raise OutputLeasedError(uri, holder)
        taken = storage.replace_if_version(uri, data, version)
        if taken is not None:
            if log is not None:
                log(f"{uri}: took over a stale lease ({why}) from {holder.describe()}")
            return OutputLease(uri, record, taken, why)
    if holder is None:
        raise OutputLeasedError(uri, None, f"{uri}: the lease kept changing while this run tried to take it")
    raise OutputLeasedError(uri, holder)


@contextmanager
def output_lease(output: str, job: str, stale_after: float = STALE_AFTER_S, renew_every: float | None = RENEW_EVERY_S,
                 log: Callable[[str], None] | None = None) -> Iterator[OutputLease]:
    """Hold the lease of ``output`` for the block: :func:`acquire`, a heartbeat thread that renews
    it every ``renew_every`` seconds (None: none), and the release when the block ends, by an
    exception too (a killed process leaves it, to be taken over as the module docstring says).

    Raises:
        OutputLeasedError: on entry, another run holds it.
        LeaseLostError: on a clean exit, when the lease was taken over during the block.
    """
    lease = acquire(output, job, stale_after, log)
    stop = threading.Event()
    heartbeat = None
    if renew_every is not None:
        heartbeat = threading.Thread(target=_heartbeat, args=(lease, stop, renew_every, log),
                                     name=f"lease-{job}", daemon=True)
        heartbeat.start()
    try:
        yield lease
    finally:
        stop.set()
        if heartbeat is not None:
            heartbeat.join()
        try:
            lease.release()
        except Exception as error:  # noqa: BLE001 - storage unreachable: the lease goes stale by itself
            if log is not None:
                log(f"{lease.uri}: the lease could not be released ({type(error).__name__}: {error}); the next run "
                    f"takes it over once it is stale")
    lease.check()


def _heartbeat(lease: OutputLease, stop: threading.Event, every: float, log: Callable[[str], None] | None) -> None:
    """Renew ``lease`` every ``every`` seconds until ``stop`` is set or the lease is lost; a
    renewal that fails for another reason (storage unreachable) is told to ``log`` and tried again."""
    while not stop.wait(every):
        try:
            lease.renew()
        except LeaseLostError as error:
            if log is not None:
                log(str(error))
            return
        except Exception as error:  # noqa: BLE001 - retried: the lease goes stale only after ten periods
            if log is not None:
                log(f"{lease.uri}: lease renewal failed, trying again in {every:g} s: {type(error).__name__}: {error}")
