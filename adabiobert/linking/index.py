"""The linking index: compiled once from the configured vocabularies, loaded memory-mapped.

Per entity type it holds the concepts (CURIE, preferred name), every name and synonym as its
normalised key (:func:`~adabiobert.linking.normalise.normalise`) with the concepts behind it and
their rank (0 preferred name, 1 synonym, 2 weak synonym), an exact-match table (a sorted array of
64-bit key hashes, each hit checked against the stored key), and scispaCy's candidate generator:
character 3-gram TF-IDF vectors of the keys (``analyzer="char_wb"``: each word padded with one
space; raw counts times the smoothed IDF ``ln((1 + n) / (1 + df)) + 1``; L2-normalised rows),
searched by cosine similarity through an inverted file (one posting list of (key, weight) per
3-gram): candidates come from the mention's selective 3-grams, and the best 50 are scored exactly
(:meth:`TypeIndex.search`; scispaCy uses an approximate nearest-neighbour index instead).

Why scipy.sparse and not scikit-learn's ``TfidfVectorizer``: the same numbers (tested against it
in ``tests/test_linking_index.py``), but the vectorizer's vocabulary is a Python dict that pickles
and cannot be memory-mapped, and its ``char_wb`` analyzer is a Python loop per character; here the
3-grams of all names are cut at once in NumPy (a 3-gram is one int64: three 21-bit code points),
the vocabulary is a sorted int64 array, and the query is one sparse product. scipy is already
installed with gensim; it is now named in pyproject.toml because this module imports it.

The artifact is a folder::

    manifest.json                       format and linker versions, vocabularies' sha256, counts,
                                        every other file's sha256 (``files``)
    types/<Type>/concept_curies.{blob,offsets}.npy, concept_names.{blob,offsets}.npy
                 keys.{blob,offsets}.npy            unique normalised names (UTF-8)
                 key_hashes.npy, key_hash_rows.npy  sorted hashes and the key each belongs to
                 key_alias_ptr.npy, alias_concepts.npy, alias_ranks.npy   key -> (concept, rank)
                 concept_sources.npy                the selection each concept came from
                 ngram_codes.npy, idf.npy           the 3-gram vocabulary (sorted) and its IDF
                 postings_{indptr,indices,weights}.npy   (V, keys) CSR: the inverted file
                 vectors_{indptr,indices,weights}.npy    (keys, V) CSR: each name's vector

Every array is a plain ``.npy``, opened with ``np.load(mmap_mode="r")``: processes on one node
that load the same folder share its pages through the page cache instead of each holding a copy.
:func:`load_index` refuses an index whose format or normalisation differs from this code's, or
whose vocabularies' hashes differ from those the caller expects.
"""

from __future__ import annotations

import hashlib
import json
import math
import tempfile
import time
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import scipy.sparse as sparse

from adabiobert import storage
from adabiobert.errors import LinkingIndexError
from adabiobert.linking import LINKER_VERSION
from adabiobert.linking.config import LinkingConfig, TypeConcepts, read_vocabularies, select_concepts
from adabiobert.linking.normalise import NORMALISATION_VERSION, char_ngrams, normalise
from adabiobert.linking.vocabularies import Concept

INDEX_FORMAT = "adabiobert-linking-index"
INDEX_FORMAT_VERSION = 1
MANIFEST = "manifest.json"
NGRAM = 3
RANK_EXTRA, RANK_NAME, RANK_SYNONYM, RANK_WEAK = -1, 0, 1, 2
"""How a name belongs to its concept. An extra name (:class:`ExtraName`: a train mention) of a
vocabulary concept comes first: it says how the corpus's annotators link that very string."""
EXTRA_SOURCE = 127
"""The source of a concept known only from :class:`ExtraName` (after every configured selection)."""
CANDIDATE_DF_SHARE = 0.01
"""Candidates are gathered through the 3-grams found in at most this share of a type's names
(or ``CANDIDATE_DF_FLOOR``, whichever is larger) and the three rarest of the mention, then scored
exactly: the common 3-grams' posting lists are most of the work and rarely decide the best name."""
CANDIDATE_DF_FLOOR = 2000
CANDIDATES_SCORED = 50
MAX_TIED = 50
"""Tied exact matches compared by name similarity, at most (a symbol dozens of genes share)."""


