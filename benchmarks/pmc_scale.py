"""Scale run (issue 10, item 4): generate a PMC-shaped corpus, ingest it, tag it; watch the driver.

    python benchmarks/pmc_scale.py --shared ../shared                          # 100,000 articles, 2 CPUs (hours)
    python benchmarks/pmc_scale.py --shared ../shared --articles 1000 --checkpoints 200,500,1000 \\
        --articles-per-shard 100 --out /tmp/pmc_scale.json                      # smoke run (minutes)

One process (the driver), in order:

1. **generate** ``--articles`` articles (``adabiobert/testing/pmc_generator.py``: the corpora's
   train sentences, lengths log-normal fitted to the PMC samples' sentence counts) into
   ``--baseline-packages`` baseline and ``--incremental-packages`` incremental bulk packages with
   file lists, in a temporary folder (nothing is written to the repository);
2. **ingest** them on Ray (``ingest_parallel``, ``--workers``) into shards of
   ``--articles-per-shard``; every article must come through (0 rejects);
3. **annotate** the shards (``run_annotation``) with a tiny random BERT tagger (2 layers, hidden
   32, built here from NCBI-disease's words; its B- bias set so that about ``--mention-rate`` of
   the words start a mention) on ``--actors`` CPU tagger actors.

Ray is started here, local, with ``--cpus`` CPUs (``--object-store-mb``: its store; Ray's default
otherwise). Measured and written as JSON (``--out``) and a Markdown table (beside it, ``.md``):

- articles/s of each phase (wall time of the whole call: generation, ingest, annotation);
- the driver's RSS, sampled every ``--rss-interval`` s in a thread: the peak of each phase, and
  during annotation the peak so far and the current RSS when the committed articles pass each of
  ``--checkpoints`` (read from the job's commit hook, shard by shard) and after every shard. The
  driver holds at most the shards in flight, so the peak should stay flat as articles go by;
- object store spill and restore during each phase (Ray's store stats, the numbers behind
  ``ray memory --stats-only``, before and after);
- the share of the annotation's wall time outside the tagger: ``1 - tag_busy / (actors x total)``,
  where ``tag_busy`` sums the seconds the tagger actors spent in ``tag_documents`` (the job's
  ``seconds.tag_busy``) and ``total`` is the job's wall time (Ray already started); the same
  against the job's ``stream`` time (read, split and tag overlapping, without the commits);
- the driver's CPU seconds during annotation, per article (grouping the tagged rows, the commits,
  Ray's own threads in the driver): one driver can take at most 1 / that many articles/s, however
  many GPUs tag; the commit seconds per shard and the split's CPU seconds per article (the job's
  ``seconds.commit`` and ``seconds.split_busy``), for the extrapolation in ``docs/operations.md``;
- the entity tables: the articles that have a row, against the articles generated.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import shutil
import statistics
import sys
import tempfile
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from adabiobert.testing.pmc_generator import (  # noqa: E402
    CorpusSpec,
    Generated,
    corpus_sentences,
    fit_lengths,
    generate,
    generated_pmcids,
    sample_lengths,
)

MB = 1024 * 1024


@dataclass(frozen=True)
class ScaleSettings:
    """One scale run (the command-line flags of :func:`main`)."""

    shared: Path
    """``../shared``: corpora, PMC samples."""
    work: Path
    """Folder for the packages, shards, entity tables and the bundle."""
    articles: int = 100_000
    checkpoints: tuple[int, ...] = (10_000, 50_000, 100_000)
    """Committed-article counts at which the driver's RSS is recorded."""
    articles_per_shard: int = 1000
    baseline_packages: int = 4
    incremental_packages: int = 5
    seed: int = 0
    workers: int = 2
    """Ingest units at once (Ray tasks)."""
    actors: int = 1
    """Tagger actors (one CPU and one torch thread each)."""
    documents_per_call: int = 32
    mention_rate: float = 0.02
    rss_interval: float = 0.2
    model: Path | None = None
    """A bundle to tag with; None builds the tiny random one."""

    def __post_init__(self) -> None:
        if not self.checkpoints or sorted(self.checkpoints) != list(self.checkpoints) or self.checkpoints[-1] > self.articles:
            raise ValueError(f"checkpoints must be increasing and at most --articles ({self.articles}), got {self.checkpoints}")


