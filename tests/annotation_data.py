"""Small PMC shards for the annotation tests: good articles from corpus sentences, and bad input;
an annotation run without Ray, for tests of what the tables hold rather than of the job; and the
code blocks of docs/entity-tables.md, which the tests run as the doc shows them."""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from adabiobert import storage
from adabiobert.annotation.commit import AnnotationStore
from adabiobert.annotation.counts import RunCounts
from adabiobert.annotation.planner import amendments_alone, plan_run, version_index
from adabiobert.annotation.relink import Linking, relink_shard
from adabiobert.annotation.shard_commits import commit_amendment, commit_quarantine, commit_tagged
from adabiobert.annotation.stages import TAGGED_SCHEMA, split_shard, tag_documents
from adabiobert.job_configs import AnnotateConfig, AnnotationJobConfig
from adabiobert.pmc.shards import PMC_SHARD_SCHEMA, check_shard, list_shards, read_failure
from adabiobert.text import split_sentences

ENTITY_TABLES_DOC = Path(__file__).resolve().parents[1] / "docs" / "entity-tables.md"


def article(pmcid: str | None, title: str | None = None, abstract: str | None = None,
            sections: Sequence[tuple[str, str]] = ()) -> dict:
    """A shard row with every schema column."""
    return {
        "pmcid": pmcid, "pmid": None, "doi": None, "title": title, "abstract": abstract,
        "sections": [{"title": t, "text": x} for t, x in sections], "license": "CC BY",
        "last_updated": None, "source": "test",
    }


def corpus_articles(sentences: Sequence[Sequence[str]], prefix: str, count: int, per_text: int = 3) -> list[dict]:
    """``count`` articles whose title, abstract and two sections are corpus sentences."""
    texts = [" ".join(words) for words in sentences]
    rows, cursor = [], 0

    def take(n: int) -> str:
        nonlocal cursor
        chunk = texts[cursor:cursor + n]
        cursor += n
        return " ".join(chunk)

    for i in range(count):
        rows.append(article(f"{prefix}{i}", take(1), take(per_text),
                            [("Introduction", take(per_text)), ("Methods / Patients", take(per_text))]))
    return rows


def long_sentence_article(sentences: Sequence[Sequence[str]], pmcid: str, words: int = 150) -> dict:
    """An article whose abstract is one sentence of at least ``words`` corpus words (sentence ends
    dropped), longer than one encoder window of the test bundles, beside a short title."""
    long = [w for s in sentences for w in s if w not in (".", "?", "!")][:words]
    assert len(long) == words, "not enough corpus words"
    return article(pmcid, " ".join(sentences[0]), " ".join(long) + " .")


def bad_articles(prefix: str) -> list[dict]:
    """One article per document-level rejection reason (null pmcid included)."""
    return [
        article(f"{prefix}empty", None, "", [("Body", "")]),
        article(f"{prefix}huge", "A title .", "cancer " * 150_000),  # 1.05 million characters
        article(f"{prefix}ctrl", "Breast cancer .", "Tumour\x07 cells grew ."),
        article(None, "No identifier here .", "Colon cancer ."),
    ]


def write_shard(uri: str, rows: Sequence[dict], schema: pa.Schema = PMC_SHARD_SCHEMA, compression: str = "snappy") -> str:
    """Write ``rows`` as one Parquet shard (local or s3://; ``zstd`` as the ingest job writes); returns ``uri``."""
    if any(r.get("pmcid", "") is None for r in rows):  # another tool's shard: pmcid not declared required
        schema = schema.set(schema.get_field_index("pmcid"), pa.field("pmcid", pa.string()))
    table = pa.Table.from_pylist(list(rows), schema=schema)
    with storage.open_output(uri) as sink:
        pq.write_table(table, sink, compression=compression)
    return uri


def without_column(rows: Sequence[dict], column: str) -> tuple[list[dict], pa.Schema]:
    """Rows and a schema that lack ``column`` (a shard another tool made)."""
    schema = pa.schema([f for f in PMC_SHARD_SCHEMA if f.name != column])
    return [{k: v for k, v in r.items() if k != column} for r in rows], schema


