"""Inventory diff at PMC's scale (issue 21): read the newest daily inventory, diff it against the
last sync's snapshot, save the new snapshot; time and memory of that in a fresh process.

    python benchmarks/inventory_diff.py                                   # 8,000,000 versions (minutes)
    python benchmarks/inventory_diff.py --versions 200000 --out /tmp/inventory_diff.json   # smoke run

1. **generate**, in a temporary folder laid out as ``s3://pmc-oa-opendata``
   (``adabiobert/testing/opendata_bucket.py``), two days of inventory of ``--versions`` article
   versions each: ``--files`` gzipped CSV data files per day and a ``manifest.json`` (PMC's
   columns, ``Bucket, Key, LastModifiedDate, ETag``, every field quoted, keys
   ``metadata/PMC<n>.<v>.json``, one article in 50 with a second version, random 32-hex ETags,
   rows shuffled within each file). Day two replaces 0.5 % of the objects (new ETag and date),
   removes 0.1 %, adds new articles for 0.3 % and a new version for 0.1 %: about 1 % changed.
   Day one is then read and saved as the sync snapshot (``write_snapshot``), as a previous sync
   would have left it.
2. **measure**, each in a fresh Python process (so the peak RSS is the diff's own):
   ``snapshot`` (what a nightly sync does): ``read_inventory`` of day two, ``read_snapshot`` of
   day one, ``diff_inventories``, ``write_snapshot`` of day two; and ``csv`` (both days read from
   their CSVs, then the diff). For each: CPU seconds (``time.process_time``, all threads), wall
   seconds, peak RSS and Arrow's peak allocation, per phase and in all. The peak RSS is the
   process's own ``VmHWM``; ``ru_maxrss`` is reported too, and equals it here only because the
   measuring processes are started by a small parent (Linux carries the parent's RSS at fork into
   a child's ``ru_maxrss``), which is why generation runs in a process of its own. The diff's
   counts must equal the generator's (an independent count of the rows it changed).

Targets (issue 21): under 2 minutes and 2 GB on the 2-core development machine. Results go to
``--out`` (default ``benchmarks/results/inventory_diff.json``) with the CPU model and flags.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402
import pyarrow as pa  # noqa: E402
import pyarrow.compute as pc  # noqa: E402
import pyarrow.csv as pacsv  # noqa: E402

from adabiobert.pmc import inventory  # noqa: E402
from adabiobert.pmc.opendata import BUCKET  # noqa: E402
from adabiobert.testing.opendata_bucket import write_inventory_files  # noqa: E402

DAY1 = datetime.datetime(2026, 9, 1, 1, tzinfo=datetime.timezone.utc)
DAY2 = DAY1 + datetime.timedelta(days=1)
FIRST_NUMBER = 1_000_000
TARGET_SECONDS = 120
TARGET_BYTES = 2 * 1024 ** 3
# Day two's changes, by a hash of the row number r, in parts per 10,000:
CHANGED = (0, 50)  # a new ETag and date
REMOVED = (50, 60)
NEW_VERSION = (60, 70)  # a version 3 added beside a version 1
NEW_ARTICLES = 30  # rows of new articles per 10,000


def _hash(values: np.ndarray, salt: int | np.ndarray) -> np.ndarray:
    """splitmix64 of ``values`` with ``salt`` (one, or one per row): a reproducible pseudo-random uint64 per row."""
    z = values.astype(np.uint64) + np.asarray(salt).astype(np.uint64) * np.uint64(0x9E3779B97F4A7C15)
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return z ^ (z >> np.uint64(31))


_HEX = np.frombuffer(b"0123456789abcdef", dtype=np.uint8)


def _etags(rows: np.ndarray, salt: np.ndarray) -> pa.Array:
    """32 hex digits per row, from two hashes of the row."""
    words = np.stack([_hash(rows, salt), _hash(rows, salt + 1)], axis=1).view(np.uint8)  # (n, 16)
    digits = np.empty((len(rows), 32), dtype=np.uint8)
    digits[:, 0::2], digits[:, 1::2] = _HEX[words >> 4], _HEX[words & 15]
    return pa.array(digits.view("S32").ravel(), pa.binary(32)).cast(pa.string())


def _rows(first: int, last: int, day: int) -> dict[str, np.ndarray]:
    """The inventory rows of row numbers ``first..last`` on day 1 or 2 (before shuffling)."""
    r = np.arange(first, last, dtype=np.int64)
    number = FIRST_NUMBER + r - (r + 1) // 50
    version = np.where((r + 1) % 50 == 0, 2, 1).astype(np.int64)
    change = (_hash(r, 7) % np.uint64(10_000)).astype(np.int64)
    salt = np.full(len(r), 11, dtype=np.int64)
    seconds = (_hash(r, 13) % np.uint64(30 * 86_400)).astype(np.int64) - 31 * 86_400
    if day == 2:
        changed = (change >= CHANGED[0]) & (change < CHANGED[1])
        salt[changed] = 17
        seconds[changed] = 86_400 - 3_600  # replaced during the day before day two's inventory
        keep = ~((change >= REMOVED[0]) & (change < REMOVED[1]))
        added = (change >= NEW_VERSION[0]) & (change < NEW_VERSION[1]) & (version == 1)
        r = np.concatenate([r[keep], r[added] + (1 << 40)])
        number = np.concatenate([number[keep], number[added]])
        version = np.concatenate([version[keep], np.full(added.sum(), 3)])
        salt = np.concatenate([salt[keep], np.full(added.sum(), 19)])
        seconds = np.concatenate([seconds[keep], np.full(added.sum(), 86_400 - 1_800)])
    return {"r": r, "number": number, "version": version, "salt": salt, "seconds": seconds}


def _new_articles(first: int, last: int) -> dict[str, np.ndarray]:
    """Day two's new articles, numbered after every existing one."""
    r = np.arange(first, last, dtype=np.int64)
    return {"r": r + (1 << 41), "number": FIRST_NUMBER * 20 + r, "version": np.ones(len(r), np.int64),
            "salt": np.full(len(r), 23, np.int64), "seconds": np.full(len(r), 86_400 - 600, np.int64)}


