"""Word2Vec on PMC text: the sentence filter and gensim training, without Ray.

``adabiobert.distributed.word2vec`` runs :func:`kept_sentence_lines` over the shards on
Ray Data and streams the kept sentences to a line corpus (one sentence per line, words joined by
single spaces); :func:`train_vectors` then trains gensim on that file with ``corpus_file=``, which
lets every worker thread read its own part of the file instead of sharing one Python iterator.
On the project's 2-core machine the two modes were equal within noise (``docs/benchmarks.md``,
"Word2Vec build (issue 3)"); the file mode is kept because only it scales with more cores.

Words are the strings of :func:`adabiobert.text.split_sentences`, never lower-cased: the tagger
looks a word up as written first and lower-cased second, so both forms must be trainable.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from gensim.models import KeyedVectors, Word2Vec

from adabiobert.errors import ConfigError
from adabiobert.job_configs import Word2VecConfig
from adabiobert.pmc.lexicon import Lexicon
from adabiobert.text import split_sentences

VECTORS_FILE = "vectors.kv"
"""Name of the saved :class:`gensim.models.KeyedVectors` (``KeyedVectors.load`` reads it)."""

STATS_FILE = "word2vec_stats.json"
"""Name of the build's statistics file, beside the vectors."""


def kept_sentence_lines(texts: Iterable[str], lexicon: Lexicon) -> tuple[int, list[str]]:
    """Split ``texts`` (an article's, ``adabiobert.pmc.shards.article_sections``) into sentences
    and keep those that mention a lexicon term.

    Returns:
        ``(sentences seen, kept lines)``; a line is the sentence's words joined by single spaces,
        case kept.
    """
    seen = 0
    lines: list[str] = []
    for text in texts:
        for sentence in split_sentences(text):
            seen += 1
            words = [word.text for word in sentence.words]
            if lexicon.matches_words(words):
                lines.append(" ".join(words))
    return seen, lines


class LineSentences:
    """A line corpus read back as lists of words, restartable (gensim iterates it per epoch)."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)

    def __iter__(self) -> Iterator[list[str]]:
        with open(self.path, encoding="utf-8") as handle:
            for line in handle:
                words = line.split()
                if words:
                    yield words


def train_vectors(corpus_file: str | Path, config: Word2VecConfig) -> KeyedVectors:
    """Train Word2Vec on a line corpus with gensim's ``corpus_file`` mode.

    Raises:
        ConfigError: no word of the corpus occurs ``min_count`` times (nothing to train).
    """
    _check_vocabulary(LineSentences(corpus_file), config)
    model = Word2Vec(corpus_file=str(corpus_file), **_gensim_arguments(config))
    return model.wv


def train_vectors_from_iterable(sentences: Iterable[list[str]], config: Word2VecConfig) -> KeyedVectors:
    """The same training from a restartable iterable of word lists (the slower path, kept for
    the benchmark and for in-memory callers)."""
    _check_vocabulary(sentences, config)
    model = Word2Vec(sentences=sentences, **_gensim_arguments(config))
    return model.wv


def _gensim_arguments(config: Word2VecConfig) -> dict[str, Any]:
    return {
        "vector_size": config.vector_size,
        "window": config.window,
        "min_count": config.min_count,
        "epochs": config.epochs,
        "sg": int(config.skip_gram),
        "seed": config.seed,
        "workers": config.resolved_workers(),
        "hashfxn": stable_hash,
    }


def stable_hash(text: str) -> int:
    """gensim seeds each initial vector with ``hashfxn(word + str(seed))``; Python's ``hash`` of
    a string changes per process (PYTHONHASHSEED), CRC-32 does not."""
    return zlib.crc32(text.encode("utf-8"))


def _check_vocabulary(sentences: Iterable[list[str]], config: Word2VecConfig) -> None:
    """Fail with a clear message before gensim does with an obscure one."""
    counts: dict[str, int] = {}
    for words in sentences:
        for word in words:
            counts[word] = counts.get(word, 0) + 1
            if counts[word] >= config.min_count:
                return
    raise ConfigError(
        f"no word occurs min_count={config.min_count} times in the corpus ({len(counts)} distinct words): "
        "nothing to train; add shards, widen the lexicon or lower min_count"
    )


def save_vectors(vectors: KeyedVectors, folder: str | Path) -> Path:
    """Save ``vectors`` as ``<folder>/vectors.kv`` (large arrays go to ``vectors.kv.*.npy``
    beside it, which ``KeyedVectors.load`` finds); returns the path."""
    path = Path(folder) / VECTORS_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    vectors.save(str(path))
    return path
