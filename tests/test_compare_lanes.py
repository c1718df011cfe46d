"""benchmarks/lanes.py (side-by-side compare.py queues) and compare.py's per-machine table."""

import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.compare import across_corpora, machine_label, table  # noqa: E402
from benchmarks.lanes import merge, parse_lanes, run_lanes  # noqa: E402

STAND_IN = """
import argparse, json, sys, time
parser = argparse.ArgumentParser()
parser.add_argument("--seeds", nargs="+", type=int)
parser.add_argument("--sleep", type=float, default=0)
parser.add_argument("--fail", action="store_true")
parser.add_argument("--results")
parser.add_argument("--runs")
args = parser.parse_args()
print("starting", args.seeds, flush=True)
time.sleep(args.sleep)
if args.fail:
    sys.exit(3)
try:
    results = json.load(open(args.results))
except FileNotFoundError:
    results = {}
for seed in args.seeds:
    results[f"D|v|{seed}"] = {"runs": args.runs}
json.dump(results, open(args.results, "w"))
"""


def test_parse_lanes_splits_steps_and_skips_comments():
    text = "# a comment\n\n--seeds 13 --only a ; --seeds 14 --only 'b c'\n  --seeds 15\n"
    assert parse_lanes(text) == [
        [["--seeds", "13", "--only", "a"], ["--seeds", "14", "--only", "b c"]],
        [["--seeds", "15"]],
    ]


def test_merge_adds_new_keys_and_never_overwrites(tmp_path):
    into = tmp_path / "compare.json"
    into.write_text(json.dumps({"D|v|13": {"entity_f1": 0.5}}))
    lane = tmp_path / "lane-1.json"
    lane.write_text(json.dumps({"D|v|13": {"entity_f1": 0.9}, "D|v|14": {"entity_f1": 0.7}}))
    assert merge([lane], into) == ["D|v|14"]
    merged = json.loads(into.read_text())
    assert merged == {"D|v|13": {"entity_f1": 0.5}, "D|v|14": {"entity_f1": 0.7}}


def test_lanes_run_side_by_side_each_with_its_own_results(tmp_path):
    script = tmp_path / "stand_in.py"
    script.write_text(STAND_IN)
    lanes = [[["--seeds", "13"], ["--seeds", "14"]], [["--seeds", "15", "--fail"]], [["--seeds", "16", "--sleep", "1"]]]
    lines = []
    started = time.monotonic()
    run_lanes(lanes, tmp_path / "out", tmp_path / "runs", ["--sleep", "1"], deadline=60, log=lines.append, script=script)
    elapsed = time.monotonic() - started
    assert elapsed < 2 * 1.0 + 1.5 + 3, "lane 3's 2 s must overlap lane 1's 2 s"
    lane1 = json.loads((tmp_path / "out" / "lane-1.json").read_text())
    assert set(lane1) == {"D|v|13", "D|v|14"} and lane1["D|v|13"]["runs"] == str(tmp_path / "runs" / "lane-1")
    assert not (tmp_path / "out" / "lane-2.json").exists()
    assert set(json.loads((tmp_path / "out" / "lane-3.json").read_text())) == {"D|v|16"}
    assert "[2] step exited 3: --seeds 15 --fail" in lines
    assert "[1] starting [13]" in lines and "[1] starting [14]" in lines


def test_deadline_stops_the_run_in_flight_and_skips_the_rest(tmp_path):
    script = tmp_path / "stand_in.py"
    script.write_text(STAND_IN)
    lines = []
    started = time.monotonic()
    lanes = [[["--seeds", "13", "--sleep", "30"], ["--seeds", "14"]]]
    run_lanes(lanes, tmp_path / "out", tmp_path / "runs", [], deadline=2, log=lines.append, script=script)
    assert time.monotonic() - started < 15
    assert "[1] deadline: stopped the run in flight" in lines
    assert not any("starting [14]" in line for line in lines)
    assert not (tmp_path / "out" / "lane-1.json").exists()


def _outcome(f1, seconds, machine=None):
    outcome = {"entity_f1": f1, "entity_macro_f1": f1, "paper_token_micro_f1": 0.97, "train_seconds": seconds,
               "tagging_sentences_per_second": 100.0, "alpha_trace": [0.5, 0.5, 0.5]}
    if machine:
        outcome["machine"] = machine
    return outcome


def test_table_keeps_machines_apart_in_time_but_pools_seeds_in_f1():
    results = {
        "D|crf-only|13": _outcome(0.80, 1800),  # an old row: no machine field, ran on the CPU
        "D|crf-only|14": _outcome(0.82, 240, "GPU NVIDIA H200"),
        "D|crf-only|15": _outcome(0.84, 300, "GPU NVIDIA H200"),
        "D|ce-only|13": _outcome(0.70, 600, "CPU AMD EPYC, 2 cores"),
    }
    rows = {line.split(" | ")[1]: line for line in table(results).splitlines()[2:]}
    crf = rows["crf-only"].split(" | ")
    assert crf[2:4] == ["3", "82.0 ± 2.0"]
    assert crf[7] == "30 CPU / 4.5 H200"
    assert crf[9] == "CPU 13; H200 14, 15 |"
    assert rows["ce-only"].split(" | ")[7] == "10"
    assert machine_label({}) == "CPU" and machine_label({"machine": "GPU NVIDIA H100 80GB HBM3"}) == "H100 80GB HBM3"


def test_across_corpora_ranks_by_the_mean_of_per_corpus_means():
    results = {
        "A|crf-only|13": _outcome(0.80, 1), "A|crf-only|14": _outcome(0.82, 1),  # A: 81.0 ± 1.41
        "B|crf-only|13": _outcome(0.70, 1),                                    # B: 70.0
        "A|ats-paper|13": _outcome(0.84, 1), "A|ats-paper|14": _outcome(0.84, 1),  # A: 84.0 ± 0
        "B|ats-paper|13": _outcome(0.69, 1),                                   # B: 69.0
        "A|ce-only|13": _outcome(0.90, 1),                                     # no B row: not ranked
        "A|crf-only+w2v|13": _outcome(0.99, 1), "B|crf-only+w2v|13": _outcome(0.99, 1),  # a feature, not a loss
    }
    rows = [line.split(" | ") for line in across_corpora(results).splitlines()[2:]]
    assert [row[0] for row in rows] == ["| ats-paper", "| crf-only"]
    assert rows[0][1:5] == ["84.00 (2)", "69.00 (1)", "76.50", "0.00"]
    # gap 76.50 - 75.50 = 1.00; the sds on offer are 1.41 (crf, A) and 0.0 (paper, A): mean 0.71
    assert rows[1][3:6] == ["75.50", "1.00", "1.4 |"]
