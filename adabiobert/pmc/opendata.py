"""PMC's Cloud Service bucket, ``s3://pmc-oa-opendata``: its layout, its metadata records, licences.

Since August 2026 this bucket is PMC's only bulk distribution (the ``.tar.gz`` packages, their
``.filelist.csv`` and the ``oa_comm``/``oa_noncomm`` folders are gone; ``adabiobert/pmc/filelist.py``
reads archives people already hold). What this module relies on, and where it was checked
(2026-12, with the project's ``search`` tool):

- The bucket is world-readable in ``us-east-1``; ``aws s3 ls s3://pmc-oa-opendata
  --no-sign-request`` needs no account (pmc.ncbi.nlm.nih.gov/tools/pmcaws). Storage sends
  unsigned requests when no credentials are found (``adabiobert.storage.s3_unsigned``).
- "All article data files will be available individually; there will be no compressed packages
  or bulk packages"; the bucket's XML is the XML of OAI-PMH and E-utilities (NLM Technical
  Bulletin 2026 Jan-Feb, e8, posted 2026-02-17). Legacy prefixes moved under ``deprecated/`` on
  2026-04-13 and were removed in August 2026 (pmc.ncbi.nlm.nih.gov/tools/cloud/).
- One prefix per article version, ``PMC13901.1/`` holding ``PMC13901.1.xml`` (JATS),
  ``PMC13901.1.txt`` and ``PMC13901.1.json`` (metadata); the metadata is copied to
  ``metadata/PMC13901.1.json`` (the bucket's ``README.txt``, quoted in issue 21; third-party
  readers of the bucket agree: keys ``metadata/(PMC\\d+)\\.(\\d+)\\.json``, prefixes
  ``(PMC\\d+)\\.(\\d+)/``).
- Metadata fields ``pmcid, version, pmid, doi, title, citation, is_pmc_openaccess,
  is_manuscript, is_historical_ocr, is_retracted, license_code, xml_url, pdf_url, media_urls,
  text_url`` (some records also carry ``mid``). Seen in published reader code: ``version`` an
  integer, ``pmid`` an integer, ``license_code`` values ``CC BY``, ``CC BY-NC``, ``CC BY-NC-ND``,
  ``CC BY-NC-SA``, ``CC0``, ``TDM`` (author manuscripts) and null. No last-updated field.
- Licence categories are no longer folders: ``license_code`` is the filter; reuse for commercial
  purposes is CC0, CC BY, CC BY-SA and CC BY-ND.

The daily inventory of ``metadata/`` is read by ``adabiobert/pmc/inventory.py``.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

from adabiobert.errors import ConfigError, MetadataError

BUCKET = "pmc-oa-opendata"
BUCKET_URI = f"s3://{BUCKET}"
REGION = "us-east-1"
METADATA_PREFIX = "metadata/"
"""Every version's metadata JSON, copied flat: ``metadata/PMC13901.1.json``."""
INVENTORY_PREFIX = f"inventory-reports/{BUCKET}/metadata/"
"""The daily S3 Inventory of :data:`METADATA_PREFIX`: ``<YYYY-MM-DDTHH-MMZ>/manifest.json`` and ``data/*.csv.gz``."""

_PMCID = re.compile(r"PMC[0-9]+")
_METADATA_KEY = re.compile(r"metadata/(PMC[0-9]+)\.([0-9]+)\.json")


def version_name(pmcid: str, version: int) -> str:
    """``PMC13901.1``: the name of one article version, its prefix without the slash.

    Raises:
        MetadataError: ``pmcid`` is not ``PMC<digits>`` or ``version`` not a positive integer.
    """
    if not isinstance(pmcid, str) or not _PMCID.fullmatch(pmcid):
        raise MetadataError(repr(pmcid), "not a PMC id; expected PMC<digits> such as PMC13901")
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        raise MetadataError(pmcid, f"version {version!r} is not a positive integer")
    return f"{pmcid}.{version}"


def metadata_key(pmcid: str, version: int) -> str:
    """``metadata/PMC13901.1.json``: the flat copy of a version's metadata, as the inventory lists it."""
    return f"{METADATA_PREFIX}{version_name(pmcid, version)}.json"


