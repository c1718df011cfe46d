"""The results document of a training run and its plot of dev F1 and alpha per epoch.

``results.json`` says what was trained on and with which code, so that a reader can trust and
reproduce a run: ``data`` holds the resolved data root and the sha256 of each split file the
driver read; ``code`` the package version and, when it can be found, the git commit.
"""

from __future__ import annotations

import datetime as dt
import os
import subprocess
from collections.abc import Mapping
from pathlib import Path

from adabiobert import storage

METRIC_NOTE = (
    "entity_* are entity-level strict scores (exact span and type, as seqeval/conlleval); this "
    "project's headline metric. paper_token_* are the AdaBioBERT paper's token-level scores "
    "(scikit-learn F1 over word labels, O included), which run higher."
)

GIT_COMMIT_ENV = "ADABIOBERT_GIT_COMMIT"
"""Names the commit where the code has no ``.git`` beside it (a container image: cluster/Dockerfile
sets it from a build argument)."""


def data_provenance(data_root: str | Path, files: Mapping[str, str]) -> dict:
    """The resolved data root and, per split, the file read, its size and its sha256.

    Args:
        data_root: the folder the dataset was loaded from (``resolve_data_root``'s answer).
        files: ``Corpus.files``: the file each split was read from.
    """
    return {
        "root": str(Path(data_root).resolve()),
        "files": {
            split: {"path": str(Path(path).resolve()), "bytes": os.path.getsize(path), "sha256": storage.file_sha256(path)}
            for split, path in sorted(files.items())
        },
    }


def code_version(package_dir: str | Path | None = None) -> dict:
    """The package version and the git commit of the checkout it runs from, when there is one.

    The commit comes from ``git`` when ``package_dir``'s parent is the top of a git work tree
    (so an install inside some other repository does not report that repository's commit), else
    from ``$ADABIOBERT_GIT_COMMIT``, else it is None. ``git_dirty`` is True when tracked files
    differ from the commit, None when unknown. Never raises for a missing git or repository.
    """
    import adabiobert

    package_dir = Path(package_dir or Path(adabiobert.__file__).parent).resolve()
    commit, dirty = _git(package_dir.parent)
    if commit is None:
        commit = os.environ.get(GIT_COMMIT_ENV) or None
    return {"adabiobert": adabiobert.__version__, "git_commit": commit, "git_dirty": dirty}


def _git(checkout: Path) -> tuple[str | None, bool | None]:
    def run(*args: str) -> str:
        return subprocess.run(["git", "-C", str(checkout), *args], capture_output=True, text=True,
                              timeout=10, check=True).stdout.strip()

    try:
        if Path(run("rev-parse", "--show-toplevel")).resolve() != checkout:
            return None, None
        return run("rev-parse", "HEAD"), bool(run("status", "--porcelain", "--untracked-files=no"))
    except (OSError, subprocess.SubprocessError):  # no git, not a repository, no commit yet
        return None, None


def results_document(job, history: list[dict], test: dict, fit_seconds: float, total_seconds: float,
                     versions: dict, data: dict | None = None, code: dict | None = None,
                     extra: dict | None = None) -> dict:
    """Everything a reader needs to trust and reproduce a run, as one JSON-able dict.

    Args:
        job: the ``TrainJobConfig`` (its ``data_root`` as resolved, not as given).
        history: ``EpochReport.to_dict()`` per epoch.
        test: the best checkpoint's test scores.
        versions: library versions and the machine.
        data: :func:`data_provenance` of the corpus read.
        code: :func:`code_version`.
        extra: further sections, after ``test`` (a mix's ``mix``, ``test_by_corpus`` and
            ``offset_test``: ``distributed.training.run_training``).
    """
    best = max(history, key=lambda h: h["dev"].get("entity_f1", 0.0)) if history else None
    return {
        "created": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "metric_note": METRIC_NOTE,
        "run": {"name": job.name, "dataset": job.dataset, "output": job.output},
        "data": data,
        "code": code,
        "settings": job.to_dict(),
        "versions": versions,
        "best_epoch": best["epoch"] if best else None,
        "dev_best": best["dev"] if best else None,
        "test": test,
        **(extra or {}),
        "alpha_trace": [h["alpha"] for h in history],
        "epochs": history,
        "timings": {
            "fit_seconds": round(fit_seconds, 1),
            "total_seconds": round(total_seconds, 1),
            "train_seconds_per_epoch": [round(h["train_seconds"], 1) for h in history],
            "eval_seconds_per_epoch": [round(h["eval_seconds"], 1) for h in history],
        },
    }


