"""Standard exports of tagged text: BioC XML and BioC JSON (with the ``bioc`` library) and PubTator.

Two sources share one document model (:class:`ExportDocument`):

* a run of the annotation job (:func:`export_run`): one document per tagged article, one passage
  per non-empty section (the title always first), read back from the shard the marker names;
* ``adabiobert tag`` (:func:`text_document`): one document per input text, one passage.

Offsets. Passages are laid end to end with one separator character between them (title at 0,
the next passage at ``len(title) + 1``, ...), the layout PubTator uses for title and abstract. A
mention's offsets in the entity table (``start_offset``, ``end_offset``, into its section's text)
are its offsets into the passage, so

* BioC: ``location.offset == passage.offset + start_offset`` and ``location.length == end_offset -
  start_offset`` (BioC offsets are document offsets); ``annotation.text ==
  passage.text[start_offset:end_offset]``;
* PubTator: ``<id>|t|`` holds the first passage, ``<id>|a|`` the others joined by one space, and
  a mention's columns are the same document offsets.

Identifiers (the entity table's ``concept_id``, a CURIE, composite parts joined by ``|``): in BioC
the annotation's ``identifier`` infon (PubTator's BioC convention), with ``concept_name`` and
``link_score``; in PubTator the sixth column, ``-`` for a mention without one (not linked, or
the linker abstained).

Offsets count Unicode code points, as Python strings and the tables do. What each format cannot
hold is written one character for one, so offsets never move: in BioC XML a character XML 1.0
forbids (C0 controls but tab, LF, CR; lone surrogates; U+FFFE/U+FFFF) becomes U+FFFD; in PubTator a
tab or a line break (``\\r``, ``\\n``, ``\\v``, ``\\f``, U+001C-U+001E, U+0085, U+2028, U+2029) becomes a
space. BioC JSON holds the text as it is.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import PurePosixPath

import pyarrow as pa
import pyarrow.parquet as pq

from adabiobert import storage
from adabiobert.annotation.commit import AnnotationStore, ShardCommit, tagged_shard_uri
from adabiobert.annotation.tables import ENTITIES, READABLE_VERSIONS, REJECTIONS, upgrade
from adabiobert.errors import ConfigError, ExportError, InputNotFoundError, OutputExistsError
from adabiobert.pmc.shards import SectionText, article_sections, read_articles

FORMATS = {"bioc-xml": ".bioc.xml", "bioc-json": ".bioc.json", "pubtator": ".pubtator"}
"""Each export format and the suffix of its files."""

BIOC_KEY = "adabiobert.key: passages laid end to end, one separator character apart; annotation offsets are document offsets in code points"
"""The collection's ``key``: where a BioC reader learns what the offsets mean."""

NO_CONCEPT = "-"
"""PubTator's concept-id column for a mention without an identifier (not linked, or abstained)."""

_XML_FORBIDDEN = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")
_PUBTATOR_BREAKS = re.compile("[\t\n\r\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029]")


@dataclass(frozen=True)
class Passage:
    """One stretch of a document's text, at ``offset`` in the document."""

    offset: int
    text: str
    infons: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Mention:
    """A mention in passage ``passage``: ``passages[passage].text[start:end] == text``."""

    passage: int
    start: int
    end: int
    text: str
    label: str
    confidence: float
    infons: Mapping[str, str] = field(default_factory=dict)
    concept_id: str | None = None
    """A CURIE (parts joined by ``|``), or None: not linked or abstained."""


@dataclass(frozen=True)
class ExportDocument:
    """An article or an input text, its passages and its mentions (passage order, then start)."""

    id: str
    passages: tuple[Passage, ...]
    mentions: tuple[Mention, ...]
    infons: Mapping[str, str] = field(default_factory=dict)


def lay_out(texts: Sequence[str]) -> list[int]:
    """Document offsets of passages laid end to end, one separator character apart."""
    offsets, cursor = [], 0
    for text in texts:
        offsets.append(cursor)
        cursor += len(text) + 1
    return offsets


def check_mentions(document: ExportDocument) -> None:
    """Raise ``ExportError`` unless every mention's text is its passage's text at its offsets."""
    for mention in document.mentions:
        found = document.passages[mention.passage].text[mention.start:mention.end]
        if found != mention.text:
            raise ExportError(f"document {document.id}: passage {mention.passage} has {found!r} at "
                              f"[{mention.start}:{mention.end}], the mention says {mention.text!r}")


