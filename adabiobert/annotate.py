"""Batch tagging of PMC articles, without Ray: article -> sentences -> entity rows, rejections, counts.

The annotation job (``adabiobert/distributed/annotation.py``) runs these functions in Ray Data
stages; each takes and returns an Arrow table so that a stage is one call:

    shard (one file, read whole by split_shard; a failure quarantines the shard, see quarantine_row)
      -> split_documents    one row per article: status, and its sentences with offsets and, given
                            the bundle's encoder, their subword windows (SPLIT_SCHEMA)
      -> tag_documents      one row per article: its mentions (TAGGED_SCHEMA); one tagger call per
                            batch, on the sentences as encoded by the split (no tokenizer call)
      -> shard_tables       one shard's entity and rejection tables (entity_tables schemas), RunCounts

Offsets are into the text of one section (the title, the abstract, or one body section), so a
mention is ``section_text[start_offset:end_offset]``. An article is rejected, never half-tagged:
the reasons are in :data:`adabiobert.entity_tables.REJECTION_REASONS`.
"""

from __future__ import annotations

import datetime
import json
import os
import re
import time
import uuid
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path, PurePosixPath
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from adabiobert import storage
from adabiobert.checkpoint import MANIFEST, bundle_hash
from adabiobert.encoding import ExampleEncoder
from adabiobert.entity_tables import ENTITIES, REJECTIONS, entity_table, rejection_table
from adabiobert.errors import InputNotFoundError, ShardSchemaError
from adabiobert.pmc_schema import validate_shard_schema
from adabiobert.precision import DEFAULT_TAG_PRECISION, TAG_PRECISIONS
from adabiobert.spans import tags_to_spans
from adabiobert.subword_columns import ENCODED_FIELDS, encoded_record, examples_from_arrow
from adabiobert.tagger import Tagger, entities_from_tagging
from adabiobert.text import TextSentence, Word, split_sentences

OK = "ok"
"""``status`` of an article that was tagged; any other status is a rejection reason."""

QUARANTINED = "quarantined"
"""``status`` of the one row that stands for a whole shard whose read or split failed."""

TEXT_INPUT_COLUMNS = ("pmcid", "title", "abstract", "sections")
"""Shard columns the job reads."""

SENTENCE_TYPE = pa.struct(
    [
        pa.field("section", pa.string()),
        pa.field("section_index", pa.int32()),
        pa.field("sentence_index", pa.int32()),
        pa.field("start", pa.int32()),  # offset of the sentence in its section's text
        pa.field("text", pa.string()),
        pa.field("word_starts", pa.list_(pa.int32())),  # offsets in ``text``
        pa.field("word_ends", pa.list_(pa.int32())),
        *ENCODED_FIELDS,  # the sentence's subword windows etc. (subword_columns), null when not encoded
    ]
)

SPLIT_SCHEMA = pa.schema(
    [
        pa.field("path", pa.string()),
        pa.field("pmcid", pa.string()),
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
    ]
)

TAGGED_SCHEMA = pa.schema(
    [
        pa.field("path", pa.string()),
        pa.field("pmcid", pa.string()),
        pa.field("status", pa.string()),
        pa.field("detail", pa.string()),
        pa.field("sentences", pa.int32()),
        pa.field("words", pa.int64()),
        pa.field("split_seconds", pa.float64()),
        pa.field("tag_seconds", pa.float64()),
        pa.field("entities", pa.list_(MENTION_TYPE)),
    ]
)
"""Out of the tag stage: one row per article, its mentions as a list."""

# C0 and C1 control characters except tab, line feed and carriage return.
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")


@dataclass(frozen=True)
class AnnotateConfig:
    """What an article must look like to be tagged."""

    max_document_chars: int = 1_000_000
    """Articles with more characters of text (title + abstract + sections) are rejected as
    ``too_long``: in PMC such texts are data tables flattened into prose, and one of them would
    hold a tagger call (and its memory) for minutes."""
    reject_control_characters: bool = True
    """Reject articles whose text holds a C0/C1 control character other than tab, LF, CR (they
    cannot come from valid JATS XML and mark a broken conversion). When False, the word tokenizer
    treats them as white space or punctuation and the article is tagged."""

    def __post_init__(self) -> None:
        if self.max_document_chars < 1:
            raise ValueError(f"max_document_chars must be >= 1, got {self.max_document_chars}")