# ---------------------------------------------------------------------------------------------
# Measuring
# ---------------------------------------------------------------------------------------------
class RssSampler:
    """The driver's resident set size, sampled in a thread; :meth:`phase` restarts the peak."""

    def __init__(self, interval: float) -> None:
        import psutil

        self._process = psutil.Process()
        self._interval = interval
        self._stop = threading.Event()
        self.peak = self.current()
        self._thread = threading.Thread(target=self._run, name="rss-sampler", daemon=True)
        self._thread.start()

    def current(self) -> int:
        return self._process.memory_info().rss

    def cpu_seconds(self) -> float:
        """CPU time of the driver process so far, every thread (Ray's own in the driver included)."""
        times = self._process.cpu_times()
        return times.user + times.system

    def sample(self) -> int:
        """The RSS now (also counted into the peak)."""
        rss = self.current()
        self.peak = max(self.peak, rss)
        return rss

    def phase(self) -> None:
        self.peak = self.current()

    def _run(self) -> None:
        while not self._stop.wait(self._interval):
            self.sample()

    def close(self) -> None:
        self._stop.set()
        self._thread.join()


def high_water_mark() -> int | None:
    """The process's peak RSS since it started (``VmHWM``), where ``/proc`` has it."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def store_stats() -> dict:
    """Cumulative spill/restore counters and usage of the Ray object store, cluster-wide (what
    ``ray memory --stats-only`` prints; Ray Data reads the same reply for its own stats)."""
    import ray
    from ray._private.internal_api import get_memory_info_reply, get_state_from_address

    stats = get_memory_info_reply(get_state_from_address(ray.get_runtime_context().gcs_address)).store_stats
    return {"spilled_bytes": stats.spilled_bytes_total, "spilled_objects": stats.spilled_objects_total,
            "restored_bytes": stats.restored_bytes_total, "restored_objects": stats.restored_objects_total,
            "store_bytes_used": stats.object_store_bytes_used, "store_bytes_avail": stats.object_store_bytes_avail}


def _spill(before: dict, after: dict) -> dict:
    keys = ("spilled_bytes", "spilled_objects", "restored_bytes", "restored_objects")
    return {k: after[k] - before[k] for k in keys} | {"store_bytes_avail": after["store_bytes_avail"]}


class CommitWatch:
    """The annotation job's commit hook: counts committed articles shard by shard, records the
    driver's RSS after each shard and at each checkpoint, and the bytes Arrow holds live in the
    driver (RSS that grows while those stay flat is the allocator keeping freed pages, not
    tables kept alive)."""

    def __init__(self, shard_rows: dict[str, int], checkpoints: tuple[int, ...], rss: RssSampler) -> None:
        self.shard_rows, self.rss = shard_rows, rss
        self.pending = list(checkpoints)
        self.committed = 0
        self.started = time.perf_counter()
        self.shards: list[dict] = []
        self.checkpoints: list[dict] = []

    def __call__(self, step: str, shard: str) -> None:
        if step != "marked":  # the commit point of a shard (annotation.commit)
            return
        import pyarrow

        self.committed += self.shard_rows[shard]
        row = {"articles": self.committed, "seconds": round(time.perf_counter() - self.started, 2),
               "rss_mb": round(self.rss.sample() / MB, 1), "peak_rss_mb": round(self.rss.peak / MB, 1),
               "arrow_allocated_mb": round(pyarrow.total_allocated_bytes() / MB, 1)}
        self.shards.append(row)
        while self.pending and self.committed >= self.pending[0]:
            self.checkpoints.append({"checkpoint": self.pending.pop(0), **row})
            print(f"  committed {self.committed:>7} articles  {row['seconds']:8.1f} s  driver RSS {row['rss_mb']:7.1f} MB "
                  f"(peak {row['peak_rss_mb']:.1f} MB)", flush=True)


# ---------------------------------------------------------------------------------------------
# The tiny random tagger
# ---------------------------------------------------------------------------------------------
def tiny_random_bundle(folder: Path, corpora: Path, mention_rate: float, seed: int = 0) -> Path:
    """A random 2-layer BERT (hidden 32) tagger for NCBI-disease's tags, untrained; its
    ``B-Disease`` bias raised so that about ``mention_rate`` of the words of 200 NCBI-disease train
    sentences score B above O (a random model otherwise tags all or nothing)."""
    import torch

    from adabiobert.corpora.iob import load_corpus
    from adabiobert.model.assembly import build_example_encoder, build_model
    from adabiobert.model.backbone import load_tokenizer
    from adabiobert.model.batching import collate
    from adabiobert.model.checkpoint import save_bundle
    from adabiobert.testing.tiny_models import tiny_backbone
    from adabiobert.training_config import ModelConfig, TrainConfig

    ncbi = load_corpus("NCBI-disease", corpora)
    backbone = tiny_backbone(folder / "backbone", [s.words for s in ncbi.train], seed=seed)
    config = TrainConfig(model=ModelConfig(backbone=str(backbone), max_subwords=128, window_overlap=32))
    torch.manual_seed(seed)
    tokenizer = load_tokenizer(config.model.backbone)
    model = build_model(config, ncbi.labels, None)
    model.eval()
    examples = build_example_encoder(config.model, model, tokenizer, None).encode_tagged(ncbi.train[:200])
    with torch.no_grad():
        batch = collate(examples, tokenizer.pad_token_id)
        emissions = model.emissions(batch)[batch["word_mask"]]  # (words, tags)
        begin, outside = ncbi.labels.tags.index("B-Disease"), ncbi.labels.tags.index("O")
        margin = emissions[:, begin] - emissions[:, outside]  # (words,)
        model.classifier.bias[begin] -= torch.quantile(margin, 1 - mention_rate)
    return save_bundle(folder / "model", model, tokenizer, config.model, None, {"name": "tiny-random"})


# ---------------------------------------------------------------------------------------------
# The run
# ---------------------------------------------------------------------------------------------
def run_scale(settings: ScaleSettings) -> dict:
    """Generate, ingest and annotate as the module docstring says; return the report.

    Ray must be initialised by the caller (:func:`main` starts a local one).

    Raises:
        RuntimeError: ingest rejected an article or lost one.
    """
    import pyarrow.parquet as pq

    from adabiobert.distributed.annotation import run_annotation
    from adabiobert.distributed.ingest import ingest_parallel
    from adabiobert.job_configs import AnnotationJobConfig, IngestConfig

    rss = RssSampler(settings.rss_interval)
    try:
        report: dict = {"rss_at_start_mb": round(rss.current() / MB, 1)}
        corpora = settings.shared / "corpora"

        # 1. generate
        counts = sample_lengths(settings.shared / "pmc-sample")
        spec = CorpusSpec(settings.articles, settings.baseline_packages, settings.incremental_packages,
                          lengths=fit_lengths(counts), seed=settings.seed)
        pool = corpus_sentences(corpora)
        rss.phase()
        generated = generate(settings.work / "oa_bulk", spec, pool)
        report["generate"] = _generation_report(generated, spec, counts, len(pool), rss.peak)
        del pool
        print(f"generated {generated.articles} articles ({generated.sentences} sentences, "
              f"{generated.package_bytes / 1e6:.0f} MB gzip) in {generated.seconds:.1f} s: "
              f"{generated.articles / generated.seconds:.0f} articles/s", flush=True)

        # 2. ingest
        rss.phase()
        before = store_stats()
        ingest_config = IngestConfig((str(settings.work / "oa_bulk"),), str(settings.work / "shards"),
                                     settings.articles_per_shard, show_progress=False)
        mark = time.perf_counter()
        stats = ingest_parallel(ingest_config, workers=settings.workers)
        seconds = time.perf_counter() - mark
        if stats.rejected or stats.articles != generated.articles:
            raise RuntimeError(f"ingest kept {stats.articles} of {generated.articles} articles, {stats.rejected} "
                               f"rejected: see {settings.work / 'shards' / 'rejects.parquet'}")
        report["ingest"] = {"seconds": round(seconds, 2), "articles": stats.articles, "rejected": stats.rejected,
                            "shards": len(stats.shards), "file_lists": stats.file_lists, "workers": stats.workers,
                            "articles_per_s": round(stats.articles / seconds, 1),
                            "driver_peak_rss_mb": round(rss.peak / MB, 1), "object_store": _spill(before, store_stats())}
        print(f"ingested {stats.articles} articles into {len(stats.shards)} shards in {seconds:.1f} s: "
              f"{stats.articles / seconds:.0f} articles/s, 0 rejected", flush=True)

        # 3. annotate
        model = settings.model or tiny_random_bundle(settings.work / "tagger", corpora, settings.mention_rate, settings.seed)
        shard_rows = {name: pq.read_metadata(settings.work / "shards" / name).num_rows for name in stats.shards}
        annotation = AnnotationJobConfig(str(settings.work / "shards"), str(settings.work / "annotations"), str(model),
                                         run_date="2024-06-21", num_actors=settings.actors, cpu_threads_per_actor=1,
                                         documents_per_call=settings.documents_per_call, show_progress=False)
        rss.phase()
        watch = CommitWatch(shard_rows, settings.checkpoints, rss)
        before, cpu = store_stats(), rss.cpu_seconds()
        mark = time.perf_counter()
        summary = run_annotation(annotation, hook=watch, log=lambda line: print(f"  {line}", flush=True))
        seconds = time.perf_counter() - mark
        report["annotate"] = _annotation_report(summary, seconds, settings.actors, watch, rss.peak,
                                                _spill(before, store_stats()), rss.cpu_seconds() - cpu)
        found = _entity_pmcids(settings.work / "annotations")
        report["entity_articles"] = len(found)
        report["generated_articles_with_entities"] = len(found & set(generated_pmcids(spec)))
        report["driver_vm_hwm_mb"] = round((high_water_mark() or 0) / MB, 1)
        return report
    finally:
        rss.close()


def _generation_report(generated: Generated, spec: CorpusSpec, counts: list[int], pool: int, peak: int) -> dict:
    lengths = sorted(generated.lengths)
    quantile = lambda q: lengths[min(len(lengths) - 1, int(q * len(lengths)))]  # noqa: E731
    return {
        "articles": generated.articles, "sentences": generated.sentences, "packages": len(generated.packages),
        "package_names": [Path(p).name for p in generated.packages][:3] + ["..."] * (len(generated.packages) > 3),
        "package_bytes": generated.package_bytes, "seconds": round(generated.seconds, 2),
        "articles_per_s": round(generated.articles / generated.seconds, 1),
        "sentence_pool": pool,
        "length_model": {**asdict(spec.lengths), "fitted_to": counts},
        "lengths": {"mean": round(statistics.fmean(lengths), 1), "p10": quantile(0.1), "median": quantile(0.5),
                    "p90": quantile(0.9), "max": lengths[-1]},
        "driver_peak_rss_mb": round(peak / MB, 1),
    }


def _annotation_report(summary: dict, seconds: float, actors: int, watch: CommitWatch, peak: int, spill: dict,
                       driver_cpu: float) -> dict:
    stages = summary["seconds"]
    tag_busy = stages.get("tag_busy", 0.0)
    return {
        "seconds": round(seconds, 2), "job_seconds": stages,
        "articles": summary["documents_in"], "tagged": summary["documents_tagged"],
        "rejected": summary["documents_rejected"], "sentences": summary["sentences"], "words": summary["words"],
        "mentions": summary["mentions"], "shards": summary["shards_committed"],
        "quarantined": summary["shards_quarantined"], "actors": actors,
        "articles_per_s": round(summary["documents_in"] / seconds, 2),
        "steady_articles_per_s": _steady_rate(watch.checkpoints),
        "mentions_per_sentence": round(summary["mentions"] / max(1, summary["sentences"]), 2),
        "sentences_per_s": round(summary["sentences"] / seconds, 1),
        "tagger_sentences_per_s_per_actor": round(summary["sentences"] / tag_busy, 1) if tag_busy else None,
        "outside_tagger_share": round(1 - tag_busy / (actors * stages["total"]), 4),
        "outside_tagger_share_of_stream": round(1 - tag_busy / (actors * stages["stream"]), 4) if stages.get("stream") else None,
        "commit_seconds_per_shard": round(stages.get("commit", 0.0) / max(1, summary["shards_committed"]), 4),
        "split_seconds_per_article": round(stages.get("split_busy", 0.0) / max(1, summary["documents_in"]), 5),
        "driver_peak_rss_mb": round(peak / MB, 1),
        "driver_cpu_seconds": round(driver_cpu, 2),
        "driver_cpu_seconds_per_article": round(driver_cpu / max(1, summary["documents_in"]), 5),
        "checkpoints": watch.checkpoints,
        "by_shard": watch.shards,
        "object_store": spill,
    }


def _steady_rate(checkpoints: list[dict]) -> float | None:
    """Articles/s between the first and the last checkpoint: without the start-up (actor and
    model load, the first read) that the whole run's rate includes. Counted at commit time: a
    shard commits when its last article is back, so shards tagged before the first checkpoint
    but committed after it inflate the rate when that checkpoint is only a few shards in."""
    if len(checkpoints) < 2 or checkpoints[-1]["seconds"] <= checkpoints[0]["seconds"]:
        return None
    first, last = checkpoints[0], checkpoints[-1]
    return round((last["articles"] - first["articles"]) / (last["seconds"] - first["seconds"]), 2)


def _entity_pmcids(output: Path) -> set[str]:
    """The pmcids with at least one row in the entity tables under ``output``."""
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    found: set[str] = set()
    for path in (output / "entities").rglob("*.parquet"):
        found.update(pc.unique(pq.read_table(path, columns=["pmcid"]).column("pmcid")).to_pylist())
    return found


def markdown(report: dict) -> str:
    """The report's headline figures as Markdown tables."""
    g, i, a = report["generate"], report["ingest"], report["annotate"]
    lines = [
        "| phase | articles | seconds | articles/s | driver peak RSS MB | spilled MB |",
        "|---|---:|---:|---:|---:|---:|",
        f"| generate | {g['articles']} | {g['seconds']} | {g['articles_per_s']} | {g['driver_peak_rss_mb']} | - |",
        f"| ingest ({i['workers']} workers) | {i['articles']} | {i['seconds']} | {i['articles_per_s']} | "
        f"{i['driver_peak_rss_mb']} | {i['object_store']['spilled_bytes'] / MB:.0f} |",
        f"| annotate ({a['actors']} actor) | {a['articles']} | {a['seconds']} | {a['articles_per_s']} | "
        f"{a['driver_peak_rss_mb']} | {a['object_store']['spilled_bytes'] / MB:.0f} |",
        "",
        "| committed articles | seconds | driver RSS MB | driver peak RSS MB so far | Arrow allocated MB |",
        "|---:|---:|---:|---:|---:|",
        *(f"| {c['articles']} | {c['seconds']} | {c['rss_mb']} | {c['peak_rss_mb']} | {c['arrow_allocated_mb']} |"
          for c in a["checkpoints"]),
        "",
        f"Annotation between the first and the last checkpoint: {a['steady_articles_per_s']} articles/s. Driver CPU "
        f"{a['driver_cpu_seconds']} s ({1000 * a['driver_cpu_seconds_per_article']:.2f} ms per article), commit "
        f"{a['commit_seconds_per_shard']} s per shard; split {1000 * a['split_seconds_per_article']:.1f} ms of CPU per article.",
        f"Time outside the tagger: {100 * a['outside_tagger_share']:.1f} % of the annotation's wall time "
        f"({100 * (a['outside_tagger_share_of_stream'] or 0):.1f} % of its stream time); tagger "
        f"{a['tagger_sentences_per_s_per_actor']} sentences/s per actor; {a['sentences']} sentences, "
        f"{a['mentions']} mentions ({a['mentions_per_sentence']} per sentence); {report['entity_articles']} of {g['articles']} articles in the entity tables.",
    ]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--shared", type=Path, default=Path(__file__).resolve().parents[2] / "shared")
    parser.add_argument("--articles", type=int, default=100_000)
    parser.add_argument("--checkpoints", default="10000,50000,100000", help="committed-article counts, comma-separated")
    parser.add_argument("--articles-per-shard", type=int, default=1000)
    parser.add_argument("--baseline-packages", type=int, default=4)
    parser.add_argument("--incremental-packages", type=int, default=5)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--cpus", type=int, default=2, help="Ray's CPUs")
    parser.add_argument("--workers", type=int, default=2, help="ingest units at once")
    parser.add_argument("--actors", type=int, default=1, help="tagger actors (1 CPU each); leave one CPU for reads")
    parser.add_argument("--documents-per-call", type=int, default=32)
    parser.add_argument("--mention-rate", type=float, default=0.02, help="share of words scoring B- above O "
                        "(0.02 gives about one mention per sentence)")
    parser.add_argument("--object-store-mb", type=int, default=None, help="Ray's object store (default: Ray's own)")
    parser.add_argument("--rss-interval", type=float, default=0.2, help="seconds between RSS samples")
    parser.add_argument("--work-dir", type=Path, default=None, help="where the temporary folder goes")
    parser.add_argument("--keep", action="store_true", help="keep packages, shards and tables (default: deleted)")
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parent / "results" / "pmc_scale.json")
    args = parser.parse_args(argv)

    import logging

    import pyarrow
    import ray
    import ray.data  # configures its logger on import: import it before quieting it below

    from adabiobert.distributed.session import quiet_ray_data
    from benchmarks.ingest_speedup import cpu_description

    work = Path(tempfile.mkdtemp(prefix="pmc-scale-", dir=args.work_dir))
    settings = ScaleSettings(args.shared, work, args.articles, tuple(int(c) for c in args.checkpoints.split(",")),
                             args.articles_per_shard, args.baseline_packages, args.incremental_packages, args.seed,
                             args.workers, args.actors, args.documents_per_call, args.mention_rate, args.rss_interval)
    load_before = os.getloadavg()
    mark = time.perf_counter()
    ray.init(address="local", num_cpus=args.cpus, include_dashboard=False, log_to_driver=False, configure_logging=False,
             object_store_memory=args.object_store_mb * MB if args.object_store_mb else None)
    quiet_ray_data()
    logging.getLogger("ray.data").setLevel(logging.WARNING)
    ray_init_seconds = time.perf_counter() - mark
    try:
        report = run_scale(settings)
    finally:
        ray.shutdown()
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    report = {
        "command": "python benchmarks/pmc_scale.py " + " ".join(sys.argv[1:] if argv is None else argv),
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "setup": {**{k: v for k, v in asdict(settings).items() if k not in ("shared", "work", "model")},
                  "cpus": args.cpus, "object_store_mb": args.object_store_mb},
        "machine": {**cpu_description(), "load_average_before": load_before, "load_average_after": os.getloadavg(),
                    "python": platform.python_version(), "ray": ray.__version__, "pyarrow": pyarrow.__version__},
        "ray_init_seconds": round(ray_init_seconds, 2),
        **report,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2, default=str) + "\n")
    table = markdown(report)
    args.out.with_suffix(".md").write_text(f"`{report['command']}`\n\n{table}")
    print(f"\n{table}\n-> {args.out} (and .md)" + (f"; files kept in {work}" if args.keep else ""))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