# ---------------------------------------------------------------------------------------------
# Writers
# ---------------------------------------------------------------------------------------------
def to_bioc(documents: Iterable[ExportDocument], source: str, infons: Mapping[str, str] | None = None,
            date: str | None = None, xml_safe: bool = False):
    """A ``bioc.BioCCollection`` of the documents (``xml_safe``: forbidden characters as U+FFFD)."""
    import bioc

    clean = (lambda text: _XML_FORBIDDEN.sub("\ufffd", text)) if xml_safe else (lambda text: text)
    collection = bioc.BioCCollection()
    collection.source, collection.key = clean(source), BIOC_KEY
    if date:
        collection.date = date
    collection.infons = {k: clean(str(v)) for k, v in (infons or {}).items()}
    for document in documents:
        item = bioc.BioCDocument()
        item.id = clean(document.id)
        item.infons = {k: clean(str(v)) for k, v in document.infons.items()}
        passages = []
        for passage in document.passages:
            part = bioc.BioCPassage()
            part.offset, part.text = passage.offset, clean(passage.text)
            part.infons = {k: clean(str(v)) for k, v in passage.infons.items()}
            item.add_passage(part)
            passages.append(part)
        for number, mention in enumerate(document.mentions, start=1):
            passage = document.passages[mention.passage]
            annotation = bioc.BioCAnnotation()
            annotation.id = f"T{number}"
            annotation.text = clean(mention.text)
            annotation.infons = {"type": mention.label, "confidence": f"{mention.confidence:.4f}",
                                 **({"identifier": clean(mention.concept_id)} if mention.concept_id else {}),
                                 **{k: clean(str(v)) for k, v in mention.infons.items()}}
            annotation.add_location(bioc.BioCLocation(passage.offset + mention.start, mention.end - mention.start))
            passages[mention.passage].add_annotation(annotation)
        collection.add_document(item)
    return collection


def to_pubtator(documents: Iterable[ExportDocument]) -> str:
    """PubTator text: per document a ``|t|`` and an ``|a|`` line, one line of six tab-separated
    columns per mention (id, start, end, mention, type, concept id), then a blank line.

    Written here rather than with ``bioc.pubtator``, whose writer ends every mention line with a
    seventh, empty column and leaves out an empty ``|a|`` line; its reader reads both forms.
    """

    def clean(text: str) -> str:
        return _PUBTATOR_BREAKS.sub(" ", text)

    out = []
    for document in documents:
        doc_id = clean(document.id)
        texts = [clean(p.text) for p in document.passages]
        lines = [f"{doc_id}|t|{texts[0] if texts else ''}", f"{doc_id}|a|{' '.join(texts[1:])}"]
        for mention in document.mentions:
            offset = document.passages[mention.passage].offset
            columns = (doc_id, offset + mention.start, offset + mention.end, clean(mention.text), mention.label,
                       clean(mention.concept_id) if mention.concept_id else NO_CONCEPT)
            lines.append("\t".join(map(str, columns)))
        out.append("\n".join(lines) + "\n\n")
    return "".join(out)


def dumps(documents: Sequence[ExportDocument], fmt: str, source: str, infons: Mapping[str, str] | None = None,
          date: str | None = None) -> str:
    """The documents in one of :data:`FORMATS`, as text."""
    if fmt == "pubtator":
        return to_pubtator(documents)
    if fmt == "bioc-xml":
        from bioc import biocxml

        return biocxml.dumps(to_bioc(documents, source, infons, date, xml_safe=True))
    if fmt == "bioc-json":
        from bioc import biocjson

        return biocjson.dumps(to_bioc(documents, source, infons, date), ensure_ascii=False) + "\n"
    raise ConfigError(f"unknown export format {fmt!r}; expected one of {sorted(FORMATS)}")


# ---------------------------------------------------------------------------------------------
# Free text (adabiobert tag)
# ---------------------------------------------------------------------------------------------
def text_document(doc_id: str, text: str, mentions: Iterable[tuple[int, int, str, str, float]],
                  infons: Mapping[str, str] | None = None) -> ExportDocument:
    """One input text as a document of one passage at offset 0: mention offsets are unchanged.

    Args:
        mentions: ``(start, end, mention, label, confidence)`` with offsets into ``text``.
    """
    found = tuple(Mention(0, s, e, m, label, c) for s, e, m, label, c in mentions)
    return ExportDocument(doc_id, (Passage(0, text, {"type": "text"}),), found, dict(infons or {}))