@dataclass(frozen=True)
class ExtraName:
    """A name added to a type's dictionary at build time (BioSyn's protocol: the training split's
    mentions with their gold identifiers). ``curie`` may join several with ``|`` (a composite
    mention): it is then a concept of its own. An exact match on an extra name of a vocabulary
    concept wins over the vocabularies' own names (:meth:`TypeIndex.precedence`)."""

    entity_type: str
    name: str
    curie: str


@dataclass(frozen=True)
class Candidate:
    """A concept found for a key: its row in the type's concept table, the similarity (1.0 for an
    exact match), the rank of the name that matched, and the matched key's row."""

    concept: int
    score: float
    rank: int
    key: int


# ---- hashing of files and keys ----------------------------------------------------------------
def vocabulary_hashes(config: LinkingConfig) -> dict[str, str]:
    """Vocabulary name -> sha256 of its file, for every file ``config`` names: what a run passes to
    :func:`load_index` as ``expected_vocab_hashes``."""
    return {v.name: storage.file_sha256(v.path) for v in config.vocabularies}


def index_hash(manifest_bytes: bytes) -> str:
    """The hash of an index: the sha256 of its ``manifest.json`` as stored, which lists the sha256
    of every other file of the folder (``files``) beside the vocabularies' and the versions. Two
    builds differ in it (``built_at``), so a run that records it names the exact artifact."""
    return hashlib.sha256(manifest_bytes).hexdigest()


def combined_hash(hashes: Mapping[str, str]) -> str:
    """One sha256 over ``name=sha256`` lines in name order: the vocabularies as a whole."""
    return hashlib.sha256("".join(f"{n}={h}\n" for n, h in sorted(hashes.items())).encode()).hexdigest()


def _key_hash(keys: Iterable[str]) -> np.ndarray:
    return np.fromiter((int.from_bytes(hashlib.blake2b(k.encode(), digest_size=8).digest(), "little") for k in keys),
                       dtype=np.uint64)


# ---- strings as a blob and offsets ------------------------------------------------------------
class StringTable:
    """A list of strings stored as one UTF-8 byte array and int64 offsets (memory-mappable)."""

    def __init__(self, blob: np.ndarray, offsets: np.ndarray) -> None:
        self.blob = blob
        self.offsets = offsets

    @classmethod
    def build(cls, strings: Sequence[str]) -> StringTable:
        encoded = [s.encode() for s in strings]
        offsets = np.zeros(len(encoded) + 1, dtype=np.int64)
        np.cumsum([len(e) for e in encoded], out=offsets[1:])
        return cls(np.frombuffer(b"".join(encoded), dtype=np.uint8), offsets)

    def __len__(self) -> int:
        return len(self.offsets) - 1

    def __getitem__(self, row: int) -> str:
        return self.blob[self.offsets[row] : self.offsets[row + 1]].tobytes().decode()

    def save(self, folder: Path, name: str) -> None:
        np.save(folder / f"{name}.blob.npy", self.blob)
        np.save(folder / f"{name}.offsets.npy", self.offsets)

    @classmethod
    def load(cls, folder: Path, name: str) -> StringTable:
        return cls(_load(folder / f"{name}.blob.npy"), _load(folder / f"{name}.offsets.npy"))


def _load(path: Path) -> np.ndarray:
    return np.load(path, mmap_mode="r", allow_pickle=False)


# ---- the TF-IDF of a list of keys -------------------------------------------------------------
def ngram_codes(grams: Sequence[str]) -> np.ndarray:
    """3-grams as int64 codes (three 21-bit code points), the index's vocabulary entries."""
    return np.fromiter(((ord(g[0]) << 42) | (ord(g[1]) << 21) | ord(g[2]) for g in grams), dtype=np.int64, count=len(grams))


@dataclass(frozen=True)
class Tfidf:
    """The char_wb 3-gram TF-IDF of a list of keys, stored twice: by 3-gram (the inverted file,
    to find candidates) and by key (to score candidates exactly)."""

    codes: np.ndarray
    """(V,) int64, sorted: the 3-gram vocabulary."""
    idf: np.ndarray
    """(V,) float32."""
    by_ngram: sparse.csr_matrix
    """(V, keys): row ``c`` holds the L2-normalised TF-IDF weight of 3-gram ``c`` in each key."""
    by_key: sparse.csr_matrix
    """(keys, V): the same weights, one row per key."""


