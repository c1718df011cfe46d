"""Readers of the identifier vocabularies that entity linking draws on, each yielding :class:`Concept`.

Formats (``READERS`` maps a format name to its reader):

* ``mesh-descriptors-tsv``, ``mesh-supplementary-tsv``: the offline copies in ``../shared/vocab``
  (no header; descriptor: ID, name, synonyms ``|``, tree numbers ``|``, NCBI Taxonomy IDs ``|``
  -- the smallest is kept, ``10090`` of ``10090|10092`` for Mice;
  supplementary: ID, name, synonyms ``|``, mapped descriptor IDs joined by ``,`` -- the
  README says ``|``; both are read).
* ``mesh-descriptors-xml``, ``mesh-supplementary-xml``: NLM's ``desc<year>.xml`` and
  ``supp<year>.xml`` (``DescriptorRecord``: ``DescriptorUI``, ``DescriptorName/String``,
  ``TreeNumberList/TreeNumber``, ``ConceptList/Concept/TermList/Term/String``;
  ``SupplementalRecord``: ``SupplementalRecordUI``, ``SupplementalRecordName/String``,
  ``HeadingMappedToList/HeadingMappedTo/DescriptorReferredTo/DescriptorUI`` with a leading ``*``
  on descriptor/qualifier pairs, the same ``ConceptList``), read as a stream with lxml's
  ``iterparse``. The XML carries no NCBI Taxonomy IDs: pass ``taxonomy_ids`` (descriptor UI ->
  taxon ID; for example read from the shared TSV's fifth column) to link organisms.
* ``hgnc-tsv``: HGNC's downloads, either the custom download with display names (``HGNC ID``,
  ``Approved symbol``, ``Approved name``, ``Status``, ``Alias symbols``, ``Previous symbols``,
  ``NCBI Gene ID(supplied by NCBI)``; lists joined by ``", "``; the shared copy) or the complete
  set ``hgnc_complete_set.txt`` (``hgnc_id``, ``symbol``, ``name``, ``status``, ``alias_symbol``,
  ``prev_symbol``, ``entrez_id``; lists joined by ``|``, sometimes quoted). Columns are chosen by
  name; others are ignored.
* ``gene-info``: NCBI Gene's ``gene_info`` (tab-separated, header ``#tax_id GeneID Symbol
  LocusTag Synonyms ... Symbol_from_nomenclature_authority Full_name_from_nomenclature_authority
  ... Other_designations ...``; ``-`` means empty, lists joined by ``|``).
* ``omim-lexicon``: the lexicon's ``gene_disease_associations.tsv`` (DisGeNET's column names;
  ``diseaseId``, ``diseaseName``); one row per gene-disease pair, so an ID repeats by design and
  its names are gathered. Only IDs with the given prefixes (``OMIM`` by default) are kept.

Bad input never passes in silence. A file that cannot be read as a whole (a header without a
needed column, XML that does not parse) raises :class:`~adabiobert.errors.VocabularyError` naming
the file and line. A bad row (wrong number of fields, empty ID or name, a duplicate ID, bytes that
are not UTF-8) raises the same error with ``strict=True``, and is otherwise skipped and counted in
:attr:`VocabularyRead.rejected` with the first few locations in :attr:`VocabularyRead.examples`.
Rows left out by design (a withdrawn HGNC symbol, a gene of another organism) are counted in
:attr:`VocabularyRead.filtered`.
"""

from __future__ import annotations

import gzip
import re
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from adabiobert.errors import VocabularyError

MESH = "MESH"
NCBI_GENE = "NCBIGene"
NCBI_TAXON = "NCBITaxon"
HUMAN = f"{NCBI_TAXON}:9606"
EXAMPLES_KEPT = 5
"""Locations of bad rows kept per file for the report (all are counted)."""


@dataclass(frozen=True)
class Concept:
    """One identifier and the names it is known by.

    Attributes:
        curie: ``MESH:D001943``, ``NCBIGene:672``, ``OMIM:215600``, ``NCBITaxon:9606``.
        name: the preferred name (HGNC: the approved symbol).
        synonyms: other names (MeSH entry terms; HGNC approved name and previous symbols).
        weak_synonyms: names other concepts may share (HGNC alias symbols, NCBI ``Synonyms``):
            an exact match on one yields to a match on another concept's name or synonym.
        tree_numbers: MeSH descriptors' tree numbers (``C04.588.180``), which say their type.
        mapped_to: MeSH supplementary concepts' descriptors (CURIEs), which say their type.
        taxon: the NCBI Taxonomy CURIE of a gene's organism, or of the organism a MeSH organism
            descriptor names.
    """

    curie: str
    name: str
    synonyms: tuple[str, ...] = ()
    weak_synonyms: tuple[str, ...] = ()
    tree_numbers: tuple[str, ...] = ()
    mapped_to: tuple[str, ...] = ()
    taxon: str | None = None