def damage_data_pages(uri: str, column: str | None = None) -> str:
    """Overwrite bytes in the middle of one column chunk of a shard, as a bad disk or a torn copy
    would; the footer stays intact. ``column`` None: the largest chunk other than ``pmcid``, so
    that the pmcid column still reads and the text does not."""
    data = bytearray(storage.read_bytes(uri))
    metadata = pq.read_metadata(pa.BufferReader(bytes(data)))
    chunks = [metadata.row_group(g).column(c) for g in range(metadata.num_row_groups) for c in range(metadata.num_columns)]
    chunks = [c for c in chunks if (c.path_in_schema == column if column else c.path_in_schema != "pmcid")]
    chunk = max(chunks, key=lambda c: c.total_compressed_size)
    start = chunk.dictionary_page_offset if chunk.has_dictionary_page else chunk.data_page_offset
    middle = start + chunk.total_compressed_size // 2
    data[middle:middle + 32] = bytes(range(32))
    storage.write_bytes(uri, bytes(data))
    return uri


def expected_mentions(tagger, source: dict) -> list[tuple]:
    """What ``tag_documents`` should give for one article: each section's sentences through
    ``tagger.tag_words`` (via ``tag_sentences``), confidence last."""
    texts = [source["title"] or "", source["abstract"] or ""] + [s["text"] for s in source["sections"]]
    expected = []
    for index, text in enumerate(texts):
        for sentence_index, entities in enumerate(tagger.tag_sentences(text, split_sentences(text))):
            expected += [(index, sentence_index, e.start, e.end, e.text, e.label, e.confidence) for e in entities]
    return expected


def annotate_without_ray(shards: str | Path, output: str | Path, tagger, run_id: str = "run1",
                         run_date: str = "2026-11-25", linking=None) -> RunCounts:
    """Tag and commit the shards under ``shards`` that are not up to date with the library calls
    the job's driver makes (recover, versions, plan; per shard check, split, tag, commit_tagged
    or commit_quarantine; the amendments left; the re-links), in this process, shard by shard.
    ``tagger`` needs ``tag_words`` and ``model_id``; ``linking`` (``annotation.relink.Linking``)
    links the mentions as the tagger actors do. Returns the run's counts."""
    config = AnnotationJobConfig(str(shards), str(output), "no-model", run_date=run_date, run_id=run_id)
    linking = linking if linking is not None else Linking()
    linker_id = linking.linker_id
    store = AnnotationStore(str(output))
    store.recover()
    listed = list_shards(str(shards))
    index = version_index(listed)
    counts = RunCounts()
    plan = plan_run(store, listed, tagger.model_id, index, counts, linker_id)
    for shard in plan.pending:
        check = check_shard(shard)
        if check.failure is not None:
            commit_quarantine(store, check, check.failure, config, tagger.model_id, counts)
            continue
        try:
            documents = (tag_documents(tagger, split_shard(shard.uri, AnnotateConfig(), 64), linker=linking.linker)
                         if check.expected else TAGGED_SCHEMA.empty_table())
        except (OSError, pa.ArrowException) as error:
            commit_quarantine(store, check, read_failure(shard.uri, error), config, tagger.model_id, counts)
            continue
        commit_tagged(store, check, documents, config, tagger.model_id, counts, index, plan.amendments, linker_id)
    for name, pmcids in amendments_alone(store, plan.amendments, listed, plan.pending):
        commit_amendment(store, name, pmcids, index, config, counts)
    for shard in plan.relink:
        done = relink_shard(store, store.committed(shard.name), linking, run_id, shard.uri)
        if done is not None:
            counts.add_relinked(done.commit.entities, done.linked, 0.0)
    store.write_manifest()
    return counts


def doc_blocks(heading: str, language: str) -> list[str]:
    """The ``language`` code blocks of the section ``## <heading>`` of docs/entity-tables.md (its
    ``###`` subsections included), in order."""
    text = ENTITY_TABLES_DOC.read_text(encoding="utf-8")
    sections = re.split(r"^## ", text, flags=re.M)
    (section,) = [s for s in sections if s.startswith(f"{heading}\n")]
    return re.findall(rf"^```{re.escape(language)}\n(.*?)^```", section, flags=re.S | re.M)