# ---------------------------------------------------------------------------------------------
# A run of the annotation job
# ---------------------------------------------------------------------------------------------
ENTITY_COLUMNS = ("pmcid", "section", "section_index", "sentence_index", "start_offset", "end_offset", "mention",
                  "label", "confidence", "concept_id", "concept_name", "link_score")


@dataclass(frozen=True)
class ExportedShard:
    """One shard's export: the files written and what they hold."""

    shard: str
    uri: str
    documents: int
    mentions: int
    files: tuple[str, ...]


def article_document(pmcid: str, pieces: Sequence[SectionText], entities: Sequence[Mapping],
                     infons: Mapping[str, str] | None = None) -> ExportDocument:
    """One tagged article: a passage per piece (the title first, even when empty), its entity rows.

    Args:
        pieces: :func:`adabiobert.pmc.shards.article_sections` of the shard row.
        entities: the article's rows of the entity table (:data:`ENTITY_COLUMNS`).

    Raises:
        ExportError: a row whose section is not in the article, or whose text is not at its offsets.
    """
    if not pieces or pieces[0].section_index != 0:
        pieces = [SectionText("title", 0, ""), *pieces]
    offsets = lay_out([p.text for p in pieces])
    passages = tuple(Passage(offset, p.text, {"type": _passage_type(p), "section": p.section,
                                              "section_index": str(p.section_index)})
                     for offset, p in zip(offsets, pieces))
    index = {p.section_index: i for i, p in enumerate(pieces)}
    mentions = []
    for row in sorted(entities, key=lambda r: (r["section_index"], r["start_offset"], r["end_offset"])):
        if row["section_index"] not in index:
            raise ExportError(f"article {pmcid}: a mention in section {row['section_index']} ({row['section']!r}), "
                              "which the article does not have")
        notes = {"sentence_index": str(row["sentence_index"])}
        if row.get("concept_name") is not None:
            notes["concept_name"] = row["concept_name"]
        if row.get("link_score") is not None:
            notes["link_score"] = f"{row['link_score']:.4f}"
        mentions.append(Mention(index[row["section_index"]], row["start_offset"], row["end_offset"], row["mention"],
                                row["label"], row["confidence"], notes, row.get("concept_id")))
    document = ExportDocument(pmcid, passages, tuple(mentions), dict(infons or {}))
    check_mentions(document)
    return document


def _passage_type(piece: SectionText) -> str:
    return piece.section if piece.section_index < 2 else "section"


def committed_shards(output: str) -> list[ShardCommit]:
    """The current commit of every shard under an annotation output root, by shard name (read only).

    Raises:
        InputNotFoundError: ``output`` holds no commit markers (not an annotation output root).
    """
    current = [commits[-1] for commits in AnnotationStore(output).markers().values()]
    if not current:
        raise InputNotFoundError(f"{output}: no annotation output there (no _manifest/commits markers); pass the "
                                 "--output folder of jobs/annotate.py")
    return sorted(current, key=lambda c: c.shard)


