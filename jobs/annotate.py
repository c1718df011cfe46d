"""Tag PMC shards with a saved tagger; write Hive-partitioned entity tables (see docs/entity-tables.md).

    python jobs/annotate.py --shards runs/pmc-shards --model runs/ncbi/model --output runs/annotations
    ray job submit --working-dir . -- python jobs/annotate.py --gpu \
        --shards s3://bucket/shards --model s3://bucket/runs/ncbi/model --output s3://bucket/annotations

Nightly and incremental: a run tags only shards that are new, changed, or were tagged by another
model, and commits each shard's rows atomically; a killed run is simply run again. With
--linking-index (jobs/build_linking_index.py) every mention gets a concept identifier; shards tagged
before and linked otherwise are re-linked without tagging (as jobs/relink.py does). Plain
``python`` starts a local Ray; under ``ray job submit`` (RAY_ADDRESS set) it joins the cluster, and
a relative --shards, --model or --output is refused (adabiobert/submission.py).
S3 credentials come from the standard AWS chain; ``--endpoint-url`` (or AWS_ENDPOINT_URL) names
another S3 endpoint such as MinIO.

One run at a time per --output: a run holds <output>/_lease.json from before it touches the
output (docs/operations.md, "One writer per output").

Exit status: 0 every listed shard is committed; 3 completed with quarantined shards, or shards
whose text could not be read to re-link them (every other shard is committed; the run summary
lists them); 2 refused before any work (a bad argument, no bundle at --model, no --shards, a
--types the bundle does not tag, no index at --linking-index or one of other vocabularies; one
line on stderr); 4 refused because another run holds the output (one line naming it: host, pid or
Ray job, start time);
75 Ray did not start in time (one line names the setting that gives it longer); 1 failed.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without install

from adabiobert.cli.kit import PRECISIONS, ArgumentParser, refuse  # noqa: E402
from adabiobert.errors import AdaBioBertError, ConfigError  # noqa: E402
from adabiobert.job_configs import AnnotateConfig, AnnotationJobConfig  # noqa: E402
from adabiobert.labels import parse_types  # noqa: E402
from adabiobert.submission import check_job_paths  # noqa: E402

EXIT_QUARANTINED = 3
"""The run completed, but some shards are quarantined (their read or split failed) or held."""


def parse_args(argv: list[str] | None) -> tuple[AnnotationJobConfig, str | None]:
    d, a = AnnotationJobConfig("", "", ""), AnnotateConfig()
    parser = ArgumentParser(prog="jobs/annotate.py", description=__doc__)
    parser.add_argument("--shards", required=True, help="a shard or a folder of shards (local or s3://)")
    parser.add_argument("--model", required=True, help="bundle folder (local or s3://)")
    parser.add_argument("--output", required=True,
                        help="output root (local or s3://); the tables are <output>/entities and <output>/rejections")
    parser.add_argument("--run-date", default=None, help="partition date YYYY-MM-DD (default: today, UTC)")
    parser.add_argument("--run-id", default=None, help="default: UTC time and a random suffix")
    parser.add_argument("--endpoint-url", default=None, help="S3 endpoint (default: $AWS_ENDPOINT_URL or AWS)")
    compute = parser.add_argument_group("compute")
    compute.add_argument("--gpu", action="store_true", help="one tagger actor per GPU")
    compute.add_argument("--precision", choices=PRECISIONS, default=d.precision,
                         help="auto: bf16 on GPU or on a CPU with native bf16 (avx512_bf16/amx_bf16), else int8; "
                              "recorded in the run summary with the reason")
    compute.add_argument("--num-actors", type=int, default=None, help="tagger actors (default: sized to the cluster)")
    compute.add_argument("--cpu-threads", type=int, default=None, help="torch threads per CPU actor")
    compute.add_argument("--documents-per-call", type=int, default=d.documents_per_call,
                         help="articles per tagger call")
    compute.add_argument("--documents-per-split", type=int, default=d.documents_per_split,
                         help="articles per split batch")
    compute.add_argument("--subword-budget", type=int, default=d.subword_budget, help="subwords per forward pass")
    rules = parser.add_argument_group("input rules")
    rules.add_argument("--max-document-chars", type=int, default=a.max_document_chars,
                       help="longer articles are rejected")
    rules.add_argument("--allow-control-characters", action="store_true", help="tag articles with control characters")
    rules.add_argument("--types", default=None,
                       help="write only these entity types, joined by commas (e.g. Gene,Disease; default: every type "
                            "the bundle tags); a type the bundle does not tag is refused")
    linking = parser.add_argument_group("entity linking")
    linking.add_argument("--linking-index", default=None,
                         help="a linking index folder (local or s3://, jobs/build_linking_index.py): each mention gets "
                              "a concept_id; default: no links")
    linking.add_argument("--linking-threshold", type=float, default=a.linking_threshold,
                         help="below this score the linker abstains (concept_id null, link_score kept)")
    linking.add_argument("--linking-vocabulary-hash", default=None,
                         help="refuse an index not built from these vocabularies (the hash the build job prints)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    args = parser.parse_args(argv)
    try:
        return _config(args), args.endpoint_url
    except ConfigError as error:  # a value out of range (a bad --run-date, a count < 1)
        parser.error(str(error))


def _config(args) -> AnnotationJobConfig:
    return AnnotationJobConfig(
        shards=args.shards,
        output=args.output,
        model=args.model,
        run_date=args.run_date,
        run_id=args.run_id,
        use_gpu=args.gpu,
        precision=args.precision,
        num_actors=args.num_actors,
        cpu_threads_per_actor=args.cpu_threads,
        documents_per_call=args.documents_per_call,
        documents_per_split=args.documents_per_split,
        subword_budget=args.subword_budget,
        annotate=AnnotateConfig(args.max_document_chars, not args.allow_control_characters,
                                parse_types(args.types) if args.types is not None else None,
                                linking_index=args.linking_index, linking_threshold=args.linking_threshold,
                                linking_vocabulary_hash=args.linking_vocabulary_hash),
        show_progress=not args.no_progress,
    )


def main(argv: list[str] | None = None) -> int:
    config, endpoint_url = parse_args(argv)
    try:
        check_job_paths({"--shards": config.shards, "--model": config.model, "--output": config.output,
                         "--linking-index": config.annotate.linking_index})
    except AdaBioBertError as error:
        return refuse(error)
    if endpoint_url:
        os.environ["AWS_ENDPOINT_URL"] = endpoint_url  # read by adabiobert.storage, forwarded to workers
    from adabiobert.distributed.annotation import run_annotation
    from adabiobert.distributed.startup import report_startup_timeout

    try:
        summary = run_annotation(config, log=lambda line: print(line, file=sys.stderr, flush=True))
    except AdaBioBertError as error:  # no bundle at --model, no shard at --shards, --gpu without a GPU, a held lease (4)
        return refuse(error)
    except Exception as error:
        return report_startup_timeout(error)
    print(
        f"run {summary['run_id']} ({summary['model_id']}): {summary['shards_committed']} shards tagged, "
        f"{summary['shards_up_to_date']} up to date; {summary['documents_in']} articles in = "
        f"{summary['documents_tagged']} tagged + {summary['documents_rejected']} rejected; "
        f"{summary['sentences']} sentences, {summary['mentions']} mentions, {summary['seconds']['total']:.1f} s; "
        f"precision {summary['precision']['precision']} ({summary['precision']['reason']})"
    )
    if summary["linking"]:
        print(f"linking {summary['linking']['linker_id']} (index {summary['linking']['index_hash']}): "
              f"{summary['mentions_linked']} mentions with an identifier; {summary['shards_relinked']} shards "
              f"re-linked without tagging")
    if summary["articles_superseded"] or summary["articles_retracted"]:
        print(f"versions: {summary['articles_superseded']} superseded and {summary['articles_retracted']} retracted "
              f"articles left out of the tables ({summary['shards_amended']} committed shards amended)")
    quarantined, held = summary["shards_quarantined"], summary["shards_held"]
    if quarantined or held:
        print(f"completed with quarantined shards: {quarantined} quarantined by this run, {held} held from earlier "
              f"runs (rejections with reason 'quarantined'; runs/{summary['run_id']}.json lists them)", file=sys.stderr)
    if summary["relink_failed"]:
        print(f"completed without re-linking {len(summary['relink_failed'])} shards whose text could not be read "
              f"(runs/{summary['run_id']}.json lists them; the next run tries again)", file=sys.stderr)
    return EXIT_QUARANTINED if quarantined or held or summary["relink_failed"] else 0


if __name__ == "__main__":
    raise SystemExit(main())
