"""Fine-tune an AdaBioBERT tagger with Ray Train.

    python jobs/train.py --dataset NCBI-disease --data-root ../shared/corpora --epochs 3
    python jobs/train.py --dataset union --pubtator-root ../shared/pubtator --epochs 3 --name union
    ray job submit --working-dir . -- python jobs/train.py --dataset BC5CDR --num-workers 4 --gpu \
        --backbone dmis-lab/biobert-base-cased-v1.2 --output s3://bucket/runs

Plain ``python`` starts a local Ray; under ``ray job submit`` (RAY_ADDRESS set) it joins the
cluster, and a relative --output, --data-root, --pubtator-root or --word-vectors is refused
(adabiobert/submission.py). Re-running with the same --name and --output resumes from the latest
checkpoint.

--dataset takes one IOB dataset, ``pubtator:<corpus>`` (a PubTator corpus: pubtator:BC5CDR), the
mix ``union`` (every PubTator corpus), or several joined by commas; a mix trains one tagger of the
union of their types, with the partial-annotation loss unless --partial-annotation off
(adabiobert/corpora/mix.py, docs/training.md "One tagger for every type").

Exit status: 0 trained; 2 refused (unfit data, bad configuration); 75 Ray did not start in time
(one line names the setting that gives it longer); 1 failed.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without install

from adabiobert.cli.kit import ArgumentParser, refuse  # noqa: E402
from adabiobert.corpora.iob import DATA_ROOT_ENV  # noqa: E402
from adabiobert.corpora.mix import PUBTATOR_ROOT_ENV  # noqa: E402
from adabiobert.errors import AdaBioBertError  # noqa: E402
from adabiobert.submission import check_job_paths  # noqa: E402
from adabiobert.training_config import LossConfig, ModelConfig, OptimConfig, TrainConfig, TrainJobConfig  # noqa: E402


def parse_args(argv: list[str] | None) -> TrainJobConfig:
    defaults = TrainJobConfig()
    t, m, o, lc = TrainConfig(), ModelConfig(), OptimConfig(), LossConfig()
    parser = ArgumentParser(prog="jobs/train.py", description=__doc__)
    data = parser.add_argument_group("data")
    data.add_argument("--dataset", default=defaults.dataset,
                      help="IOB dataset (NCBI-disease, BC5CDR, BC2GM), pubtator:<corpus> (pubtator:BioRED), "
                           "the mix 'union' (every PubTator corpus), or several joined by commas")
    data.add_argument("--data-root", default=None, help="folder of the dataset folders (default: $ADABIOBERT_DATA_ROOT)")
    data.add_argument("--pubtator-root", default=None,
                      help=f"folder of the PubTator files (default: ${PUBTATOR_ROOT_ENV}, else pubtator/ beside the data root)")
    data.add_argument("--partial-annotation", choices=("on", "off"), default=None,
                      help="on: a word a corpus leaves O may be a type it does not annotate; off: the naive union "
                           "(default: on for several corpora, off for one)")
    data.add_argument("--max-train-sentences", type=int, default=None, help="train on the first N sentences only")
    data.add_argument("--max-eval-sentences", type=int, default=None, help="use the first N dev and test sentences only")
    model = parser.add_argument_group("model")
    model.add_argument("--backbone", default=m.backbone, help="local folder, hub id, or 'minilm' (packaged, offline)")
    model.add_argument("--word-vectors", default=None, help="gensim KeyedVectors file (.kv/.bin/.txt)")
    model.add_argument("--no-word-vectors", action="store_true", help="ignore --word-vectors (ablation)")
    model.add_argument("--dropout", type=float, default=m.dropout)
    model.add_argument("--max-subwords", type=int, default=m.max_subwords, help="encoder window length")
    loss = parser.add_argument_group("loss")
    loss.add_argument("--loss", default=lc.mode, help=f"crf | adaptive[=a0] | learned[=a0] | paper[=a0] | fixed=<a> | ce (default {lc.mode}: docs/benchmarks.md)")
    loss.add_argument("--alpha-update", default="step", choices=("step", "epoch"), help="learned: per step, or once per epoch")
    loss.add_argument("--adaptive-every", type=int, default=lc.adaptive_every, help="adaptive: optimizer steps between held-out probes")
    loss.add_argument("--adaptive-step", type=float, default=lc.adaptive_step, help="adaptive: theta change per probe per unit of cosine difference")
    loss.add_argument("--adaptive-dev-batch", type=int, default=lc.adaptive_dev_batch, help="adaptive: dev sentences per probe")
    train = parser.add_argument_group("training")
    train.add_argument("--epochs", type=int, default=t.epochs)
    train.add_argument("--batch-size", type=int, default=t.batch_size, help="sentences per optimizer step (all workers)")
    train.add_argument("--grad-accumulation", type=int, default=t.grad_accumulation)
    train.add_argument("--encoder-lr", type=float, default=o.encoder_lr)
    train.add_argument("--head-lr", type=float, default=o.head_lr)
    train.add_argument("--alpha-lr", type=float, default=o.alpha_lr)
    train.add_argument("--weight-decay", type=float, default=o.weight_decay)
    train.add_argument("--warmup-ratio", type=float, default=o.warmup_ratio)
    train.add_argument("--precision", default=t.precision, choices=("auto", "bf16", "fp32"))
    train.add_argument("--seed", type=int, default=t.seed)
    run = parser.add_argument_group("run")
    run.add_argument("--output", default=defaults.output, help="local folder or s3://bucket/prefix")
    run.add_argument("--name", default=defaults.name, help="run name; the same name resumes")
    run.add_argument("--num-workers", type=int, default=defaults.num_workers)
    run.add_argument("--gpu", action="store_true", help="one GPU per worker, bf16 autocast")
    run.add_argument("--cpu-threads", type=int, default=None, help="torch threads per CPU worker")
    run.add_argument("--max-failures", type=int, default=defaults.max_failures)
    args = parser.parse_args(argv)
    try:
        return _job(args, m)
    except AdaBioBertError as error:  # a value out of range or inconsistent: a usage error, one line
        parser.error(str(error))


def _job(args, m: ModelConfig) -> TrainJobConfig:
    return TrainJobConfig(
        dataset=args.dataset,
        data_root=args.data_root,
        pubtator_root=args.pubtator_root,
        partial_annotation=None if args.partial_annotation is None else args.partial_annotation == "on",
        output=args.output,
        name=args.name,
        word_vectors=None if args.no_word_vectors else args.word_vectors,
        max_train_sentences=args.max_train_sentences,
        max_eval_sentences=args.max_eval_sentences,
        num_workers=args.num_workers,
        use_gpu=args.gpu,
        cpu_threads_per_worker=args.cpu_threads,
        max_failures=args.max_failures,
        train=TrainConfig(
            model=ModelConfig(backbone=args.backbone, dropout=args.dropout, max_subwords=args.max_subwords,
                              window_overlap=min(m.window_overlap, args.max_subwords // 4)),
            loss=LossConfig.parse(
                args.loss,
                alpha_update=args.alpha_update,
                adaptive_every=args.adaptive_every,
                adaptive_step=args.adaptive_step,
                adaptive_dev_batch=args.adaptive_dev_batch,
            ),
            optim=OptimConfig(
                encoder_lr=args.encoder_lr,
                head_lr=args.head_lr,
                alpha_lr=args.alpha_lr,
                weight_decay=args.weight_decay,
                warmup_ratio=args.warmup_ratio,
            ),
            epochs=args.epochs,
            batch_size=args.batch_size,
            grad_accumulation=args.grad_accumulation,
            precision=args.precision,
            seed=args.seed,
        ),
    )


def main(argv: list[str] | None = None) -> int:
    job = parse_args(argv)
    data_root = ("--data-root", job.data_root) if job.data_root else (f"${DATA_ROOT_ENV}", os.environ.get(DATA_ROOT_ENV))
    pubtator_root = (("--pubtator-root", job.pubtator_root) if job.pubtator_root
                     else (f"${PUBTATOR_ROOT_ENV}", os.environ.get(PUBTATOR_ROOT_ENV)))
    try:
        check_job_paths({"--output": job.output, data_root[0]: data_root[1], pubtator_root[0]: pubtator_root[1],
                         "--word-vectors": job.word_vectors})
    except AdaBioBertError as error:
        return refuse(error)
    from adabiobert.distributed.startup import report_startup_timeout
    from adabiobert.distributed.training import run_training

    try:
        outcome = run_training(job, log=lambda line: print(line, flush=True))
    except AdaBioBertError as error:
        return refuse(error)
    except Exception as error:
        return report_startup_timeout(error)
    results = outcome.results
    test = results["test"]
    print(f"run: {outcome.run_dir}")
    print(f"model: {outcome.model_dir}")
    print(f"best epoch {results['best_epoch']}: dev entity F1 {results['dev_best']['entity_f1']:.4f}")
    print(
        f"test entity F1 {test['entity_f1']:.4f} (P {test['entity_precision']:.4f}, R {test['entity_recall']:.4f}); "
        f"paper's token-level micro F1 {test['paper_token_micro_f1']:.4f}"
    )
    for test_set, scores in results.get("offset_test", {}).items():
        per_type = ", ".join(f"{t} {s['f1']:.4f}" for t, s in scores["per_type"].items())
        print(f"{test_set}: strict character-offset F1 {scores['micro']['f1']:.4f} ({per_type})")
    print("alpha per epoch: " + ", ".join(f"{a:.3f}" for a in results["alpha_trace"]))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
