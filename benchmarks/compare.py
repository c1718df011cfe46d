"""ATS ablation and peer taggers on the same backbone, data and metric code.

    python benchmarks/compare.py --data-root ../shared/corpora --datasets NCBI-disease \
        --word-vectors runs/w2v/vectors.kv --seeds 13

Runs every variant not yet in ``--results`` (JSON, resumable across sessions), in order, and
prints the Markdown table for ``docs/benchmarks.md``. ATS variants go through the same
``run_training`` call as ``jobs/train.py`` (one Ray Train worker here) and keep their run folders
under ``--runs``; a run folder that already holds ``results.json`` is read, not retrained.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402

from adabiobert.corpora.iob import load_corpus  # noqa: E402
from adabiobert.training_config import PRECISIONS, LossConfig, ModelConfig, OptimConfig, TrainConfig, TrainJobConfig  # noqa: E402

# (variant, loss, uses word vectors)
ATS_VARIANTS = [
    ("ats-adaptive", "adaptive", False),
    ("ats-learned", "learned", False),
    ("ats-paper", "paper", False),
    ("ce-only", "ce", False),
    ("ats-fixed-0.5", "fixed=0.5", False),
    ("crf-only", "crf", False),
    ("ats-adaptive+w2v", "adaptive", True),
    ("ats-learned+w2v", "learned", True),
    ("ce-only+w2v", "ce", True),
    ("ats-fixed-0.5+w2v", "fixed=0.5", True),
    ("crf-only+w2v", "crf", True),
]
PEERS = ["hf-token-classification", "feature-crf", "spacy-ner"]
FROZEN_SETTINGS = "e3-lr0.0002-h0.001-w0.1"
"""The shared settings every corpus's table uses (chosen on NCBI-disease dev; docs/benchmarks.md)."""


def run_ats(variant: str, loss: str, vectors: str | None, dataset: str, args, seed: int) -> dict:
    from adabiobert.distributed.training import run_training

    name = f"compare-{dataset}-{variant.replace('+', '-')}-{settings_tag(args)}-s{seed}"
    results_path = Path(args.runs) / name / "results.json"
    if not results_path.is_file():
        job = TrainJobConfig(
            dataset=dataset,
            data_root=args.data_root,
            output=args.runs,
            name=name,
            word_vectors=vectors,
            use_gpu=args.gpu,
            cpu_threads_per_worker=args.cpu_threads,
            train=TrainConfig(
                model=ModelConfig(backbone=args.backbone),
                loss=LossConfig.parse(loss),
                optim=OptimConfig(encoder_lr=args.encoder_lr, head_lr=args.head_lr, warmup_ratio=args.warmup_ratio),
                epochs=args.epochs,
                batch_size=32,
                seed=seed,
                precision=args.precision,
            ),
        )
        run_training(job)
    results = json.loads(results_path.read_text())
    test = dict(results["test"])
    test.update(
        train_seconds=results["timings"]["fit_seconds"],
        alpha_trace=results["alpha_trace"],
        dev_f1_trace=[e["dev"]["entity_f1"] for e in results["epochs"]],
        alpha_steps=[[s["step"], round(s["alpha"], 5)] for e in results["epochs"] for s in e.get("alpha_steps", [])],
        probe_seconds=sum(e.get("probe_seconds", 0.0) for e in results["epochs"]),
        steps_per_epoch=results["epochs"][0]["steps"],
        best_epoch=results["best_epoch"],
    )
    return test


def describe_machine(gpu: bool) -> str:
    """Which machine a row came from: the GPU's name, or the CPU's model (rows of both kinds share a table)."""
    if gpu and torch.cuda.is_available():
        return f"GPU {torch.cuda.get_device_name(0)}"
    from benchmarks.throughput import cpu_description

    cpu = cpu_description()
    return f"CPU {cpu['model']}, {cpu['cores']} cores"


def settings_tag(args) -> str:
    """The shared settings of a run, short: part of its run folder's name."""
    return f"e{args.epochs}-lr{args.encoder_lr:g}-h{args.head_lr:g}-w{args.warmup_ratio:g}"


