"""Batch tagging of PMC articles, without Ray: the per-article stages of the annotation job.

The annotation job (``adabiobert/distributed/annotation.py``) runs these functions in Ray Data
stages; each takes and returns an Arrow table so that a stage is one call. The shard itself
(listing, footer check, text) is ``adabiobert.pmc.shards``; the job's config is
``adabiobert.job_configs``; its counts ``adabiobert.annotation.counts``.

    shard (one file, read whole by split_shard; a failure quarantines the shard, see quarantine_row)
      -> split_documents    one row per article: status, and its sentences with offsets and, given
                            the bundle's encoder, their subword windows (SPLIT_SCHEMA)
      -> tag_documents      one row per article: its mentions (TAGGED_SCHEMA); one tagger call per
                            batch, on the sentences as encoded by the split (no tokenizer call);
                            given a linker, each article's mentions linked over its text (concepts)
      -> shard_tables       one shard's entity, rejection and articles tables (annotation.tables schemas)

Offsets are into the text of one section (the title, the abstract, or one body section), so a
mention is ``section_text[start_offset:end_offset]``. An article is rejected, never half-tagged:
the reasons are in :data:`adabiobert.annotation.tables.REJECTION_REASONS`.
"""

from __future__ import annotations

import re
import time
from collections.abc import Mapping, Sequence
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from adabiobert import storage
from adabiobert.annotation.concepts import UNLINKED, link_article, sections_from_sentences
from adabiobert.annotation.status import OK, QUARANTINED
from adabiobert.annotation.subword_columns import ENCODED_FIELDS, encoded_record, examples_from_arrow
from adabiobert.annotation.tables import (
    ARTICLE_SCHEMA,
    ARTICLES,
    ENTITIES,
    REJECTIONS,
    article_table,
    entity_table,
    rejection_table,
)
from adabiobert.job_configs import AnnotateConfig
from adabiobert.linking.linker import Linker
from adabiobert.model.encoding import ExampleEncoder
from adabiobert.model.tagger import Tagger, entities_from_tagging
from adabiobert.pmc.shards import ARTICLE_COLUMNS, SectionText, ShardCheck, article_sections
from adabiobert.spans import tags_to_spans
from adabiobert.text import TextSentence, Word, split_sentences

TEXT_INPUT_COLUMNS = ARTICLE_COLUMNS
"""Shard columns the job reads for the text."""

ROW_FIELDS = (
    pa.field("row_index", pa.int64()),  # the article's row in its shard
    pa.field("version", ARTICLE_SCHEMA.field("version").type),  # the shard row's version (schema 1: last_updated)
    pa.field("pmc_version", pa.int32()),  # PMC's version number (Cloud Service rows), else null
)
"""Which version of the article a row is, carried from the read to the articles table."""

SENTENCE_TYPE = pa.struct(
    [
        pa.field("section", pa.string()),
        pa.field("section_index", pa.int32()),
        pa.field("sentence_index", pa.int32()),
        pa.field("start", pa.int32()),  # offset of the sentence in its section's text
        pa.field("text", pa.string()),
        pa.field("word_starts", pa.list_(pa.int32())),  # offsets in ``text``
        pa.field("word_ends", pa.list_(pa.int32())),
        *ENCODED_FIELDS,  # the sentence's subword windows etc. (annotation.subword_columns), null when not encoded
    ]
)

SPLIT_SCHEMA = pa.schema(
    [
        pa.field("path", pa.string()),
        pa.field("pmcid", pa.string()),
        *ROW_FIELDS,
        pa.field("status", pa.string()),
        pa.field("detail", pa.string()),
        pa.field("split_seconds", pa.float64()),
        pa.field("sentences", pa.list_(SENTENCE_TYPE)),
    ]
)
"""Between the split and the tag stage: one row per article (rejected ones have no sentences).
The job's split encodes every sentence with the bundle's encoder, so the tag stage only runs tensors."""

MENTION_TYPE = pa.struct(
    [
        pa.field("section", pa.string()),
        pa.field("section_index", pa.int32()),
        pa.field("sentence_index", pa.int32()),
        pa.field("start_offset", pa.int32()),
        pa.field("end_offset", pa.int32()),
        pa.field("mention", pa.string()),
        pa.field("label", pa.string()),
        pa.field("confidence", pa.float32()),
        pa.field("concept_id", pa.string()),
        pa.field("concept_name", pa.string()),
        pa.field("link_score", pa.float32()),
    ]
)

