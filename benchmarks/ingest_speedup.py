"""Parallel ingest speed-up: one process against Ray tasks on the same PMC bulk packages (issue 10).

    python benchmarks/ingest_speedup.py --shared ../shared                                  # 8 x 500 articles, 2 CPUs
    python benchmarks/ingest_speedup.py --shared ../shared --packages 2 --articles 20 --repeats 1 --out /tmp/x.json

Builds ``--packages`` bulk packages in PMC's layout (``<name>.tar.gz`` with members
``PMC0xxxxxxx/PMC<id>.xml``, and ``<name>.filelist.csv`` beside it) in a temporary folder, from the
PMC sample articles replicated with distinct PMC ids (the ``<article-id pub-id-type="pmc">`` of
each copy rewritten; nothing is written to the repository), then ingests them ``--repeats`` times
each way, taking turns:

* one process: ``adabiobert.pmc.ingest.ingest`` (what ``jobs/ingest_pmc.py`` runs by default);
* Ray: ``adabiobert.distributed.ingest.ingest_parallel`` (a pool of plain Ray tasks, a unit or a
  shard each) with ``workers = --cpus`` on a local Ray started beforehand with
  ``num_cpus = --cpus`` (its start-up is timed apart, and is not in the ingest times);
* independent processes, the ceiling: ``--cpus`` plain Python processes, each running
  ``adabiobert.pmc.ingest.ingest`` on its share of the packages (every ``--cpus``-th one), started
  together once all have imported. They share nothing and write separate shards, so their
  speed-up over one process is what running ``--cpus`` processes at once on this machine allows
  (shared caches, memory bandwidth, host cores behind the vCPUs), before any coordination cost.

The first run of each mode is a warm-up, recorded but left out of the medians: Ray's first run
also starts its worker processes and imports the ingest modules in them (what a one-off job on a
fresh Ray pays once; a long-lived cluster does not), the one-process run warms the page cache and imports.

Every run's wall time covers the whole call: listing, parsing, staging, the shard writes, rejects
and stats. Each run also records the driver's CPU seconds (``driver_cpu_seconds``: all of a
one-process run; for Ray, what the driver spends coordinating). The Ray output is checked
byte-identical to the one-process output. Reported: median wall time per mode, speed-up (one
process / Ray), articles/s, articles/s per core (Ray: divided by ``--cpus``), the CPU model and
flags (``/proc/cpuinfo``) and the load average before and after (a busy machine makes both modes
slower, Ray more so). Prints a Markdown table and writes JSON (``--out``).

Time a loaded machine by CPU, not wall: with the kernel's autogroup scheduling
(``/proc/sys/kernel/sched_autogroup_enabled``) the driver and every Ray worker it starts share one
session's CPU share, so under load two workers get no more CPU than one process and the wall
speed-up measures nothing.
"""

from __future__ import annotations

import argparse
import datetime
import json
import logging
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from adabiobert.job_configs import IngestConfig  # noqa: E402
from adabiobert.pmc.ingest import ingest  # noqa: E402
from adabiobert.testing.pmc_generator import FIRST_ID, PackageWriter  # noqa: E402

PMC_ID = re.compile(rb'(<article-id pub-id-type="pmc">)(?:PMC)?\d+(<)')


def sample_articles(shared: Path) -> list[bytes]:
    """The sample JATS articles that carry a PMC id (the templates to copy)."""
    found = [p.read_bytes() for p in sorted((shared / "pmc-sample").glob("*.nxml"))]
    found = [data for data in found if PMC_ID.search(data)]
    if not found:
        raise SystemExit(f"no .nxml with a PMC id under {shared / 'pmc-sample'}")
    return found


def build_packages(folder: Path, templates: list[bytes], packages: int, articles: int) -> int:
    """Write the bulk packages and their file lists; return their total size in bytes."""
    total = 0
    for p in range(packages):
        with PackageWriter(folder, f"oa_comm_xml.PMC{p:03d}xxxxxx.baseline.2024-06-18") as writer:
            for j in range(articles):
                pmcid = FIRST_ID + p * articles + j
                data = PMC_ID.sub(rb"\g<1>" + str(pmcid).encode() + rb"\g<2>", templates[j % len(templates)], count=1)
                writer.add(pmcid, data, "2024-06-18 10:11:12", f"Bench. 2024; 1:{j}")
        total += writer.path.stat().st_size
    return total


def cpu_description() -> dict:
    """The CPU model, its flags and the core counts, from ``/proc/cpuinfo`` where there is one."""
    model, flags = platform.processor() or platform.machine(), []
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        text = ""
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key.strip() == "model name" and model in ("", platform.machine(), platform.processor()):
            model = value.strip()
        elif key.strip() == "flags" and not flags:
            flags = value.split()
    return {"model": model, "logical_cpus": os.cpu_count(), "usable_cpus": len(os.sched_getaffinity(0)),
            "flags": flags}


