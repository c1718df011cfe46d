"""Gene, disease and phenotype terms, found in text on word boundaries (Aho-Corasick).

The Word2Vec build keeps only sentences that mention a term, so the vectors are trained on
biomedical sentences. Terms come from DisGeNET-style TSV files (``geneSymbol`` and
``diseaseName`` columns, chosen by name), HPO-style ``phenotypes.tsv`` (``term`` column), plain
lists (one term per line), or the entity mentions of an IOB training corpus.

Matching rules:

- Terms and text are both cut into words by :func:`adabiobert.text.tokenize_words`, the
  project's one tokenizer, and compared as words joined by single spaces. So a match always
  starts and ends on a word boundary, and ``IL-2`` matches ``IL-2`` and ``IL - 2`` alike, but
  ``IL`` does not match inside ``ILK``.
- Case: gene symbols (the ``geneSymbol`` column) always match case-sensitively, because HGNC
  symbols are case-significant and many spell English words (``SET``, ``MAX``, ``CAT``,
  ``REST``). Any other term of at most :data:`SHORT_TERM_MAX_CHARS` (3) characters matches
  case-sensitively too: those are abbreviations (``AML``, ``CKD``, ``MI``) that would otherwise
  match ordinary words. All other terms match case-insensitively.
- Terms without a letter or digit are ignored, and so is the HPO root term ``All``
  (:data:`EXCLUDED_TERMS`), which is not a phenotype and would match any sentence opening "All".
"""

from __future__ import annotations

import csv
import os
from collections.abc import Iterable, Sequence
from pathlib import Path

import ahocorasick

from adabiobert.errors import AdaBioBertError
from adabiobert.text import tokenize_words

SHORT_TERM_MAX_CHARS = 3
"""Terms this short (in characters) match case-sensitively."""

EXCLUDED_TERMS = frozenset({"All"})
"""Terms never added: the HPO root term."""

GENE_COLUMNS = ("geneSymbol",)
"""TSV columns whose values are gene symbols (always case-sensitive)."""

NAME_COLUMNS = ("diseaseName", "term")
"""TSV columns whose values are disease or phenotype names."""

DEFAULT_FILES = ("gene_disease_associations.tsv", "phenotypes.tsv")
"""The files of the offline default lexicon (``../shared/lexicon``)."""

LEXICON_ENV = "ADABIOBERT_LEXICON"
"""Environment variable naming the folder of the default lexicon."""


class LexiconFormatError(AdaBioBertError):
    """A lexicon file that cannot be read, with its path and 1-based line."""

    def __init__(self, path: str, line: int, message: str) -> None:
        self.path = str(path)
        self.line = line
        self.reason = message
        super().__init__(f"{self.path}:{line}: {message}")


