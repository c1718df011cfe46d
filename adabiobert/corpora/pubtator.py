"""PubTator files: documents with character-offset mentions, their types mapped onto six.

A PubTator file holds documents separated by blank lines::

    PMID|t|title
    PMID|a|abstract
    PMID<TAB>start<TAB>end<TAB>mention<TAB>type[<TAB>identifiers]

Offsets are into ``title + " " + abstract``, ``end`` exclusive. Each corpus names its types its
own way (NCBI-disease's ``SpecificDisease``, tmVar's ``ProteinMutation``, ...); :data:`CORPORA`
maps them onto the six entity types of :data:`ENTITY_TYPES` and says which of those each corpus
annotates, so that a word left unlabelled by a corpus is known to be ``O`` only for those types.
A file whose corpus is not in the table is read with :data:`GENERIC` (every known type name).

Nothing is dropped silently. A line that cannot be used raises :class:`CorpusFormatError` naming
the file and line when ``strict`` (the default). Otherwise the line is counted in the
:class:`ReadReport` by reason (:data:`SKIP_REASONS`, with the first file:line of each) and the
document it belongs to is skipped whole: a document missing one of its mentions would teach its
words as ``O``, and would count a right prediction as a false positive. Counted but never
refused: mentions of source types that are not one of the six (GNormPlus's ``FamilyName`` and
``DomainMotif``, ``left_out``), documents that repeat an earlier one verbatim under the same PMID
(skipped: NCBIdisease_TrainDev holds one) and relation lines (``PMID<TAB>CID<TAB>id<TAB>id``,
ignored). The corpora of ``../shared/pubtator`` need ``strict=False``: a few of their documents
have mentions whose offsets do not match their text (``benchmarks/pubtator_report.py``).
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from adabiobert.errors import CorpusFormatError, DatasetNotFoundError

GENE, DISEASE, CHEMICAL, SPECIES, VARIANT, CELL_LINE = "Gene", "Disease", "Chemical", "Species", "Variant", "CellLine"
ENTITY_TYPES: tuple[str, ...] = (GENE, DISEASE, CHEMICAL, SPECIES, VARIANT, CELL_LINE)
"""The six entity types every corpus is mapped onto."""

NO_IDENTIFIER = frozenset({"", "-", "-1"})
"""Identifier fields (or parts of one) that mean "no identifier"."""

TMVAR_ATTRIBUTES = ("Gene:", "RS#:", "Disease:", "VariantGroup:", "CorrespondingGene:")
"""Parts of a tmVar variant identifier that describe the variant rather than name it."""

# Skip reasons, for the report and for the errors raised when strict.
NOT_UTF8 = "not_utf8"
MALFORMED_LINE = "malformed_line"
TEXT_MISMATCH = "text_mismatch"
OFFSETS_PAST_END = "offsets_past_end"
UNKNOWN_TYPE = "unknown_type"
NO_ABSTRACT = "no_abstract"
DUPLICATE_PMID = "duplicate_pmid"
SKIP_REASONS = (NOT_UTF8, MALFORMED_LINE, TEXT_MISMATCH, OFFSETS_PAST_END, UNKNOWN_TYPE, NO_ABSTRACT, DUPLICATE_PMID)
"""Why a mention or a document was skipped (``strict=False``) or refused (``strict=True``)."""

_TEXT_LINE = re.compile(r"([^\t|]+)\|([ta])\|(.*)", re.DOTALL)
_RELATION_TYPE = re.compile(r"[A-Za-z][A-Za-z_]*")
"""The second field of a relation line (``CID``, ``Association``); a mention line has its start there."""


@dataclass(frozen=True)
class Mention:
    """One annotated mention: ``document.text[start:end] == text``."""

    start: int
    end: int
    text: str
    type: str
    """One of :data:`ENTITY_TYPES`."""
    source_type: str
    """The type as the file writes it (``SpecificDisease``, ``ProteinMutation``, ...)."""
    identifiers: tuple[str, ...]
    """Database identifiers as written (``D009369``, ``OMIM:215600``, ``672(Tax:10090)``), in
    order; several for a composite mention; empty when the file has none (see :func:`parse_identifiers`)."""
    raw_identifiers: str = ""
    """The identifier field as the file writes it (tmVar's variant attributes are only here)."""


@dataclass(frozen=True)
class PubTatorDocument:
    """One document: its title, abstract and mentions (offsets into :attr:`text`)."""

    pmid: str
    title: str
    abstract: str
    mentions: tuple[Mention, ...]
    """In file order."""
    line: int = 0
    """The 1-based line of the title in its file (0 when not read from a file)."""

    @property
    def text(self) -> str:
        """``title + " " + abstract``, the string the offsets point into."""
        return f"{self.title} {self.abstract}"


@dataclass(frozen=True)
class CorpusSpec:
    """How one corpus's types map onto :data:`ENTITY_TYPES`, and which of them it annotates."""

    types: frozenset[str] | None
    """The entity types the corpus annotates exhaustively; None: the mapped types its file uses
    (for files of unknown corpora)."""
    mapping: Mapping[str, str]
    """Source type -> entity type."""
    left_out: frozenset[str] = frozenset()
    """Source types that are not mentions of the six (counted, not read)."""

    def __post_init__(self) -> None:
        assert set(self.mapping.values()) <= set(ENTITY_TYPES), self.mapping
        assert self.types is None or self.types <= set(ENTITY_TYPES), self.types
        assert not self.left_out & self.mapping.keys(), self.left_out


def _same(*types: str) -> dict[str, str]:
    return {t: t for t in types}


_TMVAR_VARIANTS = ("ProteinMutation", "DNAMutation", "OtherMutation", "SNP", "ProteinAllele", "DNAAllele",
                   "AcidChange", "SequenceVariant")

CORPORA: dict[str, CorpusSpec] = {
    "NCBIdisease": CorpusSpec(
        types=frozenset({DISEASE}),
        mapping={t: DISEASE for t in ("SpecificDisease", "DiseaseClass", "Modifier", "CompositeMention")},
    ),
    "BC5CDR": CorpusSpec(types=frozenset({CHEMICAL, DISEASE}), mapping=_same(CHEMICAL, DISEASE)),
    "GNormPlus": CorpusSpec(
        types=frozenset({GENE}), mapping=_same(GENE), left_out=frozenset({"FamilyName", "DomainMotif"})
    ),
    "BioRED": CorpusSpec(
        types=frozenset(ENTITY_TYPES),
        mapping={
            **_same(*ENTITY_TYPES),
            # BioRED's own names; the AIONER copy already writes the six.
            "GeneOrGeneProduct": GENE,
            "DiseaseOrPhenotypicFeature": DISEASE,
            "ChemicalEntity": CHEMICAL,
            "OrganismTaxon": SPECIES,
            "SequenceVariant": VARIANT,
        },
    ),
    "SPECIES": CorpusSpec(types=frozenset({SPECIES}), mapping=_same(SPECIES)),
    "tmVar3": CorpusSpec(
        types=frozenset({GENE, DISEASE, SPECIES, VARIANT, CELL_LINE}),
        mapping={**_same(GENE, DISEASE, SPECIES, CELL_LINE), **{t: VARIANT for t in _TMVAR_VARIANTS}},
    ),
    "BioID": CorpusSpec(types=frozenset({CELL_LINE}), mapping=_same(CELL_LINE)),
}
"""The corpora of ``../shared/pubtator``, by the file-name prefix before the first ``_``."""

GENERIC = CorpusSpec(
    types=None,
    mapping={source: target for spec in CORPORA.values() for source, target in spec.mapping.items()},
    left_out=frozenset().union(*(spec.left_out for spec in CORPORA.values())),
)
"""For a file of no known corpus: every source type name of :data:`CORPORA`; it annotates the
types it uses."""
assert all(GENERIC.mapping[s] == t for spec in CORPORA.values() for s, t in spec.mapping.items()), (
    "two corpora map one source type onto different types"
)


@dataclass(frozen=True)
class ReadReport:
    """What a read kept, left out and skipped."""

    path: str
    corpus: str
    """The corpus name (from the file name or the ``corpus`` argument)."""
    annotated_types: frozenset[str]
    """The entity types the corpus annotates: a word outside their mentions is ``O`` for these
    types only."""
    documents: int
    """Documents kept."""
    mentions: Mapping[str, int]
    """Mentions kept, by entity type."""
    left_out: Mapping[str, int] = field(default_factory=dict)
    """Mentions of left-out source types (not one of the six), by source type."""
    problems: Mapping[str, int] = field(default_factory=dict)
    """Lines refused (``strict=False``), by reason (:data:`SKIP_REASONS`): a mention line for the
    mention reasons, the title line for ``no_abstract`` and ``duplicate_pmid``."""
    examples: Mapping[str, str] = field(default_factory=dict)
    """The first ``file:line: detail`` of each reason in ``problems``."""
    skipped_documents: int = 0
    """Documents skipped because a line of theirs was refused (``strict=False``)."""
    skipped_mentions: int = 0
    """Mention lines inside the skipped documents, refused or not."""
    duplicate_documents: int = 0
    """Documents that repeat an earlier one verbatim under its PMID, skipped in either mode."""
    relations: int = 0
    """Relation lines (``PMID<TAB>CID<TAB>...``), ignored."""

    @property
    def total_mentions(self) -> int:
        """Mentions kept, of every type."""
        return sum(self.mentions.values())

    def summary(self) -> str:
        """One line: documents, mentions by type, left out, duplicates and skips."""
        parts = [f"{self.path}: corpus {self.corpus}, {self.documents} documents, {self.total_mentions} mentions ("]
        parts.append(", ".join(f"{t} {n}" for t, n in self.mentions.items()) + ")")
        if self.left_out:
            parts.append("; left out " + ", ".join(f"{t} {n}" for t, n in self.left_out.items()))
        if self.duplicate_documents:
            parts.append(f"; {self.duplicate_documents} verbatim duplicate documents skipped")
        if self.skipped_documents:
            parts.append(f"; {self.skipped_documents} documents ({self.skipped_mentions} mention lines) skipped for ")
            parts.append(", ".join(f"{r} {n} (first {self.examples[r]})" for r, n in self.problems.items()))
        return "".join(parts)


def corpus_name(path: str | Path) -> str:
    """The corpus a file belongs to, from its name: the part before the first ``_``
    (``NCBIdisease_Test.PubTator`` -> ``NCBIdisease``), matched to :data:`CORPORA` ignoring case;
    the part itself when no corpus matches."""
    prefix = Path(path).name.split("_", 1)[0].split(".", 1)[0]
    for name in CORPORA:
        if name.casefold() == prefix.casefold():
            return name
    return prefix


def parse_identifiers(field_text: str, variant: bool = False) -> tuple[str, ...]:
    """The identifiers of one mention's identifier field.

    Args:
        field_text: the sixth field of a mention line.
        variant: the mention is a Variant. tmVar normal forms hold ``|`` and ``,``
            (``p|SUB|V|1763|M``), so a variant's field is split on ``;`` only, and tmVar's
            attributes (``Gene:``, ``RS#:``, ``Disease:``, ``VariantGroup:``) are not identifiers.

    Returns:
        The parts between ``;``, ``,`` and ``|`` (composite mentions) in order, without the
        parts that mean no identifier (``-``, ``-1``, empty). ``+`` (NCBI-disease's
        ``OMIM:1+OMIM:2``, one concept made of two) is not a separator.
    """
    parts = field_text.split(";") if variant else re.split(r"[;,|]", field_text)
    parts = [p.strip() for p in parts]
    if variant:
        parts = [p for p in parts if not p.startswith(TMVAR_ATTRIBUTES)]
    return tuple(p for p in parts if p not in NO_IDENTIFIER)


@dataclass
class _Draft:
    """A document while its lines are read."""

    pmid: str
    title: str
    line: int
    abstract: str | None = None
    mention_lines: list[tuple[int, list[str]]] = field(default_factory=list)
    problems: list[tuple[str, int, str]] = field(default_factory=list)
    """(reason, line, detail) of each refused line."""

    def fingerprint(self) -> tuple:
        return (self.title, self.abstract, tuple(tuple(fields) for _, fields in self.mention_lines))


class _Reader:
    """The state of one read: the documents kept and the counts."""

    def __init__(self, path: Path, corpus: str, spec: CorpusSpec, strict: bool) -> None:
        self.path, self.corpus, self.spec, self.strict = path, corpus, spec, strict
        self.documents: list[PubTatorDocument] = []
        self.seen: dict[str, tuple[int, tuple]] = {}  # PMID -> (title line, fingerprint) of each document kept
        self.mentions: Counter[str] = Counter()
        self.left_out: Counter[str] = Counter()
        self.problems: Counter[str] = Counter()
        self.examples: dict[str, str] = {}
        self.skipped_documents = self.skipped_mentions = self.duplicate_documents = self.relations = 0

    def refuse(self, reason: str, line: int, detail: str, draft: _Draft | None = None) -> None:
        """Raise (strict), or count the line and, when it belongs to a document, skip that document."""
        if self.strict:
            raise CorpusFormatError(str(self.path), line, f"{detail} [{reason}]")
        self.problems[reason] += 1
        self.examples.setdefault(reason, f"{self.path}:{line}: {detail}")
        if draft is not None:
            draft.problems.append((reason, line, detail))

    def close(self, draft: _Draft | None) -> None:
        """Check a finished document, then keep it or skip it whole."""
        if draft is None:
            return
        if draft.abstract is None:
            self.refuse(NO_ABSTRACT, draft.line, f"document {draft.pmid} has a title line but no abstract line", draft)
        earlier = self.seen.get(draft.pmid)
        if earlier is not None and earlier[1] == draft.fingerprint():
            self.duplicate_documents += 1
            return
        if earlier is not None:
            self.refuse(DUPLICATE_PMID, draft.line,
                        f"PMID {draft.pmid} is already used by the document at line {earlier[0]}, with other text or mentions", draft)
        text = f"{draft.title} {draft.abstract or ''}"
        mentions = [self.mention(draft, text, number, fields) for number, fields in draft.mention_lines]
        if draft.problems:
            self.skipped_documents += 1
            self.skipped_mentions += len(draft.mention_lines)
            return
        kept = tuple(m for m in mentions if m is not None)
        self.seen[draft.pmid] = (draft.line, draft.fingerprint())
        self.documents.append(PubTatorDocument(draft.pmid, draft.title, draft.abstract or "", kept, draft.line))
        self.mentions.update(m.type for m in kept)
        self.left_out.update(fields[4] for _, fields in draft.mention_lines if fields[4] in self.spec.left_out)

    def mention(self, draft: _Draft, text: str, line: int, fields: list[str]) -> Mention | None:
        """The mention of one line; None when its type is left out or the line is refused."""
        surface, source_type = fields[3], fields[4]
        try:
            start, end = int(fields[1]), int(fields[2])
        except ValueError:
            self.refuse(MALFORMED_LINE, line, f"offsets {fields[1]!r}, {fields[2]!r} are not integers", draft)
            return None
        if not 0 <= start < end:
            self.refuse(MALFORMED_LINE, line, f"offsets {start}-{end} are not 0 <= start < end", draft)
            return None
        if end > len(text):
            self.refuse(OFFSETS_PAST_END, line,
                        f"mention {surface!r} at {start}-{end} ends past the document's {len(text)} characters", draft)
            return None
        if text[start:end] != surface:
            self.refuse(TEXT_MISMATCH, line,
                        f"mention {surface!r} at {start}-{end}, but the text there is {text[start:end]!r}", draft)
            return None
        if source_type in self.spec.left_out:
            return None
        entity_type = self.spec.mapping.get(source_type)
        if entity_type is None:
            known = ", ".join(sorted(self.spec.mapping))
            self.refuse(UNKNOWN_TYPE, line, f"type {source_type!r} is not one of corpus {self.corpus}'s: {known}", draft)
            return None
        raw = fields[5] if len(fields) > 5 else ""
        return Mention(start, end, surface, entity_type, source_type, parse_identifiers(raw, entity_type == VARIANT), raw)

    def report(self) -> ReadReport:
        return ReadReport(
            path=str(self.path), corpus=self.corpus,
            annotated_types=self.spec.types if self.spec.types is not None else frozenset(self.mentions),
            documents=len(self.documents), mentions=dict(sorted(self.mentions.items())),
            left_out=dict(sorted(self.left_out.items())), problems=dict(sorted(self.problems.items())),
            examples=dict(self.examples), skipped_documents=self.skipped_documents,
            skipped_mentions=self.skipped_mentions, duplicate_documents=self.duplicate_documents,
            relations=self.relations,
        )


def read_pubtator(
    path: str | Path, corpus: str | CorpusSpec | None = None, strict: bool = True
) -> tuple[list[PubTatorDocument], ReadReport]:
    """Read a PubTator file into documents with mentions of the six entity types.

    Args:
        path: a UTF-8 PubTator file (a BOM and CRLF line ends are accepted; a missing blank line
            between documents too: a title line starts a new document). Fields after the sixth
            of a mention line (BC5CDR's original texts of a composite's parts) are not read.
        corpus: the corpus name in :data:`CORPORA` (overrides the file name), or a
            :class:`CorpusSpec` for a corpus of your own; None: from the file name
            (:func:`corpus_name`), and :data:`GENERIC` when no corpus matches.
        strict: raise on the first unusable line; False: count it and skip the document it
            belongs to (a line outside any document is counted alone).

    Returns:
        The documents in file order, and the report of the read.

    Raises:
        CorpusFormatError: (``strict``) naming the file and line: a line that is not UTF-8, is
            neither a title, abstract, mention nor relation line, or sits outside a document;
            a mention whose offsets are not integers with ``0 <= start < end``, end past the
            text, or whose text differs from the document's at its offsets; an unknown type; a
            document without an abstract line; a PMID used twice with other text or mentions.
            The message ends with the reason in brackets (``[text_mismatch]``).
        DatasetNotFoundError: for a ``corpus`` name not in :data:`CORPORA`; the message lists them.
        OSError: if the file cannot be opened.
    """
    path = Path(path)
    if isinstance(corpus, CorpusSpec):
        name, spec = corpus_name(path), corpus
    else:
        name = corpus if corpus is not None else corpus_name(path)
        if corpus is not None and corpus not in CORPORA:
            raise DatasetNotFoundError(f"unknown PubTator corpus {corpus!r}; known corpora: {', '.join(CORPORA)}")
        spec = CORPORA.get(name, GENERIC)
    reader = _Reader(path, name, spec, strict)
    draft: _Draft | None = None
    for number, line, decoded in _lines(path):
        text_line = _TEXT_LINE.fullmatch(line)
        if text_line and text_line.group(2) == "t":
            reader.close(draft)
            draft = _Draft(text_line.group(1), text_line.group(3), number)
            if not decoded:
                reader.refuse(NOT_UTF8, number, "the title line is not UTF-8", draft)
        elif not line.strip() and decoded:
            reader.close(draft)
            draft = None
        elif draft is None:
            detail = "not UTF-8" if not decoded else f"a line outside a document (no title line before it): {line[:80]!r}"
            reader.refuse(NOT_UTF8 if not decoded else MALFORMED_LINE, number, detail)
        elif not decoded:
            reader.refuse(NOT_UTF8, number, f"a line of document {draft.pmid} is not UTF-8", draft)
        elif text_line:
            pmid, _, abstract = text_line.groups()
            if pmid != draft.pmid or draft.abstract is not None or draft.mention_lines:
                reader.refuse(MALFORMED_LINE, number,
                              f"abstract line of {pmid} out of place in document {draft.pmid} (one abstract, after the title)", draft)
            else:
                draft.abstract = abstract
        else:
            fields = line.split("\t")
            if len(fields) >= 4 and _RELATION_TYPE.fullmatch(fields[1]):
                reader.relations += 1
            elif len(fields) >= 5 and fields[0] == draft.pmid:
                draft.mention_lines.append((number, fields))
            else:
                reader.refuse(MALFORMED_LINE, number,
                              f"not an abstract, mention or relation line of document {draft.pmid}: {line[:80]!r}", draft)
    reader.close(draft)
    return reader.documents, reader.report()


def _lines(path: Path) -> Iterator[tuple[int, str, bool]]:
    """Each line as (1-based number, text without its line end, whether it was valid UTF-8).

    A line that is not UTF-8 is decoded with replacement characters so that its kind (title,
    abstract, mention) can still be told.
    """
    with path.open("rb") as handle:
        for number, raw in enumerate(handle, start=1):
            raw = raw.rstrip(b"\n").rstrip(b"\r")
            try:
                yield number, raw.decode("utf-8-sig" if number == 1 else "utf-8"), True
            except UnicodeDecodeError:
                yield number, raw.decode("utf-8", errors="replace"), False
