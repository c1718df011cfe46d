"""What linking costs inside the annotation job (issue 23): linking CPU time as a share of tagging
CPU time on the same articles (target <= 10 %), and the index's load time.

    .venv/bin/python benchmarks/linking_cost.py --shared ../shared --work /tmp/linking-cost
    .venv/bin/python benchmarks/linking_cost.py --shared ../shared --work /tmp/lc --index /tmp/lbench/vocabulary \
        --max-documents 40 --backbone tiny --output /tmp/lc.json            # a smoke run, under a minute

The articles are the test sets' documents (``--sets``: NCBI-disease, BC5CDR and BioRED by default:
700 titles and abstracts with diseases, chemicals, genes and species), written as PMC shards
(title and abstract; 100 articles a shard). Every stage is the job's own code, run in this
process on one thread (``--threads``; ``torch.set_num_threads``) at the job's precision
(``--precision auto``: bf16 on a CPU with native bf16, else int8), its CPU time taken with
``time.process_time`` (this process, all threads; on a shared machine CPU time measures the work,
the wall clock the neighbours):

* ``split``: ``stages.split_shard`` with the bundle's encoder (sentences, words, subword windows),
  as the read task runs it;
* ``tag``: ``stages.tag_documents`` without a linker, ``--documents-per-call`` articles a call,
  as the tagger actor runs it (encoder, CRF, marginals, mention rows);
* ``link``: what ``tag_documents`` adds with a linker, per article: the article's text rebuilt
  from its sentences (``concepts.sections_from_sentences``) and its mentions linked in one
  ``Linker.link`` call (``concepts.link_article``: abbreviations, exact match, TF-IDF), over the
  full index of the shared vocabularies (``default_config``), one linker for the run (its cache
  warms as an actor's does). Two sets of mentions: the **gold** mentions of the articles (what a
  trained tagger finds, near enough: their number and their strings), and the **tagged** ones of
  the benchmark's tagger (with ``--link-tagged``).

The tagger is an untrained bundle (``build_model`` + ``save_bundle``): MiniLM's pretrained encoder
with a random head (``--backbone minilm``, the offline backbone; its speed does not depend on the
weights) or the tests' random 2-layer BERT (``--backbone tiny``). Its own mentions are therefore
random spans, most of which match no name exactly: linking them costs more per mention than
linking real mentions, and their number is whatever the random head gives; the share on gold
mentions is the figure for a trained tagger. The CPU model and its flags head the output. Prints
a Markdown table and writes JSON (``--output``, default ``benchmarks/results/linking_cost.json``).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import pyarrow as pa  # noqa: E402
import pyarrow.compute as pc  # noqa: E402
import pyarrow.parquet as pq  # noqa: E402
import torch  # noqa: E402

from adabiobert.annotation.concepts import UNLINKED, link_article, sections_from_sentences  # noqa: E402
from adabiobert.annotation.stages import split_shard, tag_documents  # noqa: E402
from adabiobert.corpora.pubtator import read_pubtator  # noqa: E402
from adabiobert.job_configs import AnnotateConfig  # noqa: E402
from adabiobert.labels import LabelSet  # noqa: E402
from adabiobert.linking.config import default_config  # noqa: E402
from adabiobert.linking.index import MANIFEST, build_index, load_index  # noqa: E402
from adabiobert.linking.linker import Linker  # noqa: E402
from adabiobert.model.assembly import build_model  # noqa: E402
from adabiobert.model.backbone import load_tokenizer  # noqa: E402
from adabiobert.model.checkpoint import load_bundle_encoder, save_bundle  # noqa: E402
from adabiobert.model.precision import resolve_precision  # noqa: E402
from adabiobert.model.tagger import Tagger  # noqa: E402
from adabiobert.pmc.shards import PMC_SHARD_SCHEMA, REQUIRED_COLUMNS  # noqa: E402
from adabiobert.training_config import ModelConfig, TrainConfig  # noqa: E402
from benchmarks.throughput import cpu_description  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"
SETS = ("NCBIdisease_Test", "BC5CDR_Test", "BioRED_Test")
TYPES = ("Chemical", "Disease", "Gene", "Species")
ARTICLES_PER_SHARD = 100
SHARD_SCHEMA = pa.schema([f for f in PMC_SHARD_SCHEMA if f.name in REQUIRED_COLUMNS])
"""The columns of a version-1 shard: what the job reads of an article."""


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--shared", default=str(Path(__file__).resolve().parents[2] / "shared"))
    parser.add_argument("--work", required=True, help="scratch folder (the index, shards, the bundle)")
    parser.add_argument("--index", default=None, help="an index built already (default: build one in --work)")
    parser.add_argument("--sets", nargs="+", default=list(SETS), help="PubTator test files of --shared/pubtator")
    parser.add_argument("--max-documents", type=int, default=None, help="at most this many articles (a smoke run)")
    parser.add_argument("--backbone", choices=("minilm", "tiny"), default="minilm")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--precision", default="auto", choices=("auto", "fp32", "bf16", "int8"),
                        help="the tagger's (auto, the job's default: bf16 on a CPU with native bf16, else int8)")
    parser.add_argument("--documents-per-call", type=int, default=32)
    parser.add_argument("--link-tagged", action="store_true",
                        help="also link the untrained tagger's own (random) mentions: a pessimistic figure, slow")
    parser.add_argument("--output", default=str(RESULTS / "linking_cost.json"))
    return parser.parse_args(argv)


def articles(shared: Path, sets: list[str], limit: int | None) -> tuple[list[dict], list[list[dict]], int]:
    """Shard rows of the test documents (title, abstract), the gold mentions of each as the
    annotation job's mention dicts (section 0 the title, 1 the abstract), and the mentions left
    out (across the title and abstract)."""
    rows, gold, skipped = [], [], 0
    for name in sets:
        documents, _ = read_pubtator(shared / "pubtator" / f"{name}.PubTator", strict=False)
        for document in documents:
            cut = len(document.title) + 1
            mentions = []
            for m in document.mentions:
                if m.end <= len(document.title):
                    section, start, end = 0, m.start, m.end
                elif m.start >= cut:
                    section, start, end = 1, m.start - cut, m.end - cut
                else:
                    skipped += 1
                    continue
                mentions.append({"section_index": section, "start_offset": start, "end_offset": end, "label": m.type,
                                 **UNLINKED})
            rows.append({"pmcid": f"{name}-{document.pmid}", "pmid": None, "doi": None, "title": document.title,
                         "abstract": document.abstract, "sections": [], "license": "test", "last_updated": None,
                         "source": name})
            gold.append(mentions)
    if limit is not None:
        rows, gold = rows[:limit], gold[:limit]
    return rows, gold, skipped


def write_shards(folder: Path, rows: list[dict]) -> list[str]:
    """The rows as PMC shards of ``ARTICLES_PER_SHARD`` articles; their paths."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(0, len(rows), ARTICLES_PER_SHARD):
        path = folder / f"part-{i // ARTICLES_PER_SHARD:05d}.parquet"
        pq.write_table(pa.Table.from_pylist(rows[i:i + ARTICLES_PER_SHARD], schema=SHARD_SCHEMA), path)
        paths.append(str(path))
    return paths


