"""Accuracy cost of each tagging precision: re-score one trained bundle on a corpus's test split.

    python benchmarks/precision_accuracy.py --model runs/ncbi/model --dataset NCBI-disease \
        --data-root ../shared/corpora
    python benchmarks/precision_accuracy.py --model runs/bc5cdr/model --dataset BC5CDR --gpu

For each precision (default fp32, int8, bf16; fp32 always runs, first, as the reference) the
bundle is loaded with ``Tagger.from_pretrained(precision=...)`` and tags the test split from its
words (``tag_words``, as the annotation job does). Reported per precision: test entity-level
strict micro F1 (``adabiobert.metrics.entity_scores``), and the number of sentences whose tags
differ from fp32's. A precision this machine refuses (bf16 on a CPU without native bf16, int8 on
CUDA) is reported as refused and skipped.

Unless ``--no-record``, each scored precision is written into the bundle's manifest
(``validated_precisions``, ``adabiobert.model.checkpoint.record_validation``; the model id does not
change). One Markdown row per precision is printed for docs/benchmarks.md, and the whole result
as JSON on the last line. No timing here: speed is ``benchmarks/throughput.py``'s job.
"""

from __future__ import annotations

import argparse
import datetime
import json
import platform
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from adabiobert.corpora.iob import load_corpus, resolve_data_root  # noqa: E402
from adabiobert.errors import ConfigError  # noqa: E402
from adabiobert.metrics import entity_scores  # noqa: E402
from adabiobert.model.checkpoint import record_validation, require_bundle  # noqa: E402
from adabiobert.model.tagger import Tagger  # noqa: E402

PRECISIONS = ("fp32", "int8", "bf16")


def rescore(model: str | Path, words: list[list[str]], gold: list[list[str]], precisions: list[str],
            device: str) -> dict[str, dict]:
    """Tag ``words`` at each precision and score against ``gold``.

    Returns:
        ``{precision: {"entity_f1", "entity_precision", "entity_recall", "sentences",
        "sentences_changed_vs_fp32", "reason"}}`` for each precision tagged, or
        ``{precision: {"refused": message}}`` for one this machine refuses. fp32 is always first.
    """
    results: dict[str, dict] = {}
    reference: list[tuple[str, ...]] | None = None
    for precision in ["fp32", *(p for p in dict.fromkeys(precisions) if p != "fp32")]:
        try:
            tagger = Tagger.from_pretrained(model, device=device, precision=precision)
        except ConfigError as error:
            results[precision] = {"refused": str(error)}
            continue
        predicted = [t.tags for t in tagger.tag_words(words)]
        if reference is None:
            reference = predicted
        scores = entity_scores(gold, predicted).micro
        results[precision] = {
            "entity_f1": round(scores.f1, 6),
            "entity_precision": round(scores.precision, 6),
            "entity_recall": round(scores.recall, 6),
            "sentences": len(words),
            "sentences_changed_vs_fp32": sum(a != b for a, b in zip(reference, predicted)),
            "reason": tagger.precision.reason,
        }
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", required=True, help="a trained bundle folder (<run>/model)")
    parser.add_argument("--dataset", default="NCBI-disease")
    parser.add_argument("--data-root", default=None)
    parser.add_argument("--split", default="test")
    parser.add_argument("--precision", action="append", choices=PRECISIONS, default=None,
                        help="repeatable (default: all three); fp32 always runs as the reference")
    parser.add_argument("--gpu", action="store_true", help="tag on CUDA (int8 is then refused)")
    parser.add_argument("--max-sentences", type=int, default=None, help="first N sentences only (smoke runs)")
    parser.add_argument("--no-record", action="store_true", help="do not write validated_precisions into the bundle")
    args = parser.parse_args(argv)

    require_bundle(args.model)
    corpus = load_corpus(args.dataset, resolve_data_root(args.data_root), require=(args.split,))
    sentences = list(getattr(corpus, args.split))[: args.max_sentences]
    words, gold = [list(s.words) for s in sentences], [list(s.tags) for s in sentences]
    device = "cuda" if args.gpu else "cpu"
    results = rescore(args.model, words, gold, list(args.precision or PRECISIONS), device)

    context = {"dataset": args.dataset, "split": args.split, "device": device, "machine": platform.processor()
               or platform.machine(), "date": datetime.date.today().isoformat()}
    for precision, result in results.items():
        if "refused" in result:
            print(f"| {args.dataset} | {precision} | refused: {result['refused']} |")
            continue
        if not args.no_record:
            record_validation(args.model, precision, {**result, **context})
        print(f"| {args.dataset} | {precision} | {result['entity_f1'] * 100:.2f} | "
              f"{(result['entity_f1'] - results['fp32']['entity_f1']) * 100:+.2f} | "
              f"{result['sentences_changed_vs_fp32']} of {result['sentences']} |")
    print(json.dumps({"model": str(args.model), **context, "results": results}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
