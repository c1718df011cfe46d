"""Sentence splitting and word tokenization with character offsets.

One tokenizer for the whole product: the Word2Vec corpus, the tagger's free-text input and the
annotation job all cut text into words here, so a word seen at training time is the same string
at tagging time. Words follow the convention of the IOB corpora (MTL-Bioinformatics-2016 /
BioBERT releases): a run of letters and digits is one word, and every other non-space character
is a word of its own (``"IL-2-induced"`` -> ``IL``, ``-``, ``2``, ``-``, ``induced``).

Sentences come from syntok's segmenter, which knows abbreviations such as "e.g." and "Fig.";
its own token rules are not used for words, only its sentence boundaries.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import syntok.segmenter as syntok_segmenter

# Letters and digits of any script form a word; anything else that is neither white space nor a
# control character stands alone. ``_`` counts as punctuation, as it does in the corpora.
_WORD_PATTERN = re.compile(r"[^\W_]+|[^\w\s\x00-\x1f\x7f-\x9f]|_")


@dataclass(frozen=True)
class Word:
    """A word and its place in the text it came from: ``text == source[start:end]``."""

    text: str
    start: int
    end: int


@dataclass(frozen=True)
class TextSentence:
    """A sentence as a character range of its source and the words inside it."""

    start: int
    end: int
    words: tuple[Word, ...]


def tokenize_words(text: str, offset: int = 0) -> list[Word]:
    """Cut ``text`` into words; offsets are shifted by ``offset``.

    Args:
        text: any string (control characters count as white space or punctuation).
        offset: added to every start and end, for words of a substring.

    Returns:
        The words in order, with ``source[start:end] == word.text`` when ``text`` is
        ``source[offset:]``.
    """
    return [Word(m.group(), m.start() + offset, m.end() + offset) for m in _WORD_PATTERN.finditer(text)]


def split_sentences(text: str) -> list[TextSentence]:
    """Split ``text`` into sentences of words, each with offsets into ``text``.

    Sentences that hold no word (only white space) are dropped; nothing else is.
    """
    sentences: list[TextSentence] = []
    for paragraph in syntok_segmenter.analyze(text):
        for syntok_sentence in paragraph:
            if not syntok_sentence:
                continue
            start = syntok_sentence[0].offset
            last = syntok_sentence[-1]
            end = last.offset + len(last.value)
            words = tuple(tokenize_words(text[start:end], offset=start))
            if words:
                sentences.append(TextSentence(start, end, words))
    return _cover_gaps(text, sentences)


def _cover_gaps(text: str, sentences: list[TextSentence]) -> list[TextSentence]:
    """Attach words syntok left between sentences to the preceding sentence.

    syntok skips a few characters it does not tokenize (some symbols and control characters);
    the words among them must not be lost, so they are re-attached here.
    """
    covered: list[TextSentence] = []
    cursor = 0
    for sentence in sentences:
        gap = tokenize_words(text[cursor:sentence.start], offset=cursor)
        if gap:
            if covered:
                previous = covered.pop()
                covered.append(TextSentence(previous.start, gap[-1].end, previous.words + tuple(gap)))
            else:
                sentence = TextSentence(gap[0].start, sentence.end, tuple(gap) + sentence.words)
        covered.append(sentence)
        cursor = sentence.end
    tail = tokenize_words(text[cursor:], offset=cursor)
    if tail:
        if covered:
            previous = covered.pop()
            covered.append(TextSentence(previous.start, tail[-1].end, previous.words + tuple(tail)))
        else:
            covered.append(TextSentence(tail[0].start, tail[-1].end, tuple(tail)))
    return covered