def tfidf(keys: Sequence[str]) -> Tfidf:
    """The char_wb 3-gram TF-IDF of ``keys`` (scikit-learn's ``TfidfVectorizer(analyzer="char_wb",
    ngram_range=(3, 3), lowercase=False)`` with its default smooth IDF and L2 norm).

    Args:
        keys: normalised, non-empty strings (single spaces between words).
    """
    padded = [f" {k.replace(' ', '  ')} " for k in keys]  # " a  b ": a 3-gram over "  " spans two words
    points = np.frombuffer("\x00".join(padded).encode("utf-32-le"), dtype=np.uint32).astype(np.int64)  # (chars,)
    starts = np.zeros(len(padded), dtype=np.int64)
    np.cumsum([len(p) + 1 for p in padded[:-1]], out=starts[1:])
    first, second, third = points[:-2], points[1:-1], points[2:]  # (windows,) each
    valid = (first != 0) & (second != 0) & (third != 0)
    valid &= ~((first == 32) & (second == 32)) & ~((second == 32) & (third == 32))
    window_rows = np.searchsorted(starts, np.flatnonzero(valid), side="right") - 1  # (grams,)
    grams = (first[valid] << 42) | (second[valid] << 21) | third[valid]  # (grams,)
    codes, columns = np.unique(grams, return_inverse=True)  # (V,), (grams,)
    pairs, counts = np.unique(window_rows * len(codes) + columns, return_counts=True)  # (nnz,) sorted by row
    rows, columns = pairs // len(codes), pairs % len(codes)
    document_frequency = np.bincount(columns, minlength=len(codes))
    idf = np.log((1 + len(keys)) / (1 + document_frequency)) + 1.0  # (V,) sklearn's smooth_idf
    weights = counts * idf[columns]
    norms = np.sqrt(np.bincount(rows, weights=weights**2, minlength=len(keys)))  # (keys,)
    weights = (weights / norms[rows]).astype(np.float32)
    if len(weights) >= 2**31:
        raise LinkingIndexError(f"{len(weights)} 3-gram entries do not fit int32 indices")
    key_indptr = np.zeros(len(keys) + 1, dtype=np.int32)
    np.cumsum(np.bincount(rows, minlength=len(keys)), out=key_indptr[1:])  # pairs are sorted by row
    by_key = sparse.csr_matrix((weights, columns.astype(np.int32), key_indptr), shape=(len(keys), len(codes)))
    order = np.argsort(columns, kind="stable")  # by column, rows stay ascending
    ngram_indptr = np.zeros(len(codes) + 1, dtype=np.int32)
    np.cumsum(document_frequency, out=ngram_indptr[1:])
    by_ngram = sparse.csr_matrix((weights[order], rows[order].astype(np.int32), ngram_indptr), shape=(len(codes), len(keys)))
    return Tfidf(codes, idf.astype(np.float32), by_ngram, by_key)


# ---- one type's section -----------------------------------------------------------------------
@dataclass
class _Aliases:
    keys: list[str] = field(default_factory=list)
    key_row: dict[str, int] = field(default_factory=dict)
    triples: list[tuple[int, int, int]] = field(default_factory=list)  # (key, rank, concept)
    empty_keys: int = 0

    def add(self, name: str, rank: int, concept: int) -> None:
        key = normalise(name)
        if not key:
            self.empty_keys += 1
            return
        row = self.key_row.setdefault(key, len(self.keys))
        if row == len(self.keys):
            self.keys.append(key)
        self.triples.append((row, rank, concept))