TAGGED_SCHEMA = pa.schema(
    [
        pa.field("path", pa.string()),
        pa.field("pmcid", pa.string()),
        *ROW_FIELDS,
        pa.field("status", pa.string()),
        pa.field("detail", pa.string()),
        pa.field("sentences", pa.int32()),
        pa.field("words", pa.int64()),
        pa.field("split_seconds", pa.float64()),
        pa.field("tag_seconds", pa.float64()),
        pa.field("link_seconds", pa.float64()),
        pa.field("entities", pa.list_(MENTION_TYPE)),
    ]
)
"""Out of the tag stage: one row per article, its mentions as a list (linked or not)."""

# C0 and C1 control characters except tab, line feed and carriage return.
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")


# ---------------------------------------------------------------------------------------------
# One article
# ---------------------------------------------------------------------------------------------
def check_article(pieces: Sequence[SectionText], config: AnnotateConfig) -> tuple[str, str] | None:
    """Why an article (its non-empty pieces) cannot be tagged, as ``(reason, detail)``; None if it can."""
    if not pieces:
        return "no_text", "title, abstract and sections are all null or empty"
    total = sum(len(p.text) for p in pieces)
    if total > config.max_document_chars:
        return "too_long", f"{total} characters of text, more than {config.max_document_chars}"
    if config.reject_control_characters:
        for piece in pieces:
            found = _CONTROL.search(piece.text)
            if found:
                return "control_characters", f"U+{ord(found.group()):04X} in {piece.section} at offset {found.start()}"
    return None


def sentence_records(pieces: Sequence[SectionText], encoder: ExampleEncoder | None = None) -> list[dict[str, Any]]:
    """Split every piece into sentences (``SENTENCE_TYPE`` dicts, word offsets sentence-relative),
    each encoded by ``encoder`` (its ``ENCODED_FIELDS`` null without one)."""
    records = []
    for piece in pieces:
        for index, sentence in enumerate(split_sentences(piece.text)):
            words = [w.text for w in sentence.words]
            records.append({
                "section": piece.section,
                "section_index": piece.section_index,
                "sentence_index": index,
                "start": sentence.start,
                "text": piece.text[sentence.start:sentence.end],
                "word_starts": [w.start - sentence.start for w in sentence.words],
                "word_ends": [w.end - sentence.start for w in sentence.words],
                **encoded_record(encoder.encode(words) if encoder is not None else None),
            })
    return records


def split_shard(uri: str, config: AnnotateConfig, documents_per_split: int,
                encoder: ExampleEncoder | None = None) -> pa.Table:
    """Read every row group of one shard's text columns and split its articles (:data:`SPLIT_SCHEMA`),
    encoding the sentences with ``encoder`` when given (see ``split_documents``).

    The whole shard is read before anything is returned, so a shard is either split whole or
    fails whole: a damaged page anywhere raises here, and no article of it reaches the tagger.

    Raises:
        OSError, pyarrow.ArrowException: the shard's data cannot be read (decompression, a page
            header, a request); any other error of the split itself propagates too.
    """
    shard = read_shard_rows(uri)
    shard = shard.append_column("path", pa.array([uri] * shard.num_rows, pa.string()))
    parts = [split_documents(shard.slice(start, documents_per_split), config, encoder)
             for start in range(0, shard.num_rows, documents_per_split)]
    return pa.concat_tables(parts) if parts else SPLIT_SCHEMA.empty_table()


def read_shard_rows(uri: str) -> pa.Table:
    """Every row of a shard: :data:`TEXT_INPUT_COLUMNS` and :data:`ROW_FIELDS` (``row_index`` the
    row's position; ``version`` the shard's ``version``, or ``last_updated`` in a schema-1 shard;
    ``pmc_version`` null in a shard without it), read whole.

    Raises:
        OSError, pyarrow.ArrowException: the data cannot be read (a damaged page, a request).
    """
    filesystem, path = storage.filesystem_for(uri)
    with filesystem.open_input_file(path) as handle:
        parquet = pq.ParquetFile(handle, pre_buffer=True)  # coalesced reads, as read_table makes them
        names = parquet.schema_arrow.names
        version = "version" if "version" in names else "last_updated"
        extra = ["pmc_version"] if "pmc_version" in names else []
        table = parquet.read(columns=[*TEXT_INPUT_COLUMNS, version, *extra])
    n = table.num_rows
    return pa.table({
        **{name: table.column(name) for name in TEXT_INPUT_COLUMNS},
        "row_index": pa.array(range(n), pa.int64()),
        "version": table.column(version).cast(ROW_FIELDS[1].type),
        "pmc_version": table.column("pmc_version") if extra else pa.nulls(n, pa.int32()),
    })


