"""Accuracy of the ATS tagger on one dataset with the offline MiniLM backbone, on this machine.

    python benchmarks/accuracy.py --data-root ../shared/corpora --dataset NCBI-disease --epochs 3

Runs ``jobs/train.py``'s library call with the given settings and prints one Markdown row for
``docs/benchmarks.md`` (dev and test entity-level strict F1, the paper's token-level F1, alpha,
time). The full results JSON stays in ``<output>/<name>/results.json``.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from adabiobert.distributed.training import run_training  # noqa: E402
from adabiobert.training_config import LossConfig, ModelConfig, TrainConfig, TrainJobConfig  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", default="NCBI-disease")
    parser.add_argument("--data-root", default=None)
    parser.add_argument("--backbone", default="minilm")
    parser.add_argument("--word-vectors", default=None)
    parser.add_argument("--loss", default=LossConfig().mode)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--seed", type=int, default=13)
    parser.add_argument("--output", default="runs/benchmarks")
    parser.add_argument("--name", default=None)
    args = parser.parse_args(argv)
    name = args.name or f"accuracy-{args.dataset}-{args.loss.replace('=', '')}-{'w2v' if args.word_vectors else 'now2v'}-s{args.seed}"
    job = TrainJobConfig(
        dataset=args.dataset,
        data_root=args.data_root,
        output=args.output,
        name=name,
        word_vectors=args.word_vectors,
        train=TrainConfig(
            model=ModelConfig(backbone=args.backbone),
            loss=LossConfig.parse(args.loss),
            epochs=args.epochs,
            batch_size=args.batch_size,
            seed=args.seed,
        ),
    )
    results = run_training(job).results
    dev, test = results["dev_best"], results["test"]
    minutes = results["timings"]["total_seconds"] / 60
    print(json.dumps({"name": name, "dev": dev["entity_f1"], "test": test["entity_f1"]}))
    print(
        f"| {args.dataset} | {args.loss} | {'yes' if args.word_vectors else 'no'} | {args.epochs} | "
        f"{dev['entity_f1'] * 100:.1f} | {test['entity_f1'] * 100:.1f} | {test['entity_macro_f1'] * 100:.1f} | "
        f"{test['paper_token_micro_f1'] * 100:.1f} | {' → '.join(f'{a:.3f}' for a in results['alpha_trace'])} | {minutes:.0f} min |"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