def _write_type(folder: Path, concepts: Sequence[Concept], sources: Sequence[int], extra: Sequence[tuple[int, str]] = ()) -> dict:
    """Compile one type's concepts (and the selection each came from, and the extra names as
    ``(concept row, name)``) into ``folder``; returns its counts for the manifest."""
    folder.mkdir(parents=True)
    np.save(folder / "concept_sources.npy", np.asarray(sources, dtype=np.int8).reshape(-1))
    aliases = _Aliases()
    for row, concept in enumerate(concepts):
        aliases.add(concept.name, RANK_NAME, row)
        for synonym in concept.synonyms:
            aliases.add(synonym, RANK_SYNONYM, row)
        for synonym in concept.weak_synonyms:
            aliases.add(synonym, RANK_WEAK, row)
    for row, name in extra:
        aliases.add(name, RANK_EXTRA, row)
    StringTable.build([c.curie for c in concepts]).save(folder, "concept_curies")
    StringTable.build([c.name for c in concepts]).save(folder, "concept_names")
    StringTable.build(aliases.keys).save(folder, "keys")
    triples = np.array(sorted(set(aliases.triples)), dtype=np.int64).reshape(-1, 3)  # (aliases, 3) by key, rank, concept
    first = np.ones(len(triples), dtype=bool)  # one entry per (key, concept): its best rank
    seen: set[tuple[int, int]] = set()
    for i, (key, _, concept) in enumerate(triples.tolist()):
        first[i] = (key, concept) not in seen
        seen.add((key, concept))
    triples = triples[first]
    key_alias_ptr = np.zeros(len(aliases.keys) + 1, dtype=np.int64)
    np.cumsum(np.bincount(triples[:, 0], minlength=len(aliases.keys)), out=key_alias_ptr[1:])
    np.save(folder / "key_alias_ptr.npy", key_alias_ptr)
    np.save(folder / "alias_ranks.npy", triples[:, 1].astype(np.int8))
    np.save(folder / "alias_concepts.npy", triples[:, 2].astype(np.int32))
    hashes = _key_hash(aliases.keys)
    order = np.argsort(hashes, kind="stable")
    np.save(folder / "key_hashes.npy", hashes[order])
    np.save(folder / "key_hash_rows.npy", order.astype(np.int32))
    vectors = tfidf(aliases.keys)
    np.save(folder / "ngram_codes.npy", vectors.codes)
    np.save(folder / "idf.npy", vectors.idf)
    for name, matrix in (("postings", vectors.by_ngram), ("vectors", vectors.by_key)):
        # int32 indices and indptr: scipy then uses the mapped arrays as they are, without a copy
        np.save(folder / f"{name}_indptr.npy", matrix.indptr.astype(np.int32))
        np.save(folder / f"{name}_indices.npy", matrix.indices.astype(np.int32))
        np.save(folder / f"{name}_weights.npy", matrix.data.astype(np.float32))
    return {"concepts": len(concepts), "keys": len(aliases.keys), "aliases": int(len(triples)),
            "names_without_key": aliases.empty_keys, "ngrams": int(len(vectors.codes)), "postings": int(vectors.by_ngram.nnz)}


def _with_extra_names(selected: dict[str, TypeConcepts], extra: Sequence[ExtraName]) -> tuple[dict[str, list[tuple[int, str]]], dict]:
    """The extra names as ``(concept row, name)`` per type, one concept per normalised name.

    A name given for several CURIEs (train annotations disagree) goes to the CURIE given most
    often (the first of those tied); an unknown CURIE becomes a concept of its own (named by its
    first name), after every configured selection.

    Returns:
        Per type the names to add, and counts for the manifest.
    """
    counts = {"names": len(extra), "keys": 0, "keys_with_disagreeing_ids": 0, "new_concepts": 0, "type_not_configured": 0}
    votes: dict[tuple[str, str], Counter] = {}
    first_name: dict[tuple[str, str], str] = {}
    for item in extra:
        if item.entity_type not in selected:
            counts["type_not_configured"] += 1
            continue
        key = normalise(item.name)
        if key:
            votes.setdefault((item.entity_type, key), Counter())[item.curie] += 1
            first_name.setdefault((item.entity_type, key), item.name)
    rows = {t: {c.curie: i for i, c in enumerate(s.concepts)} for t, s in selected.items()}
    added: dict[str, list[tuple[int, str]]] = {t: [] for t in selected}
    for (entity_type, key), curies in votes.items():
        counts["keys"] += 1
        counts["keys_with_disagreeing_ids"] += len(curies) > 1
        curie = curies.most_common(1)[0][0]  # Counter keeps first-seen order among ties
        chosen, at = selected[entity_type], rows[entity_type]
        if curie not in at:
            at[curie] = len(chosen.concepts)
            chosen.concepts.append(Concept(curie, first_name[(entity_type, key)]))
            chosen.sources.append(EXTRA_SOURCE)
            counts["new_concepts"] += 1
        added[entity_type].append((at[curie], first_name[(entity_type, key)]))
    return added, counts


