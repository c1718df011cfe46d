"""End-to-end entity linking from raw text (issue 23): this project's tagger, then its linker.

    python benchmarks/linking_end_to_end.py --model runs/ncbi-pubtator-minilm/model \
        --test ../shared/pubtator/NCBIdisease_Test.PubTator --index /tmp/lbench/NCBIdisease_Test

Tags each test document (title and abstract, as ``adabiobert.linking.end_to_end`` does), links
the mentions with the index, and scores (``evaluate_end_to_end``): mention level, strict on
(span, type, identifier set); document level, the set of (type, identifier) per document
(BC5CDR's measure). Gold mentions without an identifier are not scored. The scores are merged
into ``benchmarks/results/linking.json`` under ``<test set>/<type>`` as ``e2e_mention_f1`` and
``e2e_document_f1`` (the last run's: run the index of record last); ``linking_end_to_end.json``
beside it keeps each run's counts, model and index. Which index is named in the output (benchmarks/linking.py builds one per test set with
the train split's mentions added, BioSyn's protocol, and one of the vocabularies alone).

Only the types the index links are scored (BioRED's variants and cell lines have no vocabulary:
their gold identifiers cannot be reached, so they are named and left out). ``--human-genes``
follows benchmarks/linking.py's GNormPlus protocol: a gold gene whose identifier carries
``(Tax:...)`` (not human; the shipped gene vocabulary is HGNC's) is treated like a gold mention
without an identifier, neither right nor wrong.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import replace
from datetime import datetime, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

RESULTS = Path(__file__).resolve().parent / "results"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", required=True, help="a tagger bundle")
    parser.add_argument("--test", required=True, help="a PubTator test file")
    parser.add_argument("--index", required=True, help="a linking index folder")
    parser.add_argument("--threshold", type=float, default=0.7)
    parser.add_argument("--precision", default="auto")
    parser.add_argument("--human-genes", action="store_true", help="leave non-human gold genes unscored")
    args = parser.parse_args(argv)

    from adabiobert.corpora.pubtator import read_pubtator
    from adabiobert.linking.end_to_end import evaluate_end_to_end
    from adabiobert.linking.index import load_index
    from adabiobert.linking.linker import Linker
    from adabiobert.tagger import Tagger

    documents, report = read_pubtator(args.test, strict=False)
    if args.human_genes:
        documents = [replace(d, mentions=tuple(_unscored_if_not_human(m) for m in d.mentions)) for d in documents]
    tagger = Tagger.from_pretrained(args.model, device="cpu", precision=args.precision)
    index = load_index(args.index)
    linker = Linker(index, threshold=args.threshold)
    types = sorted(t for t in report.annotated_types if index.type_index(t) is not None)
    unlinkable = sorted(set(report.annotated_types) - set(types))
    if unlinkable:
        print(f"not scored (no vocabulary in the index): {', '.join(unlinkable)}", file=sys.stderr)
    cpu = time.process_time()
    scores = evaluate_end_to_end(tagger.tag, linker, documents, types)
    cpu = time.process_time() - cpu
    test = Path(args.test).name.removesuffix(".PubTator")
    summary = {}
    for level in ("mention", "document"):
        for entity_type, prf in getattr(scores, level).per_type.items():
            summary.setdefault(entity_type, {})[level] = {"tp": prf.tp, "fp": prf.fp, "fn": prf.fn,
                                                          "precision": round(prf.precision, 4),
                                                          "recall": round(prf.recall, 4), "f1": round(prf.f1, 4)}
    results = json.loads((RESULTS / "linking.json").read_text()) if (RESULTS / "linking.json").exists() else {}
    for entity_type, levels in summary.items():
        entry = results.setdefault(f"{test}/{entity_type}", {})
        entry["e2e_mention_f1"] = levels["mention"]["f1"]
        entry["e2e_document_f1"] = levels["document"]["f1"]
    (RESULTS / "linking.json").write_text(json.dumps(results, indent=2) + "\n")
    details_path = RESULTS / "linking_end_to_end.json"
    details = json.loads(details_path.read_text()) if details_path.exists() else {}
    details[f"{test} [index {Path(args.index).name}]"] = {"date": datetime.now(timezone.utc).isoformat(timespec="seconds"), "command": " ".join(sys.argv),
                     "model": str(Path(args.model).resolve()), "index": str(Path(args.index).resolve()),
                     "threshold": args.threshold, "documents": len(documents), "cpu_seconds": round(cpu, 1),
                     "human_genes_only": args.human_genes, "not_scored": unlinkable,
                     "scores": summary}
    details_path.write_text(json.dumps(details, indent=2) + "\n")
    for entity_type, levels in summary.items():
        print(f"{test}/{entity_type}: mention F1 {levels['mention']['f1']:.3f} (P {levels['mention']['precision']:.3f}, "
              f"R {levels['mention']['recall']:.3f}); document F1 {levels['document']['f1']:.3f}")
    return 0


def _unscored_if_not_human(mention):
    """The gold mention, without identifiers when they name a non-human gene (``(Tax:...)``)."""
    if mention.type == "Gene" and any("Tax:" in i for i in mention.identifiers):
        return replace(mention, identifiers=())
    return mention


if __name__ == "__main__":
    raise SystemExit(main())
