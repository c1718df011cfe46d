"""Faults the tests inject into the jobs: a process that dies at a chosen point, as a crash, an
out-of-memory kill or a lost node would end it (``os._exit``: no exception, no ``finally``).

The library has no fault switch of its own. Each fault goes in where the job takes a callable
(the annotation store's commit hook, ``ingest_parallel``'s ``unit_hook``, ``run_training``'s
``after_epoch``), or, for the annotation job's read task (which takes none), through Ray's
``worker_process_setup_hook`` in a driver process of its own (``python tests/fault_hooks.py``).
The callables are small classes of this module, so that they pickle and reach Ray workers (the
driver's working directory, the repository root, is on the workers' path).

    python tests/fault_hooks.py [--crash-at STEP:N] [--die-reading NAME] -- <jobs/annotate.py arguments>
    python tests/fault_hooks.py --relink [--crash-at STEP:N] -- <jobs/relink.py arguments>

runs the annotation job as ``jobs/annotate.py`` does (or the re-link job, without Ray) and exits
with its status; joins ``$RAY_ADDRESS`` when set.

    python tests/fault_hooks.py --ingest-dies-at-write N[:half] -- <jobs/ingest_pmc.py arguments>

runs the ingest job, which dies just before its N-th file write (``storage.write_bytes``: a
batch marker, a shard, the rejects, the stats), or, with ``:half``, in the middle of it (half the
bytes in the write's temporary file).
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # run as a script, from a checkout without install

CRASH_STATUS = 3
"""Exit status of a process killed by :class:`CrashAtCommitStep`."""


@dataclass
class CrashAtCommitStep:
    """A ``hook(step, detail)`` that ends the process the ``nth`` time ``step`` is reached: the
    annotation commit's (``annotation.commit.Hook``: ``staged``, ``placed``, ``marked``,
    ``superseded`` of a shard) and the PMC sync's (``adabiobert.pmc.sync.Hook``: ``unit``,
    ``tombstones``, ``state``)."""

    step: str
    nth: int = 1
    reached: int = field(default=0, init=False)

    def __call__(self, step: str, detail: str) -> None:
        if step == self.step:
            self.reached += 1
            if self.reached == self.nth:
                os._exit(CRASH_STATUS)


@dataclass(frozen=True)
class DieOnUnit:
    """``ingest_parallel``'s unit hook: the worker ingesting a unit that holds a file named
    ``file_name`` dies, every time its task is tried."""

    file_name: str

    def __call__(self, unit) -> None:
        if self.file_name in {PurePosixPath(uri).name for uri in unit.files}:
            os._exit(1)


@dataclass(frozen=True)
class CrashAfterEpoch:
    """``run_training``'s epoch hook: rank 0 dies after epoch ``epoch``, once (``marker`` is
    written first, so that the restarted worker group goes on)."""

    epoch: int
    marker: str

    def __call__(self, epoch: int, rank: int) -> None:
        if rank != 0 or epoch != self.epoch or os.path.exists(self.marker):
            return
        import ray.train

        # report() returns before the controller has registered the checkpoint; a crash in that
        # gap legitimately resumes from the previous epoch. Wait, so that the test is exact.
        ray.train.get_all_reported_checkpoints()
        Path(self.marker).write_text(f"crashed after epoch {epoch}\n")
        os._exit(1)


@dataclass
class DieAtWrite:
    """Stands in for ``adabiobert.storage.write_bytes``: the process dies just before the ``nth``
    write, or, with ``half``, after writing half its bytes to the temporary file a local write
    makes first (what a kill in the middle of a write leaves)."""

    nth: int
    write: Callable[[str, bytes], None]
    half: bool = False
    done: int = field(default=0, init=False)

    def __call__(self, uri: str, data: bytes) -> None:
        self.done += 1
        if self.done == self.nth:
            if self.half and "://" not in uri:
                target = Path(uri)
                target.parent.mkdir(parents=True, exist_ok=True)
                target.with_name(f".{target.name}.killed.tmp").write_bytes(data[: len(data) // 2])
            os._exit(CRASH_STATUS)
        self.write(uri, data)


def die_reading(file_name: str) -> Callable[[], None]:
    """A Ray ``worker_process_setup_hook`` (Ray wants a function): in every worker of the job, the
    annotation job's read task dies on the shard named ``file_name``, every time it is tried."""

    def patch_the_read() -> None:
        from adabiobert.distributed import annotation

        split_shard = annotation.split_shard

        def split_or_die(uri: str, *args, **kwargs):
            if PurePosixPath(uri).name == file_name:
                os._exit(1)
            return split_shard(uri, *args, **kwargs)

        annotation.split_shard = split_or_die

    return patch_the_read


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--crash-at", default=None, help="STEP:N, see CrashAtCommitStep")
    parser.add_argument("--die-reading", default=None, help="a shard's file name, see die_reading")
    parser.add_argument("--relink", action="store_true", help="run jobs/relink.py instead of jobs/annotate.py")
    parser.add_argument("--ingest-dies-at-write", default=None, help="N or N:half: run jobs/ingest_pmc.py, see DieAtWrite")
    parser.add_argument("job", nargs=argparse.REMAINDER, help="-- then jobs/annotate.py's arguments")
    args = parser.parse_args(argv)
    job = args.job[1:] if args.job[:1] == ["--"] else args.job
    if args.relink:
        from jobs import relink as relink_job

        step, _, nth = (args.crash_at or "").partition(":")
        return relink_job.main(job, hook=CrashAtCommitStep(step, int(nth or 1)) if step else None)
    if args.ingest_dies_at_write:
        from adabiobert import storage
        from jobs import ingest_pmc

        nth, _, half = args.ingest_dies_at_write.partition(":")
        storage.write_bytes = DieAtWrite(int(nth), storage.write_bytes, half == "half")
        return ingest_pmc.main(job)
    import ray

    from adabiobert.distributed.annotation import run_annotation
    from adabiobert.distributed.session import quiet_ray_data
    from jobs import annotate as annotate_job

    if args.die_reading:  # before the job's init_ray, which then finds Ray started
        ray.init(address=os.environ.get("RAY_ADDRESS") or "local", log_to_driver=False,
                 runtime_env={"worker_process_setup_hook": die_reading(args.die_reading)})
        quiet_ray_data()
    if not args.crash_at:
        return annotate_job.main(job)
    config, _ = annotate_job.parse_args(job)
    step, _, nth = args.crash_at.partition(":")
    run_annotation(config, hook=CrashAtCommitStep(step, int(nth or 1)), log=lambda line: print(line, file=sys.stderr))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
