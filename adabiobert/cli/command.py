"""The ``adabiobert`` command: tag text with a saved bundle; export a run's entity tables.

    adabiobert tag --model runs/ncbi/model paper.txt notes.txt > mentions.jsonl
    cat abstracts.txt | adabiobert tag --model runs/ncbi/model --lines --format tsv
    adabiobert tag --model runs/ncbi/model --format bioc-xml paper.txt > paper.bioc.xml
    adabiobert export runs/annotations --out runs/exports --format bioc-xml --format pubtator

``tag``: each input file (or stdin) is one text; with ``--lines`` each non-empty line is one.
Output: one record per mention as JSON Lines (default) or TSV with a header, with character
offsets into the text (``text[start:end] == mention``; with ``--lines``, into the line, and
``line`` is 1-based); or one document per text, with its text and mentions, as BioC XML, BioC
JSON or PubTator (``adabiobert.annotation.exports``: the text is one passage at offset 0, so the offsets are
the same). A progress bar over sentences goes to stderr when it is a terminal (``--progress``).
``label`` is the entity type; a bundle of several types tags all of them in one pass, and
``--types Gene,Disease`` writes only those (a type the bundle does not tag is refused).

``export``: the annotation job's output as BioC XML, BioC JSON and PubTator, one file per shard
and format (each tagged article one document, its text read back from the shard), offsets as in
the tables (docs/entity-tables.md, "Exports").
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Collection, Iterable, Iterator
from dataclasses import dataclass
from typing import TextIO

from adabiobert.cli.kit import PRECISIONS, ArgumentParser, positive_int, refuse
from adabiobert.training_config import DEFAULT_TAG_PRECISION  # torch-free: --help stays fast

TSV_COLUMNS = ("source", "line", "start", "end", "label", "confidence", "mention")

RECORD_FORMATS = ("jsonl", "tsv")
"""``tag`` formats with one record per mention; the others (``adabiobert.annotation.exports.FORMATS``) hold
one document per text."""

EXPORT_FORMATS = ("bioc-xml", "bioc-json", "pubtator")
"""The formats of ``adabiobert.annotation.exports`` (named here so that ``--help`` needs no import of it)."""

@dataclass(frozen=True)
class Text:
    """One text to tag and where it came from."""

    source: str
    line: int | None
    text: str


def read_texts(paths: list[str], lines: bool, stdin: TextIO) -> Iterator[Text]:
    """The texts of the inputs, in order (``-`` or no path: stdin).

    Raises:
        InputNotFoundError: an input that is not UTF-8 text, naming it and the first bad byte.
        OSError: an input file that is missing or unreadable.
    """
    from adabiobert.errors import InputNotFoundError

    for path in paths or ["-"]:
        source = "<stdin>" if path == "-" else path
        try:
            if path == "-":
                content = stdin.read()
            else:
                with open(path, encoding="utf-8") as handle:
                    content = handle.read()
        except UnicodeDecodeError as error:
            raise InputNotFoundError(f"{source}: not UTF-8 text ({error.reason} at byte {error.start}); name UTF-8 "
                                     "text files (iconv -f <its encoding> -t UTF-8 converts one)") from None
        if not lines:
            yield Text(source, None, content)
            continue
        for number, line in enumerate(content.splitlines(), start=1):
            if line.strip():
                yield Text(source, number, line)


def tag_texts(tagger, texts: Iterable[tuple[Text, list]], batch_sentences: int, progress,
              types: Collection[str] | None = None) -> Iterator[tuple[int, dict]]:
    """Mentions of every text, in input order, tagging ``batch_sentences`` sentences per call.

    Args:
        texts: each text with its sentences (``adabiobert.text.split_sentences``).
        types: write mentions of these types only (``--types``); None: every type.

    Yields:
        ``(index of the text, record)`` per mention.

    Sentences of many texts share one ``tag_words`` call, which batches them by subword budget.
    """
    from adabiobert.model.tagger import entities_from_tagging

    pending: list[tuple[int, Text, object]] = []

    def flush() -> Iterator[tuple[int, dict]]:
        taggings = tagger.tag_words([[w.text for w in s.words] for _, _, s in pending])
        for (index, text, sentence), tagging in zip(pending, taggings):
            for entity in entities_from_tagging(text.text, sentence, tagging):
                if types is not None and entity.label not in types:
                    continue
                yield index, {"source": text.source, "line": text.line, "start": entity.start, "end": entity.end,
                              "label": entity.label, "confidence": entity.confidence, "mention": entity.text}
        progress.update(len(pending))
        pending.clear()

    for index, (text, sentences) in enumerate(texts):
        pending.extend((index, text, sentence) for sentence in sentences)
        if len(pending) >= batch_sentences:
            yield from flush()
    if pending:
        yield from flush()


def write_records(records: Iterable[dict], fmt: str, out: TextIO) -> int:
    """Print records as JSON Lines or TSV; returns how many."""
    count = 0
    if fmt == "tsv":
        out.write("\t".join(TSV_COLUMNS) + "\n")
    for record in records:
        if fmt == "tsv":
            record = {**record, "line": "" if record["line"] is None else record["line"],
                      "mention": " ".join(record["mention"].split())}  # no tab or newline inside a field
            out.write("\t".join(str(record[c]) for c in TSV_COLUMNS) + "\n")
        else:
            if record["line"] is None:
                record = {k: v for k, v in record.items() if k != "line"}
            out.write(json.dumps(record, ensure_ascii=False) + "\n")
        count += 1
    return count


def write_documents(texts: list[Text], tagged: Iterable[tuple[int, dict]], fmt: str, model_id: str, out: TextIO) -> int:
    """Print every text with its mentions as one BioC collection or PubTator file; returns the mentions."""
    from adabiobert.annotation.exports import dumps, text_document

    found: list[list[tuple]] = [[] for _ in texts]
    for index, r in tagged:
        found[index].append((r["start"], r["end"], r["mention"], r["label"], r["confidence"]))
    documents = []
    for text, mentions in zip(texts, found):
        doc_id = text.source if text.line is None else f"{text.source}:{text.line}"
        infons = {"source": text.source} if text.line is None else {"source": text.source, "line": str(text.line)}
        documents.append(text_document(doc_id, text.text, mentions, infons))
    out.write(dumps(documents, fmt, f"AdaBioBERT {model_id}", {"model_id": model_id}))
    return sum(len(m) for m in found)


def _tag_command(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from adabiobert.errors import AdaBioBertError
    from adabiobert.labels import require_known_types
    from adabiobert.model.checkpoint import bundle_entity_types, require_bundle
    from adabiobert.model.tagger import Tagger
    from adabiobert.text import split_sentences

    try:
        require_bundle(args.model)  # before stdin is read: a wrong --model or --types must not wait for input
        if args.types is not None:
            require_known_types(args.types, bundle_entity_types(args.model), f"the bundle {args.model}")
        texts = list(read_texts(args.inputs, args.lines, sys.stdin))
        tagger = Tagger.from_pretrained(args.model, device=args.device, subword_budget=args.subword_budget,
                                        precision=args.precision)
    except AdaBioBertError as error:
        return refuse(error)
    except OSError as error:  # an input file that is missing or unreadable
        return refuse(f"{error}; name UTF-8 text files, or '-' for stdin")
    show = args.progress or (args.progress is None and sys.stderr.isatty())
    split = [(text, split_sentences(text.text)) for text in texts]
    total = sum(len(sentences) for _, sentences in split)
    with tqdm(total=total, unit="sentence", desc="tag", disable=not show, file=sys.stderr) as progress:
        tagged = tag_texts(tagger, split, args.batch_sentences, progress, args.types)
        if args.format in RECORD_FORMATS:
            count = write_records((record for _, record in tagged), args.format, sys.stdout)
        else:
            count = write_documents(texts, tagged, args.format, tagger.model_id, sys.stdout)
    print(f"{_counted(count, 'mention')} in {_counted(len(texts), 'text')} ({tagger.model_id}, "
          f"{tagger.precision.precision}: {tagger.precision.reason})", file=sys.stderr)
    return 0


def _counted(number: int, noun: str) -> str:
    """``1 text``, ``2 texts``, ``0 texts``."""
    return f"{number} {noun}{'' if number == 1 else 's'}"


def _export_command(args: argparse.Namespace) -> int:
    from adabiobert.annotation.exports import export_run
    from adabiobert.errors import AdaBioBertError

    formats = tuple(dict.fromkeys(args.format or EXPORT_FORMATS))
    shards = documents = mentions = 0
    try:
        for exported in export_run(args.entities, args.out, formats, args.shards,
                                   log=lambda line: print(line, file=sys.stderr)):
            shards, documents, mentions = shards + 1, documents + exported.documents, mentions + exported.mentions
    except AdaBioBertError as error:
        return refuse(error)
    print(f"{_counted(shards, 'shard')}, {_counted(documents, 'article')}, {_counted(mentions, 'mention')} as "
          f"{', '.join(formats)} -> {args.out}", file=sys.stderr)
    return 0


def _type_list(text: str) -> tuple[str, ...]:
    """An argparse type: ``--types Gene,Disease``."""
    from adabiobert.errors import ConfigError
    from adabiobert.labels import parse_types

    try:
        return parse_types(text)
    except ConfigError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def build_parser() -> argparse.ArgumentParser:
    parser = ArgumentParser(prog="adabiobert", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    tag = commands.add_parser("tag", help="tag text files or stdin; print one record per mention")
    tag.add_argument("inputs", nargs="*", help="UTF-8 text files; none or '-' reads stdin")
    tag.add_argument("--model", required=True, help="bundle folder (the 'model' folder of a training run)")
    tag.add_argument("--format", choices=RECORD_FORMATS + EXPORT_FORMATS, default="jsonl",
                     help="a record per mention (jsonl, tsv) or a document per text (bioc-xml, bioc-json, pubtator)")
    tag.add_argument("--lines", action="store_true", help="each non-empty line is a text of its own")
    tag.add_argument("--device", default=None, help="cpu or cuda (default: cuda when available)")
    tag.add_argument("--precision", choices=PRECISIONS, default=DEFAULT_TAG_PRECISION,
                     help=f"default {DEFAULT_TAG_PRECISION}; auto: bf16 on CUDA or a CPU with native bf16 (avx512_bf16/amx_bf16), else int8; "
                          "bf16 on a CPU without native bf16 is refused")
    tag.add_argument("--types", type=_type_list, default=None,
                     help="write only these entity types, joined by commas (e.g. Gene,Disease; default: every type "
                          "the bundle tags); a type the bundle does not tag is refused")
    tag.add_argument("--batch-sentences", type=positive_int, default=512, help="sentences per tagger call")
    tag.add_argument("--subword-budget", type=positive_int, default=8192, help="subwords per forward pass")
    tag.add_argument("--progress", action=argparse.BooleanOptionalAction, default=None,
                     help="progress bar on stderr (default: when stderr is a terminal)")
    tag.set_defaults(run=_tag_command)

    export = commands.add_parser("export", help="write an annotation run's entities as BioC XML, BioC JSON, PubTator")
    export.add_argument("entities", help="the --output folder of jobs/annotate.py (local or s3://)")
    export.add_argument("--out", required=True, help="folder for the exports (local or s3://); files mirror the shards")
    export.add_argument("--format", action="append", choices=EXPORT_FORMATS, default=None,
                        help="repeatable (default: all three)")
    export.add_argument("--shards", default=None,
                        help="where the shards are now, if they moved since they were tagged (default: where the run read them)")
    export.set_defaults(run=_export_command)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return args.run(args)


if __name__ == "__main__":
    raise SystemExit(main())