@dataclass
class VocabularyRead:
    """What one reader got from one file.

    Attributes:
        path: the file read.
        concepts: in file order.
        rejected: bad rows skipped, by reason (``"empty name"``, ``"duplicate ID"``, ...).
        filtered: rows left out by design, by reason (``"status Symbol Withdrawn"``, ...).
        examples: ``"<path>:<line>: <reason>"`` for the first few rejected rows.
    """

    path: str
    concepts: list[Concept] = field(default_factory=list)
    rejected: Counter = field(default_factory=Counter)
    filtered: Counter = field(default_factory=Counter)
    examples: list[str] = field(default_factory=list)


class _Rows:
    """Rejection bookkeeping shared by the readers: raise in strict mode, else count."""

    def __init__(self, path: str, strict: bool) -> None:
        self.read = VocabularyRead(path)
        self.strict = strict
        self.first_line: dict[str, int] = {}

    def reject(self, line: int, reason: str, detail: str = "") -> None:
        message = f"{reason}{': ' + detail if detail else ''}"
        if self.strict:
            raise VocabularyError(self.read.path, message, line)
        self.read.rejected[reason] += 1
        if len(self.read.examples) < EXAMPLES_KEPT:
            self.read.examples.append(f"{self.read.path}:{line}: {message}")

    def add(self, line: int, concept: Concept) -> None:
        """Keep ``concept`` unless its ID was seen (rejected as a duplicate) or its name is empty."""
        if not concept.name.strip():
            self.reject(line, "empty name", concept.curie)
        elif concept.curie in self.first_line:
            self.reject(line, "duplicate ID", f"{concept.curie} (first on line {self.first_line[concept.curie]})")
        else:
            self.first_line[concept.curie] = line
            self.read.concepts.append(concept)


def _open_binary(path: Path):
    return gzip.open(path, "rb") if path.suffix == ".gz" else open(path, "rb")


def _lines(path: Path, rows: _Rows) -> Iterator[tuple[int, str]]:
    """``(line number, text)`` per line, end-of-line removed; a line that is not UTF-8 is rejected."""
    with _open_binary(path) as handle:
        for number, raw in enumerate(handle, start=1):
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError as error:
                rows.reject(number, "not UTF-8", f"byte 0x{raw[error.start]:02x} at column {error.start + 1}")
                continue
            yield number, text.rstrip("\r\n")


def _split(value: str, separator: str = "|", unquote: bool = False) -> tuple[str, ...]:
    """The non-empty parts of a list field (``-`` is empty, as in ``gene_info``); ``unquote``
    removes the double quotes HGNC's complete set puts around some lists."""
    parts = (part.strip() for part in (value.strip('"') if unquote else value).split(separator))
    return tuple(part for part in parts if part not in ("", "-"))


def _unique(names, *exclude: str) -> tuple[str, ...]:
    """Names in order, each once, without those in ``exclude`` (case-sensitive) and empty ones."""
    seen = set(exclude)
    kept = []
    for name in names:
        if name and name not in seen:
            seen.add(name)
            kept.append(name)
    return tuple(kept)


def _check_path(path: str | Path) -> Path:
    path = Path(path)
    if not path.is_file():
        raise VocabularyError(str(path), "no such file")
    return path


# ---- MeSH: the shared TSV copies -------------------------------------------------------------
_DESCRIPTOR_ID = re.compile(r"D\d{6,}")
_SUPPLEMENTARY_ID = re.compile(r"C\d{6,}")


def read_mesh_descriptors_tsv(path: str | Path, strict: bool = False) -> VocabularyRead:
    """MeSH descriptors from the shared TSV (ID, name, synonyms, tree numbers, taxonomy ID).

    Raises:
        VocabularyError: with ``strict``, on the first bad row; a missing file, always.
    """
    path = _check_path(path)
    rows = _Rows(str(path), strict)
    for number, text in _lines(path, rows):
        fields = text.split("\t")
        if len(fields) != 5:
            rows.reject(number, "wrong number of fields", f"expected 5 tab-separated fields, found {len(fields)}")
            continue
        ui, name, synonyms, trees, taxon = (f.strip() for f in fields)
        if not _DESCRIPTOR_ID.fullmatch(ui):
            rows.reject(number, "malformed ID", f"{ui!r} is not a MeSH descriptor ID (D and digits)")
            continue
        taxa = sorted(int(t) for t in _split(taxon) if t.isdigit())  # "10090|10092" for Mice: the broadest, oldest ID
        rows.add(number, Concept(f"{MESH}:{ui}", name, _unique(_split(synonyms), name), (), _split(trees),
                                 taxon=f"{NCBI_TAXON}:{taxa[0]}" if taxa else None))
    return rows.read