def build_index(config: LinkingConfig, output: str, extra_names: Sequence[ExtraName] = (), release: str | None = None) -> dict:
    """Read the configured vocabularies and write the index folder ``output`` (local or ``s3://``).

    The folder is written aside and published whole (``storage.publish_dir``, ``manifest.json``
    last), so a reader finds the old index, none, or the new one, never a part.

    Args:
        config: which vocabularies serve which type.
        output: the index folder; replaced if it exists.
        extra_names: names added to the dictionaries (:class:`ExtraName`); their sha256 is recorded.
        release: a label recorded in the manifest (``2026-12``), for people; the index hash is the identity.

    Returns:
        The manifest written.

    Raises:
        VocabularyError: a vocabulary that cannot be read (with ``config.strict``, a bad row).
    """
    began = time.perf_counter()
    reads = read_vocabularies(config)
    selected = select_concepts(config, reads)
    extra, extra_counts = _with_extra_names(selected, extra_names) if extra_names else ({}, None)
    manifest = {
        "format": INDEX_FORMAT,
        "format_version": INDEX_FORMAT_VERSION,
        "linker_version": LINKER_VERSION,
        "normalisation_version": NORMALISATION_VERSION,
        "built_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "release": release,
        "tfidf": {"analyzer": "char_wb", "n": NGRAM, "tf": "raw counts", "idf": "ln((1+n)/(1+df))+1", "norm": "l2"},
        "vocabularies": {},
        "extra_names": None,
        "types": {},
        "config": asdict(config),
    }
    for vocabulary in config.vocabularies:
        read = reads[vocabulary.name]
        manifest["vocabularies"][vocabulary.name] = {
            "format": vocabulary.format, "path": str(Path(vocabulary.path).resolve()), "sha256": storage.file_sha256(vocabulary.path),
            "concepts": len(read.concepts), "rejected": dict(read.rejected), "filtered": dict(read.filtered), "examples": read.examples}
    if extra_names:
        lines = "".join(f"{e.entity_type}\t{e.name}\t{e.curie}\n" for e in extra_names)
        manifest["extra_names"] = {"count": len(extra_names), "sha256": hashlib.sha256(lines.encode()).hexdigest(), **extra_counts}
    manifest["vocabulary_hash"] = combined_hash({n: v["sha256"] for n, v in manifest["vocabularies"].items()})
    with tempfile.TemporaryDirectory(prefix="adabiobert-index-") as scratch:
        folder = Path(scratch, "index")
        for entity in config.types:
            chosen = selected[entity.entity_type]
            counts = _write_type(folder / "types" / entity.entity_type, chosen.concepts, chosen.sources,
                                 extra.get(entity.entity_type, ()))
            manifest["types"][entity.entity_type] = {"type_aliases": list(entity.aliases), **counts,
                                                     "left_out": dict(selected[entity.entity_type].left_out)}
        manifest["files"] = {path.relative_to(folder).as_posix(): storage.file_sha256(path)
                             for path in sorted(folder.rglob("*")) if path.is_file()}
        manifest["build_seconds"] = round(time.perf_counter() - began, 2)
        (folder / MANIFEST).write_text(json.dumps(manifest, indent=2, sort_keys=False) + "\n", encoding="utf-8")
        storage.publish_dir(folder, output, last=MANIFEST)
    return manifest


