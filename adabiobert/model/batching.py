"""Sentences to padded tensors, and batches formed by a subword budget.

A batch holds B sentences cut into N >= B encoder windows. ``word_index[b, w]`` is the flat
position (window * window_length + subword) of word w's first subword in the window chosen for
it, so one gather turns encoder output into per-word features, windows stitched back.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import torch

from adabiobert.model.subwords import EncodedWords
from adabiobert.model.word_vectors import PAD_ID


@dataclass(frozen=True)
class Example:
    """One sentence ready for the model: its windows, word-vector rows and (for training) tags."""

    encoded: EncodedWords
    word_vector_ids: tuple[int, ...]
    tag_ids: tuple[int, ...] | None = None
    annotated_types: frozenset[str] | None = None
    """The entity types its corpus annotates (a sentence of a mix, ``corpora.mix``): it is scored
    on these types only. None: every type of the label set."""
    allowed_tags: torch.Tensor | None = field(default=None, compare=False)
    """(words, tags) bool, the tags each word may take under its corpus's partial annotation
    (``model.partial_annotation.allowed_tags``); None: its tags, one per word."""

    @property
    def num_words(self) -> int:
        return self.encoded.num_words

    @property
    def num_subwords(self) -> int:
        return sum(len(w) for w in self.encoded.windows)


def collate(examples: Sequence[Example], pad_subword_id: int) -> dict[str, torch.Tensor]:
    """Pad a batch.

    Returns:
        ``input_ids``, ``attention_mask``: (windows, window_length);
        ``word_index``: (batch, words) flat indices into (windows * window_length);
        ``word_mask``: (batch, words) bool, True on real words;
        ``word_vector_ids``: (batch, words);
        ``tags``: (batch, words), only when every example has tags (0 on padding);
        ``allowed_tags``: (batch, words, tags) bool, only with ``tags`` and when some example has
        ``allowed_tags`` (one tag per word, its own, for the others; False on padding).
    """
    if not examples or any(e.num_words == 0 for e in examples):
        raise ValueError("a batch needs at least one example, each with at least one word")
    windows = [w for e in examples for w in e.encoded.windows]
    window_length = max(len(w) for w in windows)
    max_words = max(e.num_words for e in examples)

    input_ids = torch.full((len(windows), window_length), pad_subword_id, dtype=torch.long)
    attention_mask = torch.zeros((len(windows), window_length), dtype=torch.long)
    for row, window in enumerate(windows):
        input_ids[row, : len(window)] = torch.tensor(window, dtype=torch.long)
        attention_mask[row, : len(window)] = 1

    word_index = torch.zeros((len(examples), max_words), dtype=torch.long)
    word_mask = torch.zeros((len(examples), max_words), dtype=torch.bool)
    word_vector_ids = torch.full((len(examples), max_words), PAD_ID, dtype=torch.long)
    first_window = 0
    for b, example in enumerate(examples):
        n = example.num_words
        rows = torch.tensor(example.encoded.word_window, dtype=torch.long) + first_window
        positions = torch.tensor(example.encoded.word_position, dtype=torch.long)
        word_index[b, :n] = rows * window_length + positions
        word_mask[b, :n] = True
        word_vector_ids[b, :n] = torch.tensor(example.word_vector_ids, dtype=torch.long)
        first_window += len(example.encoded.windows)

    batch = {
        "input_ids": input_ids,
        "attention_mask": attention_mask,
        "word_index": word_index,
        "word_mask": word_mask,
        "word_vector_ids": word_vector_ids,
    }
    if all(e.tag_ids is not None for e in examples):
        tags = torch.zeros((len(examples), max_words), dtype=torch.long)
        for b, example in enumerate(examples):
            tags[b, : example.num_words] = torch.tensor(example.tag_ids, dtype=torch.long)
        batch["tags"] = tags
        masks = [e.allowed_tags for e in examples if e.allowed_tags is not None]
        if masks:
            allowed = torch.zeros((len(examples), max_words, masks[0].shape[1]), dtype=torch.bool)
            for b, example in enumerate(examples):
                n = example.num_words
                if example.allowed_tags is not None:
                    allowed[b, :n] = example.allowed_tags
                else:  # fully annotated: its own tag only
                    allowed[b, torch.arange(n), tags[b, :n]] = True
            batch["allowed_tags"] = allowed  # (batch, words, tags)
    return batch


def budget_batches(examples: Sequence[Example], subword_budget: int, max_sentences: int = 256) -> list[list[int]]:
    """Indices of ``examples`` grouped into batches of similar length.

    Sentences are sorted by subword count, so padding stays small; a batch grows while
    (windows x longest window) stays within ``subword_budget`` and it has at most
    ``max_sentences`` sentences. A sentence larger than the budget gets a batch of its own.
    """
    order = sorted(range(len(examples)), key=lambda i: examples[i].num_subwords)
    batches: list[list[int]] = []
    current: list[int] = []
    windows = longest = 0
    for index in order:
        encoded = examples[index].encoded
        new_windows = windows + len(encoded.windows)
        new_longest = max(longest, max(len(w) for w in encoded.windows))
        if current and (new_windows * new_longest > subword_budget or len(current) >= max_sentences):
            batches.append(current)
            current, new_windows, new_longest = [], len(encoded.windows), max(len(w) for w in encoded.windows)
        current.append(index)
        windows, longest = new_windows, new_longest
    if current:
        batches.append(current)
    return batches


def move_to(batch: dict[str, torch.Tensor], device: torch.device) -> dict[str, torch.Tensor]:
    return {k: v.to(device, non_blocking=True) for k, v in batch.items()}
