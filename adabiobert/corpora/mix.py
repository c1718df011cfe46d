"""The data of a training run: one corpus, or a mix of corpora that each annotate their own types.

``--dataset`` is a comma-separated list of sources, each named once:

* an IOB dataset of the registry (:data:`adabiobert.corpora.iob.DATASETS`: ``NCBI-disease``,
  ``BC5CDR``, ...), read from the data root as ever;
* ``pubtator:<corpus>``: a PubTator corpus (``pubtator:BC5CDR``, ``pubtator:BioRED``; the names of
  :data:`adabiobert.corpora.pubtator.CORPORA`, or the prefix of a user's own files), read from the
  PubTator root: ``<corpus>_Train*.PubTator`` (a TrainDev file included) and ``<corpus>_Test*.PubTator``.
  The prefix keeps the two formats apart: ``BC5CDR`` is the IOB folder, ``pubtator:BC5CDR`` the
  PubTator files, and IOB names ignore case, ``-`` and ``_`` (``NCBIdisease`` is the IOB dataset);
* a named mix of :data:`MIXES`: ``union`` is every PubTator corpus of ``CORPORA``.

A PubTator train file is cut into train and dev by document: a document is dev when its PMID's
sha256 falls in the first :data:`DEV_PERCENT` of 100 buckets (:func:`is_dev_document`). The cut
is deterministic, independent of file order, and the same for every run and machine; it applies
to every PubTator corpus (the TrainDev files hold their corpus's train and dev sets together, and
the Train-only ones need dev data for model selection too).

The label set of a mix is the union of the types its sources annotate. Every sentence of a mix
carries its corpus's ``annotated_types``: a word its corpus leaves ``O`` is outside a mention of
those types only (``adabiobert.model.partial_annotation``). A single IOB dataset is read exactly
as ``load_corpus`` reads it, with the plain sentences and label set it always had.
"""

from __future__ import annotations

import hashlib
import os
from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

from adabiobert.corpora.iob import (
    DATASETS,
    Corpus,
    Sentence,
    get_dataset_spec,
    load_corpus,
    resolve_data_root,
    validate_for_training,
)
from adabiobert.corpora.pubtator import CORPORA, PubTatorDocument, ReadReport, read_pubtator
from adabiobert.corpora.pubtator_sentences import AlignmentReport, document_sentences, to_sentences
from adabiobert.errors import ConfigError, CorpusError, DatasetNotFoundError
from adabiobert.labels import LabelSet
from adabiobert.spans import tags_to_spans

PUBTATOR_PREFIX = "pubtator:"
PUBTATOR_ROOT_ENV = "ADABIOBERT_PUBTATOR_ROOT"
PUBTATOR_SUFFIX = ".PubTator"
MIXES: dict[str, tuple[str, ...]] = {
    "union": tuple(PUBTATOR_PREFIX + name for name in CORPORA),
}
"""Named mixes: ``union`` is the train split of every PubTator corpus."""
DEV_PERCENT = 10
"""Share of a PubTator train file's documents held out as dev, by PMID hash."""


@dataclass(frozen=True)
class SourceSentence(Sentence):
    """A sentence of an IOB dataset inside a mix: its words and tags, and what its corpus annotates
    (a PubTator corpus's sentences are ``DocumentSentence``, with the same two fields)."""

    corpus: str
    annotated_types: frozenset[str]


@dataclass(frozen=True)
class Source:
    """One corpus of a run, its splits as read, and what reading them counted."""

    name: str
    """As ``--dataset`` names it: ``NCBI-disease`` or ``pubtator:BC5CDR``."""
    annotated_types: frozenset[str]
    train: list[Sentence]
    dev: list[Sentence]
    test: list[Sentence]
    files: dict[str, str]
    """The file each split came from, by split name (a PubTator dev split: its train file)."""
    test_documents: tuple[PubTatorDocument, ...] = ()
    """A PubTator corpus's test documents (those behind ``test``), for the offset metric."""
    test_set: str = ""
    """The PubTator test file's name without its suffix (``BC5CDR_Test``); empty for IOB."""
    counts: dict = field(default_factory=dict)
    """Per split: documents, sentences and mentions by type; what the reader skipped (a PubTator
    corpus's ``ReadReport``) and what the conversion to tags dropped or snapped (its ``AlignmentReport``)."""