def same_files(left: Path, right: Path) -> bool:
    """Same ``.parquet`` names and bytes (shards and rejects) in both folders."""
    names = sorted(p.name for p in left.glob("*.parquet"))
    return names == sorted(p.name for p in right.glob("*.parquet")) and all(
        (left / n).read_bytes() == (right / n).read_bytes() for n in names)


def split_packages(inputs: Path, groups: int) -> list[Path]:
    """Hard-link every ``groups``-th package (with its file list) of ``inputs`` into a folder of
    its own beside it; return the folders."""
    packages = sorted(inputs.glob("*.tar.gz"))
    folders = []
    for group in range(groups):
        folder = inputs.parent / f"group-{group}"
        folder.mkdir()
        for package in packages[group::groups]:
            for path in (package, package.with_name(package.name.removesuffix(".tar.gz") + ".filelist.csv")):
                os.link(path, folder / path.name)
        folders.append(folder)
    return folders


_CHILD = """
import json, sys, time
sys.path.insert(0, sys.argv[4])
from adabiobert.pmc.ingest import ingest
from adabiobert.job_configs import IngestConfig
print("ready", flush=True)
sys.stdin.readline()
start, cpu = time.time(), time.process_time()
ingest(IngestConfig((sys.argv[1],), sys.argv[2], int(sys.argv[3]), show_progress=False))
print(json.dumps({"start": start, "end": time.time(), "cpu": time.process_time() - cpu}), flush=True)
"""


