"""Why the ``learned`` alpha moves as it does: replay its optimizer on the recorded loss gaps.

    python benchmarks/alpha_dynamics.py RUN/results.json [RUN2/results.json ...]

A ``learned`` run records, for every optimizer step, alpha and the step's L_CE and L_CRF
(``results.json`` -> ``epochs[].alpha_steps``). This script feeds theta's gradient
``(L_CE - L_CRF) * a * (1 - a)`` from those records through the same AdamW and warm-up/decay
schedule the run used (``adabiobert.model.engine.linear_warmup_schedule``) and prints, per run:

- how closely the replay reproduces the recorded alpha (it ignores gradient clipping);
- the replay with the gaps multiplied by 0.01 .. 100: if alpha ends where it ended whatever the
  size of the gap, the data only sets the SIGN of the step and Adam's normalised step and the
  learning-rate schedule set its size;
- the bound that follows: |theta_T| <= alpha_lr * sum_t schedule(t) (Adam's step is at most about
  lr_t while the gradient keeps its sign), and the alpha range that bound allows.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402

from adabiobert.model.engine import linear_warmup_schedule  # noqa: E402

SCALES = (0.01, 0.1, 1.0, 10.0, 100.0)


def replay(gaps: list[float], alpha_lr: float, warmup_ratio: float, total_steps: int, alpha0: float = 0.5) -> list[float]:
    """alpha after each step when theta's only gradient is gap_t * a * (1 - a)."""
    theta = torch.nn.Parameter(torch.tensor(math.log(alpha0 / (1 - alpha0))))
    optimizer = torch.optim.AdamW([theta], lr=alpha_lr, weight_decay=0.0)
    scheduler = linear_warmup_schedule(optimizer, total_steps, warmup_ratio)
    trace = []
    for gap in gaps:
        a = torch.sigmoid(theta)
        theta.grad = (gap * a * (1 - a)).detach().reshape(())
        optimizer.step()
        scheduler.step()
        trace.append(float(torch.sigmoid(theta.detach())))
    return trace


def schedule_sum(total_steps: int, warmup_ratio: float) -> float:
    """sum_t schedule(t) over the run: the most Adam can move theta, in units of the lr."""
    optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(()))], lr=1.0)
    scheduler = linear_warmup_schedule(optimizer, total_steps, warmup_ratio)
    total = 0.0
    for _ in range(total_steps):
        total += scheduler.get_last_lr()[0]
        optimizer.step()
        scheduler.step()
    return total


def analyse(path: Path) -> dict:
    results = json.loads(path.read_text())
    settings = results["settings"]["train"]
    optim, epochs = settings["optim"], results["epochs"]
    records = [s for e in epochs for s in e.get("alpha_steps", [])]
    if not records or "ce" not in records[0]:
        raise SystemExit(f"{path}: no per-step alpha records (a learned run made by this version is needed)")
    gaps = [s["ce"] - s["crf"] for s in records]
    steps_per_epoch = [e["steps"] for e in epochs]
    total = sum(steps_per_epoch) if len(epochs) == settings["epochs"] else steps_per_epoch[0] * settings["epochs"]
    recorded = [s["alpha"] for s in records]
    ends = [sum(steps_per_epoch[: i + 1]) - 1 for i in range(len(epochs))]
    by_scale = {scale: replay([g * scale for g in gaps], optim["alpha_lr"], optim["warmup_ratio"], total, settings["loss"]["alpha"]) for scale in SCALES}
    bound = optim["alpha_lr"] * schedule_sum(total, optim["warmup_ratio"])
    return {
        "run": results["run"]["name"],
        "dataset": results["run"]["dataset"],
        "steps": total,
        "gap_positive_share": sum(g > 0 for g in gaps) / len(gaps),
        "gap_per_epoch": [sum(gaps[a:b + 1]) / (b + 1 - a) for a, b in zip([0] + [e + 1 for e in ends[:-1]], ends)],
        "recorded": [recorded[i] for i in ends],
        "replayed": {scale: [trace[i] for i in ends] for scale, trace in by_scale.items()},
        "replay_max_error": max(abs(a - b) for a, b in zip(recorded, by_scale[1.0])),
        "theta_bound": bound,
        "alpha_range": (1 / (1 + math.exp(bound)), 1 / (1 + math.exp(-bound))),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("results", nargs="+", type=Path)
    parser.add_argument("--json", type=Path, default=None, help="also write the analysis here")
    args = parser.parse_args(argv)
    analyses = [analyse(p) for p in args.results]
    print("| run | steps | share of steps with L_CE > L_CRF | mean gap per epoch | alpha recorded | replayed (gap x1) | "
          + " | ".join(f"gap x{s:g}" for s in SCALES if s != 1.0) + " | max |replay - recorded| | alpha range Adam allows |")
    print("|---" * (8 + len(SCALES) - 1) + "|")
    for a in analyses:
        fmt = lambda xs: " → ".join(f"{x:.3f}" for x in xs)  # noqa: E731
        print(f"| {a['dataset']} | {a['steps']} | {a['gap_positive_share']:.0%} | {fmt(a['gap_per_epoch'])} | {fmt(a['recorded'])} | "
              f"{fmt(a['replayed'][1.0])} | " + " | ".join(fmt(a["replayed"][s]) for s in SCALES if s != 1.0)
              + f" | {a['replay_max_error']:.4f} | {a['alpha_range'][0]:.3f} – {a['alpha_range'][1]:.3f} |")
    if args.json:
        args.json.write_text(json.dumps(analyses, indent=2, default=str))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