@dataclass(frozen=True)
class TrainingData:
    """Every source of a run, pooled splits and the label set."""

    dataset: str
    """``--dataset`` as given."""
    sources: tuple[Source, ...]
    labels: LabelSet
    partial_annotation: bool
    """Train with the partial-annotation loss (the default for several sources)."""
    roots: dict[str, str]
    """``data_root`` and/or ``pubtator_root``, resolved, for the sources that needed them."""
    corpus: Corpus
    """The pooled splits as one :class:`~adabiobert.corpora.iob.Corpus` (a single IOB dataset: the
    corpus ``load_corpus`` read, unchanged)."""

    @property
    def is_mix(self) -> bool:
        return len(self.sources) > 1

    @property
    def files(self) -> dict[str, str]:
        """Split files for provenance: ``split -> path`` for one source, ``source/split -> path`` for several."""
        if not self.is_mix:
            return dict(self.sources[0].files)
        return {f"{s.name}/{split}": path for s in self.sources for split, path in s.files.items()}

    def summary(self) -> dict:
        """What results.json records as ``mix``: the sources, the label set, the partial-annotation
        switch, and every source's counts."""
        return {
            "dataset": self.dataset,
            "sources": [s.name for s in self.sources],
            "entity_types": list(self.labels.entity_types),
            "partial_annotation": self.partial_annotation,
            "dev_percent": DEV_PERCENT,
            "roots": dict(self.roots),
            "corpora": {
                s.name: {"annotated_types": sorted(s.annotated_types), "files": dict(s.files), **s.counts}
                for s in self.sources
            },
        }


def source_names(dataset: str) -> list[str]:
    """The sources ``--dataset`` names, mixes expanded, in order.

    Raises:
        ConfigError: an empty list, or a source named twice.
        DatasetNotFoundError: a name that is no IOB dataset, ``pubtator:<corpus>`` nor mix; the
            message lists them.
    """
    names: list[str] = []
    for part in (p.strip() for p in dataset.split(",")):
        if not part:
            continue
        names.extend(MIXES.get(part.casefold(), (part,)))
    if not names:
        raise ConfigError(f"--dataset {dataset!r} names no dataset")
    canonical = [_canonical(name) for name in names]
    twice = sorted({name for name, n in Counter(canonical).items() if n > 1})
    if twice:
        raise ConfigError(f"--dataset {dataset!r} names {', '.join(twice)} more than once")
    return canonical


def _canonical(name: str) -> str:
    if name.casefold().startswith(PUBTATOR_PREFIX):
        corpus = name[len(PUBTATOR_PREFIX):].strip()
        if not corpus:
            raise DatasetNotFoundError(f"{name!r} names no PubTator corpus; known: {_known()}")
        known = {c.casefold(): c for c in CORPORA}
        return PUBTATOR_PREFIX + known.get(corpus.casefold(), corpus)
    try:
        return get_dataset_spec(name).name
    except DatasetNotFoundError:
        raise DatasetNotFoundError(f"unknown dataset {name!r}; {_known()}") from None


def _known() -> str:
    return (f"IOB datasets: {', '.join(DATASETS)}; PubTator corpora: "
            f"{', '.join(PUBTATOR_PREFIX + c for c in CORPORA)} (or pubtator:<prefix> of your own files); "
            f"mixes: {', '.join(MIXES)}")