def independent_processes(folders: list[Path], output: Path, articles_per_shard: int) -> tuple[float, float]:
    """One plain ``ingest`` process per folder, all at once, let go together once each has
    imported; return (seconds from the first start to the last end, their CPU seconds)."""
    root = str(Path(__file__).resolve().parents[1])
    children = [subprocess.Popen([sys.executable, "-c", _CHILD, str(folder), str(output / folder.name),
                                  str(articles_per_shard), root], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
                for folder in folders]
    for child in children:
        assert child.stdout.readline().strip() == "ready", "an independent process failed to start"
    for child in children:
        child.stdin.write("go\n")
        child.stdin.flush()
    spans = [json.loads(child.communicate()[0]) for child in children]
    assert all(child.returncode == 0 for child in children), [child.returncode for child in children]
    return max(s["end"] for s in spans) - min(s["start"] for s in spans), sum(s["cpu"] for s in spans)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--shared", type=Path, default=Path(__file__).resolve().parents[2] / "shared")
    parser.add_argument("--packages", type=int, default=8)
    parser.add_argument("--articles", type=int, default=500, help="articles per package")
    parser.add_argument("--articles-per-shard", type=int, default=1000)
    parser.add_argument("--cpus", type=int, default=2, help="Ray's CPUs and the number of workers")
    parser.add_argument("--repeats", type=int, default=3, help="timed runs of each mode, taking turns, after a warm-up")
    parser.add_argument("--work-dir", type=Path, default=None, help="where packages and outputs go (default: a temp dir)")
    parser.add_argument("--keep", action="store_true", help="keep the packages and outputs (default: deleted)")
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parent / "results" / "ingest_speedup.json")
    args = parser.parse_args(argv)

    import pyarrow
    import ray
    import ray.data  # configures its logger on import: import it before quieting it below

    from adabiobert.distributed.ingest import ingest_parallel

    work = Path(tempfile.mkdtemp(prefix="ingest-speedup-", dir=args.work_dir))
    inputs = work / "oa_bulk"
    inputs.mkdir()
    mark = time.perf_counter()
    package_bytes = build_packages(inputs, sample_articles(args.shared), args.packages, args.articles)
    articles = args.packages * args.articles
    print(f"{args.packages} packages x {args.articles} articles ({package_bytes / 1e6:.1f} MB gzip) built in "
          f"{time.perf_counter() - mark:.1f} s under {inputs}")
    folders = split_packages(inputs, args.cpus)
    load_before = os.getloadavg()

    mark = time.perf_counter()
    ray.init(address="local", num_cpus=args.cpus, include_dashboard=False, log_to_driver=False,
             configure_logging=False)
    ray_init_seconds = time.perf_counter() - mark
    logging.getLogger("ray.data").setLevel(logging.WARNING)  # a line per dataset execution otherwise
    runs: list[dict] = []
    identical = True
    for repeat in range(-1, args.repeats):  # -1: the warm-up
        order = ("one_process", "ray", "independent")
        order = order if repeat % 2 == 0 else order[::-1]
        for mode in order:
            config = IngestConfig((str(inputs),), str(work / f"{mode}-{repeat}"), args.articles_per_shard,
                                  show_progress=False)
            if mode == "independent":
                (work / f"{mode}-{repeat}").mkdir()
                seconds, cpu = independent_processes(folders, work / f"{mode}-{repeat}", args.articles_per_shard)
                runs.append({"mode": mode, "repeat": repeat, "warmup": repeat < 0, "seconds": round(seconds, 3),
                             "cpu_seconds": round(cpu, 3), "workers": args.cpus})
                print(f"  {mode:<11} {'warm-up' if repeat < 0 else f'run {repeat}'}: {seconds:7.2f} s "
                      f"(their CPU {cpu:.2f} s)")
                continue
            mark, cpu = time.perf_counter(), time.process_time()
            stats = ingest(config) if mode == "one_process" else ingest_parallel(config, workers=args.cpus)
            seconds, cpu = time.perf_counter() - mark, time.process_time() - cpu
            assert stats.articles == articles and stats.rejected == 0, (stats.articles, stats.rejected)
            runs.append({"mode": mode, "repeat": repeat, "warmup": repeat < 0, "seconds": round(seconds, 3),
                         "driver_cpu_seconds": round(cpu, 3), "workers": stats.workers})
            print(f"  {mode:<11} {'warm-up' if repeat < 0 else f'run {repeat}'}: {seconds:7.2f} s "
                  f"(driver CPU {cpu:.2f} s)")
        identical &= same_files(work / f"one_process-{repeat}", work / f"ray-{repeat}")
        if not args.keep:
            for mode in order:
                shutil.rmtree(work / f"{mode}-{repeat}")
    ray.shutdown()
    load_after = os.getloadavg()

    one = statistics.median(r["seconds"] for r in runs if r["mode"] == "one_process" and not r["warmup"])
    par = statistics.median(r["seconds"] for r in runs if r["mode"] == "ray" and not r["warmup"])
    alone = statistics.median(r["seconds"] for r in runs if r["mode"] == "independent" and not r["warmup"])
    cold = next(r["seconds"] for r in runs if r["mode"] == "ray" and r["warmup"])
    summary = {
        "one_process": {"seconds": one, "articles_per_s": round(articles / one, 1),
                        "articles_per_s_per_core": round(articles / one, 1)},
        "ray": {"seconds": par, "articles_per_s": round(articles / par, 1),
                "articles_per_s_per_core": round(articles / par / args.cpus, 1)},
        "independent_processes": {"seconds": alone, "articles_per_s": round(articles / alone, 1),
                                  "articles_per_s_per_core": round(articles / alone / args.cpus, 1)},
        "speedup": round(one / par, 3),
        "speedup_ceiling": round(one / alone, 3),
        "ray_first_run_seconds": cold,
        "speedup_first_ray_run": round(one / cold, 3),
        "identical_output": identical,
    }
    report = {
        "command": "python benchmarks/ingest_speedup.py " + " ".join(sys.argv[1:] if argv is None else argv),
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "setup": {"packages": args.packages, "articles_per_package": args.articles, "articles": articles,
                  "package_bytes": package_bytes, "articles_per_shard": args.articles_per_shard, "cpus": args.cpus,
                  "repeats": args.repeats},
        "machine": {**cpu_description(), "load_average_before": load_before, "load_average_after": load_after,
                    "python": platform.python_version(), "ray": ray.__version__, "pyarrow": pyarrow.__version__},
        "ray_init_seconds": round(ray_init_seconds, 3),
        "runs": runs,
        "summary": summary,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"\n| mode | median s | articles/s | articles/s per core |\n|---|---:|---:|---:|\n"
          f"| one process | {one:.2f} | {articles / one:.1f} | {articles / one:.1f} |\n"
          f"| Ray tasks, {args.cpus} workers | {par:.2f} | {articles / par:.1f} | {articles / par / args.cpus:.1f} |\n"
          f"| {args.cpus} independent processes (ceiling) | {alone:.2f} | {articles / alone:.1f} | "
          f"{articles / alone / args.cpus:.1f} |\n\n"
          f"speed-up {one / par:.2f}x (ceiling {one / alone:.2f}x; {one / cold:.2f}x for Ray's first run, {cold:.2f} s), outputs identical: "
          f"{identical}, Ray start-up {ray_init_seconds:.1f} s (not included), load average {load_before[0]:.1f} -> {load_after[0]:.1f} -> {args.out}")
    if args.keep:
        print(f"packages and outputs kept in {work}")
    else:
        shutil.rmtree(work)
    return 0 if identical else 1


if __name__ == "__main__":
    raise SystemExit(main())