# ---- loading and searching --------------------------------------------------------------------
class TypeIndex:
    """One entity type's part of a loaded index (arrays memory-mapped)."""

    def __init__(self, entity_type: str, folder: Path) -> None:
        self.entity_type = entity_type
        self.curies = StringTable.load(folder, "concept_curies")
        self.names = StringTable.load(folder, "concept_names")
        self.sources = _load(folder / "concept_sources.npy")
        self.keys = StringTable.load(folder, "keys")
        self.key_hashes = _load(folder / "key_hashes.npy")
        self.key_hash_rows = _load(folder / "key_hash_rows.npy")
        self.key_alias_ptr = _load(folder / "key_alias_ptr.npy")
        self.alias_concepts = _load(folder / "alias_concepts.npy")
        self.alias_ranks = _load(folder / "alias_ranks.npy")
        self.ngram_codes = _load(folder / "ngram_codes.npy")
        self.idf = _load(folder / "idf.npy")
        self.postings = _load_csr(folder, "postings", (len(self.ngram_codes), len(self.keys)))  # (V, keys)
        self.vectors = _load_csr(folder, "vectors", (len(self.keys), len(self.ngram_codes)))  # (keys, V)
        self.document_frequency = np.diff(self.postings.indptr)  # (V,) small: computed once

    def concepts_of_key(self, key_row: int) -> list[tuple[int, int]]:
        """``(concept row, rank)`` of the concepts a key names, best first (:meth:`precedence`)."""
        start, end = self.key_alias_ptr[key_row], self.key_alias_ptr[key_row + 1]
        found = zip(self.alias_concepts[start:end].tolist(), self.alias_ranks[start:end].tolist())
        return sorted(found, key=lambda cr: self.precedence(*cr))

    def precedence(self, concept: int, rank: int) -> tuple[bool, int, int, int]:
        """The order of concepts that a name equally fits: an extra name of a vocabulary concept
        first, then the earlier selection (``sources``: MeSH descriptors before OMIM; concepts
        known only from extra names last), then the better rank (name, synonym, weak synonym),
        then concept order. An extra name re-orders the vocabulary's concepts (how the corpus links
        "alcohol"); it does not put an identifier from outside the vocabulary (a mouse gene in a
        human gene index) before one inside it."""
        source = int(self.sources[concept])
        return (not (rank == RANK_EXTRA and source != EXTRA_SOURCE), source, rank, concept)

    def find_key(self, key: str) -> int | None:
        """The row of a normalised key, or None when no name has it."""
        value = _key_hash([key])[0]
        low = np.searchsorted(self.key_hashes, value, side="left")
        high = np.searchsorted(self.key_hashes, value, side="right")
        for at in range(low, high):  # a hash collision is checked against the stored key
            row = int(self.key_hash_rows[at])
            if self.keys[row] == key:
                return row
        return None

    def exact(self, key: str) -> Candidate | None:
        """The best concept whose name normalises to ``key`` (score 1.0), or None.

        Concepts that tie on selection and rank (an alias symbol two genes share: ``p63`` of TP63
        and of CKAP4) are told apart by the 3-gram similarity of ``key`` to their preferred names;
        concept order decides what is left."""
        row = self.find_key(key)
        if row is None:
            return None
        found = self.concepts_of_key(row)
        best = self.precedence(*found[0])[:3]
        tied = [c for c, rank in found[:MAX_TIED] if self.precedence(c, rank)[:3] == best]
        concept = tied[0] if len(tied) == 1 else self._closest_name(key, tied)
        return Candidate(concept, 1.0, found[0][1], row)

    def _closest_name(self, key: str, concepts: list[int]) -> int:
        query = self.query_vectors([key])  # (1, V)
        rows = [self.find_key(normalise(self.names[c])) for c in concepts]
        similarity = [float((self.vectors[r] @ query.T).toarray()[0, 0]) if r is not None else 0.0 for r in rows]
        return concepts[max(range(len(concepts)), key=lambda i: (similarity[i], -i))]

    def query_vectors(self, keys: Sequence[str]) -> sparse.csr_matrix:
        """The L2-normalised TF-IDF rows of ``keys`` over this type's 3-grams ``(len(keys), V)``;
        3-grams no name has are left out (as scikit-learn's ``transform`` does)."""
        indptr, columns, values = [0], [], []
        for key in keys:
            grams = char_ngrams(key, NGRAM)
            found = np.zeros(0, dtype=np.int64)
            weights = np.zeros(0, dtype=np.float64)
            if grams and len(self.ngram_codes):
                codes = ngram_codes(grams)
                at = np.minimum(np.searchsorted(self.ngram_codes, codes), len(self.ngram_codes) - 1)
                found, counts = np.unique(at[self.ngram_codes[at] == codes], return_counts=True)
                weights = counts * self.idf[found].astype(np.float64)
                weights /= math.sqrt(float(np.dot(weights, weights))) or 1.0
            columns.append(found)
            values.append(weights)
            indptr.append(indptr[-1] + len(found))
        # int32 indices like the postings', so that the product does not copy them to int64
        return sparse.csr_matrix((np.concatenate(values).astype(np.float32), np.concatenate(columns).astype(np.int32),
                                  np.asarray(indptr, dtype=np.int32)), shape=(len(keys), len(self.ngram_codes)))

    def search(self, keys: Sequence[str], top_k: int = 10, exhaustive: bool = False) -> list[list[Candidate]]:
        """The ``top_k`` concepts by cosine similarity of their names' 3-gram TF-IDF to each key's.

        Candidates are the names that share one of the key's selective 3-grams
        (``CANDIDATE_DF_SHARE``), the ``CANDIDATES_SCORED`` best of them by that partial score are
        scored exactly; ``exhaustive`` scores every name that shares any 3-gram (slower; the
        benchmark compares the two).

        Args:
            keys: normalised mention texts.
            top_k: candidates kept per key (one per concept, through its best-scoring name).
            exhaustive: score every name instead of the selective candidates.

        Returns:
            Per key, candidates by descending score (ties: earlier selection, better rank, concept
            order); an empty list for a key that shares no 3-gram with any name.
        """
        if not keys or len(self.keys) == 0:
            return [[] for _ in keys]
        queries = self.query_vectors(keys)  # (keys, V)
        probe = queries if exhaustive else self._selective(queries)
        partial = (probe @ self.postings).tocsr()  # (keys, names): cosine, or its selective part
        shortlist = [self._best(partial, i, CANDIDATES_SCORED if not exhaustive else 3 * top_k) for i in range(len(keys))]
        if not exhaustive:
            owners = np.repeat(np.arange(len(keys)), [len(s) for s in shortlist])
            names = np.concatenate(shortlist) if shortlist else np.zeros(0, np.int64)
            exact = np.asarray(self.vectors[names].multiply(queries[owners]).sum(axis=1)).ravel()  # (candidates,)
            bounds = np.cumsum([0] + [len(s) for s in shortlist])
            scores = [exact[bounds[i] : bounds[i + 1]] for i in range(len(keys))]
        else:
            scores = [np.asarray(partial[i, s].todense()).ravel() if len(s) else np.zeros(0) for i, s in enumerate(shortlist)]
        return [self._rank(names, found, top_k) for names, found in zip(shortlist, scores)]

    def _selective(self, queries: sparse.csr_matrix) -> sparse.csr_matrix:
        """``queries`` without their common 3-grams, keeping at least the three rarest of each."""
        common = self.document_frequency > max(CANDIDATE_DF_SHARE * len(self.keys), CANDIDATE_DF_FLOOR)
        probe = queries.copy()
        for i in range(probe.shape[0]):
            start, end = probe.indptr[i], probe.indptr[i + 1]
            frequency = self.document_frequency[probe.indices[start:end]]
            drop = common[probe.indices[start:end]]
            drop[np.argsort(frequency, kind="stable")[:3]] = False
            probe.data[start:end][drop] = 0.0
        probe.eliminate_zeros()
        return probe

    @staticmethod
    def _best(scores: sparse.csr_matrix, row: int, count: int) -> np.ndarray:
        """The columns of the ``count`` largest entries of one row (any order)."""
        start, end = scores.indptr[row], scores.indptr[row + 1]
        data, columns = scores.data[start:end], scores.indices[start:end]
        if len(data) <= count:
            return columns.astype(np.int64)
        return columns[np.argpartition(-data, count - 1)[:count]].astype(np.int64)

    def _rank(self, names: np.ndarray, scores: np.ndarray, top_k: int) -> list[Candidate]:
        ranked: dict[int, Candidate] = {}
        for name, score in zip(names.tolist(), np.minimum(scores, 1.0).tolist()):
            for concept, rank in self.concepts_of_key(name):
                old = ranked.get(concept)
                if old is None or (-score, *self.precedence(concept, rank)) < (-old.score, *self.precedence(concept, old.rank)):
                    ranked[concept] = Candidate(concept, score, rank, name)
        order = sorted(ranked.values(), key=lambda c: (-c.score, *self.precedence(c.concept, c.rank)))
        return order[:top_k]


