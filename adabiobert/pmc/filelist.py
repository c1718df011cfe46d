"""PMC OA bulk file lists: the ``.filelist.csv`` beside each bulk package (legacy archives).

Until August 2026 PMC published its Open Access subset as baseline packages
(``oa_comm_xml.PMC006xxxxxx.baseline.2024-06-18.tar.gz``, members such as
``PMC006xxxxxx/PMC6908519.xml``) and daily incremental packages
(``oa_comm_xml.incr.2024-06-19.tar.gz``), likewise for ``oa_noncomm`` and ``oa_other``; they
were removed then, and the nightly source is PMC's Cloud Service (``adabiobert/pmc/sync.py``).
This module reads the archives people already hold. Beside
each ``<name>.tar.gz`` lies ``<name>.filelist.csv``, one row per article of the package. Its
``LastUpdated`` is the article's version and ``Retracted`` its status; ingest records both.
See ``docs/pmc-shards.md``.
"""

from __future__ import annotations

import csv
import io
import re
from dataclasses import dataclass
from datetime import datetime, timezone

from adabiobert import storage

SUFFIX = ".filelist.csv"

ARTICLE_FILE = "Article File"
ACCESSION = "AccessionID"
LAST_UPDATED = "LastUpdated (YYYY-MM-DD HH:MM:SS)"
RETRACTED = "Retracted"
COLUMNS = (ARTICLE_FILE, "Article Citation", ACCESSION, LAST_UPDATED, "PMID", "License", RETRACTED)
"""The header PMC writes, in order; ingest needs :data:`REQUIRED`."""
REQUIRED = (ARTICLE_FILE, ACCESSION, LAST_UPDATED, RETRACTED)

_PMCID = re.compile(r"PMC\d+")
_RETRACTED = {"no": False, "yes": True}


@dataclass(frozen=True)
class Listed:
    """One usable file-list row: what the package's member ``Article File`` should hold."""

    line: int
    """1-based line of the row in the file list (the header is line 1)."""
    pmcid: str
    version: datetime
    """``LastUpdated``, read as UTC."""
    retracted: bool


@dataclass(frozen=True)
class BadRow:
    """A file-list row (or the whole file list, ``line`` 0) that cannot be used."""

    line: int
    reason: str


def file_list_uri(package_uri: str) -> str:
    """``<name>.filelist.csv`` for ``<name>.tar.gz`` (or ``<name>.tgz``)."""
    stem = package_uri.removesuffix(".tar.gz") if package_uri.endswith(".tar.gz") else package_uri.removesuffix(".tgz")
    return stem + SUFFIX


def parse_file_list(data: bytes) -> tuple[dict[str, Listed], list[BadRow]]:
    """Read a file list into its usable rows, keyed by ``Article File``, and its bad rows.

    A row is bad when its ``Article File`` is empty or repeats an earlier row, its
    ``AccessionID`` is not ``PMC`` + digits, its ``LastUpdated`` is not ``YYYY-MM-DD HH:MM:SS``,
    or its ``Retracted`` is neither ``yes`` nor ``no``. A header without a :data:`REQUIRED`
    column, or bytes that are not UTF-8, make the whole list bad (one ``BadRow`` at line 0, no
    usable rows). Memory: one small entry per row of this one list.

    Args:
        data: the bytes of a ``.filelist.csv``.

    Returns:
        ``(usable rows by member path, bad rows in file order)``.
    """
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        return {}, [BadRow(0, f"not UTF-8 text ({error.reason} at byte {error.start})")]
    reader = csv.DictReader(io.StringIO(text, newline=""))
    missing = [name for name in REQUIRED if name not in (reader.fieldnames or [])]
    if missing:
        return {}, [BadRow(0, f"header lacks column {missing[0]!r} (expected {', '.join(COLUMNS)})")]
    listed: dict[str, Listed] = {}
    bad: list[BadRow] = []
    for row in reader:
        line = reader.line_num
        member, problem = (row.get(ARTICLE_FILE) or "").strip(), None
        pmcid = (row.get(ACCESSION) or "").strip()
        stamp = (row.get(LAST_UPDATED) or "").strip()
        retracted = _RETRACTED.get((row.get(RETRACTED) or "").strip().lower())
        version = _timestamp(stamp)
        if not member:
            problem = "empty Article File"
        elif member in listed:
            problem = f"{member} is listed again (first at line {listed[member].line})"
        elif not _PMCID.fullmatch(pmcid):
            problem = f"{member}: AccessionID {pmcid!r} is not PMC + digits"
        elif version is None:
            problem = f"{member}: LastUpdated {stamp!r} is not YYYY-MM-DD HH:MM:SS"
        elif retracted is None:
            problem = f"{member}: Retracted {row.get(RETRACTED)!r} is neither yes nor no"
        if problem:
            bad.append(BadRow(line, problem))
        else:
            listed[member] = Listed(line, pmcid, version, retracted)
    return listed, bad


def read_file_list(package_uri: str) -> tuple[str, dict[str, Listed], list[BadRow]] | None:
    """The file list beside ``package_uri`` (its URI, usable rows, bad rows), or None when absent.

    Raises:
        OSError: the file list exists but cannot be read.
    """
    uri = file_list_uri(package_uri)
    if not storage.exists(uri):
        return None
    return (uri, *parse_file_list(storage.read_bytes(uri)))


def _timestamp(text: str) -> datetime | None:
    try:
        return datetime.strptime(text, "%Y-%m-%d %H:%M:%S").replace(tzinfo=timezone.utc)
    except ValueError:
        return None
