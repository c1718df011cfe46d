"""Run several ``compare.py`` queues side by side on one machine, and merge their results.

A MiniLM run leaves a big GPU mostly idle (the CRF's per-token loop and Python dominate), so on a
lent GPU several queues ("lanes") share it. Each lane is a line of ``--lanes``; its steps are
``compare.py`` argument lists separated by `` ; ``. Every lane writes its own results file
(``<out>/lane-N.json``: no two writers on one file) and its own run folders (``<runs>/lane-N``); all output goes to one
log with a ``[N]`` prefix per line. Lanes still running at ``--deadline`` seconds are stopped (the
run in flight is lost; finished runs are already saved).

    python benchmarks/lanes.py run --lanes lanes.txt --out results/ --deadline 520 -- \\
        --data-root corpora --gpu --precision fp32 --cpu-threads 2
    python benchmarks/lanes.py merge results/lane-*.json --into benchmarks/results/compare.json
"""

from __future__ import annotations

import argparse
import json
import shlex
import subprocess
import sys
import threading
import time
from pathlib import Path

COMPARE = Path(__file__).resolve().with_name("compare.py")


def parse_lanes(text: str) -> list[list[list[str]]]:
    """Lanes, each a list of steps, each a ``compare.py`` argument list; blank and ``#`` lines skipped."""
    lanes = []
    for line in text.splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            lanes.append([shlex.split(step) for step in line.split(" ; ") if step.strip()])
    return lanes


def run_lanes(
    lanes: list[list[list[str]]], out: Path, runs: Path, common: list[str], deadline: float, log=print, script: Path = COMPARE
) -> None:
    """Run every lane's steps in order, the lanes at once, until done or ``deadline`` seconds have passed."""
    out.mkdir(parents=True, exist_ok=True)
    stop_at = time.monotonic() + deadline
    lock = threading.Lock()

    def say(lane: int, line: str) -> None:
        with lock:
            log(f"[{lane}] {line.rstrip()}")

    def lane_worker(number: int, steps: list[list[str]]) -> None:
        for step in steps:
            if time.monotonic() >= stop_at:
                say(number, "deadline: steps left unrun")
                return
            command = [sys.executable, "-u", str(script), *common, *step,
                       "--results", str(out / f"lane-{number}.json"), "--runs", str(runs / f"lane-{number}")]
            process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
            threading.Thread(target=lambda: [say(number, line) for line in process.stdout], daemon=True).start()
            try:
                process.wait(timeout=max(1.0, stop_at - time.monotonic()))
            except subprocess.TimeoutExpired:
                process.kill()
                say(number, "deadline: stopped the run in flight")
                return
            if process.returncode:
                say(number, f"step exited {process.returncode}: {shlex.join(step)}")

    threads = [threading.Thread(target=lane_worker, args=(n, steps)) for n, steps in enumerate(lanes, 1)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()


def merge(files: list[Path], into: Path) -> list[str]:
    """Add every result of ``files`` to ``into``; a key already there is kept, not overwritten."""
    results = json.loads(into.read_text()) if into.is_file() else {}
    added = []
    for path in files:
        for key, outcome in json.loads(path.read_text()).items():
            if key not in results:
                results[key] = outcome
                added.append(key)
    into.write_text(json.dumps(results, indent=1) + "\n")
    return added


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    common = argv[argv.index("--") + 1 :] if "--" in argv else []
    argv = argv[: argv.index("--")] if "--" in argv else argv
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    verbs = parser.add_subparsers(dest="verb", required=True)
    run = verbs.add_parser("run", help="run the lanes (arguments after -- go to every compare.py step)")
    run.add_argument("--lanes", type=Path, required=True)
    run.add_argument("--out", type=Path, required=True)
    run.add_argument("--runs", type=Path, default=None, help="run folders go here (default: --out)")
    run.add_argument("--deadline", type=float, default=float("inf"), help="seconds; lanes still running are stopped")
    combine = verbs.add_parser("merge", help="merge lane results into a compare.py results file")
    combine.add_argument("files", type=Path, nargs="+")
    combine.add_argument("--into", type=Path, required=True)
    args = parser.parse_args(argv)
    if args.verb == "run":
        run_lanes(parse_lanes(args.lanes.read_text()), args.out, args.runs or args.out, common, args.deadline, log=lambda line: print(line, flush=True))
    else:
        added = merge(args.files, args.into)
        print(f"{len(added)} results added to {args.into}: " + ", ".join(added))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