def training_curve_figure(history: list[dict], title: str = ""):
    """Dev entity F1 (left axis) and alpha (right axis) per epoch, as a matplotlib Figure.

    Epochs are whole numbers on the x axis, padded by half an epoch on each side, so a one-epoch
    run shows one point at ``1`` (not an axis from 0.96 to 1.04); one legend names both lines.
    After one epoch both points are labelled with their values (on different axes, the two
    markers can sit on each other).
    """
    from matplotlib.figure import Figure  # no pyplot: no global state, no backend to choose
    from matplotlib.ticker import MaxNLocator

    epochs = [h["epoch"] for h in history]
    f1 = [h["dev"].get("entity_f1", 0.0) for h in history]
    alpha = [h["alpha"] for h in history]
    marker_size = 6 if len(epochs) <= 15 else 3
    figure = Figure(figsize=(7, 4), dpi=120)
    f1_axis = figure.add_subplot()
    (f1_line,) = f1_axis.plot(epochs, f1, "o-", color="tab:blue", markersize=marker_size, label="dev entity F1 (strict)")
    f1_axis.set_xlabel("epoch")
    f1_axis.set_ylabel("dev entity-level strict F1", color="tab:blue")
    f1_axis.set_ylim(_padded(f1))
    f1_axis.grid(alpha=0.3)
    alpha_axis = f1_axis.twinx()
    (alpha_line,) = alpha_axis.plot(epochs, alpha, "s--", color="tab:red", markersize=marker_size,
                                    label="alpha (weight of L_CE)")
    alpha_axis.set_ylabel("alpha (weight of L_CE)", color="tab:red")
    alpha_axis.set_ylim(0, 1)
    if epochs:
        f1_axis.set_xlim(min(epochs) - 0.5, max(epochs) + 0.5)
    if len(epochs) == 1:  # two lone markers on different axes may sit on each other: write their values
        for epoch, value in zip(epochs, f1):
            f1_axis.annotate(f"F1 {value:.3f}", (epoch, value), xytext=(0, 9), textcoords="offset points",
                             ha="center", color="tab:blue", fontsize="small")
        for epoch, value in zip(epochs, alpha):
            alpha_axis.annotate(f"alpha {value:.3f}", (epoch, value), xytext=(0, -15), textcoords="offset points",
                                ha="center", color="tab:red", fontsize="small")
    f1_axis.xaxis.set_major_locator(MaxNLocator(integer=True, min_n_ticks=1))
    f1_axis.legend(handles=[f1_line, alpha_line], loc="lower right", fontsize="small")
    f1_axis.set_title(title)
    figure.tight_layout()
    return figure


def _padded(values: list[float]) -> tuple[float, float]:
    """Y limits that show small differences but never leave [0, 1]."""
    if not values:
        return 0.0, 1.0
    low, high = min(values), max(values)
    margin = max(0.05, (high - low) * 0.1)
    return max(0.0, low - margin), min(1.0, high + margin)


def plot_training_curve(history: list[dict], path: str | Path, title: str = "") -> Path:
    """Write :func:`training_curve_figure` as a PNG; returns ``path``."""
    training_curve_figure(history, title).savefig(path)
    return Path(path)