def read_mesh_supplementary_tsv(path: str | Path, strict: bool = False) -> VocabularyRead:
    """MeSH supplementary concepts from the shared TSV (ID, name, synonyms, mapped descriptors).

    Raises:
        VocabularyError: with ``strict``, on the first bad row; a missing file, always.
    """
    path = _check_path(path)
    rows = _Rows(str(path), strict)
    for number, text in _lines(path, rows):
        fields = text.split("\t")
        if len(fields) != 4:
            rows.reject(number, "wrong number of fields", f"expected 4 tab-separated fields, found {len(fields)}")
            continue
        ui, name, synonyms, mapped = (f.strip() for f in fields)
        if not _SUPPLEMENTARY_ID.fullmatch(ui):
            rows.reject(number, "malformed ID", f"{ui!r} is not a MeSH supplementary concept ID (C and digits)")
            continue
        descriptors = tuple(f"{MESH}:{d.lstrip('*')}" for d in _split(mapped.replace(",", "|")))
        rows.add(number, Concept(f"{MESH}:{ui}", name, _unique(_split(synonyms), name), mapped_to=descriptors))
    return rows.read


# ---- MeSH: NLM's XML --------------------------------------------------------------------------
def read_mesh_descriptors_xml(path: str | Path, strict: bool = False,
                              taxonomy_ids: Mapping[str, str] | None = None) -> VocabularyRead:
    """MeSH descriptors from NLM's ``desc<year>.xml``, streamed.

    Args:
        taxonomy_ids: descriptor UI (``D006801``) -> NCBI Taxonomy ID (``9606``) for organisms;
            the XML has none of its own.

    Raises:
        VocabularyError: XML that does not parse (file and line); with ``strict``, a bad record.
    """
    taxonomy_ids = taxonomy_ids or {}

    def concept(record) -> tuple[str, Concept]:
        ui = _text(record, "DescriptorUI")
        name = _text(record, "DescriptorName/String")
        taxon = taxonomy_ids.get(ui)
        return ui, Concept(f"{MESH}:{ui}", name, _unique(_terms(record), name),
                           tree_numbers=tuple(t.text.strip() for t in record.iterfind("TreeNumberList/TreeNumber") if t.text),
                           taxon=f"{NCBI_TAXON}:{taxon}" if taxon else None)

    return _read_mesh_xml(path, "DescriptorRecord", _DESCRIPTOR_ID, concept, strict)


def read_mesh_supplementary_xml(path: str | Path, strict: bool = False) -> VocabularyRead:
    """MeSH supplementary concept records from NLM's ``supp<year>.xml``, streamed.

    Raises:
        VocabularyError: XML that does not parse (file and line); with ``strict``, a bad record.
    """

    def concept(record) -> tuple[str, Concept]:
        ui = _text(record, "SupplementalRecordUI")
        name = _text(record, "SupplementalRecordName/String")
        mapped = (d.text.strip().lstrip("*") for d in record.iterfind("HeadingMappedToList/HeadingMappedTo/DescriptorReferredTo/DescriptorUI") if d.text)
        return ui, Concept(f"{MESH}:{ui}", name, _unique(_terms(record), name), mapped_to=_unique(f"{MESH}:{d}" for d in mapped))

    return _read_mesh_xml(path, "SupplementalRecord", _SUPPLEMENTARY_ID, concept, strict)


def _read_mesh_xml(path: str | Path, tag: str, id_pattern: re.Pattern, concept: Callable, strict: bool) -> VocabularyRead:
    from lxml import etree

    path = _check_path(path)
    rows = _Rows(str(path), strict)
    with _open_binary(path) as handle:
        try:
            for _, record in etree.iterparse(handle, events=("end",), tag=tag):
                ui, found = concept(record)
                if not id_pattern.fullmatch(ui):
                    rows.reject(record.sourceline, "malformed ID", f"{ui!r} in a {tag}")
                else:
                    rows.add(record.sourceline, found)
                record.clear()  # streaming: drop the record and the siblings already read
                while record.getprevious() is not None:
                    del record.getparent()[0]
        except etree.XMLSyntaxError as error:
            raise VocabularyError(str(path), f"not well-formed XML: {error.msg}", error.lineno) from None
    return rows.read