def resolve_pubtator_root(flag: str | None, data_root_flag: str | None = None) -> Path:
    """The folder that holds the PubTator files.

    Args:
        flag: ``--pubtator-root``, if given; it wins.
        data_root_flag: ``--data-root``, for the default.

    Returns:
        ``flag``, else ``$ADABIOBERT_PUBTATOR_ROOT``, else ``pubtator/`` beside the data root
        (``../shared/pubtator`` beside ``../shared/corpora``, as the shared folder is laid out).

    Raises:
        DatasetNotFoundError: none of the three is set, or the chosen one is not a directory.
    """
    if flag:
        root, source = Path(flag).expanduser(), "--pubtator-root"
    elif os.environ.get(PUBTATOR_ROOT_ENV):
        root, source = Path(os.environ[PUBTATOR_ROOT_ENV]).expanduser(), PUBTATOR_ROOT_ENV
    else:
        try:
            data_root = resolve_data_root(data_root_flag)
        except DatasetNotFoundError:
            raise DatasetNotFoundError(
                f"no PubTator root: pass --pubtator-root, set {PUBTATOR_ROOT_ENV}, or give a data root "
                "(--data-root) with a pubtator/ folder beside it") from None
        root, source = data_root.parent / "pubtator", f"beside the data root {data_root}"
    if not root.is_dir():
        raise DatasetNotFoundError(f"PubTator root {root} (from {source}) is not a directory")
    return root


def is_dev_document(pmid: str, percent: int = DEV_PERCENT) -> bool:
    """Whether a PubTator train document belongs to the dev split: the first 8 bytes of its
    PMID's sha256, as an integer, modulo 100 is below ``percent``."""
    return int.from_bytes(hashlib.sha256(pmid.encode("utf-8")).digest()[:8], "big") % 100 < percent


def load_training_data(
    dataset: str,
    data_root: str | None = None,
    pubtator_root: str | None = None,
    *,
    max_train_sentences: int | None = None,
    max_eval_sentences: int | None = None,
    partial_annotation: bool | None = None,
) -> TrainingData:
    """Read every source of ``dataset`` and pool their splits; refuse data unfit to train on.

    Args:
        dataset: ``--dataset`` (module docstring).
        data_root, pubtator_root: the flags, resolved only when a source needs them.
        max_train_sentences, max_eval_sentences: the first N train (dev and test) sentences of
            each source; a PubTator corpus takes whole documents, the first ones whose sentences
            fit in N, so that its test sentences and test documents are the same text.
        partial_annotation: None: on for several sources, off for one.

    Returns:
        The data; a single IOB dataset as ``load_corpus`` reads it.

    Raises:
        DatasetNotFoundError: an unknown name, a root that is not set or not a folder, a missing file.
        ConfigError: as :func:`source_names`.
        CorpusError: as ``validate_for_training`` on the pooled splits; a source without train sentences.
        CorpusFormatError: an unreadable IOB line (PubTator files are read with ``strict=False``:
            their bad documents are skipped and counted).
    """
    names = source_names(dataset)
    roots: dict[str, Path] = {}
    sources, corpus = [], None
    for name in names:
        if name.startswith(PUBTATOR_PREFIX):
            if "pubtator_root" not in roots:
                roots["pubtator_root"] = resolve_pubtator_root(pubtator_root, data_root)
            sources.append(_pubtator_source(name, roots["pubtator_root"], max_train_sentences, max_eval_sentences))
        else:
            if "data_root" not in roots:
                roots["data_root"] = resolve_data_root(data_root)
            source, corpus = _iob_source(name, roots["data_root"], max_train_sentences, max_eval_sentences,
                                         wrap=len(names) > 1)
            sources.append(source)
    if len(sources) > 1 or corpus is None:  # else a single IOB dataset: its corpus as read
        for source in sources:
            if not source.train:
                raise CorpusError(source.files.get("train", source.name),
                                  f"{source.name}: no train sentence to use (every document skipped, or the limit is 0)")
        labels = LabelSet.from_entity_types(set().union(*(s.annotated_types for s in sources)))
        pooled = {split: [x for s in sources for x in getattr(s, split)] for split in ("train", "dev", "test")}
        files = {split: "; ".join(s.files[split] for s in sources) for split in ("train", "dev", "test")}
        corpus = Corpus(dataset, labels=labels, files=files, **pooled)
    validate_for_training(corpus)
    partial = len(sources) > 1 if partial_annotation is None else partial_annotation
    return TrainingData(dataset, tuple(sources), corpus.labels, partial,
                        {k: str(v.resolve()) for k, v in roots.items()}, corpus)


