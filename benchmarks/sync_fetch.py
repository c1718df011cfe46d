"""PMC sync fetch rate against a loopback S3 server (issue 21): articles/s per worker, driver memory.

    python benchmarks/sync_fetch.py                                    # 2,000 versions, 1 and 2 workers
    python benchmarks/sync_fetch.py --articles 200 --out /tmp/sync.json

Starts moto's S3 server on 127.0.0.1 (a process of its own, so that the driver's CPU time is the
sync's alone), fills a bucket laid out as PMC's Cloud
Service with ``--articles`` generated versions (``adabiobert/testing/opendata_bucket.py``: JATS of
about 12 sentences, metadata JSON, text) and one inventory, then syncs an empty root to it:

* ``in-process``: ``adabiobert.pmc.sync.sync`` with ``--workers 1`` (no Ray);
* ``ray``: ``adabiobert.distributed.sync.sync_on_ray`` with ``--workers`` tasks at once on a local
  Ray started beforehand (its start-up is not timed).

Each records wall seconds, the driver's CPU seconds (``time.process_time``), articles/s and
articles/s per worker, and the driver's RSS after every unit (``/proc/self/status`` VmRSS; the
unit hook runs on the driver). The server shares this machine's CPUs with the workers and
answers from memory, so the rates are a CPU ceiling of the fetch-and-parse path, not PMC's: the
real rate is bound by the network and S3's per-request latency (about 2 GETs per version).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.ingest_speedup import cpu_description  # noqa: E402


def rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def fill_bucket(root: str, articles: int) -> float:
    from adabiobert.testing.opendata_bucket import make_article, write_articles, write_inventory

    started = time.perf_counter()
    versions = [make_article(30_000_000 + n) for n in range(articles)]
    write_articles(root, versions)
    write_inventory(root, datetime(2026, 12, 5, 1, tzinfo=timezone.utc), versions, files=4)
    return time.perf_counter() - started


def run_once(mode: str, source: str, output: str, workers: int, per_unit: int, threads: int) -> dict:
    from adabiobert.job_configs import SyncConfig
    from adabiobert.pmc.sync import sync

    rss = []
    config = SyncConfig(output, source, articles_per_shard=per_unit, workers=workers, fetch_threads=threads,
                        show_progress=False)
    hook = lambda step, detail: rss.append(round(rss_mb(), 1)) if step == "unit" else None  # noqa: E731
    wall, cpu = time.perf_counter(), time.process_time()
    if mode == "in-process":
        stats = sync(config, hook=hook, log=lambda line: None)
    else:
        from adabiobert.distributed.sync import sync_on_ray

        stats = sync_on_ray(config, hook=hook, log=lambda line: None)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    return {"mode": mode, "workers": workers, "ingested": stats["ingested"], "wall_seconds": round(wall, 2),
            "driver_cpu_seconds": round(cpu, 2), "driver_cpu_ms_per_version": round(1000 * cpu / stats["ingested"], 2),
            "articles_per_second": round(stats["ingested"] / wall, 1),
            "articles_per_second_per_worker": round(stats["ingested"] / wall / workers, 1),
            "driver_rss_mb_after_each_unit": rss}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--articles", type=int, default=2000)
    parser.add_argument("--articles-per-shard", type=int, default=100)
    parser.add_argument("--fetch-threads", type=int, default=8)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parent / "results" / "sync_fetch.json")
    args = parser.parse_args(argv)

    import socket
    import subprocess

    import boto3

    with socket.socket() as probe:  # a free port for the server
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    os.environ.update(AWS_ACCESS_KEY_ID="bench", AWS_SECRET_ACCESS_KEY="bench", AWS_DEFAULT_REGION="us-east-1",
                      AWS_ENDPOINT_URL=f"http://127.0.0.1:{port}", RAY_ADDRESS="local")
    for _ in range(100):  # until it answers
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            break
        except OSError:
            time.sleep(0.1)
    boto3.client("s3").create_bucket(Bucket="pmc-bench")
    source = "s3://pmc-bench"
    fill_seconds = fill_bucket(source, args.articles)
    load_before = os.getloadavg()
    runs = []
    with tempfile.TemporaryDirectory() as scratch:
        runs.append(run_once("in-process", source, f"{scratch}/one", 1, args.articles_per_shard, args.fetch_threads))
        import ray

        ray.init(num_cpus=args.workers, include_dashboard=False, log_to_driver=False)
        runs.append(run_once("ray", source, f"{scratch}/ray", args.workers, args.articles_per_shard, args.fetch_threads))
        ray.shutdown()
    server.terminate()
    server.wait()
    result = {"date": datetime.now(timezone.utc).isoformat(timespec="seconds"), "command": " ".join(sys.argv),
              "articles": args.articles, "articles_per_shard": args.articles_per_shard,
              "fetch_threads": args.fetch_threads, "bucket_fill_seconds": round(fill_seconds, 1),
              "load_before": load_before, "load_after": os.getloadavg(), "cpu": cpu_description(), "runs": runs}
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"CPU: {result['cpu']['model']}; flags: {' '.join(result['cpu']['flags'])}")
    print("| mode | workers | versions | wall s | driver CPU s | driver CPU ms/version | versions/s | per worker | "
          "driver RSS first/last MB |")
    print("|---|---|---|---|---|---|---|---|---|")
    for r in runs:
        rss = r["driver_rss_mb_after_each_unit"]
        print(f"| {r['mode']} | {r['workers']} | {r['ingested']} | {r['wall_seconds']} | {r['driver_cpu_seconds']} | "
              f"{r['driver_cpu_ms_per_version']} | "
              f"{r['articles_per_second']} | {r['articles_per_second_per_worker']} | {rss[0]} / {rss[-1]} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