def shard_documents(output: str, commit: ShardCommit, shards: str | None = None) -> list[ExportDocument]:
    """The tagged articles of one committed shard, their text read from the shard, in shard order.

    Args:
        output: the annotation output root.
        commit: the shard's current commit.
        shards: the folder the shards live in now, when not where the run read them
            (``commit.uri``); the shard is then ``<shards>/<commit.shard>``.

    Raises:
        ExportError: the shard is gone, or changed since it was tagged (the offsets would not
            point into it any more), or its files are of a tables version not in
            :data:`~adabiobert.annotation.tables.READABLE_VERSIONS` (an export needs no articles
            table; a version-2 entity file is read with null concept columns).
    """
    if commit.tables_version not in READABLE_VERSIONS:
        raise ExportError(f"shard {commit.shard}: its tables are of layout version {commit.tables_version}, this "
                          f"export reads versions {' and '.join(map(str, READABLE_VERSIONS))}; run jobs/annotate.py "
                          "again (it re-tags every shard into the new layout), then export")
    uri = tagged_shard_uri(commit, shards, ExportError,
                           ", so the offsets no longer point into its text; run jobs/annotate.py again, then export")
    tables = {f: _read(storage.join(output, *f.split("/"))) for f in commit.files
              if f.split("/", 1)[0] in (ENTITIES, REJECTIONS)}
    entity_files = [upgrade(ENTITIES, t) for f, t in tables.items() if f.startswith(f"{ENTITIES}/")]
    rejection_files = [t for f, t in tables.items() if f.startswith(f"{REJECTIONS}/")]
    rejected = {p for t in rejection_files for p in t.column("pmcid").to_pylist() if p is not None}
    by_article: dict[str, list[dict]] = {}
    for table in entity_files:
        for row in table.select(list(ENTITY_COLUMNS)).to_pylist():
            by_article.setdefault(row["pmcid"], []).append(row)

    try:
        articles = read_articles(uri)
    except (OSError, pa.ArrowException) as error:
        raise ExportError(f"{uri}: its text cannot be read ({type(error).__name__}: {error})") from None
    infons = {"shard": commit.shard, "model_id": commit.model_id, "run_id": commit.run_id}
    documents, seen = [], set()
    left_out = set(commit.excluded)  # superseded by a newer version elsewhere, or retracted
    for row in articles.to_pylist():
        pmcid = row["pmcid"]
        if pmcid is None or pmcid in rejected or pmcid in left_out:
            continue
        seen.add(pmcid)
        pieces = article_sections(row["title"], row["abstract"], row["sections"])
        try:
            documents.append(article_document(pmcid, pieces, by_article.get(pmcid, []), infons))
        except ExportError as error:
            raise ExportError(f"{uri}: {error}; the shard no longer holds the text that run {commit.run_id} "
                              "tagged: run jobs/annotate.py again, then export") from None
    missing = sorted(set(by_article) - seen)
    if missing:
        raise ExportError(f"{uri}: articles {missing[:3]} have mentions in the tables but are not in the shard; "
                          "run jobs/annotate.py again, then export")
    return documents


def _read(uri: str) -> pa.Table:
    """One table file, without the partition columns a dataset read would infer from its path."""
    filesystem, path = storage.filesystem_for(uri)
    with filesystem.open_input_file(path) as handle:
        return pq.ParquetFile(handle).read()


def export_file_name(shard: str, fmt: str) -> str:
    """``2026/part-00001.parquet`` -> ``2026/part-00001.bioc.xml``: the input layout, per format."""
    name = PurePosixPath(shard)
    return str(name.with_name(name.name.removesuffix(".parquet") + FORMATS[fmt]))


def export_run(output: str, dest: str, formats: Sequence[str] = tuple(FORMATS), shards: str | None = None,
               log: Callable[[str], None] = lambda line: None) -> Iterator[ExportedShard]:
    """Write every tagged shard of an annotation output as one file per format under ``dest``.

    Each file holds the shard's tagged articles, one document each, in shard order (rejected
    articles are not in it; quarantined shards give no file). Offsets are the tables' (module
    docstring).

    Args:
        output: the annotation job's ``--output`` (local or ``s3://``).
        dest: the folder for the exports (local or ``s3://``); files mirror the shard names.
        formats: some of :data:`FORMATS`.
        shards: where the shards are now, if they moved since they were tagged.

    Yields:
        One :class:`ExportedShard` per shard written (the export is lazy: iterate to run it).

    Raises:
        InputNotFoundError: ``output`` is not an annotation output.
        OutputExistsError: ``dest`` is a file (before anything is read or written).
        ExportError: a shard is gone or changed since it was tagged.
    """
    unknown = sorted(set(formats) - set(FORMATS))
    if unknown:
        raise ConfigError(f"unknown export formats {unknown}; expected some of {sorted(FORMATS)}")
    if storage.stat(dest) is not None:
        raise OutputExistsError(f"{dest} is a file: --out names a folder for the exports (one file per shard and "
                                "format); choose another path, or remove the file")
    for commit in committed_shards(output):
        if commit.quarantined or (commit.entities == 0 and commit.rejections >= commit.documents):
            # quarantined, unreadable, bad_schema, or every article rejected: no tagged article
            log(f"{commit.shard}: no tagged article in run {commit.run_id}, nothing to export")
            continue
        documents = shard_documents(output, commit, shards)
        written = []
        for fmt in formats:
            target = storage.join(dest, *export_file_name(commit.shard, fmt).split("/"))
            storage.write_bytes(target, dumps(documents, fmt, f"AdaBioBERT {commit.model_id}",
                                              {"model_id": commit.model_id, "run_id": commit.run_id,
                                               "shard": commit.uri}, commit.run_date).encode("utf-8"))
            written.append(target)
        yield ExportedShard(commit.shard, commit.uri, len(documents), sum(len(d.mentions) for d in documents),
                            tuple(written))