def _load_csr(folder: Path, name: str, shape: tuple[int, int]) -> sparse.csr_matrix:
    data, indices, indptr = (_load(folder / f"{name}_{part}.npy") for part in ("weights", "indices", "indptr"))
    return sparse.csr_matrix((data, indices, indptr), shape=shape, copy=False)


class LinkingIndex:
    """A loaded index: its manifest and one :class:`TypeIndex` per configured type."""

    def __init__(self, folder: Path, manifest: dict, keep_alive=None, index_hash: str | None = None) -> None:
        self.folder = folder
        self.manifest = manifest
        self.index_hash = index_hash
        """:func:`index_hash` of the manifest loaded (None when built from a dict)."""
        self.types = {name: TypeIndex(name, folder / "types" / name) for name in manifest["types"]}
        self._by_name = {n.casefold(): t for t, v in manifest["types"].items() for n in (t, *v["type_aliases"])}
        self._keep_alive = keep_alive  # a downloaded copy's temporary folder lives as long as the index

    @property
    def vocabulary_hashes(self) -> dict[str, str]:
        return {n: v["sha256"] for n, v in self.manifest["vocabularies"].items()}

    def type_index(self, entity_type: str) -> TypeIndex | None:
        """The part of the index for a mention type (by name or alias, ignoring case), or None."""
        name = self._by_name.get(entity_type.casefold())
        return None if name is None else self.types[name]


