"""The results document of a training run and its plot of dev F1 and alpha per epoch."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

METRIC_NOTE = (
    "entity_* are entity-level strict scores (exact span and type, as seqeval/conlleval); this "
    "project's headline metric. paper_token_* are the AdaBioBERT paper's token-level scores "
    "(scikit-learn F1 over word labels, O included), which run higher."
)


def results_document(job, history: list[dict], test: dict, fit_seconds: float, total_seconds: float, versions: dict) -> dict:
    """Everything a reader needs to trust and reproduce a run, as one JSON-able dict."""
    best = max(history, key=lambda h: h["dev"].get("entity_f1", 0.0)) if history else None
    return {
        "created": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "metric_note": METRIC_NOTE,
        "run": {"name": job.name, "dataset": job.dataset, "output": job.output},
        "settings": job.to_dict(),
        "versions": versions,
        "best_epoch": best["epoch"] if best else None,
        "dev_best": best["dev"] if best else None,
        "test": test,
        "alpha_trace": [h["alpha"] for h in history],
        "epochs": history,
        "timings": {
            "fit_seconds": round(fit_seconds, 1),
            "total_seconds": round(total_seconds, 1),
            "train_seconds_per_epoch": [round(h["train_seconds"], 1) for h in history],
            "eval_seconds_per_epoch": [round(h["eval_seconds"], 1) for h in history],
        },
    }


def plot_training_curve(history: list[dict], path: str | Path, title: str = "") -> Path:
    """Dev entity F1 (left axis) and alpha (right axis) per epoch, as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    epochs = [h["epoch"] for h in history]
    figure, f1_axis = plt.subplots(figsize=(6, 3.5), dpi=120)
    f1_axis.plot(epochs, [h["dev"].get("entity_f1", 0.0) for h in history], "o-", color="tab:blue", label="dev entity F1")
    f1_axis.set_xlabel("epoch")
    f1_axis.set_ylabel("dev entity-level strict F1", color="tab:blue")
    alpha_axis = f1_axis.twinx()
    alpha_axis.plot(epochs, [h["alpha"] for h in history], "s--", color="tab:red", label="alpha")
    alpha_axis.set_ylabel("alpha (weight of L_CE)", color="tab:red")
    alpha_axis.set_ylim(0, 1)
    f1_axis.set_title(title)
    figure.tight_layout()
    figure.savefig(path)
    plt.close(figure)
    return Path(path)
