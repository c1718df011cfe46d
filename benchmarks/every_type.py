"""One tagger for every type (issue 22): single-corpus taggers, the naive union and the union
tagger, scored by strict character-offset F1 on each PubTator test file.

    python benchmarks/every_type.py --pubtator-root ../shared/pubtator --backbone minilm --epochs 3

Three configurations, each through the same ``run_training`` call as ``jobs/train.py`` (one Ray
Train worker here):

* ``single``: one run per corpus, ``--dataset pubtator:<corpus>``;
* ``naive_union``: one run on every corpus, ``--partial-annotation off`` (every ``O`` is ``O``:
  the failure to avoid);
* ``union``: the same run with the partial-annotation loss (the shipped tagger).

Run folders go under ``--runs``, named by configuration, settings and seed; a folder that already
holds ``results.json`` is read, not retrained, so an interrupted benchmark resumes where it
stopped. After each run ``--results`` is rewritten from every finished run:
``{test set: {"single": F1, "naive_union": F1, "union": F1}}`` with test sets named
``<test file stem>/<type>`` and ``<test file stem>/micro`` (``BC5CDR_Test/Chemical``,
``BioRED_Test/micro``), F1 in [0, 1], a configuration not yet run left out; the Markdown table
for docs/benchmarks.md is printed at the end.

``--tiny-backbone`` builds a 2-layer random BERT from the corpora's words instead of
``--backbone`` (a smoke run of this script, meaningless figures).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from adabiobert.corpora.mix import PUBTATOR_PREFIX, load_training_data  # noqa: E402
from adabiobert.corpora.pubtator import CORPORA  # noqa: E402
from adabiobert.training_config import ModelConfig, OptimConfig, TrainConfig, TrainJobConfig  # noqa: E402

CONFIGURATIONS = ("single", "naive_union", "union")
DEFAULT_RESULTS = Path(__file__).resolve().parent / "results" / "every_type.json"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pubtator-root", default=None, help="folder of the PubTator files (default: as jobs/train.py)")
    parser.add_argument("--corpora", default=",".join(CORPORA), help="PubTator corpora, joined by commas (default: all)")
    parser.add_argument("--backbone", default="minilm")
    parser.add_argument("--tiny-backbone", action="store_true", help="a tiny random BERT instead (smoke run)")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--encoder-lr", type=float, default=2e-4)
    parser.add_argument("--head-lr", type=float, default=1e-3)
    parser.add_argument("--seed", type=int, default=13)
    parser.add_argument("--max-train-sentences", type=int, default=None,
                        help="per corpus: the first documents whose sentences fit (a compute budget; smoke runs)")
    parser.add_argument("--max-eval-sentences", type=int, default=None, help="per corpus (smoke runs)")
    parser.add_argument("--gpu", action="store_true")
    parser.add_argument("--cpu-threads", type=int, default=None)
    parser.add_argument("--configurations", default="union,naive_union,single",
                        help="which configurations to run, in this order (default: the shipped union first)")
    parser.add_argument("--runs", default="runs/every-type", help="folder of the run folders")
    parser.add_argument("--results", default=str(DEFAULT_RESULTS))
    return parser.parse_args(argv)


def settings_tag(args: argparse.Namespace) -> str:
    """The shared settings of a run, short: part of its folder's name."""
    backbone = "tiny" if args.tiny_backbone else Path(args.backbone).name
    limits = "".join(f"-{key}{value}" for key, value in (("n", args.max_train_sentences), ("v", args.max_eval_sentences))
                     if value is not None)
    return f"{backbone}-e{args.epochs}-lr{args.encoder_lr:g}-h{args.head_lr:g}{limits}-s{args.seed}"


def runs(corpora: list[str], configurations: list[str]) -> list[tuple[str, str, str, bool]]:
    """The runs of ``configurations``, in that order: (configuration, run label, --dataset,
    partial annotation)."""
    mix = ",".join(PUBTATOR_PREFIX + c for c in corpora)
    every = {"union": [("union", "all", mix, True)], "naive_union": [("naive_union", "all", mix, False)],
             "single": [("single", c, PUBTATOR_PREFIX + c, False) for c in corpora]}
    return [run for configuration in configurations for run in every[configuration]]