def xml_key(pmcid: str, version: int) -> str:
    """``PMC13901.1/PMC13901.1.xml``: a version's JATS XML."""
    name = version_name(pmcid, version)
    return f"{name}/{name}.xml"


def json_key(pmcid: str, version: int) -> str:
    """``PMC13901.1/PMC13901.1.json``: a version's metadata inside its own prefix."""
    name = version_name(pmcid, version)
    return f"{name}/{name}.json"


def text_key(pmcid: str, version: int) -> str:
    """``PMC13901.1/PMC13901.1.txt``: a version's plain text, as PMC extracts it from the XML."""
    name = version_name(pmcid, version)
    return f"{name}/{name}.txt"


def parse_metadata_key(key: str) -> tuple[str, int]:
    """``"metadata/PMC13901.1.json"`` -> ``("PMC13901", 1)``.

    Raises:
        MetadataError: ``key`` is not ``metadata/PMC<digits>.<digits>.json`` (or its version is 0).
    """
    found = _METADATA_KEY.fullmatch(key) if isinstance(key, str) else None
    if found is None:
        raise MetadataError(repr(key), "not an article metadata key; expected metadata/PMC<digits>.<version>.json")
    version = int(found.group(2))
    if version < 1:
        raise MetadataError(key, "version 0; PMC numbers versions from 1")
    return found.group(1), version


# ---------------------------------------------------------------------------------------------
# Metadata records
# ---------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ArticleMetadata:
    """One version's metadata record, ``metadata/PMC13901.1.json``, checked and typed."""

    pmcid: str
    """``PMC13901``."""
    version: int
    """PMC's version number, from 1; the highest present is the article's current version."""
    pmid: str | None
    """The PubMed id as text (PMC writes an integer), or None."""
    doi: str | None
    title: str | None
    citation: str | None
    license_code: str | None
    """``CC BY``, ``CC BY-NC``, ``CC0``, ``TDM`` (author manuscripts) and so on; None when PMC gives none."""
    is_pmc_openaccess: bool
    is_manuscript: bool
    is_historical_ocr: bool
    is_retracted: bool
    xml_url: str | None
    pdf_url: str | None
    text_url: str | None
    media_urls: tuple[str, ...]
    missing: tuple[str, ...]
    """Expected fields that were absent or null, in :data:`FIELDS` order; a flag among them reads as
    False, a text field as None, ``media_urls`` as empty. Reported, never silently defaulted."""


FLAGS = ("is_pmc_openaccess", "is_manuscript", "is_historical_ocr", "is_retracted")
TEXTS = ("doi", "title", "citation", "license_code", "xml_url", "pdf_url", "text_url")
FIELDS = ("pmcid", "version", "pmid", "doi", "title", "citation", *FLAGS, "license_code", "xml_url", "pdf_url",
          "media_urls", "text_url")
"""The fields PMC documents for every record, in its order."""


def parse_metadata(raw: bytes, source: str, expect: tuple[str, int] | None = None) -> ArticleMetadata:
    """Read one metadata record.

    Args:
        raw: the JSON bytes of ``metadata/PMC13901.1.json`` (or ``PMC13901.1/PMC13901.1.json``).
        source: its key or URI, named by every error.
        expect: ``(pmcid, version)`` the record must carry (the ones its key names), or None.

    Returns:
        The record. ``pmcid`` and ``version`` are required; every other field may be absent or
        null (listed in ``missing``) but must have its type when present. Unknown fields are ignored.

    Raises:
        MetadataError: not UTF-8 JSON, not an object, ``pmcid``/``version`` missing or malformed,
            a field of the wrong type, or a record for another version than ``expect``.
    """
    try:
        record = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise MetadataError(source, f"not JSON: {error}") from None
    if not isinstance(record, dict):
        raise MetadataError(source, f"a JSON {type(record).__name__}, expected an object")
    fields = _Fields(record, source)
    pmcid = fields.required("pmcid", str)
    version = fields.required("version", int)
    if not _PMCID.fullmatch(pmcid):
        raise MetadataError(source, f"pmcid {pmcid!r} is not PMC<digits>")
    if version < 1:
        raise MetadataError(source, f"version {version} is not a positive integer")
    if expect is not None and (pmcid, version) != tuple(expect):
        raise MetadataError(source, f"holds {pmcid}.{version}, expected {expect[0]}.{expect[1]}")
    pmid = fields.optional("pmid", (int, str))
    media = fields.optional("media_urls", list)
    if media is not None and not all(isinstance(url, str) for url in media):
        raise MetadataError(source, "media_urls holds something other than strings")
    texts = {name: fields.optional(name, str) for name in TEXTS}
    flags = {name: bool(fields.optional(name, bool)) for name in FLAGS}
    return ArticleMetadata(
        pmcid=pmcid, version=version, pmid=None if pmid is None else str(pmid), **texts, **flags,
        media_urls=tuple(media or ()), missing=tuple(name for name in FIELDS if name in fields.absent),
    )


