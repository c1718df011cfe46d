"""Sync a shard root with PMC's Cloud Service (s3://pmc-oa-opendata): the nightly source of new articles.

    python jobs/sync_pmc.py --output s3://your-bucket/pmc-shards                     # newest inventory
    python jobs/sync_pmc.py --output runs/pmc-shards --since 2026-12-01 --max-articles 1000   # a trial
    python jobs/sync_pmc.py --output s3://your-bucket/pmc-shards --license commercial --workers 32

Reads PMC's newest daily inventory of the bucket's metadata/ keys, compares it with the inventory
the last successful sync applied (<output>/_sync/), and fetches on Ray what is new or changed:
each version's metadata JSON, then its JATS XML. Writes the batch <output>/batch=pmc-<inventory
date>/ (shards of schema version 3, rejects.parquet, sync_stats.json) and a tombstone row for each
version PMC removed; annotation keeps the highest PMC version of each article and drops retracted
and removed ones (docs/pmc-shards.md, "The PMC Cloud Service"). The first run on an empty root is
the baseline (about 8 million versions: bound a trial with --since or --max-articles). A run
killed at any point is simply started again: it finishes the interrupted sync first, with nothing
fetched twice. The bucket is public: without AWS credentials requests are sent unsigned.
Exit status: 0 done (or already up to date); 2 refused before fetching anything (one line on
stderr): a bad argument, no inventory at --source; 75 Ray did not start in time.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without install

from adabiobert.cli.kit import ArgumentParser, positive_int, refuse  # noqa: E402
from adabiobert.distributed.startup import report_startup_timeout  # noqa: E402
from adabiobert.errors import AdaBioBertError, ConfigError  # noqa: E402
from adabiobert.job_configs import PMC_OPEN_DATA, SyncConfig  # noqa: E402
from adabiobert.pmc.sync import sync  # noqa: E402
from adabiobert.submission import check_job_paths  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = ArgumentParser(prog="jobs/sync_pmc.py", description=__doc__)
    parser.add_argument("--output", required=True, help="the shard root (local or s3://); its _sync/ folder keeps "
                        "the state of the last sync")
    parser.add_argument("--source", default=PMC_OPEN_DATA, help=f"the bucket (default {PMC_OPEN_DATA}), or a "
                        "local folder or S3 prefix laid out like it")
    parser.add_argument("--license", default="open-access", help="open-access (default: every article), commercial "
                        "(CC0, CC BY, CC BY-SA, CC BY-ND), or license_code values joined by commas")
    parser.add_argument("--inventory", default="", help="sync to this inventory (e.g. 2026-12-05T01-00Z) instead "
                        "of the newest")
    parser.add_argument("--since", default="", help="only versions changed on or after this UTC date (YYYY-MM-DD); "
                        "the rest stay pending for a later run")
    parser.add_argument("--max-articles", type=int, default=None, help="fetch at most this many versions, newest "
                        "first; the rest stay pending")
    parser.add_argument("--articles-per-shard", type=positive_int, default=1000, help="versions per fetch unit and "
                        "shard (default 1000)")
    parser.add_argument("--workers", type=positive_int, default=2, help="units fetched at once, one Ray task each "
                        "($RAY_ADDRESS, else a local Ray; default 2); 1: one after the other in this process, no Ray")
    parser.add_argument("--fetch-threads", type=positive_int, default=16, help="concurrent GETs per unit (default 16)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    args = parser.parse_args(argv)
    try:
        check_job_paths({"--output": args.output, "--source": args.source})
    except AdaBioBertError as error:
        return refuse(error)
    try:
        config = SyncConfig(args.output, args.source, args.license, args.inventory, args.since, args.max_articles,
                            args.articles_per_shard, args.workers, args.fetch_threads, not args.no_progress)
    except ConfigError as error:
        parser.error(str(error))
    try:
        if args.workers == 1:
            stats = sync(config)
        else:
            from adabiobert.distributed.sync import sync_on_ray  # Ray is imported only here

            stats = sync_on_ray(config)
    except AdaBioBertError as error:  # no inventory, an unknown licence filter
        return refuse(error)
    except Exception as error:
        return report_startup_timeout(error)
    if "up_to_date" not in stats and stats["pending"]:
        print(f"{stats['pending']} new or changed versions left for the next run (--since/--max-articles)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