def load_index(path: str, expected_vocab_hashes: Mapping[str, str] | str | None = None) -> LinkingIndex:
    """Open an index folder (local, or ``s3://`` downloaded to a temporary folder first).

    Args:
        path: the folder :func:`build_index` wrote.
        expected_vocab_hashes: the vocabularies the run expects: name -> sha256
            (:func:`vocabulary_hashes`), or their :func:`combined_hash`; None accepts any.

    Returns:
        The index, its arrays memory-mapped read-only.

    Raises:
        LinkingIndexError: not an index, another format or normalisation version, or built from
            other vocabularies (the message names both hashes, and each vocabulary that differs).
    """
    copy = storage.local_folder(path)
    folder = Path(copy.path)
    manifest_path = folder / MANIFEST
    if not manifest_path.is_file():
        raise LinkingIndexError(f"{path}: no {MANIFEST}; not a linking index (build one with build_index)")
    data = manifest_path.read_bytes()
    manifest = check_manifest(path, data, expected_vocab_hashes)
    return LinkingIndex(folder, manifest, keep_alive=copy, index_hash=index_hash(data))


def check_manifest(path: str, data: bytes, expected_vocab_hashes: Mapping[str, str] | str | None = None) -> dict:
    """The manifest of the index at ``path`` (its bytes ``data``), checked as :func:`load_index`
    checks it (format, normalisation version, vocabularies).

    Raises:
        LinkingIndexError: see :func:`load_index`.
    """
    try:
        manifest = json.loads(data)
    except ValueError as error:
        raise LinkingIndexError(f"{path}: {MANIFEST} is not JSON ({error})") from None
    if manifest.get("format") != INDEX_FORMAT or manifest.get("format_version") != INDEX_FORMAT_VERSION:
        raise LinkingIndexError(f"{path}: format {manifest.get('format')!r} version {manifest.get('format_version')!r}; "
                                f"this code reads {INDEX_FORMAT!r} version {INDEX_FORMAT_VERSION}: rebuild the index")
    if manifest.get("normalisation_version") != NORMALISATION_VERSION:
        raise LinkingIndexError(f"{path}: built with normalisation version {manifest.get('normalisation_version')}, "
                                f"this code normalises with version {NORMALISATION_VERSION}: rebuild the index")
    found = {n: v["sha256"] for n, v in manifest["vocabularies"].items()}
    if expected_vocab_hashes is not None:
        _check_hashes(path, found, expected_vocab_hashes)
    return manifest


def _check_hashes(path: str, found: dict[str, str], expected: Mapping[str, str] | str) -> None:
    found_all = combined_hash(found)
    if isinstance(expected, str):
        if expected != found_all:
            raise LinkingIndexError(f"{path}: built from vocabularies with hash {found_all}, but the run expects {expected}; "
                                    f"rebuild the index from the run's vocabularies or point the run at the matching index")
        return
    if dict(expected) == found:
        return
    differ = [f"{n}: index {found.get(n, 'absent')} vs expected {expected.get(n, 'absent')}"
              for n in sorted(set(found) | set(expected)) if found.get(n) != expected.get(n)]
    raise LinkingIndexError(f"{path}: built from vocabularies with hash {found_all}, but the run expects "
                            f"{combined_hash(expected)} ({'; '.join(differ)}); rebuild the index from the run's "
                            f"vocabularies or point the run at the matching index")