def untrained_bundle(folder: Path, backbone: str, sentences: list[list[str]]) -> Path:
    """A bundle of the four linked types: MiniLM with a random head, or a random 2-layer BERT."""
    if backbone == "tiny":
        from adabiobert.testing.tiny_models import tiny_backbone

        backbone = str(tiny_backbone(folder / "tiny-bert", sentences))
    config = TrainConfig(model=ModelConfig(backbone=backbone))
    torch.manual_seed(0)
    model = build_model(config, LabelSet.from_entity_types(TYPES), None)
    return save_bundle(folder / "model", model, load_tokenizer(backbone), config.model, None, {"name": f"cost-{backbone}"})


def index_folder(args) -> tuple[str, float | None]:
    """The index to link with, and its build's CPU seconds when built here."""
    if args.index:
        return args.index, None
    folder = Path(args.work) / "index"
    if not (folder / MANIFEST).is_file():
        cpu = time.process_time()
        build_index(default_config(args.shared), str(folder))
        return str(folder), time.process_time() - cpu
    return str(folder), None


def link_cpu(linker: Linker, split, mentions_per_article: list[list[dict]]) -> tuple[float, int]:
    """CPU seconds of linking each article's mentions as ``tag_documents`` does, and the mentions linked."""
    sentences = split.column("sentences").combine_chunks()
    flat = pc.list_flatten(sentences)
    owner = pc.list_parent_indices(sentences).to_pylist()
    texts = pc.struct_field(flat, "text").to_pylist()
    sections = pc.struct_field(flat, "section_index").to_pylist()
    starts = pc.struct_field(flat, "start").to_pylist()
    cpu = time.process_time()
    of_article: list[list[tuple[int, int, str]]] = [[] for _ in range(split.num_rows)]
    for i, article in enumerate(owner):
        of_article[article].append((sections[i], starts[i], texts[i]))
    for article, mentions in enumerate(mentions_per_article):
        if mentions:
            link_article(linker, sections_from_sentences(of_article[article]), mentions)
    return time.process_time() - cpu, sum(len(m) for m in mentions_per_article)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    work, shared = Path(args.work), Path(args.shared)
    work.mkdir(parents=True, exist_ok=True)
    cpu_info = cpu_description()
    print(f"CPU: {cpu_info['model']}, {cpu_info['cores']} cores; flags for tagging: {' '.join(cpu_info['tagging_flags']) or 'none'}")
    print(f"all CPU flags: {' '.join(cpu_info['flags'])}")

    index, build_cpu = index_folder(args)
    rows, gold, skipped = articles(shared, args.sets, args.max_documents)
    uris = write_shards(work / "shards", rows)
    sentences = [(r["title"] + " " + r["abstract"]).split() for r in rows]
    bundle = untrained_bundle(work / f"bundle-{args.backbone}", args.backbone, sentences)
    tagger = Tagger.from_pretrained(bundle, device="cpu", precision=args.precision)
    precision = resolve_precision(args.precision, torch.device("cpu")).to_dict()
    encoder = load_bundle_encoder(bundle)
    cpu = time.process_time()
    linker = Linker(load_index(index))
    load_cpu = time.process_time() - cpu

    totals = {"split": 0.0, "tag": 0.0, "link_gold": 0.0, "link_tagged": 0.0}
    counts = {"articles": 0, "sentences": 0, "words": 0, "gold_mentions": 0, "tagged_mentions": 0}
    at = 0
    for uri in uris:
        cpu = time.process_time()
        split = split_shard(uri, AnnotateConfig(), 64, encoder)
        totals["split"] += time.process_time() - cpu
        gold_of = [[dict(m) for m in mentions] for mentions in gold[at:at + split.num_rows]]
        at += split.num_rows
        for start in range(0, split.num_rows, args.documents_per_call):
            batch = split.slice(start, args.documents_per_call)
            cpu = time.process_time()
            tagged = tag_documents(tagger, batch)
            totals["tag"] += time.process_time() - cpu
            counts["sentences"] += pc.sum(tagged.column("sentences")).as_py()
            counts["words"] += pc.sum(tagged.column("words")).as_py()
            seconds, n = link_cpu(linker, batch, gold_of[start:start + args.documents_per_call])
            totals["link_gold"] += seconds
            counts["gold_mentions"] += n
            counts["tagged_mentions"] += sum(len(m) for m in tagged.column("entities").to_pylist())
            if args.link_tagged:
                totals["link_tagged"] += link_cpu(linker, batch, tagged.column("entities").to_pylist())[0]
        counts["articles"] += split.num_rows

    result = {
        "command": "python benchmarks/linking_cost.py " + " ".join(argv if argv is not None else sys.argv[1:]),
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "cpu": {k: cpu_info[k] for k in ("model", "cores", "tagging_flags")},
        "torch_threads": args.threads, "backbone": args.backbone, "precision": precision, "sets": args.sets,
        "counts": {**counts, "gold_mentions_left_out": skipped},
        "cpu_seconds": {k: round(v, 3) for k, v in totals.items()},
        "index": {"path": index, "load_cpu_seconds": round(load_cpu, 3),
                  "build_cpu_seconds": None if build_cpu is None else round(build_cpu, 1)},
        "link_share_of_tag": {"gold": round(totals["link_gold"] / totals["tag"], 4),
                              "tagged": round(totals["link_tagged"] / totals["tag"], 4)},
        "link_share_of_split_and_tag": {"gold": round(totals["link_gold"] / (totals["split"] + totals["tag"]), 4),
                                        "tagged": round(totals["link_tagged"] / (totals["split"] + totals["tag"]), 4)},
        "link_cpu_ms_per_1000_mentions": {
            "gold": round(1000 * 1000 * totals["link_gold"] / max(1, counts["gold_mentions"]), 1),
            "tagged": round(1000 * 1000 * totals["link_tagged"] / max(1, counts["tagged_mentions"]), 1)},
    }
    Path(args.output).parent.mkdir(parents=True, exist_ok=True)
    Path(args.output).write_text(json.dumps(result, indent=2) + "\n")
    print_report(result)
    return 0


def print_report(result: dict) -> None:
    counts, seconds = result["counts"], result["cpu_seconds"]
    print(f"\n{counts['articles']} articles, {counts['sentences']} sentences, {counts['words']} words; "
          f"{result['backbone']} tagger at {result['precision']['precision']}, {result['torch_threads']} thread(s); "
          "index loaded in "
          f"{result['index']['load_cpu_seconds']} s CPU\n")
    print("| stage | CPU s | mentions | share of tag | share of split + tag | ms per 1,000 mentions |")
    print("|---|---|---|---|---|---|")
    print(f"| split (sentences, words, subwords) | {seconds['split']} | | | | |")
    print(f"| tag (encoder, CRF) | {seconds['tag']} | {counts['tagged_mentions']} | | | |")
    for kind in ("gold", "tagged") if seconds["link_tagged"] else ("gold",):
        print(f"| link {kind} mentions | {seconds['link_' + kind]} | {counts[kind + '_mentions']} | "
              f"{100 * result['link_share_of_tag'][kind]:.1f} % | {100 * result['link_share_of_split_and_tag'][kind]:.1f} % | "
              f"{result['link_cpu_ms_per_1000_mentions'][kind]} |")


if __name__ == "__main__":
    raise SystemExit(main())