def _csv_gz(rows: dict[str, np.ndarray], seed: int) -> bytes:
    """One gzipped data file of these rows, shuffled, as S3 Inventory writes it."""
    order = np.random.default_rng(seed).permutation(len(rows["r"]))
    rows = {name: values[order] for name, values in rows.items()}
    keys = pc.binary_join_element_wise(
        "metadata/PMC", pa.array(rows["number"]).cast(pa.string()), ".", pa.array(rows["version"]).cast(pa.string()),
        ".json", "")
    etags = _etags(rows["r"], rows["salt"])
    when = pa.array(int(DAY1.timestamp()) + rows["seconds"], pa.timestamp("s"))
    dates = pc.binary_join_element_wise(pc.strftime(when, "%Y-%m-%dT%H:%M:%S"), ".000Z", "")
    table = pa.table({"Bucket": pa.array(np.full(len(order), BUCKET)), "Key": keys, "LastModifiedDate": dates,
                      "ETag": etags})
    sink = pa.BufferOutputStream()
    with pa.CompressedOutputStream(sink, "gzip") as stream:
        pacsv.write_csv(table, stream, pacsv.WriteOptions(include_header=False, quoting_style="all_valid"))
    return sink.getvalue().to_pybytes()


def generate(root: str, versions: int, files: int) -> dict:
    """Write both days' inventories under ``root``; the counts day two's diff must find."""
    bounds = [versions * i // files for i in range(files + 1)]
    new_articles = versions * NEW_ARTICLES // 10_000
    new_bounds = [new_articles * i // files for i in range(files + 1)]
    expected = {"added": new_articles, "changed": 0, "removed": 0}
    for day, when in ((1, DAY1), (2, DAY2)):
        blobs = []
        for i in range(files):
            rows = _rows(bounds[i], bounds[i + 1], day)
            if day == 2:
                extra = _new_articles(new_bounds[i], new_bounds[i + 1])
                rows = {name: np.concatenate([rows[name], extra[name]]) for name in rows}
                expected["changed"] += int((rows["salt"] == 17).sum())
                expected["added"] += int((rows["salt"] == 19).sum())
                expected["removed"] += (bounds[i + 1] - bounds[i]) - int((rows["r"] < (1 << 40)).sum())
            blobs.append(_csv_gz(rows, seed=day * 1000 + i))
        write_inventory_files(root, when, blobs, inventory.DEFAULT_COLUMNS)
    return expected


# ---------------------------------------------------------------------------------------------
# Measuring, in a fresh process
# ---------------------------------------------------------------------------------------------
def measure(root: str, previous_from: str, snapshot: str) -> dict:
    """Read, diff (and, from a snapshot, save) as a sync does; per-phase CPU, wall and memory."""
    phases: dict[str, dict] = {}
    pool = pa.default_memory_pool()

    def phase(name, call):
        cpu, wall = time.process_time(), time.perf_counter()
        result = call()
        phases[name] = {"cpu_s": round(time.process_time() - cpu, 2), "wall_s": round(time.perf_counter() - wall, 2),
                        "peak_rss_mb_so_far": _peak_rss_mb()}
        return result

    rss_start = _peak_rss_mb()
    cpu, wall = time.process_time(), time.perf_counter()
    current = phase("read_current_csv", lambda: inventory.read_inventory(inventory.latest_inventory(root)))
    if previous_from == "snapshot":
        previous = phase("read_previous_snapshot", lambda: inventory.read_snapshot(snapshot))
    else:
        previous = phase("read_previous_csv", lambda: inventory.read_inventory(
            inventory.latest_inventory(root, on_or_before=DAY1)).table)
    diff = phase("diff", lambda: inventory.diff_inventories(previous, current.table))
    if previous_from == "snapshot":
        phase("write_snapshot", lambda: inventory.write_snapshot(current.table, snapshot + ".next"))
    return {
        "previous_from": previous_from,
        "rows_current": current.table.num_rows, "rows_previous": previous.num_rows,
        "current_table_mb": round(current.table.nbytes / 2 ** 20, 1),
        "not_articles": current.not_articles, "counts": diff.counts(), "phases": phases,
        "cpu_s": round(time.process_time() - cpu, 2), "wall_s": round(time.perf_counter() - wall, 2),
        "peak_rss_mb": _peak_rss_mb(),
        "ru_maxrss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "rss_before_reading_mb": rss_start,
        "arrow_peak_mb": round(pool.max_memory() / 2 ** 20, 1), "arrow_pool": pool.backend_name,
        "threads": pa.cpu_count(),
    }


def _child(*arguments: str) -> str:
    """Run this script with ``arguments`` in a new Python; the last line it prints."""
    done = subprocess.run([sys.executable, __file__, *arguments], capture_output=True, text=True, check=True,
                          env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])})
    return done.stdout.strip().splitlines()[-1]


