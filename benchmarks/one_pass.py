"""One pass for every type (issue 22, speed): the union tagger against single-corpus taggers on the
same text, in CPU time.

    python benchmarks/one_pass.py --union runs/every-type/<union run>/model \
        --single runs/every-type/<NCBIdisease run>/model --single ... \
        --texts ../shared/pubtator/BioRED_Test.PubTator

Every tagger tags the same texts (each document's title and abstract, as the tables' text) with
``Tagger.tag``: text in, character offsets out, the public path. The texts are cut into
``--chunks`` chunks and the taggers take turns on each chunk, the first one rotating (as
``benchmarks/throughput.py`` does), so load from other processes falls on all of them alike.

* ``one_pass_ratio``: the union tagger's CPU time over the first ``--single`` tagger's (the issue's
  target: at most 1.1; the union's head has more labels, its encoder is the same);
* ``in_turn_ratio``: the union tagger's CPU time over the sum of every ``--single`` tagger's (what
  a team pays that runs one tagger per type, one after the other).

CPU time is this process's (``time.process_time``, all threads), with ``--threads`` torch threads
(default 1: no spin-waiting of idle OpenMP threads in the CPU time). The CPU model and its flags
head the output; the figures go to ``--output`` as JSON.
"""

from __future__ import annotations

import argparse
import json
import sys
from datetime import datetime, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

DEFAULT_OUTPUT = Path(__file__).resolve().parent / "results" / "one_pass.json"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--union", required=True, help="the bundle that tags every type")
    parser.add_argument("--single", action="append", required=True,
                        help="a single-corpus bundle (repeat; the first is the one-tagger baseline)")
    parser.add_argument("--texts", action="append", required=True, help="a PubTator file whose documents to tag (repeat)")
    parser.add_argument("--precision", default="auto")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--chunks", type=int, default=4)
    parser.add_argument("--max-documents", type=int, default=None)
    parser.add_argument("--output", default=str(DEFAULT_OUTPUT))
    return parser.parse_args(argv)


def read_texts(paths: list[str], max_documents: int | None) -> list[str]:
    """Each document's text (title, a space, abstract), as PubTator offsets count it."""
    from adabiobert.corpora.pubtator import read_pubtator

    texts = []
    for path in paths:
        documents, _ = read_pubtator(path, strict=False)
        texts.extend(document.text for document in documents)
    return texts[:max_documents]


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    import torch

    from adabiobert.model.tagger import Tagger
    from benchmarks.throughput import cpu_description, rotating_chunks

    torch.set_num_threads(args.threads)
    texts = read_texts(args.texts, args.max_documents)
    bundles = {"union": args.union, **{f"single:{i}": path for i, path in enumerate(args.single)}}
    taggers = {name: Tagger.from_pretrained(path, device="cpu", precision=args.precision)
               for name, path in bundles.items()}
    found = {name: 0 for name in taggers}

    def method(name: str):
        def tag(chunk: list[int]) -> None:
            found[name] += sum(len(e) for e in taggers[name].tag([texts[i] for i in chunk]))
        return tag

    rotating_chunks({name: method(name) for name in taggers}, len(texts), 1, torch.device("cpu"))  # warm-up, untimed
    found = dict.fromkeys(taggers, 0)
    seconds, cpu_seconds = rotating_chunks({name: method(name) for name in taggers}, len(texts), args.chunks,
                                           torch.device("cpu"))
    singles = [name for name in taggers if name != "union"]
    result = {
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "command": "python benchmarks/one_pass.py " + " ".join(sys.argv[1:] if argv is None else argv),
        "cpu": cpu_description(),
        "threads": args.threads,
        "precision": {name: t.precision.to_dict() for name, t in taggers.items()},
        "texts": {"files": args.texts, "documents": len(texts), "characters": sum(map(len, texts))},
        "taggers": {name: {"bundle": bundles[name], "types": list(taggers[name].labels.entity_types),
                           "cpu_seconds": round(cpu_seconds[name], 3), "wall_seconds": round(seconds[name], 3),
                           "entities": found[name]} for name in taggers},
        "one_pass_ratio": round(cpu_seconds["union"] / cpu_seconds[singles[0]], 3),
        "in_turn_ratio": round(cpu_seconds["union"] / sum(cpu_seconds[s] for s in singles), 3),
    }
    output = Path(args.output)
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    print(f"CPU: {result['cpu']['model']}, flags {' '.join(result['cpu']['tagging_flags'])}; "
          f"{args.threads} thread(s), {len(texts)} documents")
    print("| tagger | types | CPU s | entities |\n|---|---|---|---|")
    for name, row in result["taggers"].items():
        print(f"| {name} | {', '.join(row['types'])} | {row['cpu_seconds']:.2f} | {row['entities']} |")
    print(f"union / {singles[0]}: {result['one_pass_ratio']:.3f}x CPU time; "
          f"union / all {len(singles)} singles in turn: {result['in_turn_ratio']:.3f}x")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