def result_key(dataset: str, variant: str, seed: int, args) -> str:
    """``dataset|variant|seed``, plus ``|settings`` for runs away from the frozen settings (tuning).

    Peers keep their own recipes (learning rates included) and share only the epochs."""
    tag = settings_tag(args) if variant not in PEERS else f"e{args.epochs}"
    if variant in PEERS:
        return f"{dataset}|{variant}|{seed}" + ("" if FROZEN_SETTINGS.startswith(tag + "-") else f"|{tag}")
    return f"{dataset}|{variant}|{seed}" + ("" if tag == FROZEN_SETTINGS else f"|{tag}")


def run_peer(peer: str, dataset: str, args, seed: int) -> dict | None:
    corpus = load_corpus(dataset, args.data_root)
    if peer == "feature-crf":
        from benchmarks.peers import feature_crf

        return feature_crf.run(corpus, seed=seed)
    if peer == "hf-token-classification":
        from benchmarks.peers import hf_token_classification

        device = "cuda" if args.gpu else "cpu"
        return hf_token_classification.run(
            corpus, backbone=args.backbone, epochs=args.epochs, seed=seed, device=device, precision=args.precision
        )
    if peer == "spacy-ner":
        try:
            from benchmarks.peers import spacy_ner
        except ImportError as error:
            return {"skipped": f"spaCy not installed: {error}"}
        return spacy_ner.run(corpus, epochs=args.epochs, seed=seed)
    raise ValueError(peer)


def save_result(path: Path, key: str, outcome: dict) -> dict:
    """Add one result to the JSON file as it is NOW (another queue may have written meanwhile)."""
    results = json.loads(path.read_text()) if path.is_file() else {}
    results[key] = outcome
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(results, indent=2))
    tmp.replace(path)
    return results