def _text(record, path: str) -> str:
    found = record.find(path)
    return (found.text or "").strip() if found is not None else ""


def _terms(record) -> Iterator[str]:
    for term in record.iterfind("ConceptList/Concept/TermList/Term/String"):
        if term.text and term.text.strip():
            yield term.text.strip()


# ---- HGNC -------------------------------------------------------------------------------------
_HGNC_DIALECTS = (
    # (id, symbol, name, status, aliases, previous, NCBI Gene ID), list separator
    (("HGNC ID", "Approved symbol", "Approved name", "Status", "Alias symbols", "Previous symbols",
      "NCBI Gene ID(supplied by NCBI)"), ","),
    (("hgnc_id", "symbol", "name", "status", "alias_symbol", "prev_symbol", "entrez_id"), "|"),
)


def read_hgnc_tsv(path: str | Path, strict: bool = False, statuses: tuple[str, ...] = ("Approved",)) -> VocabularyRead:
    """Human genes from an HGNC TSV, as NCBI Gene concepts (``NCBIGene:672``).

    The name is the approved symbol; synonyms the approved name and previous symbols; weak
    synonyms the alias symbols. Rows of another status and rows without an NCBI Gene ID are
    filtered (counted), not rejected.

    Args:
        statuses: the ``Status`` values kept.

    Raises:
        VocabularyError: a header without one of the needed columns (either dialect, see the
            module docstring); with ``strict``, a bad row.
    """
    path = _check_path(path)
    rows = _Rows(str(path), strict)
    lines = _lines(path, rows)
    header = _header(path, lines)
    columns, separator = _hgnc_columns(path, header)
    for number, text in lines:
        fields = text.split("\t")
        if len(fields) != len(header):
            rows.reject(number, "wrong number of fields", f"expected {len(header)} as in the header, found {len(fields)}")
            continue
        hgnc_id, symbol, name, status, aliases, previous, gene_id = (fields[i].strip().strip('"') for i in columns)
        if status not in statuses:
            rows.read.filtered[f"status {status}"] += 1
            continue
        if not gene_id:
            rows.read.filtered["no NCBI Gene ID"] += 1
            continue
        if not gene_id.isdigit():
            rows.reject(number, "malformed ID", f"NCBI Gene ID {gene_id!r} of {hgnc_id} is not a number")
            continue
        synonyms = _unique((name, *_split(previous, separator, unquote=True)), symbol)
        rows.add(number, Concept(f"{NCBI_GENE}:{gene_id}", symbol, synonyms,
                                 _unique(_split(aliases, separator, unquote=True), symbol, *synonyms), taxon=HUMAN))
    return rows.read


def _hgnc_columns(path: Path, header: list[str]) -> tuple[list[int], str]:
    for names, separator in _HGNC_DIALECTS:
        if names[1] in header:
            missing = [n for n in names if n not in header]
            if missing:
                raise VocabularyError(str(path), f"missing column(s) {missing}; the header has {header}", 1)
            return [header.index(n) for n in names], separator
    raise VocabularyError(str(path), f"not an HGNC TSV: no 'Approved symbol' or 'symbol' column in {header}", 1)


def _header(path: Path, lines: Iterator[tuple[int, str]]) -> list[str]:
    first = next(lines, None)
    if first is None:
        raise VocabularyError(str(path), "empty file: expected a header line", 1)
    return [name.strip() for name in first[1].split("\t")]


# ---- NCBI gene_info ---------------------------------------------------------------------------
_GENE_INFO_COLUMNS = ("#tax_id", "GeneID", "Symbol", "Synonyms", "Symbol_from_nomenclature_authority",
                      "Full_name_from_nomenclature_authority", "Other_designations", "description")