@dataclass(frozen=True)
class AnnotationJobConfig:
    """One run of the annotation job."""

    shards: str
    """A shard file or a folder of shards (local or ``s3://``); every ``.parquet`` below it except
    ``rejects.parquet`` (the ingest job's own rejections)."""
    output: str
    """Output root (local or ``s3://``): ``entities/``, ``rejections/``, ``runs/``, ``_manifest/``."""
    model: str
    """Bundle folder (local or ``s3://``)."""
    run_date: str | None = None
    """Partition value ``YYYY-MM-DD`` for this run's files; None for today (UTC)."""
    run_id: str | None = None
    """None for a fresh id (UTC time + random suffix)."""
    use_gpu: bool = False
    """One tagger actor per GPU (bf16 autocast under ``precision`` auto)."""
    precision: str = DEFAULT_TAG_PRECISION
    """``auto``, ``fp32``, ``bf16`` or ``int8`` (``adabiobert.precision``). Resolved once per run on
    a worker with a tagger actor's resources, and every actor tags at that precision; the choice
    and its reason go into the run summary. ``int8`` is CPU only."""
    num_actors: int | None = None
    """Tagger actors; None: one per GPU, or on CPU (cluster CPUs - 1) // cpu_threads_per_actor."""
    cpu_threads_per_actor: int | None = None
    """torch threads (and Ray CPUs) per CPU tagger actor; None: 1 up to 8 CPUs, then up to 4."""
    documents_per_call: int = 32
    """Articles per tagger call (Ray Data ``batch_size``); each call tags all their sentences at
    once, batched by ``subword_budget`` from length-sorted sentences."""
    documents_per_split: int = 64
    """Articles per sentence-splitting task batch."""
    subword_budget: int = 8192
    """Subwords (padding included) per forward pass."""
    annotate: AnnotateConfig = field(default_factory=AnnotateConfig)
    """Which articles are tagged."""
    show_progress: bool = True
    """tqdm bar over articles on stderr."""
    read_retries: int = 2
    """Times the task that reads and splits a shard is run again after its worker died (a crash,
    out of memory, a lost node) before the shard is quarantined. An error raised while reading
    (a damaged page, a failed request) quarantines it at once."""

    def __post_init__(self) -> None:
        if self.run_date is not None:
            try:
                datetime.date.fromisoformat(self.run_date)
            except ValueError:
                raise ValueError(f"run_date must be a date YYYY-MM-DD, got {self.run_date!r}") from None
        if self.precision not in TAG_PRECISIONS:
            raise ValueError(f"precision must be one of {', '.join(TAG_PRECISIONS)}, got {self.precision!r}")
        if self.precision == "int8" and self.use_gpu:
            raise ValueError("precision int8 is a CPU path (no CUDA kernels); with use_gpu use auto, bf16 or fp32")
        if self.read_retries < 0:
            raise ValueError(f"read_retries must be >= 0, got {self.read_retries}")
        for name in ("documents_per_call", "documents_per_split", "subword_budget"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.num_actors is not None and self.num_actors < 1:
            raise ValueError(f"num_actors must be >= 1, got {self.num_actors}")
        if self.cpu_threads_per_actor is not None and self.cpu_threads_per_actor < 1:
            raise ValueError(f"cpu_threads_per_actor must be >= 1, got {self.cpu_threads_per_actor}")

    def resolved(self) -> AnnotationJobConfig:
        """A copy with ``run_date`` and ``run_id`` filled in."""
        now = datetime.datetime.now(datetime.timezone.utc)
        return replace(self, run_date=self.run_date or now.date().isoformat(),
                       run_id=self.run_id or f"{now:%Y%m%dT%H%M%SZ}-{uuid.uuid4().hex[:6]}")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


# ---------------------------------------------------------------------------------------------
# One article
# ---------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class SectionText:
    """One piece of an article that holds sentences."""

    section: str
    """``title``, ``abstract``, or the body section's title path (``body`` when it has none)."""
    section_index: int
    """0 title, 1 abstract, 2 + i body section i (kept even when earlier pieces are empty)."""
    text: str


def article_sections(
    title: str | None, abstract: str | None, sections: Sequence[Mapping[str, Any]] | None
) -> list[SectionText]:
    """The non-empty texts of one shard row, in article order."""
    pieces = [SectionText("title", 0, title or ""), SectionText("abstract", 1, abstract or "")]
    for i, section in enumerate(sections or ()):
        pieces.append(SectionText((section or {}).get("title") or "body", 2 + i, (section or {}).get("text") or ""))
    return [piece for piece in pieces if piece.text]


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


# ---------------------------------------------------------------------------------------------
# Shards
# ---------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Shard:
    """One input shard as listed at the start of a run."""

    name: str
    """Its path relative to the ``shards`` root (``part-00000.parquet``, ``2026/part-1.parquet``):
    its identity in the manifest, so that a copy of the input and the output under other roots is
    still up to date."""
    uri: str
    """Where it is read from (``s3://...`` or an absolute local path): the ``shard`` column of the
    tables, so that a row leads back to the file holding its article's text."""
    size: int
    version: str
    """ETag (S3) or mtime in nanoseconds (local)."""


@dataclass(frozen=True)
class ShardCheck:
    """One pending shard as the driver found it before tagging."""

    shard: Shard
    documents: int
    """Rows in the shard (0 when unreadable)."""
    rejections: tuple[tuple[int | None, str | None, str, str], ...]
    """``(row_index, pmcid, reason, detail)`` found by the check."""
    expected: int
    """Rows the pipeline will return for it (rows with a pmcid; 0 when it is not tagged at all)."""
    failure: str | None = None
    """Why its data could not be read (its footer could): the shard is quarantined, not tagged."""


def list_shards(shards: str) -> list[Shard]:
    """The shard files named by ``shards``: one ``.parquet`` file, or every one under a folder
    except the ingest job's ``rejects.parquet``, sorted by name (none when it does not exist)."""
    if not storage.is_s3(shards):
        shards = os.path.abspath(shards)
    if shards.endswith(".parquet"):
        parent, _, name = shards.rpartition("/")
        found = storage.list_files(parent, (".parquet",))
        return [Shard(name, f.uri, f.size, f.version) for f in found if f.uri == shards]
    root = shards.rstrip("/") + "/"
    found = [Shard(f.uri[len(root):], f.uri, f.size, f.version) for f in storage.list_files(shards, (".parquet",))]
    return [s for s in found if PurePosixPath(s.name).name != "rejects.parquet"]


def check_shard(shard: Shard) -> ShardCheck:
    """Open a shard's footer and pmcid column; turn what is wrong into rejection rows."""
    filesystem, path = storage.filesystem_for(shard.uri)
    try:
        metadata = pq.read_metadata(path, filesystem=filesystem)
    except (OSError, pa.ArrowException) as error:
        detail = f"{type(error).__name__}: {str(error)[:300]}"
        return ShardCheck(shard, 0, ((None, None, "unreadable", detail),), 0)
    rows = metadata.num_rows
    schema = metadata.schema.to_arrow_schema()
    pmcids: list[str | None] = [None] * rows
    if schema.get_field_index("pmcid") >= 0:
        try:
            pmcids = pq.read_table(path, filesystem=filesystem, columns=["pmcid"]).column("pmcid").to_pylist()
        except (OSError, pa.ArrowException) as error:
            return ShardCheck(shard, rows, (), 0, failure=read_failure(shard.uri, error))
    try:
        validate_shard_schema(schema, shard.uri)
    except ShardSchemaError as error:
        detail = str(error).removeprefix(f"{shard.uri}: ")
        return ShardCheck(shard, rows, tuple((i, pmcid, "bad_schema", detail) for i, pmcid in enumerate(pmcids)), 0)
    nulls = tuple((i, None, "null_pmcid", "pmcid is null") for i, pmcid in enumerate(pmcids) if pmcid is None)
    return ShardCheck(shard, rows, nulls, rows - len(nulls))


def read_failure(uri: str, error: BaseException) -> str:
    """The ``detail`` of a quarantined shard: its URI and the error, on one line."""
    message = " ".join(str(error).split())[:300]
    return f"{uri}: {type(error).__name__}: {message}"


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
    filesystem, path = storage.filesystem_for(uri)
    shard = pq.read_table(path, filesystem=filesystem, columns=list(TEXT_INPUT_COLUMNS))
    shard = shard.append_column("path", pa.array([uri] * shard.num_rows, pa.string()))
    parts = [split_documents(shard.slice(start, documents_per_split), config, encoder)
             for start in range(0, shard.num_rows, documents_per_split)]
    return pa.concat_tables(parts) if parts else SPLIT_SCHEMA.empty_table()


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
    """Shard rows (``pmcid, title, abstract, sections, path``) to :data:`SPLIT_SCHEMA` rows.

    Rows without a pmcid are left out: the shard check already recorded them with their row index.

    Args:
        encoder: the tagger's sentence encoder (``checkpoint.load_bundle_encoder`` of its bundle):
            each sentence then carries its subword windows, word -> subword map and Word2Vec rows,
            and ``tag_documents`` only runs the model. None: those fields are null and the tag
            stage tokenizes.
    """
    started = time.perf_counter()
    columns = {name: batch.column(name).to_pylist() for name in (*TEXT_INPUT_COLUMNS, "path")}
    rows = []
    for pmcid, title, abstract, sections, path in zip(*(columns[n] for n in (*TEXT_INPUT_COLUMNS, "path"))):
        if pmcid is None:
            continue
        pieces = article_sections(title, abstract, sections)
        problem = check_article(pieces, config)
        if problem:
            rows.append({"path": path, "pmcid": pmcid, "status": problem[0], "detail": problem[1], "sentences": []})
        else:
            sentences = sentence_records(pieces, encoder)
            rows.append({"path": path, "pmcid": pmcid, "status": OK, "detail": "", "sentences": sentences})
    seconds = (time.perf_counter() - started) / max(1, len(rows))
    for row in rows:
        row["split_seconds"] = seconds
    return pa.Table.from_pylist(rows, schema=SPLIT_SCHEMA)


def tag_documents(tagger: Tagger, batch: pa.Table) -> pa.Table:
    """:data:`SPLIT_SCHEMA` rows to :data:`TAGGED_SCHEMA` rows with one tagger call.

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
            mentions[owner[i]].append({
                "section": meta["section"][i],
                "section_index": meta["section_index"][i],
                "sentence_index": meta["sentence_index"][i],
                "start_offset": entity.start + offset,
                "end_offset": entity.end + offset,
                "mention": entity.text,
                "label": entity.label,
                "confidence": entity.confidence,
            })
    seconds = (time.perf_counter() - started) / max(1, batch.num_rows)
    return pa.table(
        {
            "path": batch.column("path"),
            "pmcid": batch.column("pmcid"),
            "status": batch.column("status"),
            "detail": batch.column("detail"),
            "sentences": pc.list_value_length(sentences).cast(pa.int32()),
            "words": pa.array(word_counts, pa.int64()),
            "split_seconds": batch.column("split_seconds"),
            "tag_seconds": pa.array([seconds] * batch.num_rows, pa.float64()),
            "entities": pa.array(mentions, pa.list_(MENTION_TYPE)),
        },
        schema=TAGGED_SCHEMA,
    )


def shard_tables(check: ShardCheck, documents: pa.Table, model_id: str, run_id: str) -> dict[str, pa.Table]:
    """One shard's two tables: its entity rows, and the check's rejections plus rejected articles.

    Args:
        check: the driver's check of the shard (its rejections: unreadable, bad_schema, null_pmcid).
        documents: the shard's :data:`TAGGED_SCHEMA` rows (empty when nothing of it was tagged).

    Returns:
        ``{"entities": ..., "rejections": ...}``, either possibly empty; entity rows sorted by
        ``pmcid, section_index, sentence_index, start_offset``; ``shard`` is ``check.shard.uri``.
    """
    rejected = documents.filter(pc.not_equal(documents.column("status"), OK))
    rows = list(check.rejections) + [
        (None, pmcid, reason, detail)
        for pmcid, reason, detail in zip(*(rejected.column(n).to_pylist() for n in ("pmcid", "status", "detail")))
    ]
    order = [(column, "ascending") for column in ("pmcid", "section_index", "sentence_index", "start_offset")]
    return {
        ENTITIES: entity_table(documents, check.shard.uri, model_id, run_id).sort_by(order),
        REJECTIONS: rejection_table(check.shard.uri, rows, model_id, run_id),
    }


# ---------------------------------------------------------------------------------------------
# Counting
# ---------------------------------------------------------------------------------------------
@dataclass
class RunCounts:
    """What a run did, added up shard by shard (written as ``runs/<run_id>.json``)."""

    shards_listed: int = 0
    shards_up_to_date: int = 0
    shards_committed: int = 0
    shards_committed_elsewhere: int = 0
    """Shards whose marker another run created first (this run's files were withdrawn)."""
    shards_quarantined: int = 0
    """Shards this run tried whose read or split failed: committed as one ``quarantined`` rejection."""
    shards_held: int = 0
    """Shards not tried: quarantined by the last runs as often as ``QUARANTINE_ATTEMPTS`` allows, for
    the same content and model."""
    quarantined: list[dict[str, Any]] = field(default_factory=list)
    """One entry per quarantined or held shard: ``shard``, ``uri``, ``attempt``, ``held``, ``error``."""
    shards_unreadable: int = 0
    documents_in: int = 0
    """Articles in the committed shards: always ``documents_tagged + documents_rejected``."""
    documents_tagged: int = 0
    documents_rejected: int = 0
    sentences: int = 0
    words: int = 0
    mentions: int = 0
    mentions_by_label: dict[str, int] = field(default_factory=dict)
    rejections_by_reason: dict[str, int] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)
    """Wall seconds of the driver's stages (``recover``, ``list``, ``check``, ``stream``: read,
    split and tag overlapping, ``commit``, ``total``), and busy seconds summed over workers
    (``split_busy``, ``tag_busy``)."""

    def add_shard(self, documents: pa.Table, entities: pa.Table, rejections: pa.Table, documents_in: int) -> None:
        """Add one committed shard: its tagged articles, entity rows and rejection rows.

        Raises:
            ValueError: the shard's articles do not reconcile (in != tagged + rejected).
        """
        tagged = _count(documents, "status", OK)
        unreadable = _count(rejections, "reason", "unreadable")
        rejected = rejections.num_rows - unreadable
        if tagged + rejected != documents_in:
            shard = rejections.column("shard")[0].as_py() if rejections.num_rows else "?"
            raise ValueError(f"{shard}: {documents_in} articles in, but {tagged} tagged + {rejected} rejected")
        self.shards_committed += 1
        self.shards_unreadable += unreadable
        self.documents_in += documents_in
        self.documents_tagged += tagged
        self.documents_rejected += rejected
        if documents.num_rows:
            self.sentences += pc.sum(documents.column("sentences")).as_py() or 0
            self.words += pc.sum(documents.column("words")).as_py() or 0
            self._add_seconds("split_busy", pc.sum(documents.column("split_seconds")).as_py() or 0.0)
            self._add_seconds("tag_busy", pc.sum(documents.column("tag_seconds")).as_py() or 0.0)
        self.mentions += entities.num_rows
        _add_counts(self.mentions_by_label, entities.column("label").to_pylist())
        _add_counts(self.rejections_by_reason, rejections.column("reason").to_pylist())

    def add_quarantine(self, shard: Shard, attempt: int, error: str, held: bool = False) -> None:
        """Count a shard quarantined by this run (``held=False``) or held from an earlier one."""
        if held:
            self.shards_held += 1
        else:
            self.shards_quarantined += 1
            _add_counts(self.rejections_by_reason, [QUARANTINED])
        self.quarantined.append({"shard": shard.name, "uri": shard.uri, "attempt": attempt, "held": held, "error": error})

    def _add_seconds(self, stage: str, seconds: float) -> None:
        self.seconds[stage] = round(self.seconds.get(stage, 0.0) + seconds, 3)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _count(table: pa.Table, column: str, value: str) -> int:
    return int(pc.sum(pc.equal(table.column(column), value)).as_py() or 0) if table.num_rows else 0


def _add_counts(counts: dict[str, int], values: list[str]) -> None:
    for value, n in Counter(values).items():
        counts[value] = counts.get(value, 0) + n


def bundle_model_id(folder: str | Path, name_hint: str | None = None) -> str:
    """``name@hash`` of a local bundle, as :attr:`Tagger.model_id` gives it.

    Args:
        folder: the bundle folder on this machine.
        name_hint: the name when the bundle's metadata has none (default: the folder's parent's
            name, as the tagger uses); pass the remote parent's name for a downloaded copy.

    Raises:
        InputNotFoundError: the folder holds no bundle manifest.
    """
    folder = Path(folder)
    if not (folder / MANIFEST).is_file():
        raise InputNotFoundError(f"{folder}: no tagger bundle there ({MANIFEST} is missing); pass the "
                                 "'model' folder of a training run, <output>/<name>/model")
    metadata = json.loads((folder / MANIFEST).read_text(encoding="utf-8")).get("metadata") or {}
    name = metadata.get("name") or name_hint or folder.resolve().parent.name
    return f"{name}@{bundle_hash(folder)}"