class _Fields:
    """Typed access to a record's fields; remembers which were absent or null."""

    def __init__(self, record: dict[str, Any], source: str) -> None:
        self.record = record
        self.source = source
        self.absent: set[str] = set()

    def required(self, name: str, kind: type) -> Any:
        value = self.optional(name, kind)
        if value is None:
            raise MetadataError(self.source, f"{name} is missing")
        return value

    def optional(self, name: str, kind: type | tuple[type, ...]) -> Any:
        value = self.record.get(name)
        if value is None:
            self.absent.add(name)
            return None
        # bool is an int in Python; a flag where a number belongs (or the reverse) is a wrong type.
        wrong_bool = isinstance(value, bool) != (kind is bool)
        if wrong_bool or not isinstance(value, kind):
            expected = " or ".join(k.__name__ for k in (kind if isinstance(kind, tuple) else (kind,)))
            raise MetadataError(self.source, f"{name} is {type(value).__name__} {value!r:.60}, expected {expected}")
        return value


# ---------------------------------------------------------------------------------------------
# Licence filter
# ---------------------------------------------------------------------------------------------
KNOWN_LICENSES = ("CC0", "CC BY", "CC BY-SA", "CC BY-ND", "CC BY-NC", "CC BY-NC-SA", "CC BY-NC-ND", "TDM")
"""The ``license_code`` values PMC documents or is seen to use."""
COMMERCIAL = frozenset({"CC0", "CC BY", "CC BY-SA", "CC BY-ND"})
"""Licences that allow commercial reuse (what ``oa_comm`` held, plus CC BY-SA and CC BY-ND)."""
PRESETS = {"open-access": None, "commercial": COMMERCIAL}
"""``open-access``: every version the bucket holds (all of it is open access or a funder's
text-mining manuscript), a null licence included; ``commercial``: :data:`COMMERCIAL`."""


@dataclass(frozen=True)
class LicenseFilter:
    """Which ``license_code`` values a sync keeps."""

    spec: str
    """What the user wrote (a preset name or codes), for reports."""
    codes: frozenset[str] | None
    """The codes kept, normalised (:func:`normalize_license`); None keeps every version."""

    def allows(self, code: str | None) -> bool:
        """True when a version with this ``license_code`` is kept; a null code only by ``open-access``."""
        if self.codes is None:
            return True
        return code is not None and normalize_license(code) in self.codes


def normalize_license(code: str) -> str:
    """``" cc  by-nc "`` -> ``"CC BY-NC"``: upper case, spaces collapsed."""
    return " ".join(code.upper().split())


def license_filter(spec: str) -> LicenseFilter:
    """The filter named by ``spec``: a preset of :data:`PRESETS` or comma-separated codes
    (``"CC BY,CC0"``; case and extra spaces do not matter).

    Raises:
        ConfigError: an empty spec, or a code outside :data:`KNOWN_LICENSES`.
    """
    name = spec.strip().lower()
    if name in PRESETS:
        return LicenseFilter(name, PRESETS[name])
    codes = [normalize_license(part) for part in spec.split(",") if part.strip()]
    if not codes:
        raise ConfigError(f"license {spec!r}: expected {' or '.join(PRESETS)}, or comma-separated licence codes")
    unknown = [code for code in codes if code not in KNOWN_LICENSES]
    if unknown:
        raise ConfigError(f"license {spec!r}: unknown code(s) {', '.join(unknown)}; expected a preset "
                          f"({', '.join(PRESETS)}) or codes among {', '.join(KNOWN_LICENSES)}")
    return LicenseFilter(", ".join(codes), frozenset(codes))