def quarantine_row(uri: str, detail: str) -> pa.Table:
    """The one :data:`SPLIT_SCHEMA` row that stands for a shard whose read or split failed."""
    return pa.Table.from_pylist(
        [{"path": uri, "pmcid": None, "status": QUARANTINED, "detail": detail, "split_seconds": 0.0, "sentences": []}],
        schema=SPLIT_SCHEMA,
    )


# ---------------------------------------------------------------------------------------------
# Stage functions (Arrow in, Arrow out)
# ---------------------------------------------------------------------------------------------
def split_documents(batch: pa.Table, config: AnnotateConfig, encoder: ExampleEncoder | None = None) -> pa.Table:
    """Shard rows (``pmcid, title, abstract, sections, path`` and, as :func:`read_shard_rows`
    gives them, :data:`ROW_FIELDS`; null when absent) to :data:`SPLIT_SCHEMA` rows.

    Rows without a pmcid are left out: the shard check already recorded them with their row index.

    Args:
        encoder: the tagger's sentence encoder (``checkpoint.load_bundle_encoder`` of its bundle):
            each sentence then carries its subword windows, word -> subword map and Word2Vec rows,
            and ``tag_documents`` only runs the model. None: those fields are null and the tag
            stage tokenizes.
    """
    started = time.perf_counter()
    columns = [batch.column(name).to_pylist() for name in (*TEXT_INPUT_COLUMNS, "path")]
    found = {f.name: batch.column(f.name).to_pylist() if f.name in batch.column_names else [None] * batch.num_rows
             for f in ROW_FIELDS}
    rows = []
    for i, (pmcid, title, abstract, sections, path) in enumerate(zip(*columns)):
        if pmcid is None:
            continue
        row = {"path": path, "pmcid": pmcid, **{name: values[i] for name, values in found.items()}}
        pieces = article_sections(title, abstract, sections)
        problem = check_article(pieces, config)
        if problem:
            rows.append({**row, "status": problem[0], "detail": problem[1], "sentences": []})
        else:
            rows.append({**row, "status": OK, "detail": "", "sentences": sentence_records(pieces, encoder)})
    seconds = (time.perf_counter() - started) / max(1, len(rows))
    for row in rows:
        row["split_seconds"] = seconds
    return pa.Table.from_pylist(rows, schema=SPLIT_SCHEMA)


def model_id_for_types(model_id: str, types: Sequence[str] | None) -> str:
    """The model id a run writes: the bundle's ``name@hash``, followed by ``[Disease,Gene]`` when
    the run writes only those types (``AnnotateConfig.types``), so that the id of a shard's rows
    says what they hold and a shard tagged under another restriction is tagged again."""
    return model_id if types is None else f"{model_id}[{','.join(sorted(types))}]"


def tag_documents(tagger: Tagger, batch: pa.Table, types: Sequence[str] | None = None,
                  linker: Linker | None = None) -> pa.Table:
    """:data:`SPLIT_SCHEMA` rows to :data:`TAGGED_SCHEMA` rows with one tagger call.

    A bundle of several types tags all of them in the one call; ``label`` is each mention's type,
    and with ``types`` only mentions of those types are kept (``AnnotateConfig.types``). With a
    ``linker``, each article's mentions are then linked over the article's text, rebuilt from its
    sentences (``annotation.concepts``); without one, their concept fields are null.

    Sentences the split encoded are tagged as they come (``tag_encoded``), without a tokenizer
    call; a batch holding sentences split without an encoder (null subword fields) goes to
    ``tag_words`` instead. All sentences of the batch go to the tagger together; it sorts them by
    length and forms batches within its subword budget, so a call should carry many sentences.
    """
    started = time.perf_counter()
    sentences = batch.column("sentences").combine_chunks()
    flat = pc.list_flatten(sentences)  # (sentences,) struct
    owner = pc.list_parent_indices(sentences).to_pylist()  # (sentences,) article row of each
    texts = pc.struct_field(flat, "text").to_pylist()
    starts = pc.struct_field(flat, "word_starts").to_pylist()
    ends = pc.struct_field(flat, "word_ends").to_pylist()
    words = [[t[s:e] for s, e in zip(ss, ee)] for t, ss, ee in zip(texts, starts, ends)]
    examples = examples_from_arrow(flat)
    if examples and all(example is not None for example in examples):
        taggings = tagger.tag_encoded(examples)
    else:  # split without an encoder (or no sentence): the tagger tokenizes
        taggings = tagger.tag_words(words)

    mentions: list[list[dict[str, Any]]] = [[] for _ in range(batch.num_rows)]
    word_counts = [0] * batch.num_rows
    meta = {n: pc.struct_field(flat, n).to_pylist() for n in ("section", "section_index", "sentence_index", "start")}
    for i, tagging in enumerate(taggings):
        word_counts[owner[i]] += len(words[i])
        if not tags_to_spans(tagging.tags):
            continue
        sentence = TextSentence(0, len(texts[i]), tuple(Word(w, s, e) for w, s, e in zip(words[i], starts[i], ends[i])))
        offset = meta["start"][i]
        for entity in entities_from_tagging(texts[i], sentence, tagging):
            if types is not None and entity.label not in types:
                continue
            mentions[owner[i]].append({
                "section": meta["section"][i],
                "section_index": meta["section_index"][i],
                "sentence_index": meta["sentence_index"][i],
                "start_offset": entity.start + offset,
                "end_offset": entity.end + offset,
                "mention": entity.text,
                "label": entity.label,
                "confidence": entity.confidence,
                **UNLINKED,
            })
    linking_started = time.perf_counter()
    seconds = (linking_started - started) / max(1, batch.num_rows)
    if linker is not None:
        sentences_of: list[list[tuple[int, int, str]]] = [[] for _ in range(batch.num_rows)]
        for i, article in enumerate(owner):
            sentences_of[article].append((meta["section_index"][i], meta["start"][i], texts[i]))
        for article, found in enumerate(mentions):
            if found:
                link_article(linker, sections_from_sentences(sentences_of[article]), found)
    link_seconds = (time.perf_counter() - linking_started) / max(1, batch.num_rows) if linker is not None else 0.0
    return pa.table(
        {
            "path": batch.column("path"),
            "pmcid": batch.column("pmcid"),
            **{f.name: batch.column(f.name) for f in ROW_FIELDS},
            "status": batch.column("status"),
            "detail": batch.column("detail"),
            "sentences": pc.list_value_length(sentences).cast(pa.int32()),
            "words": pa.array(word_counts, pa.int64()),
            "split_seconds": batch.column("split_seconds"),
            "tag_seconds": pa.array([seconds] * batch.num_rows, pa.float64()),
            "link_seconds": pa.array([link_seconds] * batch.num_rows, pa.float64()),
            "entities": pa.array(mentions, pa.list_(MENTION_TYPE)),
        },
        schema=TAGGED_SCHEMA,
    )


