"""A tagger's false positives on a PubTator test file, by their text: what a gap in strict
character-offset F1 is made of (issue 22: the union tagger against a single-corpus tagger).

    python benchmarks/false_positives.py --test ../shared/pubtator/SPECIES_Test.PubTator --type Species \
        --model runs/every-type/<union run>/model --model runs/every-type/<SPECIES run>/model \
        --words patients,patient,women

Each document's title and abstract is tagged through ``Tagger.tag`` (as the offset evaluation
does); a predicted mention of ``--type`` is a true positive when a gold mention of that type has
its exact offsets. Prints per model: predictions, true and false positives, F1, the most frequent
false-positive texts (lower-cased), how many false positives are among ``--words``, and the F1
the model would have without those.
"""

from __future__ import annotations

import argparse
import sys
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--test", required=True, help="a PubTator test file")
    parser.add_argument("--type", required=True, help="the entity type to look at (Species, Gene, ...)")
    parser.add_argument("--model", action="append", required=True, help="a tagger bundle (repeat)")
    parser.add_argument("--words", default="", help="false-positive texts to count apart, joined by commas")
    parser.add_argument("--top", type=int, default=8)
    args = parser.parse_args(argv)

    from adabiobert.corpora.pubtator import read_pubtator
    from adabiobert.tagger import Tagger

    documents, _ = read_pubtator(args.test, strict=False)
    gold = {(d.pmid, m.start, m.end) for d in documents for m in d.mentions if m.type == args.type}
    words = {w.strip().lower() for w in args.words.split(",") if w.strip()}
    print(f"{Path(args.test).name}: {len(documents)} documents, {len(gold)} gold {args.type} mentions")
    for model in args.model:
        found = Tagger.from_pretrained(model, device="cpu").tag([d.text for d in documents])
        predicted = [(d.pmid, e.start, e.end, e.text.lower()) for d, entities in zip(documents, found)
                     for e in entities if e.label == args.type]
        true = sum((pmid, start, end) in gold for pmid, start, end, _ in predicted)
        false = Counter(text for pmid, start, end, text in predicted if (pmid, start, end) not in gold)
        listed = sum(false[w] for w in words)
        f1 = 2 * true / (len(predicted) + len(gold))
        without = 2 * true / (len(predicted) - listed + len(gold))
        print(f"{model}\n  {len(predicted)} predicted, {true} right, {sum(false.values())} false positives; F1 {f1:.4f}"
              f"\n  most frequent false positives: {false.most_common(args.top)}"
              f"\n  among --words: {listed}; F1 without them {without:.4f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