def _iob_source(name: str, root: Path, max_train: int | None, max_eval: int | None,
                wrap: bool) -> tuple[Source, Corpus]:
    """An IOB dataset as a source, and its splits (after the limits) as a corpus."""
    corpus = load_corpus(name, root)
    types = frozenset(corpus.labels.entity_types)
    splits = {"train": corpus.train[:max_train], "dev": corpus.dev[:max_eval], "test": corpus.test[:max_eval]}
    if wrap:  # in a mix, each sentence says what its corpus annotates
        splits = {k: [SourceSentence(s.words, s.tags, corpus.name, types) for s in v] for k, v in splits.items()}
    counts = {"kind": "iob", "splits": {k: _sentence_counts(v) for k, v in splits.items()}}
    source = Source(corpus.name, types, splits["train"], splits["dev"], splits["test"], dict(corpus.files), counts=counts)
    return source, Corpus(corpus.name, labels=corpus.labels, files=corpus.files, **splits)


def _pubtator_source(name: str, root: Path, max_train: int | None, max_eval: int | None) -> Source:
    corpus = name[len(PUBTATOR_PREFIX):]
    train_path, test_path = _pubtator_file(root, corpus, "Train"), _pubtator_file(root, corpus, "Test")
    known = corpus if corpus in CORPORA else None  # a user's own files: the types they use (GENERIC)
    documents, train_read = read_pubtator(train_path, corpus=known, strict=False)
    test_documents, test_read = read_pubtator(test_path, corpus=known, strict=False)
    types = train_read.annotated_types | test_read.annotated_types
    chosen = {
        "train": _first_documents([d for d in documents if not is_dev_document(d.pmid)], max_train),
        "dev": _first_documents([d for d in documents if is_dev_document(d.pmid)], max_eval),
        "test": _first_documents(test_documents, max_eval),
    }
    splits, counts = {}, {"kind": "pubtator", "read": {"train": _read_counts(train_read), "test": _read_counts(test_read)},
                          "splits": {}}
    for split, docs in chosen.items():
        sentences, alignment = to_sentences(docs, types, train_read.corpus)
        splits[split] = sentences
        counts["splits"][split] = {"documents": len(docs), **_sentence_counts(sentences),
                                   "alignment": _alignment_counts(alignment)}
    files = {"train": str(train_path), "dev": str(train_path), "test": str(test_path)}
    return Source(name, types, splits["train"], splits["dev"], splits["test"], files,
                  test_documents=tuple(chosen["test"]), test_set=test_path.name.removesuffix(PUBTATOR_SUFFIX),
                  counts=counts)


def _pubtator_file(root: Path, corpus: str, split: str) -> Path:
    """``<root>/<corpus>_<split>*.PubTator``: exactly one (``BC5CDR_TrainDev``, ``BioID_Train_revision``)."""
    found = sorted(root.glob(f"{corpus}_{split}*{PUBTATOR_SUFFIX}"))
    if len(found) != 1:
        what = "no file" if not found else f"{len(found)} files ({', '.join(p.name for p in found)})"
        raise DatasetNotFoundError(
            f"PubTator corpus {corpus}: {what} matching {root / f'{corpus}_{split}*{PUBTATOR_SUFFIX}'}; "
            f"known corpora: {', '.join(CORPORA)}")
    return found[0]


def _first_documents(documents: Sequence[PubTatorDocument], max_sentences: int | None) -> list[PubTatorDocument]:
    """The first documents whose sentences add up to at most ``max_sentences`` (all for None)."""
    if max_sentences is None:
        return list(documents)
    chosen, total = [], 0
    for document in documents:
        total += len(document_sentences(document))
        if total > max_sentences:
            break
        chosen.append(document)
    return chosen


def _sentence_counts(sentences: Sequence[Sentence]) -> dict:
    mentions = Counter(span.label for s in sentences for span in tags_to_spans(s.tags))
    return {"sentences": len(sentences), "mentions": dict(sorted(mentions.items()))}


def _read_counts(report: ReadReport) -> dict:
    """A ``ReadReport`` as JSON: documents kept, mentions read, and every skip."""
    counts = asdict(report)
    counts["annotated_types"] = sorted(report.annotated_types)
    return {k: dict(v) if isinstance(v, dict) else v for k, v in counts.items()}


def _alignment_counts(report: AlignmentReport) -> dict:
    return {k: v for k, v in asdict(report).items() if k not in ("corpus", "documents", "sentences")}
