"""Words to subword windows, and where each word's first subword sits in them.

The model sees one position per WORD: the encoder output of the word's first subword. A
sentence whose subwords do not fit the encoder is cut into overlapping windows; each word is
then read from the window in which it has the most context on both sides (the "stitch"), so
nothing is truncated and every word is scored exactly once.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class EncodedWords:
    """A sentence as encoder windows.

    Attributes:
        windows: subword ids per window, with the special tokens (``[CLS] ... [SEP]``).
        word_window: for each word, the window it is read from.
        word_position: for each word, the index of its first subword inside that window.
    """

    windows: tuple[tuple[int, ...], ...]
    word_window: tuple[int, ...]
    word_position: tuple[int, ...]

    @property
    def num_words(self) -> int:
        return len(self.word_window)


class SubwordEncoder:
    """Maps words to subword windows with a fast tokenizer, caching each distinct word.

    Args:
        tokenizer: a Hugging Face tokenizer with ``cls_token_id``, ``sep_token_id`` and
            ``unk_token_id``.
        max_subwords: window length, special tokens included.
        overlap: subwords shared by consecutive windows.
    """

    def __init__(self, tokenizer, max_subwords: int, overlap: int) -> None:
        if max_subwords < 4:
            raise ValueError(f"max_subwords must be at least 4, got {max_subwords}")
        if not 0 <= overlap < (max_subwords - 2) // 2 + 1:
            raise ValueError(f"overlap {overlap} is too large for windows of {max_subwords}")
        self.tokenizer = tokenizer
        self.max_subwords = max_subwords
        self.overlap = overlap
        self._content = max_subwords - 2
        self._cache: dict[str, tuple[int, ...]] = {}

    def subwords(self, words: Sequence[str]) -> list[tuple[int, ...]]:
        """Subword ids of each word (at least one: an unknown piece for words the tokenizer drops)."""
        missing = [w for w in dict.fromkeys(words) if w not in self._cache]
        if missing:
            ids = self.tokenizer(missing, add_special_tokens=False)["input_ids"]
            unk = (self.tokenizer.unk_token_id,)
            for word, pieces in zip(missing, ids):
                # A word longer than a window keeps its first pieces: only the first is read.
                self._cache[word] = tuple(pieces[: self._content]) or unk
        return [self._cache[w] for w in words]

    def encode(self, words: Sequence[str]) -> EncodedWords:
        """Cut a sentence into windows and pick, for each word, the window to read it from."""
        pieces = self.subwords(words)
        spans = plan_windows([len(p) for p in pieces], self._content, self.overlap)
        cls, sep = self.tokenizer.cls_token_id, self.tokenizer.sep_token_id
        windows = []
        for start, end in spans:
            windows.append((cls, *[i for p in pieces[start:end] for i in p], sep))
        first = [0]  # first[i]: subwords before word i in the sentence
        for p in pieces:
            first.append(first[-1] + len(p))
        word_window, word_position = [], []
        for index in range(len(words)):
            window = _best_window(index, spans)
            word_window.append(window)
            word_position.append(1 + first[index] - first[spans[window][0]])  # 1: after [CLS]
        return EncodedWords(tuple(windows), tuple(word_window), tuple(word_position))


def plan_windows(lengths: Sequence[int], capacity: int, overlap: int) -> list[tuple[int, int]]:
    """Word ranges ``[start, end)`` of the windows covering a sentence.

    Args:
        lengths: subwords per word, each between 1 and ``capacity``.
        capacity: subwords per window without the special tokens.
        overlap: how many subwords (at most) the next window re-reads from the previous one.

    Returns:
        One range for a sentence that fits; otherwise consecutive ranges that cover every word,
        each fitting ``capacity``, each starting after the previous one's start.
    """
    if not lengths:
        return [(0, 0)]
    windows = []
    start = 0
    while True:
        end, used = start, 0
        while end < len(lengths) and used + lengths[end] <= capacity:
            used += lengths[end]
            end += 1
        windows.append((start, end))
        if end == len(lengths):
            return windows
        # Step back from `end` while the re-read part stays within `overlap` subwords.
        next_start, reread = end, 0
        while next_start - 1 > start and reread + lengths[next_start - 1] <= overlap:
            next_start -= 1
            reread += lengths[next_start]
        start = next_start


def _best_window(word: int, spans: Sequence[tuple[int, int]]) -> int:
    """The window in which ``word`` has the most words of context on its nearer side."""
    best, best_margin = 0, -1
    for index, (start, end) in enumerate(spans):
        if start <= word < end:
            margin = min(word - start, end - 1 - word)
            if margin > best_margin:
                best, best_margin = index, margin
    return best