def current_documents(documents: pa.Table, left_out: Mapping[str, str]) -> tuple[pa.Table, list[str]]:
    """``documents`` without the articles of ``left_out`` (not current), and the pmcids left out
    (one per document: a pmcid twice in the shard is there twice)."""
    if not left_out or not documents.num_rows:
        return documents, []
    drop = pc.is_in(documents.column("pmcid"), value_set=pa.array(sorted(left_out), pa.string()))
    return documents.filter(pc.invert(drop)), documents.filter(drop).column("pmcid").to_pylist()


def shard_tables(check: ShardCheck, documents: pa.Table, model_id: str, run_id: str,
                 left_out: Mapping[str, str] | None = None, linker_id: str | None = None) -> dict[str, pa.Table]:
    """One shard's three tables: its entity rows, the check's rejections plus rejected articles,
    and one articles row per row of the shard.

    Args:
        check: the driver's check of the shard (its rejections: unreadable, bad_schema, null_pmcid).
        documents: the shard's :data:`TAGGED_SCHEMA` rows (empty when nothing of it was tagged),
            its articles that are not current included.
        left_out: ``{pmcid: status}`` of the shard's articles that are not current
            (``pmc.versions.VersionIndex.left_out`` of the shard): no entity or rejection row,
            an articles row of that status.
        linker_id: the ``linker_id`` of the rows when ``documents`` were linked; None: not linked.

    Returns:
        ``{"entities": ..., "rejections": ..., "articles": ...}``, any possibly empty; entity rows
        sorted by ``pmcid, section_index, sentence_index, start_offset``, articles rows by
        ``row_index``; ``shard`` is ``check.shard.uri``.
    """
    left_out = left_out or {}
    current, _ = current_documents(documents, left_out)
    rejected = current.filter(pc.not_equal(current.column("status"), OK))
    rows = list(check.rejections) + [
        (row_index, pmcid, reason, detail)
        for row_index, pmcid, reason, detail in zip(
            *(rejected.column(n).to_pylist() for n in ("row_index", "pmcid", "status", "detail")))
    ]
    checked = [(row_index, pmcid) for row_index, pmcid, _, _ in check.rejections if row_index is not None]
    order = [(column, "ascending") for column in ("pmcid", "section_index", "sentence_index", "start_offset")]
    return {
        ENTITIES: entity_table(current, check.shard.uri, model_id, run_id, linker_id).sort_by(order),
        REJECTIONS: rejection_table(check.shard.uri, rows, model_id, run_id),
        ARTICLES: article_table(check.shard.uri, documents, checked, left_out, model_id, run_id),
    }
