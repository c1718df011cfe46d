"""Entity linking on gold mentions (issue 23): acc@1 per test set and type, and what linking costs.

    python benchmarks/linking.py --shared ../shared

About 5 minutes of one CPU (five index builds; the linking itself takes seconds). Writes
``benchmarks/results/linking.json`` (``{"<test set>/<type>": {"acc1_vocabulary": x,
"acc1_with_train": x}}``) and ``benchmarks/results/linking_details.json`` (counts, the other
measures below, the index's size, build time and memory, the CPU), and prints a Markdown table.

Protocol:

* Gold mentions of NCBIdisease_Test (Disease), BC5CDR_Test (Disease and Chemical apart),
  GNormPlus_Test (human genes: mentions whose identifiers carry no ``(Tax:...)``) and BioRED_Test
  (Disease, Chemical, Gene, Species; Variant and CellLine have no vocabulary), read with
  ``adabiobert.corpora.pubtator.read_pubtator(strict=False)``; mentions without an identifier are
  left out. Each document's gold mentions are linked in one ``Linker.link`` call with the document
  text, so in-document abbreviations are expanded.
* ``acc1_vocabulary``: the index of the shared vocabularies (``default_config``). ``acc1_with_train``:
  the same vocabularies plus every mention of the corpus's train split (``*_TrainDev`` or
  ``*_Train``) as a synonym of its gold identifier (BioSyn's protocol; a composite train mention's
  joined identifiers become a concept of their own).
* acc@1 counts a mention right when the linker's top answer (threshold 0: no abstention) shares an
  identifier with the gold ones (BioSyn's ``check_label``: composite mentions in any order); the
  details also give the strict measure (the same set of identifiers), the share linked at the
  default threshold (0.7) and the accuracy of those, and acc@1 with the exhaustive TF-IDF search.
* ``gold_in_vocabulary``: the share of mentions with a gold identifier in the vocabulary index
  (the ceiling of ``acc1_vocabulary``; BioRED's genes include other species' than human).
* Gold identifiers are written as CURIEs: MeSH ``D..``/``C..`` -> ``MESH:``, genes ``NCBIGene:``,
  species ``NCBITaxon:``, ``OMIM:`` kept.
* Cost: the CPU time of ``Linker.link`` (this process, ``time.process_time``) per 1,000 mentions
  over all test sets, a fresh linker per set (its cache starts empty); the build time and size on
  disk of the full index; the memory of a fresh process that loads it and links every test set
  (``VmRSS``, split into ``RssAnon``, private, and ``RssFile``, the mapped index pages that
  processes on one node share).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from collections import defaultdict
from datetime import datetime, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from adabiobert.corpora.pubtator import read_pubtator  # noqa: E402
from adabiobert.linking.config import LinkingConfig, default_config  # noqa: E402
from adabiobert.linking.end_to_end import gold_curie  # noqa: E402
from adabiobert.linking.index import ExtraName, build_index, load_index  # noqa: E402
from adabiobert.linking.linker import COMPOSITE_SEPARATOR, DEFAULT_THRESHOLD, Linker, Mention  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"
EVALUATIONS = (
    # (test file, train file, types, human genes only)
    ("NCBIdisease_Test", "NCBIdisease_TrainDev", ("Disease",), False),
    ("BC5CDR_Test", "BC5CDR_TrainDev", ("Disease", "Chemical"), False),
    ("GNormPlus_Test", "GNormPlus_Train", ("Gene",), True),
    ("BioRED_Test", "BioRED_TrainDev", ("Disease", "Chemical", "Gene", "Species"), False),
)


def gold_mentions(path: Path, types: tuple[str, ...], human_only: bool):
    """Per document, its text and its evaluated mentions ``(Mention, gold CURIEs)``; and the read report."""
    documents, report = read_pubtator(path, strict=False)
    found = []
    for document in documents:
        kept = []
        for mention in document.mentions:
            if mention.type not in types or not mention.identifiers:
                continue
            if human_only and any("Tax:" in i for i in mention.identifiers):
                continue
            gold = frozenset(gold_curie(i, mention.type) for i in mention.identifiers)
            kept.append((Mention(mention.start, mention.end, mention.type), gold))
        if kept:
            found.append((document.text, kept))
    return found, report


def train_names(path: Path, types: tuple[str, ...], human_only: bool) -> list[ExtraName]:
    """Every train mention with its gold identifiers, as names for the dictionary."""
    documents, _ = gold_mentions(path, types, human_only)
    names = []
    for text, mentions in documents:
        for mention, gold in mentions:
            names.append(ExtraName(mention.entity_type, text[mention.start : mention.end], COMPOSITE_SEPARATOR.join(sorted(gold))))
    return names


def evaluate(linker: Linker, documents) -> tuple[dict[str, dict], float, int]:
    """Per type: mentions, right (BioSyn's), right (strict), linked and right at the default
    threshold; and the CPU seconds and mention count of the linking."""
    counts: dict[str, dict] = defaultdict(lambda: defaultdict(int))
    cpu = 0.0
    total = 0
    for text, mentions in documents:
        began = time.process_time()
        links = linker.link(text, [m for m, _ in mentions])
        cpu += time.process_time() - began
        total += len(mentions)
        for (mention, gold), link in zip(mentions, links):
            predicted = frozenset(link.concept_id.split(COMPOSITE_SEPARATOR)) if link.concept_id else frozenset()
            row = counts[mention.entity_type]
            row["mentions"] += 1
            row["right"] += bool(predicted & gold)
            row["right_strict"] += predicted == gold
            if link.concept_id and link.score >= DEFAULT_THRESHOLD:
                row["linked_at_threshold"] += 1
                row["right_at_threshold"] += bool(predicted & gold)
    return {t: dict(c) for t, c in counts.items()}, cpu, total


def coverage(index, documents, entity_type: str) -> float:
    """The share of the type's gold mentions with at least one identifier in the index: the
    ceiling of acc@1 with that index."""
    type_index = index.type_index(entity_type)
    known = {type_index.curies[i] for i in range(len(type_index.curies))}
    golds = [gold for _, mentions in documents for mention, gold in mentions if mention.entity_type == entity_type]
    return sum(bool(gold & known) for gold in golds) / len(golds)


def restricted(config: LinkingConfig, types: tuple[str, ...]) -> LinkingConfig:
    """``config`` with only the given types (and the vocabularies they use)."""
    kept = tuple(t for t in config.types if t.entity_type in types)
    used = {s.vocabulary for t in kept for s in t.selections}
    return LinkingConfig(tuple(v for v in config.vocabularies if v.name in used), kept, config.strict)


def folder_bytes(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())


def memory_probe(index: str, shared: str) -> dict:
    """In a fresh process: load the index, link every test set, report memory (kB) at each step."""
    code = f"""
import json, sys
sys.path.insert(0, {str(Path(__file__).resolve().parents[1])!r})
from benchmarks.linking import EVALUATIONS, gold_mentions, status_kb
from adabiobert.linking.index import load_index
from adabiobert.linking.linker import Linker
from pathlib import Path
report = {{"before_load": status_kb()}}
index = load_index({index!r})
report["after_load"] = status_kb()
for test, _, types, human in EVALUATIONS:
    documents, _ = gold_mentions(Path({shared!r}) / "pubtator" / f"{{test}}.PubTator", types, human)
    linker = Linker(index, threshold=0.0)
    for text, mentions in documents:
        linker.link(text, [m for m, _ in mentions])
report["after_linking_all_test_sets"] = status_kb()
print(json.dumps(report))
"""
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def status_kb() -> dict:
    """VmRSS, RssAnon, RssFile and VmHWM of this process in kB (``/proc/self/status``)."""
    wanted = ("VmRSS", "RssAnon", "RssFile", "VmHWM")
    values = {}
    for line in Path("/proc/self/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in wanted:
            values[key] = int(value.split()[0])
    return values


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--shared", default=str(Path(__file__).resolve().parents[2] / "shared"), help="the ../shared folder")
    parser.add_argument("--work", default="/tmp/adabiobert-linking-bench", help="where the indexes are built")
    parser.add_argument("--output", default=str(RESULTS / "linking.json"))
    args = parser.parse_args(argv)
    shared, work = Path(args.shared), Path(args.work)
    config = default_config(shared)
    began, began_cpu = time.perf_counter(), time.process_time()
    manifest = build_index(config, str(work / "vocabulary"))
    build_wall, build_cpu = time.perf_counter() - began, time.process_time() - began_cpu
    full = load_index(str(work / "vocabulary"))
    results, details = {}, {"sets": {}}
    cpu_total, mentions_total = 0.0, 0
    for test, train, types, human in EVALUATIONS:
        documents, report = gold_mentions(shared / "pubtator" / f"{test}.PubTator", types, human)
        plain, cpu, count = evaluate(Linker(full, threshold=0.0), documents)
        cpu_total += cpu
        mentions_total += count
        exhaustive, _, _ = evaluate(Linker(full, threshold=0.0, exhaustive=True), documents)
        names = train_names(shared / "pubtator" / f"{train}.PubTator", types, human)
        trained_manifest = build_index(restricted(config, types), str(work / test), names)
        trained, _, _ = evaluate(Linker(load_index(str(work / test)), threshold=0.0), documents)
        for entity_type in types:
            key = f"{test}/{entity_type}"
            results[key] = {"acc1_vocabulary": round(plain[entity_type]["right"] / plain[entity_type]["mentions"], 4),
                            "acc1_with_train": round(trained[entity_type]["right"] / trained[entity_type]["mentions"], 4)}
            details["sets"][key] = {"gold_in_vocabulary": round(coverage(full, documents, entity_type), 4),
                                    "vocabulary": plain[entity_type], "vocabulary_exhaustive": exhaustive[entity_type],
                                    "with_train": trained[entity_type], "train_names": len(names),
                                    "train_names_added": trained_manifest["extra_names"]}
        details["reads"] = {**details.get("reads", {}), test: {"documents": report.documents, "skipped_documents": report.skipped_documents,
                                                                "skipped_mentions": report.skipped_mentions, "problems": dict(report.problems)}}
        print(f"{test}: linked {count} mentions in {cpu:.2f} s CPU", file=sys.stderr)
    details["cost"] = {
        "index_build_seconds_wall": round(build_wall, 1),
        "index_build_seconds_cpu": round(build_cpu, 1),
        "index_bytes_on_disk": folder_bytes(work / "vocabulary"),
        "index_types": manifest["types"],
        "linking_cpu_seconds": round(cpu_total, 2),
        "linking_mentions": mentions_total,
        "linking_cpu_seconds_per_1000_mentions": round(1000 * cpu_total / mentions_total, 3),
        "memory_kb": memory_probe(str(work / "vocabulary"), str(shared)),
    }
    from benchmarks.ingest_speedup import cpu_description

    cpu = cpu_description()
    details["machine"] = {"cpu": cpu["model"], "logical_cpus": cpu["logical_cpus"], "load_average_after": os.getloadavg()}
    details["date"] = datetime.now(timezone.utc).isoformat(timespec="seconds")
    details["command"] = "python benchmarks/linking.py " + " ".join(argv if argv is not None else sys.argv[1:])
    Path(args.output).write_text(json.dumps(results, indent=2) + "\n")
    Path(args.output).with_name("linking_details.json").write_text(json.dumps(details, indent=2) + "\n")
    print(markdown(results, details))
    return 0


def markdown(results: dict, details: dict) -> str:
    lines = ["| test set / type | mentions | gold ID in vocabulary | acc@1 vocabulary | acc@1 + train | strict (vocab / + train) | "
             "exhaustive search (vocab) | linked at 0.7 (vocab) | acc@1 of those |",
             "|---|---|---|---|---|---|---|---|---|"]
    for key, values in results.items():
        plain, trained, exhaustive = (details["sets"][key][k] for k in ("vocabulary", "with_train", "vocabulary_exhaustive"))
        n = plain["mentions"]
        linked = plain.get("linked_at_threshold", 0)
        lines.append(f"| {key} | {n} | {details['sets'][key]['gold_in_vocabulary']:.3f} | {values['acc1_vocabulary']:.3f} | "
                     f"{values['acc1_with_train']:.3f} | "
                     f"{plain['right_strict'] / n:.3f} / {trained['right_strict'] / n:.3f} | {exhaustive['right'] / n:.3f} | "
                     f"{linked / n:.3f} | {plain.get('right_at_threshold', 0) / max(linked, 1):.3f} |")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
