"""Word2Vec features: a frozen table of word vectors and the word -> row lookup.

Row 0 is padding and row 1 the unknown word (its vector is learned by the model); the
KeyedVectors' words follow from row 2. A word is looked up as written, then lower-cased.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from adabiobert import storage
from adabiobert.errors import InputNotFoundError

PAD_ID = 0
UNKNOWN_ID = 1
_RESERVED = 2


@dataclass(frozen=True)
class WordVectors:
    """Words and their vectors (``vectors[i]`` belongs to ``words[i]``)."""

    words: tuple[str, ...]
    vectors: np.ndarray  # (vocabulary, dim) float32
    _ids: dict[str, int] = field(init=False, repr=False, compare=False)
    _lower_ids: dict[str, int] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.vectors.ndim != 2 or self.vectors.shape[0] != len(self.words):
            raise ValueError(f"{len(self.words)} words but vectors of shape {self.vectors.shape}")
        ids = {word: row + _RESERVED for row, word in enumerate(self.words)}
        lower_ids: dict[str, int] = {}
        for word, row in ids.items():
            lower_ids.setdefault(word.lower(), row)
        object.__setattr__(self, "_ids", ids)
        object.__setattr__(self, "_lower_ids", lower_ids)

    @property
    def dim(self) -> int:
        return int(self.vectors.shape[1])

    @property
    def table_size(self) -> int:
        """Rows of the model's embedding table: the reserved rows plus one per word."""
        return len(self.words) + _RESERVED

    def lookup(self, word: str) -> int:
        """The table row of ``word``: exact match, else lower-cased match, else unknown."""
        row = self._ids.get(word)
        if row is None:
            row = self._lower_ids.get(word.lower(), UNKNOWN_ID)
        return row

    def lookup_all(self, words: Sequence[str]) -> list[int]:
        return [self.lookup(w) for w in words]

    def table(self) -> np.ndarray:
        """The embedding table with the reserved rows (zeros) on top: (table_size, dim)."""
        table = np.zeros((self.table_size, self.dim), dtype=np.float32)
        table[_RESERVED:] = self.vectors
        return table

    @classmethod
    def from_keyed_vectors(cls, keyed_vectors) -> WordVectors:
        """From gensim ``KeyedVectors``; keys holding white space cannot be corpus words and are skipped."""
        keep = [i for i, key in enumerate(keyed_vectors.index_to_key) if not any(c.isspace() for c in str(key))]
        words = tuple(str(keyed_vectors.index_to_key[i]) for i in keep)
        vectors = np.asarray(keyed_vectors.vectors[keep], dtype=np.float32)
        return cls(words, vectors)

    @classmethod
    def load(cls, uri: str | Path) -> WordVectors:
        """Read gensim KeyedVectors, local or ``s3://``: a native ``.kv`` file (``KeyedVectors.save``,
        with the ``<name>.*.npy`` arrays gensim may put beside it), or the word2vec format
        (``.bin`` binary, ``.txt``/``.vec`` text).

        Raises:
            InputNotFoundError: (a ``FileNotFoundError``) naming the path.
        """
        from gensim.models import KeyedVectors

        uri = str(uri)
        try:
            copy = storage.local_file(uri, companions=True)
        except FileNotFoundError:
            raise InputNotFoundError(f"word vectors not found: {uri}; pass a gensim KeyedVectors file "
                                     "(jobs/build_word2vec.py writes <out>/vectors.kv)") from None
        with copy:
            path = Path(copy.path)
            if path.suffix in (".bin",):
                keyed = KeyedVectors.load_word2vec_format(str(path), binary=True)
            elif path.suffix in (".txt", ".vec"):
                keyed = KeyedVectors.load_word2vec_format(str(path), binary=False)
            else:
                keyed = KeyedVectors.load(str(path))
        return cls.from_keyed_vectors(keyed)
