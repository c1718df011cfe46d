"""Turn PMC OA JATS files, or archives of PMC's legacy bulk packages, into Parquet shards (local or s3://).

Today's PMC is read by jobs/sync_pmc.py (PMC's Cloud Service); PMC removed the bulk packages
and their file lists in August 2026, and this job reads the copies you hold.

    python jobs/ingest_pmc.py ../shared/pmc-sample --output runs/pmc-shards
    python jobs/ingest_pmc.py s3://bucket/oa/ --output s3://bucket/shards --articles-per-shard 1000
    python jobs/ingest_pmc.py mirror/oa_bulk/oa_comm/xml/ --output runs/pmc-shards   # archived bulk packages + file lists
    python jobs/ingest_pmc.py mirror/oa_bulk/oa_comm/xml/ --output runs/pmc-shards --workers 16   # on Ray
    python jobs/ingest_pmc.py oa_comm_xml.incr.2024-06-19.tar.gz --output runs/pmc-shards --append --batch 2024-06-19

Writes part-00000.parquet ..., rejects.parquet and ingest_stats.json (see docs/pmc-shards.md); with
--workers N > 1, N packages (or groups of loose files) at a time on Ray, the same files.
With --append, the same files in a new batch folder <output>/batch=<id>/ of a root that may hold
shards; articles whose version the root holds already, or a newer one, are rejects. A batch is
committed by its _committed.json, written last; a run that was killed is finished by running it
again (with its --batch, or none): readers leave the unfinished batch out until then.
One run at a time per output (root): the run holds <output>/_lease.json (docs/operations.md).
Under ``ray job submit`` relative inputs or --output are refused (adabiobert/submission.py).
Exit status: 0 done; 2 refused before writing anything (one line on stderr): an --output that
already holds shards, no input found, a bad argument, an unfinished batch other than --batch;
4 another run holds the output (one line naming it); 75 Ray did not start in time (--workers > 1).
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without install

from adabiobert.cli.kit import ArgumentParser, refuse  # noqa: E402
from adabiobert.distributed.startup import report_startup_timeout  # noqa: E402
from adabiobert.errors import AdaBioBertError, ConfigError  # noqa: E402
from adabiobert.job_configs import IngestConfig  # noqa: E402
from adabiobert.pmc.ingest import ingest  # noqa: E402
from adabiobert.submission import check_job_paths  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = ArgumentParser(prog="jobs/ingest_pmc.py", description=__doc__)
    parser.add_argument("inputs", nargs="+", help=".nxml files, .tar.gz packages (a PMC bulk package's .filelist.csv "
                        "beside it is read too) or folders (local or s3://)")
    parser.add_argument("--output", required=True, help="folder for the shards (local or s3://); must hold no .parquet yet")
    parser.add_argument("--articles-per-shard", type=int, default=1000, help="rows per shard (default 1000)")
    parser.add_argument("--workers", type=int, default=1, help="packages (or groups of loose files) ingested at "
                        "once: 1 (default) in this process, more on Ray tasks ($RAY_ADDRESS, else a local Ray); "
                        "the same shards either way")
    parser.add_argument("--append", action="store_true", help="add a batch <output>/batch=<id>/ to a shard root "
                        "that may hold shards (an incremental package); older or equal versions are rejects")
    parser.add_argument("--batch", default="", help="the appended batch's id (default: the run's UTC time)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    args = parser.parse_args(argv)
    try:
        check_job_paths({"inputs": args.inputs, "--output": args.output})
    except AdaBioBertError as error:
        return refuse(error)
    try:
        config = IngestConfig(tuple(args.inputs), args.output, args.articles_per_shard, not args.no_progress,
                              args.append, args.batch)
    except ConfigError as error:
        parser.error(str(error))
    if args.workers < 1:
        parser.error(f"--workers must be >= 1, got {args.workers}")
    try:
        log = lambda line: print(line, file=sys.stderr, flush=True)  # noqa: E731
        if args.workers == 1:
            stats = ingest(config, log=log)
        else:
            from adabiobert.distributed.ingest import ingest_parallel  # Ray is imported only here

            stats = ingest_parallel(config, args.workers, log=log)
    except AdaBioBertError as error:  # an --output that holds shards already, no input at all, a held lease (4)
        return refuse(error)
    except Exception as error:
        return report_startup_timeout(error)
    if stats.resumed:
        print(f"finished batch {stats.config['batch']}, which an earlier run had started and not committed "
              "(its files were replaced)")
    print(f"{stats.articles} articles in {len(stats.shards)} shards, {stats.rejected} rejected, "
          f"{stats.files} files, {stats.seconds:.1f} s -> {stats.config['output']}")
    if stats.already_ingested or stats.stale_versions:
        print(f"{stats.already_ingested} articles already ingested, {stats.stale_versions} older than the root's "
              "version (rejects)")
    if stats.without_file_list or stats.unlisted_members:  # versions of these come from the JATS dates
        print(f"{stats.without_file_list} packages without a .filelist.csv, {stats.unlisted_members} articles "
              "not in their package's file list (see ingest_stats.json)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
