"""PubTator documents as training sentences: words with IOB2 tags, cut the way tagging cuts PMC.

The title and the abstract are split apart, each by :func:`adabiobert.text.split_sentences`, as
the annotation job splits an article's title and abstract (``pmc.shards.article_sections`` makes
them separate pieces, ``annotation.stages.sentence_records`` splits each), so training sees the
sentences and words that tagging sees. Word offsets are shifted into ``document.text``.

A mention becomes IOB2 tags on the words it touches. Three rules, each counted in the
:class:`AlignmentReport`, none silent:

* **crossing a sentence boundary** (its words lie in two sentences, or in the title and the
  abstract): dropped. A tagger tags one sentence at a time and can never find it whole.
* **off word boundaries** (it starts or ends inside a word, or on space around one, as
  ``eIF4A`` in ``eIF4Aimmunoprecipitations``): snapped outward to the words it touches, and
  kept. Dropping it would teach those words as ``O`` of a type the corpus annotates; snapping
  teaches a slightly wider span of the right type. The offset metric still scores against the
  unsnapped gold, so such a mention is a miss there, whatever the tagger learns.
* **overlapping** another mention once on words (a gene inside a disease name, one span under
  two types): the mention over more words is kept, then the one over more characters, then the
  first in the file; the others are dropped. The same words under the same type twice are one
  mention (counted as ``duplicates``).
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from adabiobert.corpora.iob import Sentence
from adabiobert.corpora.pubtator import CorpusSpec, Mention, PubTatorDocument, ReadReport, read_pubtator
from adabiobert.spans import Span, spans_to_tags
from adabiobert.text import TextSentence, Word, split_sentences

CROSSING_SENTENCE = "crossing_sentence"
WITHOUT_WORDS = "without_words"
OFF_WORD_BOUNDARY = "off_word_boundary"
OVERLAPPING = "overlapping"
DUPLICATE = "duplicate"


@dataclass(frozen=True)
class DocumentSentence(Sentence):
    """A sentence of a PubTator document: an IOB :class:`~adabiobert.corpora.iob.Sentence`
    (words and IOB2 tags, what training takes) with where it came from and what its corpus annotates."""

    corpus: str
    pmid: str
    annotated_types: frozenset[str]
    """The entity types its corpus annotates: an ``O`` word is outside a mention of these types
    only, and says nothing about the others (partial annotation)."""
    starts: tuple[int, ...]
    """Each word's start offset in ``document.text``."""
    ends: tuple[int, ...]

    def __post_init__(self) -> None:
        super().__post_init__()
        assert len(self.starts) == len(self.ends) == len(self.words), (self.words, self.starts, self.ends)


@dataclass(frozen=True)
class AlignmentReport:
    """What happened to the mentions of some documents on their way to tags.

    ``mentions == tagged + crossing_sentence + without_words + overlapping + duplicates``.
    """

    corpus: str
    documents: int
    sentences: int
    mentions: int
    """Mentions in the documents."""
    tagged: int
    """Mentions written as tags."""
    crossing_sentence: int = 0
    """Dropped: their words lie in more than one sentence."""
    without_words: int = 0
    """Dropped: they cover no word (only space or control characters)."""
    overlapping: int = 0
    """Dropped by the overlap rule (a longer mention shares a word with them)."""
    duplicates: int = 0
    """Same words and type as a mention kept: written once."""
    off_word_boundary: int = 0
    """Mentions that start or end inside a word or on space (snapped outward; counted before the overlap rule)."""
    examples: dict[str, str] = field(default_factory=dict)
    """The first mention of each count above but ``tagged``, as ``PMID start-end 'text' (type)``."""


def document_pieces(document: PubTatorDocument) -> list[tuple[int, str]]:
    """The pieces that are split apart, as (offset in ``document.text``, text): the title and
    the abstract, the empty ones left out (the annotation job's pieces of an article)."""
    pieces = [(0, document.title), (len(document.title) + 1, document.abstract)]
    return [(offset, text) for offset, text in pieces if text]


def document_sentences(document: PubTatorDocument) -> list[TextSentence]:
    """The sentences of a document, word offsets into ``document.text``."""
    sentences = []
    for offset, text in document_pieces(document):
        for sentence in split_sentences(text):
            words = tuple(Word(w.text, w.start + offset, w.end + offset) for w in sentence.words)
            sentences.append(TextSentence(sentence.start + offset, sentence.end + offset, words))
    return sentences


