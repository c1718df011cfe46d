"""What the PubTator corpora hold once read and cut into training sentences: one Markdown table.

    python benchmarks/pubtator_report.py ../shared/pubtator

Per file: documents and mentions kept, mentions by entity type, what was left out (source types
that are not one of the six), what the reader skipped (documents with a refused line, verbatim
duplicates), and what the IOB conversion did (mentions crossing a sentence, off word boundaries,
dropped as overlapping). The rules are in ``adabiobert/corpora/pubtator.py`` and
``adabiobert/corpora/pubtator_sentences.py``; the first example of each count is printed under the
table. Reads with ``strict=False``: some of the files have mentions whose offsets do not match
their text. A minute of CPU for the fourteen files.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from adabiobert.corpora.pubtator import ENTITY_TYPES  # noqa: E402
from adabiobert.corpora.pubtator_sentences import read_sentences  # noqa: E402

HEADER = ("file", "docs", "mentions", *ENTITY_TYPES, "left out", "skipped docs (mentions): reasons",
          "dup docs", "crossing sentence", "off word boundary", "overlap dropped")


def report_rows(folder: Path) -> tuple[list[tuple[str, ...]], list[str]]:
    """One table row per ``*.PubTator`` file in ``folder``, and the example lines."""
    rows, examples = [], []
    for path in sorted(folder.glob("*.PubTator")):
        sentences, read, aligned = read_sentences(path, strict=False)
        by_type = [str(read.mentions.get(t, 0)) if t in read.annotated_types else "-" for t in ENTITY_TYPES]
        left_out = ", ".join(f"{t} {n}" for t, n in read.left_out.items()) or "0"
        skipped = f"{read.skipped_documents} ({read.skipped_mentions})"
        if read.problems:
            skipped += ": " + ", ".join(f"{r} {n}" for r, n in read.problems.items())
        rows.append((path.stem, str(read.documents), str(read.total_mentions), *by_type, left_out, skipped,
                     str(read.duplicate_documents), str(aligned.crossing_sentence),
                     str(aligned.off_word_boundary), str(aligned.overlapping + aligned.duplicates)))
        examples += [f"- {path.stem} {reason}: {where}" for reason, where in read.examples.items()]
        examples += [f"- {path.stem} {reason}: {where}" for reason, where in aligned.examples.items()]
    return rows, examples


def markdown(rows: list[tuple[str, ...]]) -> str:
    lines = ["| " + " | ".join(HEADER) + " |", "|" + "---|" * len(HEADER)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", type=Path, help="the folder of *.PubTator files (../shared/pubtator)")
    args = parser.parse_args(argv)
    rows, examples = report_rows(args.folder)
    if not rows:
        print(f"no *.PubTator file in {args.folder}", file=sys.stderr)
        return 1
    print(markdown(rows))
    print("\n'-': a type the corpus does not annotate. overlap dropped: overlapping mentions dropped + same words"
          " and type twice.\nFirst example of each count:")
    print("\n".join(examples))
    return 0


if __name__ == "__main__":
    sys.exit(main())
