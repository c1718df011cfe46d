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

from adabiobert.config import LossConfig, ModelConfig, OptimConfig, TrainConfig, TrainJobConfig  # noqa: E402
from adabiobert.corpus import load_corpus  # noqa: E402

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


def run_ats(variant: str, loss: str, vectors: str | None, dataset: str, args, seed: int) -> dict:
    from adabiobert.distributed.training import run_training

    settings = f"e{args.epochs}-lr{args.encoder_lr:g}-h{args.head_lr:g}-w{args.warmup_ratio:g}"
    name = f"compare-{dataset}-{variant.replace('+', '-')}-{settings}-s{seed}"
    results_path = Path(args.runs) / name / "results.json"
    if not results_path.is_file():
        job = TrainJobConfig(
            dataset=dataset,
            data_root=args.data_root,
            output=args.runs,
            name=name,
            word_vectors=vectors,
            use_gpu=args.gpu,
            train=TrainConfig(
                model=ModelConfig(backbone=args.backbone),
                loss=LossConfig.parse(loss),
                optim=OptimConfig(encoder_lr=args.encoder_lr, head_lr=args.head_lr, warmup_ratio=args.warmup_ratio),
                epochs=args.epochs,
                batch_size=32,
                seed=seed,
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
        best_epoch=results["best_epoch"],
    )
    return test


def run_peer(peer: str, dataset: str, args, seed: int) -> dict | None:
    corpus = load_corpus(dataset, args.data_root)
    if peer == "feature-crf":
        from benchmarks.peers import feature_crf

        return feature_crf.run(corpus, seed=seed)
    if peer == "hf-token-classification":
        from benchmarks.peers import hf_token_classification

        device = "cuda" if args.gpu else "cpu"
        return hf_token_classification.run(corpus, backbone=args.backbone, epochs=args.epochs, seed=seed, device=device)
    if peer == "spacy-ner":
        try:
            from benchmarks.peers import spacy_ner
        except ImportError as error:
            return {"skipped": f"spaCy not installed: {error}"}
        return spacy_ner.run(corpus, epochs=args.epochs, seed=seed)
    raise ValueError(peer)


def table(results: dict) -> str:
    lines = [
        "| dataset | tagger | seeds | test entity F1 (mean ± sd) | entity macro F1 | paper's token micro F1 | alpha per epoch | train min | tag sent/s |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    groups: dict[tuple[str, str], list[dict]] = {}
    for key, value in results.items():
        dataset, variant, _ = key.split("|")
        if "skipped" not in value:
            groups.setdefault((dataset, variant), []).append(value)
    for (dataset, variant), runs in groups.items():
        f1 = [r["entity_f1"] * 100 for r in runs]
        spread = f" ± {statistics.stdev(f1):.1f}" if len(f1) > 1 else ""
        alpha = " → ".join(f"{a:.2f}" for a in runs[0].get("alpha_trace", [])) or "–"
        lines.append(
            f"| {dataset} | {variant} | {len(runs)} | {statistics.mean(f1):.1f}{spread} | "
            f"{statistics.mean(r['entity_macro_f1'] for r in runs) * 100:.1f} | "
            f"{statistics.mean(r['paper_token_micro_f1'] for r in runs) * 100:.1f} | {alpha} | "
            f"{statistics.mean(r['train_seconds'] for r in runs) / 60:.0f} | "
            f"{statistics.mean(r['tagging_sentences_per_second'] for r in runs):.0f} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-root", required=True)
    parser.add_argument("--datasets", nargs="+", default=["NCBI-disease"])
    parser.add_argument("--seeds", nargs="+", type=int, default=[13])
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--backbone", default="minilm")
    parser.add_argument("--encoder-lr", type=float, default=OptimConfig.encoder_lr)
    parser.add_argument("--head-lr", type=float, default=OptimConfig.head_lr)
    parser.add_argument("--warmup-ratio", type=float, default=OptimConfig.warmup_ratio)
    parser.add_argument("--word-vectors", default=None, help="KeyedVectors for the +w2v variants (skipped without)")
    parser.add_argument("--only", nargs="*", default=None, help="run only these variants/peers, in this order")
    parser.add_argument("--runs", default="runs/compare")
    parser.add_argument("--results", default="benchmarks/results/compare.json")
    parser.add_argument("--gpu", action="store_true", help="train and tag on a GPU (bf16 autocast for ATS runs)")
    parser.add_argument("--plot", default=None, help="write the alpha trajectories of the ATS runs to this PNG")
    args = parser.parse_args(argv)
    results_path = Path(args.results)
    results = json.loads(results_path.read_text()) if results_path.is_file() else {}
    plan = [(v, loss, w2v) for v, loss, w2v in ATS_VARIANTS if args.word_vectors or not w2v]
    names = args.only if args.only else [v for v, _, _ in plan] + PEERS
    for dataset in args.datasets:
        for seed in args.seeds:
            for name in names:
                key = f"{dataset}|{name}|{seed}"
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
                results[key] = outcome
                results_path.parent.mkdir(parents=True, exist_ok=True)
                results_path.write_text(json.dumps(results, indent=2))
                print(f"   entity F1 {outcome.get('entity_f1', float('nan')):.4f}", flush=True)
    print(table(results))
    if args.plot:
        plot_alpha(results, args.plot)
    return 0


def plot_alpha(results: dict, path: str) -> None:
    """alpha per epoch of every run with a learned alpha (the paper's Figure 2, per dataset)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axis = plt.subplots(figsize=(6, 3.5), dpi=120)
    for key, value in sorted(results.items()):
        dataset, variant, seed = key.split("|")
        trace = value.get("alpha_trace")
        if trace and "learned" in variant:
            axis.plot(range(1, len(trace) + 1), trace, "o-", label=f"{dataset} {variant} s{seed}")
    axis.set_xlabel("epoch")
    axis.set_ylabel("alpha (weight of L_CE)")
    axis.set_ylim(0, 1)
    axis.set_xticks(range(1, 1 + max((len(v.get("alpha_trace") or []) for v in results.values()), default=1)))
    axis.legend(fontsize=7)
    figure.tight_layout()
    figure.savefig(path)
    plt.close(figure)


if __name__ == "__main__":
    raise SystemExit(main())
