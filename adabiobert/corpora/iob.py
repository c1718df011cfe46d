"""The IOB corpora: one reader for their files and a registry of the named datasets.

Files follow the MTL-Bioinformatics-2016 collection (also shipped by BioBERT): one word per
line, the word in the first column and its tag in the last, sentences separated by blank lines,
one folder per dataset holding ``train.tsv``, ``devel.tsv`` and ``test.tsv``. Tags are checked
and, when a file is IOB1 or broken IOB2, repaired to IOB2 with a warning, so everything above
this module may assume valid IOB2.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from adabiobert.errors import CorpusError, CorpusFormatError, DatasetNotFoundError
from adabiobert.labels import LabelSet
from adabiobert.spans import OUTSIDE, repair_iob2, split_tag

DATA_ROOT_ENV = "ADABIOBERT_DATA_ROOT"
DOCSTART = "-DOCSTART-"

# The split files looked for, in order of preference.
SPLIT_FILES: dict[str, tuple[str, ...]] = {
    "train": ("train.tsv",),
    "dev": ("devel.tsv", "dev.tsv"),
    "test": ("test.tsv",),
}


class CorpusWarning(UserWarning):
    """A corpus file was read, but not as written (tags repaired)."""


@dataclass(frozen=True)
class Sentence:
    """One sentence of a corpus: its words and their IOB2 tags, as many of each."""

    words: tuple[str, ...]
    tags: tuple[str, ...]

    def __post_init__(self) -> None:
        assert len(self.words) == len(self.tags), (self.words, self.tags)


@dataclass(frozen=True)
class DatasetSpec:
    """A named dataset and where it lives under the data root."""

    name: str
    """The canonical name, as the paper writes it."""
    folder: str
    """The folder under the data root, as the MTL-Bioinformatics-2016 collection names it."""
    entity_types: tuple[str, ...]
    """The entity types its files use, sorted."""


DATASETS: dict[str, DatasetSpec] = {
    spec.name: spec
    for spec in (
        # The paper's eight.
        DatasetSpec("BC4CHEMD", "BC4CHEMD", ("Chemical",)),
        DatasetSpec("LINNAEUS", "linnaeus-IOB", ("Species",)),
        DatasetSpec("NCBI-disease", "NCBI-disease-IOB", ("Disease",)),
        DatasetSpec("BC5CDR", "BC5CDR-IOB", ("Chemical", "Disease")),
        DatasetSpec("JNLPBA", "JNLPBA", ("DNA", "RNA", "cell_line", "cell_type", "protein")),
        DatasetSpec("AnatEM", "AnatEM-IOB", ("Anatomy",)),
        DatasetSpec("BioNLP13GE", "BioNLP13GE-IOB", ("Protein",)),
        # Not in the MTL collection; the folder is the one BioBERT's data release uses.
        DatasetSpec("Species-800", "s800", ("Species",)),
        # Also in the collection.
        DatasetSpec("BC2GM", "BC2GM-IOB", ("GENE",)),
        DatasetSpec("BC5CDR-chem", "BC5CDR-chem-IOB", ("Chemical",)),
        DatasetSpec("BC5CDR-disease", "BC5CDR-disease-IOB", ("Disease",)),
    )
}


def _lookup_key(name: str) -> str:
    """Case, ``-``, ``_`` and spaces do not matter: ``ncbi_disease`` finds ``NCBI-disease``."""
    return "".join(c for c in name.casefold() if c not in "-_ ")


_LOOKUP: dict[str, DatasetSpec] = {}
for _spec in DATASETS.values():
    for _key in {_lookup_key(_spec.name), _lookup_key(_spec.folder)}:
        assert _key not in _LOOKUP, f"two datasets answer to {_key!r}"
        _LOOKUP[_key] = _spec


@dataclass(frozen=True)
class Corpus:
    """The splits of one dataset and the label set of all of them."""

    name: str
    train: list[Sentence]
    dev: list[Sentence]
    test: list[Sentence]
    labels: LabelSet
    """Built from every loaded split, so a type seen only in test still has tags."""
    files: dict[str, str] = field(default_factory=dict)
    """The file each loaded split was read from, by split name; a split not loaded is absent."""


def get_dataset_spec(name: str) -> DatasetSpec:
    """Find a dataset by its name or its folder, ignoring case, ``-``, ``_`` and spaces.

    Raises:
        DatasetNotFoundError: for an unknown name; the message lists the known names.
    """
    spec = _LOOKUP.get(_lookup_key(name))
    if spec is None:
        known = ", ".join(f"{s.name} ({s.folder})" for s in DATASETS.values())
        raise DatasetNotFoundError(f"unknown dataset {name!r}; known datasets (folder): {known}")
    return spec


def resolve_data_root(flag: str | None) -> Path:
    """The folder that holds the dataset folders.

    Args:
        flag: the ``--data-root`` value, if given; it wins over the environment.

    Returns:
        ``flag``, else ``$ADABIOBERT_DATA_ROOT``, as a path (``~`` expanded).

    Raises:
        DatasetNotFoundError: if neither is set, or the chosen one is not a directory.
    """
    if flag:
        root, source = Path(flag).expanduser(), "--data-root"
    elif os.environ.get(DATA_ROOT_ENV):
        root, source = Path(os.environ[DATA_ROOT_ENV]).expanduser(), DATA_ROOT_ENV
    else:
        raise DatasetNotFoundError(
            f"no data root: pass --data-root or set {DATA_ROOT_ENV} to the folder that holds the "
            "dataset folders (NCBI-disease-IOB/, BC5CDR-IOB/, ...)"
        )
    if not root.is_dir():
        raise DatasetNotFoundError(f"data root {root} (from {source}) is not a directory")
    return root


def read_iob(path: str | Path) -> list[Sentence]:
    """Read an IOB file: word first, tag last, blank lines between sentences.

    Columns are separated by tabs or, on lines without a tab, by spaces. ``-DOCSTART-`` lines,
    repeated blank lines, CRLF endings and trailing spaces are all accepted, and a last sentence
    without a blank line after it is kept. IOB1 or broken IOB2 is repaired to IOB2 (an ``I-X``
    that starts an entity becomes ``B-X``) with one ``CorpusWarning`` per file giving the count.

    Args:
        path: a UTF-8 text file.

    Returns:
        The sentences in file order, with valid IOB2 tags.

    Raises:
        CorpusFormatError: for a line that is not UTF-8, has a single column (no tag, or an
            empty word), or has a tag that is not ``O``, ``B-<type>`` or ``I-<type>``; it names
            the file and the line.
        OSError: if the file cannot be opened.
    """
    sentences: list[Sentence] = []
    repaired = 0
    words: list[str] = []
    tags: list[str] = []

    def close_sentence() -> None:
        nonlocal repaired
        if words:
            fixed, changed = repair_iob2(tags)
            repaired += changed
            sentences.append(Sentence(tuple(words), tuple(fixed)))
            words.clear()
            tags.clear()

    for line_number, fields in _rows(Path(path)):
        if not fields or fields[0] == DOCSTART:
            close_sentence()
            continue
        word, tag = _word_and_tag(path, line_number, fields)
        words.append(word)
        tags.append(tag)
    close_sentence()
    if repaired:
        warnings.warn(
            CorpusWarning(
                f"{path}: repaired {repaired} tags to IOB2 (an I- tag that started an entity became B-)"
            ),
            stacklevel=2,
        )
    return sentences


def load_corpus(
    name: str, data_root: str | Path, *, require: Sequence[str] = ("train", "dev", "test")
) -> Corpus:
    """Load the splits of a named dataset from ``<data_root>/<folder>/``.

    Split files: ``train.tsv``, ``devel.tsv`` (or ``dev.tsv``), ``test.tsv``.

    Args:
        name: a dataset name or folder (see ``get_dataset_spec``).
        data_root: the folder holding the dataset folders.
        require: the splits that must exist; others are loaded if present, else left empty.

    Returns:
        The corpus, with the label set of every loaded split.

    Raises:
        DatasetNotFoundError: for an unknown name, a missing dataset folder or a missing required
            split; the message names the dataset, the data root and every file looked for.
        ValueError: if ``require`` names a split other than train, dev and test.
        CorpusFormatError: as ``read_iob``.
    """
    unknown = set(require) - SPLIT_FILES.keys()
    if unknown:
        raise ValueError(f"unknown splits {sorted(unknown)} in require; splits are {list(SPLIT_FILES)}")
    spec = get_dataset_spec(name)
    root = Path(data_root)
    folder = root / spec.folder
    found = {split: _first_existing(folder, files) for split, files in SPLIT_FILES.items()}
    missing = [split for split in SPLIT_FILES if split in require and found[split] is None]
    if missing:
        looked_for = [str(folder / f) for split in missing for f in SPLIT_FILES[split]]
        if folder.is_dir():
            where = f"missing splits: {', '.join(missing)}"
        else:
            where = "its folder does not exist"
        raise DatasetNotFoundError(
            f"dataset {spec.name} not found under data root {root} ({where}); "
            f"looked for: {', '.join(looked_for)}"
        )
    splits = {split: read_iob(path) if path is not None else [] for split, path in found.items()}
    labels = LabelSet.from_tag_sequences(s.tags for sentences in splits.values() for s in sentences)
    files = {split: str(path) for split, path in found.items() if path is not None}
    return Corpus(spec.name, train=splits["train"], dev=splits["dev"], test=splits["test"], labels=labels, files=files)


def validate_for_training(corpus: Corpus) -> None:
    """Refuse a corpus that cannot be trained on, before any work is done.

    Pass the splits that will actually be used (after any sentence limit), so that a limit of
    0 or a prefix without entities is caught as well.

    Args:
        corpus: the train, dev and test splits to use; ``corpus.files`` names their files.

    Raises:
        CorpusError: naming the split's file, when a split has no sentence (a missing or empty
            file, or one holding only ``-DOCSTART-``), when the train split has no entity, or
            when a dev or test split has entity types the train split lacks (they are listed).
            Tags that do not parse are refused earlier, by ``read_iob``.
    """
    for split in SPLIT_FILES:
        if not getattr(corpus, split):
            raise CorpusError(
                _split_file(corpus, split),
                f"the {split} split has no sentences to use (the file is empty or holds only "
                f"{DOCSTART}, or the sentence limit is 0)",
            )
    train_types = entity_types(corpus.train)
    if not train_types:
        raise CorpusError(
            _split_file(corpus, "train"),
            f"the train split has no entity in its {len(corpus.train)} sentences (every tag is O); nothing to learn",
        )
    for split in ("dev", "test"):
        unseen = entity_types(getattr(corpus, split)) - train_types
        if unseen:
            raise CorpusError(
                _split_file(corpus, split),
                f"the {split} split has entity types the train split lacks: {', '.join(sorted(unseen))} "
                f"(train has {', '.join(sorted(train_types))}, file {_split_file(corpus, 'train')})",
            )


def entity_types(sentences: Sequence[Sentence]) -> set[str]:
    """The entity types that the tags of ``sentences`` use (IOB2 tags, as ``read_iob`` gives)."""
    return {split_tag(tag)[1] for sentence in sentences for tag in sentence.tags if tag != OUTSIDE}


def _split_file(corpus: Corpus, split: str) -> str:
    """The file a split came from, or a description when it was not loaded from one."""
    return corpus.files.get(split, f"{corpus.name} ({split} split: no file)")


def _first_existing(folder: Path, names: Sequence[str]) -> Path | None:
    for name in names:
        if (folder / name).is_file():
            return folder / name
    return None


def _rows(path: Path) -> Iterator[tuple[int, list[str]]]:
    """Each line as (1-based number, columns); a blank line gives none.

    On a line with a tab, columns are the tab-separated fields (an empty one kept, so that an
    empty word is caught); otherwise they are the runs of non-spaces.
    """
    with path.open("rb") as handle:
        for line_number, raw in enumerate(handle, start=1):
            try:
                line = raw.decode("utf-8-sig" if line_number == 1 else "utf-8")
            except UnicodeDecodeError as error:
                raise CorpusFormatError(str(path), line_number, f"not UTF-8 ({error.reason})") from None
            line = line.rstrip("\r\n\t ")
            if "\t" in line:
                yield line_number, [field.strip(" ") for field in line.split("\t")]
            else:
                yield line_number, [field for field in line.split(" ") if field]


def _word_and_tag(path: str | Path, line_number: int, fields: list[str]) -> tuple[str, str]:
    if len(fields) < 2 or not fields[0]:
        raise CorpusFormatError(
            str(path), line_number, f"expected a word and a tag separated by a tab or spaces, got {fields!r}"
        )
    tag = fields[-1]
    try:
        split_tag(tag)
    except ValueError:
        message = f"tag {tag!r} is not O, B-<type> or I-<type>"
        raise CorpusFormatError(str(path), line_number, message) from None
    return fields[0], tag
