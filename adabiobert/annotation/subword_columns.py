"""Encoded sentences as Arrow struct fields, and back: how subwords travel between job stages.

The annotation job tokenizes in its CPU split stage (``ExampleEncoder.encode``, the tagger's own
encoder loaded by ``checkpoint.load_bundle_encoder``) and ships each sentence's encoder windows,
word -> subword map and Word2Vec rows to the tagger actor in these fields; the actor turns them
back into :class:`~adabiobert.model.batching.Example` objects and never calls the tokenizer.
A sentence split without an encoder holds nulls in all four fields.
"""

from __future__ import annotations

from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from adabiobert.model.batching import Example
from adabiobert.model.subwords import EncodedWords

ENCODED_FIELDS = (
    pa.field("subword_windows", pa.list_(pa.list_(pa.int32()))),  # EncodedWords.windows, [CLS] ... [SEP]
    pa.field("word_window", pa.list_(pa.int32())),  # EncodedWords.word_window, one per word
    pa.field("word_position", pa.list_(pa.int32())),  # EncodedWords.word_position, one per word
    pa.field("word_vector_ids", pa.list_(pa.int32())),  # Example.word_vector_ids, one per word
)
"""The encoded-sentence fields of a sentence struct (all null when the split did not encode)."""

_NAMES = tuple(f.name for f in ENCODED_FIELDS)


def encoded_record(example: Example | None) -> dict[str, Any]:
    """The :data:`ENCODED_FIELDS` of one sentence (nulls for ``None``), to merge into its record."""
    if example is None:
        return dict.fromkeys(_NAMES)
    encoded = example.encoded
    return {
        "subword_windows": encoded.windows,
        "word_window": encoded.word_window,
        "word_position": encoded.word_position,
        "word_vector_ids": example.word_vector_ids,
    }


def examples_from_arrow(sentences: pa.StructArray) -> list[Example | None]:
    """The sentences of a struct array holding :data:`ENCODED_FIELDS`, as tagging examples.

    Returns:
        One ``Example`` per sentence (no tags), or ``None`` where the fields are null.

    Raises:
        ValueError: a sentence whose fields disagree on its number of words.
    """
    columns = [pc.struct_field(sentences, name).to_pylist() for name in _NAMES]
    examples: list[Example | None] = []
    for index, (windows, word_window, word_position, vector_ids) in enumerate(zip(*columns)):
        if windows is None:
            examples.append(None)
            continue
        if not len(word_window) == len(word_position) == len(vector_ids):
            raise ValueError(f"encoded sentence {index}: {len(word_window)} word windows, {len(word_position)} "
                             f"word positions and {len(vector_ids)} word-vector rows; expected one of each per word")
        encoded = EncodedWords(tuple(tuple(w) for w in windows), tuple(word_window), tuple(word_position))
        examples.append(Example(encoded, tuple(vector_ids)))
    return examples