def read_gene_info(path: str | Path, strict: bool = False, taxa: tuple[str, ...] | None = None) -> VocabularyRead:
    """Genes from NCBI's ``gene_info`` (any organism), as NCBI Gene concepts.

    The name is ``Symbol``; synonyms the nomenclature authority's symbol and full name and the
    ``description``; weak synonyms ``Synonyms`` and ``Other_designations``.

    Args:
        taxa: keep genes of these organisms only (NCBI Taxonomy IDs, ``"10090"``, or CURIEs);
            None keeps all. The others are counted in ``filtered``.

    Raises:
        VocabularyError: a header that is not ``gene_info``'s (a missing column); with
            ``strict``, a bad row.
    """
    path = _check_path(path)
    keep = None if taxa is None else {t.rpartition(":")[2] for t in taxa}
    rows = _Rows(str(path), strict)
    lines = _lines(path, rows)
    header = _header(path, lines)
    missing = [n for n in _GENE_INFO_COLUMNS if n not in header]
    if missing:
        raise VocabularyError(str(path), f"missing gene_info column(s) {missing}; the header has {header}", 1)
    at = [header.index(n) for n in _GENE_INFO_COLUMNS]
    for number, text in lines:
        fields = text.split("\t")
        if len(fields) != len(header):
            rows.reject(number, "wrong number of fields", f"expected {len(header)} as in the header, found {len(fields)}")
            continue
        tax_id, gene_id, symbol, synonyms, authority_symbol, authority_name, designations, description = (
            "" if fields[i].strip() == "-" else fields[i].strip() for i in at)
        if keep is not None and tax_id not in keep:
            rows.read.filtered[f"taxon {tax_id}"] += 1
            continue
        if not gene_id.isdigit() or not tax_id.isdigit():
            rows.reject(number, "malformed ID", f"GeneID {gene_id!r}, tax_id {tax_id!r}")
            continue
        strong = _unique((authority_symbol, authority_name, description), symbol)
        weak = _unique((*_split(synonyms), *_split(designations)), symbol, *strong)
        rows.add(number, Concept(f"{NCBI_GENE}:{gene_id}", symbol, strong, weak, taxon=f"{NCBI_TAXON}:{tax_id}"))
    return rows.read


# ---- OMIM disease names from the lexicon ------------------------------------------------------
def read_omim_lexicon(path: str | Path, strict: bool = False, prefixes: tuple[str, ...] = ("OMIM",)) -> VocabularyRead:
    """Disease concepts from ``gene_disease_associations.tsv`` (columns ``diseaseId``, ``diseaseName``).

    Rows repeat an ID once per associated gene: the first name is the concept's name, other names
    of the same ID its synonyms. IDs of other prefixes (``ORPHA``) are filtered.

    Raises:
        VocabularyError: a header without ``diseaseId`` or ``diseaseName``; with ``strict``, a bad row.
    """
    path = _check_path(path)
    rows = _Rows(str(path), strict)
    lines = _lines(path, rows)
    header = _header(path, lines)
    missing = [n for n in ("diseaseId", "diseaseName") if n not in header]
    if missing:
        raise VocabularyError(str(path), f"missing column(s) {missing}; the header has {header}", 1)
    id_at, name_at = header.index("diseaseId"), header.index("diseaseName")
    names: dict[str, list[str]] = {}
    first_line: dict[str, int] = {}
    for number, text in lines:
        fields = text.split("\t")
        if len(fields) != len(header):
            rows.reject(number, "wrong number of fields", f"expected {len(header)} as in the header, found {len(fields)}")
            continue
        curie, name = fields[id_at].strip(), fields[name_at].strip()
        prefix, _, local = curie.partition(":")
        if not local:
            rows.reject(number, "malformed ID", f"{curie!r} is not a CURIE")
            continue
        if prefix not in prefixes:
            rows.read.filtered[f"prefix {prefix}"] += 1
            continue
        if not name:
            rows.reject(number, "empty name", curie)
            continue
        first_line.setdefault(curie, number)
        if name not in names.setdefault(curie, []):
            names[curie].append(name)
    for curie, found in names.items():
        rows.add(first_line[curie], Concept(curie, found[0], tuple(found[1:])))
    return rows.read


READERS: dict[str, Callable[..., VocabularyRead]] = {
    "mesh-descriptors-tsv": read_mesh_descriptors_tsv,
    "mesh-supplementary-tsv": read_mesh_supplementary_tsv,
    "mesh-descriptors-xml": read_mesh_descriptors_xml,
    "mesh-supplementary-xml": read_mesh_supplementary_xml,
    "hgnc-tsv": read_hgnc_tsv,
    "gene-info": read_gene_info,
    "omim-lexicon": read_omim_lexicon,
}
"""Format name -> reader; every reader takes ``(path, strict=False, ...)``."""


def read_taxonomy_ids(path: str | Path) -> dict[str, str]:
    """Descriptor UI -> NCBI Taxonomy ID from the shared descriptor TSV's fifth column (for the
    XML reader, whose records carry none)."""
    read = read_mesh_descriptors_tsv(path)
    return {c.curie.partition(":")[2]: c.taxon.partition(":")[2] for c in read.concepts if c.taxon}

