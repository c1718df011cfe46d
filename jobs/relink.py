"""Re-link an annotation output with another linking index, without tagging anything again.

    python jobs/relink.py --annotations runs/annotations --linking-index runs/linking/2027-01
    python jobs/relink.py --annotations s3://bucket/annotations --linking-index s3://bucket/linking/2027-01 \
        --linking-vocabulary-hash 3f2a...   # refuse an index built from other vocabularies
    python jobs/relink.py --annotations s3://bucket/annotations --linking-index s3://bucket/linking/2027-01 \
        --workers 32                        # link on Ray ($RAY_ADDRESS, else a local Ray), 32 shards at once

For every committed shard not yet linked by this index (and threshold), the entity file is
rewritten with new ``concept_id``, ``concept_name``, ``link_score`` and ``linker_id`` columns
(the article text is read from the input shard for in-document abbreviations), and committed
atomically per shard like every commit of the annotation job; the encoder never runs. A run
killed anywhere is simply run again: its recovery and the shards already re-linked are skipped,
and it ends with the rows of a run that was not killed. Shards written in an older tables version
(2: no articles table) are not re-linked: only jobs/annotate.py, which tags them again, brings them
to the current version; the run names them and ends with status 3. Writes
``<annotations>/runs/<run id>.json``. One run at a time per output root, as for jobs/annotate.py.

--workers N > 1 links N shards at once, one Ray task each (TF-IDF linking is the run's cost: use
it for a whole output, e.g. all of PMC after a new vocabulary release); each worker opens the
index once, and this process still commits every shard, one after the other. The rows are those
of --workers 1, which links one shard after the other in this process without Ray.

Exit status: 0 every tagged shard is linked by the index (or was); 3 completed, but some shards
could not be re-linked (their input shard is gone or changed, or their tables version is older
than the current one: jobs/annotate.py tags them again); 2 refused before any work (one line on stderr: a bad
argument, no index or an index of other vocabularies, no annotation output); 75 Ray did not start
in time (--workers > 1); 1 failed.
"""

from __future__ import annotations

import argparse
import datetime
import sys
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without install

from adabiobert.cli.kit import ArgumentParser, positive_int, refuse  # noqa: E402
from adabiobert.distributed.startup import report_startup_timeout  # noqa: E402
from adabiobert.errors import AdaBioBertError  # noqa: E402
from adabiobert.submission import check_job_paths  # noqa: E402

EXIT_INCOMPLETE = 3
"""Completed, but some shards could not be re-linked (listed in the run summary)."""


def parse_args(argv: list[str] | None):
    parser = ArgumentParser(prog="jobs/relink.py", description=__doc__)
    parser.add_argument("--annotations", required=True, help="the --output of jobs/annotate.py (local or s3://)")
    index = parser.add_mutually_exclusive_group(required=True)
    index.add_argument("--linking-index", default=None, help="the index folder (jobs/build_linking_index.py)")
    index.add_argument("--no-index", action="store_true",
                       help="no links: clear the concept columns")
    parser.add_argument("--linking-threshold", type=_threshold, default=0.7, help="below it the linker abstains")
    parser.add_argument("--linking-vocabulary-hash", default=None,
                        help="refuse an index not built from these vocabularies (the hash the build job prints)")
    parser.add_argument("--shards", default=None, help="the folder the input shards live in now, if they moved")
    parser.add_argument("--workers", type=positive_int, default=1, help="shards linked at once, one Ray task each "
                        "($RAY_ADDRESS, else a local Ray); default 1: one after the other in this process, no Ray")
    parser.add_argument("--run-id", default=None, help="default: UTC time and a random suffix")
    args = parser.parse_args(argv)
    if args.linking_vocabulary_hash and args.no_index:
        parser.error("--linking-vocabulary-hash checks an index: give --linking-index")
    return args


def _threshold(text: str) -> float:
    value = float(text)
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"must be in [0, 1], got {value}")
    return value


def main(argv: list[str] | None = None, hook=None) -> int:
    args = parse_args(argv)
    try:
        check_job_paths({"--annotations": args.annotations, "--linking-index": args.linking_index, "--shards": args.shards})
    except AdaBioBertError as error:
        return refuse(error)
    from adabiobert.annotation.relink import Linking, relink_output
    from adabiobert.linking.artifact import inspect_index, open_linker

    run_id = args.run_id or f"{datetime.datetime.now(datetime.timezone.utc):%Y%m%dT%H%M%SZ}-relink-{uuid.uuid4().hex[:6]}"
    try:
        linking = Linking()
        if args.linking_index:
            artifact = inspect_index(args.linking_index, args.linking_vocabulary_hash)
            linker = open_linker(artifact.uri, artifact.index_hash, args.linking_threshold)
            linking = Linking(linker, artifact, args.linking_threshold)
        log = lambda line: print(line, file=sys.stderr, flush=True)  # noqa: E731
        if args.workers == 1:
            summary = relink_output(args.annotations, linking, run_id, args.shards, hook=hook, log=log)
        else:
            from adabiobert.distributed.relink import relink_on_ray  # Ray is imported only here

            summary = relink_on_ray(args.annotations, linking, run_id, args.workers, args.shards, hook=hook, log=log)
    except AdaBioBertError as error:  # no index there, other vocabularies, no annotation output
        return refuse(error)
    except Exception as error:
        return report_startup_timeout(error)
    print(f"run {run_id} ({linking.linker_id or 'no index'}): {summary.shards_relinked} shards re-linked, "
          f"{summary.shards_up_to_date} up to date, {summary.shards_quarantined} quarantined; "
          f"{summary.mentions_linked} of {summary.mentions_relinked} re-linked mentions have an identifier; "
          f"{summary.seconds['total']:.1f} s")
    if summary.shards_failed or summary.shards_to_tag:
        print(f"completed without {len(summary.shards_failed)} shards whose text is gone or changed and "
              f"{len(summary.shards_to_tag)} of an older tables version (a re-link does not upgrade them: version 2 "
              f"has no articles table): run jobs/annotate.py, which tags them again (runs/{run_id}.json lists them)",
              file=sys.stderr)
        return EXIT_INCOMPLETE
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