class Lexicon:
    """A set of terms and an Aho-Corasick matcher over them.

    Args:
        terms: names, matched case-insensitively unless at most
            :data:`SHORT_TERM_MAX_CHARS` characters long.
        case_sensitive_terms: terms always matched exactly (gene symbols).
    """

    def __init__(self, terms: Iterable[str] = (), case_sensitive_terms: Iterable[str] = ()) -> None:
        self._terms: list[str] = []
        self._case_sensitive_terms: list[str] = []
        self._exact = ahocorasick.Automaton()
        self._folded = ahocorasick.Automaton()
        for term in case_sensitive_terms:
            self._add(term, case_sensitive=True)
        for term in terms:
            self._add(term, case_sensitive=len(term.strip()) <= SHORT_TERM_MAX_CHARS)
        for automaton in (self._exact, self._folded):
            automaton.make_automaton()

    def _add(self, term: str, case_sensitive: bool) -> None:
        term = term.strip()
        key = _word_line([w.text for w in tokenize_words(term)])
        if not key or term in EXCLUDED_TERMS or not any(ch.isalnum() for ch in key):
            return
        automaton = self._exact if case_sensitive else self._folded
        key = key if case_sensitive else _lower(key)
        if key not in automaton:
            automaton.add_word(key, (len(key), term))
            (self._case_sensitive_terms if case_sensitive else self._terms).append(term)

    def __len__(self) -> int:
        return len(self._terms) + len(self._case_sensitive_terms)

    def __reduce__(self):
        # Automata are rebuilt on unpickling (Ray ships the lexicon to its workers this way).
        return (Lexicon, (list(self._terms), list(self._case_sensitive_terms)))

    # -- construction -------------------------------------------------------------------------
    @classmethod
    def from_disgenet_tsv(cls, paths: Iterable[str | Path]) -> Lexicon:
        """Terms from DisGeNET-style TSV files, columns chosen by name, other columns ignored.

        Each file must have at least one of ``geneSymbol`` (gene symbols), ``diseaseName``
        (DisGeNET's ``curated_gene_disease_associations.tsv``) or ``term`` (an HPO-style
        ``phenotypes.tsv``) in its header line.

        Raises:
            LexiconFormatError: a header without any of those columns, or a row shorter than
                the header (naming the file and line).
        """
        genes: list[str] = []
        names: list[str] = []
        for path in paths:
            with open(path, encoding="utf-8", newline="") as handle:
                rows = csv.reader(handle, delimiter="\t", quoting=csv.QUOTE_NONE)
                header = next(rows, [])
                gene_columns = [header.index(c) for c in GENE_COLUMNS if c in header]
                name_columns = [header.index(c) for c in NAME_COLUMNS if c in header]
                if not gene_columns and not name_columns:
                    raise LexiconFormatError(
                        str(path), 1, f"no column named {', '.join(GENE_COLUMNS + NAME_COLUMNS)} (found {header})"
                    )
                needed = max(gene_columns + name_columns)
                for line, row in enumerate(rows, start=2):
                    if not row:
                        continue
                    if len(row) <= needed:
                        raise LexiconFormatError(str(path), line, f"{len(row)} columns, the header has {len(header)}")
                    genes.extend(row[i] for i in gene_columns if row[i].strip())
                    names.extend(row[i] for i in name_columns if row[i].strip())
        return cls(names, case_sensitive_terms=genes)

    @classmethod
    def from_term_lists(cls, paths: Iterable[str | Path]) -> Lexicon:
        """Terms from plain text files, one per line; blank lines and ``#`` comments skipped."""
        terms: list[str] = []
        for path in paths:
            with open(path, encoding="utf-8") as handle:
                terms.extend(t.strip() for t in handle if t.strip() and not t.lstrip().startswith("#"))
        return cls(terms)

    @classmethod
    def from_mentions(
        cls, sentences: Iterable[tuple[Sequence[str], Sequence[str]]], entity_types: Iterable[str] | None = None
    ) -> Lexicon:
        """Terms from the entity mentions of an IOB corpus (the fallback without lexicon files).

        Args:
            sentences: ``(words, tags)`` pairs with IOB tags (``B-Disease``, ``I-Disease``,
                ``O``); an ``I-`` tag that does not continue a mention of its type starts one.
            entity_types: keep only mentions of these types (all when None).

        Raises:
            ValueError: a pair whose words and tags differ in length (naming its index).
        """
        wanted = None if entity_types is None else set(entity_types)
        terms: list[str] = []
        for index, (words, tags) in enumerate(sentences):
            if len(words) != len(tags):
                raise ValueError(f"sentence {index}: {len(words)} words but {len(tags)} tags")
            for start, end, kind in _iob_mentions(tags):
                if wanted is None or kind in wanted:
                    terms.append(_word_line(words[start:end]))
        return cls(terms)

    @classmethod
    def from_files(cls, paths: Iterable[str | Path]) -> Lexicon:
        """Terms from a mix of files and folders: ``.tsv`` files are read by column name
        (:meth:`from_disgenet_tsv`), other files as term lists, folders as their ``.tsv`` and
        ``.txt`` files."""
        tables: list[Path] = []
        lists: list[Path] = []
        for path in map(Path, paths):
            files = sorted(p for p in path.iterdir() if p.suffix in (".tsv", ".txt")) if path.is_dir() else [path]
            for file in files:
                (tables if file.suffix == ".tsv" else lists).append(file)
        by_columns = cls.from_disgenet_tsv(tables)
        plain = cls.from_term_lists(lists)
        return cls(by_columns._terms + plain._terms, by_columns._case_sensitive_terms + plain._case_sensitive_terms)

    @classmethod
    def default(cls, shared_root: str | Path | None = None) -> Lexicon | None:
        """The offline default lexicon: :data:`DEFAULT_FILES` from the folder named by
        ``$ADABIOBERT_LEXICON``, else from ``<shared_root>/lexicon``.

        Returns:
            The lexicon, or None when neither folder holds those files (the caller then falls
            back to :meth:`from_mentions`).

        Raises:
            FileNotFoundError: ``$ADABIOBERT_LEXICON`` is set but holds none of the files.
        """
        folder = os.environ.get(LEXICON_ENV)
        if folder is None and shared_root is None:
            return None
        folder_path = Path(folder) if folder else Path(shared_root) / "lexicon"
        files = [folder_path / name for name in DEFAULT_FILES if (folder_path / name).is_file()]
        if not files:
            if folder:
                raise FileNotFoundError(f"${LEXICON_ENV}={folder} holds none of {', '.join(DEFAULT_FILES)}")
            return None
        return cls.from_disgenet_tsv(files)

    # -- matching -----------------------------------------------------------------------------
    def mentions(self, text: str) -> list[tuple[int, int, str]]:
        """Term mentions in ``text``: leftmost-longest, not overlapping, in text order.

        Returns:
            ``(start, end, term)`` with ``text[start:end]`` the mention and ``term`` the lexicon
            entry as it was loaded.
        """
        words = tokenize_words(text)
        line = _word_line([w.text for w in words])
        first_word: dict[int, int] = {}  # start offset in ``line`` -> word index
        last_word: dict[int, int] = {}  # end offset in ``line`` -> word index
        position = 0
        for index, word in enumerate(words):
            first_word[position] = index
            position += len(word.text)
            last_word[position] = index
            position += 1
        chosen: list[tuple[int, int, str]] = []
        covered = 0
        for start, end, term in sorted(self._line_matches(line), key=lambda m: (m[0], -m[1])):
            if start >= covered:
                chosen.append((words[first_word[start]].start, words[last_word[end]].end, term))
                covered = end
        return chosen

    def matches(self, sentence_text: str) -> bool:
        """True when ``sentence_text`` mentions at least one term."""
        return self.matches_words([w.text for w in tokenize_words(sentence_text)])

    def matches_words(self, words: Sequence[str]) -> bool:
        """:meth:`matches` for a sentence already cut into words (no second tokenization)."""
        return next(self._line_matches(_word_line(words)), None) is not None

    def _line_matches(self, line: str):
        """Yield ``(start, end, term)`` character ranges of ``line`` on word boundaries."""
        for automaton, haystack in ((self._exact, line), (self._folded, _lower(line))):
            if not len(automaton):
                continue
            for last, (length, term) in automaton.iter(haystack):
                start, end = last - length + 1, last + 1
                if (start == 0 or line[start - 1] == " ") and (end == len(line) or line[end] == " "):
                    yield start, end, term


def _word_line(words: Sequence[str]) -> str:
    return " ".join(words)


def _lower(text: str) -> str:
    """Lower-case without changing the length (a few characters, like ``İ``, grow when
    lower-cased; those are left as they are so that offsets still line up)."""
    lowered = text.lower()
    if len(lowered) == len(text):
        return lowered
    return "".join(ch.lower() if len(ch.lower()) == 1 else ch for ch in text)


def _iob_mentions(tags: Sequence[str]) -> list[tuple[int, int, str]]:
    """``(start, end, type)`` word ranges of the mentions in an IOB tag sequence."""
    mentions = []
    start, kind = None, None
    for index, tag in enumerate(list(tags) + ["O"]):
        prefix, _, tag_type = tag.partition("-")
        continues = prefix == "I" and tag_type == kind
        if start is not None and not continues:
            mentions.append((start, index, kind))
            start, kind = None, None
        if prefix in ("B", "I") and not continues:
            start, kind = index, tag_type
    return mentions