def _peak_rss_mb() -> float:
    """This process's own peak RSS (``VmHWM``; ``ru_maxrss`` also counts the parent's RSS at fork)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return round(int(line.split()[1]) / 1024, 1)
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


def _lscpu_model() -> str:
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return next((line.split(":", 1)[1].strip() for line in out.splitlines() if line.startswith("Model name")), "unknown")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--versions", type=int, default=8_000_000, help="article versions in day one's inventory")
    parser.add_argument("--files", type=int, default=5, help="data files per day (PMC's have five)")
    parser.add_argument("--out", default=str(Path(__file__).parent / "results" / "inventory_diff.json"))
    parser.add_argument("--measure", nargs=3, metavar=("ROOT", "PREVIOUS_FROM", "SNAPSHOT"), help=argparse.SUPPRESS)
    parser.add_argument("--generate", nargs=2, metavar=("ROOT", "SNAPSHOT"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.measure:  # a measuring child
        print(json.dumps(measure(*args.measure)))
        return 0
    if args.generate:  # the generating child
        root, snapshot = args.generate
        expected = generate(root, args.versions, args.files)
        day1 = inventory.read_inventory(inventory.latest_inventory(root, on_or_before=DAY1)).table
        inventory.write_snapshot(day1, snapshot)  # what the previous day's sync left
        print(json.dumps(expected))
        return 0

    from benchmarks.ingest_speedup import cpu_description

    started = datetime.datetime.now(datetime.timezone.utc)
    with tempfile.TemporaryDirectory(prefix="inventory-diff-") as root:
        clock = time.perf_counter()
        snapshot = os.path.join(root, "sync", "inventory.parquet")
        expected = json.loads(_child("--versions", str(args.versions), "--files", str(args.files),
                                     "--generate", root, snapshot))
        generated_s = time.perf_counter() - clock
        csv_gz_mb = sum(p.stat().st_size for p in Path(root).rglob("*.csv.gz")) / 2 / 2 ** 20
        runs = []
        for previous_from in ("snapshot", "csv"):
            run = json.loads(_child("--measure", root, previous_from, snapshot))
            run["counts_match_generator"] = run["counts"] == expected
            run["meets_target"] = run["wall_s"] < TARGET_SECONDS and run["peak_rss_mb"] * 2 ** 20 < TARGET_BYTES
            runs.append(run)
            print(json.dumps(run, indent=1))
        snapshot_mb = os.path.getsize(snapshot) / 2 ** 20
    cpu = cpu_description()
    result = {
        "benchmark": "inventory_diff", "date": started.isoformat(timespec="seconds"),
        "command": " ".join(["python", "benchmarks/inventory_diff.py", *(argv if argv is not None else sys.argv[1:])]),
        "versions": args.versions, "files_per_day": args.files, "expected_counts": expected,
        "csv_gz_mb_per_day": round(csv_gz_mb, 1), "snapshot_mb": round(snapshot_mb, 1),
        "generation_s": round(generated_s, 1),
        "targets": {"wall_s": TARGET_SECONDS, "peak_rss_mb": TARGET_BYTES // 2 ** 20},
        "runs": runs,
        "machine": {**cpu, "lscpu_model": _lscpu_model(), "load_average_after": os.getloadavg()},
    }
    print(f"CPU: {result['machine']['model']} / lscpu {result['machine']['lscpu_model']}, "
          f"{cpu['usable_cpus']} usable CPUs; flags: {' '.join(cpu['flags'])}")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=1) + "\n")
    return 0 if all(run["counts_match_generator"] for run in runs) else 1


if __name__ == "__main__":
    sys.exit(main())