def to_sentences(
    documents: Iterable[PubTatorDocument], annotated_types: Iterable[str], corpus: str
) -> tuple[list[DocumentSentence], AlignmentReport]:
    """Split documents into sentences of words and tag their mentions in IOB2.

    Args:
        documents: as :func:`~adabiobert.corpora.pubtator.read_pubtator` gives them.
        annotated_types: the types the corpus annotates (``ReadReport.annotated_types``).
        corpus: its name, recorded on every sentence.

    Returns:
        The sentences in document order, and the counts of the rules in the module docstring.
    """
    types = frozenset(annotated_types)
    counts = _Counts()
    sentences: list[DocumentSentence] = []
    documents_seen = 0
    for document in documents:
        documents_seen += 1
        sentences.extend(_document_sentences(document, types, corpus, counts))
    return sentences, counts.report(corpus, documents_seen, len(sentences))


def read_sentences(
    path: str | Path, corpus: str | CorpusSpec | None = None, strict: bool = True
) -> tuple[list[DocumentSentence], ReadReport, AlignmentReport]:
    """:func:`~adabiobert.corpora.pubtator.read_pubtator` then :func:`to_sentences`.

    Raises:
        CorpusFormatError: as ``read_pubtator``.
    """
    documents, read_report = read_pubtator(path, corpus=corpus, strict=strict)
    sentences, alignment = to_sentences(documents, read_report.annotated_types, read_report.corpus)
    return sentences, read_report, alignment


@dataclass
class _Counts:
    mentions: int = 0
    tagged: int = 0
    counted: dict[str, int] = field(default_factory=dict)
    examples: dict[str, str] = field(default_factory=dict)

    def count(self, reason: str, document: PubTatorDocument, mention: Mention) -> None:
        self.counted[reason] = self.counted.get(reason, 0) + 1
        self.examples.setdefault(reason, f"{document.pmid} {mention.start}-{mention.end} {mention.text!r} ({mention.type})")

    def report(self, corpus: str, documents: int, sentences: int) -> AlignmentReport:
        return AlignmentReport(
            corpus=corpus, documents=documents, sentences=sentences, mentions=self.mentions, tagged=self.tagged,
            crossing_sentence=self.counted.get(CROSSING_SENTENCE, 0), without_words=self.counted.get(WITHOUT_WORDS, 0),
            overlapping=self.counted.get(OVERLAPPING, 0), duplicates=self.counted.get(DUPLICATE, 0),
            off_word_boundary=self.counted.get(OFF_WORD_BOUNDARY, 0), examples=dict(self.examples),
        )


def _document_sentences(
    document: PubTatorDocument, types: frozenset[str], corpus: str, counts: _Counts
) -> list[DocumentSentence]:
    text_sentences = document_sentences(document)
    words = [(index, word) for index, sentence in enumerate(text_sentences) for word in sentence.words]
    starts = [word.start for _, word in words]
    ends = [word.end for _, word in words]
    # Per sentence: (mention, first word, end word) in sentence word indices.
    placed: list[list[tuple[Mention, int, int]]] = [[] for _ in text_sentences]
    first_word_of = [0]
    for sentence in text_sentences:
        first_word_of.append(first_word_of[-1] + len(sentence.words))
    for mention in document.mentions:
        counts.mentions += 1
        first = bisect.bisect_right(ends, mention.start)  # the first word ending after the mention starts
        last = bisect.bisect_left(starts, mention.end) - 1  # the last word starting before it ends
        if first > last:
            counts.count(WITHOUT_WORDS, document, mention)
            continue
        sentence_index = words[first][0]
        if words[last][0] != sentence_index:
            counts.count(CROSSING_SENTENCE, document, mention)
            continue
        if starts[first] != mention.start or ends[last] != mention.end:
            counts.count(OFF_WORD_BOUNDARY, document, mention)
        offset = first_word_of[sentence_index]
        placed[sentence_index].append((mention, first - offset, last + 1 - offset))
    result = []
    for sentence, mentions in zip(text_sentences, placed):
        spans = _resolve_overlaps(document, mentions, counts)
        counts.tagged += len(spans)
        result.append(DocumentSentence(
            words=tuple(w.text for w in sentence.words),
            tags=tuple(spans_to_tags(spans, len(sentence.words))),
            corpus=corpus, pmid=document.pmid, annotated_types=types,
            starts=tuple(w.start for w in sentence.words), ends=tuple(w.end for w in sentence.words),
        ))
    return result


def _resolve_overlaps(
    document: PubTatorDocument, mentions: Sequence[tuple[Mention, int, int]], counts: _Counts
) -> list[Span]:
    """The spans to tag in one sentence: longest first (words, then characters, then file order)."""
    kept: list[Span] = []
    taken: set[int] = set()
    order = sorted(range(len(mentions)), key=lambda i: (
        -(mentions[i][2] - mentions[i][1]), -(mentions[i][0].end - mentions[i][0].start), i))
    for i in order:
        mention, start, end = mentions[i]
        span = Span(start, end, mention.type)
        if span in kept:
            counts.count(DUPLICATE, document, mention)
        elif taken.intersection(range(start, end)):
            counts.count(OVERLAPPING, document, mention)
        else:
            kept.append(span)
            taken.update(range(start, end))
    return kept