def run_name(configuration: str, label: str, args: argparse.Namespace, corpora: list[str]) -> str:
    scope = label if configuration == "single" else ("union" if corpora == list(CORPORA) else "+".join(corpora))
    return f"every-type-{configuration}-{scope}-{settings_tag(args)}"


def train(dataset: str, partial: bool, name: str, backbone: str, args: argparse.Namespace) -> dict:
    """The run's results.json, training it first when its folder has none."""
    results_path = Path(args.runs) / name / "results.json"
    if not results_path.is_file():
        from adabiobert.distributed.training import run_training

        run_training(TrainJobConfig(
            dataset=dataset, pubtator_root=args.pubtator_root, partial_annotation=partial, output=args.runs,
            name=name, max_train_sentences=args.max_train_sentences, max_eval_sentences=args.max_eval_sentences,
            use_gpu=args.gpu, cpu_threads_per_worker=args.cpu_threads,
            train=TrainConfig(model=ModelConfig(backbone=backbone),
                              optim=OptimConfig(encoder_lr=args.encoder_lr, head_lr=args.head_lr),
                              epochs=args.epochs, batch_size=args.batch_size, seed=args.seed),
        ))
    return json.loads(results_path.read_text(encoding="utf-8"))


def offset_f1(results: dict) -> dict[str, float]:
    """``{"<test set>/<type>": F1, "<test set>/micro": F1}`` of one run's ``offset_test``."""
    scores = {}
    for test_set, found in results.get("offset_test", {}).items():
        scores.update({f"{test_set}/{t}": s["f1"] for t, s in found["per_type"].items()})
        scores[f"{test_set}/micro"] = found["micro"]["f1"]
    return scores


def table(figures: dict[str, dict[str, float]]) -> str:
    """The Markdown table: a row per test set, a column per configuration (F1 x 100)."""
    lines = ["| test set | single | naive union | union |", "|---|---|---|---|"]
    for test_set, row in figures.items():
        cells = [f"{100 * row[c]:.2f}" if c in row else "-" for c in CONFIGURATIONS]
        lines.append(f"| {test_set} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def save(path: Path, figures: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_suffix(".tmp")
    temporary.write_text(json.dumps(figures, indent=2) + "\n", encoding="utf-8")
    temporary.replace(path)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    corpora = [c.strip() for c in args.corpora.split(",") if c.strip()]
    configurations = [c.strip() for c in args.configurations.split(",") if c.strip()]
    unknown = sorted(set(configurations) - set(CONFIGURATIONS))
    if unknown:
        raise SystemExit(f"--configurations: unknown {', '.join(unknown)}; known: {', '.join(CONFIGURATIONS)}")
    with tempfile.TemporaryDirectory() as scratch:
        backbone = args.backbone
        if args.tiny_backbone:
            from adabiobert.testing.tiny_models import tiny_backbone

            data = load_training_data(",".join(PUBTATOR_PREFIX + c for c in corpora), pubtator_root=args.pubtator_root,
                                      max_train_sentences=args.max_train_sentences)
            backbone = str(tiny_backbone(Path(scratch) / "tiny-bert", [s.words for s in data.corpus.train]))
        figures: dict[str, dict[str, float]] = {}
        for configuration, label, dataset, partial in runs(corpora, configurations):
            name = run_name(configuration, label, args, corpora)
            print(f"{configuration}: {dataset} -> {Path(args.runs) / name}", file=sys.stderr, flush=True)
            results = train(dataset, partial, name, backbone, args)
            for test_set, f1 in offset_f1(results).items():
                if configuration == "single" and not test_set.startswith(f"{label}_"):
                    continue
                figures.setdefault(test_set, {})[configuration] = f1
            save(Path(args.results), dict(sorted(figures.items())))
    print(table(dict(sorted(figures.items()))))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