def table(results: dict) -> str:
    """The Markdown table: one row per dataset and tagger, mean ± sd over seeds, and where each seed ran
    (train minutes and tagging speed are given per machine: a GPU's and a CPU's are not averaged together)."""
    lines = [
        "| dataset | tagger | seeds | test entity F1 (mean ± sd) | entity macro F1 | paper's token micro F1 "
        "| alpha per epoch | train min | tag sent/s | seeds ran on |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    groups: dict[tuple[str, str], list[tuple[str, dict]]] = {}
    for key, value in results.items():
        dataset, variant, seed, *settings = key.split("|")
        variant = " ".join([variant, *settings])
        if "skipped" not in value:
            groups.setdefault((dataset, variant), []).append((seed, value))
    order = [v for v, _, _ in ATS_VARIANTS] + PEERS
    rank = lambda item: (item[0][0], order.index(item[0][1].split()[0]) if item[0][1].split()[0] in order else len(order), item[0][1])  # noqa: E731
    for (dataset, variant), seeded in sorted(groups.items(), key=rank):
        runs = [value for _, value in seeded]
        f1 = [r["entity_f1"] * 100 for r in runs]
        spread = f" ± {statistics.stdev(f1):.1f}" if len(f1) > 1 else ""
        alpha = " → ".join(f"{a:.2f}" for a in runs[0].get("alpha_trace", [])) or "–"
        by_machine: dict[str, list[tuple[str, dict]]] = {}
        for seed, run in sorted(seeded):
            by_machine.setdefault(machine_label(run), []).append((seed, run))
        where = "; ".join(f"{label} {', '.join(seed for seed, _ in group)}" for label, group in by_machine.items())
        lines.append(
            f"| {dataset} | {variant} | {len(runs)} | {statistics.mean(f1):.1f}{spread} | "
            f"{statistics.mean(r['entity_macro_f1'] for r in runs) * 100:.1f} | "
            f"{statistics.mean(r['paper_token_micro_f1'] for r in runs) * 100:.1f} | {alpha} | "
            f"{_per_machine(by_machine, 'train_seconds', 1 / 60)} | {_per_machine(by_machine, 'tagging_sentences_per_second')} | "
            f"{where} |"
        )
    return "\n".join(lines)


def _per_machine(by_machine: dict[str, list[tuple[str, dict]]], field: str, scale: float = 1.0) -> str:
    """``field``'s mean per machine, labelled when there is more than one machine: ``30 CPU / 4.1 H200``."""
    values = []
    for label, group in by_machine.items():
        value = statistics.mean(run[field] for _, run in group) * scale
        values.append((f"{value:.1f}" if value < 10 else f"{value:.0f}") + (f" {label}" if len(by_machine) > 1 else ""))
    return " / ".join(values)


def across_corpora(results: dict) -> str:
    """Which tagger wins across the corpora: each tagger's per-corpus mean test entity F1 (seeds in
    brackets), the mean of those means, and its gap to the best such mean in units of the typical
    seed sd (the mean of the two taggers' per-corpus sds): under 1, the table cannot tell them apart.
    Only taggers with a result on every corpus of ``results`` are ranked; the ``+w2v`` variants add
    a feature rather than change the loss, and are left to their own table."""
    scores: dict[str, dict[str, list[float]]] = {}
    for key, value in results.items():
        dataset, variant, _seed = key.split("|")[:3]
        if "skipped" not in value and key.count("|") == 2 and "+w2v" not in variant:
            scores.setdefault(variant, {}).setdefault(dataset, []).append(value["entity_f1"] * 100)
    datasets = sorted({d for per in scores.values() for d in per})
    ranked = {v: per for v, per in scores.items() if set(per) == set(datasets)}
    if not ranked:
        return ""

    def sd(values: list[float]) -> float | None:
        return statistics.stdev(values) if len(values) > 1 else None

    grand = {v: statistics.mean(statistics.mean(per[d]) for d in datasets) for v, per in ranked.items()}
    best = max(grand, key=grand.get)
    lines = [
        "| tagger | " + " | ".join(datasets) + " | mean over corpora | gap to the best | gap / seed sd |",
        "|---|" + "---:|" * (len(datasets) + 3),
    ]
    for variant in sorted(ranked, key=grand.get, reverse=True):
        per = ranked[variant]
        sds = [x for d in datasets for x in (sd(per[d]), sd(ranked[best][d])) if x is not None]
        gap = grand[best] - grand[variant]
        ratio = f"{gap / statistics.mean(sds):.1f}" if sds and variant != best else "–"
        cells = " | ".join(f"{statistics.mean(per[d]):.2f} ({len(per[d])})" for d in datasets)
        lines.append(f"| {variant} | {cells} | {grand[variant]:.2f} | {gap:.2f} | {ratio} |")
    return "\n".join(lines)


def machine_label(outcome: dict) -> str:
    """``H200``-style for a GPU row, ``CPU`` for a CPU row (rows from before the field existed ran on this
    project's 2-core CPU machine)."""
    machine = outcome.get("machine", "CPU")
    return machine.removeprefix("GPU ").removeprefix("NVIDIA ") if machine.startswith("GPU") else "CPU"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-root", required=True)
    parser.add_argument("--datasets", nargs="+", default=["NCBI-disease"])
    parser.add_argument("--seeds", nargs="+", type=int, default=[13])
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--backbone", default="minilm")
    parser.add_argument("--encoder-lr", type=float, default=2e-4, help="frozen after tuning on NCBI-disease dev")
    parser.add_argument("--head-lr", type=float, default=OptimConfig.head_lr)
    parser.add_argument("--warmup-ratio", type=float, default=OptimConfig.warmup_ratio)
    parser.add_argument("--word-vectors", default=None, help="KeyedVectors for the +w2v variants (skipped without)")
    parser.add_argument("--only", nargs="*", default=None, help="run only these variants/peers, in this order")
    parser.add_argument("--runs", default="runs/compare")
    parser.add_argument("--results", default="benchmarks/results/compare.json")
    parser.add_argument("--gpu", action="store_true", help="train and tag on a GPU (bf16 autocast unless --precision fp32)")
    parser.add_argument(
        "--precision", choices=PRECISIONS, default="auto",
        help="training precision; the table's CPU rows are fp32 (what auto gives on a CPU), so GPU rows meant "
        "to sit beside them use fp32 too",
    )
    parser.add_argument("--cpu-threads", type=int, default=None, help="torch threads per run (several lanes on one machine)")
    parser.add_argument("--plot", default=None, help="write the alpha trajectories of the ATS runs to this PNG")
    args = parser.parse_args(argv)
    if Path(args.backbone).is_dir():  # the Ray workers run elsewhere: a local folder must be absolute
        args.backbone = str(Path(args.backbone).resolve())
    if args.cpu_threads:
        torch.set_num_threads(args.cpu_threads)  # the peers run in this process
    machine = describe_machine(args.gpu)
    results_path = Path(args.results)
    results = json.loads(results_path.read_text()) if results_path.is_file() else {}
    plan = [(v, loss, w2v) for v, loss, w2v in ATS_VARIANTS if args.word_vectors or not w2v]
    names = args.only if args.only else [v for v, _, _ in plan] + PEERS
    for dataset in args.datasets:
        for seed in args.seeds:
            for name in names:
                key = result_key(dataset, name, seed, args)
                if key in results:
                    continue
                started = time.perf_counter()
                print(f"== {key}", flush=True)
                spec = next((p for p in plan if p[0] == name), None)
                if spec:
                    outcome = run_ats(name, spec[1], args.word_vectors if spec[2] else None, dataset, args, seed)
                else:
                    outcome = run_peer(name, dataset, args, seed)
                outcome["wall_seconds"] = time.perf_counter() - started
                outcome.update(machine=machine, precision=args.precision)
                results[key] = outcome
                results = save_result(results_path, key, outcome)
                print(f"   entity F1 {outcome.get('entity_f1', float('nan')):.4f}", flush=True)
    print(table(results))
    print()
    print(across_corpora({k: v for k, v in results.items() if k.count("|") == 2}))
    if args.plot:
        plot_alpha(results, args.plot)
    return 0


def plot_alpha(results: dict, path: str) -> None:
    """alpha over training for every run whose alpha moves, one panel per dataset (the paper's
    Figure 2): per step where it was recorded, else per epoch; the first seed solid, others faint."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    moving = {k: v for k, v in sorted(results.items()) if v.get("alpha_trace") and any(m in k for m in ("adaptive", "learned", "paper"))}
    datasets = sorted({k.split("|")[0] for k in moving})
    if not datasets:
        return
    figure, axes = plt.subplots(1, len(datasets), figsize=(4.2 * len(datasets), 3.4), dpi=120, squeeze=False, sharey=True)
    colours = {"ats-adaptive": "tab:red", "ats-learned": "tab:blue", "ats-paper": "tab:green"}
    seen: set[tuple[str, str]] = set()
    for key, value in moving.items():
        dataset, variant, seed, *settings = key.split("|")
        if settings:
            continue
        axis = axes[0][datasets.index(dataset)]
        first = (dataset, variant) not in seen
        seen.add((dataset, variant))
        steps, per_epoch = value.get("alpha_steps"), value.get("steps_per_epoch")
        if steps and per_epoch:
            x, y = [0.0] + [s / per_epoch for s, _ in steps], [0.5] + [a for _, a in steps]
        else:
            x, y = list(range(0, len(value["alpha_trace"]) + 1)), [0.5] + value["alpha_trace"]
        axis.plot(x, y, "-", color=colours.get(variant.split("+")[0], "tab:gray"), alpha=1.0 if first else 0.35,
                  linewidth=1.4 if first else 0.9, label=variant if first else None)
    for axis, dataset in zip(axes[0], datasets):
        axis.set_title(dataset)
        axis.set_xlabel("epoch")
        axis.set_ylim(0, 1)
        axis.axhline(0.5, color="0.8", linewidth=0.6, zorder=0)
        axis.legend(fontsize=7, loc="best")
    axes[0][0].set_ylabel("alpha (weight of L_CE)")
    figure.tight_layout()
    figure.savefig(path)
    plt.close(figure)


if __name__ == "__main__":
    raise SystemExit(main())
